//! Reading and writing the simulator's JSON objects by JSON pointer, and the API server's timestamps.

use chrono::DateTime;
use serde_json::{Map, Value, json};

use crate::sim::factory::CLOCK_START;

/// RFC 3339 with a `Z` suffix, second precision, as the API server writes `metav1.Time`.
pub(in crate::sim) fn ts(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The `metadata.creationTimestamp` of `obj` as Unix seconds (the clock start if absent).
pub(in crate::sim) fn timestamp_of(obj: Option<&Value>) -> i64 {
    obj.and_then(|o| o.pointer("/metadata/creationTimestamp"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp())
        .unwrap_or(CLOCK_START)
}

pub(in crate::sim) fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(in crate::sim) fn labels_of(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

pub(in crate::sim) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(in crate::sim) fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Sets `field` of the object at `pointer` ("" for `v` itself), creating that object if it is missing.
pub(in crate::sim) fn set(v: &mut Value, pointer: &str, field: &str, value: Value) {
    let mut target = v;
    for part in pointer.split('/').skip(1) {
        let Some(map) = target.as_object_mut() else {
            return;
        };
        target = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
    if let Some(map) = target.as_object_mut() {
        map.insert(field.to_string(), value);
    }
}

/// Sets `field` of `status` to `n`, or removes it for zero (`omitempty` counts).
pub(in crate::sim) fn set_or_remove(status: &mut Value, field: &str, n: u64) {
    if let Some(m) = status.as_object_mut() {
        if n > 0 {
            m.insert(field.to_string(), json!(n));
        } else {
            m.remove(field);
        }
    }
}

pub(in crate::sim) fn parse_ts(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp())
}

pub(in crate::sim) fn terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

pub(in crate::sim) fn condition_time<'a>(status: &'a Value, ty: &str) -> Option<&'a str> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == ty)?
        .get("lastTransitionTime")
        .and_then(Value::as_str)
}
