//! Payloads from a warehouse or carrier turned into `warehouse.*` and
//! `carrier.*` events: what their webhooks push, and the `events` an API
//! answers an action with.
//!
//! A payload is one object or a list of them (or `{"events": [...]}`):
//!
//! ```json
//! { "id": "wh-981", "type": "delayed", "order": "A-1001",
//!   "ship_date": "2026-11-28", "reason": "stock arrives Friday",
//!   "at": "2026-11-25T09:12:00+09:00" }
//! ```
//!
//! The event kind is `<kind>.<type>`; its id is `<plugin>:<id>`, so the
//! same notice delivered twice is the same event, which the engine handles
//! once. Fields other than the ones below are ignored.

use casework_core::Timestamp;
use casework_core::case::CaseId;
use casework_core::event::Event;
use casework_core::plugin::PluginKind;
use chrono::NaiveDate;
use serde_json::Value;

/// The `type`s each kind sends.
pub fn types(kind: PluginKind) -> &'static [&'static str] {
    match kind {
        PluginKind::Warehouse => &[
            "planned",
            "shipped",
            "delayed",
            "held",
            "released",
            "backorder",
        ],
        PluginKind::Carrier => &["eta", "delivered", "exception"],
        _ => &[],
    }
}

/// Date fields, written `YYYY-MM-DD`.
const DATES: &[&str] = &["ship_date", "eta", "until"];

/// What fills in for what an action's answer leaves out (a webhook must
/// say everything itself).
#[derive(Clone, Debug)]
pub(crate) struct Answering<'a> {
    /// The action's id: events without `id` get `<plugin>:<action>:<n>`.
    pub action_id: &'a str,
    /// Used when an event has no `at`.
    pub at: Timestamp,
    /// The case the action was for.
    pub case: &'a CaseId,
}

/// Normalise a webhook body of the plugin `plugin` of `kind`.
///
/// ```
/// use casework_core::plugin::PluginKind;
/// let events = casework_http::webhook::normalise(
///     "wms", PluginKind::Warehouse,
///     br#"{"id": 7, "type": "shipped", "order": "A-1", "tracking": "JP1", "at": "2026-11-25T10:00:00+09:00"}"#,
/// ).unwrap();
/// assert_eq!(events[0].kind.as_str(), "warehouse.shipped");
/// assert_eq!(events[0].id.as_str(), "wms:7");
/// ```
pub fn normalise(plugin: &str, kind: PluginKind, body: &[u8]) -> Result<Vec<Event>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    normalise_value(plugin, kind, &value, None)
}

pub(crate) fn normalise_value(
    plugin: &str,
    kind: PluginKind,
    value: &Value,
    answering: Option<&Answering<'_>>,
) -> Result<Vec<Event>, String> {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("events") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err("`events` must be a list of events".to_owned()),
            None => std::slice::from_ref(value),
        },
        _ => return Err("expected an event object or a list of them".to_owned()),
    };
    let mut out: Vec<Event> = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let event = one(plugin, kind, item, n, answering).map_err(|e| {
            if items.len() > 1 || matches!(value, Value::Array(_)) {
                format!("event {n}: {e}")
            } else {
                e
            }
        })?;
        // The same notice twice in one delivery is one event.
        if !out.iter().any(|e| e.id == event.id) {
            out.push(event);
        }
    }
    Ok(out)
}

fn one(
    plugin: &str,
    kind: PluginKind,
    item: &Value,
    n: usize,
    answering: Option<&Answering<'_>>,
) -> Result<Event, String> {
    let Value::Object(map) = item else {
        return Err(format!("expected an object, found {item}"));
    };
    let text = |field: &str| -> Result<Option<String>, String> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(format!("`{field}` must be non-empty text, found {other}")),
        }
    };

    let id = match (map.get("id"), answering) {
        (Some(Value::String(s)), _) if !s.trim().is_empty() => s.trim().to_owned(),
        (Some(Value::Number(n)), _) => n.to_string(),
        (None | Some(Value::Null), Some(a)) => format!("{}:{n}", a.action_id),
        (None | Some(Value::Null), None) => {
            return Err("`id` is missing; it is what makes a second delivery harmless".into());
        }
        (Some(other), _) => return Err(format!("`id` must be text or a number, found {other}")),
    };
    let offered = types(kind);
    let ty = match map.get("type") {
        Some(Value::String(t)) if offered.contains(&t.as_str()) => t.as_str(),
        Some(Value::String(t)) => {
            return Err(format!(
                "`type` `{t}` is not a {kind} event; expected one of: {}",
                offered.join(", ")
            ));
        }
        None => return Err(format!("`type` is missing; one of: {}", offered.join(", "))),
        Some(other) => return Err(format!("`type` must be text, found {other}")),
    };
    let at = match (text("at")?, answering) {
        (Some(at), _) => Timestamp::parse_from_rfc3339(&at)
            .map_err(|e| format!("`at` `{at}` is not an RFC 3339 time ({e})"))?,
        (None, Some(a)) => a.at,
        (None, None) => return Err("`at` is missing (an RFC 3339 time)".into()),
    };
    let case = text("case")?
        .map(CaseId)
        .or_else(|| answering.map(|a| a.case.clone()));
    let mut event = Event::new(format!("{plugin}:{id}"), at, &format!("{kind}.{ty}"), case);
    if let Some(order) = text("order")? {
        event = event.with("order", order);
    }
    if let Some(tracking) = text("tracking")? {
        event = event.with("tracking", tracking);
    }
    for field in DATES {
        if let Some(date) = text(field)? {
            NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                .map_err(|e| format!("`{field}` `{date}` is not a date like 2026-11-28 ({e})"))?;
            event = event.with(field, date);
        }
    }
    if let Some(reason) = text("reason")? {
        event = event.with("reason", reason);
    }
    let required = match (kind, ty) {
        (PluginKind::Warehouse, "planned") => Some("ship_date"),
        (PluginKind::Carrier, "eta") => Some("eta"),
        _ => None,
    };
    if let Some(field) = required
        && !event.data.contains_key(field)
    {
        return Err(format!(
            "`{field}` is missing; a {kind}.{ty} event carries it"
        ));
    }
    if event.case.is_none() && event.order.is_none() && event.tracking.is_none() {
        return Err(
            "names no `order`, `tracking` or `case`, so it cannot be matched to a case".into(),
        );
    }
    Ok(event)
}
