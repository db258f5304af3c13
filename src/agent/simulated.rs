//! A simulated cluster as a source of the agent's events: the simulator's objects and churn go
//! through the same selection and redaction as a watch's, and reach the agent's loop as the same
//! [`SourceEvent`]s, whether the loop runs on its own clock (`outpost agent --sim`) or is stepped
//! by its caller ([`SimAgent`]: the demo, the benchmarks, the tests).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use super::discovery;
use super::redact::{self, Redactor};
use super::run::{Loop, SharedStatus};
use super::ship::{self, ShipOptions, Shipped, Shipper};
use super::state::{Scope, State, kind_name};
use super::watch::{Selection, SourceEvent, redacted_entry};
use crate::format::{ClusterName, Identity, ServedResource};
use crate::settings::schedule::Trigger;
use crate::sim::{Churn, ChurnEvent};
use crate::store::Store;

/// One resource of the simulated API server's discovery: group, version, plural, singular, kind,
/// namespaced, short names, categories.
type SimulatedResource = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
);

/// What the simulated API server's discovery says of each kind the simulator makes, as a recent
/// kube-apiserver's `APIResourceList`s say it (so that a reader serving the simulated cluster's
/// API back serves what kubectl expects).
#[rustfmt::skip]
const SIMULATED_RESOURCES: &[SimulatedResource] = &[
    ("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[]),
    ("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], &[]),
    ("", "v1", "events", "event", "Event", true, &["ev"], &[]),
    ("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], &[]),
    ("", "v1", "nodes", "node", "Node", false, &["no"], &[]),
    ("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], &[]),
    ("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], &[]),
    ("", "v1", "pods", "pod", "Pod", true, &["po"], &["all"]),
    ("", "v1", "secrets", "secret", "Secret", true, &[], &[]),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[]),
    ("", "v1", "services", "service", "Service", true, &["svc"], &["all"]),
    ("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], &["all"]),
    ("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], &["all"]),
    ("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["all"]),
    ("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], &["all"]),
    ("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], &["all"]),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], &["all"]),
    ("batch", "v1", "jobs", "job", "Job", true, &[], &["all"]),
    ("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], &[]),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"], &[]),
    ("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, &["netpol"], &[]),
];

/// The verbs an API server lists for every simulated resource but Namespace, which it lists
/// without `deletecollection`.
const SIMULATED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// What the simulated API server's discovery says of the kinds named `kinds` (`Kind` or
/// `Kind.group`) that it serves, sorted.
pub fn simulated_resources<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Vec<ServedResource> {
    let kinds: BTreeSet<&str> = kinds.into_iter().collect();
    let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    let resources = SIMULATED_RESOURCES.iter().map(
        |&(group, version, name, singular_name, kind, namespaced, short_names, categories)| {
            ServedResource {
                group: group.into(),
                version: version.into(),
                name: name.into(),
                singular_name: singular_name.into(),
                kind: kind.into(),
                namespaced,
                short_names: strings(short_names),
                categories: strings(categories),
                verbs: SIMULATED_VERBS
                    .iter()
                    .filter(|verb| kind != "Namespace" || **verb != "deletecollection")
                    .map(|verb| verb.to_string())
                    .collect(),
            }
        },
    );
    discovery::sorted(
        resources.filter(|resource| kinds.contains(discovery::kind_of(resource).as_str())),
    )
}

/// A simulated cluster seen through a selection: what the agent's watches would report of it.
pub struct Simulated {
    churn: Churn,
    redactor: Arc<Redactor>,
    /// `None`: every object, of whatever kind the simulator makes, now or later.
    selection: Option<Selection>,
    scopes: BTreeSet<Scope>,
}

/// The scope a simulated object is watched in: its kind, cluster-wide.
fn scope_of(object: &Value) -> Option<Scope> {
    Some(Scope {
        kind: kind_name(object["apiVersion"].as_str()?, object["kind"].as_str()?),
        namespace: None,
    })
}

impl Simulated {
    /// `churn`'s cluster, watched as `selection` says: one scope per kind the cluster has that
    /// the selection names (like a real cluster's, configured kinds it does not have are not
    /// watched), objects redacted by `redactor`.
    pub fn new(churn: Churn, redactor: Arc<Redactor>, selection: Selection) -> Self {
        Self::selecting(churn, redactor, Some(selection))
    }

    /// `churn`'s whole cluster: every object, of every kind it has now or makes later.
    pub fn everything(churn: Churn, redactor: Arc<Redactor>) -> Self {
        Self::selecting(churn, redactor, None)
    }

    fn selecting(churn: Churn, redactor: Arc<Redactor>, selection: Option<Selection>) -> Self {
        let scopes = churn
            .initial_objects()
            .filter_map(scope_of)
            .filter(|scope| {
                selection
                    .as_ref()
                    .is_none_or(|selection| selection.kinds.contains(&scope.kind))
            })
            .collect();
        Self {
            churn,
            redactor,
            selection,
            scopes,
        }
    }

    /// The scopes watched: one per selected kind.
    pub fn scopes(&self) -> &BTreeSet<Scope> {
        &self.scopes
    }

    /// The simulated cluster itself.
    pub fn churn(&self) -> &Churn {
        &self.churn
    }

    /// Sets `identity`'s kinds and resources as an agent watching this cluster would: the kinds
    /// watched, and what the simulated API server's discovery says of them.
    pub fn describe(&self, identity: &mut Identity) {
        identity.kinds = self.scopes.iter().map(|s| s.kind.clone()).collect();
        identity.kinds.dedup();
        identity.resources = simulated_resources(identity.kinds.iter().map(String::as_str));
    }

    /// Whether an object is selected: its kind is watched and its namespace is selected.
    fn selects(&self, object: &Value, scope: &Scope) -> bool {
        let Some(selection) = &self.selection else {
            return true;
        };
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        self.scopes.contains(scope)
            && (namespace.is_empty() || selection.namespaces.selects(namespace))
    }

    /// What a watch reports of one change: the object redacted, or its key when it is gone;
    /// nothing when the object is not selected.
    pub fn event(&self, change: ChurnEvent) -> Option<SourceEvent> {
        let (ChurnEvent::Apply(object) | ChurnEvent::Delete(object)) = &change;
        let scope = scope_of(object)?;
        if !self.selects(object, &scope) {
            return None;
        }
        match change {
            ChurnEvent::Apply(object) => {
                redacted_entry(object, &scope, &self.redactor).map(SourceEvent::Apply)
            }
            ChurnEvent::Delete(object) => redacted_entry(object, &scope, &self.redactor)
                .map(|entry| SourceEvent::Delete(entry.target.key())),
        }
    }

    /// The initial list, as watches report it: every scope's relist starts, the selected
    /// objects, every scope's relist is done.
    pub fn initial(&self) -> impl Iterator<Item = SourceEvent> + '_ {
        let started = self.scopes.iter().cloned().map(SourceEvent::RelistStarted);
        // One object cloned at a time: the whole list is never held twice.
        let objects = self
            .churn
            .initial_objects()
            .filter_map(|object| self.event(ChurnEvent::Apply(object.clone())));
        let done = self.scopes.iter().cloned().map(SourceEvent::RelistDone);
        started.chain(objects).chain(done)
    }

    /// `seconds` of churn at `rate` changes per second, as watch events.
    pub fn step(&mut self, seconds: f64, rate: f64) -> Vec<SourceEvent> {
        let changes = self.churn.step(seconds, rate);
        changes
            .into_iter()
            .filter_map(|change| self.event(change))
            .collect()
    }

    /// Sends the initial list, then a second of churn at `rate` every second, until the loop
    /// stops listening.
    pub async fn feed(mut self, rate: f64, events: mpsc::Sender<SourceEvent>) {
        for event in self.initial() {
            if events.send(event).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            ticker.tick().await;
            for event in self.step(1.0, rate) {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A simulated cluster and its agent, stepped by the caller on the caller's clock: `step` plays
/// churn into the agent's loop, `tick` is the shipper's step at a given time. Every object,
/// default kind and namespace is watched; default shipping options; no user redaction rules.
pub struct SimAgent {
    pub name: ClusterName,
    agent: Loop,
    source: Simulated,
}

impl SimAgent {
    /// A cluster holding `churn`'s initial objects (nothing shipped yet) that ships into
    /// `store`, its Secrets' values redacted with `key`.
    pub fn new(
        store: &Store,
        name: ClusterName,
        churn: Churn,
        key: &[u8; 32],
    ) -> Result<Self, redact::Error> {
        let redactor = Arc::new(Redactor::new(key, vec![])?);
        let source = Simulated::everything(churn, redactor.clone());
        let shipper = Shipper::new(
            store.clone(),
            name.clone(),
            ShipOptions {
                redaction: redactor.rule_ids(),
                ..ShipOptions::default()
            },
        );
        let mut identity = Identity::new(name.clone(), Utc::now());
        source.describe(&mut identity);
        let mut agent = Loop::new(
            store.clone(),
            shipper,
            identity,
            Trigger::Every(std::time::Duration::from_secs(15)),
            SharedStatus::default(),
        );
        for event in source.initial() {
            agent.apply(event);
        }
        Ok(Self {
            name,
            agent,
            source,
        })
    }

    /// The objects held, as the agent's loop holds them.
    pub fn state(&self) -> &State {
        self.agent.state()
    }

    /// The shipper: the chain as this agent last wrote it.
    pub fn shipper(&self) -> &Shipper {
        self.agent.shipper()
    }

    /// The simulated cluster.
    pub fn churn(&self) -> &Churn {
        self.source.churn()
    }

    /// Sets `identity`'s kinds and resources as this agent watches them (see
    /// [`Simulated::describe`]).
    pub fn describe(&self, identity: &mut Identity) {
        self.source.describe(identity);
    }

    /// One change of the cluster, as its watch reports it.
    pub fn event(&mut self, change: ChurnEvent) {
        if let Some(event) = self.source.event(change) {
            self.agent.apply(event);
        }
    }

    /// `seconds` of churn at `rate` changes per second; returns how many watch events that was.
    pub fn step(&mut self, seconds: f64, rate: f64) -> usize {
        let events = self.source.step(seconds, rate);
        let count = events.len();
        for event in events {
            self.agent.apply(event);
        }
        count
    }

    /// `seconds` of churn, one change at a time: `take` sees each change and says whether to go
    /// on; returns how many changes were played.
    pub fn step_while(
        &mut self,
        seconds: f64,
        rate: f64,
        mut take: impl FnMut(&ChurnEvent) -> bool,
    ) -> usize {
        let mut played = 0;
        for change in self.source.churn.step(seconds, rate) {
            if !take(&change) {
                break;
            }
            played += 1;
            self.event(change);
        }
        played
    }

    /// What the agent's shipping loop does at `now`: a snapshot, a diff, a heartbeat or nothing.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Shipped, ship::Error> {
        self.agent.tick(now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ships_a_snapshot_then_the_churn_as_a_diff() {
        let store = Store::open("memory://").await.unwrap();
        let name = ClusterName::new("sim").unwrap();
        let mut agent = SimAgent::new(&store, name, Churn::new(1, 60), &[7; 32]).unwrap();
        let held = agent.state().len();
        assert!(held > 30, "{held} objects");
        let now = Utc::now();
        let Shipped::Snapshot { records, .. } = agent.tick(now).await.unwrap() else {
            panic!("the first tick ships a snapshot");
        };
        assert_eq!(records, held as u64);
        assert!(agent.step(60.0, 1.0) > 0);
        let shipped = agent
            .tick(now + chrono::Duration::seconds(15))
            .await
            .unwrap();
        let Shipped::Diff { records, .. } = shipped else {
            panic!("churn ships a diff, not {shipped:?}");
        };
        assert!(records > 0);
    }

    #[test]
    fn every_kind_the_simulator_makes_is_described_once() {
        let redactor = Arc::new(Redactor::new(&[1; 32], vec![]).unwrap());
        let mut cluster = Simulated::everything(Churn::new(5, 2000), redactor);
        let mut identity = Identity::new(ClusterName::new("sim").unwrap(), Utc::now());
        cluster.describe(&mut identity);
        let mut described: Vec<String> =
            identity.resources.iter().map(discovery::kind_of).collect();
        described.sort();
        assert_eq!(described, identity.kinds);
        assert!(identity.kinds.len() >= 14, "{:?}", identity.kinds);
        // Kinds that only churn makes are described too.
        let mut kinds: BTreeSet<String> = identity.kinds.iter().cloned().collect();
        for change in cluster.churn.step(600.0, 5.0) {
            let object = change.object();
            kinds.insert(kind_name(
                object["apiVersion"].as_str().unwrap(),
                object["kind"].as_str().unwrap(),
            ));
        }
        for kind in &kinds {
            let resources = simulated_resources([kind.as_str()]);
            assert_eq!(resources.len(), 1, "{kind}: {resources:?}");
            assert_eq!(&discovery::kind_of(&resources[0]), kind);
        }
    }

    #[test]
    fn simulated_built_in_kinds_are_served_as_kubernetes_serves_them() {
        let resources =
            simulated_resources(["Deployment", "Pod", "Namespace", "CronJob", "NoSuch"]);
        let by_kind = |kind: &str| resources.iter().find(|r| r.kind == kind).unwrap();
        assert_eq!(resources.len(), 4);
        let deployments = by_kind("Deployment");
        assert_eq!(
            (deployments.group.as_str(), deployments.version.as_str()),
            ("apps", "v1")
        );
        assert_eq!(deployments.name, "deployments");
        assert_eq!(deployments.short_names, ["deploy"]);
        assert_eq!(deployments.categories, ["all"]);
        assert!(deployments.namespaced);
        assert_eq!(deployments.verbs, SIMULATED_VERBS);
        assert_eq!(by_kind("Pod").short_names, ["po"]);
        assert_eq!(by_kind("CronJob").group, "batch");
        let namespaces = by_kind("Namespace");
        assert!(!namespaces.namespaced);
        assert!(!namespaces.verbs.iter().any(|v| v == "deletecollection"));
        assert!(namespaces.verbs.iter().any(|v| v == "watch"));
        let mut sorted = resources.clone();
        sorted.sort();
        assert_eq!(sorted, resources);
    }

    #[test]
    fn a_selection_keeps_its_kinds_and_namespaces() {
        let redactor = Arc::new(Redactor::new(&[1; 32], vec![]).unwrap());
        let all = Simulated::everything(Churn::new(2, 300), redactor.clone());
        let some = Simulated::new(
            Churn::new(2, 300),
            redactor,
            Selection {
                kinds: vec!["Pod".into(), "NoSuchKind".into()],
                namespaces: crate::agent::config::Namespaces::Except(vec!["kube-system".into()]),
                ..Selection::default()
            },
        );
        let kinds: Vec<&str> = some.scopes().iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["Pod"]);
        let applied = |source: &Simulated| -> Vec<Scope> {
            source
                .initial()
                .filter_map(|event| match event {
                    SourceEvent::Apply(entry) => Some(entry.scope),
                    _ => None,
                })
                .collect()
        };
        let pods = applied(&some);
        assert!(!pods.is_empty());
        assert!(pods.iter().all(|scope| scope.kind == "Pod"));
        let every = applied(&all);
        assert!(every.len() > pods.len());
        let events: Vec<SourceEvent> = some.initial().collect();
        assert!(matches!(
            events.first(),
            Some(SourceEvent::RelistStarted(_))
        ));
        assert!(matches!(events.last(), Some(SourceEvent::RelistDone(_))));
        let namespaces: BTreeSet<String> = events
            .iter()
            .filter_map(|event| match event {
                SourceEvent::Apply(entry) => Some(entry.target.namespace.clone()),
                _ => None,
            })
            .collect();
        assert!(!namespaces.contains("kube-system"), "{namespaces:?}");
    }
}
