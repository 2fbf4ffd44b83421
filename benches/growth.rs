//! Cost against history, in one run: does an event cost the same on a
//! case's 4,000th event as on its 10th, and does a store of a million open
//! cases start as fast as an empty one?
//!
//! 1. **One case, growing.** A customer writes 4,000 times (an agent
//!    answers every fifth message); each event is handled and committed on
//!    its own, in memory and in SQLite. The median time of the events
//!    around the 10th is compared with the median around the 4,000th.
//! 2. **`casework run`, whole runs.** JSON Lines files for one case with
//!    4,000 events, and for 4,000 and 16,000 events on distinct cases, are
//!    written to `target/bench/`; `scripts/bench` runs the release binary
//!    on each under `/usr/bin/time` (time and peak memory).
//! 3. **Start-up at scale.** `SEED` open cases (default 1,000,000), each
//!    opened by a customer's message through the engine (so each carries
//!    its timers: the state timeout and the SLA warnings and breaches), in
//!    a SQLite file; then the time to open the store and build the engine,
//!    the time for `casework serve` on that file to answer `/health`, and
//!    the serve process's memory per open case.
//!
//! `cargo bench --bench growth` (release). `EVENTS=1000 SEED=100000` is
//! quicker. Prints a table and `BENCH <key> <value> <unit> <label>` lines
//! for `scripts/bench`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casework::Timestamp;
use casework::case::CaseId;
use casework::clock::{Clock, ManualClock};
use casework::engine::Engine;
use casework::event::Event;
use casework::store::{MemoryStore, SqliteStore, Store};
use chrono::Duration as Span;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_line(key: &str, value: f64, unit: &str, label: &str) {
    println!("BENCH {key} {value:.3} {unit} {label}");
}

fn start() -> Timestamp {
    "2026-11-25T10:00:00+09:00".parse().unwrap()
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `n`th event of one customer's long case: mostly their messages,
/// every fifth an agent's reply.
fn long_case_event(n: usize, at: Timestamp) -> Event {
    let case = Some(CaseId::from("C-long"));
    if n % 5 == 4 {
        Event::new(format!("r{n}"), at, "agent.reply", case)
            .with("agent", "ken")
            .with("text", "We are looking into it.")
    } else {
        Event::new(format!("m{n}"), at, "customer.message", case)
            .with("text", "Where is my parcel? It still has not arrived.")
            .with("channel", "email")
            .with(
                "customer",
                json!({"name": "Jo Tanaka", "email": "jo@example.com"}),
            )
    }
}

fn engine_on(store: Box<dyn Store>, clock: Arc<ManualClock>) -> Engine {
    let (pack, rules) = casework::load(None).expect("default pack");
    Engine::builder(pack, rules)
        .clock(clock)
        .store(store)
        .build()
        .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Handle `events` events of one case one by one; the median time of the
/// events around the 10th and around the last.
fn one_case(store: Box<dyn Store>, events: usize) -> (Duration, Duration) {
    let clock = Arc::new(ManualClock::new(start()));
    let mut engine = engine_on(store, clock.clone());
    let mut times = Vec::with_capacity(events);
    for n in 0..events {
        let at = start() + Span::minutes(n as i64);
        clock.set(at);
        let event = long_case_event(n, at);
        let began = Instant::now();
        engine.tick(at).unwrap();
        engine.handle(event).unwrap();
        times.push(began.elapsed());
    }
    let early = median(times[..21.min(events)].to_vec());
    let late = median(times[events.saturating_sub(21)..].to_vec());
    (early, late)
}

/// JSON Lines for `casework run`: one case with `n` events, or `n` cases
/// with one message each. Written at the current time: deadlines count
/// from when a customer wrote, and these are written now.
fn write_events(path: &Path, n: usize, distinct: bool) {
    let now = chrono::Utc::now().fixed_offset();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let at = now + Span::milliseconds(i as i64);
        let event = if distinct {
            Event::new(
                format!("d{i}"),
                at,
                "customer.message",
                Some(CaseId(format!("C-{i}"))),
            )
            .with("text", "Where is my parcel?")
            .with("customer", json!({"email": format!("c{i}@example.com")}))
        } else {
            long_case_event(i, at)
        };
        writeln!(out, "{}", serde_json::to_string(&event).unwrap()).unwrap();
    }
}

/// Seed `cases` open cases into a SQLite file through the engine, in
/// batches of 2,000 events; the number of timers they hold.
fn seed(db: &Path, cases: usize) -> usize {
    // Written now: `serve` must find nothing overdue when it starts, or
    // its first tick (a catch-up of every timer) is what gets measured.
    let now = chrono::Utc::now().fixed_offset();
    let clock = Arc::new(ManualClock::new(now));
    let mut engine = engine_on(Box::new(SqliteStore::open(db).unwrap()), clock.clone());
    let mut i = 0;
    while i < cases {
        let batch: Vec<Event> = (i..(i + 2_000).min(cases))
            .map(|i| {
                Event::new(
                    format!("s{i}"),
                    now,
                    "customer.message",
                    Some(CaseId(format!("C-{i}"))),
                )
                .with("text", "サイズが合わないので交換できますか？")
                .with("customer", json!({"email": format!("c{i}@example.com")}))
            })
            .collect();
        i += batch.len();
        engine.handle_batch(batch).unwrap();
    }
    engine.pending_timers().unwrap()
}

/// Resident memory of a process, in KiB (from /proc).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Start `casework serve` on `db`; the time until `/health` answers, and
/// the process's resident memory then.
fn serve_start(db: &Path) -> (Duration, u64) {
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("casework serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve said {line:?}"))
        .to_owned();
    let mut answer = String::new();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream.read_to_string(&mut answer).unwrap();
    let took = began.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let rss = rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    (took, rss)
}

fn main() {
    let events = env("EVENTS", 4_000);
    let seed_cases = env("SEED", 1_000_000);
    let dir = out_dir();
    println!("casework growth benchmark ({events} events on one case; {seed_cases} open cases)\n");

    // 1. One case, growing.
    let (mem_early, mem_late) = one_case(Box::new(MemoryStore::new()), events);
    let db = dir.join("growth-one-case.db");
    let _ = std::fs::remove_file(&db);
    let (sql_early, sql_late) = one_case(Box::new(SqliteStore::open(&db).unwrap()), events);
    let row_bytes = SqliteStore::open(&db)
        .unwrap()
        .load(&CaseId::from("C-long"))
        .unwrap()
        .map(|c| serde_json::to_vec(&c).unwrap().len())
        .unwrap_or(0);

    // 2. Files for whole runs of the binary (scripts/bench times them).
    write_events(&dir.join("one-case-4000.jsonl"), 4_000, false);
    write_events(&dir.join("distinct-4000.jsonl"), 4_000, true);
    write_events(&dir.join("distinct-16000.jsonl"), 16_000, true);

    // 3. Start-up on a store of many open cases.
    let big = dir.join(format!("growth-{seed_cases}-cases.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", big.display()));
    }
    let began = Instant::now();
    let timers = seed(&big, seed_cases);
    let seed_time = began.elapsed();
    let began = Instant::now();
    let clock = Arc::new(ManualClock::new(start()));
    let engine = engine_on(Box::new(SqliteStore::open(&big).unwrap()), clock.clone());
    let build = began.elapsed();
    let began = Instant::now();
    let next = engine.next_due().unwrap();
    let counted = engine.store().case_count().unwrap();
    let asked = began.elapsed();
    drop(engine);
    let (serve_time, serve_rss) = serve_start(&big);
    let per_case = serve_rss as f64 * 1024.0 / seed_cases.max(1) as f64;
    let _ = clock.now();

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| one case, in memory: event ~10 / event ~{events} | {:.1} µs / {:.1} µs ({:.2}×) |",
        us(mem_early),
        us(mem_late),
        us(mem_late) / us(mem_early)
    );
    println!(
        "| one case, SQLite (a commit per event): event ~10 / event ~{events} | {:.1} µs / {:.1} µs ({:.2}×) |",
        us(sql_early),
        us(sql_late),
        us(sql_late) / us(sql_early)
    );
    println!("| the case's stored row after {events} events | {row_bytes} bytes |");
    println!(
        "| seeding {seed_cases} open cases ({timers} timers) through the engine into SQLite | {:.1} s |",
        seed_time.as_secs_f64()
    );
    println!(
        "| opening that store and building the engine | {:.1} ms (next timer {next:?}, {counted} cases, asked in {:.2} ms) |",
        build.as_secs_f64() * 1e3,
        asked.as_secs_f64() * 1e3
    );
    println!(
        "| `casework serve` on it: start to first `/health` answer | {:.0} ms |",
        serve_time.as_secs_f64() * 1e3
    );
    println!(
        "| `casework serve` resident memory then | {:.1} MiB ({per_case:.1} bytes per open case) |",
        serve_rss as f64 / 1024.0
    );
    println!();
    bench_line(
        "growth.memory",
        us(mem_late) / us(mem_early),
        "x",
        &format!("one case in memory: event {events} / event 10"),
    );
    bench_line(
        "growth.sqlite",
        us(sql_late) / us(sql_early),
        "x",
        &format!("one case in SQLite: event {events} / event 10"),
    );
    bench_line(
        "growth.row",
        row_bytes as f64,
        "bytes",
        &format!("stored case row after {events} events"),
    );
    bench_line(
        "start.engine",
        build.as_secs_f64() * 1e3,
        "ms",
        &format!("engine start on {seed_cases} open cases, {timers} timers"),
    );
    bench_line(
        "start.serve",
        serve_time.as_secs_f64() * 1e3,
        "ms",
        &format!("casework serve on {seed_cases} open cases: start to /health"),
    );
    bench_line(
        "start.per_case",
        per_case,
        "bytes",
        "serve's resident memory per open case",
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", big.display()));
    }
}
