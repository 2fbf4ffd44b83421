//! Property tests of the engine on the default pack: random event streams
//! (well-formed and malformed) and the invariants of the design.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use casework::audit::DecisionKind;
use casework::case::CaseId;
use casework::clock::ManualClock;
use casework::engine::{Engine, EngineError, Outcome};
use casework::event::Event;
use chrono::Duration;
use proptest::prelude::*;
use serde_json::json;

const TEAMS: &[&str] = &[
    "warehouse",
    "product",
    "billing",
    "sales",
    "support",
    "nowhere",
];
const TEXTS: &[&str] = &[
    "Where is my parcel? The delivery is late.",
    "至急お願いします。今日中に届けてください。",
    "The jacket is too small, can I change the size?",
    "I was charged twice, please refund.",
    "I couldn't work out how to order, so please take this message as my order. I need it urgently.",
    "ＵＲＧＥＮＴ: ＡＳＡＰ please",
    "hello",
    "",
];

/// One step of a random stream: how long after the previous one, and what.
#[derive(Clone, Debug)]
struct Gen {
    gap_minutes: i64,
    case: u8,
    order: u8,
    what: u8,
    pick: u8,
    days: i64,
}

fn arb_step() -> impl Strategy<Value = Gen> {
    (0i64..4000, 1u8..4, 1u8..4, 0u8..26, any::<u8>(), -3i64..40).prop_map(
        |(gap_minutes, case, order, what, pick, days)| Gen {
            gap_minutes,
            case,
            order,
            what,
            pick,
            days,
        },
    )
}

fn start() -> casework::Timestamp {
    "2026-11-25T10:00:00+09:00".parse().unwrap()
}

/// Build the event a `Gen` describes, at `at`, with id `n`.
fn event(g: &Gen, n: usize, at: casework::Timestamp) -> Event {
    let case = format!("C-{}", g.case);
    let order = format!("O-{}{}", g.case, g.order);
    let day = (at + Duration::days(g.days)).date_naive();
    let text = TEXTS[g.pick as usize % TEXTS.len()];
    let team = TEAMS[g.pick as usize % TEAMS.len()];
    let promise_id = format!("P-{}", g.pick % 3);
    let base = |kind: &str| Event::new(format!("e{n}"), at, kind, Some(CaseId(case.clone())));
    let by_order = |kind: &str| {
        let mut e = Event::new(format!("e{n}"), at, kind, None);
        e.order = Some(order.clone().into());
        e
    };
    match g.what {
        0..=3 => base("customer.message")
            .with("text", text)
            .with("customer", json!({"name": format!("Customer {}", g.case), "email": format!("c{}@example.com", g.case % 2)})),
        4 => base("agent.reply").with("agent", "ken").with("text", "On it."),
        5 => base("agent.call").with("agent", "jeniffer"),
        6 => base("agent.note").with("agent", "aiko").with("text", text),
        7 | 8 => base("agent.promise").with("agent", "jeniffer").with(
            "promise",
            json!({"id": promise_id, "kind": "deliver_on", "date": day,
                   "window": {"from": day - Duration::days(1), "to": day + Duration::days(2)},
                   "order": order}),
        ),
        9 => base("agent.promise").with("agent", "ken").with(
            "promise",
            json!({"id": promise_id, "kind": "callback_by", "by": (at + Duration::hours(g.days.abs() + 1)).to_rfc3339()}),
        ),
        10 => base("agent.revise_promise").with("agent", "jeniffer").with(
            "promise",
            json!({"id": format!("{promise_id}r{n}"), "kind": "deliver_by", "date": day, "order": order, "revises": promise_id}),
        ),
        11 => base("agent.cancel_promise").with("agent", "ken").with("promise", promise_id),
        12 => base("agent.assign").with("team", team).with("agent", "aiko"),
        13 => base("agent.record").with("agent", "aiko").with("landed", "billing will confirm"),
        14 => base("agent.resolve").with("agent", "ken"),
        15 => base("agent.close").with("agent", "ken"),
        16 => by_order("warehouse.planned").with("ship_date", day),
        17 => by_order("warehouse.shipped").with("tracking", format!("T-{order}")),
        18 => by_order("warehouse.delayed").with("ship_date", day).with("reason", "stock"),
        19 => by_order("warehouse.held").with("until", day),
        20 => by_order("warehouse.backorder"),
        21 => by_order("carrier.eta").with("eta", day),
        22 => by_order("carrier.delivered"),
        23 => by_order("carrier.exception").with("reason", "address"),
        // Malformed and unknown input must be refused, never break a case.
        24 => base("agent.promise").with("agent", "x").with("promise", json!({"id": "bad"})),
        _ => base("customer.telepathy"),
    }
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    /// The events the engine accepted.
    events: Vec<Event>,
    made: BTreeMap<CaseId, BTreeSet<String>>,
    /// Where the last tick left time.
    end: casework::Timestamp,
}

impl Harness {
    fn new() -> Self {
        let (pack, rules) = casework::load(None).expect("the default pack loads");
        let clock = Arc::new(ManualClock::new(start()));
        let engine = Engine::builder(pack, rules)
            .clock(clock.clone())
            .build()
            .unwrap();
        Harness {
            engine,
            clock,
            events: Vec::new(),
            made: BTreeMap::new(),
            end: start(),
        }
    }

    fn feed(&mut self, event: Event) {
        self.engine.tick(event.at).unwrap();
        self.clock.set(event.at);
        match self.engine.handle(event.clone()) {
            Ok(Outcome::Handled {
                case, decisions, ..
            }) => {
                for d in decisions {
                    if let DecisionKind::Promise {
                        promise,
                        previous: None,
                        ..
                    } = d.what
                    {
                        self.made.entry(case.clone()).or_default().insert(promise);
                    }
                }
            }
            Ok(Outcome::Duplicate) => panic!("fresh event {} seen as duplicate", event.id),
            // A refused event is not accepted: sent again later (once its
            // order is linked, say) it may well be handled.
            Err(EngineError::Rejected(_)) => return,
            Err(e) => panic!("engine failed: {e}"),
        }
        self.events.push(event);
    }

    fn cases(&self) -> Vec<casework::case::Case> {
        let store = self.engine.store();
        store
            .case_ids()
            .unwrap()
            .iter()
            .map(|id| store.load(id).unwrap().unwrap())
            .collect()
    }

    /// Every case with its past and decisions.
    fn stories(&self) -> Vec<casework::case::CaseStory> {
        let store = self.engine.store();
        store
            .case_ids()
            .unwrap()
            .iter()
            .map(|id| self.engine.story(id).unwrap())
            .collect()
    }
}

fn run(gens: &[Gen]) -> Harness {
    let mut h = Harness::new();
    let mut at = start();
    for (n, g) in gens.iter().enumerate() {
        at += Duration::minutes(g.gap_minutes);
        h.feed(event(g, n, at));
    }
    h.end = at + Duration::days(60);
    h.engine.tick(h.end).unwrap();
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// A case is never in a state with no way out.
    #[test]
    fn no_case_is_stuck(gens in prop::collection::vec(arb_step(), 1..40)) {
        let h = run(&gens);
        let workflow = &h.engine.pack().workflow;
        for case in h.cases() {
            let state = case.state.as_str();
            prop_assert!(
                workflow.is_terminal(state) || workflow.has_exit(state),
                "case {} is stuck in {}", case.id, state
            );
        }
    }

    /// No promise disappears, and every status change is a recorded decision.
    #[test]
    fn no_promise_is_silently_dropped(gens in prop::collection::vec(arb_step(), 1..40)) {
        let h = run(&gens);
        for story in h.stories() {
            let case = &story.case;
            for id in h.made.get(&case.id).into_iter().flatten() {
                let p = case.promise(id);
                prop_assert!(p.is_some(), "promise {} vanished from case {}", id, case.id);
                let p = p.unwrap();
                prop_assert_eq!(p.history.last().map(|c| c.status), Some(p.status));
                for change in &p.history[1..] {
                    let recorded = story.history.iter().any(|d| matches!(&d.what,
                        DecisionKind::Promise { promise, status, .. }
                            if promise == id && *status == change.status));
                    prop_assert!(recorded, "promise {} became {} with no decision", id, change.status);
                }
                if p.status.is_open() {
                    // Past due and still open would be a silent drop.
                    let due = p.due_at().unwrap();
                    prop_assert!(due > h.end, "promise {} is past due ({}) and still {}", id, due, p.status);
                }
            }
        }
    }

    /// Replaying a case's stored events from scratch gives the same case.
    #[test]
    fn replay_reproduces_the_case(gens in prop::collection::vec(arb_step(), 1..40)) {
        let h = run(&gens);
        for case in h.cases() {
            let replayed = h.engine.replay(&case.id).unwrap();
            prop_assert_eq!(&replayed, &case);
        }
    }

    /// Handling any event twice equals handling it once.
    #[test]
    fn handling_twice_equals_once(gens in prop::collection::vec(arb_step(), 1..30)) {
        let mut h = run(&gens);
        let before = h.cases();
        let outbox = h.engine.outbox().unwrap().len();
        for e in h.events.clone() {
            match h.engine.handle(e) {
                Ok(Outcome::Duplicate) => {}
                other => prop_assert!(false, "an accepted event was not seen as a duplicate: {:?}", other.map(|_| ())),
            }
        }
        prop_assert_eq!(h.cases(), before);
        prop_assert_eq!(h.engine.outbox().unwrap().len(), outbox);
    }
}

// ---------------------------------------------------------------------------
// Timers that came due before the event that changed the case (found by
// the random-workflow properties, `random_workflows.rs`)

/// An engine on a one-file configuration, on a manual clock at `start`.
fn engine_on(yaml: &str, start: &str) -> (Engine, Arc<ManualClock>) {
    struct One(String);
    impl casework::config::SourceReader for One {
        fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
            Ok(self.0.clone())
        }
    }
    let loaded = casework::config::load_with(&One(yaml.to_owned()), std::path::Path::new("c.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    let (pack, rules) = casework::engine::Pack::compile(loaded).unwrap_or_else(|d| panic!("{d}"));
    let clock = Arc::new(ManualClock::new(start.parse().unwrap()));
    let engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .build()
        .unwrap();
    (engine, clock)
}

fn message(id: &str, at: &str) -> Event {
    Event::new(
        id,
        at.parse().unwrap(),
        "customer.message",
        Some(CaseId("C-1".into())),
    )
    .with("text", "hello")
}

/// A state's timeout that came due before an event reached the case, with
/// no tick in between (`serve` handles events between its ticks), used to
/// be dropped from the due-time index: the case then waited in the state
/// forever. Now it fires before the event, at its own time: the case's
/// timers and events happen in the order they happened.
#[test]
fn a_timeout_overdue_when_an_event_arrives_still_fires() {
    let (mut engine, clock) = engine_on(
        "workflow:\n  states:\n    new: { initial: true, timeout: { after: 1h, to: done } }\n    done: { terminal: true }\n  transitions: []\n",
        "2026-11-25T10:00:00+09:00",
    );
    engine
        .handle(message("m1", "2026-11-25T10:00:00+09:00"))
        .unwrap();
    // 11:30: the timeout (11:00) is overdue and no tick has run yet.
    let late: casework::Timestamp = "2026-11-25T11:30:00+09:00".parse().unwrap();
    clock.set(late);
    engine
        .handle(message("m2", "2026-11-25T11:30:00+09:00"))
        .unwrap();
    assert_eq!(engine.timers_fired(), 1, "the overdue timeout fired first");
    assert!(engine.tick(late).unwrap().is_empty(), "and only once");
    let case = engine.case(&CaseId("C-1".into())).unwrap().unwrap();
    assert_eq!(case.state.as_str(), "done");
    // It fired at its own time, before the message that came after it.
    let at_eleven: casework::Timestamp = "2026-11-25T11:00:00+09:00".parse().unwrap();
    assert_eq!(case.state_since, at_eleven);
    assert_eq!(case.updated_at, late);
    assert_eq!(engine.replay(&case.id).unwrap(), case);
}

/// An SLA clock that starts inside its own warning window (a 30-minute
/// target with the default one-hour warning) is due to warn at once; that
/// moment used to be dropped as "not after now", so the team was never
/// warned. It warns at the next tick, before the breach.
#[test]
fn an_sla_clock_started_inside_its_warning_window_still_warns() {
    let (mut engine, clock) = engine_on(
        "calendars:\n  always: { timezone: UTC, hours: { mon: 00:00-24:00, tue: 00:00-24:00, wed: 00:00-24:00, thu: 00:00-24:00, fri: 00:00-24:00, sat: 00:00-24:00, sun: 00:00-24:00 } }\nworkflow:\n  sla: { calendar: always, first_reply: 30m }\n  states:\n    new: { initial: true }\n    done: { terminal: true }\n  transitions:\n    - { from: new, to: done, on: agent.resolve }\n",
        "2026-11-25T10:00:00+09:00",
    );
    engine
        .handle(message("m1", "2026-11-25T10:00:00+09:00"))
        .unwrap();
    let later: casework::Timestamp = "2026-11-25T10:10:00+09:00".parse().unwrap();
    clock.set(later);
    engine.tick(later).unwrap();
    let case = engine.case(&CaseId("C-1".into())).unwrap().unwrap();
    let first = case
        .sla
        .iter()
        .find(|c| c.kind.as_str() == "first_reply")
        .unwrap();
    assert_eq!(first.status, casework::case::SlaStatus::Warned, "{first:?}");
}

// ---------------------------------------------------------------------------
// History: the stored case holds its present, whatever its age, and replay
// uses the pack and rules that decided.

fn long_runs() -> u32 {
    // Ten thousand events a case: a few cases even in a soak.
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .map_or(1, |n| (n / 64).max(1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(long_runs()))]

    /// A case that sees 10,000 events (messages, replies, notes, promises
    /// made, revised and settled, shipments) keeps a row of bounded size:
    /// what it holds in its second five thousand events is no bigger than
    /// in its first.
    #[test]
    fn a_case_with_ten_thousand_events_keeps_a_bounded_row(
        pattern in prop::collection::vec(arb_step(), 20..40),
    ) {
        let mut h = Harness::new();
        let mut at = start();
        let (mut first, mut second) = (0usize, 0usize);
        for n in 0..10_000 {
            let mut g = pattern[n % pattern.len()].clone();
            g.case = 1;
            g.gap_minutes = g.gap_minutes % 90 + 1;
            // A revision opens a promise under a new id each time: ten
            // thousand of them would make each event check hundreds of
            // open promises. Cancelling keeps promises coming and going.
            if g.what == 10 {
                g.what = 11;
            }
            at += Duration::minutes(g.gap_minutes);
            h.feed(event(&g, n, at));
            // Weighed every 25th event: encoding a row is most of a step's cost here.
            if n % 25 != 24 {
                continue;
            }
            let Some(case) = h.engine.case(&CaseId("C-1".into())).unwrap() else { continue };
            let size = serde_json::to_vec(&case).unwrap().len();
            if n < 5_000 { first = first.max(size) } else { second = second.max(size) }
        }
        prop_assert!(second <= first + 512, "the row grew: {first} bytes, then {second}");
        prop_assert!(second < 64 * 1024, "the row is {second} bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(long_runs() * 4))]

    /// Events handled under one pack, then more under a changed one (the
    /// SLA of the workflow and the route rule both changed, as an upgrade
    /// would): replaying every case uses each event's own versions and
    /// equals the stored case.
    #[test]
    fn replay_equals_the_stored_case_across_a_pack_change(
        before in prop::collection::vec(arb_step(), 1..25),
        after in prop::collection::vec(arb_step(), 1..25),
    ) {
        use casework::store::SqliteStore;
        let dir = crate::util::scratch(&format!("pack-change-{}", std::process::id()));
        crate::util::copy_pack(&dir);
        let db = dir.join("casework.db");
        let config = dir.join("casework.yaml");
        let clock = Arc::new(ManualClock::new(start()));
        let open = |clock: &Arc<ManualClock>| {
            let (pack, rules) = casework::load(Some(&config)).expect("the pack loads");
            Engine::builder(pack, rules)
                .clock(clock.clone())
                .store(Box::new(SqliteStore::open(&db).unwrap()))
                .build()
                .unwrap()
        };
        let mut at = start();
        let feed = |engine: &mut Engine, gens: &[Gen], from: usize, at: &mut casework::Timestamp| {
            for (i, g) in gens.iter().enumerate() {
                *at += Duration::minutes(g.gap_minutes);
                engine.tick(*at).unwrap();
                clock.set(*at);
                let _ = engine.handle(event(g, from + i, *at));
            }
        };
        let mut engine = open(&clock);
        let first_version = engine.pack().version().to_owned();
        feed(&mut engine, &before, 0, &mut at);
        drop(engine);

        let workflow = dir.join("workflow.yaml");
        let text = std::fs::read_to_string(&workflow).unwrap();
        std::fs::write(&workflow, text.replacen("first_reply: 4h", "first_reply: 2h", 1)).unwrap();
        crate::util::route_everything_to(&dir, "billing");
        let mut engine = open(&clock);
        prop_assert_ne!(engine.pack().version(), first_version.as_str());
        feed(&mut engine, &after, before.len(), &mut at);
        engine.tick(at + Duration::days(30)).unwrap();
        for id in engine.store().case_ids().unwrap() {
            let stored = engine.case(&id).unwrap().unwrap();
            let replayed = engine.replay(&id).unwrap();
            prop_assert_eq!(replayed, stored, "replay of {}", id);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
