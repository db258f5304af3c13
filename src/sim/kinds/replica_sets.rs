//! ReplicaSets: how one is built for a Deployment revision and how the ReplicaSet controller keeps its pods and status.

use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::Key;
use crate::sim::factory::ObjectFactory;
use crate::sim::json::{Fields, set, terminating};
use crate::sim::kinds::deployments::{bump_generation, revision_of, rolling_limits};
use crate::sim::kinds::pods::pod_ready;
use crate::sim::managed::{
    KCM, fields_of, managed_entry, remove_status_managed, retime_managed, retime_manager,
    set_status_managed,
};

/// A ReplicaSet as the Deployment controller sees it.
pub(in crate::sim) struct ReplicaSetInfo {
    pub(in crate::sim) key: Key,
    pub(in crate::sim) revision: u64,
    pub(in crate::sim) spec: u64,
    pub(in crate::sim) replicas: u64,
    pub(in crate::sim) ready: u64,
    pub(in crate::sim) available: u64,
    pub(in crate::sim) has_dependents: bool,
}

impl ObjectFactory {
    /// A ReplicaSet of `deployment`'s current template at `revision`.
    pub(in crate::sim) fn replica_set(
        &mut self,
        deployment: &Value,
        revision: u64,
        replicas: u64,
        created: i64,
    ) -> Value {
        let ns = deployment.str_at("/metadata/namespace").to_string();
        let mut hash = self.template_hash();
        let mut name = format!("{}-{hash}", deployment.str_at("/metadata/name"));
        while !self.reserve("ReplicaSet", &ns, &name) {
            hash = self.template_hash();
            name = format!("{}-{hash}", deployment.str_at("/metadata/name"));
        }
        let mut template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        template["metadata"]["labels"]["pod-template-hash"] = Value::String(hash.clone());
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut annotations: Map<String, Value> = deployment
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| {
                        k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let desired = deployment.u64_or("/spec/replicas", replicas);
        annotations.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            Value::String(desired.to_string()),
        );
        annotations.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            Value::String((desired + desired.div_ceil(4)).to_string()),
        );
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            Value::String(revision.to_string()),
        );
        let mut meta = self.metadata(Some(&ns), &name, created, labels, annotations);
        let generation = if replicas == 0 {
            self.range(2, 4)
        } else {
            self.range(1, 3)
        };
        meta.insert("generation".into(), json!(generation));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(deployment)]),
        );
        let mut selector = deployment
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        selector["matchLabels"]["pod-template-hash"] = Value::String(hash);
        let status = if replicas == 0 {
            json!({"observedGeneration": generation, "replicas": 0})
        } else {
            json!({
                "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas,
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
            })
        };
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta,
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": status,
        });
        let owned = json!({
            "metadata": {
                "annotations": rs["metadata"]["annotations"].clone(),
                "labels": rs["metadata"]["labels"].clone(),
                "ownerReferences": rs["metadata"]["ownerReferences"].clone(),
            },
            "spec": rs["spec"].clone(),
        });
        Self::push_managed(
            &mut rs,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "apps/v1",
                created,
                fields_of(&owned),
                None,
            ),
        );
        let status_time = self.between(created + 20, self.now.max(created + 20));
        Self::status_managed(&mut rs, "kube-controller-manager", status_time);
        rs
    }
}

impl Churn {
    /// Creates `rs`, the new ReplicaSet of the Deployment at `deployment`, sized as the Deployment
    /// controller sizes a new ReplicaSet (up to maxSurge above the desired count).
    pub(in crate::sim) fn add_replica_set(&mut self, deployment: &Key, mut rs: Value, now: &str) {
        let Some(d) = self.get(deployment) else {
            return;
        };
        let desired = d.u64_at("/spec/replicas");
        let (surge, _) = rolling_limits(d, desired);
        let uid = d.str_at("/metadata/uid").to_string();
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

    pub(in crate::sim) fn replica_sets(&self, deployment_uid: &str) -> Vec<ReplicaSetInfo> {
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
                    revision: revision_of(rs),
                    spec: rs.u64_at("/spec/replicas"),
                    replicas: rs.count_at("/status/replicas"),
                    ready: rs.count_at("/status/readyReplicas"),
                    available: rs.count_at("/status/availableReplicas"),
                    has_dependents: self.dependents.contains_key(rs.str_at("/metadata/uid")),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.revision, &a.key).cmp(&(b.revision, &b.key)));
        out
    }

    pub(in crate::sim) fn reconcile_replica_set(&mut self, key: &Key) {
        let Some(rs) = self.get(key) else { return };
        if terminating(rs) {
            return;
        }
        let uid = rs.str_at("/metadata/uid").to_string();
        let desired = rs.u64_at("/spec/replicas");
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
                        p.str_at("/status/phase") != "Pending",
                        pod_ready(p),
                        p.str_at("/metadata/creationTimestamp").to_string(),
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
            json!(rs.u64_at("/metadata/generation")),
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

    pub(in crate::sim) fn scale_replica_set(
        &mut self,
        key: &Key,
        replicas: u64,
        desired: u64,
        surge: u64,
    ) {
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
}
