//! The `CacheData` rows Clouddriver stores and the exact JSON `body` (and its `body_hash`) the
//! SQL cache keeps for each.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys::CacheKey;
use super::kinds::api_version_attribute;
use super::moniker::Moniker;
use super::resource::Resource;

/// `ttlSeconds` of infrastructure rows: they never expire.
pub const INFRASTRUCTURE_TTL_SECONDS: i64 = -1;

/// `ttlSeconds` of application and cluster rows (`logicalTtlSeconds`, 10 minutes).
pub const LOGICAL_TTL_SECONDS: i64 = 600;

/// Relationship groups every row lists, even when empty (`KubernetesCacheDataConverter`'s
/// sticky kinds).
pub const STICKY_GROUPS: [&str; 2] = ["service", "pod"];

/// The `agent` column Clouddriver's core caching agent writes for `account` (one caching thread):
/// `<account>/KubernetesCoreCachingAgent[1/1]`. Apply `names::check_agent_name` before storing.
pub fn core_agent_name(account: &str) -> String {
    format!("{account}/KubernetesCoreCachingAgent[1/1]")
}

/// The `body_hash` column: SHA-256 of the body's UTF-8 bytes as 64 lowercase hex digits.
pub fn body_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The attributes of a Kubernetes object's row.
#[derive(Debug, Clone, PartialEq)]
pub struct InfrastructureAttributes {
    /// The kind string, e.g. `replicaSet`.
    pub kind: String,
    /// The lowercased `apiVersion`.
    pub api_version: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, or empty.
    pub namespace: String,
    /// `kind + " " + name` (`generateName` when the name is empty, `null` if neither).
    pub full_resource_name: String,
    /// The stored manifest.
    pub manifest: Value,
    /// The derived moniker.
    pub moniker: Moniker,
}

/// The attributes of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Attributes {
    /// A Kubernetes object's row.
    Infrastructure(Box<InfrastructureAttributes>),
    /// An application or cluster row.
    Logical {
        /// The application or cluster name.
        name: String,
        /// Epoch milliseconds at which the row nominally expires (`now + ttlSeconds * 1000`;
        /// nothing enforces it).
        cache_expiry: i64,
    },
}

/// One cache item as Clouddriver's `DefaultCacheData` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheData {
    /// The cache key.
    pub id: String,
    /// -1 for objects, 600 for application and cluster rows.
    pub ttl_seconds: i64,
    /// The row's attributes.
    pub attributes: Attributes,
    /// Related keys grouped by their group (`applications`, `clusters` or a kind string), sorted;
    /// always holds the sticky `service` and `pod` groups.
    pub relationships: BTreeMap<String, BTreeSet<String>>,
}

fn group_relationships<'a>(
    related: impl IntoIterator<Item = &'a CacheKey>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut groups: BTreeMap<String, BTreeSet<String>> = STICKY_GROUPS
        .iter()
        .map(|group| (group.to_string(), BTreeSet::new()))
        .collect();
    for key in related {
        groups
            .entry(key.group().to_string())
            .or_default()
            .insert(key.to_string());
    }
    groups
}

impl CacheData {
    /// The row of a cached object in `account`, listing `related` keys.
    pub fn infrastructure<'a>(
        resource: &Resource,
        account: &str,
        related: impl IntoIterator<Item = &'a CacheKey>,
    ) -> CacheData {
        Self::infrastructure_with(resource, resource.manifest().clone(), account, related)
    }

    /// [`CacheData::infrastructure`], taking the resource (its manifest moved, not copied).
    pub fn from_resource<'a>(
        mut resource: Resource,
        account: &str,
        related: impl IntoIterator<Item = &'a CacheKey>,
    ) -> CacheData {
        let manifest = resource.take_manifest();
        Self::infrastructure_with(&resource, manifest, account, related)
    }

    fn infrastructure_with<'a>(
        resource: &Resource,
        manifest: Value,
        account: &str,
        related: impl IntoIterator<Item = &'a CacheKey>,
    ) -> CacheData {
        let kind = resource.kind().as_str();
        let shown_name = if resource.name().is_empty() {
            resource.generate_name().unwrap_or("null")
        } else {
            resource.name()
        };
        CacheData {
            id: resource.key(account).to_string(),
            ttl_seconds: INFRASTRUCTURE_TTL_SECONDS,
            attributes: Attributes::Infrastructure(Box::new(InfrastructureAttributes {
                kind: kind.to_string(),
                api_version: api_version_attribute(resource.api_version()),
                name: resource.name().to_string(),
                namespace: resource.namespace().to_string(),
                full_resource_name: format!("{kind} {shown_name}"),
                manifest,
                moniker: resource.moniker().clone(),
            })),
            relationships: group_relationships(related),
        }
    }

    /// The row of an application or cluster `key`, listing `related` keys, written at `now_ms`
    /// (epoch milliseconds; a parameter so output is deterministic).
    pub fn logical<'a>(
        key: &CacheKey,
        related: impl IntoIterator<Item = &'a CacheKey>,
        now_ms: i64,
    ) -> CacheData {
        CacheData {
            id: key.to_string(),
            ttl_seconds: LOGICAL_TTL_SECONDS,
            attributes: Attributes::Logical {
                name: key.name().to_string(),
                cache_expiry: now_ms + LOGICAL_TTL_SECONDS * 1000,
            },
            relationships: group_relationships(related),
        }
    }

    /// The `body` column: `{"id","ttlSeconds","attributes","relationships"}` in that order, with
    /// attributes in a fixed order, manifest object keys sorted and relationship lists sorted, so
    /// equal rows always give equal bytes. (Clouddriver's own bodies order map keys arbitrarily;
    /// readers do not care.)
    pub fn body(&self) -> String {
        let mut out = String::new();
        out.push_str("{\"id\":");
        write_string(&mut out, &self.id);
        let _ = write!(
            out,
            ",\"ttlSeconds\":{},\"attributes\":{{",
            self.ttl_seconds
        );
        match &self.attributes {
            Attributes::Infrastructure(attributes) => {
                let fields = [
                    ("kind", &attributes.kind),
                    ("apiVersion", &attributes.api_version),
                    ("name", &attributes.name),
                    ("namespace", &attributes.namespace),
                    ("fullResourceName", &attributes.full_resource_name),
                ];
                for (field, value) in fields {
                    write_string(&mut out, field);
                    out.push(':');
                    write_string(&mut out, value);
                    out.push(',');
                }
                out.push_str("\"manifest\":");
                write_value(&mut out, &attributes.manifest);
                out.push_str(",\"moniker\":");
                write_moniker(&mut out, &attributes.moniker);
            }
            Attributes::Logical { name, cache_expiry } => {
                out.push_str("\"name\":");
                write_string(&mut out, name);
                let _ = write!(out, ",\"cacheExpiry\":{cache_expiry}");
            }
        }
        out.push_str("},\"relationships\":{");
        for (index, (group, keys)) in self.relationships.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_string(&mut out, group);
            out.push_str(":[");
            for (index, key) in keys.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(&mut out, key);
            }
            out.push(']');
        }
        out.push_str("}}");
        out
    }

    /// The `body_hash` column of this row's body.
    pub fn body_hash(&self) -> String {
        body_hash(&self.body())
    }
}

/// The moniker with absent fields omitted, in `Moniker`'s field order.
fn write_moniker(out: &mut String, moniker: &Moniker) {
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        write_string(out, name);
        out.push(':');
    };
    let texts = [
        ("app", &moniker.app),
        ("cluster", &moniker.cluster),
        ("detail", &moniker.detail),
        ("stack", &moniker.stack),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            field(out, name);
            write_string(out, value);
        }
    }
    if let Some(sequence) = moniker.sequence {
        field(out, "sequence");
        let _ = write!(out, "{sequence}");
    }
    out.push('}');
}

/// The compact JSON of `value` with object keys sorted, as manifests are written into bodies.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Writes `value` as compact JSON with object keys sorted (whatever order the map keeps).
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            out.push('{');
            if object.keys().is_sorted() {
                // serde_json's map keeps its keys sorted unless `preserve_order` is enabled.
                write_entries(out, object.iter());
            } else {
                let mut entries: Vec<(&String, &Value)> = object.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                write_entries(out, entries.into_iter());
            }
            out.push('}');
        }
    }
}

fn write_entries<'a>(out: &mut String, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    for (index, (key, item)) in entries.enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item);
    }
}

/// Writes a JSON string literal, escaping as serde_json does (`"`, `\`, and control characters).
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    // Runs of bytes that need no escape are copied whole; every byte that does is ASCII, so
    // the runs end on character boundaries.
    let mut run_start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            byte if byte < b' ' => "",
            _ => continue,
        };
        out.push_str(&text[run_start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", byte);
        } else {
            out.push_str(escape);
        }
        run_start = index + 1;
    }
    out.push_str(&text[run_start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn logical_row_body() {
        let app = CacheKey::Application {
            name: "myapp".to_string(),
        };
        let cluster = CacheKey::Cluster {
            account: "my-account".to_string(),
            application: "myapp".to_string(),
            name: "replicaSet myapp".to_string(),
        };
        let data = CacheData::logical(&app, [&cluster], 1_700_000_000_000);
        assert_eq!(
            data.body(),
            concat!(
                r#"{"id":"kubernetes.v2:logical:applications:myapp","ttlSeconds":600,"#,
                r#""attributes":{"name":"myapp","cacheExpiry":1700000600000},"#,
                r#""relationships":{"clusters":["kubernetes.v2:logical:clusters:my-account:myapp:replicaSet myapp"],"pod":[],"service":[]}}"#
            )
        );
        assert_eq!(data.body_hash(), body_hash(&data.body()));
        assert_eq!(data.body_hash().len(), 64);
        assert_eq!(
            core_agent_name("my-account"),
            "my-account/KubernetesCoreCachingAgent[1/1]"
        );
    }

    #[test]
    fn full_resource_name_falls_back_to_generate_name() {
        let pod = Resource::parse(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "", "generateName": "web-", "namespace": "ns"}}))
        .unwrap();
        let data = CacheData::infrastructure(&pod, "a", []);
        let Attributes::Infrastructure(attributes) = &data.attributes else {
            panic!("not an infrastructure row");
        };
        assert_eq!(attributes.full_resource_name, "pod web-");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Quarters have short exact decimals, so they parse back bit for bit.
            (-1_000_000i32..1_000_000).prop_map(|q| Value::from(f64::from(q) / 4.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn written_json_parses_back(value in json_value()) {
            let mut out = String::new();
            write_value(&mut out, &value);
            let parsed: Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(parsed, value);
        }

        /// Strings are escaped exactly as serde_json escapes them.
        #[test]
        fn strings_are_escaped_as_serde_json_does(text in any::<String>(), control in prop::collection::vec(0u8..0x20, 0..4)) {
            let mut text = text;
            text.extend(control.into_iter().map(char::from));
            let mut out = String::new();
            write_string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_string(&text).unwrap());
        }
    }
}
