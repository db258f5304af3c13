//! The small JSON documents of a cluster's prefix: `head.json`, `identity.json` and
//! `decommissioned.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::names::{ClusterName, Epoch};
use super::segment::{AgentInfo, SegmentType};
use super::{Error, FORMAT_VERSION, parse_versioned};

/// The `format` string of `head.json`.
pub const HEAD_FORMAT: &str = "outpost.head";
/// The `format` string of `identity.json`.
pub const IDENTITY_FORMAT: &str = "outpost.identity";
/// The `format` string of `decommissioned.json`.
pub const DECOMMISSIONED_FORMAT: &str = "outpost.decommissioned";

fn format_string(name: &str) -> String {
    format!("{name}/v{FORMAT_VERSION}")
}

/// Where a segment is and what its stored bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub seq: u64,
    /// The object key relative to the bucket prefix, e.g.
    /// `outpost/v1/clusters/prod/epochs/<epoch>/0000000000000001.snap.ndjson.zst`.
    pub key: String,
    /// Lower-case hex sha256 of the stored (compressed) bytes.
    pub sha256: String,
    /// Size of the stored bytes.
    pub bytes: u64,
}

/// A segment as a head lists it, with its place in the chain ([`Head::segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedSegment<'a> {
    /// Its position in the chain.
    pub index: usize,
    pub segment_type: SegmentType,
    pub seq: u64,
    /// Its key relative to the bucket prefix, as listed.
    pub key: &'a str,
    /// The sha256 its stored bytes must have.
    pub sha256: &'a str,
    /// The size its stored bytes must have.
    pub bytes: u64,
    /// The sha256 its header must name as `prev_sha256`: the previous segment's (`None` for the
    /// snapshot, whose link is not checked).
    pub prev_sha256: Option<&'a str>,
}

/// `head.json`: the only mutable object of a cluster, the head of its segment chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Always `outpost.head/v1` for this version.
    pub format: String,
    pub cluster: ClusterName,
    pub epoch: Epoch,
    /// The seq of the newest segment: the last diff, or the snapshot when there are no diffs.
    pub seq: u64,
    /// When the chain last moved (a new segment).
    pub updated_at: DateTime<Utc>,
    /// When the writer last proved it is alive; refreshed even when nothing changes.
    pub heartbeat_at: DateTime<Utc>,
    /// The newest snapshot of the epoch.
    pub snapshot: SegmentRef,
    /// Every diff after the snapshot, in seq order.
    pub diffs: Vec<SegmentRef>,
    /// How many objects the cluster holds after the newest segment.
    pub objects: u64,
    /// Objects per kind (`Kind` or `Kind.group`) after the newest segment.
    pub kinds: BTreeMap<String, u64>,
    /// Set when the writer shut down cleanly and gave up the head: another agent may take it over
    /// at once instead of waiting for the takeover grace. Absent while a writer holds the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
}

impl Head {
    /// A head whose chain is only `snapshot`.
    pub fn new(
        cluster: ClusterName,
        epoch: Epoch,
        snapshot: SegmentRef,
        now: DateTime<Utc>,
        objects: u64,
        kinds: BTreeMap<String, u64>,
    ) -> Self {
        Self {
            format: format_string(HEAD_FORMAT),
            cluster,
            epoch,
            seq: snapshot.seq,
            updated_at: now,
            heartbeat_at: now,
            snapshot,
            diffs: Vec::new(),
            objects,
            kinds,
            released_at: None,
        }
    }

    /// Parses `head.json`, refusing other documents and other format versions.
    pub fn from_json(object: &str, bytes: &[u8]) -> Result<Self, Error> {
        parse_versioned(object, HEAD_FORMAT, bytes)
    }

    /// The JSON bytes to store.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        to_json_pretty("head.json", self)
    }

    /// Extends the chain with the diff that follows the tip.
    pub fn push_diff(
        &mut self,
        diff: SegmentRef,
        now: DateTime<Utc>,
        objects: u64,
        kinds: BTreeMap<String, u64>,
    ) -> Result<(), Error> {
        self.check_next(diff.seq)?;
        self.seq = diff.seq;
        self.diffs.push(diff);
        self.moved(now, objects, kinds);
        Ok(())
    }

    /// Restarts the chain, within the same epoch, at a snapshot that follows the tip (the
    /// diffs before it are dropped from the head; their objects stay in the bucket until
    /// lifecycle rules expire them).
    pub fn replace_snapshot(
        &mut self,
        snapshot: SegmentRef,
        now: DateTime<Utc>,
        objects: u64,
        kinds: BTreeMap<String, u64>,
    ) -> Result<(), Error> {
        self.check_next(snapshot.seq)?;
        self.seq = snapshot.seq;
        self.snapshot = snapshot;
        self.diffs.clear();
        self.moved(now, objects, kinds);
        Ok(())
    }

    fn check_next(&self, seq: u64) -> Result<(), Error> {
        if seq != self.seq + 1 {
            return Err(Error::BrokenChain {
                object: format!("{}/head.json", self.cluster),
                reason: format!("seq {seq} does not follow the tip {}", self.seq),
            });
        }
        Ok(())
    }

    fn moved(&mut self, now: DateTime<Utc>, objects: u64, kinds: BTreeMap<String, u64>) {
        self.updated_at = now;
        self.heartbeat_at = now;
        self.objects = objects;
        self.kinds = kinds;
    }

    /// The chain in order, each segment with its place in it: entry 0 is the snapshot, the
    /// rest are the diffs after it, each linked to the one before (FORMAT §4.3). Every reader
    /// learns a segment's type and link from here.
    pub fn segments(&self) -> impl Iterator<Item = ListedSegment<'_>> {
        let previous = std::iter::once(None).chain(self.segments_in_order().map(Some));
        self.segments_in_order()
            .zip(previous)
            .enumerate()
            .map(|(index, (segment, previous))| ListedSegment {
                index,
                segment_type: if index == 0 {
                    SegmentType::Snapshot
                } else {
                    SegmentType::Diff
                },
                seq: segment.seq,
                key: &segment.key,
                sha256: &segment.sha256,
                bytes: segment.bytes,
                prev_sha256: previous.map(|p: &SegmentRef| p.sha256.as_str()),
            })
    }

    fn segments_in_order(&self) -> impl Iterator<Item = &SegmentRef> {
        std::iter::once(&self.snapshot).chain(self.diffs.iter())
    }

    /// The reference to the newest segment (the tip of the chain).
    pub fn tip(&self) -> &SegmentRef {
        self.diffs.last().unwrap_or(&self.snapshot)
    }

    /// Total stored bytes of the diffs after the snapshot.
    pub fn diff_bytes(&self) -> u64 {
        self.diffs.iter().map(|d| d.bytes).sum()
    }
}

/// A kind the agent watches, or could not watch and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForbiddenKind {
    /// `Kind` for core and well-known kinds, `Kind.group` for CRDs.
    pub kind: String,
    pub reason: String,
}

/// The Spinnaker account a cluster asks to appear as, and who may use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRequest {
    /// Defaults to the cluster name.
    pub name: Option<String>,
    /// Role names by permission (`READ`, `WRITE`, `EXECUTE`), as Spinnaker accounts carry them.
    #[serde(default)]
    pub permissions: BTreeMap<String, Vec<String>>,
}

/// `identity.json`: who a cluster is. The indexer may pin it and refuse an impostor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Always `outpost.identity/v1` for this version.
    pub format: String,
    pub cluster: ClusterName,
    /// UID of the `kube-system` namespace: stable for the life of a cluster.
    pub kube_system_uid: Option<String>,
    /// `gitVersion` of the API server.
    pub server_version: Option<String>,
    /// sha256 (hex) of the DER bytes of the cluster CA certificate.
    pub ca_fingerprint: Option<String>,
    pub agent: AgentInfo,
    /// Kinds being watched (`Kind` or `Kind.group`).
    pub kinds: Vec<String>,
    /// Kinds configured but not readable, with the reason (usually RBAC).
    pub forbidden_kinds: Vec<ForbiddenKind>,
    pub account: AccountRequest,
    /// What the API server's discovery said of each watched kind, so that a reader can serve
    /// the cluster's API back as the cluster served it. Absent (older writers) means unknown.
    #[serde(default)]
    pub resources: Vec<ServedResource>,
    pub updated_at: DateTime<Utc>,
}

/// One resource as the API server's discovery describes it (an `APIResource` of its
/// `APIResourceList`, with the group and version it was listed under).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServedResource {
    /// The API group, `""` for the core group.
    pub group: String,
    /// The version the agent watches it at, e.g. `v1`.
    pub version: String,
    /// The plural name in its URLs, e.g. `deployments`.
    pub name: String,
    /// The singular name, e.g. `deployment` (may be empty: API servers before 1.27 often
    /// leave it so).
    #[serde(default)]
    pub singular_name: String,
    pub kind: String,
    pub namespaced: bool,
    /// e.g. `["deploy"]`.
    #[serde(default)]
    pub short_names: Vec<String>,
    /// e.g. `["all"]`.
    #[serde(default)]
    pub categories: Vec<String>,
    /// The verbs the API server allows on it, e.g. `get`, `list`, `watch`.
    #[serde(default)]
    pub verbs: Vec<String>,
}

impl Identity {
    /// An identity document for this build's format version.
    pub fn new(cluster: ClusterName, updated_at: DateTime<Utc>) -> Self {
        Self {
            format: format_string(IDENTITY_FORMAT),
            cluster,
            kube_system_uid: None,
            server_version: None,
            ca_fingerprint: None,
            agent: AgentInfo::current(),
            kinds: Vec::new(),
            forbidden_kinds: Vec::new(),
            account: AccountRequest::default(),
            resources: Vec::new(),
            updated_at,
        }
    }

    /// Parses `identity.json`, refusing other documents and other format versions.
    pub fn from_json(object: &str, bytes: &[u8]) -> Result<Self, Error> {
        parse_versioned(object, IDENTITY_FORMAT, bytes)
    }

    /// The JSON bytes to store.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        to_json_pretty("identity.json", self)
    }
}

/// `decommissioned.json`: the cluster is gone; the indexer evicts its rows at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decommissioned {
    /// Always `outpost.decommissioned/v1` for this version.
    pub format: String,
    pub cluster: ClusterName,
    pub decommissioned_at: DateTime<Utc>,
    /// Free text, e.g. "terraform destroy".
    pub reason: Option<String>,
}

impl Decommissioned {
    /// A decommission notice for this build's format version.
    pub fn new(cluster: ClusterName, at: DateTime<Utc>, reason: Option<String>) -> Self {
        Self {
            format: format_string(DECOMMISSIONED_FORMAT),
            cluster,
            decommissioned_at: at,
            reason,
        }
    }

    /// Parses `decommissioned.json`, refusing other documents and other format versions.
    pub fn from_json(object: &str, bytes: &[u8]) -> Result<Self, Error> {
        parse_versioned(object, DECOMMISSIONED_FORMAT, bytes)
    }

    /// The JSON bytes to store.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        to_json_pretty("decommissioned.json", self)
    }
}

fn to_json_pretty<T: Serialize>(object: &str, value: &T) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Serialize {
        object: object.to_string(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        let cluster = ClusterName::new("prod").unwrap();
        let epoch = Epoch::from_parts(1_700_000_000_000, 1).unwrap();
        let snapshot = SegmentRef {
            seq: 1,
            key: "k".into(),
            sha256: "00".repeat(32),
            bytes: 10,
        };
        Head::new(cluster, epoch, snapshot, Utc::now(), 3, BTreeMap::new())
    }

    #[test]
    fn head_round_trips_and_refuses_other_versions() {
        let head = head();
        let bytes = head.to_json().unwrap();
        assert_eq!(Head::from_json("h", &bytes).unwrap(), head);
        let newer = String::from_utf8(bytes)
            .unwrap()
            .replace("outpost.head/v1", "outpost.head/v2");
        let err = Head::from_json("clusters/prod/head.json", newer.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { .. }), "{err}");
        assert!(err.to_string().contains("clusters/prod/head.json"));
    }

    #[test]
    fn the_chain_grows_by_one_seq_at_a_time() {
        let mut h = head();
        let next = |seq| SegmentRef {
            seq,
            key: format!("k{seq}"),
            sha256: "11".repeat(32),
            bytes: 1,
        };
        h.push_diff(next(2), Utc::now(), 4, BTreeMap::new())
            .unwrap();
        assert!(
            h.push_diff(next(4), Utc::now(), 4, BTreeMap::new())
                .is_err()
        );
        h.push_diff(next(3), Utc::now(), 5, BTreeMap::new())
            .unwrap();
        assert_eq!((h.seq, h.diffs.len(), h.objects), (3, 2, 5));
        h.replace_snapshot(next(4), Utc::now(), 5, BTreeMap::new())
            .unwrap();
        assert_eq!((h.seq, h.snapshot.seq, h.diffs.len()), (4, 4, 0));
        assert_eq!(h.tip().seq, 4);
    }

    #[test]
    fn documents_are_not_mistaken_for_each_other() {
        let bytes = head().to_json().unwrap();
        assert!(matches!(
            Identity::from_json("i", &bytes),
            Err(Error::WrongDocument { .. })
        ));
        assert!(matches!(
            Head::from_json("h", b"{\"format\": 1}"),
            Err(Error::ParseDocument { .. })
        ));
        assert!(matches!(
            Head::from_json("h", b"not json"),
            Err(Error::ParseDocument { .. })
        ));
    }

    #[test]
    fn a_head_naming_an_invalid_cluster_is_refused() {
        let bytes = String::from_utf8(head().to_json().unwrap())
            .unwrap()
            .replace("\"prod\"", "\"../other\"");
        assert!(Head::from_json("h", bytes.as_bytes()).is_err());
    }

    #[test]
    fn identity_and_decommissioned_round_trip() {
        let mut identity = Identity::new(ClusterName::new("a").unwrap(), Utc::now());
        identity.kinds = vec!["Deployment".into(), "Widget.example.com".into()];
        identity.forbidden_kinds.push(ForbiddenKind {
            kind: "Secret".into(),
            reason: "forbidden".into(),
        });
        let bytes = identity.to_json().unwrap();
        assert_eq!(Identity::from_json("i", &bytes).unwrap(), identity);
        let d = Decommissioned::new(ClusterName::new("a").unwrap(), Utc::now(), None);
        assert_eq!(
            Decommissioned::from_json("d", &d.to_json().unwrap()).unwrap(),
            d
        );
    }
}
