//! Values between JSON (settings, case fields, action params) and Rhai.

use chrono::NaiveDate;
use rhai::{Array, Dynamic, Map};

use crate::Timestamp;

/// JSON to Rhai: objects become maps, numbers integers when they are.
pub fn json_to_dynamic(value: &serde_json::Value) -> Dynamic {
    use serde_json::Value as J;
    match value {
        J::Null => Dynamic::UNIT,
        J::Bool(b) => Dynamic::from_bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Dynamic::from(s.clone()),
        J::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        J::Object(map) => Dynamic::from_map(json_map_to_rhai(map)),
    }
}

pub fn json_map_to_rhai(map: &serde_json::Map<String, serde_json::Value>) -> Map {
    map.iter()
        .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
        .collect()
}

/// Rhai to JSON, for action params. Dates become `YYYY-MM-DD`, times
/// RFC 3339; any other value is refused with its type name so the rule
/// author can see what to change.
pub fn dynamic_to_json(value: &Dynamic) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    if value.is_unit() {
        return Ok(J::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(J::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(J::from(i));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| format!("the number {f} has no JSON form"));
    }
    if value.is_string() || value.is_char() {
        return Ok(J::String(value.to_string()));
    }
    if let Some(d) = value.read_lock::<NaiveDate>() {
        return Ok(J::String(d.to_string()));
    }
    if let Some(t) = value.read_lock::<Timestamp>() {
        return Ok(J::String(t.to_rfc3339()));
    }
    if value.is_array() {
        let array = value.read_lock::<Array>().ok_or("unreadable array")?;
        return array
            .iter()
            .map(dynamic_to_json)
            .collect::<Result<Vec<_>, _>>()
            .map(J::Array);
    }
    if value.is_map() {
        let map = value.read_lock::<Map>().ok_or("unreadable map")?;
        return rhai_map_to_json(&map).map(J::Object);
    }
    Err(format!(
        "a value of type `{}` cannot be sent as a parameter; use text, numbers, dates, lists or maps",
        value.type_name()
    ))
}

pub fn rhai_map_to_json(map: &Map) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    map.iter()
        .map(|(k, v)| {
            dynamic_to_json(v)
                .map(|j| (k.to_string(), j))
                .map_err(|e| format!("`{k}`: {e}"))
        })
        .collect()
}
