//! The churn's object store: every write goes through `create`, `modify` and `delete`, which stamp resourceVersions, keep the owner graph and change pools up to date and emit the events.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use rand::RngExt;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::sim::churn::actions::Action;
use crate::sim::churn::{ChangeKind, Churn, ChurnEvent};
use crate::sim::factory::ObjectFactory;
use crate::sim::json::{Fields, namespace_of, set, terminating};
use crate::sim::kinds::deployments::bump_generation;
use crate::sim::vocabulary::SYSTEM_NAMESPACES;

/// (kind, namespace, name): how a watch tells objects apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(in crate::sim) struct Key {
    pub(in crate::sim) kind: String,
    pub(in crate::sim) ns: String,
    pub(in crate::sim) name: String,
}

impl Key {
    pub(in crate::sim) fn new(kind: &str, ns: &str, name: &str) -> Key {
        Key {
            kind: kind.to_string(),
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }

    pub(in crate::sim) fn of(obj: &Value) -> Key {
        Key::new(
            obj.str_at("/kind"),
            namespace_of(obj),
            obj.str_at("/metadata/name"),
        )
    }
}

/// Candidates for a kind of change, with O(1) insert, remove and uniform pick.
#[derive(Default)]
pub(in crate::sim) struct Pool {
    pub(in crate::sim) items: Vec<Key>,
    pub(in crate::sim) position: HashMap<Key, usize>,
}

impl Pool {
    pub(in crate::sim) fn insert(&mut self, key: &Key) {
        if !self.position.contains_key(key) {
            self.position.insert(key.clone(), self.items.len());
            self.items.push(key.clone());
        }
    }

    pub(in crate::sim) fn remove(&mut self, key: &Key) {
        if let Some(i) = self.position.remove(key) {
            self.items.swap_remove(i);
            if let Some(moved) = self.items.get(i) {
                self.position.insert(moved.clone(), i);
            }
        }
    }

    pub(in crate::sim) fn pick(&self, rng: &mut StdRng) -> Option<Key> {
        if self.items.is_empty() {
            None
        } else {
            self.items
                .get(rng.random_range(0..self.items.len()))
                .cloned()
        }
    }
}

pub(in crate::sim) const POOL_PODS: usize = 0;
pub(in crate::sim) const POOL_DEPLOYMENTS: usize = 1;
pub(in crate::sim) const POOL_APP_DEPLOYMENTS: usize = 2;
pub(in crate::sim) const POOL_CRON_JOBS: usize = 3;
pub(in crate::sim) const POOL_ROTATABLE: usize = 4;
pub(in crate::sim) const POOLS: usize = 5;

/// The pools `obj` belongs to.
pub(in crate::sim) fn pools_of(obj: &Value) -> [bool; POOLS] {
    let kind = obj.str_at("/kind");
    let ns = namespace_of(obj);
    let app_ns = !SYSTEM_NAMESPACES.contains(&ns);
    let rotatable = match kind {
        "Secret" => obj.str_at("/type") == "Opaque",
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
pub(in crate::sim) struct Scheduled {
    pub(in crate::sim) at: f64,
    pub(in crate::sim) seq: u64,
    pub(in crate::sim) cause: ChangeKind,
    pub(in crate::sim) action: Action,
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

impl Churn {
    pub(in crate::sim) fn index(&mut self, obj: Arc<Value>) {
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
            let uid = obj.str_at("/metadata/uid").to_string();
            let replicas = obj.u64_at("/spec/replicas");
            self.baseline.entry(uid).or_insert(replicas);
        }
        self.objects.insert(key, obj);
    }

    pub(in crate::sim) fn unindex(&mut self, key: &Key) -> Option<Arc<Value>> {
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
        let uid = obj.str_at("/metadata/uid");
        self.dependents.remove(uid);
        self.baseline.remove(uid);
        Some(obj)
    }

    pub(in crate::sim) fn emit(&mut self, event: ChurnEvent) {
        self.stats.events[self.cause.index()] += 1;
        self.events.push(event);
    }

    /// Adds `obj` (ADDED).
    pub(in crate::sim) fn create(&mut self, mut obj: Value) -> Key {
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
    pub(in crate::sim) fn modify(&mut self, key: &Key, f: impl FnOnce(&mut Value)) -> bool {
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
    pub(in crate::sim) fn delete(&mut self, key: &Key) {
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
    pub(in crate::sim) fn delete_tree(&mut self, key: &Key) {
        let Some(uid) = self.get(key).map(|o| o.str_at("/metadata/uid").to_string()) else {
            return;
        };
        for dependent in self.dependents_of(&uid) {
            self.delete_tree(&dependent);
        }
        self.delete(key);
    }

    pub(in crate::sim) fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key).map(|o| &**o)
    }

    /// The object at `key`, if it is still the one with `uid`.
    pub(in crate::sim) fn get_alive(&self, key: &Key, uid: &str) -> Option<&Value> {
        self.get(key).filter(|o| o.str_at("/metadata/uid") == uid)
    }

    pub(in crate::sim) fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.dependents
            .get(uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(in crate::sim) fn owner_of(&self, key: &Key) -> Option<Key> {
        let obj = self.get(key)?;
        let owner = obj.pointer("/metadata/ownerReferences/0")?;
        Some(Key::new(
            owner.str_at("/kind"),
            &key.ns,
            owner.str_at("/name"),
        ))
    }

    pub(in crate::sim) fn schedule(&mut self, delay: f64, action: Action) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + delay.max(0.0),
            seq: self.seq,
            cause: self.cause,
            action,
        });
    }

    /// Seconds from now until Unix time `t` (at least zero).
    pub(in crate::sim) fn until(&self, t: i64) -> f64 {
        ((t - self.start) as f64 - self.now).max(0.0)
    }

    pub(in crate::sim) fn sync_clock(&mut self) {
        let target = self.start + self.now.floor() as i64;
        if target > self.clock {
            self.factory
                .advance_clock(u64::try_from(target - self.clock).unwrap_or(0));
            self.clock = target;
        }
    }

    pub(in crate::sim) fn ts(&self) -> String {
        ObjectFactory::timestamp(self.clock)
    }

    pub(in crate::sim) fn mark(&mut self, key: &Key) {
        let rank = match key.kind.as_str() {
            "ReplicaSet" | "Job" => 1,
            "Deployment" | "StatefulSet" | "DaemonSet" => 2,
            "CronJob" => 3,
            _ => return,
        };
        self.dirty.insert((rank, key.clone()));
    }

    pub(in crate::sim) fn mark_owner(&mut self, key: &Key) {
        if let Some(owner) = self.owner_of(key) {
            self.mark(&owner);
        }
    }

    /// Runs the controllers of dirty objects until nothing is left to do.
    pub(in crate::sim) fn settle(&mut self) {
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

    /// Marks the object at `key` for deletion (`deletionTimestamp`, generation + 1, and with `foreground`
    /// the `foregroundDeletion` finalizer).
    pub(in crate::sim) fn begin_delete(&mut self, key: &Key, foreground: bool) {
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
}
