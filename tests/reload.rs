//! Hot reload of rule files from disk: a good change is swapped in and
//! decides the next event; a broken one is refused and the old set runs on.

use std::sync::Arc;

use casework::Reload;
use casework::case::CaseId;
use casework::clock::ManualClock;
use casework::engine::Engine;
use casework::event::Event;

use crate::util::{copy_pack, route_everything_to, scratch};

#[test]
fn rules_reload_from_disk_and_broken_files_are_refused() {
    let dir = scratch("reload");
    copy_pack(&dir);
    let (pack, rules) =
        casework::load(Some(&dir.join("casework.yaml"))).expect("copied pack loads");
    let at = "2026-11-25T10:00:00+09:00".parse().unwrap();
    let mut engine = Engine::builder(pack, rules)
        .clock(Arc::new(ManualClock::new(at)))
        .build()
        .unwrap();
    let first = engine.rules().current().hash().to_owned();
    assert_eq!(casework::reload_rules(&engine).unwrap(), Reload::Unchanged);

    // A good change: every new case goes to billing.
    route_everything_to(&dir, "billing");
    let route = dir.join("route.rhai");
    let Reload::Swapped(second) = casework::reload_rules(&engine).unwrap() else {
        panic!("a changed file must be swapped in");
    };
    assert_ne!(first, second);
    let event =
        Event::new("e1", at, "customer.message", Some(CaseId::from("C-1"))).with("text", "hello");
    engine.handle(event).unwrap();
    let case = engine.case(&CaseId::from("C-1")).unwrap().unwrap();
    assert_eq!(case.assignment.team.as_deref(), Some("billing"));
    let route_decision = engine
        .story(&case.id)
        .unwrap()
        .history
        .into_iter()
        .find(|d| d.kind_name() == "route")
        .unwrap();
    assert_eq!(route_decision.ruleset.as_deref(), Some(second.as_str()));

    // A broken change is refused, with its place; the second set runs on.
    std::fs::write(&route, "fn route(c, event) { let x = ; }").unwrap();
    let diags = casework::reload_rules(&engine).expect_err("a syntax error is refused");
    assert!(diags.to_string().contains("route.rhai:1:"), "{diags}");
    assert_eq!(engine.rules().current().hash(), second);
}

/// A case decided partly before and partly after a reload replays with
/// the version that handled each event, also after a restart on the same
/// database, when only the newest rules are on disk.
#[test]
fn replay_uses_the_rule_set_version_that_handled_each_event() {
    let dir = scratch("reload-replay");
    copy_pack(&dir);
    let config = dir.join("casework.yaml");
    let db = dir.join("casework.db");
    let at: casework::Timestamp = "2026-11-25T10:00:00+09:00".parse().unwrap();
    let open = || {
        let (pack, rules) = casework::load(Some(&config)).expect("copied pack loads");
        Engine::builder(pack, rules)
            .clock(Arc::new(ManualClock::new(at)))
            .store(Box::new(casework::store::SqliteStore::open(&db).unwrap()))
            .build()
            .unwrap()
    };
    let c1 = CaseId::from("C-1");
    let message = |id: &str, text: &str| {
        Event::new(id, at, "customer.message", Some(c1.clone())).with("text", text)
    };

    let mut engine = open();
    let first = engine.rules().current().hash().to_owned();
    engine.handle(message("e1", "I was charged twice")).unwrap();
    assert_eq!(team(&engine, &c1), "billing");

    // Reload: from now on every message goes to sales.
    route_everything_to(&dir, "sales");
    let Reload::Swapped(second) = casework::reload_rules(&engine).unwrap() else {
        panic!("a changed file must be swapped in");
    };
    engine.handle(message("e2", "and again")).unwrap();
    let stored = engine.case(&c1).unwrap().unwrap();
    assert_eq!(team(&engine, &c1), "sales");
    let versions: Vec<_> = engine
        .story(&stored.id)
        .unwrap()
        .history
        .into_iter()
        .filter(|d| d.kind_name() == "route")
        .map(|d| d.ruleset.clone().unwrap())
        .collect();
    assert_eq!(versions, [first.clone(), second.clone()]);
    assert_eq!(
        engine.replay(&c1).unwrap(),
        stored,
        "replay in the same process"
    );
    drop(engine);

    // A restart sees only the second version on disk; the first comes
    // from the store.
    let engine = open();
    assert_eq!(engine.rules().current().hash(), second);
    assert_eq!(
        engine.replay(&c1).unwrap(),
        stored,
        "replay after a restart"
    );
}

fn team(engine: &Engine, id: &CaseId) -> String {
    let case = engine.case(id).unwrap().unwrap();
    case.assignment.team.unwrap_or_default()
}
