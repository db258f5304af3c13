//! A live simulated cluster: seeded, deterministic churn on top of a [`ClusterShape`] cluster, reported as the
//! events a watch would deliver, to feed the agent's state → redact → ship pipeline in the demo,
//! `agent --sim` and the benchmarks.
//!
//! [`Churn`] keeps the cluster's objects indexed by (kind, namespace, name), the owner → dependents graph and
//! pools of candidates for each kind of change, so a change costs the same in a cluster of 500 objects or
//! 50,000. Changes arrive as a Poisson process of the requested rate; each is one realistic cluster
//! activity ([`ChangeKind`]) whose events may be spread over the following simulated seconds or minutes the
//! way controllers and kubelets spread them: a new pod is created Pending, bound, then reported running and
//! ready when its containers are; a rolling update scales the new ReplicaSet up and the old ones down as
//! pods become available; a terminating pod carries its `deletionTimestamp` before it goes; ReplicaSet,
//! Deployment, StatefulSet, DaemonSet, Job and CronJob statuses follow their pods.
//!
//! Every [`ChurnEvent::Apply`] carries the whole object with a fresh resourceVersion from the factory's
//! etcd counter (strictly increasing across all events, deletes included), `generation` bumped on spec
//! changes and the `managedFields` entry of whoever wrote it re-timed (and, for status writes, re-derived
//! from the status). A [`ChurnEvent::Delete`] carries the object's last state. Dependents always go before
//! their owners, so every owner reference points at a current object.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

use super::{ClusterShape, ObjectFactory};

/// Mixed into the seed of the churn's own RNG so that it does not replay the factory's stream.
const SEED_MIX: u64 = 0xD1B5_4A32_D192_ED03;
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const REVISION: &str = "deployment.kubernetes.io/revision";
const KCM: &str = "kube-controller-manager";

/// What a watch would report.
#[derive(Debug, Clone, PartialEq)]
pub enum ChurnEvent {
    /// ADDED or MODIFIED: the object as it now is.
    Apply(Value),
    /// DELETED: the object's last state (with the resourceVersion of its deletion).
    Delete(Value),
}

impl ChurnEvent {
    /// The object the event carries.
    pub fn object(&self) -> &Value {
        match self {
            ChurnEvent::Apply(o) | ChurnEvent::Delete(o) => o,
        }
    }
}

/// The kinds of cluster activity [`Churn`] simulates. Each change is one of these; its events may follow over
/// the next simulated seconds or minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// A readiness probe fails for a while: the pod turns not ready, then ready again, and its owner's
    /// status follows (pod, ReplicaSet and Deployment: about six events).
    ReadinessFlap,
    /// A container exits and is restarted (`restartCount` + 1, `lastState.terminated`, sometimes a
    /// `CrashLoopBackOff` wait first), then turns ready again; the owner's status follows.
    PodRestart,
    /// A CronJob fires: a Job and its pod are created, the pod runs and succeeds, the Job completes, the
    /// CronJob's status follows and Jobs beyond the history limit are deleted with their pods.
    CronJobRun,
    /// A Deployment's replicas change by one or two (`kubectl scale` or an autoscaler): the ReplicaSet is
    /// resized, pods are created or terminated, statuses follow.
    Scale,
    /// A Deployment gets a new image: a new ReplicaSet revision, then a rolling update pod by pod as the
    /// controller does it (maxSurge / maxUnavailable), old ReplicaSets scaled to zero and pruned beyond
    /// `revisionHistoryLimit`.
    Rollout,
    /// A Secret's values or a ConfigMap's settings change (one event).
    Rotation,
    /// A new app is deployed: ServiceAccount, ConfigMap, Secret, Service, Deployment, its ReplicaSet and
    /// pods, Ingress, NetworkPolicy (the [`ObjectFactory::app`] bundle).
    AppCreated,
    /// An app is deleted: its Deployment and ReplicaSets by foreground deletion (pods terminate first),
    /// its Service, Ingress, NetworkPolicy, ServiceAccount, ConfigMap and Secrets.
    AppDeleted,
}

impl ChangeKind {
    /// Every kind, in the order of [`ChurnStats`].
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::ReadinessFlap,
        ChangeKind::PodRestart,
        ChangeKind::CronJobRun,
        ChangeKind::Scale,
        ChangeKind::Rollout,
        ChangeKind::Rotation,
        ChangeKind::AppCreated,
        ChangeKind::AppDeleted,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::ReadinessFlap => "readiness-flap",
            ChangeKind::PodRestart => "pod-restart",
            ChangeKind::CronJobRun => "cronjob-run",
            ChangeKind::Scale => "scale",
            ChangeKind::Rollout => "rollout",
            ChangeKind::Rotation => "rotation",
            ChangeKind::AppCreated => "app-created",
            ChangeKind::AppDeleted => "app-deleted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How often each kind of change is drawn, per mille. App creation and deletion share one weight, split
/// to keep the cluster's size near its initial size.
const WEIGHTS: [(Pick, u32); 7] = [
    (Pick::Kind(ChangeKind::ReadinessFlap), 400),
    (Pick::Kind(ChangeKind::PodRestart), 300),
    (Pick::Kind(ChangeKind::CronJobRun), 80),
    (Pick::Kind(ChangeKind::Scale), 80),
    (Pick::Kind(ChangeKind::Rollout), 50),
    (Pick::Kind(ChangeKind::Rotation), 50),
    (Pick::AppLifecycle, 40),
];

#[derive(Debug, Clone, Copy)]
enum Pick {
    Kind(ChangeKind),
    AppLifecycle,
}

/// Counts of changes started and events emitted, per [`ChangeKind`] (events are counted against the change
/// that caused them, also when they come later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnStats {
    changes: [u64; 8],
    events: [u64; 8],
}

impl ChurnStats {
    /// Changes of `kind` started so far.
    pub fn changes(&self, kind: ChangeKind) -> u64 {
        self.changes[kind.index()]
    }

    /// Events emitted so far on behalf of changes of `kind`.
    pub fn events(&self, kind: ChangeKind) -> u64 {
        self.events[kind.index()]
    }

    /// All changes started so far.
    pub fn total_changes(&self) -> u64 {
        self.changes.iter().sum()
    }

    /// All events emitted so far.
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }
}

/// (kind, namespace, name): how a watch tells objects apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    kind: String,
    ns: String,
    name: String,
}

impl Key {
    fn new(kind: &str, ns: &str, name: &str) -> Key {
        Key {
            kind: kind.to_string(),
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }

    fn of(obj: &Value) -> Key {
        Key::new(
            s(obj, "/kind"),
            s(obj, "/metadata/namespace"),
            s(obj, "/metadata/name"),
        )
    }
}

/// Candidates for a kind of change, with O(1) insert, remove and uniform pick.
#[derive(Default)]
struct Pool {
    items: Vec<Key>,
    position: HashMap<Key, usize>,
}

impl Pool {
    fn insert(&mut self, key: &Key) {
        if !self.position.contains_key(key) {
            self.position.insert(key.clone(), self.items.len());
            self.items.push(key.clone());
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(i) = self.position.remove(key) {
            self.items.swap_remove(i);
            if let Some(moved) = self.items.get(i) {
                self.position.insert(moved.clone(), i);
            }
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<Key> {
        if self.items.is_empty() {
            None
        } else {
            self.items
                .get(rng.random_range(0..self.items.len()))
                .cloned()
        }
    }
}

const POOL_PODS: usize = 0;
const POOL_DEPLOYMENTS: usize = 1;
const POOL_APP_DEPLOYMENTS: usize = 2;
const POOL_CRON_JOBS: usize = 3;
const POOL_ROTATABLE: usize = 4;
const POOLS: usize = 5;

/// The pools `obj` belongs to.
fn pools_of(obj: &Value) -> [bool; POOLS] {
    let kind = s(obj, "/kind");
    let ns = s(obj, "/metadata/namespace");
    let app_ns = !SYSTEM_NAMESPACES.contains(&ns);
    let rotatable = match kind {
        "Secret" => s(obj, "/type") == "Opaque",
        "ConfigMap" => obj
            .get("data")
            .and_then(Value::as_object)
            .is_some_and(|d| d.contains_key("application.yaml")),
        _ => false,
    };
    [
        kind == "Pod",
        kind == "Deployment",
        kind == "Deployment" && app_ns,
        kind == "CronJob",
        rotatable,
    ]
}

/// A follow-up of a change, due at a simulated time.
struct Scheduled {
    at: f64,
    seq: u64,
    cause: ChangeKind,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that the max-heap pops the earliest (and, at equal times, the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// What happens later. Every action names its object by key and uid and does nothing if that object is
/// gone (or was replaced) meanwhile.
enum Action {
    /// The kubelet reports a new pod's containers running (and, but for Job pods, ready); `status` is the
    /// status the factory generated for it.
    PodStarted {
        pod: Key,
        uid: String,
        status: Box<Value>,
    },
    /// A Job's pod has run to completion.
    PodSucceeded {
        pod: Key,
        uid: String,
        status: Box<Value>,
    },
    /// A crashed container is started again after its back-off.
    ContainerStarted {
        pod: Key,
        uid: String,
        container: String,
    },
    /// Readiness probes pass again.
    PodReady { pod: Key, uid: String },
    /// A terminating pod's containers have exited: the kubelet's last status, then the pod is gone.
    PodGone { pod: Key, uid: String },
    /// A controller fills in a status the object was created without (load-balancer addresses).
    StatusArrives {
        key: Key,
        uid: String,
        status: Box<Value>,
        manager: String,
    },
    /// Deletion completes (finalizers done, dependents gone): dependents left over go first, then the object.
    FinishDelete { key: Key, uid: String },
}

/// A ReplicaSet as the Deployment controller sees it.
struct ReplicaSetInfo {
    key: Key,
    revision: u64,
    spec: u64,
    replicas: u64,
    ready: u64,
    available: u64,
    has_dependents: bool,
}

/// A deterministic simulation of a live cluster's changes; see the [module docs](self).
pub struct Churn {
    factory: ObjectFactory,
    rng: StdRng,
    initial: Vec<Arc<Value>>,
    objects: HashMap<Key, Arc<Value>>,
    /// Owner uid → its dependents.
    dependents: HashMap<String, BTreeSet<Key>>,
    pools: [Pool; POOLS],
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    /// Objects whose controller must reconcile, by (rank, key): dependents' controllers run first.
    dirty: BTreeSet<(u8, Key)>,
    /// The factory's clock at construction (Unix seconds).
    start: i64,
    /// The factory's clock now: `start + floor(now)`.
    clock: i64,
    /// Simulated seconds since construction.
    now: f64,
    /// Exponential budget left until the next change, in units of rate × seconds.
    budget: f64,
    /// The initial object count, which app creation and deletion steer back to.
    target: usize,
    app_namespaces: Vec<String>,
    /// Deployment uid → its initial replicas, which scaling reverts to.
    baseline: HashMap<String, u64>,
    events: Vec<ChurnEvent>,
    cause: ChangeKind,
    stats: ChurnStats,
}

impl Churn {
    /// A cluster of about `objects` objects (`ClusterShape::with_approx_objects(seed, objects)`), about to
    /// change.
    pub fn new(seed: u64, objects: usize) -> Self {
        let shape = ClusterShape::with_approx_objects(seed, objects);
        let mut factory = ObjectFactory::new(shape.seed);
        let list = factory.cluster(&shape);
        let start = factory.now();
        let mut rng = StdRng::seed_from_u64(seed ^ SEED_MIX);
        let budget = exponential(&mut rng);
        let mut churn = Churn {
            factory,
            rng,
            initial: Vec::with_capacity(list.len()),
            objects: HashMap::with_capacity(list.len() * 2),
            dependents: HashMap::new(),
            pools: Default::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            dirty: BTreeSet::new(),
            start,
            clock: start,
            now: 0.0,
            budget,
            target: 0,
            app_namespaces: Vec::new(),
            baseline: HashMap::new(),
            events: Vec::new(),
            cause: ChangeKind::ReadinessFlap,
            stats: ChurnStats::default(),
        };
        for obj in list {
            if s(&obj, "/kind") == "Namespace" {
                let name = s(&obj, "/metadata/name");
                if !SYSTEM_NAMESPACES.contains(&name) {
                    churn.app_namespaces.push(name.to_string());
                }
            }
            let obj = Arc::new(obj);
            churn.initial.push(Arc::clone(&obj));
            churn.index(obj);
        }
        churn.target = churn.objects.len();
        churn
    }

    /// The cluster as an initial list returned it at construction (every object once, owners before their
    /// dependents).
    pub fn initial(&self) -> Vec<Value> {
        self.initial.iter().map(|o| Value::clone(o)).collect()
    }

    /// Advances simulated time by `seconds` and returns the events of about `rate * seconds` changes (plus
    /// the follow-ups, falling due now, of earlier changes), in order.
    pub fn step(&mut self, seconds: f64, rate: f64) -> Vec<ChurnEvent> {
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        let end = self.now + seconds;
        loop {
            let next_change = if rate > 0.0 {
                self.now + self.budget / rate
            } else {
                f64::INFINITY
            };
            let next_action = self.queue.peek().map_or(f64::INFINITY, |s| s.at);
            let t = next_change.min(next_action);
            if t > end {
                break;
            }
            let t = t.max(self.now);
            self.budget = (self.budget - (t - self.now) * rate).max(0.0);
            self.now = t;
            self.sync_clock();
            if next_action <= next_change {
                if let Some(due) = self.queue.pop() {
                    self.cause = due.cause;
                    self.run(due.action);
                }
            } else {
                self.budget = exponential(&mut self.rng);
                self.change();
            }
            self.settle();
        }
        self.budget = (self.budget - (end - self.now) * rate).max(0.0);
        self.now = end;
        self.sync_clock();
        std::mem::take(&mut self.events)
    }

    /// The current objects, owners before their dependents.
    pub fn objects(&self) -> Vec<Value> {
        let mut keys: Vec<&Key> = self.objects.keys().collect();
        keys.sort_by(|a, b| (rank(&a.kind), *a).cmp(&(rank(&b.kind), *b)));
        keys.iter()
            .filter_map(|k| self.objects.get(*k))
            .map(|o| Value::clone(o))
            .collect()
    }

    /// How many objects the cluster holds now.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the cluster holds no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Simulated seconds since construction.
    pub fn elapsed(&self) -> f64 {
        self.now
    }

    /// Changes and events so far, per kind of change.
    pub fn stats(&self) -> &ChurnStats {
        &self.stats
    }
}

// The store: every write goes through `create`, `modify` and `delete`, which stamp resourceVersions and
// emit the events.
impl Churn {
    fn index(&mut self, obj: Arc<Value>) {
        let key = Key::of(&obj);
        if let Some(owner_uid) = obj
            .pointer("/metadata/ownerReferences/0/uid")
            .and_then(Value::as_str)
        {
            self.dependents
                .entry(owner_uid.to_string())
                .or_default()
                .insert(key.clone());
        }
        for (pool, member) in self.pools.iter_mut().zip(pools_of(&obj)) {
            if member {
                pool.insert(&key);
            }
        }
        if key.kind == "Deployment" {
            let uid = s(&obj, "/metadata/uid").to_string();
            let replicas = u(&obj, "/spec/replicas");
            self.baseline.entry(uid).or_insert(replicas);
        }
        self.objects.insert(key, obj);
    }

    fn unindex(&mut self, key: &Key) -> Option<Arc<Value>> {
        let obj = self.objects.remove(key)?;
        if let Some(owner_uid) = obj
            .pointer("/metadata/ownerReferences/0/uid")
            .and_then(Value::as_str)
            && let Some(set) = self.dependents.get_mut(owner_uid)
        {
            set.remove(key);
            if set.is_empty() {
                self.dependents.remove(owner_uid);
            }
        }
        for pool in &mut self.pools {
            pool.remove(key);
        }
        let uid = s(&obj, "/metadata/uid");
        self.dependents.remove(uid);
        self.baseline.remove(uid);
        Some(obj)
    }

    fn emit(&mut self, event: ChurnEvent) {
        self.stats.events[self.cause.index()] += 1;
        self.events.push(event);
    }

    /// Adds `obj` (ADDED).
    fn create(&mut self, mut obj: Value) -> Key {
        let rv = self.factory.next_resource_version();
        set(&mut obj, "/metadata", "resourceVersion", Value::String(rv));
        let key = Key::of(&obj);
        self.unindex(&key);
        self.emit(ChurnEvent::Apply(obj.clone()));
        self.index(Arc::new(obj));
        key
    }

    /// Changes the object at `key` in place (MODIFIED); false if there is none. `f` must not change the
    /// object's kind, name, namespace, uid or owner.
    fn modify(&mut self, key: &Key, f: impl FnOnce(&mut Value)) -> bool {
        let Some(arc) = self.objects.get_mut(key) else {
            return false;
        };
        let obj = Arc::make_mut(arc);
        f(obj);
        let rv = self.factory.next_resource_version();
        set(obj, "/metadata", "resourceVersion", Value::String(rv));
        let event = ChurnEvent::Apply(obj.clone());
        self.emit(event);
        true
    }

    /// Removes the object at `key` (DELETED), dependents or not; see [`Churn::delete_tree`].
    fn delete(&mut self, key: &Key) {
        if let Some(obj) = self.unindex(key) {
            let mut obj = Arc::unwrap_or_clone(obj);
            if terminating(&obj)
                && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
            {
                // The last finalizer's removal is what lets the object go.
                meta.remove("finalizers");
            }
            let rv = self.factory.next_resource_version();
            set(&mut obj, "/metadata", "resourceVersion", Value::String(rv));
            self.emit(ChurnEvent::Delete(obj));
        }
    }

    /// Removes the object at `key` after its dependents (and theirs).
    fn delete_tree(&mut self, key: &Key) {
        let Some(uid) = self.get(key).map(|o| s(o, "/metadata/uid").to_string()) else {
            return;
        };
        for dependent in self.dependents_of(&uid) {
            self.delete_tree(&dependent);
        }
        self.delete(key);
    }

    fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key).map(|o| &**o)
    }

    /// The object at `key`, if it is still the one with `uid`.
    fn get_alive(&self, key: &Key, uid: &str) -> Option<&Value> {
        self.get(key).filter(|o| s(o, "/metadata/uid") == uid)
    }

    fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.dependents
            .get(uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn owner_of(&self, key: &Key) -> Option<Key> {
        let obj = self.get(key)?;
        let owner = obj.pointer("/metadata/ownerReferences/0")?;
        Some(Key::new(s(owner, "/kind"), &key.ns, s(owner, "/name")))
    }

    fn schedule(&mut self, delay: f64, action: Action) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + delay.max(0.0),
            seq: self.seq,
            cause: self.cause,
            action,
        });
    }

    /// Seconds from now until Unix time `t` (at least zero).
    fn until(&self, t: i64) -> f64 {
        ((t - self.start) as f64 - self.now).max(0.0)
    }

    fn sync_clock(&mut self) {
        let target = self.start + self.now.floor() as i64;
        if target > self.clock {
            self.factory
                .advance_clock(u64::try_from(target - self.clock).unwrap_or(0));
            self.clock = target;
        }
    }

    fn ts(&self) -> String {
        ObjectFactory::timestamp(self.clock)
    }

    fn mark(&mut self, key: &Key) {
        let rank = match key.kind.as_str() {
            "ReplicaSet" | "Job" => 1,
            "Deployment" | "StatefulSet" | "DaemonSet" => 2,
            "CronJob" => 3,
            _ => return,
        };
        self.dirty.insert((rank, key.clone()));
    }

    fn mark_owner(&mut self, key: &Key) {
        if let Some(owner) = self.owner_of(key) {
            self.mark(&owner);
        }
    }

    /// Runs the controllers of dirty objects until nothing is left to do.
    fn settle(&mut self) {
        let mut budget = 100_000;
        while let Some((_, key)) = self.dirty.pop_first() {
            budget -= 1;
            if budget == 0 {
                self.dirty.clear();
                break;
            }
            match key.kind.as_str() {
                "ReplicaSet" => self.reconcile_replica_set(&key),
                "Deployment" => self.reconcile_deployment(&key),
                "StatefulSet" => self.reconcile_stateful_set(&key),
                "DaemonSet" => self.reconcile_daemon_set(&key),
                "Job" => self.reconcile_job(&key),
                "CronJob" => self.reconcile_cron_job(&key),
                _ => {}
            }
        }
    }

    fn random_container_id(&mut self) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        let id: String = (0..64)
            .map(|_| char::from(HEX[self.rng.random_range(0..HEX.len())]))
            .collect();
        format!("containerd://{id}")
    }
}

// Changes.
impl Churn {
    fn change(&mut self) {
        let mut roll = self.rng.random_range(0..1000u32);
        let mut pick = Pick::Kind(ChangeKind::ReadinessFlap);
        for (p, weight) in WEIGHTS {
            if roll < weight {
                pick = p;
                break;
            }
            roll -= weight;
        }
        let kind = match pick {
            Pick::Kind(kind) => kind,
            Pick::AppLifecycle => {
                let deficit =
                    (self.target as f64 - self.objects.len() as f64) / (self.target.max(1) as f64);
                let p_create = (0.5 + 5.0 * deficit).clamp(0.05, 0.95);
                if self.rng.random_bool(p_create) {
                    ChangeKind::AppCreated
                } else {
                    ChangeKind::AppDeleted
                }
            }
        };
        for kind in [kind, ChangeKind::ReadinessFlap, ChangeKind::PodRestart] {
            self.cause = kind;
            let done = match kind {
                ChangeKind::ReadinessFlap => self.readiness_flap(),
                ChangeKind::PodRestart => self.pod_restart(),
                ChangeKind::CronJobRun => self.cron_job_run(),
                ChangeKind::Scale => self.scale(),
                ChangeKind::Rollout => self.rollout(),
                ChangeKind::Rotation => self.rotation(),
                ChangeKind::AppCreated => self.app_created(),
                ChangeKind::AppDeleted => self.app_deleted(),
            };
            if done {
                self.stats.changes[kind.index()] += 1;
                return;
            }
        }
    }

    /// A running, ready pod of a long-running workload (not a Job's), not terminating.
    fn pick_running_pod(&mut self) -> Option<Key> {
        for _ in 0..16 {
            let key = self.pools[POOL_PODS].pick(&mut self.rng)?;
            let Some(pod) = self.get(&key) else { continue };
            let eligible = s(pod, "/status/phase") == "Running"
                && pod_ready(pod)
                && !terminating(pod)
                && s(pod, "/metadata/ownerReferences/0/kind") != "Job"
                && pod
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
            if eligible {
                return Some(key);
            }
        }
        None
    }

    /// A Deployment that is not being deleted and whose last rollout is complete.
    fn pick_settled_deployment(&mut self, pool: usize) -> Option<Key> {
        for _ in 0..8 {
            let key = self.pools[pool].pick(&mut self.rng)?;
            if self.get(&key).is_some_and(deployment_settled) {
                return Some(key);
            }
        }
        None
    }

    fn readiness_flap(&mut self) -> bool {
        let Some(key) = self.pick_running_pod() else {
            return false;
        };
        let Some(pod) = self.get(&key) else {
            return false;
        };
        let uid = s(pod, "/metadata/uid").to_string();
        let count = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let which = self.rng.random_range(0..count.max(1));
        let now = self.ts();
        self.modify(&key, |p| {
            let mut names = Vec::new();
            if let Some(cs) = p
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
                .and_then(|c| c.get_mut(which))
            {
                set(cs, "", "ready", json!(false));
                names.push(s(cs, "/name").to_string());
            }
            let message = format!("containers with unready status: [{}]", names.join(" "));
            for ty in ["Ready", "ContainersReady"] {
                set_pod_condition(
                    p,
                    ty,
                    false,
                    Some("ContainersNotReady"),
                    Some(&message),
                    &now,
                );
            }
            set_status_managed(p, "kubelet", &now);
        });
        self.mark_owner(&key);
        // Most flaps last one or two probe periods; some last minutes.
        let delay = if self.rng.random_bool(0.8) {
            self.rng.random_range(5..=40)
        } else {
            self.rng.random_range(40..=300)
        };
        self.schedule(delay as f64, Action::PodReady { pod: key, uid });
        true
    }

    fn pod_restart(&mut self) -> bool {
        let Some(key) = self.pick_running_pod() else {
            return false;
        };
        let Some(pod) = self.get(&key) else {
            return false;
        };
        let uid = s(pod, "/metadata/uid").to_string();
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if statuses.is_empty() {
            return false;
        }
        let which = self.rng.random_range(0..statuses.len());
        let old = &statuses[which];
        let container = s(old, "/name").to_string();
        let restarts = u(old, "/restartCount") + 1;
        let (reason, exit_code) = [
            ("Error", 1),
            ("Error", 1),
            ("OOMKilled", 137),
            ("Error", 143),
            ("Error", 2),
            ("Completed", 0),
        ][self.rng.random_range(0..6usize)];
        let back_off = (restarts > 1 && self.rng.random_bool(0.6))
            .then(|| 10u64 << (restarts - 1).min(5))
            .map(|b| b.min(300));
        let new_id = self.random_container_id();
        let now = self.ts();
        let pod_ref = format!("{}_{}({uid})", key.name, key.ns);
        let last_state = json!({"terminated": {
            "containerID": s(old, "/containerID"),
            "exitCode": exit_code,
            "finishedAt": now,
            "reason": reason,
            "startedAt": s(old, "/state/running/startedAt"),
        }});
        self.modify(&key, |p| {
            if let Some(cs) = p
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
                .and_then(|c| c.get_mut(which))
            {
                set(cs, "", "lastState", last_state);
                set(cs, "", "restartCount", json!(restarts));
                set(cs, "", "ready", json!(false));
                match back_off {
                    Some(b) => {
                        set(cs, "", "started", json!(false));
                        set(cs, "", "state", json!({"waiting": {
                            "message": format!("back-off {b}s restarting failed container={container} pod={pod_ref}"),
                            "reason": "CrashLoopBackOff",
                        }}));
                    }
                    None => {
                        set(cs, "", "containerID", Value::String(new_id));
                        set(cs, "", "started", json!(true));
                        set(cs, "", "state", json!({"running": {"startedAt": now}}));
                    }
                }
            }
            let message = format!("containers with unready status: [{container}]");
            for ty in ["Ready", "ContainersReady"] {
                set_pod_condition(p, ty, false, Some("ContainersNotReady"), Some(&message), &now);
            }
            set_status_managed(p, "kubelet", &now);
        });
        self.mark_owner(&key);
        match back_off {
            Some(b) => {
                let container = s(&statuses[which], "/name").to_string();
                self.schedule(
                    b as f64,
                    Action::ContainerStarted {
                        pod: key,
                        uid,
                        container,
                    },
                );
            }
            None => {
                let delay = self.rng.random_range(5..=60);
                self.schedule(delay as f64, Action::PodReady { pod: key, uid });
            }
        }
        true
    }

    fn cron_job_run(&mut self) -> bool {
        let minute = self.clock - self.clock.rem_euclid(60);
        for _ in 0..6 {
            let Some(key) = self.pools[POOL_CRON_JOBS].pick(&mut self.rng) else {
                return false;
            };
            let Some(cron) = self.get(&key) else { continue };
            // Runs may overlap only under `concurrencyPolicy: Allow`.
            let busy = s(cron, "/spec/concurrencyPolicy") != "Allow"
                && cron
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            let job_name = format!("{}-{}", key.name, minute / 60);
            if busy
                || terminating(cron)
                || self
                    .objects
                    .contains_key(&Key::new("Job", &key.ns, &job_name))
            {
                continue;
            }
            let cron = cron.clone();
            let now = self.ts();
            let mut job = self.factory.job_for(&cron, minute);
            set(&mut job, "", "status", json!({}));
            set(&mut job, "/metadata", "creationTimestamp", json!(now));
            remove_status_managed(&mut job);
            retime_managed(&mut job, &now);
            let job_key = self.create(job);
            let Some(job) = self.get(&job_key) else {
                return false;
            };
            let reference = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": job_key.name,
                "namespace": job_key.ns,
                "resourceVersion": s(job, "/metadata/resourceVersion"),
                "uid": s(job, "/metadata/uid"),
            });
            let scheduled = ObjectFactory::timestamp(minute);
            self.modify(&key, |c| {
                let mut active = c
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                active.push(reference);
                set(c, "/status", "active", Value::Array(active));
                set(c, "/status", "lastScheduleTime", json!(scheduled));
                set_status_managed(c, KCM, &now);
            });
            self.mark(&job_key);
            return true;
        }
        false
    }

    fn scale(&mut self) -> bool {
        let Some(key) = self.pick_settled_deployment(POOL_DEPLOYMENTS) else {
            return false;
        };
        let Some(d) = self.get(&key) else {
            return false;
        };
        let uid = s(d, "/metadata/uid").to_string();
        let current = u(d, "/spec/replicas");
        let base = self.baseline.get(&uid).copied().unwrap_or(current).max(1);
        let step = if self.rng.random_bool(0.7) { 1 } else { 2 };
        let p_up = if current <= 1 {
            1.0
        } else {
            (0.5 + 0.2 * (base as f64 - current as f64)).clamp(0.1, 0.9)
        };
        let replicas = if self.rng.random_bool(p_up) {
            (current + step).min((base * 3).max(10))
        } else {
            current.saturating_sub(step).max(1)
        };
        if replicas == current {
            return false;
        }
        // An autoscaler writes through the scale subresource as the controller manager; people use kubectl.
        let manager = if uid.starts_with(['0', '1', '2', '3', '4', '5', '6', '7']) {
            KCM
        } else {
            "kubectl"
        };
        let now = self.ts();
        self.modify(&key, |d| {
            set(d, "/spec", "replicas", json!(replicas));
            bump_generation(d);
            let fields = json!({"f:spec": {"f:replicas": {}}});
            if let Some(entries) = d
                .pointer_mut("/metadata/managedFields")
                .and_then(Value::as_array_mut)
            {
                // The scaler takes `spec.replicas` over from whoever owned it.
                for e in entries.iter_mut() {
                    if let Some(spec) = e
                        .pointer_mut("/fieldsV1/f:spec")
                        .and_then(Value::as_object_mut)
                    {
                        spec.remove("f:replicas");
                    }
                }
                match entries
                    .iter_mut()
                    .find(|e| s(e, "/manager") == manager && s(e, "/subresource") == "scale")
                {
                    Some(e) => {
                        set(e, "", "time", json!(now));
                        set(e, "", "fieldsV1", fields);
                    }
                    None => entries.push(json!({
                        "apiVersion": "apps/v1",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields,
                        "manager": manager,
                        "operation": "Update",
                        "subresource": "scale",
                        "time": now,
                    })),
                }
            }
        });
        self.mark(&key);
        true
    }

    fn rollout(&mut self) -> bool {
        let Some(key) = self.pick_settled_deployment(POOL_DEPLOYMENTS) else {
            return false;
        };
        let Some(old) = self.get(&key).cloned() else {
            return false;
        };
        let (updated, rs) = self.factory.new_replica_set_revision(&old);
        let now = self.ts();
        let mut d = old;
        if let Some(spec) = updated.get("spec") {
            set(&mut d, "", "spec", spec.clone());
        }
        if let Some(generation) = updated.pointer("/metadata/generation") {
            set(&mut d, "/metadata", "generation", generation.clone());
        }
        refresh_last_applied(&mut d);
        retime_applier(&mut d, &now);
        self.modify(&key, |o| *o = d);
        self.add_replica_set(&key, rs, &now);
        true
    }

    /// Creates `rs`, the new ReplicaSet of the Deployment at `deployment`, sized as the Deployment
    /// controller sizes a new ReplicaSet (up to maxSurge above the desired count).
    fn add_replica_set(&mut self, deployment: &Key, mut rs: Value, now: &str) {
        let Some(d) = self.get(deployment) else {
            return;
        };
        let desired = u(d, "/spec/replicas");
        let (surge, _) = rolling_limits(d, desired);
        let uid = s(d, "/metadata/uid").to_string();
        let total: u64 = self.replica_sets(&uid).iter().map(|r| r.spec).sum();
        let replicas = desired.min((desired + surge).saturating_sub(total));
        set(&mut rs, "/spec", "replicas", json!(replicas));
        set(&mut rs, "/metadata", "generation", json!(1));
        set(&mut rs, "/metadata", "creationTimestamp", json!(now));
        set(&mut rs, "", "status", json!({"replicas": 0}));
        remove_status_managed(&mut rs);
        retime_managed(&mut rs, now);
        let rs_key = self.create(rs);
        self.mark(&rs_key);
        self.mark(deployment);
    }

    fn rotation(&mut self) -> bool {
        let Some(key) = self.pools[POOL_ROTATABLE].pick(&mut self.rng) else {
            return false;
        };
        let Some(obj) = self.get(&key) else {
            return false;
        };
        let Some(old) = obj.get("data").and_then(Value::as_object).cloned() else {
            return false;
        };
        let data = if key.kind == "Secret" {
            self.factory.rotated_secret_data(&old)
        } else {
            self.edit_config(old)
        };
        let now = self.ts();
        self.modify(&key, |o| {
            set(o, "", "data", Value::Object(data));
            refresh_last_applied(o);
            retime_applier(o, &now);
        });
        true
    }

    /// `data` of an app ConfigMap with one setting changed.
    fn edit_config(&mut self, mut data: Map<String, Value>) -> Map<String, Value> {
        if data.contains_key("LOG_LEVEL") && self.rng.random_bool(0.3) {
            let level = ["info", "debug", "warn", "INFO", "DEBUG", "error"]
                [self.rng.random_range(0..6usize)];
            data.insert("LOG_LEVEL".into(), json!(level));
            return data;
        }
        let Some(yaml) = data.get("application.yaml").and_then(Value::as_str) else {
            return data;
        };
        let lines: Vec<&str> = yaml.lines().collect();
        let numeric: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.starts_with("  ")
                    && l.split_once(": ").is_some_and(|(_, v)| {
                        v.trim_end_matches("ms").parse::<u64>().is_ok()
                            || v == "true"
                            || v == "false"
                    })
            })
            .map(|(i, _)| i)
            .collect();
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        if numeric.is_empty() {
            out.push(format!(
                "  revision: {}",
                self.rng.random_range(1..10_000u32)
            ));
        } else {
            let i = numeric[self.rng.random_range(0..numeric.len())];
            if let Some((k, v)) = lines[i].split_once(": ") {
                let value = match v {
                    "true" => "false".to_string(),
                    "false" => "true".to_string(),
                    _ if v.ends_with("ms") => format!("{}ms", self.rng.random_range(50..30_000u32)),
                    _ => self.rng.random_range(1..10_000u32).to_string(),
                };
                out[i] = format!("{k}: {value}");
            }
        }
        let mut yaml = out.join("\n");
        yaml.push('\n');
        data.insert("application.yaml".into(), Value::String(yaml));
        data
    }

    fn app_created(&mut self) -> bool {
        if self.app_namespaces.is_empty() {
            return false;
        }
        let ns = self.app_namespaces[self.rng.random_range(0..self.app_namespaces.len())].clone();
        let bundle = self.factory.app(&ns);
        let now = self.ts();
        let mut deployment = None;
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut deferred = Vec::new();
        for mut obj in bundle {
            let kind = s(&obj, "/kind").to_string();
            if kind == "ReplicaSet" || kind == "Pod" {
                continue; // The controllers make these.
            }
            set(&mut obj, "/metadata", "creationTimestamp", json!(now));
            retime_managed(&mut obj, &now);
            match kind.as_str() {
                "Deployment" => deployment = Some(obj),
                "ServiceAccount" | "ConfigMap" | "Secret" | "Service" => {
                    if let Some(d) = defer_load_balancer(&mut obj) {
                        deferred.push((Key::of(&obj), d));
                    }
                    before.push(obj);
                }
                _ => {
                    if let Some(d) = defer_load_balancer(&mut obj) {
                        deferred.push((Key::of(&obj), d));
                    }
                    after.push(obj);
                }
            }
        }
        let Some(mut d) = deployment else {
            return false;
        };
        before.sort_by_key(|o| match s(o, "/kind") {
            "ServiceAccount" => 0,
            "ConfigMap" => 1,
            "Secret" => 2,
            _ => 3,
        });
        for obj in before {
            self.create(obj);
        }
        // A fresh Deployment: revision 1 once the controller has seen it, status empty until then.
        set(&mut d, "/metadata/annotations", REVISION, json!("0"));
        set(&mut d, "/metadata", "generation", json!(0));
        let (mut d, rs) = self.factory.new_replica_set_revision(&d);
        if let Some(a) = d
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(REVISION);
        }
        set(&mut d, "/metadata", "creationTimestamp", json!(now));
        set(&mut d, "", "status", json!({}));
        if let Some(entries) = d
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            entries.retain(|e| s(e, "/manager") != KCM);
        }
        refresh_last_applied(&mut d);
        retime_managed(&mut d, &now);
        let d_key = self.create(d);
        self.add_replica_set(&d_key, rs, &now);
        for obj in after {
            self.create(obj);
        }
        for (key, (status, manager)) in deferred {
            let Some(uid) = self.get(&key).map(|o| s(o, "/metadata/uid").to_string()) else {
                continue;
            };
            let delay = self.rng.random_range(20..=120);
            self.schedule(
                delay as f64,
                Action::StatusArrives {
                    key,
                    uid,
                    status: Box::new(status),
                    manager,
                },
            );
        }
        true
    }

    fn app_deleted(&mut self) -> bool {
        let Some(key) = (0..8).find_map(|_| {
            let key = self.pools[POOL_APP_DEPLOYMENTS].pick(&mut self.rng)?;
            self.get(&key).filter(|d| !terminating(d)).map(|_| key)
        }) else {
            return false;
        };
        let Some(uid) = self.get(&key).map(|d| s(d, "/metadata/uid").to_string()) else {
            return false;
        };
        let name = key.name.clone();
        let ns = key.ns.clone();
        // Foreground deletion: the Deployment and its ReplicaSets wait for their pods.
        self.begin_delete(&key, true);
        let mut grace = 0;
        for rs in self.dependents_of(&uid) {
            self.begin_delete(&rs, true);
            let rs_uid = self.get(&rs).map(|r| s(r, "/metadata/uid").to_string());
            for pod in rs_uid.map(|u| self.dependents_of(&u)).unwrap_or_default() {
                grace = grace.max(self.terminate_pod(&pod));
            }
        }
        self.schedule(grace as f64 + 1.0, Action::FinishDelete { key, uid });
        for (kind, object) in [
            ("Service", name.clone()),
            ("Ingress", name.clone()),
            ("NetworkPolicy", name.clone()),
            ("ServiceAccount", name.clone()),
            ("ConfigMap", format!("{name}-config")),
            ("Secret", format!("{name}-secrets")),
            ("Secret", format!("{name}-tls")),
        ] {
            let key = Key::new(kind, &ns, &object);
            let Some(obj) = self.get(&key) else { continue };
            let finalizers = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if finalizers {
                // The ingress controller removes its finalizer once the load balancer is cleaned up.
                let uid = s(obj, "/metadata/uid").to_string();
                self.begin_delete(&key, false);
                let delay = self.rng.random_range(5..=40);
                self.schedule(delay as f64, Action::FinishDelete { key, uid });
            } else {
                self.delete(&key);
            }
        }
        true
    }

    /// Marks the object at `key` for deletion (`deletionTimestamp`, generation + 1, and with `foreground`
    /// the `foregroundDeletion` finalizer).
    fn begin_delete(&mut self, key: &Key, foreground: bool) {
        if self.get(key).is_none_or(terminating) {
            return;
        }
        let now = self.ts();
        self.modify(key, |o| {
            set(o, "/metadata", "deletionTimestamp", json!(now));
            set(o, "/metadata", "deletionGracePeriodSeconds", json!(0));
            if o.pointer("/metadata/generation").is_some() {
                bump_generation(o);
            }
            if foreground {
                let list = o
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut list = list;
                if !list.iter().any(|f| f == "foregroundDeletion") {
                    list.push(json!("foregroundDeletion"));
                }
                set(o, "/metadata", "finalizers", Value::Array(list));
            }
        });
    }

    /// Starts the graceful deletion of a pod; returns the seconds until it is gone.
    fn terminate_pod(&mut self, key: &Key) -> u64 {
        let Some(pod) = self.get(key) else { return 0 };
        if terminating(pod) {
            return 30;
        }
        let uid = s(pod, "/metadata/uid").to_string();
        let grace = pod
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        let deadline = ObjectFactory::timestamp(self.clock + grace as i64);
        self.modify(key, |p| {
            set(p, "/metadata", "deletionGracePeriodSeconds", json!(grace));
            set(p, "/metadata", "deletionTimestamp", json!(deadline));
        });
        self.mark_owner(key);
        let gone = if grace == 0 {
            0
        } else {
            self.rng.random_range(1..=grace.min(25))
        };
        self.schedule(
            gone as f64,
            Action::PodGone {
                pod: key.clone(),
                uid,
            },
        );
        gone
    }

    /// Creates a pod of `owner` as its controller does: Pending, then bound to a node; the kubelet reports
    /// it running later.
    fn create_pod(&mut self, owner: &Value) {
        let full = self.factory.pod_for(owner);
        let uid = s(&full, "/metadata/uid").to_string();
        let status = full.get("status").cloned().unwrap_or_else(|| json!({}));
        let node = full
            .pointer("/spec/nodeName")
            .cloned()
            .unwrap_or(Value::Null);
        let mut pending = full;
        if let Some(spec) = pending.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("nodeName");
        }
        let qos = status
            .get("qosClass")
            .cloned()
            .unwrap_or(json!("BestEffort"));
        set(
            &mut pending,
            "",
            "status",
            json!({"phase": "Pending", "qosClass": qos}),
        );
        remove_status_managed(&mut pending);
        let key = self.create(pending);
        let now = self.ts();
        self.modify(&key, |p| {
            set(p, "/spec", "nodeName", node);
            set(
                p,
                "/status",
                "conditions",
                json!([{
                    "lastProbeTime": null,
                    "lastTransitionTime": now,
                    "status": "True",
                    "type": "PodScheduled",
                }]),
            );
        });
        let job = s(owner, "/kind") == "Job";
        let running_at = if job {
            status
                .pointer("/containerStatuses/0/state/terminated/startedAt")
                .and_then(Value::as_str)
        } else {
            condition_time(&status, "Ready")
        }
        .and_then(parse_ts)
        .unwrap_or(self.clock + 10);
        self.schedule(
            self.until(running_at),
            Action::PodStarted {
                pod: key,
                uid,
                status: Box::new(status),
            },
        );
    }
}

// Follow-ups.
impl Churn {
    fn run(&mut self, action: Action) {
        let now = self.ts();
        match action {
            Action::PodStarted { pod, uid, status } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if terminating(p) || s(p, "/status/phase") != "Pending" {
                    return;
                }
                let job = s(p, "/metadata/ownerReferences/0/kind") == "Job";
                let status = *status;
                let running = if job {
                    let finished = condition_time(&status, "Ready")
                        .and_then(parse_ts)
                        .unwrap_or(self.clock + 60);
                    self.schedule(
                        self.until(finished),
                        Action::PodSucceeded {
                            pod: pod.clone(),
                            uid,
                            status: Box::new(status.clone()),
                        },
                    );
                    job_pod_running(&status)
                } else {
                    fresh_pod_status(status)
                };
                self.modify(&pod, |p| {
                    set(p, "", "status", running);
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::PodSucceeded { pod, uid, status } => {
                if self.get_alive(&pod, &uid).is_none_or(terminating) {
                    return;
                }
                self.modify(&pod, |p| {
                    set(p, "", "status", *status);
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::ContainerStarted {
                pod,
                uid,
                container,
            } => {
                if self.get_alive(&pod, &uid).is_none_or(terminating) {
                    return;
                }
                let id = self.random_container_id();
                self.modify(&pod, |p| {
                    if let Some(cs) = p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .and_then(|c| c.iter_mut().find(|c| s(c, "/name") == container))
                    {
                        set(cs, "", "containerID", json!(id));
                        set(cs, "", "started", json!(true));
                        set(cs, "", "state", json!({"running": {"startedAt": now}}));
                    }
                    set_status_managed(p, "kubelet", &now);
                });
                let delay = self.rng.random_range(5..=60);
                self.schedule(delay as f64, Action::PodReady { pod, uid });
            }
            Action::PodReady { pod, uid } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if terminating(p) || s(p, "/status/phase") != "Running" {
                    return;
                }
                self.modify(&pod, |p| {
                    for cs in p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if cs.pointer("/state/running").is_some() {
                            set(cs, "", "ready", json!(true));
                        }
                    }
                    for ty in ["Ready", "ContainersReady"] {
                        set_pod_condition(p, ty, true, None, None, &now);
                    }
                    set_status_managed(p, "kubelet", &now);
                });
                self.mark_owner(&pod);
            }
            Action::PodGone { pod, uid } => {
                let Some(p) = self.get_alive(&pod, &uid) else {
                    return;
                };
                if s(p, "/status/phase") == "Pending" {
                    // Never started: nothing for the kubelet to report.
                    let owner = self.owner_of(&pod);
                    self.delete(&pod);
                    if let Some(owner) = owner {
                        self.mark(&owner);
                    }
                    return;
                }
                let exit = if self.rng.random_bool(0.7) { 0 } else { 143 };
                self.modify(&pod, |p| {
                    let phase = if s(p, "/status/phase") == "Succeeded" || exit == 0 {
                        "Succeeded"
                    } else {
                        "Failed"
                    };
                    for cs in p
                        .pointer_mut("/status/containerStatuses")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(started) = cs
                            .pointer("/state/running/startedAt")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                        {
                            let id = s(cs, "/containerID").to_string();
                            set(
                                cs,
                                "",
                                "state",
                                json!({"terminated": {
                                    "containerID": id,
                                    "exitCode": exit,
                                    "finishedAt": now,
                                    "reason": if exit == 0 { "Completed" } else { "Error" },
                                    "startedAt": started,
                                }}),
                            );
                        }
                        set(cs, "", "ready", json!(false));
                        set(cs, "", "started", json!(false));
                    }
                    for ty in ["Ready", "ContainersReady"] {
                        set_pod_condition(p, ty, false, Some("PodCompleted"), None, &now);
                    }
                    set(p, "/status", "phase", json!(phase));
                    set_status_managed(p, "kubelet", &now);
                });
                let owner = self.owner_of(&pod);
                self.delete(&pod);
                if let Some(owner) = owner {
                    self.mark(&owner);
                }
            }
            Action::StatusArrives {
                key,
                uid,
                status,
                manager,
            } => {
                if self.get_alive(&key, &uid).is_none_or(terminating) {
                    return;
                }
                self.modify(&key, |o| {
                    set(o, "", "status", *status);
                    set_status_managed(o, &manager, &now);
                });
            }
            Action::FinishDelete { key, uid } => {
                if self.get_alive(&key, &uid).is_none() {
                    return;
                }
                let owner = self.owner_of(&key);
                self.delete_tree(&key);
                if let Some(owner) = owner {
                    self.mark(&owner);
                }
            }
        }
    }
}

// Controllers.
impl Churn {
    fn replica_sets(&self, deployment_uid: &str) -> Vec<ReplicaSetInfo> {
        let mut out: Vec<ReplicaSetInfo> = self
            .dependents
            .get(deployment_uid)
            .into_iter()
            .flatten()
            .filter(|k| k.kind == "ReplicaSet")
            .filter_map(|k| {
                let rs = self.get(k)?;
                if terminating(rs) {
                    return None;
                }
                Some(ReplicaSetInfo {
                    key: k.clone(),
                    revision: s(
                        rs,
                        "/metadata/annotations/deployment.kubernetes.io~1revision",
                    )
                    .parse()
                    .unwrap_or(0),
                    spec: u(rs, "/spec/replicas"),
                    replicas: u(rs, "/status/replicas"),
                    ready: u(rs, "/status/readyReplicas"),
                    available: u(rs, "/status/availableReplicas"),
                    has_dependents: self.dependents.contains_key(s(rs, "/metadata/uid")),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.revision, &a.key).cmp(&(b.revision, &b.key)));
        out
    }

    /// (active, ready, succeeded) pods of the owner with `uid`, with the active ones' keys.
    fn pod_counts(&self, uid: &str) -> (Vec<(Key, &Value)>, u64, u64) {
        let mut active = Vec::new();
        let mut ready = 0;
        let mut succeeded = 0;
        for key in self.dependents.get(uid).into_iter().flatten() {
            if key.kind != "Pod" {
                continue;
            }
            let Some(pod) = self.get(key) else { continue };
            match s(pod, "/status/phase") {
                "Succeeded" => succeeded += 1,
                "Failed" => {}
                _ if terminating(pod) => {}
                _ => {
                    if pod_ready(pod) {
                        ready += 1;
                    }
                    active.push((key.clone(), pod));
                }
            }
        }
        (active, ready, succeeded)
    }

    fn reconcile_replica_set(&mut self, key: &Key) {
        let Some(rs) = self.get(key) else { return };
        if terminating(rs) {
            return;
        }
        let uid = s(rs, "/metadata/uid").to_string();
        let desired = u(rs, "/spec/replicas");
        let (active, _, _) = self.pod_counts(&uid);
        let have = active.len() as u64;
        if have < desired {
            let owner = rs.clone();
            for _ in have..desired {
                self.create_pod(&owner);
            }
        } else if have > desired {
            // Pending before running, not ready before ready, newest before oldest.
            let mut victims: Vec<(bool, bool, String, Key)> = active
                .iter()
                .map(|(k, p)| {
                    (
                        s(p, "/status/phase") != "Pending",
                        pod_ready(p),
                        s(p, "/metadata/creationTimestamp").to_string(),
                        k.clone(),
                    )
                })
                .collect();
            victims.sort_by(|a, b| {
                (a.0, a.1)
                    .cmp(&(b.0, b.1))
                    .then_with(|| b.2.cmp(&a.2))
                    .then_with(|| a.3.cmp(&b.3))
            });
            for (_, _, _, pod) in victims.into_iter().take((have - desired) as usize) {
                self.terminate_pod(&pod);
            }
        }
        let Some(rs) = self.get(key) else { return };
        let (active, ready, _) = self.pod_counts(&uid);
        let replicas = active.len() as u64;
        let mut status = Map::new();
        if ready > 0 {
            status.insert("availableReplicas".into(), json!(ready));
        }
        if replicas > 0 {
            status.insert("fullyLabeledReplicas".into(), json!(replicas));
        }
        status.insert(
            "observedGeneration".into(),
            json!(u(rs, "/metadata/generation")),
        );
        if ready > 0 {
            status.insert("readyReplicas".into(), json!(ready));
        }
        status.insert("replicas".into(), json!(replicas));
        let status = Value::Object(status);
        if rs.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |r| {
                set(r, "", "status", status);
                set_status_managed(r, KCM, &now);
            });
            self.mark_owner(key);
        }
    }

    fn scale_replica_set(&mut self, key: &Key, replicas: u64, desired: u64, surge: u64) {
        let now = self.ts();
        self.modify(key, |r| {
            set(r, "/spec", "replicas", json!(replicas));
            bump_generation(r);
            let annotations = "/metadata/annotations";
            set(
                r,
                annotations,
                "deployment.kubernetes.io/desired-replicas",
                json!(desired.to_string()),
            );
            set(
                r,
                annotations,
                "deployment.kubernetes.io/max-replicas",
                json!((desired + surge).to_string()),
            );
            retime_manager(r, KCM, &now);
        });
        self.mark(key);
    }

    fn reconcile_deployment(&mut self, key: &Key) {
        let Some(d) = self.get(key) else { return };
        if terminating(d) {
            return;
        }
        let uid = s(d, "/metadata/uid").to_string();
        let desired = u(d, "/spec/replicas");
        let (surge, max_unavailable) = rolling_limits(d, desired);
        let history_limit = d
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        let mut sets = self.replica_sets(&uid);
        let Some(newest) = sets.len().checked_sub(1) else {
            return;
        };
        // Scale the new ReplicaSet up, at most maxSurge above the desired count in all.
        let old_spec: u64 = sets[..newest].iter().map(|r| r.spec).sum();
        let new_spec = sets[newest].spec;
        let target = if old_spec == 0 || new_spec > desired {
            desired
        } else {
            desired.min(new_spec + (desired + surge).saturating_sub(old_spec + new_spec))
        };
        if target != new_spec {
            let k = sets[newest].key.clone();
            self.scale_replica_set(&k, target, desired, surge);
            sets[newest].spec = target;
        }
        // Scale old ReplicaSets down while at least desired - maxUnavailable pods stay available:
        // unhealthy replicas first, then the oldest ReplicaSets' available ones.
        if old_spec > 0 {
            let all: u64 = sets.iter().map(|r| r.spec).sum();
            let min_available = desired.saturating_sub(max_unavailable);
            let new_unavailable = sets[newest].spec.saturating_sub(sets[newest].available);
            let mut room = all as i64 - min_available as i64 - new_unavailable as i64;
            let mut changed = Vec::new();
            for rs in sets[..newest].iter_mut() {
                if room <= 0 {
                    break;
                }
                let unhealthy = rs.spec.saturating_sub(rs.available).min(room as u64);
                if unhealthy > 0 {
                    rs.spec -= unhealthy;
                    room -= unhealthy as i64;
                    changed.push(rs.key.clone());
                }
            }
            let available: u64 = sets.iter().map(|r| r.available.min(r.spec)).sum();
            let mut excess = available.saturating_sub(min_available);
            for rs in sets[..newest].iter_mut() {
                if excess == 0 {
                    break;
                }
                let down = rs.spec.min(excess);
                if down > 0 {
                    rs.spec -= down;
                    excess -= down;
                    changed.push(rs.key.clone());
                }
            }
            changed.sort();
            changed.dedup();
            for k in changed {
                if let Some(spec) = sets.iter().find(|r| r.key == k).map(|r| r.spec) {
                    self.scale_replica_set(&k, spec, desired, surge);
                }
            }
        }
        // Status, from the ReplicaSets' statuses.
        let sets = self.replica_sets(&uid);
        let Some(new) = sets.last() else { return };
        let olds = &sets[..sets.len() - 1];
        let spec_total: u64 = sets.iter().map(|r| r.spec).sum();
        let replicas: u64 = sets.iter().map(|r| r.replicas).sum();
        let ready: u64 = sets.iter().map(|r| r.ready).sum();
        let available: u64 = sets.iter().map(|r| r.available).sum();
        let complete = new.spec == desired
            && new.replicas == desired
            && new.available == desired
            && olds.iter().all(|r| r.spec == 0 && r.replicas == 0);
        let new_name = new.key.name.clone();
        let revision = new.revision.to_string();
        let Some(d) = self.get(key) else { return };
        let old_status = d.get("status").cloned().unwrap_or_else(|| json!({}));
        let mut status = Map::new();
        let mut put = |k: &str, v: u64| {
            if v > 0 {
                status.insert(k.to_string(), json!(v));
            }
        };
        put("availableReplicas", available);
        put("observedGeneration", u(d, "/metadata/generation"));
        put("readyReplicas", ready);
        put("replicas", replicas);
        put("unavailableReplicas", spec_total.saturating_sub(available));
        put("updatedReplicas", new.replicas);
        // As the controller's syncRolloutStatus: progress is more updated, ready or available replicas, or
        // fewer old ones.
        let old_count = |k: &str| u(&old_status, &format!("/{k}"));
        let old_replicas_before =
            old_count("replicas").saturating_sub(old_count("updatedReplicas"));
        let progressed = new.replicas > old_count("updatedReplicas")
            || ready > old_count("readyReplicas")
            || available > old_count("availableReplicas")
            || replicas.saturating_sub(new.replicas) < old_replicas_before;
        let now = self.ts();
        let mut conditions: Vec<Value> = old_status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (ok, reason, message) = if available >= desired.saturating_sub(max_unavailable) {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        set_deployment_condition(
            &mut conditions,
            "Available",
            ok,
            reason,
            message,
            false,
            &now,
        );
        let knows_new = conditions.iter().any(|c| {
            s(c, "/type") == "Progressing" && s(c, "/message").contains(&format!("\"{new_name}\""))
        });
        if !knows_new {
            let message = format!("Created new replica set \"{new_name}\"");
            set_deployment_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &message,
                true,
                &now,
            );
        } else if complete {
            let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            set_deployment_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &message,
                false,
                &now,
            );
        } else if progressed {
            let message = format!("ReplicaSet \"{new_name}\" is progressing.");
            set_deployment_condition(
                &mut conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &message,
                true,
                &now,
            );
        }
        status.insert("conditions".into(), Value::Array(conditions));
        let status = Value::Object(status);
        let revision_changed = s(
            d,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        ) != revision;
        if status != old_status || revision_changed {
            self.modify(key, |d| {
                if revision_changed {
                    set(d, "/metadata/annotations", REVISION, json!(revision));
                    ensure_revision_manager(d, &now);
                }
                set(d, "", "status", status);
                set_status_managed(d, KCM, &now);
            });
        }
        if complete {
            // Old ReplicaSets beyond revisionHistoryLimit go, oldest first.
            let prunable: Vec<Key> = olds
                .iter()
                .filter(|r| r.spec == 0 && r.replicas == 0 && !r.has_dependents)
                .map(|r| r.key.clone())
                .collect();
            let excess = prunable.len().saturating_sub(history_limit as usize);
            for k in prunable.into_iter().take(excess) {
                self.delete(&k);
            }
        }
    }

    fn reconcile_stateful_set(&mut self, key: &Key) {
        let Some(sts) = self.get(key) else { return };
        if terminating(sts) {
            return;
        }
        let (_, ready, _) = self.pod_counts(s(sts, "/metadata/uid"));
        let mut status = sts.get("status").cloned().unwrap_or_else(|| json!({}));
        for field in ["availableReplicas", "readyReplicas"] {
            set_or_remove(&mut status, field, ready);
        }
        if sts.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |o| {
                set(o, "", "status", status);
                set_status_managed(o, KCM, &now);
            });
        }
    }

    fn reconcile_daemon_set(&mut self, key: &Key) {
        let Some(ds) = self.get(key) else { return };
        if terminating(ds) {
            return;
        }
        let (_, ready, _) = self.pod_counts(s(ds, "/metadata/uid"));
        let desired = u(ds, "/status/desiredNumberScheduled");
        let mut status = ds.get("status").cloned().unwrap_or_else(|| json!({}));
        set_or_remove(&mut status, "numberAvailable", ready);
        set_or_remove(&mut status, "numberReady", ready);
        set_or_remove(
            &mut status,
            "numberUnavailable",
            desired.saturating_sub(ready),
        );
        if ds.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |o| {
                set(o, "", "status", status);
                set_status_managed(o, KCM, &now);
            });
        }
    }

    fn reconcile_job(&mut self, key: &Key) {
        let Some(job) = self.get(key) else { return };
        if terminating(job) || job.pointer("/status/completionTime").is_some() {
            return;
        }
        let uid = s(job, "/metadata/uid").to_string();
        if !self.dependents.contains_key(&uid) {
            let owner = job.clone();
            self.create_pod(&owner);
        }
        let Some(job) = self.get(key) else { return };
        let (active, ready, succeeded) = self.pod_counts(&uid);
        let now = self.ts();
        let start = job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or_else(|| json!(now));
        let status = if succeeded
            >= job
                .pointer("/spec/completions")
                .and_then(Value::as_u64)
                .unwrap_or(1)
        {
            let condition = |ty: &str| {
                json!({
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                    "message": "Reached expected number of succeeded pods",
                    "reason": "CompletionsReached",
                    "status": "True",
                    "type": ty,
                })
            };
            json!({
                "completionTime": now,
                "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
                "ready": 0,
                "startTime": start,
                "succeeded": succeeded,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            })
        } else {
            let mut status = json!({
                "ready": ready,
                "startTime": start,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            });
            set_or_remove(&mut status, "active", active.len() as u64);
            status
        };
        if job.get("status") != Some(&status) {
            self.modify(key, |j| {
                set(j, "", "status", status);
                set_status_managed(j, KCM, &now);
            });
            self.mark_owner(key);
        }
    }

    fn reconcile_cron_job(&mut self, key: &Key) {
        let Some(cron) = self.get(key) else { return };
        if terminating(cron) {
            return;
        }
        let uid = s(cron, "/metadata/uid").to_string();
        let limit = cron
            .pointer("/spec/successfulJobsHistoryLimit")
            .and_then(Value::as_u64)
            .unwrap_or(3) as usize;
        let mut active = Vec::new();
        let mut finished: Vec<(String, Key)> = Vec::new();
        let mut last_success = s(cron, "/status/lastSuccessfulTime").to_string();
        for k in self.dependents.get(&uid).into_iter().flatten() {
            let Some(job) = self.get(k) else { continue };
            if k.kind != "Job" || terminating(job) {
                continue;
            }
            match job
                .pointer("/status/completionTime")
                .and_then(Value::as_str)
            {
                Some(done) => {
                    if done > last_success.as_str() {
                        last_success = done.to_string();
                    }
                    finished.push((s(job, "/metadata/creationTimestamp").to_string(), k.clone()));
                }
                None => active.push(json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": k.name,
                    "namespace": k.ns,
                    "resourceVersion": s(job, "/metadata/resourceVersion"),
                    "uid": s(job, "/metadata/uid"),
                })),
            }
        }
        let mut status = cron.get("status").cloned().unwrap_or_else(|| json!({}));
        // The CronJob controller keeps an active reference as it was recorded.
        let recorded: Vec<Value> = status
            .get("active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut refs: Vec<Value> = recorded
            .iter()
            .filter(|r| active.iter().any(|a| s(a, "/uid") == s(r, "/uid")))
            .cloned()
            .collect();
        for a in active {
            if !refs.iter().any(|r| s(r, "/uid") == s(&a, "/uid")) {
                refs.push(a);
            }
        }
        if refs != recorded
            && let Some(m) = status.as_object_mut()
        {
            if refs.is_empty() {
                m.remove("active");
            } else {
                m.insert("active".into(), Value::Array(refs));
            }
        }
        if !last_success.is_empty() {
            set(&mut status, "", "lastSuccessfulTime", json!(last_success));
        }
        if cron.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |c| {
                set(c, "", "status", status);
                set_status_managed(c, KCM, &now);
            });
        }
        finished.sort();
        let excess = finished.len().saturating_sub(limit);
        for (_, job) in finished.into_iter().take(excess) {
            self.delete_tree(&job);
        }
    }
}

// Free helpers.

/// A unit exponential sample: the gap, in expected changes, until the next change of a Poisson process.
fn exponential(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Sets `field` of the object at `pointer` ("" for `v` itself), creating that object if it is missing.
fn set(v: &mut Value, pointer: &str, field: &str, value: Value) {
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
fn set_or_remove(status: &mut Value, field: &str, n: u64) {
    if let Some(m) = status.as_object_mut() {
        if n > 0 {
            m.insert(field.to_string(), json!(n));
        } else {
            m.remove(field);
        }
    }
}

fn parse_ts(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp())
}

fn terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
}

fn condition_time<'a>(status: &'a Value, ty: &str) -> Option<&'a str> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| s(c, "/type") == ty)?
        .get("lastTransitionTime")
        .and_then(Value::as_str)
}

/// Order of kinds in [`Churn::objects`]: owners before dependents.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ServiceAccount" | "ConfigMap" | "Secret" => 1,
        "Service" => 2,
        "Deployment" | "StatefulSet" | "DaemonSet" | "CronJob" => 3,
        "ReplicaSet" | "Job" => 4,
        "Pod" => 5,
        _ => 6,
    }
}

fn bump_generation(obj: &mut Value) {
    let generation = u(obj, "/metadata/generation") + 1;
    set(obj, "/metadata", "generation", json!(generation));
}

/// Whether a Deployment is not being deleted and its last rollout has completed.
fn deployment_settled(d: &Value) -> bool {
    let desired = u(d, "/spec/replicas");
    !terminating(d)
        && u(d, "/status/observedGeneration") == u(d, "/metadata/generation")
        && u(d, "/status/updatedReplicas") == desired
        && u(d, "/status/replicas") == desired
        && d.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| s(c, "/type") == "Progressing" && s(c, "/reason") == "NewReplicaSetAvailable")
}

/// (maxSurge, maxUnavailable) of a Deployment with `desired` replicas, resolved as the controller does.
fn rolling_limits(d: &Value, desired: u64) -> (u64, u64) {
    let resolve = |v: Option<&Value>, round_up: bool| -> u64 {
        match v {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(p)) => {
                let pct = p.trim_end_matches('%').parse::<u64>().unwrap_or(25);
                if round_up {
                    (desired * pct).div_ceil(100)
                } else {
                    desired * pct / 100
                }
            }
            _ => {
                if round_up {
                    (desired * 25).div_ceil(100)
                } else {
                    desired * 25 / 100
                }
            }
        }
    };
    let surge = resolve(d.pointer("/spec/strategy/rollingUpdate/maxSurge"), true);
    let unavailable = resolve(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Sets a pod condition; its `lastTransitionTime` moves only when its status does.
fn set_pod_condition(
    pod: &mut Value,
    ty: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) {
    let status = if ok { "True" } else { "False" };
    let Some(conditions) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let mut condition =
        json!({"lastProbeTime": null, "lastTransitionTime": now, "status": status, "type": ty});
    if let Some(r) = reason {
        set(&mut condition, "", "reason", json!(r));
    }
    if let Some(m) = message {
        set(&mut condition, "", "message", json!(m));
    }
    match conditions.iter_mut().find(|c| s(c, "/type") == ty) {
        Some(c) => {
            if s(c, "/status") == status {
                let time = c.get("lastTransitionTime").cloned().unwrap_or(json!(now));
                set(&mut condition, "", "lastTransitionTime", time);
            }
            *c = condition;
        }
        None => conditions.push(condition),
    }
}

/// Sets a Deployment condition as the controller's `SetDeploymentCondition` does: nothing happens if its
/// status and reason are unchanged (unless `touch`: the Progressing condition on progress), its
/// `lastTransitionTime` moves only when its status does, and a changed condition moves to the end.
fn set_deployment_condition(
    conditions: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    touch: bool,
    now: &str,
) {
    let mut fresh = json!({
        "lastTransitionTime": now,
        "lastUpdateTime": now,
        "message": message,
        "reason": reason,
        "status": status,
        "type": ty,
    });
    if let Some(i) = conditions.iter().position(|c| s(c, "/type") == ty) {
        let current = &conditions[i];
        if s(current, "/status") == status && s(current, "/reason") == reason && !touch {
            return;
        }
        if s(current, "/status") == status
            && let Some(t) = current.get("lastTransitionTime")
        {
            set(&mut fresh, "", "lastTransitionTime", t.clone());
        }
        conditions.remove(i);
    }
    conditions.push(fresh);
}

/// Points the `status` managed-fields entry of `manager` at the object's current status, written `now`.
fn set_status_managed(obj: &mut Value, manager: &str, now: &str) {
    let fields = ObjectFactory::fields_v1(
        &json!({"status": obj.get("status").cloned().unwrap_or(json!({}))}),
    );
    let api = s(obj, "/apiVersion").to_string();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries = meta.entry("managedFields").or_insert_with(|| json!([]));
    let Some(entries) = entries.as_array_mut() else {
        return;
    };
    match entries
        .iter_mut()
        .find(|e| s(e, "/manager") == manager && s(e, "/subresource") == "status")
    {
        Some(e) => {
            set(e, "", "fieldsV1", fields);
            set(e, "", "time", json!(now));
        }
        None => entries.push(json!({
            "apiVersion": api,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
            "manager": manager,
            "operation": "Update",
            "subresource": "status",
            "time": now,
        })),
    }
}

/// Drops the `status` subresource entries (for objects created before any controller reported).
fn remove_status_managed(obj: &mut Value) {
    if let Some(entries) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    {
        entries.retain(|e| s(e, "/subresource") != "status");
    }
}

/// Re-times every managed-fields entry (an object written as a whole, now).
fn retime_managed(obj: &mut Value, now: &str) {
    for e in obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        set(e, "", "time", json!(now));
    }
}

/// Re-times the main (non-subresource) entry of `manager`.
fn retime_manager(obj: &mut Value, manager: &str, now: &str) {
    for e in obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if s(e, "/manager") == manager && e.get("subresource").is_none() {
            set(e, "", "time", json!(now));
        }
    }
}

/// Re-times the applier's entry: the first main entry that is not a controller's.
fn retime_applier(obj: &mut Value, now: &str) {
    if let Some(e) = obj
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
        .and_then(|entries| {
            entries
                .iter_mut()
                .find(|e| e.get("subresource").is_none() && s(e, "/manager") != KCM)
        })
    {
        set(e, "", "time", json!(now));
    }
}

/// Makes sure the Deployment controller's entry owning the revision annotation exists, written `now`.
fn ensure_revision_manager(d: &mut Value, now: &str) {
    let fields = ObjectFactory::fields_v1(&json!({"metadata": {"annotations": {REVISION: ""}}}));
    let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let entries = meta.entry("managedFields").or_insert_with(|| json!([]));
    let Some(entries) = entries.as_array_mut() else {
        return;
    };
    match entries
        .iter_mut()
        .find(|e| s(e, "/manager") == KCM && e.get("subresource").is_none())
    {
        Some(e) => set(e, "", "time", json!(now)),
        None => entries.push(json!({
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
            "manager": KCM,
            "operation": "Update",
            "time": now,
        })),
    }
}

/// Brings the `last-applied-configuration` annotation (client-side apply) in line with a re-applied
/// object's `data` and container images.
fn refresh_last_applied(obj: &mut Value) {
    let pointer = "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";
    let Some(mut manifest) = obj
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return;
    };
    if manifest.get("data").is_some()
        && let Some(data) = obj.get("data")
    {
        set(&mut manifest, "", "data", data.clone());
    }
    let images: Vec<(String, Value)> = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                s(c, "/name").to_string(),
                c.get("image").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    for c in manifest
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some((_, image)) = images.iter().find(|(n, _)| n == s(c, "/name")) {
            set(c, "", "image", image.clone());
        }
    }
    set(
        obj,
        "/metadata/annotations",
        LAST_APPLIED,
        Value::String(format!("{manifest}\n")),
    );
}

/// For a new Service of type LoadBalancer or a new Ingress: takes out the load-balancer status (and its
/// managed-fields entry) that its controller writes a little later; returns (status, manager).
fn defer_load_balancer(obj: &mut Value) -> Option<(Value, String)> {
    let status = obj.get("status")?;
    status.pointer("/loadBalancer/ingress")?;
    let status = status.clone();
    let manager = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| s(e, "/subresource") == "status")
        .map(|e| s(e, "/manager").to_string())?;
    set(obj, "", "status", json!({"loadBalancer": {}}));
    remove_status_managed(obj);
    Some((status, manager))
}

/// The factory's status for a brand-new pod, without the restart history it gives some pods.
fn fresh_pod_status(mut status: Value) -> Value {
    let started = condition_time(&status, "PodReadyToStartContainers").map(str::to_string);
    for cs in status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if u(cs, "/restartCount") > 0 {
            set(cs, "", "restartCount", json!(0));
            set(cs, "", "lastState", json!({}));
            if let Some(t) = &started {
                set(cs, "/state/running", "startedAt", json!(t));
            }
        }
    }
    status
}

/// A Job pod's status while it runs, derived from its final (Succeeded) status.
fn job_pod_running(done: &Value) -> Value {
    let mut status = done.clone();
    let started = done
        .pointer("/containerStatuses/0/state/terminated/startedAt")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for cs in status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let t = cs
            .pointer("/state/terminated/startedAt")
            .cloned()
            .unwrap_or_else(|| json!(started));
        set(cs, "", "state", json!({"running": {"startedAt": t}}));
        set(cs, "", "ready", json!(true));
        set(cs, "", "started", json!(true));
    }
    let initialized = condition_time(done, "Initialized")
        .unwrap_or(&started)
        .to_string();
    let scheduled = condition_time(done, "PodScheduled")
        .unwrap_or(&started)
        .to_string();
    let condition = |ty: &str, t: &str| json!({"lastProbeTime": null, "lastTransitionTime": t, "status": "True", "type": ty});
    set(
        &mut status,
        "",
        "conditions",
        json!([
            condition("PodReadyToStartContainers", &started),
            condition("Initialized", &initialized),
            condition("Ready", &started),
            condition("ContainersReady", &started),
            condition("PodScheduled", &scheduled),
        ]),
    );
    set(&mut status, "", "phase", json!("Running"));
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Instant;

    type Id = (String, String, String);

    fn id(o: &Value) -> Id {
        (
            s(o, "/kind").to_string(),
            s(o, "/metadata/namespace").to_string(),
            s(o, "/metadata/name").to_string(),
        )
    }

    fn rv(o: &Value) -> u64 {
        s(o, "/metadata/resourceVersion").parse().unwrap()
    }

    /// Applies `events` to `state`, checking the watch invariants on the way.
    fn apply_all(state: &mut BTreeMap<Id, Value>, events: &[ChurnEvent], last_rv: &mut u64) {
        for e in events {
            let o = e.object();
            let v = rv(o);
            assert!(
                v > *last_rv,
                "resourceVersion {v} after {last_rv}: {:?}",
                id(o)
            );
            *last_rv = v;
            match e {
                ChurnEvent::Apply(o) => {
                    if let Some(old) = state.get(&id(o)) {
                        assert_ne!(rv(old), v);
                        assert_eq!(
                            s(old, "/metadata/uid"),
                            s(o, "/metadata/uid"),
                            "{:?} replaced without a delete",
                            id(o)
                        );
                    }
                    state.insert(id(o), o.clone());
                }
                ChurnEvent::Delete(o) => {
                    let old = state.remove(&id(o));
                    assert!(old.is_some(), "delete of missing {:?}", id(o));
                    assert_eq!(s(&old.unwrap(), "/metadata/uid"), s(o, "/metadata/uid"));
                }
            }
        }
    }

    fn check_owners(state: &BTreeMap<Id, Value>) {
        for o in state.values() {
            for r in o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = (
                    s(r, "/kind").to_string(),
                    s(o, "/metadata/namespace").to_string(),
                    s(r, "/name").to_string(),
                );
                let owner = state
                    .get(&k)
                    .unwrap_or_else(|| panic!("{:?} owned by missing {k:?}", id(o)));
                assert_eq!(s(owner, "/metadata/uid"), s(r, "/uid"));
            }
        }
    }

    fn as_map(objects: Vec<Value>) -> BTreeMap<Id, Value> {
        let n = objects.len();
        let map: BTreeMap<Id, Value> = objects.into_iter().map(|o| (id(&o), o)).collect();
        assert_eq!(map.len(), n, "duplicate keys");
        map
    }

    #[test]
    fn same_seed_same_events() {
        let run = |seed| {
            let mut c = Churn::new(seed, 600);
            let mut out = Vec::new();
            for i in 0..120 {
                out.extend(c.step(if i % 3 == 0 { 0.5 } else { 2.0 }, 2.0));
            }
            (out, c.objects())
        };
        let (a, objects_a) = run(5);
        let (b, objects_b) = run(5);
        assert!(a.len() > 100);
        assert_eq!(a, b);
        assert_eq!(objects_a, objects_b);
        let (c, _) = run(6);
        assert_ne!(a, c);
    }

    #[test]
    fn events_replayed_on_the_initial_list_give_the_current_objects() {
        let mut churn = Churn::new(7, 800);
        let mut state = as_map(churn.initial());
        assert_eq!(state.len(), churn.len());
        let mut last_rv = state.values().map(rv).max().unwrap();
        check_owners(&state);
        let mut events = 0;
        for i in 0..300 {
            let batch = churn.step(10.0, if i % 2 == 0 { 1.0 } else { 3.0 });
            events += batch.len();
            apply_all(&mut state, &batch, &mut last_rv);
            check_owners(&state);
            if i % 50 == 0 {
                assert_eq!(state, as_map(churn.objects()), "after step {i}");
            }
        }
        assert_eq!(state, as_map(churn.objects()));
        assert_eq!(state.len(), churn.len());
        let stats = churn.stats();
        for kind in ChangeKind::ALL {
            eprintln!(
                "{:>15}: {:>5} changes, {:>6} events, {:.1} events/change",
                kind.name(),
                stats.changes(kind),
                stats.events(kind),
                stats.events(kind) as f64 / stats.changes(kind).max(1) as f64
            );
            assert!(stats.changes(kind) > 0, "no {}", kind.name());
        }
        assert_eq!(stats.total_events() as usize, events);
        eprintln!(
            "cron jobs: {}",
            state
                .values()
                .filter(|o| s(o, "/kind") == "CronJob")
                .count()
        );
    }

    #[test]
    fn change_rate_follows_the_requested_rate() {
        let mut churn = Churn::new(8, 1000);
        for _ in 0..1000 {
            churn.step(1.0, 1.0);
        }
        let n = churn.stats().total_changes();
        assert!((800..=1200).contains(&n), "{n} changes in 1000 s at 1/s");

        let mut churn = Churn::new(9, 1000);
        churn.step(250.0, 4.0);
        churn.step(750.0, 0.0);
        let n = churn.stats().total_changes();
        assert!((800..=1200).contains(&n), "{n} changes at 4/s for 250 s");
    }

    #[test]
    fn cluster_size_stays_stable() {
        let mut churn = Churn::new(10, 1500);
        let n0 = churn.len() as f64;
        let (mut lo, mut hi) = (n0, n0);
        for _ in 0..1000 {
            churn.step(10.0, 1.0);
            let n = churn.len() as f64;
            lo = lo.min(n);
            hi = hi.max(n);
            assert!(
                (n - n0).abs() / n0 <= 0.15,
                "{n} objects, started with {n0}"
            );
        }
        eprintln!(
            "{n0} objects at start, between {lo} and {hi} over 10,000 s; {} changes",
            churn.stats().total_changes()
        );
    }

    #[test]
    fn pod_lifecycle_and_rollouts_look_like_a_real_api_server() {
        let mut churn = Churn::new(11, 800);
        let mut created_pending = 0;
        let mut restarted = 0;
        let mut rollouts = BTreeSet::new();
        let mut generation_bumps = 0;
        let mut last: BTreeMap<Id, Value> = as_map(churn.initial());
        for _ in 0..400 {
            let step_start = ObjectFactory::timestamp(churn.clock);
            for e in churn.step(5.0, 2.0) {
                let o = e.object();
                let before = last.get(&id(o)).cloned();
                match (&e, s(o, "/kind")) {
                    (ChurnEvent::Apply(_), "Pod") if before.is_none() => {
                        assert_eq!(s(o, "/status/phase"), "Pending");
                        assert!(o.pointer("/spec/nodeName").is_none());
                        created_pending += 1;
                    }
                    (ChurnEvent::Apply(_), "Pod") => {
                        let before = before.unwrap();
                        if u(o, "/status/containerStatuses/0/restartCount")
                            > u(&before, "/status/containerStatuses/0/restartCount")
                        {
                            assert!(
                                o.pointer("/status/containerStatuses/0/lastState/terminated")
                                    .is_some()
                            );
                            restarted += 1;
                        }
                    }
                    (ChurnEvent::Apply(_), "Deployment") if before.is_some() && !terminating(o) => {
                        let before = before.unwrap();
                        if before["spec"] != o["spec"] {
                            assert_eq!(
                                u(o, "/metadata/generation"),
                                u(&before, "/metadata/generation") + 1
                            );
                            generation_bumps += 1;
                        }
                        let times: Vec<&str> = o["metadata"]["managedFields"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| s(e, "/time"))
                            .collect();
                        let newest = times.iter().max().unwrap();
                        let old_newest = before["metadata"]["managedFields"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| s(e, "/time").to_string())
                            .max()
                            .unwrap();
                        assert!(
                            *newest >= old_newest.as_str() && *newest >= step_start.as_str(),
                            "managedFields not re-timed: {newest} after {old_newest}, step from {step_start}"
                        );
                    }
                    (ChurnEvent::Apply(_), "ReplicaSet") if before.is_none() => {
                        rollouts.insert(s(o, "/metadata/ownerReferences/0/name").to_string());
                    }
                    _ => {}
                }
                match &e {
                    ChurnEvent::Apply(o) => {
                        last.insert(id(o), o.clone());
                    }
                    ChurnEvent::Delete(o) => {
                        last.remove(&id(o));
                    }
                }
            }
        }
        eprintln!(
            "{created_pending} pods created, {restarted} restarts, {} deployments rolled out, {generation_bumps} spec changes",
            rollouts.len()
        );
        assert!(
            created_pending > 20 && restarted > 20 && !rollouts.is_empty() && generation_bumps > 10
        );
        // Completed rollouts: every settled Deployment's newest ReplicaSet has all the replicas.
        let objects = as_map(churn.objects());
        for d in objects.values().filter(|o| s(o, "/kind") == "Deployment") {
            if !deployment_settled(d) {
                continue;
            }
            let uid = s(d, "/metadata/uid");
            let sets: Vec<&Value> = objects
                .values()
                .filter(|o| {
                    s(o, "/kind") == "ReplicaSet" && s(o, "/metadata/ownerReferences/0/uid") == uid
                })
                .collect();
            let newest = sets
                .iter()
                .max_by_key(|r| {
                    s(
                        r,
                        "/metadata/annotations/deployment.kubernetes.io~1revision",
                    )
                    .parse::<u64>()
                    .unwrap()
                })
                .unwrap();
            assert_eq!(
                u(newest, "/spec/replicas"),
                u(d, "/spec/replicas"),
                "{:?}",
                id(d)
            );
            for r in &sets {
                if r != newest {
                    assert_eq!(u(r, "/spec/replicas"), 0, "{:?}", id(r));
                }
            }
        }
    }

    #[test]
    fn ten_thousand_objects_step_quickly() {
        let t = Instant::now();
        let mut churn = Churn::new(12, 10_000);
        let built = t.elapsed();
        let t = Instant::now();
        let mut events = 0;
        let mut bytes = 0;
        let steps = 600u32;
        for _ in 0..steps {
            for e in churn.step(1.0, 1.0) {
                bytes += serde_json::to_vec(e.object()).unwrap().len();
                events += 1;
            }
        }
        let stepped = t.elapsed();
        eprintln!(
            "10k cluster ({} objects) built in {built:?}; {steps} × step(1.0, 1.0): {} changes, {events} events \
             ({:.1} events/s simulated, {} KB/s of JSON), {:?} per step",
            churn.len(),
            churn.stats().total_changes(),
            events as f64 / f64::from(steps),
            bytes / steps as usize / 1000,
            stepped / steps
        );
    }
}
