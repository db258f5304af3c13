//! Crafted buckets: a cluster's chain written segment by segment from JSON objects, with its head
//! under the test's control (published, rewritten, rewound), as a hostile or broken writer could.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use outpost::format::codec::{EncodeOptions, encode_all};
use outpost::format::segment::{Counts, ObjectRef, SegmentHeader, Window};
use outpost::format::{ClusterName, Epoch, Head, Record, SegmentRef, SegmentType};
use outpost::store::Store;
use serde_json::Value;

/// One cluster's chain in one epoch, written by the test.
pub struct Chain {
    pub store: Store,
    pub cluster: ClusterName,
    pub epoch: Epoch,
    /// The head as the next [`publish`](Self::publish) writes it.
    pub head: Option<Head>,
    /// The clock of the writer (heartbeats and segment times).
    pub now: DateTime<Utc>,
    /// Whether segments replace what is at their key (a writer rewriting its chain) instead of
    /// being written create-only.
    pub overwrite: bool,
}

/// A pod of `namespace/name` owned by `owner` (`(apiVersion, kind, name)`), if any.
pub fn pod(namespace: &str, name: &str, owner: Option<(&str, &str, &str)>) -> Value {
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{namespace}-{name}"),
            "resourceVersion": "1",
            "labels": {"app": name},
        },
        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]},
    });
    if let Some((api_version, kind, owner_name)) = owner {
        pod["metadata"]["ownerReferences"] = serde_json::json!([{
            "apiVersion": api_version,
            "kind": kind,
            "name": owner_name,
            "uid": format!("uid-{namespace}-{owner_name}"),
            "controller": true,
        }]);
    }
    pod
}

impl Chain {
    /// A chain of `cluster` in a new epoch started now.
    pub fn new(store: &Store, cluster: &str) -> Self {
        let now = Utc::now();
        Self {
            store: store.clone(),
            cluster: ClusterName::new(cluster).unwrap(),
            epoch: Epoch::from_parts(now.timestamp_millis() as u64, rand::random()).unwrap(),
            head: None,
            now,
            overwrite: false,
        }
    }

    /// The tip's seq and sha256, if there is a chain.
    fn tip(&self) -> Option<(u64, String)> {
        self.head
            .as_ref()
            .map(|head| (head.tip().seq, head.tip().sha256.clone()))
    }

    /// Writes a segment of `records` at `seq` after `prev_sha256`, create-only; returns its ref.
    pub async fn write_segment(
        &self,
        segment_type: SegmentType,
        seq: u64,
        prev_sha256: Option<String>,
        records: &[Record],
    ) -> SegmentRef {
        let counts = Counts {
            put: records
                .iter()
                .filter(|r| matches!(r, Record::Put { .. }))
                .count() as u64,
            delete: records
                .iter()
                .filter(|r| matches!(r, Record::Delete { .. }))
                .count() as u64,
        };
        let header = SegmentHeader::new(
            segment_type,
            self.cluster.clone(),
            self.epoch.clone(),
            seq,
            prev_sha256,
            self.now,
            Window {
                from: self.now,
                to: self.now,
            },
            counts,
            vec![],
        );
        let key = self
            .store
            .layout()
            .segment(&self.cluster, &self.epoch, seq, segment_type);
        let (bytes, summary) = encode_all(
            &key.to_string(),
            &header,
            records,
            &EncodeOptions::default(),
        )
        .unwrap();
        if self.overwrite {
            self.store
                .put_overwrite(&key, Bytes::from(bytes))
                .await
                .unwrap();
        } else {
            self.store
                .put_segment(&key, Bytes::from(bytes))
                .await
                .unwrap();
        }
        SegmentRef {
            seq,
            key: key.relative.clone(),
            sha256: summary.sha256,
            bytes: summary.bytes,
        }
    }

    /// Writes the next segment, a snapshot of `objects`, and makes the head start at it.
    pub async fn snapshot(&mut self, objects: &[Value]) -> SegmentRef {
        let records: Vec<Record> = objects
            .iter()
            .map(|o| Record::put_object(o).unwrap())
            .collect();
        let (seq, prev) = match self.tip() {
            Some((seq, sha)) => (seq + 1, Some(sha)),
            None => (1, None),
        };
        let snapshot = self
            .write_segment(SegmentType::Snapshot, seq, prev, &records)
            .await;
        let now = self.now;
        let count = objects.len() as u64;
        match &mut self.head {
            Some(head) => head
                .replace_snapshot(snapshot.clone(), now, count, Default::default())
                .unwrap(),
            None => {
                self.head = Some(Head::new(
                    self.cluster.clone(),
                    self.epoch.clone(),
                    snapshot.clone(),
                    now,
                    count,
                    Default::default(),
                ))
            }
        }
        snapshot
    }

    /// Writes the next segment, a diff putting `puts` and deleting `deletes`, and appends it to
    /// the head.
    pub async fn diff(&mut self, puts: &[Value], deletes: &[Value]) -> SegmentRef {
        let mut records: Vec<Record> = puts
            .iter()
            .map(|o| Record::put_object(o).unwrap())
            .collect();
        records.extend(deletes.iter().map(|o| Record::Delete {
            target: ObjectRef::of_object(o).unwrap(),
        }));
        let (seq, prev) = self.tip().expect("a diff needs a snapshot first");
        let diff = self
            .write_segment(SegmentType::Diff, seq + 1, Some(prev), &records)
            .await;
        let now = self.now;
        let head = self.head.as_mut().unwrap();
        let objects = head.objects;
        head.push_diff(diff.clone(), now, objects, Default::default())
            .unwrap();
        diff
    }

    /// Forgets the diffs after `seq` (the head ends there again), so that the next diffs
    /// rewrite the chain from `seq + 1`, overwriting the segments there.
    pub fn truncate(&mut self, seq: u64) {
        let head = self.head.as_mut().expect("a chain to truncate");
        head.diffs.retain(|d| d.seq <= seq);
        head.seq = head.tip().seq;
        self.overwrite = true;
    }

    /// Writes the head as it is now (overwriting whatever is there).
    pub async fn publish(&mut self) {
        let head = self.head.as_mut().expect("a chain to publish");
        head.heartbeat_at = self.now.max(head.updated_at);
        let key = self.store.layout().head(&self.cluster);
        self.store
            .put_overwrite(&key, Bytes::from(head.to_json().unwrap()))
            .await
            .unwrap();
    }
}

impl Chain {
    /// Writes `identity.json` asking for `account` (the cluster's own name when `None`).
    pub async fn identity(&self, account: Option<&str>) {
        let mut identity = outpost::format::Identity::new(self.cluster.clone(), self.now);
        identity.account.name = account.map(str::to_string);
        let key = self.store.layout().identity(&self.cluster);
        self.store
            .put_overwrite(&key, Bytes::from(identity.to_json().unwrap()))
            .await
            .unwrap();
    }

    /// Writes `decommissioned.json`.
    pub async fn decommission(&self) {
        let gone = outpost::format::Decommissioned::new(self.cluster.clone(), self.now, None);
        let key = self.store.layout().decommissioned(&self.cluster);
        self.store
            .put_overwrite(&key, Bytes::from(gone.to_json().unwrap()))
            .await
            .unwrap();
    }
}
