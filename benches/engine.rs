//! The engine's throughput, in one run, next to the bare rule evaluation
//! it is built on:
//!
//! 1. end-to-end events per second in memory with the default pack on
//!    100,000 cases (four events each: a message, a delivery promise, a
//!    shipping plan that puts the promise at risk, a carrier ETA), handed
//!    to the engine in batches of `BATCH` (200) events as they arrive;
//! 2. the same rule calls (route + urgency + check_promise per open
//!    promise) on the same cases, without the engine around them, so the
//!    engine's own overhead shows as a ratio; then each of the three
//!    rules alone (every case here has one promise, so one
//!    `check_promise` call per case), the median of 15 passes;
//! 3. the same events, the same batches, into a SQLite file (WAL,
//!    `synchronous=FULL`) with group commit: one transaction, one sync,
//!    per batch;
//! 4. `tick` with 1,000,000 open promises of which 1,000 are due.
//!
//! `cargo bench --bench engine` (release build). `CASES=10000` and
//! `PROMISES=100000` make it quicker. Besides the table it prints one
//! machine-readable line per figure, `BENCH <key> <value> <unit> <label>`,
//! which `scripts/bench` collects.

/// The allocator the `casework` binary runs with (src/main.rs), so the
/// figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casework::Timestamp;
use casework::case::{Case, CaseId, StateId};
use casework::clock::ManualClock;
use casework::engine::{Engine, Outcome};
use casework::event::Event;
use casework::promise::{Promise, PromiseSpec};
use casework::rules::{CustomerStats, RuleInput};
use casework::store::{Accepted, Commit, MemoryStore, SqliteStore, Store};
use chrono::Duration as Span;
use serde_json::json;

const TEXTS: &[&str] = &[
    "Where is my parcel? The delivery is late.",
    "サイズが合わないので交換できますか？",
    "I was charged twice, please refund the second payment.",
    "注文の方法が分からなかったので、こちらから注文させてください。至急の納期を希望します。",
    "Can you tell me when the table ships? We need it by Friday.",
    "請求書の金額が間違っています。",
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start() -> Timestamp {
    "2026-11-25T10:00:00+09:00".parse().unwrap()
}

/// The four events of case `i`, `at` onwards.
fn case_events(i: usize, at: Timestamp) -> [Event; 4] {
    let case = Some(CaseId(format!("C-{i}")));
    let order = format!("O-{i}");
    let promised = (at + Span::days(40)).date_naive();
    let mut planned = Event::new(
        format!("w{i}"),
        at + Span::days(14),
        "warehouse.planned",
        None,
    )
    .with("ship_date", (at + Span::days(15)).date_naive());
    planned.order = Some(order.clone().into());
    let mut eta = Event::new(format!("e{i}"), at + Span::days(16), "carrier.eta", None)
        .with("eta", (at + Span::days(18)).date_naive());
    eta.order = Some(order.clone().into());
    [
        Event::new(format!("m{i}"), at, "customer.message", case.clone())
            .with("text", TEXTS[i % TEXTS.len()])
            .with("channel", "email")
            .with(
                "customer",
                json!({"name": format!("Customer {i}"), "email": format!("c{i}@example.com")}),
            ),
        Event::new(
            format!("p{i}"),
            at + Span::minutes(20),
            "agent.promise",
            case,
        )
        .with("agent", "jeniffer")
        .with(
            "promise",
            json!({"id": "P-1", "kind": "deliver_on", "date": promised,
                       "window": {"from": promised - Span::days(1), "to": promised + Span::days(2)},
                       "order": order}),
        ),
        planned,
        eta,
    ]
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Every case's events, in the order they happen.
fn all_events(cases: usize) -> Vec<Event> {
    let mut events: Vec<Event> = (0..cases)
        .flat_map(|i| case_events(i, start() + Span::seconds(i as i64)))
        .collect();
    events.sort_by_key(|e| e.at);
    events
}

/// Feed `events` to a fresh engine on `store`, `batch` at a time, each
/// batch at the time of its last event (as a front end that collects
/// what arrived and commits it together would). Returns the engine, the
/// time taken and the number of decisions recorded.
fn run(store: Box<dyn Store>, events: Vec<Event>, batch: usize) -> (Engine, Duration, usize) {
    let (pack, rules) = casework::load(None).expect("default pack");
    let clock = Arc::new(ManualClock::new(start()));
    let mut engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(store)
        .build()
        .unwrap();
    let mut events = events.into_iter().peekable();
    let mut decisions = 0usize;
    let began = Instant::now();
    while events.peek().is_some() {
        let chunk: Vec<Event> = events.by_ref().take(batch).collect();
        clock.set(chunk[chunk.len() - 1].at);
        for outcome in engine.handle_batch(chunk).unwrap() {
            if let Ok(Outcome::Handled { decisions: d, .. }) = outcome {
                decisions += d.len();
            }
        }
    }
    (engine, began.elapsed(), decisions)
}

/// Passes over the cases when timing each rule alone, and the cases one
/// pass takes.
const RULE_PASSES: usize = 15;
const RULE_CASES: usize = 1_000;

/// What one call of each rule costs on its own, in µs (the bare figure
/// above is a mix of them).
struct RuleCosts {
    route: f64,
    urgency: f64,
    check_promise: f64,
}

impl RuleCosts {
    fn measure(
        rules: &casework::rules::RuleSet,
        cases: &[Case],
        probe: &Event,
        stats: &CustomerStats,
    ) -> RuleCosts {
        // The median of several passes: this machine's speed wanders.
        let time = |call: &dyn Fn(&RuleInput)| {
            let mut passes: Vec<f64> = (0..RULE_PASSES)
                .map(|_| {
                    let began = Instant::now();
                    for case in cases.iter().take(RULE_CASES) {
                        call(&RuleInput {
                            case,
                            event: Some(probe),
                            now: case.updated_at,
                            customer: stats,
                        });
                    }
                    began.elapsed().as_secs_f64() * 1e6 / cases.len().clamp(1, RULE_CASES) as f64
                })
                .collect();
            passes.sort_by(f64::total_cmp);
            passes[passes.len() / 2]
        };
        RuleCosts {
            route: time(&|input| {
                black_box(rules.route(input).ok());
            }),
            urgency: time(&|input| {
                black_box(rules.urgency(input).ok());
            }),
            check_promise: time(&|input| {
                for p in &input.case.promises {
                    black_box(rules.check_promise(p, input).ok());
                }
            }),
        }
    }
}

/// One machine-readable figure for `scripts/bench`.
fn bench_line(key: &str, value: f64, unit: &str, label: &str) {
    println!("BENCH {key} {value:.3} {unit} {label}");
}

fn main() {
    let cases = env("CASES", 100_000);
    let promises = env("PROMISES", 1_000_000);
    let due = env("DUE", 1_000);
    let batch = env("BATCH", 200).max(1);
    println!(
        "casework engine benchmark ({cases} cases, batches of {batch}; tick over {promises} promises, {due} due)\n"
    );

    // 1. End to end, in memory.
    let (engine, engine_time, decisions) =
        run(Box::new(MemoryStore::new()), all_events(cases), batch);
    let n = cases * 4;
    let engine_rate = per_second(n, engine_time);

    // 2. The same rule calls the engine made for those events (route on
    //    the message; urgency on every event; check_promise on the open
    //    promise after the promise is made), on the finished cases,
    //    without the engine around them.
    let rules = engine.rules().current();
    let store = engine.store();
    let ids = store.case_ids().unwrap();
    let stats = CustomerStats::default();
    let loaded: Vec<Case> = ids
        .iter()
        .map(|id| store.load(id).unwrap().unwrap())
        .collect();
    let probe = Event::new("probe", start(), "customer.message", None).with("text", TEXTS[0]);
    let began = Instant::now();
    for case in &loaded {
        let input = RuleInput {
            case,
            event: Some(&probe),
            now: case.updated_at,
            customer: &stats,
        };
        for n in 0..4 {
            if n == 0 {
                black_box(rules.route(&input).ok());
            } else {
                for p in &case.promises {
                    black_box(rules.check_promise(p, &input).ok());
                }
            }
            black_box(rules.urgency(&input).ok());
        }
    }
    let rules_time = began.elapsed();
    let rules_rate = per_second(loaded.len() * 4, rules_time);
    let each = RuleCosts::measure(&rules, &loaded, &probe, &stats);
    drop(loaded);
    drop(engine);

    // 3. The same events into SQLite, group commit.
    let dir = std::env::temp_dir().join(format!("casework-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = SqliteStore::open(dir.join("bench.db")).unwrap();
    let (engine, sqlite_time, sqlite_decisions) = run(Box::new(sqlite), all_events(cases), batch);
    let sqlite_rate = per_second(n, sqlite_time);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        sqlite_decisions, decisions,
        "the SQLite run decides as the in-memory one"
    );

    // 4. tick over a million open promises.
    let (pack, rules) = casework::load(None).expect("default pack");
    let t0 = start();
    let mut store = MemoryStore::new();
    let began = Instant::now();
    for i in 0..promises {
        let id = CaseId(format!("T-{i}"));
        let mut case = Case::open(id.clone(), t0, StateId::from("scheduled"));
        let by = if i < due {
            t0 + Span::minutes(30)
        } else {
            t0 + Span::days(30)
        };
        let spec: PromiseSpec = serde_json::from_value(json!({
            "id": "P-1", "kind": "callback_by", "by": by.to_rfc3339()
        }))
        .unwrap();
        case.promises
            .push(Promise::make(&spec, "ken", t0, None, chrono_tz::Asia::Tokyo).unwrap());
        case.event_count = 1;
        let event = Event::new(format!("seed-{i}"), t0, "agent.promise", Some(id.clone()));
        let timers = casework::engine::case_timers(&pack, &case, t0);
        store
            .commit(Commit {
                accepted: Accepted {
                    event,
                    case: id,
                    handled_at: t0,
                    customer: CustomerStats::default(),
                    ruleset: None,
                    pack: None,
                },
                case,
                decisions: Vec::new(),
                actions: Vec::new(),
                past: Vec::new(),
                timers,
                links: Vec::new(),
                open: true,
            })
            .unwrap();
    }
    let seed_time = began.elapsed();
    let began = Instant::now();
    let clock = Arc::new(ManualClock::new(t0));
    let mut engine = Engine::builder(pack, rules)
        .clock(clock)
        .store(Box::new(store))
        .build()
        .unwrap();
    let index_time = began.elapsed();
    let timers = engine.pending_timers().unwrap();
    let began = Instant::now();
    let fired = engine.tick(t0 + Span::hours(1)).unwrap().len();
    let tick_time = began.elapsed();
    let began = Instant::now();
    let idle = engine.tick(t0 + Span::hours(2)).unwrap().len();
    let idle_time = began.elapsed();

    let us_per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| engine, end to end in memory ({n} events, {cases} cases, {decisions} decisions) | {:.0} events/s ({:.1} µs/event) |",
        engine_rate,
        us_per(engine_time, n)
    );
    println!(
        "| the same rule calls, bare (no engine around them) | {:.0} events/s ({:.1} µs/event) |",
        rules_rate,
        us_per(rules_time, ids.len() * 4)
    );
    println!(
        "| engine time / bare rule time, per event | {:.2} |",
        us_per(engine_time, n) / us_per(rules_time, ids.len() * 4)
    );
    println!(
        "| one call each, bare: route / urgency / check_promise | {:.1} / {:.1} / {:.1} µs |",
        each.route, each.urgency, each.check_promise
    );
    println!(
        "| engine, end to end in SQLite, group commit of {batch} | {:.0} events/s ({:.1} µs/event) |",
        sqlite_rate,
        us_per(sqlite_time, n)
    );
    println!(
        "| seeding {promises} cases with an open promise (store only) | {:.2} s |",
        seed_time.as_secs_f64()
    );
    println!(
        "| starting the engine on the store ({timers} timers) | {:.2} s |",
        index_time.as_secs_f64()
    );
    println!(
        "| tick with {promises} open promises, {fired} due | {:.1} ms ({:.1} µs per due promise) |",
        tick_time.as_secs_f64() * 1e3,
        us_per(tick_time, fired)
    );
    println!(
        "| tick with {promises} open promises, {idle} due | {:.3} ms |",
        idle_time.as_secs_f64() * 1e3
    );
    println!();
    bench_line(
        "e2e.memory",
        engine_rate,
        "events/s",
        &format!("engine end to end, in memory ({n} events, batches of {batch})"),
    );
    bench_line(
        "e2e.sqlite",
        sqlite_rate,
        "events/s",
        &format!("engine end to end, SQLite, group commit of {batch}"),
    );
    bench_line(
        "rules.bare",
        rules_rate,
        "events/s",
        "the same rule calls, bare (no engine around them)",
    );
    for (key, us) in [
        ("rules.route", each.route),
        ("rules.urgency", each.urgency),
        ("rules.check_promise", each.check_promise),
    ] {
        let name = key.trim_start_matches("rules.");
        bench_line(
            key,
            us,
            "us",
            &format!("one {name} call, bare (median of {RULE_PASSES} passes)"),
        );
    }
    bench_line(
        "index.rebuild",
        index_time.as_secs_f64() * 1e3,
        "ms",
        &format!("engine start on a store with {timers} timers"),
    );
    bench_line(
        "tick.due",
        tick_time.as_secs_f64() * 1e3,
        "ms",
        &format!("tick, {promises} open promises, {fired} due"),
    );
    bench_line(
        "tick.idle",
        idle_time.as_secs_f64() * 1e3,
        "ms",
        &format!("tick, {promises} open promises, {idle} due"),
    );
    bench_line(
        "tick.fired",
        fired as f64,
        "promises",
        "promises the tick fired",
    );
    assert_eq!(fired, due, "every due promise fires once");
}
