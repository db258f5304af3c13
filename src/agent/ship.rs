//! Shipping: turns the agent's [`State`] into segments and moves `head.json` forward by
//! compare-and-swap, electing one writer among several agents of a cluster (docs/FORMAT.md §7.6).
//!
//! [`Shipper::tick`] is the one step function; each call does at most one of: stand by (another
//! live agent writes), take over (start a new epoch with a snapshot), ship a snapshot (first one,
//! or the chain grew long), ship a diff (something changed), refresh the heartbeat (nothing
//! changed for a heartbeat interval), or nothing.
//!
//! Exactness rests on two rules. The state is marked shipped only after the head that references
//! the segment is in the bucket. And after a failed ship — when it is unknown whether a segment or
//! a head landed — the next ship starts a new epoch with a snapshot, so nothing is ever counted
//! twice or skipped, whatever landed.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::format::segment::{Counts, Window};
use crate::format::{
    self, ClusterName, EncodeOptions, Epoch, Head, SegmentHeader, SegmentRef, SegmentType,
    SegmentWriter,
};
use crate::store::{self, Fetched, Store, Version};

use super::compressed::{self, JsonReader};
use super::config::SnapshotPolicy;
use super::state::{Change, Entry, State};

/// What went wrong while shipping; every variant names the cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cluster {cluster}: {source}")]
    Store {
        cluster: String,
        #[source]
        source: Box<store::Error>,
    },
    #[error("cluster {cluster}: {source}")]
    Encode {
        cluster: String,
        #[source]
        source: format::Error,
    },
    #[error("cluster {cluster}: {key} holds a document that is not a valid head: {source}")]
    ReadHead {
        cluster: String,
        key: String,
        #[source]
        source: format::Error,
    },
    #[error("cluster {cluster}: {source}")]
    Object {
        cluster: String,
        #[source]
        source: compressed::Error,
    },
    #[error(
        "cluster {cluster}: {key} already holds other bytes: a segment of epoch {epoch} was written by someone else"
    )]
    SegmentTaken {
        cluster: String,
        key: String,
        epoch: String,
    },
}

/// How segments are written and when the chain restarts.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// zstd level of segments (default 3).
    pub zstd_level: i32,
    /// When a new snapshot restarts the chain (default: after 240 diffs, when the diffs outweigh
    /// the snapshot, or after 24 h).
    pub snapshot: SnapshotPolicy,
    /// Refresh `heartbeat_at` after this long without a new segment (default 5 min).
    pub heartbeat: chrono::Duration,
    /// Take over from a writer whose heartbeat is older than this (default 15 min).
    pub takeover_grace: chrono::Duration,
    /// Ids of the redaction rules applied, for segment headers.
    pub redaction: Vec<String>,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            snapshot: SnapshotPolicy::default(),
            heartbeat: chrono::Duration::minutes(5),
            takeover_grace: chrono::Duration::minutes(15),
            redaction: Vec::new(),
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq)]
pub enum Shipped {
    /// A snapshot became the head (`takeover`: of a head another epoch held).
    Snapshot {
        epoch: Epoch,
        seq: u64,
        bytes: u64,
        records: u64,
        takeover: bool,
    },
    /// A diff was appended.
    Diff { seq: u64, bytes: u64, records: u64 },
    /// Only `heartbeat_at` was refreshed.
    Heartbeat,
    /// Nothing was due.
    Idle,
    /// Another agent is the writer and is alive.
    Standby {
        owner: Epoch,
        heartbeat_at: DateTime<Utc>,
    },
    /// Another agent took the head over since our last write: we stand by from now on.
    Superseded { owner: Epoch },
}

/// Our tenure as the writer.
#[derive(Debug)]
struct Writing {
    epoch: Epoch,
    /// The head we last wrote, with its version; `None` until the epoch's first snapshot lands.
    head: Option<(Head, Version)>,
    /// When the head's snapshot was written (by us: every epoch starts with one).
    snapshot_at: Option<DateTime<Utc>>,
}

/// Ships one cluster's state.
#[derive(Debug)]
pub struct Shipper {
    store: Store,
    cluster: ClusterName,
    options: ShipOptions,
    writing: Option<Writing>,
    /// The head as last read while not writing (to take it over by CAS), with its version.
    observed: Option<(Head, Version)>,
    /// A ship failed and its outcome is unknown: the next ship starts a new epoch.
    tainted: bool,
    /// The epoch this agent wrote before a failed ship: a head still naming it is ours, not a
    /// live writer's, and is taken over at once.
    retired: Option<Epoch>,
}

/// A segment about to be written: where it goes in the chain and its writer, header written.
struct NextSegment {
    epoch: Epoch,
    seq: u64,
    key: store::Key,
    writer: SegmentWriter<Vec<u8>>,
    json: JsonReader,
}

impl Shipper {
    pub fn new(store: Store, cluster: ClusterName, options: ShipOptions) -> Self {
        Self {
            store,
            cluster,
            options,
            writing: None,
            observed: None,
            tainted: false,
            retired: None,
        }
    }

    /// The redaction rule ids the next segments name (after a configuration change).
    pub fn set_redaction(&mut self, ids: Vec<String>) {
        self.options.redaction = ids;
    }

    /// Whether this agent currently is the writer.
    pub fn is_writer(&self) -> bool {
        self.writing.is_some()
    }

    /// The head this agent last wrote.
    pub fn head(&self) -> Option<&Head> {
        self.writing
            .as_ref()
            .and_then(|w| w.head.as_ref().map(|(h, _)| h))
    }

    /// One step: see the module documentation. `state` is marked shipped when a segment lands.
    pub async fn tick(&mut self, state: &mut State, now: DateTime<Utc>) -> Result<Shipped, Error> {
        if self.tainted {
            self.tainted = false;
            if let Some(writing) = self.writing.take() {
                self.retired = Some(writing.epoch);
            }
        }
        let result = self.step(state, now).await;
        if result.is_err() {
            self.tainted = true;
        }
        result
    }

    async fn step(&mut self, state: &mut State, now: DateTime<Utc>) -> Result<Shipped, Error> {
        let Some(writing) = &self.writing else {
            return self.elect(state, now).await;
        };
        let Some((head, _)) = &writing.head else {
            return self.ship_snapshot(state, now, false).await;
        };
        let policy = &self.options.snapshot;
        let long = policy.chain_long(head.diffs.len(), head.diff_bytes(), head.snapshot.bytes);
        // A bucket lifecycle rule expires old objects: an idle chain is renewed before it could.
        let old = writing
            .snapshot_at
            .is_none_or(|at| policy.too_old((now - at).to_std().unwrap_or_default()));
        if (state.has_changes() && long) || old {
            return self.ship_snapshot(state, now, false).await;
        }
        if state.has_changes() {
            return self.ship_diff(state, now).await;
        }
        if now - head.heartbeat_at >= self.options.heartbeat {
            return self.heartbeat(now).await;
        }
        Ok(Shipped::Idle)
    }

    /// Not the writer: read the head and either stand by or become the writer.
    async fn elect(&mut self, state: &mut State, now: DateTime<Utc>) -> Result<Shipped, Error> {
        let key = self.store.layout().head(&self.cluster);
        let known = self.observed.as_ref().map(|(_, v)| v);
        match self
            .store
            .get_if_changed(&key, known)
            .await
            .map_err(|e| self.store_error(e))?
        {
            Fetched::Missing => self.observed = None,
            Fetched::Unchanged => {}
            Fetched::Changed(bytes, version) => {
                let head = Head::from_json(&key.to_string(), &bytes).map_err(|source| {
                    Error::ReadHead {
                        cluster: self.cluster.to_string(),
                        key: key.to_string(),
                        source,
                    }
                })?;
                self.observed = Some((head, version));
            }
        }
        if let Some((head, _)) = &self.observed
            && Some(&head.epoch) != self.retired.as_ref()
            && head.released_at.is_none()
            && now - head.heartbeat_at < self.options.takeover_grace
        {
            return Ok(Shipped::Standby {
                owner: head.epoch.clone(),
                heartbeat_at: head.heartbeat_at,
            });
        }
        let takeover = self.observed.is_some();
        self.writing = Some(Writing {
            epoch: new_epoch(now),
            head: None,
            snapshot_at: None,
        });
        self.ship_snapshot(state, now, takeover).await
    }

    async fn ship_snapshot(
        &mut self,
        state: &mut State,
        now: DateTime<Utc>,
        takeover: bool,
    ) -> Result<Shipped, Error> {
        let counts = Counts {
            put: state.len() as u64,
            delete: 0,
        };
        let NextSegment {
            epoch,
            seq,
            key,
            mut writer,
            mut json,
        } = self.next_segment(SegmentType::Snapshot, counts, now)?;
        for entry in state.entries() {
            self.write_put(&mut writer, &mut json, entry)?;
        }
        let (bytes, summary) = writer.finish().map_err(|e| self.encode_error(e))?;
        let reference = self.put_segment(&key, &epoch, bytes, &summary).await?;
        let head = match self.writing.as_ref().and_then(|w| w.head.as_ref()) {
            Some((head, _)) => {
                let mut head = head.clone();
                head.replace_snapshot(reference, now, state.len() as u64, state.kind_counts())
                    .map_err(|e| self.encode_error(e))?;
                head
            }
            None => Head::new(
                self.cluster.clone(),
                epoch.clone(),
                reference,
                now,
                state.len() as u64,
                state.kind_counts(),
            ),
        };
        if let Some(owner) = self.put_head(head).await? {
            return Ok(Shipped::Superseded { owner });
        }
        if let Some(writing) = &mut self.writing {
            writing.snapshot_at = Some(now);
        }
        state.shipped();
        Ok(Shipped::Snapshot {
            epoch,
            seq,
            bytes: summary.bytes,
            records: counts.put,
            takeover,
        })
    }

    async fn ship_diff(&mut self, state: &mut State, now: DateTime<Utc>) -> Result<Shipped, Error> {
        let mut counts = Counts::default();
        for change in state.changes() {
            match change {
                Change::Put(_) => counts.put += 1,
                Change::Delete(_) => counts.delete += 1,
            }
        }
        let NextSegment {
            epoch,
            seq,
            key,
            mut writer,
            mut json,
        } = self.next_segment(SegmentType::Diff, counts, now)?;
        for change in state.changes() {
            match change {
                Change::Put(entry) => self.write_put(&mut writer, &mut json, entry)?,
                Change::Delete(target) => writer
                    .write_delete(target)
                    .map_err(|e| self.encode_error(e))?,
            }
        }
        let (bytes, summary) = writer.finish().map_err(|e| self.encode_error(e))?;
        let reference = self.put_segment(&key, &epoch, bytes, &summary).await?;
        let Some((head, _)) = self.writing.as_ref().and_then(|w| w.head.as_ref()) else {
            return Err(self.encode_error(format::Error::BrokenChain {
                object: key.to_string(),
                reason: "a diff needs a head to follow".into(),
            }));
        };
        let mut head = head.clone();
        head.push_diff(reference, now, state.len() as u64, state.kind_counts())
            .map_err(|e| self.encode_error(e))?;
        if let Some(owner) = self.put_head(head).await? {
            return Ok(Shipped::Superseded { owner });
        }
        state.shipped();
        Ok(Shipped::Diff {
            seq,
            bytes: summary.bytes,
            records: counts.put + counts.delete,
        })
    }

    async fn heartbeat(&mut self, now: DateTime<Utc>) -> Result<Shipped, Error> {
        let Some((head, _)) = self.writing.as_ref().and_then(|w| w.head.as_ref()) else {
            return Ok(Shipped::Idle);
        };
        let mut head = head.clone();
        head.heartbeat_at = now;
        if let Some(owner) = self.put_head(head).await? {
            return Ok(Shipped::Superseded { owner });
        }
        Ok(Shipped::Heartbeat)
    }

    /// Gives the head up on a clean shutdown (`released_at`), so that another agent takes over at
    /// once instead of after the takeover grace. Does nothing when not the writer.
    pub async fn release(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        let Some((head, _)) = self.writing.as_ref().and_then(|w| w.head.as_ref()) else {
            return Ok(());
        };
        let mut head = head.clone();
        head.heartbeat_at = now;
        head.released_at = Some(now);
        self.put_head(head).await?;
        self.writing = None;
        Ok(())
    }

    /// The epoch, seq and `prev_sha256` of the next segment (called only while writing).
    fn next_position(&self) -> (Epoch, u64, Option<String>) {
        let epoch = self
            .writing
            .as_ref()
            .map_or_else(|| new_epoch(Utc::now()), |w| w.epoch.clone());
        match self.head() {
            Some(head) => (epoch, head.seq + 1, Some(head.tip().sha256.clone())),
            None => (epoch, 1, None),
        }
    }

    /// The next segment of the chain, of `segment_type` with `counts` records, written at
    /// `now`: its position after the tip, its key, and a writer that has its header.
    fn next_segment(
        &self,
        segment_type: SegmentType,
        counts: Counts,
        now: DateTime<Utc>,
    ) -> Result<NextSegment, Error> {
        let (epoch, seq, prev) = self.next_position();
        let window_from = self.head().map_or(now, |h| h.updated_at);
        let header = SegmentHeader::new(
            segment_type,
            self.cluster.clone(),
            epoch.clone(),
            seq,
            prev,
            now,
            Window {
                from: window_from.min(now),
                to: now,
            },
            counts,
            self.options.redaction.clone(),
        );
        let key = self
            .store
            .layout()
            .segment(&self.cluster, &epoch, seq, segment_type);
        let options = EncodeOptions {
            level: self.options.zstd_level,
        };
        let writer = SegmentWriter::new(&key.to_string(), Vec::new(), &header, &options)
            .map_err(|e| self.encode_error(e))?;
        let json = self.json_reader()?;
        Ok(NextSegment {
            epoch,
            seq,
            key,
            writer,
            json,
        })
    }

    fn json_reader(&self) -> Result<JsonReader, Error> {
        JsonReader::new().map_err(|source| self.object_error(source))
    }

    /// Appends a `put` of `entry`, its JSON decompressed through `json`.
    fn write_put(
        &self,
        writer: &mut SegmentWriter<Vec<u8>>,
        json: &mut JsonReader,
        entry: &Entry,
    ) -> Result<(), Error> {
        let object = json
            .read(&entry.object)
            .map_err(|source| self.object_error(source))?;
        writer
            .write_put(&entry.target, &entry.resource_version, object)
            .map_err(|e| self.encode_error(e))
    }

    /// Writes a segment create-only and returns its reference for the head.
    async fn put_segment(
        &self,
        key: &store::Key,
        epoch: &Epoch,
        bytes: Vec<u8>,
        summary: &format::SegmentSummary,
    ) -> Result<SegmentRef, Error> {
        match self.store.put_segment(key, Bytes::from(bytes)).await {
            Ok(_) => Ok(SegmentRef {
                seq: summary.header.seq,
                key: key.relative.clone(),
                sha256: summary.sha256.clone(),
                bytes: summary.bytes,
            }),
            Err(store::Error::AlreadyExists { .. }) => Err(Error::SegmentTaken {
                cluster: self.cluster.to_string(),
                key: key.to_string(),
                epoch: epoch.to_string(),
            }),
            Err(e) => Err(self.store_error(e)),
        }
    }

    /// Moves the head by compare-and-swap. `Some(owner)` if another epoch took it over (we stop
    /// writing); the version written otherwise becomes the next expected one.
    async fn put_head(&mut self, head: Head) -> Result<Option<Epoch>, Error> {
        let key = self.store.layout().head(&self.cluster);
        let bytes = Bytes::from(head.to_json().map_err(|e| self.encode_error(e))?);
        // Expected version: our own last write, or the head we observed before taking over.
        let expected = match self.writing.as_ref().and_then(|w| w.head.as_ref()) {
            Some((_, version)) => Some(version.clone()),
            None => self.observed.as_ref().map(|(_, v)| v.clone()),
        };
        let written = match &expected {
            Some(version) => self.store.put_update(&key, bytes, version).await,
            None => self.store.put_create(&key, bytes).await,
        };
        match written {
            Ok(version) => {
                if let Some(writing) = &mut self.writing {
                    writing.head = Some((head, version));
                }
                self.observed = None;
                self.retired = None;
                Ok(None)
            }
            Err(store::Error::Conflict { .. } | store::Error::AlreadyExists { .. }) => {
                // Someone else moved the head: find out who, and stand by.
                self.writing = None;
                let (bytes, version) = self
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| self.store_error(e))?;
                let current = Head::from_json(&key.to_string(), &bytes).map_err(|source| {
                    Error::ReadHead {
                        cluster: self.cluster.to_string(),
                        key: key.to_string(),
                        source,
                    }
                })?;
                let owner = current.epoch.clone();
                self.observed = Some((current, version));
                Ok(Some(owner))
            }
            Err(e) => Err(self.store_error(e)),
        }
    }

    fn store_error(&self, source: store::Error) -> Error {
        Error::Store {
            cluster: self.cluster.to_string(),
            source: Box::new(source),
        }
    }

    fn object_error(&self, source: compressed::Error) -> Error {
        Error::Object {
            cluster: self.cluster.to_string(),
            source,
        }
    }

    fn encode_error(&self, source: format::Error) -> Error {
        Error::Encode {
            cluster: self.cluster.to_string(),
            source,
        }
    }
}

/// A fresh epoch starting now.
fn new_epoch(now: DateTime<Utc>) -> Epoch {
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0) % 10_000_000_000_000;
    Epoch::from_parts(millis, rand::random())
        .unwrap_or_else(|_| unreachable!("13 digits and 8 hex digits always form an epoch"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agent::compressed::CompressedJson;
    use crate::agent::state::Scope;
    use crate::format::DecodeLimits;
    use crate::format::segment::{ObjectRef, Record};
    use chrono::Duration;

    fn cluster() -> ClusterName {
        ClusterName::new("ship").unwrap()
    }

    async fn store() -> Store {
        Store::open(&format!("memory://ship-{:016x}", rand::random::<u64>()))
            .await
            .unwrap()
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_435_200 + seconds, 0).unwrap()
    }

    fn pod(name: &str, rv: u64) -> Entry {
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": rv.to_string()}});
        Entry {
            target: ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "ns".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            resource_version: rv.to_string(),
            object: CompressedJson::compress(&object.to_string()).unwrap(),
            scope: Scope {
                kind: "Pod".into(),
                namespace: None,
            },
        }
    }

    fn options() -> ShipOptions {
        ShipOptions {
            heartbeat: Duration::minutes(5),
            takeover_grace: Duration::minutes(15),
            snapshot: SnapshotPolicy {
                every_diffs: 3,
                when_diff_bytes_exceed: 100.0,
                max_age: std::time::Duration::from_secs(3600),
            },
            ..ShipOptions::default()
        }
    }

    /// Reads the chain the head names, verifies it, and returns name → resourceVersion.
    async fn replay(store: &Store) -> (Head, BTreeMap<String, String>) {
        let c = cluster();
        let head = store.read_head(&c).await.unwrap().unwrap();
        let mut objects = BTreeMap::new();
        for listed in head.segments() {
            let mut stream = store
                .read_listed(&c, &head, &listed, &DecodeLimits::default())
                .await
                .unwrap();
            while let Some(record) = stream.next().await {
                match record.unwrap() {
                    Record::Put {
                        target,
                        resource_version,
                        ..
                    } => objects.insert(target.name, resource_version),
                    Record::Delete { target } => objects.remove(&target.name),
                };
            }
            stream.finish().await.unwrap();
        }
        (head, objects)
    }

    fn expected(state: &State) -> BTreeMap<String, String> {
        state
            .entries()
            .map(|e| (e.target.name.clone(), e.resource_version.clone()))
            .collect()
    }

    #[tokio::test]
    async fn snapshot_then_diffs_then_heartbeats_then_a_new_snapshot() {
        let store = store().await;
        let mut shipper = Shipper::new(store.clone(), cluster(), options());
        let mut state = State::new();
        state.apply(pod("a", 1));
        state.apply(pod("b", 2));
        let first = shipper.tick(&mut state, t(0)).await.unwrap();
        assert!(
            matches!(
                first,
                Shipped::Snapshot {
                    seq: 1,
                    records: 2,
                    takeover: false,
                    ..
                }
            ),
            "{first:?}"
        );
        assert_eq!(replay(&store).await.1, expected(&state));

        assert_eq!(
            shipper.tick(&mut state, t(15)).await.unwrap(),
            Shipped::Idle
        );
        state.apply(pod("a", 3));
        state.delete(&pod("b", 0).target.key());
        state.apply(pod("c", 4));
        assert!(matches!(
            shipper.tick(&mut state, t(30)).await.unwrap(),
            Shipped::Diff {
                seq: 2,
                records: 3,
                ..
            }
        ));
        assert_eq!(replay(&store).await.1, expected(&state));

        // Idle until the heartbeat is due, then only heartbeat_at moves.
        assert_eq!(
            shipper.tick(&mut state, t(300)).await.unwrap(),
            Shipped::Idle
        );
        assert_eq!(
            shipper.tick(&mut state, t(331)).await.unwrap(),
            Shipped::Heartbeat
        );
        let (head, _) = replay(&store).await;
        assert_eq!(
            (head.seq, head.heartbeat_at, head.updated_at),
            (2, t(331), t(30))
        );

        // Three diffs in all, then the chain restarts at a snapshot in the same epoch.
        for (i, rv) in [(2, 10), (3, 11)] {
            state.apply(pod("a", rv));
            assert!(matches!(
                shipper.tick(&mut state, t(400 + i)).await.unwrap(),
                Shipped::Diff { .. }
            ));
        }
        state.apply(pod("d", 12));
        let restarted = shipper.tick(&mut state, t(500)).await.unwrap();
        assert!(
            matches!(
                restarted,
                Shipped::Snapshot {
                    seq: 5,
                    records: 3,
                    ..
                }
            ),
            "{restarted:?}"
        );
        let (head, objects) = replay(&store).await;
        assert_eq!(
            (head.snapshot.seq, head.diffs.len(), head.objects),
            (5, 0, 3)
        );
        assert_eq!(objects, expected(&state));
    }

    #[tokio::test]
    async fn diffs_outgrowing_the_snapshot_restart_the_chain() {
        let store = store().await;
        let options = ShipOptions {
            snapshot: SnapshotPolicy {
                every_diffs: 1000,
                when_diff_bytes_exceed: 0.5,
                ..options().snapshot
            },
            ..options()
        };
        let mut shipper = Shipper::new(store.clone(), cluster(), options);
        let mut state = State::new();
        for i in 0..50 {
            state.apply(pod(&format!("p{i}"), i));
        }
        shipper.tick(&mut state, t(0)).await.unwrap();
        let mut rv = 100;
        let mut diffs = 0;
        loop {
            for i in 0..10 {
                rv += 1;
                state.apply(pod(&format!("p{i}"), rv));
            }
            match shipper.tick(&mut state, t(rv as i64)).await.unwrap() {
                Shipped::Diff { .. } => diffs += 1,
                Shipped::Snapshot { .. } => break,
                other => panic!("{other:?}"),
            }
            assert!(diffs < 50, "the chain never restarted");
        }
        let (head, objects) = replay(&store).await;
        assert!(diffs >= 1 && head.diffs.is_empty());
        assert_eq!(objects, expected(&state));
    }

    #[tokio::test]
    async fn an_idle_chain_gets_a_new_snapshot_before_the_lifecycle_could_expire_it() {
        let store = store().await;
        // max_age 1 h (options()); heartbeat 5 min.
        let mut shipper = Shipper::new(store.clone(), cluster(), options());
        let mut state = State::new();
        state.apply(pod("a", 1));
        shipper.tick(&mut state, t(0)).await.unwrap();
        state.apply(pod("a", 2));
        assert!(matches!(
            shipper.tick(&mut state, t(15)).await.unwrap(),
            Shipped::Diff { seq: 2, .. }
        ));
        // Only heartbeats while the snapshot is younger than an hour...
        let mut heartbeats = 0;
        for minute in 1..60 {
            match shipper.tick(&mut state, t(minute * 60)).await.unwrap() {
                Shipped::Heartbeat => heartbeats += 1,
                Shipped::Idle => {}
                other => panic!("minute {minute}: {other:?}"),
            }
        }
        assert_eq!(heartbeats, 11);
        // ... then a snapshot of the unchanged state replaces the chain, in the same epoch.
        let renewed = shipper.tick(&mut state, t(3600)).await.unwrap();
        assert!(
            matches!(
                renewed,
                Shipped::Snapshot {
                    seq: 3,
                    records: 1,
                    takeover: false,
                    ..
                }
            ),
            "{renewed:?}"
        );
        let (head, objects) = replay(&store).await;
        assert_eq!((head.snapshot.seq, head.diffs.len()), (3, 0));
        assert_eq!(objects, expected(&state));
        assert_eq!(
            shipper.tick(&mut state, t(3615)).await.unwrap(),
            Shipped::Idle
        );
    }

    #[tokio::test]
    async fn one_writer_the_other_stands_by_then_takes_over() {
        let store = store().await;
        let mut a = Shipper::new(store.clone(), cluster(), options());
        let mut b = Shipper::new(store.clone(), cluster(), options());
        let (mut state_a, mut state_b) = (State::new(), State::new());
        for s in [&mut state_a, &mut state_b] {
            s.apply(pod("a", 1));
        }
        let Shipped::Snapshot { epoch: epoch_a, .. } = a.tick(&mut state_a, t(0)).await.unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            b.tick(&mut state_b, t(1)).await.unwrap(),
            Shipped::Standby { .. }
        ));
        assert!(!b.is_writer());
        // A keeps writing; B keeps standing by while A's heartbeat is fresh.
        state_a.apply(pod("a", 2));
        a.tick(&mut state_a, t(15)).await.unwrap();
        assert!(matches!(
            b.tick(&mut state_b, t(600)).await.unwrap(),
            Shipped::Standby { .. }
        ));
        // A goes silent; past the grace B takes over with a new epoch and a snapshot.
        state_b.apply(pod("a", 2));
        state_b.apply(pod("z", 3));
        let took = b.tick(&mut state_b, t(15 + 901)).await.unwrap();
        let Shipped::Snapshot {
            epoch: epoch_b,
            seq: 1,
            takeover: true,
            ..
        } = took
        else {
            panic!("{took:?}")
        };
        assert_ne!(epoch_a, epoch_b);
        assert_eq!(
            replay(&store).await,
            (replay(&store).await.0, expected(&state_b))
        );
        // A wakes up and tries to write: it finds it was superseded and the head stays B's.
        state_a.apply(pod("q", 9));
        assert_eq!(
            a.tick(&mut state_a, t(1000)).await.unwrap(),
            Shipped::Superseded {
                owner: epoch_b.clone()
            }
        );
        assert!(!a.is_writer());
        let (head, objects) = replay(&store).await;
        assert_eq!(head.epoch, epoch_b);
        assert_eq!(objects, expected(&state_b));
        assert!(matches!(
            a.tick(&mut state_a, t(1001)).await.unwrap(),
            Shipped::Standby { .. }
        ));
    }

    #[tokio::test]
    async fn a_released_head_is_taken_over_at_once() {
        let store = store().await;
        let mut a = Shipper::new(store.clone(), cluster(), options());
        let mut b = Shipper::new(store.clone(), cluster(), options());
        let mut state = State::new();
        state.apply(pod("a", 1));
        a.tick(&mut state, t(0)).await.unwrap();
        a.release(t(10)).await.unwrap();
        assert!(!a.is_writer());
        let (head, _) = replay(&store).await;
        assert_eq!(head.released_at, Some(t(10)));
        // Well within the grace, B does not wait.
        let took = b.tick(&mut state, t(11)).await.unwrap();
        assert!(
            matches!(
                took,
                Shipped::Snapshot {
                    takeover: true,
                    seq: 1,
                    ..
                }
            ),
            "{took:?}"
        );
        let (head, objects) = replay(&store).await;
        assert_eq!(head.released_at, None);
        assert_eq!(objects, expected(&state));
    }

    #[tokio::test]
    async fn after_a_failed_ship_the_next_one_starts_a_new_epoch() {
        let store = store().await;
        let mut shipper = Shipper::new(store.clone(), cluster(), options());
        let mut state = State::new();
        state.apply(pod("a", 1));
        let Shipped::Snapshot { epoch: first, .. } = shipper.tick(&mut state, t(0)).await.unwrap()
        else {
            panic!()
        };
        // Another writer's segment squats the next seq of our epoch: the diff cannot land.
        let squatted = store
            .layout()
            .segment(&cluster(), &first, 2, SegmentType::Diff);
        store
            .put_create(&squatted, Bytes::from_static(b"not ours"))
            .await
            .unwrap();
        state.apply(pod("a", 2));
        let err = shipper.tick(&mut state, t(15)).await.unwrap_err();
        assert!(matches!(err, Error::SegmentTaken { .. }), "{err}");
        assert!(err.to_string().contains("cluster ship"), "{err}");
        // Nothing was marked shipped; the next tick restarts with a new epoch and a snapshot,
        // even though the head (our own) still has a fresh heartbeat.
        let again = shipper.tick(&mut state, t(16)).await.unwrap();
        let Shipped::Snapshot {
            epoch: second,
            seq: 1,
            takeover: true,
            ..
        } = again
        else {
            panic!("{again:?}")
        };
        assert_ne!(first, second);
        assert_eq!(replay(&store).await.1, expected(&state));
    }
}
