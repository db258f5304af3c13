//! Redaction: what is removed or replaced in every object before it is stored or shipped, so
//! that no secret value ever leaves the cluster (pure, no I/O).
//!
//! Built-in rules, in the order they run (their ids go into each segment header):
//! - `managed-fields`: drop `metadata.managedFields` (about half of an object's bytes, of no use
//!   to Spinnaker);
//! - `secret-last-applied`: drop the `kubectl.kubernetes.io/last-applied-configuration`
//!   annotation of Secrets (it holds the values as applied);
//! - `secret-values-hmac`: replace every value in a Secret's `data` and `stringData` with an
//!   HMAC-SHA256 keyed per cluster, so key names and rotations stay visible but values do not.
//!
//! User rules remove more: a JSON pointer (RFC 6901) for a kind (`*` for every kind). A rule
//! added or edited while the agent runs ([`Redactor::rules_not_in`]) runs once over the objects
//! already held, which the previous rules redacted, so that no segment names a rule whose field
//! it still holds; the watches then list every object again, redacted afresh (restoring what an
//! edited rule's old pointer removed). Only user rules run twice: an HMAC of an HMAC would be
//! no HMAC of the value. (A pointer to an array element by index, run over a held object, counts
//! the elements earlier rules left; the relist redacts the original.)
//!
//! A cluster whose Secrets are not watched needs no key ([`Redactor::without_key`]).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// The annotation `kubectl apply` leaves, holding the applied manifest.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// What an HMAC'd Secret value starts with.
pub const HMAC_PREFIX: &str = "outpost-hmac-sha256:";
/// The kind whose values are HMAC'd: watching it needs a key.
pub const SECRET_KIND: &str = "Secret";
/// The shortest HMAC key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// A user rule: remove the field at `pointer` from objects of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRule {
    /// Short id, recorded in segment headers as `remove:<id>`.
    pub id: String,
    /// `Kind`, `Kind.group` for CRDs, or `*` for every kind.
    pub kind: String,
    /// RFC 6901 JSON pointer, e.g. `/spec/template/spec/containers/0/env`.
    pub pointer: String,
}

/// Why a redaction configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("redaction rule {id:?}: {reason}")]
    InvalidRule { id: String, reason: String },
    #[error("the redaction key must be at least {MIN_KEY_BYTES} bytes, got {0}")]
    ShortKey(usize),
}

/// Applies the built-in rules and the user's rules with one cluster's HMAC key.
#[derive(Clone)]
pub struct Redactor {
    /// `None`: no Secret is watched (see [`Redactor::without_key`]).
    key: Option<Vec<u8>>,
    rules: Vec<RemoveRule>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor with the cluster's HMAC key (at least [`MIN_KEY_BYTES`]) and the user's rules.
    pub fn new(key: &[u8], rules: Vec<RemoveRule>) -> Result<Self, Error> {
        if key.len() < MIN_KEY_BYTES {
            return Err(Error::ShortKey(key.len()));
        }
        check_rules(&rules)?;
        Ok(Self {
            key: Some(key.to_vec()),
            rules,
        })
    }

    /// A redactor for a cluster whose Secrets are not watched, so that the agent needs no key
    /// (nor the rights to keep one). Should a Secret reach it anyway, none of its values leave:
    /// its `data` and `stringData` are dropped whole.
    pub fn without_key(rules: Vec<RemoveRule>) -> Result<Self, Error> {
        check_rules(&rules)?;
        Ok(Self { key: None, rules })
    }

    /// Whether Secret values can be HMAC'd (see [`Redactor::without_key`]).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The user's rules.
    pub fn rules(&self) -> &[RemoveRule] {
        &self.rules
    }

    /// A keyless redactor of the user rules of `self` that `previous` does not have, whole rules
    /// compared (a rule edited in place is new): what must run again over objects `previous`
    /// redacted, through [`Redactor::remove_fields`], for them to be redacted by `self`'s rules.
    pub fn rules_not_in(&self, previous: &Redactor) -> Redactor {
        Redactor {
            key: None,
            rules: self
                .rules
                .iter()
                .filter(|rule| !previous.rules.contains(rule))
                .cloned()
                .collect(),
        }
    }

    /// The ids of the rules this redactor applies, for segment headers.
    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids = vec![
            "managed-fields".to_string(),
            "secret-last-applied".to_string(),
            "secret-values-hmac".to_string(),
        ];
        ids.extend(self.rules.iter().map(|r| format!("remove:{}", r.id)));
        ids
    }

    /// Redacts one object in place. `kind` is `Kind` or `Kind.group` as in the configuration.
    pub fn redact(&self, kind: &str, object: &mut Value) {
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        if kind == SECRET_KIND {
            if let Some(annotations) = object
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(LAST_APPLIED);
            }
            for field in ["data", "stringData"] {
                let Some(map) = object.as_object_mut() else {
                    break;
                };
                let Some(key) = &self.key else {
                    map.remove(field);
                    continue;
                };
                if let Some(values) = map.get_mut(field).and_then(Value::as_object_mut) {
                    for value in values.values_mut() {
                        *value = Value::String(hmac(key, value));
                    }
                }
            }
        }
        self.remove_fields(kind, object);
    }

    /// Applies the user's rules alone (no built-in rule). Returns whether anything was removed.
    pub fn remove_fields(&self, kind: &str, object: &mut Value) -> bool {
        let mut removed = false;
        for rule in self
            .rules
            .iter()
            .filter(|r| r.kind == "*" || r.kind == kind)
        {
            removed |= remove_pointer(object, &rule.pointer);
        }
        removed
    }
}

/// The HMAC of a Secret value's text under `key`, as written in its place.
fn hmac(key: &[u8], value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(text.as_bytes());
    format!("{HMAC_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Refuses rules with a malformed id, pointer or kind.
fn check_rules(rules: &[RemoveRule]) -> Result<(), Error> {
    {
        for rule in rules {
            let invalid = |reason: &str| Error::InvalidRule {
                id: rule.id.clone(),
                reason: reason.to_string(),
            };
            if rule.id.is_empty()
                || !rule
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(invalid("the id must be letters, digits and '-'"));
            }
            if !rule.pointer.starts_with('/') {
                return Err(invalid("the pointer must start with '/' (RFC 6901)"));
            }
            if rule.kind.is_empty() {
                return Err(invalid(
                    "the kind must not be empty (use '*' for every kind)",
                ));
            }
        }
    }
    Ok(())
}

/// Removes the member or element a JSON pointer names, if present. Returns whether it was.
fn remove_pointer(object: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = if parent.is_empty() {
        Some(object)
    } else {
        object.pointer_mut(parent)
    };
    match target {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redactor(rules: Vec<RemoveRule>) -> Redactor {
        Redactor::new(&[7u8; 32], rules).unwrap()
    }

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop",
                "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}", "team": "payments"},
                "managedFields": [{"manager": "kubectl"}]},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
            "stringData": {"token": "plain-secret-token"}
        })
    }

    #[test]
    fn secret_values_never_survive() {
        let mut s = secret();
        redactor(vec![]).redact("Secret", &mut s);
        let text = s.to_string();
        for value in [
            "aHVudGVyMg==",
            "YWRtaW4=",
            "plain-secret-token",
            "last-applied",
        ] {
            assert!(!text.contains(value), "{value} leaked: {text}");
        }
        assert!(
            s["data"]["password"]
                .as_str()
                .unwrap()
                .starts_with(HMAC_PREFIX)
        );
        assert_eq!(s["metadata"]["annotations"]["team"], "payments");
        assert!(s["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn hmacs_show_rotation_and_depend_on_the_cluster_key() {
        let r = redactor(vec![]);
        let mut a = secret();
        let mut b = secret();
        b["data"]["password"] = json!("bmV3LXBhc3N3b3Jk");
        r.redact("Secret", &mut a);
        r.redact("Secret", &mut b);
        assert_eq!(a["data"]["user"], b["data"]["user"]);
        assert_ne!(a["data"]["password"], b["data"]["password"]);
        let mut c = secret();
        Redactor::new(&[8u8; 32], vec![])
            .unwrap()
            .redact("Secret", &mut c);
        assert_ne!(a["data"]["user"], c["data"]["user"]);
    }

    #[test]
    fn other_kinds_keep_their_annotations_and_data() {
        let mut cm = json!({"kind": "ConfigMap", "metadata": {"annotations": {LAST_APPLIED: "{}"}, "managedFields": []}, "data": {"a": "b"}});
        redactor(vec![]).redact("ConfigMap", &mut cm);
        assert_eq!(cm["data"]["a"], "b");
        assert_eq!(cm["metadata"]["annotations"][LAST_APPLIED], "{}");
        assert!(cm["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn user_rules_remove_by_pointer_and_kind() {
        let rules = vec![
            RemoveRule {
                id: "env".into(),
                kind: "Deployment".into(),
                pointer: "/spec/template/spec/containers/0/env".into(),
            },
            RemoveRule {
                id: "notes".into(),
                kind: "*".into(),
                pointer: "/metadata/annotations/a~1b".into(),
            },
            RemoveRule {
                id: "second".into(),
                kind: "Pod".into(),
                pointer: "/spec/containers/1".into(),
            },
        ];
        let r = redactor(rules);
        let mut d = json!({"metadata": {"annotations": {"a/b": "x", "c": "y"}}, "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "K", "value": "V"}]}]}}}});
        r.redact("Deployment", &mut d);
        assert!(d.pointer("/spec/template/spec/containers/0/env").is_none());
        assert!(d.pointer("/metadata/annotations/a~1b").is_none());
        assert_eq!(d["metadata"]["annotations"]["c"], "y");
        let mut p = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        r.redact("Pod", &mut p);
        assert_eq!(p["spec"]["containers"], json!([{"name": "a"}]));
        assert_eq!(r.rule_ids().last().unwrap(), "remove:second");
    }

    #[test]
    fn rules_not_in_compares_whole_rules() {
        let rule = |id: &str, pointer: &str| RemoveRule {
            id: id.into(),
            kind: "Pod".into(),
            pointer: pointer.into(),
        };
        let old = redactor(vec![rule("a", "/x"), rule("b", "/y")]);
        let new = redactor(vec![rule("a", "/x"), rule("b", "/z"), rule("c", "/w")]);
        assert_eq!(old.rule_ids()[3..], new.rule_ids()[3..5]);
        assert_eq!(
            new.rules_not_in(&old).rules(),
            &[rule("b", "/z"), rule("c", "/w")]
        );
        assert!(old.rules_not_in(&old).rules().is_empty());
        let mut pod = json!({"x": 1, "y": 2, "z": 3, "w": 4});
        assert!(new.rules_not_in(&old).remove_fields("Pod", &mut pod));
        assert_eq!(pod, json!({"x": 1, "y": 2}));
        assert!(!new.rules_not_in(&old).remove_fields("Pod", &mut pod));
    }

    #[test]
    fn without_a_key_no_secret_value_survives() {
        let r = Redactor::without_key(vec![]).unwrap();
        assert!(!r.has_key());
        let mut s = secret();
        r.redact("Secret", &mut s);
        assert!(
            s.get("data").is_none() && s.get("stringData").is_none(),
            "{s}"
        );
        assert_eq!(s["metadata"]["annotations"]["team"], "payments");
        assert!(redactor(vec![]).has_key());
    }

    #[test]
    fn bad_rules_and_short_keys_are_refused() {
        assert!(matches!(
            Redactor::new(&[0; 16], vec![]),
            Err(Error::ShortKey(16))
        ));
        for (id, kind, pointer) in [
            ("", "Pod", "/a"),
            ("x", "Pod", "a"),
            ("x y", "Pod", "/a"),
            ("x", "", "/a"),
        ] {
            let rule = RemoveRule {
                id: id.into(),
                kind: kind.into(),
                pointer: pointer.into(),
            };
            assert!(Redactor::new(&[0; 32], vec![rule]).is_err());
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let text = format!("{:?}", Redactor::new(&[0x41; 32], vec![]).unwrap());
        assert!(!text.contains("65") && !text.contains("AAAA"), "{text}");
    }
}
