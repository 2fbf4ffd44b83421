//! Timers: the moments a case needs attention, ordered by due time.
//!
//! Every store keeps each case's timers beside the case and answers "what
//! is due before t" from an index on the due time, so `tick` costs what is
//! due, not what is open. [`TimerQueue`] is that index in memory, for the
//! memory store.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::case::CaseId;

/// One moment a case needs attention, and the timer to fire then
/// (`sla.first_reply.breach`, `promise.P-1.due`, `state.timeout`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub due: Timestamp,
    pub case: CaseId,
    pub name: String,
}

/// Timers ordered by due time, replaced per case.
#[derive(Debug, Default)]
pub struct TimerQueue {
    queue: BTreeSet<(Timestamp, CaseId, String)>,
    by_case: HashMap<CaseId, Vec<(Timestamp, String)>>,
}

impl TimerQueue {
    /// Replace the case's timers.
    pub fn set(&mut self, case: &CaseId, timers: &[Timer]) {
        if let Some(old) = self.by_case.remove(case) {
            for (t, name) in old {
                self.queue.remove(&(t, case.clone(), name));
            }
        }
        let items: Vec<_> = timers.iter().map(|t| (t.due, t.name.clone())).collect();
        for (t, name) in &items {
            self.queue.insert((*t, case.clone(), name.clone()));
        }
        self.by_case.insert(case.clone(), items);
    }

    /// Remove one timer (it fired).
    pub fn remove(&mut self, timer: &Timer) {
        let entry = (timer.due, timer.case.clone(), timer.name.clone());
        if self.queue.remove(&entry)
            && let Some(items) = self.by_case.get_mut(&timer.case)
        {
            items.retain(|(t, n)| !(*t == timer.due && *n == timer.name));
        }
    }

    /// Up to `limit` timers due at or before `until`, earliest first.
    pub fn due(&self, until: Timestamp, limit: usize) -> Vec<Timer> {
        self.queue
            .iter()
            .take_while(|(t, _, _)| *t <= until)
            .take(limit)
            .map(|(due, case, name)| Timer {
                due: *due,
                case: case.clone(),
                name: name.clone(),
            })
            .collect()
    }

    /// The earliest timer due at or before `until` that `skip` does not
    /// pass over; only the timers looked at are copied.
    pub fn first_due(
        &self,
        until: Timestamp,
        mut skip: impl FnMut(&Timer) -> bool,
    ) -> Option<Timer> {
        self.queue
            .iter()
            .take_while(|(t, _, _)| *t <= until)
            .map(|(due, case, name)| Timer {
                due: *due,
                case: case.clone(),
                name: name.clone(),
            })
            .find(|t| !skip(t))
    }

    /// A case's timers, earliest first.
    pub fn of(&self, case: &CaseId) -> Vec<Timer> {
        let mut out: Vec<Timer> = self
            .by_case
            .get(case)
            .into_iter()
            .flatten()
            .map(|(due, name)| Timer {
                due: *due,
                case: case.clone(),
                name: name.clone(),
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the case has an entry here (even an empty set of timers).
    pub fn has_case(&self, case: &CaseId) -> bool {
        self.by_case.contains_key(case)
    }

    /// When the earliest timer is due.
    pub fn next(&self) -> Option<Timestamp> {
        self.queue.first().map(|(t, _, _)| *t)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> Timestamp {
        format!("2026-11-27T10:{minute:02}:00+00:00")
            .parse()
            .unwrap()
    }

    #[test]
    fn first_due_passes_over_the_skipped_and_stops_at_until() {
        let case = CaseId("C-1".into());
        let timer = |minute, name: &str| Timer {
            due: at(minute),
            case: case.clone(),
            name: name.into(),
        };
        let mut queue = TimerQueue::default();
        queue.set(&case, &[timer(3, "c"), timer(1, "a"), timer(2, "b")]);
        assert_eq!(queue.first_due(at(5), |_| false), Some(timer(1, "a")));
        assert_eq!(
            queue.first_due(at(5), |t| t.name == "a"),
            Some(timer(2, "b"))
        );
        assert_eq!(queue.first_due(at(0), |_| false), None);
        queue.remove(&timer(1, "a"));
        assert_eq!(queue.first_due(at(1), |_| false), None);
        assert!(queue.has_case(&case));
        assert_eq!(queue.of(&case), vec![timer(2, "b"), timer(3, "c")]);
    }
}
