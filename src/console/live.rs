//! Live updates: server-sent events telling open pages which cases
//! changed, so the queue and a case page refresh without a reload.
//!
//! Each following browser holds one connection and one thread, so their
//! number is capped ([`Hub::MAX_CLIENTS`]); past it the page still works
//! (it is server-rendered) and simply does not update itself. The
//! response is written through [`tiny_http::Request::into_writer`] and
//! flushed after every event: tiny_http's own streaming buffers 8 KB
//! before sending anything, which would hold events back.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Changes since the server started, numbered; only the latest are kept.
#[derive(Default)]
struct Log {
    seq: u64,
    /// (seq, case id) of recent changes, oldest first.
    recent: VecDeque<(u64, String)>,
}

/// Where changes are announced and followers wait for them.
#[derive(Default)]
pub struct Hub {
    log: Mutex<Log>,
    changed: Condvar,
    clients: AtomicUsize,
}

/// How many changes a slow follower can miss before it is told "reload
/// everything" instead of a list.
const KEEP: usize = 512;
/// A comment line this often keeps proxies from closing a quiet stream
/// and finds clients that went away.
const HEARTBEAT: Duration = Duration::from_secs(15);

impl Hub {
    /// Browsers following at once, at most.
    pub const MAX_CLIENTS: usize = 32;

    /// Announce that these cases changed.
    pub fn changed<I: IntoIterator<Item = String>>(&self, cases: I) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut any = false;
        for case in cases {
            log.seq += 1;
            let seq = log.seq;
            log.recent.push_back((seq, case));
            if log.recent.len() > KEEP {
                log.recent.pop_front();
            }
            any = true;
        }
        if any {
            self.changed.notify_all();
        }
    }

    /// Browsers following now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// Take a place for one more follower, or None when full.
    pub fn join(self: &Arc<Self>) -> Option<Follower> {
        let n = self.clients.fetch_add(1, Ordering::SeqCst);
        if n >= Self::MAX_CLIENTS {
            self.clients.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let seq = self.log.lock().unwrap_or_else(PoisonError::into_inner).seq;
        Some(Follower {
            hub: self.clone(),
            seen: seq,
        })
    }

    /// Wait up to `timeout` for changes after `seen`: the new last seq and
    /// the cases (None: more changed than were kept, refresh everything).
    fn wait(&self, seen: u64, timeout: Duration) -> Option<(u64, Option<Vec<String>>)> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let (log, _) = self
            .changed
            .wait_timeout_while(log, timeout, |l| l.seq <= seen)
            .unwrap_or_else(PoisonError::into_inner);
        if log.seq <= seen {
            return None;
        }
        let complete = log.recent.front().is_some_and(|(s, _)| *s <= seen + 1);
        let mut cases: Vec<String> = log
            .recent
            .iter()
            .filter(|(s, _)| *s > seen)
            .map(|(_, c)| c.clone())
            .collect();
        cases.sort();
        cases.dedup();
        Some((log.seq, complete.then_some(cases)))
    }
}

/// One browser's place; gives it back when dropped.
pub struct Follower {
    hub: Arc<Hub>,
    seen: u64,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.hub.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Follower {
    /// Write the event stream to `out` (the raw connection) until the
    /// browser goes away or `stop` is set. `head` is the HTTP response
    /// head to send first.
    pub fn stream(mut self, mut out: Box<dyn Write + Send>, head: &str, stop: &AtomicBool) {
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(b"retry: 2000\n\n"))
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
        let mut quiet_since = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let message = match self.hub.wait(self.seen, Duration::from_millis(500)) {
                Some((seq, cases)) => {
                    self.seen = seq;
                    let data = serde_json::json!({ "seq": seq, "cases": cases });
                    format!("event: change\ndata: {data}\n\n")
                }
                None if quiet_since.elapsed() >= HEARTBEAT => ": still here\n\n".to_owned(),
                None => continue,
            };
            quiet_since = Instant::now();
            if out
                .write_all(message.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_hear_of_changes_after_they_joined() {
        let hub = Arc::new(Hub::default());
        hub.changed(["C-0".to_owned()]);
        let f = hub.join().unwrap();
        assert_eq!(hub.clients(), 1);
        assert!(hub.wait(f.seen, Duration::from_millis(10)).is_none());
        hub.changed(["C-2".to_owned(), "C-1".to_owned(), "C-2".to_owned()]);
        let (seq, cases) = hub.wait(f.seen, Duration::from_millis(10)).unwrap();
        assert_eq!(seq, 4);
        assert_eq!(cases.unwrap(), ["C-1", "C-2"]);
        drop(f);
        assert_eq!(hub.clients(), 0);
    }

    #[test]
    fn followers_are_capped_and_a_slow_one_is_told_to_refresh_all() {
        let hub = Arc::new(Hub::default());
        let all: Vec<_> = (0..Hub::MAX_CLIENTS).map(|_| hub.join().unwrap()).collect();
        assert!(hub.join().is_none());
        drop(all);
        let f = hub.join().unwrap();
        hub.changed((0..KEEP + 5).map(|i| format!("C-{i}")));
        let (_, cases) = hub.wait(f.seen, Duration::from_millis(10)).unwrap();
        assert!(cases.is_none());
    }
}
