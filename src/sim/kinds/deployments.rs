//! Deployments: how one is built, rolled out and scaled, and the Deployment controller's reconciliation.

use std::collections::BTreeMap;

use rand::RngExt;
use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::{Key, POOL_DEPLOYMENTS};
use crate::sim::factory::{DAY, HOUR, ObjectFactory};
use crate::sim::json::{Fields, set, terminating, ts};
use crate::sim::kinds::apps::App;
use crate::sim::managed::{
    KCM, fields_of, managed_entry, refresh_last_applied, retime_applier, set_status_managed,
};

pub(in crate::sim) const REVISION: &str = "deployment.kubernetes.io/revision";

/// The revision annotation of a Deployment or ReplicaSet; 0 before the Deployment controller has set
/// one (a Deployment churn has just created).
pub(in crate::sim) fn revision_of(obj: &Value) -> u64 {
    let Some(revision) = obj.opt_str_at("/metadata/annotations/deployment.kubernetes.io~1revision")
    else {
        return 0;
    };
    revision.parse().unwrap_or_else(|_| {
        panic!(
            "simulator bug: {} {} has revision {revision:?}, not a number",
            obj.str_at("/kind"),
            obj.str_at("/metadata/name")
        )
    })
}

pub(in crate::sim) fn bump_generation(obj: &mut Value) {
    let generation = obj.u64_at("/metadata/generation") + 1;
    set(obj, "/metadata", "generation", json!(generation));
}

/// Whether a Deployment is not being deleted and its last rollout has completed.
pub(in crate::sim) fn deployment_settled(d: &Value) -> bool {
    let desired = d.u64_at("/spec/replicas");
    !terminating(d)
        && d.count_at("/status/observedGeneration") == d.u64_at("/metadata/generation")
        && d.count_at("/status/updatedReplicas") == desired
        && d.count_at("/status/replicas") == desired
        && d.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.str_at("/type") == "Progressing"
                    && c.str_at("/reason") == "NewReplicaSetAvailable"
            })
}

/// (maxSurge, maxUnavailable) of a Deployment with `desired` replicas, resolved as the controller does.
pub(in crate::sim) fn rolling_limits(d: &Value, desired: u64) -> (u64, u64) {
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

/// Sets a Deployment condition as the controller's `SetDeploymentCondition` does: nothing happens if its
/// status and reason are unchanged (unless `touch`: the Progressing condition on progress), its
/// `lastTransitionTime` moves only when its status does, and a changed condition moves to the end.
pub(in crate::sim) fn set_deployment_condition(
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
    if let Some(i) = conditions.iter().position(|c| c.str_at("/type") == ty) {
        let current = &conditions[i];
        if current.str_at("/status") == status && current.str_at("/reason") == reason && !touch {
            return;
        }
        if current.str_at("/status") == status
            && let Some(t) = current.get("lastTransitionTime")
        {
            set(&mut fresh, "", "lastTransitionTime", t.clone());
        }
        conditions.remove(i);
    }
    conditions.push(fresh);
}

/// Makes sure the Deployment controller's entry owning the revision annotation exists, written `now`.
pub(in crate::sim) fn ensure_revision_manager(d: &mut Value, now: &str) {
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
        .find(|e| e.str_at("/manager") == KCM && e.get("subresource").is_none())
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

impl ObjectFactory {
    /// Rolls `deployment` out with a new image: returns the updated Deployment (revision + 1, generation + 1,
    /// newer resourceVersion) and its new ReplicaSet.
    pub fn new_replica_set_revision(&mut self, deployment: &Value) -> (Value, Value) {
        let mut updated = deployment.clone();
        let revision = revision_of(deployment) + 1;
        let generation = deployment.u64_at("/metadata/generation") + 1;
        if let Some(containers) = updated
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        {
            let mut bumped = BTreeMap::new();
            for container in containers.iter_mut() {
                let image = container.str_at("/image").to_string();
                let next = match bumped.get(&image) {
                    Some(next) => String::clone(next),
                    None => {
                        let next = self.bump_image(&image);
                        bumped.insert(image, next.clone());
                        next
                    }
                };
                container["image"] = Value::String(next);
            }
        }
        let replicas = deployment.u64_at("/spec/replicas");
        let rs = self.replica_set(&updated, revision, replicas, self.now);
        let rv = self.next_resource_version();
        let now = ts(self.now);
        let rs_name = rs.str_at("/metadata/name").to_string();
        if let Some(meta) = updated.get_mut("metadata") {
            meta["annotations"]["deployment.kubernetes.io/revision"] =
                Value::String(revision.to_string());
            meta["generation"] = json!(generation);
            meta["resourceVersion"] = Value::String(rv);
        }
        if let Some(status) = updated.get_mut("status") {
            status["observedGeneration"] = json!(generation);
            for condition in status
                .get_mut("conditions")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if condition["type"] == "Progressing" {
                    condition["lastUpdateTime"] = Value::String(now.clone());
                    condition["message"] = Value::String(format!(
                        "ReplicaSet \"{rs_name}\" has successfully progressed."
                    ));
                }
            }
        }
        for entry in updated
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            entry["time"] = Value::String(now.clone());
        }
        (updated, rs)
    }

    /// Deployment, ReplicaSets (older ones scaled to zero) and the current ReplicaSet's pods.
    pub(in crate::sim) fn deployment_bundle(&mut self, app: &App, replicas: u64) -> Vec<Value> {
        let template = self.pod_template(app);
        let replica_sets = self.pick(&[1, 2, 2, 3, 3, 3]);
        let revision = self.range(replica_sets, replica_sets + 12);
        let mut deployment = self.deployment(app, replicas, revision, template);
        let mut out = Vec::new();
        let mut rs_created = app.created;
        let mut current = Value::Null;
        for i in (0..replica_sets).rev() {
            let rev = revision - i;
            let mut source = deployment.clone();
            if i > 0 {
                for container in source
                    .pointer_mut("/spec/template/spec/containers")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let image = container.str_at("/image").to_string();
                    container["image"] = Value::String(self.bump_image(&image));
                }
            }
            rs_created = self.between(
                rs_created + HOUR,
                (rs_created + 60 * DAY).min(self.now - HOUR),
            );
            let rs = self.replica_set(&source, rev, if i == 0 { replicas } else { 0 }, rs_created);
            if i == 0 {
                current = rs.clone();
            }
            out.push(rs);
        }
        let rs_name = current.str_at("/metadata/name").to_string();
        for condition in deployment
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if condition["type"] == "Progressing" {
                condition["lastUpdateTime"] = Value::String(ts(rs_created + 40));
                condition["message"] = Value::String(format!(
                    "ReplicaSet \"{rs_name}\" has successfully progressed."
                ));
            }
        }
        let status_time = self.between(rs_created + 40, self.now);
        Self::status_managed(&mut deployment, "kube-controller-manager", status_time);
        out.insert(0, deployment);
        for _ in 0..replicas {
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            let created = self.between(rs_created + 5, self.now - 60);
            out.push(self.pod_at(&current, node, created));
        }
        out
    }

    pub(in crate::sim) fn deployment(
        &mut self,
        app: &App,
        replicas: u64,
        revision: u64,
        template: Value,
    ) -> Value {
        self.reserve("Deployment", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Deployment", &app.name);
        annotations.insert(
            "deployment.kubernetes.io/revision".into(),
            Value::String(revision.to_string()),
        );
        let mut meta = self.metadata(Some(&app.ns), &app.name, app.created, labels, annotations);
        let generation = revision + self.range(0, 6);
        meta.insert("generation".into(), json!(generation));
        let available = ts(self.between(app.created + 60, self.now - HOUR));
        let progressing = ts(app.created + self.range(30, 90) as i64);
        let mut deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": app.selector.clone()},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                "template": template,
            },
            "status": {
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "lastTransitionTime": available,
                        "lastUpdateTime": available,
                        "message": "Deployment has minimum availability.",
                        "reason": "MinimumReplicasAvailable",
                        "status": "True",
                        "type": "Available",
                    },
                    {
                        "lastTransitionTime": progressing,
                        "lastUpdateTime": progressing,
                        "message": "",
                        "reason": "NewReplicaSetAvailable",
                        "status": "True",
                        "type": "Progressing",
                    },
                ],
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updatedReplicas": replicas,
            },
        });
        if self.chance(0.2) {
            deployment["spec"]["strategy"]["rollingUpdate"] =
                json!({"maxSurge": 1, "maxUnavailable": 0});
        }
        let applied_at = self.between(app.created, self.now - HOUR);
        self.applied(&mut deployment, app.flavor, applied_at);
        let fields =
            json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": ""}}});
        Self::push_managed(
            &mut deployment,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "apps/v1",
                applied_at + 2,
                fields_of(&fields),
                None,
            ),
        );
        deployment
    }
}

impl Churn {
    /// A Deployment that is not being deleted and whose last rollout is complete.
    pub(in crate::sim) fn pick_settled_deployment(&mut self, pool: usize) -> Option<Key> {
        for _ in 0..8 {
            let key = self.pools[pool].pick(&mut self.rng)?;
            if self.get(&key).is_some_and(deployment_settled) {
                return Some(key);
            }
        }
        None
    }

    pub(in crate::sim) fn scale(&mut self) -> bool {
        let Some(key) = self.pick_settled_deployment(POOL_DEPLOYMENTS) else {
            return false;
        };
        let Some(d) = self.get(&key) else {
            return false;
        };
        let uid = d.str_at("/metadata/uid").to_string();
        let current = d.u64_at("/spec/replicas");
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
                match entries.iter_mut().find(|e| {
                    e.str_at("/manager") == manager && e.opt_str_at("/subresource") == Some("scale")
                }) {
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

    pub(in crate::sim) fn rollout(&mut self) -> bool {
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

    pub(in crate::sim) fn reconcile_deployment(&mut self, key: &Key) {
        let Some(d) = self.get(key) else { return };
        if terminating(d) {
            return;
        }
        let uid = d.str_at("/metadata/uid").to_string();
        let desired = d.u64_at("/spec/replicas");
        let (surge, max_unavailable) = rolling_limits(d, desired);
        let history_limit = d.u64_or("/spec/revisionHistoryLimit", 10);
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
        put("observedGeneration", d.u64_at("/metadata/generation"));
        put("readyReplicas", ready);
        put("replicas", replicas);
        put("unavailableReplicas", spec_total.saturating_sub(available));
        put("updatedReplicas", new.replicas);
        // As the controller's syncRolloutStatus: progress is more updated, ready or available replicas, or
        // fewer old ones.
        let old_count = |k: &str| old_status.count_at(&format!("/{k}"));
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
            c.str_at("/type") == "Progressing"
                && c.str_at("/message").contains(&format!("\"{new_name}\""))
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
        let revision_changed = revision_of(d) != new.revision;
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
}
