//! The HTTP plugins through the registry and the outbox runner, against a
//! warehouse API served on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use casework::case::CaseId;
use casework::clock::ManualClock;
use casework::engine::{Engine, Outcome};
use casework::event::Event;
use casework::outbox::{OutboxRunner, RetryPolicy};
use casework::plugins::Registry;
use casework::store::{ActionStatus, SqliteStore};

use crate::util::{HttpStub, root, scratch};

/// A pack whose cases ask the warehouse at `url` to hold the order.
fn warehouse_pack(dir: &Path, url: &str) -> PathBuf {
    let root = root().display();
    let text = format!(
        r#"
name: http-test
timezone: Asia/Tokyo
include:
  - {root}/rules/directory.yaml
  - {root}/rules/calendars.yaml
rules:
  files: [{root}/rules/route.rhai, {root}/rules/urgency.rhai, {root}/rules/promise.rhai]
plugins:
  warehouse:
    kind: warehouse
    url: {url}
    timeout: 2s
workflow:
  states:
    new:
      initial: true
    open: {{}}
    held: {{}}
    closed:
      terminal: true
  transitions:
    - from: new
      on: customer.message
      to: open
      actions:
        - action: warehouse.hold
          params: {{ order: A-1001, until: "2026-12-01" }}
    - from: open
      on: warehouse.held
      to: held
    - from: "*"
      on: agent.close
      to: closed
"#
    );
    let path = dir.join("casework.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Requests per Idempotency-Key, and holds carried out per key.
type Seen = (BTreeMap<String, usize>, BTreeMap<String, usize>);

/// A warehouse that refuses the first attempt (503), then holds the order
/// once per idempotency key, answering with a `held` event.
struct Warehouse {
    _api: HttpStub,
    seen: Arc<Mutex<Seen>>,
}

impl Warehouse {
    fn start() -> (Warehouse, String) {
        let seen = Arc::new(Mutex::new((BTreeMap::new(), BTreeMap::new())));
        let api = HttpStub::start({
            let seen = seen.clone();
            move |_path, key, body| {
                let mut seen = seen.lock().unwrap();
                let total: usize = seen.0.values().sum();
                *seen.0.entry(key.to_owned()).or_default() += 1;
                if total == 0 {
                    return (503, r#"{"error": "starting up"}"#.to_owned());
                }
                // A repeated key is recognised, not held again.
                seen.1.entry(key.to_owned()).or_insert(1);
                let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let answer = serde_json::json!({
                    "hold": format!("H-{key}"),
                    "events": [{
                        "type": "held",
                        "order": request["params"]["order"],
                        "until": "2026-12-01",
                        "at": "2026-11-25T10:00:05+09:00",
                    }],
                });
                (200, answer.to_string())
            }
        });
        let url = api.url.clone();
        (Warehouse { _api: api, seen }, url)
    }
}

#[test]
fn a_refused_hold_is_retried_and_delivered_exactly_once() {
    let dir = scratch("http-outbox");
    let (warehouse, url) = Warehouse::start();
    let config = warehouse_pack(&dir, &url);
    let (pack, rules) = casework::load(Some(&config)).unwrap_or_else(|d| panic!("{d}"));
    let clock = Arc::new(ManualClock::new(
        "2026-11-25T10:00:00+09:00".parse().unwrap(),
    ));
    let mut engine = Engine::builder(pack, rules)
        .clock(clock.clone())
        .store(Box::new(
            SqliteStore::open(dir.join("casework.db")).unwrap(),
        ))
        .build()
        .unwrap();
    let loaded = casework::load_config(Some(&config)).unwrap();
    let plugins = Registry::builtin().build(&loaded.def.plugins, &dir);
    assert_eq!(plugins.ready(), ["warehouse"], "{plugins:?}");
    let runner = OutboxRunner::new(plugins, "w1")
        .policy(RetryPolicy {
            base: chrono::Duration::seconds(10),
            factor: 2.0,
            max_delay: chrono::Duration::hours(1),
            max_attempts: 3,
        })
        .clock(clock.clone());

    let message = Event::new(
        "m1",
        "2026-11-25T10:00:00+09:00".parse().unwrap(),
        "customer.message",
        Some(CaseId("C-1".into())),
    )
    .with("text", "please hold my order");
    engine.handle_batch(vec![message]).unwrap();

    // Refused: retried later.
    let report = runner.run_until_idle(&mut engine).unwrap();
    assert_eq!((report.attempts, report.retried), (1, 1), "{report:?}");
    assert!(report.failures[0].contains("503"), "{report:?}");
    clock.advance(chrono::Duration::seconds(10));
    let report = runner.run_until_idle(&mut engine).unwrap();
    assert_eq!((report.done, report.events), (1, 1), "{report:?}");
    // Nothing left to do, however long we wait.
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(runner.run_until_idle(&mut engine).unwrap().attempts, 0);

    let entry = engine.store().outbox().unwrap().pop().unwrap();
    assert_eq!(entry.action.action, "warehouse.hold");
    assert_eq!((entry.status, entry.attempts), (ActionStatus::Done, 2));
    let seen = warehouse.seen.lock().unwrap().clone();
    assert_eq!(seen.0.get(&entry.action.id), Some(&2), "{seen:?}");
    assert_eq!(seen.0.len(), 1, "{seen:?}");
    assert_eq!(seen.1.get(&entry.action.id), Some(&1), "{seen:?}");

    // The warehouse's `held` answer moved the case.
    let case = engine.store().load(&CaseId("C-1".into())).unwrap().unwrap();
    assert_eq!(case.state.as_str(), "held");
    // The same notice again, by webhook, is a duplicate.
    let loaded = casework::load_config(Some(&config)).unwrap();
    let plugins = Registry::builtin().build(&loaded.def.plugins, &dir);
    let hook = plugins.get("warehouse").unwrap();
    let body = br#"{"id": "wh-1", "type": "released", "order": "A-1001", "at": "2026-11-26T09:00:00+09:00"}"#;
    let events = hook.webhook(body).unwrap().unwrap();
    let again = hook.webhook(body).unwrap().unwrap();
    let results = engine
        .handle_batch(events.into_iter().chain(again).collect())
        .unwrap();
    assert!(matches!(results[1], Ok(Outcome::Duplicate)), "{results:?}");
}

#[test]
fn the_default_pack_builds_notify_with_the_directory_and_wants_urls() {
    let loaded = casework::load_config(None).unwrap();
    let directory = loaded.def.directory.clone().unwrap();
    let plugins = Registry::builtin()
        .with_directory(directory)
        .build(&loaded.def.plugins, Path::new("."));
    assert!(plugins.get("team").is_some(), "{plugins:?}");
    for name in ["warehouse", "carrier"] {
        let why = &plugins.unavailable()[name].reason;
        assert!(why.contains("missing field `url`"), "{name}: {why}");
    }
    // Without the directory, notify cannot run and says why.
    let plugins = Registry::builtin().build(&loaded.def.plugins, Path::new("."));
    assert!(
        plugins.unavailable()["team"]
            .reason
            .contains("with_directory")
    );
}
