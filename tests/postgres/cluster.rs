//! `casework serve` workers on one PostgreSQL database, as processes:
//! events through the shared inbox, workers killed (SIGKILL) and paused
//! (SIGSTOP), and what must hold afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::{Value, json};

use crate::TestDb;
use crate::util::{HttpStub, casework, copy_pack, listening, root, scratch};

/// A running `casework serve` on the test's database.
pub struct Worker {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Worker {
    pub fn start(config: &Path, url: &str, lease: &str, log: PathBuf) -> Worker {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
            .arg("serve")
            .arg(config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--db",
                url,
                "--partition-lease",
                lease,
            ])
            // Actions in flight when a worker dies are taken again soon.
            .args(["--lease", "2s", "--retry-base", "200ms"])
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("casework serve starts");
        let addr = listening(&mut child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        Worker { child, addr, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request; an error when the worker is gone mid-request.
pub fn send(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head}")))?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// A warehouse API that behaves as a real one with idempotency keys: the
/// first request of a key is executed (a hold placed), a repeat gets the
/// first answer again without a second hold.
pub struct Warehouse {
    _api: HttpStub,
    pub url: String,
    /// Key → holds placed (must stay 1) and requests seen.
    pub seen: Arc<Mutex<BTreeMap<String, (u32, u32)>>>,
}

impl Warehouse {
    pub fn start() -> Warehouse {
        let seen: Arc<Mutex<BTreeMap<String, (u32, u32)>>> = Arc::default();
        let api = HttpStub::start({
            let seen = seen.clone();
            move |_path, key, _body| {
                let mut seen = seen.lock().unwrap();
                let entry = seen.entry(key.to_owned()).or_default();
                if entry.0 == 0 {
                    entry.0 = 1;
                }
                entry.1 += 1;
                (200, json!({ "hold": format!("H-{key}") }).to_string())
            }
        });
        Warehouse {
            url: api.url.clone(),
            _api: api,
            seen,
        }
    }
}

/// The default pack with the warehouse at `url`.
pub fn pack(dir: &Path, url: &str) -> PathBuf {
    copy_pack(dir);
    let plugins = dir.join("plugins.yaml");
    let text = std::fs::read_to_string(&plugins).unwrap();
    let patched = text.replacen(
        "  warehouse:\n    kind: warehouse\n",
        &format!("  warehouse:\n    kind: warehouse\n    url: {url}\n    timeout: 2s\n"),
        1,
    );
    assert_ne!(patched, text, "plugins.yaml has no warehouse plugin");
    std::fs::write(&plugins, patched).unwrap();
    dir.join("casework.yaml")
}

/// The events of one order's story, written `days_ago` days before now
/// so its SLA and promise timers come due during the test: the message,
/// a promise, and a warehouse plan weeks too early (a hold is requested).
pub fn story(n: usize, days_ago: i64) -> Vec<Value> {
    let at = |minutes: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days_ago) + chrono::Duration::minutes(minutes))
            .to_rfc3339()
    };
    let order = format!("O-{n}");
    let delivery = (chrono::Utc::now() + chrono::Duration::days(40)).date_naive();
    let early = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    vec![
        json!({"id": format!("k{n}-1"), "at": at(0), "kind": "customer.message",
               "customer": {"name": format!("Customer {n}"), "email": format!("c{n}@example.com")},
               "order": order, "channel": "email",
               "text": "Please deliver the table to our holiday house, we are only there that week."}),
        json!({"id": format!("k{n}-2"), "at": at(10), "kind": "agent.promise", "order": order,
               "agent": "jeniffer",
               "promise": {"id": "P-1", "kind": "deliver_on", "date": delivery.to_string(),
                           "window": {"from": delivery.to_string(), "to": (delivery + chrono::Duration::days(2)).to_string()},
                           "order": order, "text": "Delivered on the day you asked."}}),
        json!({"id": format!("k{n}-3"), "at": at(20), "kind": "warehouse.planned", "order": order,
               "ship_date": early.to_string()}),
    ]
}

/// Post story `n`, two days old, to the worker at `addr`, which must
/// acknowledge it: the ids of its events.
fn post_story(addr: &str, n: usize) -> Result<Vec<String>, Failed> {
    let events = story(n, 2);
    let (status, body) = send(
        addr,
        "POST",
        "/events",
        &Value::Array(events.clone()).to_string(),
    )?;
    assert_eq!(status, 202, "{body}");
    Ok(events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect())
}

fn query_i64(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

/// Wait until the inbox is empty and no pending action is due; false on
/// timeout.
fn settle(db: &TestDb, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        let waiting = query_i64(db, "SELECT COUNT(*) FROM inbox");
        let due = query_i64(
            db,
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND plugin = 'warehouse'",
        );
        let timers = query_i64(
            db,
            "SELECT COUNT(*) FROM timers WHERE due < (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT - 5000",
        );
        if waiting == 0 && due == 0 && timers == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

pub fn one_worker_serves_events_through_the_inbox(db: &TestDb) -> Result<(), Failed> {
    let dir = scratch("pg-one-worker");
    let warehouse = Warehouse::start();
    let config = pack(&dir, &warehouse.url);
    let worker = Worker::start(&config, &db.url, "2s", dir.join("w.log"));
    let events: Vec<Value> = story(1, 2);
    let (status, body) = send(
        &worker.addr,
        "POST",
        "/events",
        &Value::Array(events).to_string(),
    )?;
    assert_eq!(status, 202, "{body}");
    let case = body["events"][0]["case"].as_str().unwrap().to_owned();
    assert_eq!(
        body["events"][2]["case"],
        case.as_str(),
        "the plan joins the case of its order"
    );
    // A duplicate and a malformed event are answered at once.
    let (status, _) = send(&worker.addr, "POST", "/events", &story(1, 2)[0].to_string())?;
    assert_eq!(status, 409);
    let (status, body) = send(
        &worker.addr,
        "POST",
        "/events",
        r#"{"id": "bad-1", "at": "2026-11-25T10:00:00Z", "kind": "warehouse.planned", "order": "O-none", "ship_date": "2026-12-01"}"#,
    )?;
    assert_eq!(status, 400, "{body}");
    // A reply acknowledged with the message it answers joins its case.
    let mail = json!([
        {"id": "mail-1", "at": "2026-11-25T10:00:00Z", "kind": "email.received",
         "from": "kei@example.com", "subject": "Table", "text": "Where is my table?",
         "message_id": "<q1@example.com>"},
        {"id": "mail-2", "at": "2026-11-25T10:05:00Z", "kind": "email.received",
         "from": "kei@example.com", "subject": "Re: Table", "text": "Any news?",
         "in_reply_to": ["<q1@example.com>"]}
    ]);
    let (status, body) = send(&worker.addr, "POST", "/events", &mail.to_string())?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["events"][0]["case"], body["events"][1]["case"],
        "{body}"
    );
    assert!(settle(db, Duration::from_secs(30)), "{}", worker.log_text());
    let (status, shown) = send(&worker.addr, "GET", &format!("/cases/{case}"), "")?;
    assert_eq!(status, 200, "{shown}");
    let (_, health) = send(&worker.addr, "GET", "/health", "")?;
    assert_eq!(
        health["cluster"]["partitions"].as_array().map(Vec::len),
        Some(64),
        "{health}"
    );
    assert_eq!(health["cluster"]["inbox"]["waiting"], 0, "{health}");
    assert_eq!(health["rejected"], 1, "{health}");
    let holds = warehouse.seen.lock().unwrap().clone();
    assert_eq!(holds.len(), 1, "{holds:?}");
    // `casework cases` and `show` read the same database.
    let cases = casework(["cases", "--db", &db.url]);
    assert_eq!(cases.code, 0, "{}", cases.output());
    assert!(cases.stdout.contains(&case), "{}", cases.output());
    Ok(())
}

pub fn three_workers_survive_kills(db: &TestDb) -> Result<(), Failed> {
    let kills: usize = std::env::var("CASEWORK_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(50);
    let dir = scratch("pg-kills");
    let warehouse = Warehouse::start();
    let config = pack(&dir, &warehouse.url);
    let start = |n: usize| Worker::start(&config, &db.url, "1s", dir.join(format!("w{n}.log")));
    let workers: Arc<Mutex<Vec<Worker>>> = Arc::new(Mutex::new((0..3).map(start).collect()));
    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (workers, acknowledged, stop) = (workers.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            let mut seed = 7u64;
            while !stop.load(Ordering::SeqCst) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let addr = {
                    let w = workers.lock().unwrap();
                    w[(seed >> 33) as usize % w.len()].addr.clone()
                };
                // Two stories per batch; a batch that fails is sent again
                // to another worker, as a client behind a load balancer does.
                let batch: Vec<Value> = [story(n, 3), story(n + 1, 3)].concat();
                let ids: Vec<String> = batch
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_owned())
                    .collect();
                match send(&addr, "POST", "/events", &Value::Array(batch).to_string()) {
                    Ok((202 | 409, _)) => {
                        acknowledged.lock().unwrap().extend(ids);
                        n += 2;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let mut seed = 11u64;
    for k in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(150 + (seed >> 40) % 300));
        let victim = (seed >> 33) as usize % 3;
        let mut w = workers.lock().unwrap();
        let dead = std::mem::replace(&mut w[victim], start(10 + k));
        dead.kill();
    }
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let logs = || {
        workers
            .lock()
            .unwrap()
            .iter()
            .map(Worker::log_text)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        settle(db, Duration::from_secs(60)),
        "did not settle:\n{}",
        logs()
    );

    // Every acknowledged event is stored, once.
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "only {} events acknowledged",
        acknowledged.len()
    );
    let mut client = db.client();
    let stored: BTreeSet<String> = client
        .query("SELECT id FROM events", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let rejected = query_i64(db, "SELECT COUNT(*) FROM rejected");
    assert_eq!(rejected, 0, "{}", logs());
    // Each story landed on one case: one case per order.
    let split = query_i64(
        db,
        "SELECT COUNT(*) FROM (SELECT key FROM links WHERE key LIKE 'order:%') l
         JOIN events e ON e.event LIKE '%\"order\":\"' || substr(l.key, 7) || '\"%'
         WHERE e.case_id <> (SELECT case_id FROM links WHERE key = l.key)",
    );
    assert_eq!(split, 0, "events of one order on two cases");
    // Every timer fired at most once: timer events are unique by id, and
    // none overdue is left (settle checked).
    let fired = query_i64(db, "SELECT COUNT(*) FROM events WHERE id LIKE 'timer:%'");
    assert!(fired > 0, "no timer fired");
    // Every hold was placed once; every hold requested is done.
    let seen = warehouse.seen.lock().unwrap().clone();
    let holds = query_i64(db, "SELECT COUNT(*) FROM outbox WHERE plugin = 'warehouse'");
    let done = query_i64(
        db,
        "SELECT COUNT(*) FROM outbox WHERE plugin = 'warehouse' AND status = 'done'",
    );
    assert_eq!(holds, done);
    assert_eq!(seen.len() as i64, holds, "{seen:?}");
    assert!(seen.values().all(|(placed, _)| *placed == 1));
    let repeats: u32 = seen.values().map(|(_, n)| n - 1).sum();
    eprintln!(
        "{kills} kills: {} events acknowledged, {fired} timers fired, {holds} holds placed once each ({repeats} requests repeated under the same key after a kill)",
        acknowledged.len()
    );
    // Replay equals every stored case.
    let verify = casework(["verify", "--db", &db.url]);
    assert_eq!(verify.code, 0, "{}", verify.output());
    Ok(())
}

pub fn a_paused_worker_cannot_commit(db: &TestDb) -> Result<(), Failed> {
    let dir = scratch("pg-paused");
    let warehouse = Warehouse::start();
    let config = pack(&dir, &warehouse.url);
    let a = Worker::start(&config, &db.url, "1s", dir.join("a.log"));
    let b = Worker::start(&config, &db.url, "1s", dir.join("b.log"));
    // Let them share the partitions.
    std::thread::sleep(Duration::from_millis(1500));
    a.signal("-STOP");
    // Events for every partition while A sleeps past its lease: B takes
    // A's partitions over and handles them.
    let mut acknowledged = Vec::new();
    for n in 0..40 {
        acknowledged.extend(post_story(&b.addr, n)?);
    }
    std::thread::sleep(Duration::from_millis(2500));
    a.signal("-CONT");
    assert!(
        settle(db, Duration::from_secs(30)),
        "{}\n---\n{}",
        a.log_text(),
        b.log_text()
    );
    // Nothing doubled, nothing lost.
    let stored = query_i64(
        db,
        "SELECT COUNT(*) FROM events WHERE id NOT LIKE 'timer:%'",
    );
    assert_eq!(stored as usize, acknowledged.len());
    let seen = warehouse.seen.lock().unwrap().clone();
    assert!(seen.values().all(|(placed, _)| *placed == 1));
    // A woke up without its partitions: it says so, or its first commit
    // was refused by the fence.
    std::thread::sleep(Duration::from_millis(1000));
    let log = a.log_text();
    assert!(
        log.contains("lost (lease ran out)") || log.contains("no longer leased"),
        "{log}"
    );
    let verify = casework(["verify", "--db", &db.url]);
    assert_eq!(verify.code, 0, "{}", verify.output());
    Ok(())
}

pub fn a_lost_connection_is_reported_and_recovered(db: &TestDb) -> Result<(), Failed> {
    let dir = scratch("pg-lost-connection");
    let warehouse = Warehouse::start();
    let config = pack(&dir, &warehouse.url);
    let worker = Worker::start(&config, &db.url, "2s", dir.join("w.log"));
    post_story(&worker.addr, 1)?;
    // The database drops every connection of the worker (a failover of
    // PostgreSQL itself, a network cut).
    let mut admin = db.client();
    let name: String = admin.query_one("SELECT current_database()", &[])?.get(0);
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&name],
    )?;
    // The next requests either fail with a 503 that says to send again, or
    // pass once the worker has connected again; none is lost.
    let mut acknowledged = 3;
    for n in 2..12 {
        let batch = Value::Array(story(n, 2)).to_string();
        let mut tries = 0;
        loop {
            let (status, body) = send(&worker.addr, "POST", "/events", &batch)?;
            if status == 202 {
                acknowledged += 3;
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("send them again"),
                "{body}"
            );
            tries += 1;
            assert!(
                tries < 20,
                "the worker did not connect again: {}",
                worker.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(settle(db, Duration::from_secs(30)), "{}", worker.log_text());
    let stored = query_i64(
        db,
        "SELECT COUNT(*) FROM events WHERE id NOT LIKE 'timer:%'",
    );
    assert_eq!(stored, acknowledged);
    Ok(())
}

pub fn a_stopped_worker_hands_its_partitions_back(db: &TestDb) -> Result<(), Failed> {
    let dir = scratch("pg-stopped");
    let warehouse = Warehouse::start();
    let config = pack(&dir, &warehouse.url);
    // A lease far longer than the test: only a hand-back lets another
    // worker in soon.
    let a = Worker::start(&config, &db.url, "60s", dir.join("a.log"));
    let held = |w: &Worker| -> usize {
        send(&w.addr, "GET", "/health", "")
            .map(|(_, h)| h["cluster"]["partitions"].as_array().map_or(0, Vec::len))
            .unwrap_or(0)
    };
    assert_eq!(held(&a), 64, "{}", a.log_text());
    let stopped = Instant::now();
    a.signal("-TERM");
    let mut a = a;
    let status = a.child.wait().expect("the worker exits");
    assert!(status.success(), "{status:?}: {}", a.log_text());
    let owned = query_i64(
        db,
        "SELECT COUNT(*) FROM partitions WHERE lease_until > clock_timestamp()",
    );
    assert_eq!(owned, 0, "every lease is handed back on SIGTERM");
    // A new worker takes every partition at once, and handles events.
    let b = Worker::start(&config, &db.url, "60s", dir.join("b.log"));
    assert_eq!(held(&b), 64, "{}", b.log_text());
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "taken over in {:?}, not after the 60 s lease",
        stopped.elapsed()
    );
    post_story(&b.addr, 1)?;
    assert!(settle(db, Duration::from_secs(30)), "{}", b.log_text());
    Ok(())
}
