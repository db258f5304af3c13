//! Reading and writing the simulator's JSON objects by JSON pointer, and the API server's timestamps.
//!
//! The simulator only reads back objects it built itself, so a field that is missing or of another
//! type than expected is a bug in the simulator, not an input to tolerate: the readers of [`Fields`]
//! panic with the pointer and the object's kind and name instead of carrying on with an empty string or
//! a zero, which would quietly change the objects built from it. Fields the API server omits when empty
//! are read as what they are: [`Fields::opt_str_at`] for optional strings, [`Fields::count_at`] for
//! `omitempty` counts.

use chrono::DateTime;
use serde_json::{Map, Value, json};

/// A read or a write of a simulated object that does not find what the simulator put there.
#[derive(Debug, thiserror::Error)]
pub(in crate::sim) enum Error {
    #[error("simulator bug: {object} has no {pointer}")]
    Missing { object: String, pointer: String },
    #[error("simulator bug: {pointer} of {object} is not {expected}: {found}")]
    WrongType {
        object: String,
        pointer: String,
        expected: &'static str,
        found: String,
    },
}

/// Typed reads of a simulated object, or of a part of one (a container, a condition, an owner
/// reference); see the [module docs](self) for why they panic.
pub(in crate::sim) trait Fields {
    /// The string at `pointer`, which the simulator always sets.
    fn str_at(&self, pointer: &str) -> &str;
    /// The string at `pointer`, or `None` where the field is absent (it is optional).
    fn opt_str_at(&self, pointer: &str) -> Option<&str>;
    /// The number at `pointer`, which the simulator always sets.
    fn u64_at(&self, pointer: &str) -> u64;
    /// The count at `pointer`, which the API server omits when it is zero (`omitempty`).
    fn count_at(&self, pointer: &str) -> u64;
    /// The number at `pointer`, or `default` (the API server's default for that field) where it is
    /// absent.
    fn u64_or(&self, pointer: &str, default: u64) -> u64;
}

impl Fields for Value {
    #[track_caller]
    fn str_at(&self, pointer: &str) -> &str {
        or_panic(required(
            self,
            pointer,
            read(self, pointer, "a string", Value::as_str),
        ))
    }

    #[track_caller]
    fn opt_str_at(&self, pointer: &str) -> Option<&str> {
        or_panic(read(self, pointer, "a string", Value::as_str))
    }

    #[track_caller]
    fn u64_at(&self, pointer: &str) -> u64 {
        or_panic(required(
            self,
            pointer,
            read(self, pointer, "a count", Value::as_u64),
        ))
    }

    #[track_caller]
    fn count_at(&self, pointer: &str) -> u64 {
        self.u64_or(pointer, 0)
    }

    #[track_caller]
    fn u64_or(&self, pointer: &str, default: u64) -> u64 {
        or_panic(read(self, pointer, "a count", Value::as_u64)).unwrap_or(default)
    }
}

/// The value at `pointer` as `T`: `None` if absent, an error if present as another type.
fn read<'a, T>(
    v: &'a Value,
    pointer: &str,
    expected: &'static str,
    typed: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<Option<T>, Error> {
    let Some(found) = v.pointer(pointer) else {
        return Ok(None);
    };
    match typed(found) {
        Some(t) => Ok(Some(t)),
        None => Err(Error::WrongType {
            object: describe(v),
            pointer: pointer.to_string(),
            expected,
            found: found.to_string(),
        }),
    }
}

fn required<T>(v: &Value, pointer: &str, read: Result<Option<T>, Error>) -> Result<T, Error> {
    read?.ok_or_else(|| Error::Missing {
        object: describe(v),
        pointer: pointer.to_string(),
    })
}

#[track_caller]
fn or_panic<T>(result: Result<T, Error>) -> T {
    match result {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// How an error names the object: `Kind namespace/name` for an object, the JSON itself (shortened)
/// for a part of one.
fn describe(v: &Value) -> String {
    let text = |pointer| v.pointer(pointer).and_then(Value::as_str);
    match (text("/kind"), text("/metadata/name")) {
        (Some(kind), Some(name)) => match text("/metadata/namespace") {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
        _ => {
            let json = v.to_string();
            match json.char_indices().nth(120) {
                Some((end, _)) => format!("{}…", &json[..end]),
                None => json,
            }
        }
    }
}

/// The namespace of `obj`, or `""` for a cluster-scoped object (a Namespace has none).
pub(in crate::sim) fn namespace_of(obj: &Value) -> &str {
    obj.opt_str_at("/metadata/namespace").unwrap_or("")
}

/// RFC 3339 with a `Z` suffix, second precision, as the API server writes `metav1.Time`.
pub(in crate::sim) fn ts(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A `metav1.Time` as Unix seconds, or `None` if `t` is not one.
pub(in crate::sim) fn parse_ts(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp())
}

/// `metadata.creationTimestamp` of `obj` as Unix seconds.
pub(in crate::sim) fn creation_time(obj: &Value) -> i64 {
    let t = obj.str_at("/metadata/creationTimestamp");
    parse_ts(t).unwrap_or_else(|| {
        panic!(
            "{}",
            Error::WrongType {
                object: describe(obj),
                pointer: "/metadata/creationTimestamp".into(),
                expected: "a metav1.Time",
                found: t.to_string(),
            }
        )
    })
}

pub(in crate::sim) fn labels_of(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// Sets `field` of the object at `pointer` ("" for `v` itself), creating that object if it is missing.
pub(in crate::sim) fn set(v: &mut Value, pointer: &str, field: &str, value: Value) {
    if let Err(found) = try_set(v, pointer, field, value) {
        panic!(
            "{}",
            Error::WrongType {
                object: describe(v),
                pointer: pointer.to_string(),
                expected: "an object",
                found,
            }
        );
    }
}

/// [`set`], or the JSON of what is in the way where an object should be.
fn try_set(v: &mut Value, pointer: &str, field: &str, value: Value) -> Result<(), String> {
    let mut target = v;
    for part in pointer.split('/').skip(1) {
        target = match target {
            Value::Object(map) => map.entry(part.to_string()).or_insert_with(|| json!({})),
            other => return Err(other.to_string()),
        };
    }
    match target {
        Value::Object(map) => {
            map.insert(field.to_string(), value);
            Ok(())
        }
        other => Err(other.to_string()),
    }
}

/// Sets `field` of `status` to `n`, or removes it for zero (`omitempty` counts).
pub(in crate::sim) fn set_or_remove(status: &mut Value, field: &str, n: u64) {
    if n > 0 {
        set(status, "", field, json!(n));
    } else if let Some(m) = status.as_object_mut() {
        m.remove(field);
    }
}

pub(in crate::sim) fn terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// `lastTransitionTime` of the condition of type `ty` in `status`, if there is one.
pub(in crate::sim) fn condition_time<'a>(status: &'a Value, ty: &str) -> Option<&'a str> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.str_at("/type") == ty)
        .map(|c| c.str_at("/lastTransitionTime"))
}
