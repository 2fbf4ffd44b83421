//! Webhook payloads normalised into warehouse and carrier events.

use casework_core::plugin::{Plugin, PluginKind};
use casework_http::{HttpPlugin, HttpSettings};
use serde_json::json;

fn plugin(name: &str, kind: PluginKind) -> HttpPlugin {
    let s: HttpSettings = serde_json::from_value(json!({"url": "https://api.example"})).unwrap();
    HttpPlugin::with_env(name, kind, s, |_| None).unwrap()
}

fn hook(
    p: &HttpPlugin,
    body: serde_json::Value,
) -> Result<Vec<casework_core::event::Event>, String> {
    p.webhook(body.to_string().as_bytes())
        .expect("takes webhooks")
        .map_err(|e| {
            assert!(!e.is_transient(), "{e}");
            e.to_string()
        })
}

const AT: &str = "2026-11-25T09:12:00+09:00";

#[test]
fn every_warehouse_and_carrier_type_becomes_its_event() {
    let wh = plugin("wms", PluginKind::Warehouse);
    let cases = [
        ("planned", json!({"ship_date": "2026-11-28"})),
        ("shipped", json!({"tracking": "JP1"})),
        (
            "delayed",
            json!({"ship_date": "2026-11-30", "reason": "stock"}),
        ),
        ("held", json!({"until": "2026-12-01"})),
        ("released", json!({})),
        ("backorder", json!({"reason": "sold out"})),
    ];
    for (n, (ty, extra)) in cases.iter().enumerate() {
        let mut body = json!({"id": format!("w{n}"), "type": ty, "order": "A-1001", "at": AT});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let events = hook(&wh, body).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind.as_str(), format!("warehouse.{ty}"));
        assert_eq!(e.id.as_str(), format!("wms:w{n}"));
        assert_eq!(e.order.as_ref().map(|o| o.as_str()), Some("A-1001"));
        assert_eq!(e.at.to_rfc3339(), AT);
        // The engine reads them as fulfilment news.
        e.payload().unwrap();
        for (k, v) in extra.as_object().unwrap() {
            if k == "tracking" {
                assert_eq!(e.tracking.as_deref(), v.as_str());
            } else {
                assert_eq!(e.data.get(k), Some(v), "{ty}.{k}");
            }
        }
    }

    let carrier = plugin("yamato", PluginKind::Carrier);
    let events = hook(
        &carrier,
        json!([
            {"id": 1, "type": "eta", "tracking": "JP1", "eta": "2026-11-27", "at": AT},
            {"id": 2, "type": "delivered", "tracking": "JP1", "at": AT},
            {"id": 3, "type": "exception", "tracking": "JP1", "reason": "nobody home", "at": AT},
        ]),
    )
    .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str().to_owned()).collect();
    assert_eq!(
        kinds,
        ["carrier.eta", "carrier.delivered", "carrier.exception"]
    );
    assert_eq!(events[0].id.as_str(), "yamato:1");
    assert_eq!(events[2].text("reason"), Some("nobody home"));
}

#[test]
fn a_duplicate_is_the_same_event() {
    let wh = plugin("wms", PluginKind::Warehouse);
    let one = json!({"id": "w9", "type": "shipped", "order": "A-1", "at": AT});
    // Delivered twice: the same event id, which the engine handles once.
    assert_eq!(
        hook(&wh, one.clone()).unwrap(),
        hook(&wh, one.clone()).unwrap()
    );
    // Twice in one delivery: one event.
    let events = hook(&wh, json!({"events": [one.clone(), one]})).unwrap();
    assert_eq!(events.len(), 1);
    // Another plugin's id 'w9' is another event.
    let other = plugin("wms2", PluginKind::Warehouse);
    let theirs = hook(
        &other,
        json!({"id": "w9", "type": "shipped", "order": "A-1", "at": AT}),
    )
    .unwrap();
    assert_ne!(theirs[0].id, events[0].id);
}

#[test]
fn bad_payloads_are_permanent_and_name_the_field() {
    let wh = plugin("wms", PluginKind::Warehouse);
    let carrier = plugin("yamato", PluginKind::Carrier);
    let base = json!({"id": "w1", "type": "shipped", "order": "A-1", "at": AT});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let bad = [
        (with("id", serde_json::Value::Null), "`id`"),
        (with("type", serde_json::Value::Null), "`type`"),
        (with("type", json!("eta")), "`type` `eta`"),
        (with("at", json!("yesterday")), "`at`"),
        (with("at", serde_json::Value::Null), "`at`"),
        (with("ship_date", json!("28/11/2026")), "`ship_date`"),
        (with("order", json!(12)), "`order`"),
        (
            with("order", serde_json::Value::Null),
            "`order`, `tracking` or `case`",
        ),
        (
            json!({"id": "w1", "type": "planned", "order": "A-1", "at": AT}),
            "`ship_date`",
        ),
        (json!([base.clone(), {"id": "w2"}]), "event 1: `type`"),
        (json!("shipped"), "expected an event object"),
    ];
    for (body, needle) in bad {
        let err = hook(&wh, body.clone()).unwrap_err();
        assert!(err.contains(needle), "{body}: {err}");
    }
    let err = hook(
        &carrier,
        json!({"id": 1, "type": "eta", "tracking": "JP1", "at": AT}),
    )
    .unwrap_err();
    assert!(err.contains("`eta`"), "{err}");
    let err = wh.webhook(b"not json").unwrap().unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}
