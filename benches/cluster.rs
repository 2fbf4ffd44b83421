//! Workers on one PostgreSQL database, as `casework serve` processes
//! (release build), against one worker on SQLite in the same run:
//!
//! - events/s through `POST /events` for 1, 2 and 4 workers on
//!   PostgreSQL and 1 on SQLite (each event opens a case, so the cases
//!   spread over the partitions; the time runs until every event is
//!   handled, inbox drained, and every action the events asked for is
//!   done: on SQLite the outbox runs behind the requests, so counting
//!   only stored events would leave most of its work out);
//! - failover: a worker is SIGKILLed and an event for one of its
//!   partitions is posted to another at once; the time until that event
//!   is handled, p50 and max over `KILLS` kills (default 20), with the
//!   default 5 s lease.
//!
//! `CASEWORK_BENCH_PG` (else `CASEWORK_TEST_PG`) names the server; the
//! bench creates a database per measurement and drops it. Run with
//! `cargo bench --bench cluster` or `scripts/bench cluster`. The number
//! of cores is printed: on 2 cores, workers compete with PostgreSQL and
//! with each other, so more workers cannot show scaling there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use casework::engine::opening_case_id;
use casework::event::EventId;
use casework::store::postgres::partition_of;
use serde_json::{Value, json};

struct Worker {
    child: Child,
    addr: String,
}

impl Worker {
    fn start(db: &str, dir: &Path, lease: &str) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(["--partition-lease", lease, "--threads", "8"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("casework serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().trim_start_matches("listening on ").to_owned();
        Worker { child, addr }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(addr: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let method = if body.is_empty() { "GET" } else { "POST" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn message(id: &str) -> Value {
    json!({"id": id, "at": chrono::Utc::now().to_rfc3339(), "kind": "customer.message",
           "customer": {"name": "Bench", "email": format!("{id}@example.com")},
           "channel": "chat", "text": "Where is my package? It still has not arrived."})
}

/// A database of its own on the server.
struct Database {
    admin: String,
    name: String,
    url: String,
    /// One connection for the bench's own questions: a connection per
    /// question would fork a server process each time, on the cores
    /// being measured.
    asker: std::sync::Mutex<Option<postgres::Client>>,
}

impl Database {
    fn create(server: &str, name: &str) -> Database {
        let name = format!("casework_bench_{name}_{}", std::process::id());
        let mut c = postgres::Client::connect(server, postgres::NoTls).expect("the server");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = &server[..server.rfind('/').unwrap()];
        Database {
            admin: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
            asker: std::sync::Mutex::new(None),
        }
    }

    fn count(&self, sql: &str) -> i64 {
        let mut asker = self.asker.lock().unwrap();
        let c = asker
            .get_or_insert_with(|| postgres::Client::connect(&self.url, postgres::NoTls).unwrap());
        c.query_one(sql, &[]).unwrap().get(0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Our own connection first: DROP ... WITH (FORCE) would end it.
        drop(self.asker.lock().map(|mut a| a.take()));
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Post `events` events in batches of `batch` from 4 client threads,
/// spread over `addrs`; the time until all are handled and the actions
/// they asked for are done (`finished` answers how many events are
/// handled and how many actions are still pending).
fn throughput(
    addrs: &[String],
    events: usize,
    batch: usize,
    finished: impl Fn() -> (usize, usize),
) -> f64 {
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let addrs = addrs.to_vec();
            let run = format!("{}-{c}", started.elapsed().as_nanos());
            std::thread::spawn(move || {
                let mut n = 0;
                let mut k = 0;
                while n < events / 4 {
                    let body: Vec<Value> = (0..batch.min(events / 4 - n))
                        .map(|i| message(&format!("b{run}-{}", n + i)))
                        .collect();
                    let len = body.len();
                    let addr = &addrs[(c + k) % addrs.len()];
                    match post(addr, "/events", &Value::Array(body).to_string()) {
                        Some((202, _)) => n += len,
                        other => panic!("POST /events: {other:?}"),
                    }
                    k += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    while finished() != (events / 4 * 4, 0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    (events / 4 * 4) as f64 / started.elapsed().as_secs_f64()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("casework-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let Some(server) = std::env::var("CASEWORK_BENCH_PG")
        .or_else(|_| std::env::var("CASEWORK_TEST_PG"))
        .ok()
    else {
        eprintln!(
            "cluster bench: set CASEWORK_BENCH_PG (or CASEWORK_TEST_PG) to a PostgreSQL server's URL"
        );
        return;
    };
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(8000);
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(20);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cluster bench: {events} events per run (each opens a case), batches of 50, 4 clients; {cores} cores, PostgreSQL on the same machine"
    );

    let dir = scratch("sqlite");
    let sqlite_rate = {
        let db = dir.join("casework.db");
        let w = Worker::start(db.to_str().unwrap(), &dir, "5s");
        let addr = vec![w.addr.clone()];
        throughput(&addr, events, 50, || {
            let (_, health) = post(&w.addr, "/health", "").expect("health");
            let count = |v: &Value| v.as_u64().unwrap_or(0) as usize;
            (
                count(&health["events"]),
                count(&health["outbox"]["pending"]),
            )
        })
    };
    println!("  SQLite, 1 worker:      {sqlite_rate:>8.0} events/s");
    let mut one = 0.0;
    // `WORKERS=1` (a comma-separated list) measures fewer setups.
    let setups: Vec<usize> = std::env::var("WORKERS")
        .ok()
        .map(|w| w.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    for workers in setups {
        let db = Database::create(&server, &format!("w{workers}"));
        let dir = scratch(&format!("pg{workers}"));
        let ws: Vec<Worker> = (0..workers)
            .map(|_| Worker::start(&db.url, &dir, "5s"))
            .collect();
        // Let the workers share the partitions out.
        std::thread::sleep(Duration::from_secs(if workers > 1 { 4 } else { 1 }));
        let addrs: Vec<String> = ws.iter().map(|w| w.addr.clone()).collect();
        let rate = throughput(&addrs, events, 50, || {
            let handled = db.count("SELECT COUNT(*) FROM events") as usize;
            let pending = db.count("SELECT COUNT(*) FROM outbox WHERE status = 'pending'");
            (handled, pending as usize)
        });
        if workers == 1 {
            one = rate;
        }
        println!(
            "  PostgreSQL, {workers} worker{}: {rate:>8.0} events/s",
            if workers == 1 { " " } else { "s" }
        );
    }
    println!(
        "  PostgreSQL 1 worker / SQLite 1 worker: {:.2}×",
        one / sqlite_rate
    );

    if kills == 0 {
        return;
    }
    // Failover.
    let db = Database::create(&server, "failover");
    let dir = scratch("failover");
    let mut ws: Vec<Worker> = (0..3).map(|_| Worker::start(&db.url, &dir, "5s")).collect();
    std::thread::sleep(Duration::from_secs(6));
    let mut times = Vec::new();
    for k in 0..kills {
        let victim = k % 3;
        let (_, health) = post(&ws[victim].addr, "/health", "").expect("health");
        let held: Vec<u32> = health["cluster"]["partitions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["partition"].as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default();
        let Some(target) = held.first().copied() else {
            eprintln!("worker {victim} holds no partition yet; skipped");
            std::thread::sleep(Duration::from_secs(3));
            continue;
        };
        // An event id whose new case falls in the victim's partition.
        let id = (0..)
            .map(|i| format!("f{k}-{i}"))
            .find(|id| partition_of(&opening_case_id(&EventId(id.clone())), 64) == target)
            .unwrap();
        let other = ws[(victim + 1) % 3].addr.clone();
        let killed = Instant::now();
        let _ = ws[victim].child.kill();
        let _ = ws[victim].child.wait();
        let (status, _) = post(&other, "/events", &message(&id).to_string()).expect("posted");
        assert_eq!(status, 202);
        let sql = format!("SELECT COUNT(*) FROM events WHERE id = '{id}'");
        while db.count(&sql) == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(killed.elapsed().as_secs_f64());
        ws[victim] = Worker::start(&db.url, &dir, "5s");
        // Let the restarted worker take its share back.
        std::thread::sleep(Duration::from_secs(7));
    }
    times.sort_by(f64::total_cmp);
    if !times.is_empty() {
        println!(
            "  failover (kill → first event of a moved partition handled), lease 5 s, {} kills: p50 {:.2} s, max {:.2} s",
            times.len(),
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
}
