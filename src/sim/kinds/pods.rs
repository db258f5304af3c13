//! Pods: how the scheduler and kubelet shape one, and how pods start, flap, restart and terminate under churn.

use rand::RngExt;
use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::actions::Action;
use crate::sim::churn::store::{Key, POOL_PODS};
use crate::sim::factory::{Node, ObjectFactory};
use crate::sim::json::{Fields, condition_time, parse_ts, set, terminating, ts};
use crate::sim::managed::{fields_of, managed_entry, remove_status_managed, set_status_managed};
use crate::sim::strings::{image_display, safe_hash};

pub(in crate::sim) fn qos_class(containers: &[Value]) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        any |= requests.is_some() || limits.is_some();
        guaranteed &= limits.is_some_and(|l| {
            l.get("cpu").is_some() && l.get("memory").is_some() && requests.is_none_or(|r| r == l)
        });
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

pub(in crate::sim) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c.str_at("/type") == "Ready" && c.str_at("/status") == "True")
}

/// Sets a pod condition; its `lastTransitionTime` moves only when its status does.
pub(in crate::sim) fn set_pod_condition(
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
    match conditions.iter_mut().find(|c| c.str_at("/type") == ty) {
        Some(c) => {
            if c.str_at("/status") == status {
                let time = c.get("lastTransitionTime").cloned().unwrap_or(json!(now));
                set(&mut condition, "", "lastTransitionTime", time);
            }
            *c = condition;
        }
        None => conditions.push(condition),
    }
}

/// The factory's status for a brand-new pod, without the restart history it gives some pods.
pub(in crate::sim) fn fresh_pod_status(mut status: Value) -> Value {
    let started = condition_time(&status, "PodReadyToStartContainers").map(str::to_string);
    for cs in status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if cs.u64_at("/restartCount") > 0 {
            set(cs, "", "restartCount", json!(0));
            set(cs, "", "lastState", json!({}));
            if let Some(t) = &started {
                set(cs, "/state/running", "startedAt", json!(t));
            }
        }
    }
    status
}

impl ObjectFactory {
    /// A new Pod of `owner` (a ReplicaSet, StatefulSet, DaemonSet or Job), created now on a random node.
    pub fn pod_for(&mut self, owner: &Value) -> Value {
        self.ensure_nodes();
        let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
        let created = self.now;
        self.pod_at(owner, node, created)
    }

    /// A Pod of `owner` on node `node` created at `created`, with the status the kubelet reports.
    pub(in crate::sim) fn pod_at(&mut self, owner: &Value, node: usize, created: i64) -> Value {
        let kind = owner.str_at("/kind").to_string();
        let ns = owner.str_at("/metadata/namespace").to_string();
        let owner_name = owner.str_at("/metadata/name").to_string();
        let template = match kind.as_str() {
            "CronJob" => owner.pointer("/spec/jobTemplate/spec/template"),
            _ => owner.pointer("/spec/template"),
        }
        .cloned()
        .unwrap_or_else(|| json!({"spec": {"containers": []}}));
        let node = self.nodes.get(node).cloned().unwrap_or_else(|| Node {
            name: "unknown".into(),
            ip: "10.0.0.1".into(),
        });
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut generate_name = Some(format!("{owner_name}-"));
        let name = match kind.as_str() {
            "StatefulSet" => {
                let uid = owner.str_at("/metadata/uid").to_string();
                let ordinal = self.ordinals.entry(uid).or_insert(0);
                let n = *ordinal;
                *ordinal += 1;
                let name = format!("{owner_name}-{n}");
                labels.insert(
                    "apps.kubernetes.io/pod-index".into(),
                    Value::String(n.to_string()),
                );
                labels.insert(
                    "controller-revision-hash".into(),
                    Value::String(owner.str_at("/status/currentRevision").to_string()),
                );
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    Value::String(name.clone()),
                );
                spec["hostname"] = Value::String(name.clone());
                spec["subdomain"] = Value::String(owner.str_at("/spec/serviceName").to_string());
                let mut volumes = vec![];
                for claim in owner
                    .pointer("/spec/volumeClaimTemplates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let claim_name = claim.str_at("/metadata/name").to_string();
                    volumes.push(json!({"name": claim_name, "persistentVolumeClaim": {"claimName": format!("{claim_name}-{name}")}}));
                }
                volumes.extend(
                    spec.get("volumes")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
                spec["volumes"] = Value::Array(volumes);
                generate_name = None;
                self.reserve("Pod", &ns, &name);
                name
            }
            _ => loop {
                let name = format!("{owner_name}-{}", self.suffix());
                if self.reserve("Pod", &ns, &name) {
                    break name;
                }
            },
        };
        if kind == "DaemonSet" {
            labels.insert(
                "controller-revision-hash".into(),
                Value::String(safe_hash(owner.str_at("/metadata/uid"))),
            );
            let generation = owner.u64_or("/metadata/generation", 1);
            labels.insert(
                "pod-template-generation".into(),
                Value::String(generation.to_string()),
            );
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node.name.clone()]}]}
            ]}}});
        }
        let mut meta = Map::new();
        if let Some(a) = template.pointer("/metadata/annotations") {
            meta.insert("annotations".into(), a.clone());
        }
        meta.insert("creationTimestamp".into(), Value::String(ts(created)));
        if let Some(g) = &generate_name {
            meta.insert("generateName".into(), Value::String(g.clone()));
        }
        meta.insert("labels".into(), Value::Object(labels));
        meta.insert("name".into(), Value::String(name.clone()));
        meta.insert("namespace".into(), Value::String(ns.clone()));
        meta.insert(
            "ownerReferences".into(),
            json!([Self::owner_reference(owner)]),
        );
        meta.insert(
            "resourceVersion".into(),
            Value::String(self.next_resource_version()),
        );
        meta.insert("uid".into(), Value::String(self.uid()));
        let owned_spec = spec.clone();
        self.admit_pod(&mut spec, &kind, &node);
        let host_network = spec["hostNetwork"] == true;
        let succeeded = kind == "Job";
        let status = self.pod_status(&spec, &node, created, host_network, succeeded);
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status});
        let mut owned_meta = json!({
            "labels": pod["metadata"]["labels"].clone(),
            "ownerReferences": pod["metadata"]["ownerReferences"].clone(),
        });
        if let Some(a) = pod.pointer("/metadata/annotations") {
            owned_meta["annotations"] = a.clone();
        }
        if generate_name.is_some() {
            owned_meta["generateName"] = json!("");
        }
        let mut owned_spec = owned_spec;
        owned_spec["enableServiceLinks"] = json!(true);
        let manager = "kube-controller-manager";
        let fields = json!({"metadata": owned_meta, "spec": owned_spec});
        Self::push_managed(
            &mut pod,
            managed_entry(manager, "Update", "v1", created, fields_of(&fields), None),
        );
        let status_time = created + self.range(30, 120) as i64;
        Self::status_managed(&mut pod, "kubelet", status_time);
        pod
    }

    /// What admission and the scheduler add to a pod's spec.
    pub(in crate::sim) fn admit_pod(&mut self, spec: &mut Value, owner_kind: &str, node: &Node) {
        let volume_name = format!("kube-api-access-{}", self.suffix());
        let mount = json!({"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": volume_name, "readOnly": true});
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                match c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                    Some(mounts) => mounts.push(mount.clone()),
                    None => c["volumeMounts"] = json!([mount.clone()]),
                }
            }
        }
        let projected = json!({"name": volume_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
        ]}});
        match spec.get_mut("volumes").and_then(Value::as_array_mut) {
            Some(v) => v.push(projected),
            None => spec["volumes"] = json!([projected]),
        }
        spec["enableServiceLinks"] = json!(true);
        spec["nodeName"] = Value::String(node.name.clone());
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
        let priority = match spec.get("priorityClassName").and_then(Value::as_str) {
            Some("system-node-critical") => 2_000_001_000,
            Some("system-cluster-critical") => 2_000_000_000,
            _ => 0,
        };
        spec["priority"] = json!(priority);
        if spec.get("serviceAccountName").is_none() {
            spec["serviceAccount"] = json!("default");
            spec["serviceAccountName"] = json!("default");
        }
        let mut tolerations = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if owner_kind == "DaemonSet" {
            for (key, effect) in [
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/network-unavailable", "NoSchedule"),
            ] {
                tolerations.push(json!({"effect": effect, "key": key, "operator": "Exists"}));
            }
        } else {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                tolerations.push(json!({"effect": "NoExecute", "key": key, "operator": "Exists", "tolerationSeconds": 300}));
            }
        }
        spec["tolerations"] = Value::Array(tolerations);
    }

    pub(in crate::sim) fn pod_status(
        &mut self,
        spec: &Value,
        node: &Node,
        created: i64,
        host_network: bool,
        succeeded: bool,
    ) -> Value {
        let pod_ip = if host_network {
            node.ip.clone()
        } else {
            self.pod_ip()
        };
        let scheduled = created;
        let started = created + self.range(1, 4) as i64;
        let init_done = started + self.range(1, 20) as i64;
        let ready = init_done + self.range(5, 90) as i64;
        let finished = ready + self.range(10, 900) as i64;
        let condition = |t: &str, status: &str, at: i64, reason: Option<&str>| {
            let mut c = json!({"lastProbeTime": null, "lastTransitionTime": ts(at), "status": status, "type": t});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            c
        };
        let conditions = if succeeded {
            vec![
                condition("PodReadyToStartContainers", "False", finished, None),
                condition("Initialized", "True", init_done, Some("PodCompleted")),
                condition("Ready", "False", finished, Some("PodCompleted")),
                condition("ContainersReady", "False", finished, Some("PodCompleted")),
                condition("PodScheduled", "True", scheduled, None),
            ]
        } else {
            vec![
                condition("PodReadyToStartContainers", "True", started + 2, None),
                condition("Initialized", "True", init_done, None),
                condition("Ready", "True", ready, None),
                condition("ContainersReady", "True", ready, None),
                condition("PodScheduled", "True", scheduled, None),
            ]
        };
        let mut status = Map::new();
        status.insert("conditions".into(), Value::Array(conditions));
        let containers = spec
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut statuses = Vec::new();
        for c in &containers {
            statuses.push(self.container_status(c, init_done, finished, succeeded, false));
        }
        statuses.sort_by_key(|s| s.str_at("/name").to_string());
        status.insert("containerStatuses".into(), Value::Array(statuses));
        status.insert("hostIP".into(), Value::String(node.ip.clone()));
        status.insert("hostIPs".into(), json!([{"ip": node.ip.clone()}]));
        if let Some(inits) = spec.get("initContainers").and_then(Value::as_array) {
            let mut statuses = Vec::new();
            for c in inits {
                statuses.push(self.container_status(c, started, init_done, true, true));
            }
            status.insert("initContainerStatuses".into(), Value::Array(statuses));
        }
        status.insert(
            "phase".into(),
            json!(if succeeded { "Succeeded" } else { "Running" }),
        );
        status.insert("podIP".into(), Value::String(pod_ip.clone()));
        status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
        status.insert("qosClass".into(), json!(qos_class(&containers)));
        status.insert("startTime".into(), Value::String(ts(started)));
        Value::Object(status)
    }

    pub(in crate::sim) fn container_status(
        &mut self,
        container: &Value,
        started: i64,
        finished: i64,
        terminated: bool,
        init: bool,
    ) -> Value {
        let image = container.str_at("/image").to_string();
        let image_id = self.image_id(&image);
        let container_id = format!("containerd://{}", self.hex(64));
        let restarts = if terminated || self.chance(0.88) {
            0
        } else {
            self.range(1, 30)
        };
        let mut last_state = json!({});
        let mut running_since = started + self.range(1, 10) as i64;
        if restarts > 0 {
            let crashed = self.between(running_since, self.now - 60);
            last_state = json!({"terminated": {
                "containerID": format!("containerd://{}", self.hex(64)),
                "exitCode": self.pick(&[137, 1, 143, 2, 255]),
                "finishedAt": ts(crashed),
                "reason": self.pick(&["OOMKilled", "Error", "Error"]),
                "startedAt": ts(running_since),
            }});
            running_since = crashed + self.range(1, 300) as i64;
        }
        let state = if terminated {
            json!({"terminated": {
                "containerID": container_id.clone(),
                "exitCode": 0,
                "finishedAt": ts(finished),
                "reason": "Completed",
                "startedAt": ts(started + 1),
            }})
        } else {
            json!({"running": {"startedAt": ts(running_since)}})
        };
        let mut s = json!({
            "containerID": container_id,
            "image": image_display(&image),
            "imageID": image_id,
            "lastState": last_state,
            "name": container.str_at("/name").to_string(),
            "ready": !terminated,
            "restartCount": restarts,
            "started": !terminated,
            "state": state,
        });
        if init {
            s["ready"] = json!(true);
            if let Some(m) = s.as_object_mut() {
                m.remove("started");
            }
        }
        let mounts = container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !mounts.is_empty() {
            let mounts: Vec<Value> = mounts
                .iter()
                .map(|m| {
                    let mut v = m.clone();
                    if v.get("readOnly") == Some(&json!(true)) {
                        v["recursiveReadOnly"] = json!("Disabled");
                    }
                    v
                })
                .collect();
            s["volumeMounts"] = Value::Array(mounts);
        }
        s
    }
}

impl Churn {
    pub(in crate::sim) fn random_container_id(&mut self) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        let id: String = (0..64)
            .map(|_| char::from(HEX[self.rng.random_range(0..HEX.len())]))
            .collect();
        format!("containerd://{id}")
    }

    /// A running, ready pod of a long-running workload (not a Job's), not terminating.
    pub(in crate::sim) fn pick_running_pod(&mut self) -> Option<Key> {
        for _ in 0..16 {
            let key = self.pools[POOL_PODS].pick(&mut self.rng)?;
            let Some(pod) = self.get(&key) else { continue };
            let eligible = pod.str_at("/status/phase") == "Running"
                && pod_ready(pod)
                && !terminating(pod)
                && pod.str_at("/metadata/ownerReferences/0/kind") != "Job"
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

    pub(in crate::sim) fn readiness_flap(&mut self) -> bool {
        let Some(key) = self.pick_running_pod() else {
            return false;
        };
        let Some(pod) = self.get(&key) else {
            return false;
        };
        let uid = pod.str_at("/metadata/uid").to_string();
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
                names.push(cs.str_at("/name").to_string());
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

    pub(in crate::sim) fn pod_restart(&mut self) -> bool {
        let Some(key) = self.pick_running_pod() else {
            return false;
        };
        let Some(pod) = self.get(&key) else {
            return false;
        };
        let uid = pod.str_at("/metadata/uid").to_string();
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
        let container = old.str_at("/name").to_string();
        let restarts = old.u64_at("/restartCount") + 1;
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
            "containerID": old.str_at("/containerID"),
            "exitCode": exit_code,
            "finishedAt": now,
            "reason": reason,
            "startedAt": old.str_at("/state/running/startedAt"),
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
                let container = statuses[which].str_at("/name").to_string();
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

    /// Starts the graceful deletion of a pod; returns the seconds until it is gone.
    pub(in crate::sim) fn terminate_pod(&mut self, key: &Key) -> u64 {
        let Some(pod) = self.get(key) else { return 0 };
        if terminating(pod) {
            return 30;
        }
        let uid = pod.str_at("/metadata/uid").to_string();
        let grace = pod.u64_or("/spec/terminationGracePeriodSeconds", 30);
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
    pub(in crate::sim) fn create_pod(&mut self, owner: &Value) {
        let full = self.factory.pod_for(owner);
        let uid = full.str_at("/metadata/uid").to_string();
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
        let job = owner.str_at("/kind") == "Job";
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

    /// (active, ready, succeeded) pods of the owner with `uid`, with the active ones' keys.
    pub(in crate::sim) fn pod_counts(&self, uid: &str) -> (Vec<(Key, &Value)>, u64, u64) {
        let mut active = Vec::new();
        let mut ready = 0;
        let mut succeeded = 0;
        for key in self.dependents.get(uid).into_iter().flatten() {
            if key.kind != "Pod" {
                continue;
            }
            let Some(pod) = self.get(key) else { continue };
            match pod.str_at("/status/phase") {
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
}
