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

pub(super) mod actions;
pub(super) mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use crate::sim::ClusterShape;
use crate::sim::churn::store::{Key, POOLS, Pool, Scheduled};
use crate::sim::factory::ObjectFactory;
use crate::sim::json::Fields;
use crate::sim::vocabulary::SYSTEM_NAMESPACES;

/// Mixed into the seed of the churn's own RNG so that it does not replay the factory's stream.
pub(in crate::sim) const SEED_MIX: u64 = 0xD1B5_4A32_D192_ED03;

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

    pub(in crate::sim) fn index(self) -> usize {
        self as usize
    }
}

/// How often each kind of change is drawn, per mille. App creation and deletion share one weight, split
/// to keep the cluster's size near its initial size.
pub(in crate::sim) const WEIGHTS: [(Pick, u32); 7] = [
    (Pick::Kind(ChangeKind::ReadinessFlap), 400),
    (Pick::Kind(ChangeKind::PodRestart), 300),
    (Pick::Kind(ChangeKind::CronJobRun), 80),
    (Pick::Kind(ChangeKind::Scale), 80),
    (Pick::Kind(ChangeKind::Rollout), 50),
    (Pick::Kind(ChangeKind::Rotation), 50),
    (Pick::AppLifecycle, 40),
];

#[derive(Debug, Clone, Copy)]
pub(in crate::sim) enum Pick {
    Kind(ChangeKind),
    AppLifecycle,
}

/// Counts of changes started and events emitted, per [`ChangeKind`] (events are counted against the change
/// that caused them, also when they come later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnStats {
    pub(in crate::sim) changes: [u64; 8],
    pub(in crate::sim) events: [u64; 8],
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

/// A deterministic simulation of a live cluster's changes; see the [module docs](self).
pub struct Churn {
    pub(in crate::sim) factory: ObjectFactory,
    pub(in crate::sim) rng: StdRng,
    pub(in crate::sim) initial: Vec<Arc<Value>>,
    pub(in crate::sim) objects: HashMap<Key, Arc<Value>>,
    /// Owner uid → its dependents.
    pub(in crate::sim) dependents: HashMap<String, BTreeSet<Key>>,
    pub(in crate::sim) pools: [Pool; POOLS],
    pub(in crate::sim) queue: BinaryHeap<Scheduled>,
    pub(in crate::sim) seq: u64,
    /// Objects whose controller must reconcile, by (rank, key): dependents' controllers run first.
    pub(in crate::sim) dirty: BTreeSet<(u8, Key)>,
    /// The factory's clock at construction (Unix seconds).
    pub(in crate::sim) start: i64,
    /// The factory's clock now: `start + floor(now)`.
    pub(in crate::sim) clock: i64,
    /// Simulated seconds since construction.
    pub(in crate::sim) now: f64,
    /// Exponential budget left until the next change, in units of rate × seconds.
    pub(in crate::sim) budget: f64,
    /// The initial object count, which app creation and deletion steer back to.
    pub(in crate::sim) target: usize,
    pub(in crate::sim) app_namespaces: Vec<String>,
    /// Deployment uid → its initial replicas, which scaling reverts to.
    pub(in crate::sim) baseline: HashMap<String, u64>,
    pub(in crate::sim) events: Vec<ChurnEvent>,
    pub(in crate::sim) cause: ChangeKind,
    pub(in crate::sim) stats: ChurnStats,
}

/// A unit exponential sample: the gap, in expected changes, until the next change of a Poisson process.
pub(in crate::sim) fn exponential(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

/// Order of kinds in [`Churn::objects`]: owners before dependents.
pub(in crate::sim) fn rank(kind: &str) -> u8 {
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
            if obj.str_at("/kind") == "Namespace" {
                let name = obj.str_at("/metadata/name");
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

    /// The initial objects, borrowed, in the order of [`Churn::initial`].
    pub fn initial_objects(&self) -> impl Iterator<Item = &Value> + '_ {
        self.initial.iter().map(|o| o.as_ref())
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

    pub(in crate::sim) fn change(&mut self) {
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
}
