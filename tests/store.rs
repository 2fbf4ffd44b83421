//! The durable store, the outbox runner, the process plugin and
//! `casework run`, including the crash test: `casework run` killed with
//! SIGKILL at random moments, again and again, and nothing acknowledged is
//! lost, nothing is executed twice, every case equals its replay.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casework::action::Action;
use casework::case::CaseId;
use casework::clock::{Clock, ManualClock};
use casework::engine::{Engine, Outcome};
use casework::event::Event;
use casework::outbox::{OutboxRunner, RetryPolicy};
use casework::plugin::Plugin;
use casework::plugins::Registry;
use casework::store::{ActionStatus, SqliteStore, Store};
use casework_process::{ProcessPlugin, ProcessSettings};
use serde_json::json;

use crate::util::{casework, root, scratch};

/// The ledger test pack, written into `dir` with its paths made absolute,
/// so the plugin's ledger (relative to the configuration) lands in `dir`.
fn ledger_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("tests/fixtures/ledger/casework.yaml"))
        .expect("the ledger fixture");
    let text = text.replace("../../../", &format!("{}/", root().display()));
    let path = dir.join("casework.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ledger_plugin(dir: &Path, timeout: Duration) -> ProcessPlugin {
    ProcessPlugin::new(
        "ledger",
        ProcessSettings {
            command: vec![
                "python3".into(),
                root()
                    .join("examples/plugins/ledger.py")
                    .display()
                    .to_string(),
                "--ledger".into(),
                "ledger.log".into(),
            ],
            actions: vec!["record".into()],
            timeout,
            dir: dir.to_owned(),
        },
    )
}

fn action(id: &str, action: &str, params: serde_json::Value) -> Action {
    Action {
        id: id.into(),
        case: CaseId("C-1".into()),
        action: action.into(),
        params,
        requested_at: "2026-11-25T10:00:00+09:00".parse().unwrap(),
        event: "e1".into(),
        requested_by: "test".into(),
    }
}

fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_process_plugin_executes_once_per_key_and_survives_a_bad_process() {
    let dir = scratch("process-plugin");
    let plugin = ledger_plugin(&dir, Duration::from_millis(1500));
    let done = plugin
        .execute(&action("a/1", "ledger.record", json!({"note": "hello"})))
        .unwrap();
    assert_eq!(done.result["first_time"], json!(true));
    // The plugin's event gets an id from the action and the action's case.
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].id.0, "a/1:0");
    assert_eq!(done.events[0].case, Some(CaseId("C-1".into())));
    // The same key again: answered, not done again.
    let again = plugin
        .execute(&action("a/1", "ledger.record", json!({})))
        .unwrap();
    assert_eq!(again.result["first_time"], json!(false));
    assert_eq!(file_lines(&dir.join("ledger.log")), ["a/1"]);

    let e = plugin
        .execute(&action("a/2", "ledger.fail", json!({})))
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");

    // A hang, garbage and a crash: each killed, reported as transient with
    // what happened, and the next request gets a fresh process.
    for (act, says) in [
        ("ledger.hang", "no answer within 1s 500ms"),
        ("ledger.garbage", "not a reply line"),
        ("ledger.crash", "without answering"),
    ] {
        let e = plugin
            .execute(&action(&format!("{act}/x"), act, json!({})))
            .unwrap_err();
        assert!(e.is_transient(), "{act}: {e}");
        assert!(e.to_string().contains(says), "{act}: {e}");
        assert!(e.to_string().contains("restarted"), "{act}: {e}");
        let ok = plugin
            .execute(&action(&format!("after-{act}"), "ledger.record", json!({})))
            .unwrap();
        assert_eq!(ok.result["first_time"], json!(true));
    }

    let broken = ProcessPlugin::new(
        "nothing",
        ProcessSettings {
            command: vec!["./no-such-program".into()],
            actions: vec![],
            timeout: Duration::from_secs(1),
            dir: dir.clone(),
        },
    );
    let e = broken
        .execute(&action("b/1", "nothing.x", json!({})))
        .unwrap_err();
    assert!(e.is_transient());
    assert!(e.to_string().contains("cannot start"), "{e}");
}

/// An engine on the ledger pack, a SQLite store and a manual clock.
fn ledger_engine(dir: &Path) -> (Engine, Arc<ManualClock>) {
    let config = ledger_config(dir);
    let (pack, rules) = casework::load(Some(&config)).unwrap_or_else(|d| panic!("{d}"));
    let clock = Arc::new(ManualClock::new(
        "2026-11-25T10:00:00+09:00".parse().unwrap(),
    ));
    let store = SqliteStore::open(dir.join("casework.db")).unwrap();
    let engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(Box::new(store))
        .build()
        .unwrap();
    (engine, clock)
}

fn ev(id: &str, kind: &str, case: &str) -> Event {
    Event::new(
        id,
        "2026-11-25T10:00:00+09:00".parse().unwrap(),
        kind,
        Some(CaseId(case.into())),
    )
    .with("agent", "jo")
    .with("text", "hi")
}

#[test]
fn the_outbox_runner_retries_gives_up_and_raises_the_case() {
    let dir = scratch("outbox-runner");
    let (mut engine, clock) = ledger_engine(&dir);
    let config = ledger_config(&dir);
    let loaded = casework::load_config(Some(&config)).unwrap();
    let plugins = Registry::builtin().build(&loaded.def.plugins, &dir);
    assert!(plugins.get("ledger").is_some());
    assert!(plugins.unavailable()["team"].reason.contains("notify"));
    let runner = OutboxRunner::new(plugins, "w1")
        .policy(RetryPolicy {
            base: chrono::Duration::seconds(10),
            factor: 2.0,
            max_delay: chrono::Duration::hours(1),
            max_attempts: 3,
        })
        .clock(clock.clone());

    let results = engine
        .handle_batch(vec![
            ev("m1", "customer.message", "C-1"),
            ev("m2", "customer.call", "C-1"),
            ev("r1", "agent.reply", "C-2"),
            ev("x1", "agent.escalate", "C-3"),
            ev("n1", "agent.note", "C-4").with("text", "notify the team"),
            ev("m1", "customer.message", "C-1"),
        ])
        .unwrap();
    assert!(matches!(results[5], Ok(Outcome::Duplicate)));
    assert_eq!(engine.store().outbox().unwrap().len(), 5);

    let report = runner.run_until_idle(&mut engine).unwrap();
    // record, record (+ its note event), flaky fails once, fail gives up.
    assert_eq!(report.done, 2, "{report:?}");
    assert_eq!(report.retried, 1, "{report:?}");
    assert_eq!(report.gave_up, 1, "{report:?}");
    assert_eq!(report.events, 1);
    let store = engine.store();
    let flaky = store
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.action.action == "ledger.flaky")
        .unwrap();
    assert_eq!(flaky.status, ActionStatus::Pending);
    assert_eq!(flaky.attempts, 1);
    assert!(flaky.last_error.as_deref().unwrap().contains("not yet"));
    assert_eq!(
        flaky.next_attempt_at,
        clock.now() + chrono::Duration::seconds(10)
    );
    // The note the plugin answered with is on the case.
    let events = |case: &str| -> Vec<String> {
        let events = store.events(&CaseId(case.into())).unwrap();
        events.into_iter().map(|a| a.event.id.0).collect()
    };
    let c1 = events("C-1");
    assert!(c1.iter().any(|e| e.ends_with(":0")), "{c1:?}");
    // The failure raised the case: an action.failed event and a task.
    let c3 = store.load(&CaseId("C-3".into())).unwrap().unwrap();
    assert!(
        events("C-3")
            .iter()
            .any(|e| e.starts_with("action.failed:"))
    );
    assert!(c3.tasks.iter().any(|t| t.kind == "action_failed"));
    let failed = store
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.action.action == "ledger.fail")
        .unwrap();
    assert_eq!(failed.status, ActionStatus::GaveUp);
    // `team.notify` has no implementation: left pending, never attempted.
    let notify = store
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.action.action == "team.notify")
        .unwrap();
    assert_eq!((notify.status, notify.attempts), (ActionStatus::Pending, 0));

    // Not due yet; then due, and the flaky action succeeds on attempt 2.
    assert_eq!(runner.run_until_idle(&mut engine).unwrap().attempts, 0);
    clock.advance(chrono::Duration::seconds(10));
    let report = runner.run_until_idle(&mut engine).unwrap();
    assert_eq!((report.attempts, report.done), (1, 1), "{report:?}");
    let entry = engine
        .store()
        .outbox_entry(&flaky.action.id)
        .unwrap()
        .unwrap();
    assert_eq!((entry.status, entry.attempts), (ActionStatus::Done, 2));

    // A transient failure on every attempt ends in gave-up after 3.
    engine
        .handle_batch(vec![ev("h1", "agent.reopen", "C-5")])
        .unwrap();
    let runner = OutboxRunner::new(
        {
            let mut p = casework::plugins::Plugins::default();
            p.insert(Box::new(ledger_plugin(&dir, Duration::from_millis(300))));
            p
        },
        "w2",
    )
    .policy(RetryPolicy {
        base: chrono::Duration::seconds(1),
        factor: 2.0,
        max_delay: chrono::Duration::hours(1),
        max_attempts: 3,
    })
    .clock(clock.clone());
    for _ in 0..3 {
        runner.run_until_idle(&mut engine).unwrap();
        clock.advance(chrono::Duration::seconds(5));
    }
    let hang = engine
        .store()
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.action.action == "ledger.hang")
        .unwrap();
    assert_eq!((hang.status, hang.attempts), (ActionStatus::GaveUp, 3));
    assert!(
        hang.last_error
            .unwrap()
            .contains("gave up after 3 attempts")
    );

    // Every case is its replay.
    for id in engine.store().case_ids().unwrap() {
        let stored = engine.store().load(&id).unwrap().unwrap();
        assert_eq!(engine.replay(&id).unwrap(), stored, "case {id}");
    }
}

#[test]
fn a_batch_sees_its_own_earlier_events_and_a_restart_rebuilds_the_timers() {
    let dir = scratch("batch-restart");
    let (pack, rules) = casework::load(None).unwrap();
    let start: casework::Timestamp = "2026-11-25T10:00:00+09:00".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let db = dir.join("casework.db");
    let mut engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(Box::new(SqliteStore::open(&db).unwrap()))
        .build()
        .unwrap();
    let msg = |id: &str, text: &str| {
        ev(id, "customer.message", "C-1")
            .with("customer", json!({"name": "Jo", "email": "jo@example.com"}))
            .with("text", text)
    };
    let results = engine
        .handle_batch(vec![
            msg("e1", "Where is my parcel?"),
            msg("e2", "Still nothing?"),
            Event::new("bad", start, "no.such.kind", None),
        ])
        .unwrap();
    assert!(results[2].is_err());
    let case = engine.case(&CaseId("C-1".into())).unwrap().unwrap();
    assert_eq!(case.contacts, 2, "the second event saw the first");
    assert_eq!(engine.store().rejected().unwrap().len(), 1);
    let timers = engine.pending_timers().unwrap();
    assert!(timers > 0);
    let next = engine.next_due().unwrap().unwrap();
    drop(engine);

    // A new process: same timers, and they fire on the first tick past due.
    let (pack, rules) = casework::load(None).unwrap();
    let mut engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(Box::new(SqliteStore::open(&db).unwrap()))
        .build()
        .unwrap();
    assert_eq!(engine.pending_timers().unwrap(), timers);
    assert_eq!(engine.next_due().unwrap(), Some(next));
    let fired = engine.tick(next).unwrap();
    assert!(!fired.is_empty());
    let case = engine.case(&CaseId("C-1".into())).unwrap().unwrap();
    assert_eq!(engine.replay(&CaseId("C-1".into())).unwrap(), case);
}

#[test]
fn run_handles_the_shop_day_and_reports_what_it_could_not_do() {
    let dir = scratch("run-shop");
    let db = dir.join("shop.db");
    let db_arg = db.display().to_string();
    let run = casework([
        "run",
        "--events",
        "examples/events/shop.jsonl",
        "--db",
        &db_arg,
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    let out = &run.stdout;
    assert!(out.contains("(new)"), "{out}");
    assert!(out.contains("9 accepted, 0 duplicate, 1 rejected"), "{out}");
    assert!(out.contains("rejected line 7:"), "{out}");
    assert!(
        run.stderr.contains("shop.jsonl:7: rejected"),
        "{}",
        run.stderr
    );
    for case in ["C-100", "C-101", "C-102", "C-103"] {
        assert!(out.contains(case), "{case} in {out}");
    }
    // The events happened on 2026-11-20: deadlines count from then, so
    // the first-reply clocks ran out long before this run; each breach
    // fired as a timer (escalating the case) and nothing else moved.
    let fired: usize = out
        .split(" timers fired")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the summary counts the timers fired");
    assert!(fired > 0, "{out}");
    assert!(out.contains("for order O-77 (at_risk)"), "{out}");
    assert!(out.contains("warehouse.hold pending"), "{out}");
    assert!(out.contains("urgency urgent"), "{out}");
    assert!(out.contains("left pending, not failed"), "{out}");
    // The default pack's warehouse names no API `url`: its hold waits.
    assert!(out.contains("missing field `url`"), "{out}");
    // A quiet first run: the default pack writes the notices to e-mail
    // teams as .eml files into `outbox-mail/` beside the database; nothing
    // gives up, no case is raised.
    assert!(out.contains("0 given up"), "{out}");
    assert!(!out.contains("gave_up"), "{out}");
    assert!(!run.stderr.contains("outbox:"), "{}", run.stderr);
    let mail_dir = dir.join("outbox-mail");
    let notices: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    let done = SqliteStore::open(&db)
        .unwrap()
        .outbox_counts()
        .unwrap()
        .done;
    assert_eq!(notices.len(), done, "one file per notice: {notices:?}");
    assert!(done >= 4, "{out}");
    let notice = std::fs::read_to_string(mail_dir.join(&notices[0])).unwrap();
    assert!(notice.contains("X-Casework-Case: C-10"), "{notice}");

    // Again: everything is a duplicate, the malformed line rejected again.
    let again = casework([
        "run",
        "--events",
        "examples/events/shop.jsonl",
        "--db",
        &db_arg,
    ]);
    assert!(
        again.stdout.contains("0 accepted, 9 duplicate, 1 rejected"),
        "{}",
        again.output()
    );
    let store = SqliteStore::open(&db).unwrap();
    // The 9 accepted events and the timers; no `action.failed`, as
    // nothing gave up.
    assert_eq!(store.outbox_counts().unwrap().gave_up, 0);
    assert_eq!(store.event_count().unwrap(), 9 + fired);
    // Run again, nothing new is sent: the notice files are the same.
    assert_eq!(
        std::fs::read_dir(&mail_dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml")))
            .count(),
        notices.len()
    );
    assert_eq!(store.rejected().unwrap().len(), 2);
    assert!(
        store.rejected().unwrap()[0]
            .event
            .text("raw")
            .unwrap()
            .contains("missing quote")
    );
    drop(store);

    let cases = casework(["cases", "--db", &db_arg, "--at-risk"]);
    assert_eq!(cases.code, 0, "{}", cases.output());
    // C-100 for its promise; the others for their breached first reply.
    for case in ["C-100", "C-101", "C-102", "C-103"] {
        assert!(cases.stdout.contains(case), "{}", cases.output());
    }
    let show = casework(["show", "C-101", "--db", &db_arg]);
    assert_eq!(show.code, 0, "{}", show.output());
    assert!(show.stdout.contains("call_customer"), "{}", show.output());
    let missing = casework(["show", "C-999", "--db", &db_arg]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("casework cases"),
        "{}",
        missing.output()
    );
    let nodb = casework(["cases", "--db", "/nonexistent/x.db"]);
    assert_eq!(nodb.code, 1);
    assert!(nodb.stderr.contains("casework run"), "{}", nodb.output());
}

/// A small deterministic random source (xorshift), seeded per run and
/// printed, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event_line(i: usize) -> String {
    let case = format!("C-{}", i % 37);
    let kind = if i % 10 == 3 {
        "customer.call"
    } else {
        "customer.message"
    };
    json!({
        "id": format!("ev-{i}"),
        "at": "2026-11-25T10:00:00+09:00",
        "kind": kind,
        "case": case,
        "customer": {"name": format!("Customer {}", i % 37), "email": format!("c{}@example.com", i % 37)},
        "text": format!("message number {i}"),
    })
    .to_string()
}

/// Run `casework run` on `lines[from..]` through stdin; with `kill_after`,
/// SIGKILL it that long after its first acknowledgement. Returns the ids
/// acknowledged.
fn run_once(
    config: &Path,
    db: &Path,
    lines: &[String],
    from: usize,
    kill_after: Option<Duration>,
) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_casework"))
        .arg("run")
        .arg(config)
        .args([
            "--events",
            "-",
            "--ack",
            "--lease",
            "1s",
            "--retry-base",
            "100ms",
        ])
        .args(["--drain", if kill_after.is_some() { "0s" } else { "20s" }])
        .arg("--db")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if kill_after.is_some() {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .expect("casework runs");
    let mut stdin = child.stdin.take().unwrap();
    let to_send: Vec<String> = lines[from..].to_vec();
    let writer = std::thread::spawn(move || {
        for chunk in to_send.chunks(50) {
            let mut text = chunk.join("\n");
            text.push('\n');
            if stdin.write_all(text.as_bytes()).is_err() {
                return;
            }
        }
        // Dropping stdin ends the input.
    });
    let acked = Arc::new(Mutex::new(Vec::new()));
    let first_ack = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let acked = acked.clone();
        let first_ack = first_ack.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ack ") {
                    acked.lock().unwrap().push(id.to_owned());
                    let (seen, cv) = &*first_ack;
                    *seen.lock().unwrap() = true;
                    cv.notify_all();
                }
            }
        })
    };
    match kill_after {
        Some(after) => {
            let (seen, cv) = &*first_ack;
            let guard = seen.lock().unwrap();
            let _ = cv
                .wait_timeout_while(guard, Duration::from_secs(20), |s| !*s)
                .unwrap();
            std::thread::sleep(after);
            child.kill().expect("SIGKILL");
            child.wait().unwrap();
        }
        None => {
            let status = child.wait().unwrap();
            assert!(status.success(), "the final run failed: {status}");
        }
    }
    reader.join().unwrap();
    writer.join().unwrap();
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[test]
fn killed_at_random_moments_nothing_acknowledged_is_lost_and_nothing_runs_twice() {
    let started = Instant::now();
    let dir = scratch("crash");
    let config = ledger_config(&dir);
    let db = dir.join("casework.db");
    const EVENTS: usize = 1500;
    const KILLS: usize = 50;
    let lines: Vec<String> = (0..EVENTS).map(event_line).collect();
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let mut acked: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut kills = 0;
    while kills < KILLS {
        // Resend from a little before the first unacknowledged event, so
        // duplicates are exercised too (and, once every event is in, kills
        // still land while the outbox is being worked).
        let from = next.saturating_sub(rng.below(5) as usize + usize::from(next == EVENTS));
        let after = Duration::from_millis(rng.below(120));
        let got = run_once(&config, &db, &lines, from, Some(after));
        kills += 1;
        for id in &got {
            let i: usize = id.trim_start_matches("ev-").parse().unwrap();
            next = next.max(i + 1);
        }
        acked.extend(got);
    }
    // Recovery: the rest of the events, then run until the outbox is empty.
    let got = run_once(&config, &db, &lines, next.min(EVENTS), None);
    acked.extend(got);
    eprintln!(
        "{kills} kills, {} acknowledgements, {:?}",
        acked.len(),
        started.elapsed()
    );

    let store = SqliteStore::open(&db).unwrap();
    // Every acknowledged event is stored; each event id once (a UNIQUE
    // column), all of them after recovery.
    for id in acked.iter().collect::<BTreeSet<_>>() {
        assert!(store.has_event(&id.as_str().into()).unwrap(), "{id} lost");
    }
    let calls = (0..EVENTS).filter(|i| i % 10 == 3).count();
    assert_eq!(
        store.event_count().unwrap(),
        EVENTS + calls,
        "every event once, and one note per call answered by the plugin"
    );

    // Every action done exactly once in the store, and the plugin's
    // effects ledger holds each key exactly once.
    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), EVENTS);
    let not_done: Vec<_> = outbox
        .iter()
        .filter(|e| e.status != ActionStatus::Done)
        .map(|e| format!("{} {} attempts {}", e.action.id, e.status, e.attempts))
        .collect();
    assert!(not_done.is_empty(), "not done: {not_done:?}");
    let ids: HashSet<&str> = outbox.iter().map(|e| e.action.id.as_str()).collect();
    assert_eq!(ids.len(), EVENTS);
    let effects = file_lines(&dir.join("ledger.log"));
    let mut seen = BTreeMap::new();
    for key in &effects {
        *seen.entry(key.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "effects done twice: {twice:?}");
    assert_eq!(
        seen.keys().copied().collect::<HashSet<_>>(),
        ids,
        "the plugin's effects are exactly the requested actions"
    );
    let attempts: u32 = outbox.iter().map(|e| e.attempts).sum();
    let retried = file_lines(&dir.join("ledger.log.attempts")).len() - effects.len();
    eprintln!("{attempts} attempts recorded, {retried} repeated deliveries to the plugin");

    // Every stored case equals the replay of its events.
    let (pack, rules) = casework::load(Some(&config)).unwrap();
    let engine = Engine::builder(pack, rules)
        .store(Box::new(store))
        .build()
        .unwrap();
    for id in engine.store().case_ids().unwrap() {
        let stored = engine.store().load(&id).unwrap().unwrap();
        assert_eq!(engine.replay(&id).unwrap(), stored, "case {id}");
    }
}

/// A store written by the release before constant-cost storage (schema 2:
/// the whole past inside each case row, timers only in memory) opens in
/// this one: the rows are split into present and past, nothing is lost,
/// links thread as before, the timers are rebuilt once, and replay still
/// equals every stored case.
#[test]
fn a_store_from_the_previous_release_is_migrated() {
    let dir = scratch("migrate-v2");
    let db = dir.join("casework.db");
    std::fs::copy("tests/fixtures/stores/v2-shop.db", &db).unwrap();
    let old = rusqlite_counts(&db);
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(
        store.version().unwrap(),
        casework::store::sqlite::schema_version()
    );
    assert_eq!(store.event_count().unwrap(), old.events);
    assert_eq!(store.case_count().unwrap(), old.cases);
    assert_eq!(store.outbox().unwrap().len(), old.actions);
    assert_eq!(store.rejected_count().unwrap(), 1);
    assert!(store.timers_stale().unwrap());
    let c100 = CaseId("C-100".into());
    let case = store.load(&c100).unwrap().unwrap();
    // The counters count the whole past; the row keeps the present.
    assert_eq!(case.event_count, 4);
    assert_eq!(case.message_count, 2);
    assert_eq!(case.inbound_count, 1);
    assert!(case.last_reply_at.is_some());
    let past = store.past(&c100).unwrap();
    assert_eq!(
        past.iter()
            .filter(|p| matches!(p, casework::case::Past::Message(_)))
            .count(),
        2
    );
    assert_eq!(
        store
            .linked_case(&casework::store::Link::Order("O-77"))
            .unwrap(),
        Some(c100.clone())
    );
    let mailed = store
        .linked_case(&casework::store::Link::MessageId(
            "<first-kei@mail.example.com>",
        ))
        .unwrap()
        .expect("the e-mail's Message-ID threads to its case");
    let decisions = store.decisions(&c100).unwrap().len();
    assert!(decisions > 5);
    drop(store);

    // The engine rebuilds the timers once, on its first start.
    let clock = Arc::new(ManualClock::new(
        "2026-11-20T18:00:00+09:00".parse().unwrap(),
    ));
    let (pack, rules) = casework::load(None).unwrap();
    let mut engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(Box::new(SqliteStore::open(&db).unwrap()))
        .build()
        .unwrap();
    assert!(!engine.store().timers_stale().unwrap());
    assert!(engine.pending_timers().unwrap() > 0);
    assert_eq!(engine.story(&c100).unwrap().history.len(), decisions);
    for id in engine.store().case_ids().unwrap() {
        let stored = engine.case(&id).unwrap().unwrap();
        assert_eq!(engine.replay(&id).unwrap(), stored, "replay of {id}");
    }
    // A reply to the old e-mail still finds its case.
    let reply = Event::from_json(
        r#"{"id":"reply-1","at":"2026-11-20T18:00:00+09:00","kind":"email.received",
            "in_reply_to":["<first-kei@mail.example.com>"],"from":"kei@example.com",
            "text":"Any news?"}"#,
    )
    .unwrap();
    match engine.handle(reply).unwrap() {
        Outcome::Handled { case, .. } => assert_eq!(case, mailed),
        other => panic!("{other:?}"),
    }
}

struct OldCounts {
    events: usize,
    cases: usize,
    actions: usize,
}

/// What the fixture holds, read with SQL before the migration runs.
fn rusqlite_counts(db: &Path) -> OldCounts {
    let conn = rusqlite::Connection::open(db).unwrap();
    let count = |table: &str| -> usize {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    };
    OldCounts {
        events: count("events"),
        cases: count("cases"),
        actions: count("outbox"),
    }
}

#[test]
fn an_unreachable_postgres_is_reported_with_what_to_do() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    let run = crate::util::casework([
        "cases",
        "--db",
        "postgres://casework:secret@127.0.0.1:1/shop",
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stderr
            .contains("postgres://casework:***@127.0.0.1:1/shop")
            && run.stderr.contains("check that PostgreSQL is running"),
        "{}",
        run.output()
    );
    assert!(
        !run.stderr.contains("secret"),
        "the password is never shown"
    );
}
