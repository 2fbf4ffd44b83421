//! Embedding casework in your own tool: load the default pack, feed events
//! through the Rust API, read the decisions, the outbox and the story.
//!
//! Run with `cargo run --example embed`.

use std::error::Error;
use std::sync::Arc;

use casework::case::CaseId;
use casework::clock::ManualClock;
use casework::engine::{Engine, Outcome};
use casework::event::Event;

fn main() -> Result<(), Box<dyn Error>> {
    // The embedded default pack; pass Some(path) for your own casework.yaml.
    let (pack, rules) = casework::load(None)?;
    // A virtual clock: the core never reads the wall clock by itself.
    let clock = Arc::new(ManualClock::new("2026-11-25T10:00:00+09:00".parse()?));
    let mut engine = Engine::builder(pack, rules).clock(clock.clone()).build()?;

    let events = [
        r#"{"id":"m1","at":"2026-11-25T10:00:00+09:00","kind":"customer.message","case":"C-1",
            "customer":{"name":"Jo Tanaka","email":"jo@example.com"},"channel":"email",
            "text":"We can only receive the table between Jan 5 and Jan 8."}"#,
        r#"{"id":"p1","at":"2026-11-25T10:20:00+09:00","kind":"agent.promise","case":"C-1","agent":"jeniffer",
            "promise":{"id":"P-1","kind":"deliver_on","date":"2027-01-06",
                       "window":{"from":"2027-01-05","to":"2027-01-08"},"order":"O-77"}}"#,
        r#"{"id":"w1","at":"2026-12-10T08:00:00+09:00","kind":"warehouse.planned","order":"O-77",
            "ship_date":"2026-12-11"}"#,
    ];
    for line in events {
        let event = Event::from_json(line)?;
        clock.set(event.at);
        engine.tick(event.at)?; // fire timers due before this event
        if let Outcome::Handled {
            decisions, actions, ..
        } = engine.handle(event)?
        {
            for d in &decisions {
                println!("{}", casework::engine::explain::describe(d));
            }
            for a in &actions {
                println!("  -> outbox: {} {}", a.action, a.params);
            }
        }
    }

    println!("\n{}", engine.explain(&CaseId::from("C-1"))?);
    Ok(())
}
