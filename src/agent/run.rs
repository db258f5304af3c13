//! The agent's loop: applies source events (watches or the simulator) to the state, and on every
//! interval lets the shipper write what is due; flushes once more on shutdown.
//!
//! The loop owns the state, so a segment is built from a consistent view and nothing changes
//! while it is being shipped. It survives failures: a failed ship is logged, counted and tried
//! again at the next interval.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::compressed;
use super::discovery;
use super::ship::{Shipped, Shipper};
use super::state::{Scope, State};
use super::watch::SourceEvent;
use crate::format::documents::ForbiddenKind;
use crate::format::{ClusterName, Identity};
use crate::settings::schedule::Trigger;
use crate::store::Store;

/// What the agent has done so far, for health checks, metrics and tests.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The first snapshot has been shipped (or another live agent is the writer).
    pub ready: bool,
    pub writer: bool,
    pub objects: u64,
    pub objects_per_kind: BTreeMap<String, u64>,
    pub watch_events: u64,
    pub relists: u64,
    pub segments: u64,
    pub segment_bytes: u64,
    pub heartbeats: u64,
    pub ship_errors: u64,
    pub watch_errors: u64,
    /// How long the last successful push took, in seconds.
    pub last_push_seconds: f64,
    pub last_push: Option<DateTime<Utc>>,
    /// Kinds that cannot be watched, with the reason.
    pub unavailable: BTreeMap<String, String>,
    pub last_outcome: Option<Shipped>,
}

/// Shared, updated status.
pub type SharedStatus = Arc<Mutex<Status>>;

/// The agent's loop and what it owns: the state, the shipper, the identity document, the status.
pub struct Loop {
    store: Store,
    cluster: ClusterName,
    shipper: Shipper,
    state: State,
    /// The identity document, completed with the kinds as they turn out to be watchable; its
    /// `resources` describe every kind configured and served, watchable or not (a forbidden
    /// kind may become readable).
    identity: Identity,
    /// When the shipper runs.
    trigger: Trigger,
    status: SharedStatus,
    /// Scopes whose initial list is not complete yet: no snapshot before they are.
    pending: BTreeSet<Scope>,
    /// Kinds that cannot be watched, with the reason (for identity.json and the status).
    unavailable: BTreeMap<String, String>,
}

impl Loop {
    /// A loop with nothing held yet, shipping `identity.cluster` through `shipper` when
    /// `trigger` says.
    pub fn new(
        store: Store,
        shipper: Shipper,
        identity: Identity,
        trigger: Trigger,
        status: SharedStatus,
    ) -> Self {
        let mut identity = identity;
        identity.resources = discovery::sorted(std::mem::take(&mut identity.resources));
        Self {
            store,
            cluster: identity.cluster.clone(),
            shipper,
            state: State::new(),
            identity,
            trigger,
            status,
            pending: BTreeSet::new(),
            unavailable: BTreeMap::new(),
        }
    }

    /// The cluster shipped.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The objects held.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The shipper: the chain as this agent last wrote it.
    pub fn shipper(&self) -> &Shipper {
        &self.shipper
    }

    /// The status the loop keeps up to date.
    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    /// The shipper's step at `now` over what is held, for a caller that keeps the clock (see
    /// [`super::simulated::SimAgent`]); the loop itself ships through [`Loop::run`].
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Shipped, super::ship::Error> {
        self.shipper.tick(&mut self.state, now).await
    }

    /// Runs until `shutdown` resolves or the source ends, then, if this agent is the writer,
    /// ships once more (a final diff) and releases the head so that a standby or a restarted
    /// agent takes over at once. `scopes` are the watches whose initial list must complete (or
    /// fail) before the first snapshot.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<SourceEvent>,
        scopes: BTreeSet<Scope>,
        shutdown: impl Future<Output = ()>,
    ) -> State {
        self.pending = scopes;
        let mut identity_written: Option<Identity> = None;
        let mut next_ship = tokio::time::Instant::now();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    let was_listing = !self.pending.is_empty();
                    self.apply(event);
                    if was_listing && self.pending.is_empty() {
                        // Every initial list is complete: the first snapshot goes out now,
                        // not at the next interval or scheduled time.
                        next_ship = tokio::time::Instant::now();
                    }
                }
                () = tokio::time::sleep_until(next_ship) => {
                    next_ship = tokio::time::Instant::now() + self.trigger.delay(Utc::now());
                    if !self.pending.is_empty() {
                        continue;
                    }
                    let identity_now = self.identity_now();
                    if identity_written.as_ref() != Some(&identity_now) {
                        self.write_identity(identity_now.clone()).await;
                        identity_written = Some(identity_now);
                    }
                    self.ship().await;
                }
            }
        }
        if self.pending.is_empty() && self.shipper.is_writer() {
            self.ship().await;
            if let Err(error) = self.shipper.release(Utc::now()).await {
                tracing::warn!(cluster = %self.cluster, error = %crate::error_chain(&error), "could not release the head; a standby takes over after the grace");
            }
        }
        self.state
    }

    /// Applies one event of the source to what is held.
    pub fn apply(&mut self, event: SourceEvent) {
        let (pending, unavailable) = (&mut self.pending, &mut self.unavailable);
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.watch_events += 1;
        match event {
            SourceEvent::RelistStarted(scope) => {
                status.relists += 1;
                self.state.relist_started(&scope);
            }
            SourceEvent::Apply(entry) => {
                unavailable.remove(&entry.scope.kind);
                self.state.apply(entry);
            }
            SourceEvent::Delete(key) => {
                self.state.delete(&key);
            }
            SourceEvent::RelistDone(scope) => {
                unavailable.remove(&scope.kind);
                self.state.relist_done(&scope);
                pending.remove(&scope);
            }
            SourceEvent::ScopeRemoved(scope) => {
                pending.remove(&scope);
                if !pending.iter().any(|s| s.kind == scope.kind) {
                    unavailable.remove(&scope.kind);
                }
                self.state.forget_scope(&scope);
            }
            SourceEvent::RedactionChanged { ids, apply_again } => {
                // What is held was redacted by the previous rules: it gets the new ones before
                // any segment names them.
                match self
                    .state
                    .redact_again(|kind, object| apply_again.remove_fields(kind, object))
                {
                    Ok((changed, dropped)) => {
                        tracing::info!(cluster = %self.cluster, changed, dropped, rules = ?ids, "redaction rules changed: objects held redacted again")
                    }
                    Err(error) => {
                        tracing::error!(cluster = %self.cluster, %error, "redaction rules changed but the objects held could not be redacted again; the relist replaces them")
                    }
                }
                self.shipper.set_redaction(ids);
            }
            SourceEvent::KindsChanged(kinds) => {
                unavailable.retain(|kind, _| kinds.contains(kind));
                self.identity
                    .resources
                    .retain(|resource| kinds.contains(&discovery::kind_of(resource)));
                self.identity.kinds = kinds;
            }
            SourceEvent::Discovered(resources) => {
                let known = std::mem::take(&mut self.identity.resources);
                self.identity.resources = discovery::sorted(known.into_iter().chain(resources));
            }
            SourceEvent::Unavailable { kind, reason } => {
                status.watch_errors += 1;
                tracing::warn!(cluster = %self.cluster, %kind, %reason, "kind unavailable");
                pending.retain(|scope| scope.kind != kind);
                unavailable.insert(kind, reason);
            }
        }
        status.objects = self.state.len() as u64;
        status.unavailable = unavailable.clone();
    }

    /// Trains the dictionary the objects are held with on a sample of this cluster's own
    /// objects (once per process, after the first snapshot: every kind has been listed), then
    /// recompresses what is held with it. Failing only costs memory: logged.
    async fn train_dictionary(&mut self) {
        if self.state.len() < DICTIONARY_MIN_OBJECTS {
            return;
        }
        let samples = match self
            .state
            .samples(DICTIONARY_SAMPLES, DICTIONARY_SAMPLE_BYTES)
        {
            Ok(samples) => samples,
            Err(error) => {
                tracing::warn!(cluster = %self.cluster, %error, "no dictionary for the held objects");
                return;
            }
        };
        let started = std::time::Instant::now();
        let trained =
            tokio::task::spawn_blocking(move || compressed::train_dictionary(&samples)).await;
        let adopted = match trained {
            Ok(Ok(true)) => self.state.adopt_dictionary(),
            Ok(Ok(false)) => return,
            Ok(Err(error)) => Err(error),
            Err(error) => {
                tracing::warn!(cluster = %self.cluster, %error, "no dictionary for the held objects");
                return;
            }
        };
        match adopted {
            Ok((before, after)) => tracing::info!(
                cluster = %self.cluster,
                objects = self.state.len(),
                json_bytes = self.state.json_bytes(),
                compressed_before = before,
                compressed_after = after,
                seconds = started.elapsed().as_secs_f64(),
                "held objects recompressed with a dictionary trained on them"
            ),
            Err(error) => {
                tracing::warn!(cluster = %self.cluster, %error, "no dictionary for the held objects")
            }
        }
    }

    async fn ship(&mut self) {
        let now = Utc::now();
        let started = std::time::Instant::now();
        let outcome = self.shipper.tick(&mut self.state, now).await;
        // The status lock is released before any await.
        let train = {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            let mut train = false;
            match outcome {
                Ok(shipped) => {
                    match &shipped {
                        Shipped::Snapshot { bytes, .. } | Shipped::Diff { bytes, .. } => {
                            status.segments += 1;
                            status.segment_bytes += bytes;
                            status.last_push = Some(now);
                            status.last_push_seconds = started.elapsed().as_secs_f64();
                            status.ready = true;
                            tracing::info!(cluster = %self.cluster, outcome = ?shipped, "shipped");
                            train = matches!(shipped, Shipped::Snapshot { .. })
                                && !compressed::dictionary_trained();
                            return_free_memory();
                        }
                        Shipped::Heartbeat => {
                            status.heartbeats += 1;
                            status.last_push = Some(now);
                        }
                        Shipped::Standby { .. } => status.ready = true,
                        Shipped::Superseded { owner } => {
                            tracing::warn!(cluster = %self.cluster, %owner, "another agent took over; standing by");
                        }
                        Shipped::Idle => {}
                    }
                    status.writer = self.shipper.is_writer();
                    status.last_outcome = Some(shipped);
                }
                Err(error) => {
                    status.ship_errors += 1;
                    tracing::warn!(cluster = %self.cluster, error = %crate::error_chain(&error), "ship failed; retrying at the next interval");
                }
            }
            status.objects = self.state.len() as u64;
            status.objects_per_kind = self.state.kind_counts();
            train
        };
        if train {
            self.train_dictionary().await;
            return_free_memory();
        }
    }

    /// `identity.json` as it stands (but for its date): the kinds watched and their resources,
    /// the kinds that cannot be watched and why.
    fn identity_now(&self) -> Identity {
        let unavailable = &self.unavailable;
        let mut identity = self.identity.clone();
        identity.forbidden_kinds = unavailable
            .iter()
            .map(|(kind, reason)| ForbiddenKind {
                kind: kind.clone(),
                reason: reason.clone(),
            })
            .collect();
        identity.kinds.retain(|k| !unavailable.contains_key(k));
        let kinds = &identity.kinds;
        identity
            .resources
            .retain(|resource| kinds.contains(&discovery::kind_of(resource)));
        identity
    }

    async fn write_identity(&self, mut identity: Identity) {
        identity.updated_at = Utc::now();
        let key = self.store.layout().identity(&self.cluster);
        match identity.to_json() {
            Ok(bytes) => {
                if let Err(error) = self.store.put_overwrite(&key, Bytes::from(bytes)).await {
                    tracing::warn!(cluster = %self.cluster, %error, "could not write identity.json");
                }
            }
            Err(error) => {
                tracing::warn!(cluster = %self.cluster, %error, "could not encode identity.json")
            }
        }
    }
}

/// The dictionary for held objects is trained once the first snapshot holds at least this many
/// objects (on fewer, it would save little), on up to this many of them, up to this many bytes
/// of JSON.
const DICTIONARY_MIN_OBJECTS: usize = 200;
const DICTIONARY_SAMPLES: usize = 2_000;
const DICTIONARY_SAMPLE_BYTES: usize = 8 << 20;

/// mimalloc 3's `mi_option_purge_delay` (its place in `mi_option_t`, mimalloc.h; libmimalloc-sys
/// names only the options mimalloc 2 and 3 share).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc (the binary's allocator) hand freed pages back to the system at once rather than
/// after its default delay (1 s, times 10 for whole arena ranges): the agent's resident memory
/// otherwise keeps what each burst of watch events and each segment briefly needed (BENCHMARKS.md).
/// Call once, before the agent starts watching. Harmless where mimalloc is not the global
/// allocator.
pub fn tune_allocator() {
    // SAFETY: `mi_option_set` takes no pointers; options are plain integers mimalloc reads on
    // every purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Hands memory the allocator holds but no longer uses back to the system, after each segment
/// shipped. A snapshot follows a full list (at start, after a 410 or a takeover) whose pages and
/// parsed objects far outweigh the state that remains, and mimalloc (the binary's allocator)
/// otherwise keeps such pages for reuse (BENCHMARKS.md). The agent runs on one thread, so this
/// reaches all of its heap. Harmless where mimalloc is not the global allocator.
fn return_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::redact::{Redactor, RemoveRule};
    use crate::agent::ship::ShipOptions;
    use crate::agent::watch::redacted_entry;
    use crate::format::{DecodeLimits, Head, Record, SegmentType, ServedResource};

    fn rule(pointer: &str) -> RemoveRule {
        RemoveRule {
            id: "hide".into(),
            kind: "Service".into(),
            pointer: pointer.into(),
        }
    }

    /// The tip segment's redaction ids, and the labels of the objects it puts.
    async fn tip(store: &Store, cluster: &ClusterName) -> (Vec<String>, Vec<serde_json::Value>) {
        let (bytes, _) = store.get(&store.layout().head(cluster)).await.unwrap();
        let head = Head::from_json("head", &bytes).unwrap();
        let kind = if head.diffs.is_empty() {
            SegmentType::Snapshot
        } else {
            SegmentType::Diff
        };
        let key = store
            .layout()
            .segment(cluster, &head.epoch, head.tip().seq, kind);
        let mut stream = store
            .read_segment(&key, &DecodeLimits::default())
            .await
            .unwrap();
        let ids = stream.header().redaction.clone();
        let mut labels = Vec::new();
        while let Some(record) = stream.next().await {
            if let Record::Put { object, .. } = record.unwrap() {
                let object: serde_json::Value = serde_json::from_str(object.get()).unwrap();
                labels.push(object["metadata"]["labels"].clone());
            }
        }
        (ids, labels)
    }

    /// A rule edited in place (same id) reaches the objects already held before the next
    /// segment, without waiting for any relist: the segment that names the rule holds no value
    /// it removes.
    #[tokio::test]
    async fn objects_held_get_an_edited_rule_before_the_next_segment() {
        let store = Store::open(&format!("memory://run-{:016x}", rand::random::<u64>()))
            .await
            .unwrap();
        let cluster = ClusterName::new("run").unwrap();
        let old = Redactor::new(&[3; 32], vec![rule("/metadata/labels/tokn")]).unwrap();
        let new = Redactor::new(&[3; 32], vec![rule("/metadata/labels/token")]).unwrap();
        let scope = Scope {
            kind: "Service".into(),
            namespace: None,
        };
        let service = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "resourceVersion": "1",
                "labels": {"v": "1", "token": "planted"}}});
        let status = SharedStatus::default();
        let agent = Loop::new(
            store.clone(),
            Shipper::new(
                store.clone(),
                cluster.clone(),
                ShipOptions {
                    redaction: old.rule_ids(),
                    ..ShipOptions::default()
                },
            ),
            Identity::new(cluster.clone(), Utc::now()),
            Trigger::Every(Duration::from_millis(20)),
            status.clone(),
        );
        let (events_tx, events) = mpsc::channel(16);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(agent.run(events, BTreeSet::from([scope.clone()]), async {
            let _ = stopped.await;
        }));
        let segments = || status.lock().map(|s| s.segments).unwrap_or(0);
        let until = |count: u64| async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while segments() < count {
                assert!(tokio::time::Instant::now() < deadline, "no segment {count}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        for event in [
            SourceEvent::RelistStarted(scope.clone()),
            SourceEvent::Apply(redacted_entry(service, &scope, &old).unwrap()),
            SourceEvent::RelistDone(scope.clone()),
        ] {
            events_tx.send(event).await.unwrap();
        }
        until(1).await;
        assert_eq!(tip(&store, &cluster).await.1[0]["token"], "planted");

        events_tx
            .send(SourceEvent::RedactionChanged {
                ids: new.rule_ids(),
                apply_again: new.rules_not_in(&old),
            })
            .await
            .unwrap();
        until(2).await;
        let (ids, labels) = tip(&store, &cluster).await;
        assert!(ids.contains(&"remove:hide".to_string()), "{ids:?}");
        assert_eq!(labels, vec![serde_json::json!({"v": "1"})]);
        let _ = stop.send(());
        let state = running.await.unwrap();
        let held = state.entries().next().unwrap().object.to_json().unwrap();
        assert!(!held.contains("planted"), "{held}");
    }

    fn served(group: &str, version: &str, kind: &str) -> ServedResource {
        ServedResource {
            group: group.into(),
            version: version.into(),
            name: format!("{}s", kind.to_lowercase()),
            singular_name: kind.to_lowercase(),
            kind: kind.into(),
            namespaced: true,
            short_names: Vec::new(),
            categories: Vec::new(),
            verbs: vec!["list".into(), "watch".into()],
        }
    }

    /// identity.json describes exactly the kinds it names as watched: a kind forbidden or not
    /// served yet has no resource there until it is watched, a kind no longer configured
    /// loses it, and rediscovery's description replaces the one held.
    #[tokio::test]
    async fn identity_resources_follow_the_kinds_watched() {
        let store = Store::open("memory://run-resources").await.unwrap();
        let cluster = ClusterName::new("resources").unwrap();
        let widget = "Widget.example.com";
        let mut identity = Identity::new(cluster.clone(), Utc::now());
        identity.kinds = vec!["Pod".into(), "Service".into(), widget.into()];
        identity.resources = vec![served("", "v1", "Service"), served("", "v1", "Pod")];
        let mut agent = Loop::new(
            store.clone(),
            Shipper::new(store, cluster, ShipOptions::default()),
            identity,
            Trigger::Every(Duration::from_secs(15)),
            SharedStatus::default(),
        );
        let described = |agent: &Loop| -> (Vec<String>, Vec<String>, Vec<String>) {
            let identity = agent.identity_now();
            let forbidden = identity.forbidden_kinds.iter().map(|f| f.kind.clone());
            (
                identity.kinds.clone(),
                identity.resources.iter().map(discovery::kind_of).collect(),
                forbidden.collect(),
            )
        };
        let strings =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
        let scope = |kind: &str| Scope {
            kind: kind.into(),
            namespace: None,
        };
        let unavailable = |kind: &str| SourceEvent::Unavailable {
            kind: kind.into(),
            reason: "forbidden".into(),
        };
        // Sorted: Pod before Service.
        assert_eq!(agent.identity_now().resources[0].kind, "Pod");

        agent.apply(unavailable(widget));
        agent.apply(unavailable("Service"));
        assert_eq!(
            described(&agent),
            (
                strings(&["Pod"]),
                strings(&["Pod"]),
                strings(&["Service", widget])
            )
        );
        agent.apply(SourceEvent::Discovered(vec![served(
            "example.com",
            "v1",
            "Widget",
        )]));
        assert_eq!(described(&agent).1, strings(&["Pod"]));
        agent.apply(SourceEvent::RelistDone(scope(widget)));
        agent.apply(SourceEvent::RelistDone(scope("Service")));
        assert_eq!(
            described(&agent),
            (
                strings(&["Pod", "Service", widget]),
                strings(&["Pod", "Service", widget]),
                vec![]
            )
        );

        agent.apply(SourceEvent::KindsChanged(strings(&["Pod", widget])));
        agent.apply(SourceEvent::Discovered(vec![served("", "v2", "Pod")]));
        let identity = agent.identity_now();
        assert_eq!(
            identity.resources,
            vec![
                served("", "v2", "Pod"),
                served("example.com", "v1", "Widget")
            ]
        );
        assert_eq!(identity.kinds, strings(&["Pod", widget]));
    }

    #[test]
    fn the_purge_delay_option_is_the_one_tuned() {
        // mimalloc 3 documents a 1000 ms default purge delay; another value here means the
        // option's number changed with the bundled mimalloc (the environment may set it too).
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            assert_eq!(
                unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
                1000
            );
        }
        tune_allocator();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            0
        );
    }
}
