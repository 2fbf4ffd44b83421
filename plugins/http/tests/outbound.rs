//! Actions posted to a warehouse or carrier API, and how answers are
//! sorted into done, transient and permanent.

use std::time::Duration;

use casework_core::action::Action;
use casework_core::case::CaseId;
use casework_core::plugin::{Plugin, PluginKind};
use casework_http::{ConfigError, HttpPlugin, HttpSettings};
use serde_json::json;

use crate::server::{Answer, TestServer, closed_port};

pub fn action(id: &str, action: &str, params: serde_json::Value) -> Action {
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

fn settings(url: &str, extra: serde_json::Value) -> HttpSettings {
    let mut s = json!({ "url": url, "token_env": "WMS_TOKEN", "timeout": "2s" });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    serde_json::from_value(s).unwrap()
}

fn plugin(name: &str, kind: PluginKind, settings: HttpSettings) -> HttpPlugin {
    HttpPlugin::with_env(name, kind, settings, |var| {
        (var == "WMS_TOKEN").then(|| "s3cret".to_owned())
    })
    .unwrap()
}

#[test]
fn hold_and_track_arrive_with_path_json_key_and_auth() {
    let server = TestServer::start(|req, _| match req.path.as_str() {
        "/api/hold" => Answer::new(200, r#"{"hold": "H-77"}"#),
        _ => Answer::new(
            200,
            r#"{"status": "in_transit", "events": [{"type": "eta", "tracking": "JP1", "eta": "2026-11-27"}]}"#,
        ),
    });
    let wh = plugin(
        "warehouse",
        PluginKind::Warehouse,
        settings(&format!("{}/api/", server.url), json!({})),
    );
    let done = wh
        .execute(&action("a-1", "warehouse.hold", json!({"order": "A-1001"})))
        .unwrap();
    assert_eq!(done.result, json!({"hold": "H-77"}));
    assert!(done.events.is_empty());

    let carrier = plugin(
        "yamato",
        PluginKind::Carrier,
        settings(
            &server.url,
            json!({"auth_header": "X-Api-Key", "paths": {"track": "/v2/parcels/track"}}),
        ),
    );
    let done = carrier
        .execute(&action("a-2", "yamato.track", json!({"tracking": "JP1"})))
        .unwrap();
    assert_eq!(done.result["status"], "in_transit");
    // The answer's events become carrier events of the case, with ids
    // stable across retries of the action.
    assert_eq!(done.events.len(), 1);
    let ev = &done.events[0];
    assert_eq!(ev.kind.as_str(), "carrier.eta");
    assert_eq!(ev.id.as_str(), "yamato:a-2:0");
    assert_eq!(ev.case, Some(CaseId("C-1".into())));
    assert_eq!(ev.text("eta"), Some("2026-11-27"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let hold = &reqs[0];
    assert_eq!(
        (hold.method.as_str(), hold.path.as_str()),
        ("POST", "/api/hold")
    );
    assert_eq!(
        hold.body,
        json!({"action": "hold", "idempotency_key": "a-1", "case": "C-1", "params": {"order": "A-1001"}})
    );
    assert_eq!(hold.header("Idempotency-Key"), Some("a-1"));
    assert_eq!(hold.header("Authorization"), Some("Bearer s3cret"));
    assert!(
        hold.header("Content-Type")
            .unwrap()
            .starts_with("application/json")
    );
    let track = &reqs[1];
    assert_eq!(track.path, "/v2/parcels/track");
    assert_eq!(track.header("X-Api-Key"), Some("s3cret"));
    assert_eq!(track.header("Authorization"), None);
    assert_eq!(track.body["action"], "track");
}

#[test]
fn a_server_error_is_transient_then_the_retry_is_done() {
    let server = TestServer::start(|_, n| match n {
        0 => Answer::new(500, "database restarting"),
        _ => Answer::new(200, r#"{"ok": true}"#),
    });
    let wh = plugin(
        "warehouse",
        PluginKind::Warehouse,
        settings(&server.url, json!({})),
    );
    let a = action("a-1", "warehouse.release", json!({}));
    let err = wh.execute(&a).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(err.to_string().contains("database restarting"), "{err}");
    assert_eq!(wh.execute(&a).unwrap().result, json!({"ok": true}));
    let keys: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a-1", "a-1"]);
}

#[test]
fn too_many_requests_is_transient_and_not_found_is_permanent() {
    let server = TestServer::start(|req, _| match req.path.as_str() {
        "/ship_on" => Answer::new(429, "slow down"),
        _ => Answer::new(404, r#"{"error": "no such order A-9"}"#),
    });
    let wh = plugin(
        "warehouse",
        PluginKind::Warehouse,
        settings(&server.url, json!({})),
    );
    let err = wh
        .execute(&action("a-1", "warehouse.ship_on", json!({})))
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = wh
        .execute(&action("a-2", "warehouse.hold", json!({"order": "A-9"})))
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert!(err.to_string().contains("no such order A-9"), "{err}");
}

#[test]
fn a_timeout_and_a_refused_connection_are_transient() {
    let server =
        TestServer::start(|_, _| Answer::new(200, "{}").after(Duration::from_millis(1500)));
    let wh = plugin(
        "warehouse",
        PluginKind::Warehouse,
        settings(&server.url, json!({"timeout": "300ms"})),
    );
    let started = std::time::Instant::now();
    let err = wh
        .execute(&action("a-1", "warehouse.hold", json!({})))
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1400));

    let wh = plugin(
        "warehouse",
        PluginKind::Warehouse,
        settings(&format!("http://127.0.0.1:{}", closed_port()), json!({})),
    );
    let err = wh
        .execute(&action("a-1", "warehouse.hold", json!({})))
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[test]
fn an_action_the_kind_lacks_or_unusable_answer_events_are_permanent() {
    let server = TestServer::start(|_, _| {
        Answer::new(
            200,
            r#"{"events": [{"type": "teleported", "order": "A-1"}]}"#,
        )
    });
    let carrier = plugin(
        "carrier",
        PluginKind::Carrier,
        settings(&server.url, json!({})),
    );
    let err = carrier
        .execute(&action("a-1", "carrier.hold", json!({})))
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("reschedule, track"), "{err}");
    assert!(server.requests().is_empty());
    let err = carrier
        .execute(&action("a-2", "carrier.track", json!({})))
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("teleported"), "{err}");
}

#[test]
fn settings_errors_name_what_to_fix() {
    // The token's variable is missing: named, and no secret in YAML.
    let s = settings(
        "https://wms.example",
        json!({"token_env": "CASEWORK_TEST_SURELY_UNSET"}),
    );
    let err = HttpPlugin::with_env("warehouse", PluginKind::Warehouse, s, |_| None).unwrap_err();
    assert_eq!(
        err,
        ConfigError::MissingToken {
            var: "CASEWORK_TEST_SURELY_UNSET".into()
        }
    );
    assert!(err.to_string().contains("CASEWORK_TEST_SURELY_UNSET"));

    let map = |v: serde_json::Value| -> std::collections::BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap()
    };
    let err = HttpPlugin::from_settings(
        "warehouse",
        PluginKind::Warehouse,
        &map(json!({"url": "https://wms.example", "token": "s3cret"})),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `token`"), "{err}");
    let err =
        HttpPlugin::from_settings("warehouse", PluginKind::Warehouse, &map(json!({}))).unwrap_err();
    assert!(err.to_string().contains("missing field `url`"), "{err}");
    let err = HttpPlugin::from_settings(
        "carrier",
        PluginKind::Carrier,
        &map(json!({"url": "https://c.example", "paths": {"hold": "/h"}})),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`hold`"), "{err}");
    let err = HttpPlugin::from_settings(
        "carrier",
        PluginKind::Carrier,
        &map(json!({"url": "c.example", "timeout": "soon"})),
    )
    .unwrap_err();
    assert!(err.to_string().contains("soon"), "{err}");
}
