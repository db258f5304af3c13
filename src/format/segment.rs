//! Segment contents: the header line and the put/delete records that follow it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::names::{ClusterName, Epoch};

/// The `format` string of a segment header.
pub const SEGMENT_FORMAT: &str = "outpost.segment";

/// A full snapshot or the changes since the previous segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentType {
    /// One `put` per object in the cluster.
    Snapshot,
    /// The net change per object since the previous segment of the epoch.
    Diff,
}

impl SegmentType {
    /// The word used in keys and headers: `snapshot` or `diff`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Diff => "diff",
        }
    }
}

/// The time span of cluster changes a segment covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// How many records of each op a segment holds; the decoder checks them against the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub put: u64,
    pub delete: u64,
}

/// Which program wrote a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub version: String,
}

impl AgentInfo {
    /// This build of outpost.
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Line 1 of every segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// Always `outpost.segment/v1` for this version.
    pub format: String,
    #[serde(rename = "type")]
    pub segment_type: SegmentType,
    pub cluster: ClusterName,
    pub epoch: Epoch,
    pub seq: u64,
    /// sha256 (lower-case hex) of the previous segment's stored bytes; `null` for seq 1.
    pub prev_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub window: Window,
    pub counts: Counts,
    /// Ids of the redaction rules applied to every object in the segment.
    pub redaction: Vec<String>,
    pub agent: AgentInfo,
}

impl SegmentHeader {
    /// A header for this build's format version.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        segment_type: SegmentType,
        cluster: ClusterName,
        epoch: Epoch,
        seq: u64,
        prev_sha256: Option<String>,
        created_at: DateTime<Utc>,
        window: Window,
        counts: Counts,
        redaction: Vec<String>,
    ) -> Self {
        Self {
            format: format!("{SEGMENT_FORMAT}/v{}", super::FORMAT_VERSION),
            segment_type,
            cluster,
            epoch,
            seq,
            prev_sha256,
            created_at,
            window,
            counts,
            redaction,
            agent: AgentInfo::current(),
        }
    }
}

/// Which Kubernetes object a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ObjectRef {
    /// The reference of a Kubernetes object given as JSON (`apiVersion`, `kind`,
    /// `metadata.namespace`, `metadata.name`, `metadata.uid`), or `None` if a required field is
    /// missing.
    pub fn of_object(object: &serde_json::Value) -> Option<Self> {
        let text = |pointer: &str| object.pointer(pointer).and_then(serde_json::Value::as_str);
        Some(Self {
            api_version: text("/apiVersion")?.to_string(),
            kind: text("/kind")?.to_string(),
            namespace: text("/metadata/namespace").unwrap_or_default().to_string(),
            name: text("/metadata/name")?.to_string(),
            uid: text("/metadata/uid").unwrap_or_default().to_string(),
        })
    }

    /// The identity of the object across versions of its API: group, kind, namespace, name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: api_group(&self.api_version).to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

/// The identity of an object in a cluster: (API group, kind, namespace, name). Two records with
/// the same key in one segment are the same object; the later one wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The group of an `apiVersion`: `apps/v1` → `apps`, `v1` → `` (the core group).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// One change to one object.
#[derive(Debug, Clone)]
pub enum Record {
    /// The object as it is now (after redaction).
    Put {
        target: ObjectRef,
        resource_version: String,
        object: Box<RawValue>,
    },
    /// The object is gone.
    Delete { target: ObjectRef },
}

impl Record {
    /// A `put` of a Kubernetes object given as JSON, or `None` if it lacks `apiVersion`, `kind`
    /// or `metadata.name`.
    pub fn put_object(object: &serde_json::Value) -> Option<Self> {
        let target = ObjectRef::of_object(object)?;
        let resource_version = object
            .pointer("/metadata/resourceVersion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = RawValue::from_string(object.to_string()).ok()?;
        Some(Self::Put {
            target,
            resource_version,
            object,
        })
    }

    /// The object the record is about.
    pub fn target(&self) -> &ObjectRef {
        match self {
            Self::Put { target, .. } | Self::Delete { target } => target,
        }
    }

    /// `put` or `delete`.
    pub fn op(&self) -> Op {
        match self {
            Self::Put { .. } => Op::Put,
            Self::Delete { .. } => Op::Delete,
        }
    }
}

impl PartialEq for Record {
    /// Records are equal when they say the same thing; objects compare by their JSON text.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Put {
                    target: a,
                    resource_version: ra,
                    object: oa,
                },
                Self::Put {
                    target: b,
                    resource_version: rb,
                    object: ob,
                },
            ) => a == b && ra == rb && oa.get() == ob.get(),
            (Self::Delete { target: a }, Self::Delete { target: b }) => a == b,
            _ => false,
        }
    }
}

/// The operation of a record line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Delete,
}

/// A record line as it is written: flat, with `object` only on puts. Serde's tagged enums
/// buffer their content, which `RawValue` does not survive, hence this flat form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordLine<'a> {
    pub op: Op,
    #[serde(rename = "apiVersion", borrow)]
    pub api_version: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub namespace: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub uid: std::borrow::Cow<'a, str>,
    #[serde(
        rename = "resourceVersion",
        default,
        skip_serializing_if = "Option::is_none",
        borrow
    )]
    pub resource_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub object: Option<&'a RawValue>,
}

impl<'a> RecordLine<'a> {
    /// The line form of a record, borrowing from it.
    pub fn of(record: &'a Record) -> Self {
        let target = record.target();
        let (resource_version, object) = match record {
            Record::Put {
                resource_version,
                object,
                ..
            } => (Some(resource_version.as_str().into()), Some(&**object)),
            Record::Delete { .. } => (None, None),
        };
        Self {
            op: record.op(),
            api_version: target.api_version.as_str().into(),
            kind: target.kind.as_str().into(),
            namespace: target.namespace.as_str().into(),
            name: target.name.as_str().into(),
            uid: target.uid.as_str().into(),
            resource_version,
            object,
        }
    }

    /// The owned record, or why the line is not a valid record.
    pub fn into_record(self) -> Result<Record, String> {
        if self.kind.is_empty() || self.name.is_empty() || self.api_version.is_empty() {
            return Err("apiVersion, kind and name must not be empty".to_string());
        }
        let target = ObjectRef {
            api_version: self.api_version.into_owned(),
            kind: self.kind.into_owned(),
            namespace: self.namespace.into_owned(),
            name: self.name.into_owned(),
            uid: self.uid.into_owned(),
        };
        match (self.op, self.object, self.resource_version) {
            (Op::Put, Some(object), Some(resource_version)) => {
                if !object.get().starts_with('{') {
                    return Err("a put's object must be a JSON object".to_string());
                }
                Ok(Record::Put {
                    target,
                    resource_version: resource_version.into_owned(),
                    object: object.to_owned(),
                })
            }
            (Op::Put, None, _) => Err("a put must carry an object".to_string()),
            (Op::Put, Some(_), None) => Err("a put must carry a resourceVersion".to_string()),
            (Op::Delete, None, None) => Ok(Record::Delete { target }),
            (Op::Delete, _, _) => {
                Err("a delete carries neither an object nor a resourceVersion".to_string())
            }
        }
    }
}

/// Writes a record as one JSON line in the segment's own record form (without the newline).
pub fn write_record_json(out: &mut impl std::io::Write, record: &Record) -> serde_json::Result<()> {
    serde_json::to_writer(out, &RecordLine::of(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_groups() {
        assert_eq!(api_group("v1"), "");
        assert_eq!(api_group("apps/v1"), "apps");
        assert_eq!(api_group("networking.k8s.io/v1"), "networking.k8s.io");
    }

    #[test]
    fn object_keys_ignore_the_api_version() {
        let a = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "ns".into(),
            name: "web".into(),
            uid: "u1".into(),
        };
        let b = ObjectRef {
            api_version: "apps/v1beta2".into(),
            uid: "u2".into(),
            ..a.clone()
        };
        assert_eq!(a.key(), b.key());
    }
}
