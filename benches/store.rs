//! Durable events per second: the default pack's engine writing to a
//! SQLite file (WAL, synchronous=FULL) with group commit (one transaction
//! per batch of events) against one transaction per event, next to the
//! in-memory store.
//!
//! `cargo bench --bench store`. Each sample handles `EVENTS` fresh
//! customer messages spread over 50 cases.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use casework::case::CaseId;
use casework::clock::ManualClock;
use casework::engine::Engine;
use casework::event::Event;
use casework::store::{MemoryStore, SqliteStore, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

const EVENTS: usize = 200;
const TEXTS: &[&str] = &[
    "Where is my parcel? The delivery is late.",
    "The jacket is too small, can I change the size?",
    "I was charged twice, please refund.",
    "I couldn't work out how to order, so please take this message as my order. I need it urgently.",
];

static RUN: AtomicUsize = AtomicUsize::new(0);

fn events() -> Vec<Event> {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let at = "2026-11-25T10:00:00+09:00".parse().unwrap();
    (0..EVENTS)
        .map(|i| {
            let case = i % 50;
            Event::new(
                format!("b{run}-{i}"),
                at,
                "customer.message",
                Some(CaseId(format!("C-{run}-{case}"))),
            )
            .with("text", TEXTS[i % TEXTS.len()])
            .with(
                "customer",
                json!({"name": format!("Customer {case}"), "email": format!("c{case}@example.com")}),
            )
        })
        .collect()
}

fn engine(store: Box<dyn Store>) -> Engine {
    let (pack, rules) = casework::load(None).expect("the default pack");
    let clock = Arc::new(ManualClock::new(
        "2026-11-25T10:00:00+09:00".parse().unwrap(),
    ));
    Engine::builder(pack, rules)
        .clock(clock)
        .store(store)
        .build()
        .expect("engine")
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("casework-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    let mut memory = engine(Box::new(MemoryStore::new()));
    group.bench_function("memory, one event at a time", |b| {
        b.iter_batched(
            events,
            |evs| {
                for e in evs {
                    black_box(memory.handle(e).unwrap());
                }
            },
            BatchSize::PerIteration,
        )
    });

    let mut grouped = engine(Box::new(SqliteStore::open(dir.join("group.db")).unwrap()));
    group.bench_function("sqlite, group commit (one transaction per 200)", |b| {
        b.iter_batched(
            events,
            |evs| black_box(grouped.handle_batch(evs).unwrap()),
            BatchSize::PerIteration,
        )
    });

    let mut single = engine(Box::new(SqliteStore::open(dir.join("single.db")).unwrap()));
    group.bench_function("sqlite, one transaction per event", |b| {
        b.iter_batched(
            events,
            |evs| {
                for e in evs {
                    black_box(single.handle(e).unwrap());
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    drop((grouped, single));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
