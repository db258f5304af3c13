//! StatefulSets with their headless Service and ordinal pods, and the StatefulSet controller's status.

use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::Key;
use crate::sim::factory::{DAY, HOUR, ObjectFactory};
use crate::sim::json::{Fields, labels_of, set, set_or_remove, terminating};
use crate::sim::managed::{Flavor, KCM, set_status_managed};
use crate::sim::vocabulary::{DATASTORES, ROLES};

impl ObjectFactory {
    /// A datastore StatefulSet with its headless and client Services, its pods and a password Secret.
    pub(in crate::sim) fn stateful_set_bundle(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        let (store, repo, port) = self.pick(DATASTORES);
        let mut app = self.new_app(ns, floor);
        let name = if self.reserve("App", ns, store) {
            store.to_string()
        } else {
            format!("{store}-{}", self.pick(ROLES))
        };
        self.reserve("App", ns, &name);
        app.name = name.clone();
        app.flavor = Flavor::Helm;
        let chart = format!(
            "{store}-{}.{}.{}",
            self.range(10, 20),
            self.range(0, 9),
            self.range(0, 9)
        );
        app.labels = labels_of(&[
            ("app.kubernetes.io/component", "primary"),
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/name", store),
            ("helm.sh/chart", chart.as_str()),
        ]);
        app.selector = labels_of(&[
            ("app.kubernetes.io/instance", name.as_str()),
            ("app.kubernetes.io/name", store),
        ]);
        app.template_labels = app.labels.clone();
        app.port = port;
        app.image_repo = repo.to_string();
        app.version = format!(
            "{}.{}.{}",
            self.range(2, 16),
            self.range(0, 9),
            self.range(0, 12)
        );
        let mut out = Vec::new();
        let data = self.secret_data();
        let (labels, annotations) = self.app_metadata(&app, "Secret", &name);
        let secret = self.secret_object(
            ns,
            &format!("{name}-auth"),
            "Opaque",
            data,
            app.created,
            Flavor::Helm,
            labels,
            annotations,
        );
        app.secret = Some(secret.str_at("/metadata/name").to_string());
        out.push(secret);
        let replicas = self.range(1, 3);
        let mut template = self.pod_template(&app);
        for c in template
            .pointer_mut("/spec/containers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(mounts) = c.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                mounts.push(json!({"mountPath": format!("/var/lib/{store}"), "name": "data"}));
            }
        }
        self.reserve("StatefulSet", ns, &name);
        let (labels, annotations) = self.app_metadata(&app, "StatefulSet", &name);
        let mut meta = self.metadata(Some(ns), &name, app.created, labels, annotations);
        let generation = self.range(1, 8);
        meta.insert("generation".into(), json!(generation));
        let revision = format!("{name}-{}", self.template_hash());
        let mut sts = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta,
            "spec": {
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "podManagementPolicy": "OrderedReady",
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": Value::Object(app.selector.clone())},
                "serviceName": format!("{name}-headless"),
                "template": template,
                "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                "volumeClaimTemplates": [{
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"creationTimestamp": null, "name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": self.pick(&["8Gi", "10Gi", "20Gi", "50Gi", "100Gi"])}},
                        "storageClassName": "gp3",
                        "volumeMode": "Filesystem",
                    },
                    "status": {"phase": "Pending"},
                }],
            },
            "status": {
                "availableReplicas": replicas,
                "collisionCount": 0,
                "currentReplicas": replicas,
                "currentRevision": revision,
                "observedGeneration": generation,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updateRevision": revision,
                "updatedReplicas": replicas,
            },
        });
        self.applied(&mut sts, Flavor::Helm, app.created);
        Self::status_managed(
            &mut sts,
            "kube-controller-manager",
            self.now - self.range(60, 30 * DAY as u64) as i64,
        );
        let mut services = Vec::new();
        for (svc_name, headless) in [(format!("{name}-headless"), true), (name.clone(), false)] {
            self.reserve("Service", ns, &svc_name);
            let meta = self.metadata(
                Some(ns),
                &svc_name,
                app.created,
                app.labels.clone(),
                Map::new(),
            );
            let ip = if headless {
                "None".to_string()
            } else {
                self.cluster_ip()
            };
            let mut spec = json!({
                "clusterIP": ip,
                "clusterIPs": [ip],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "tcp", "port": port, "protocol": "TCP", "targetPort": port}],
                "selector": Value::Object(app.selector.clone()),
                "sessionAffinity": "None",
                "type": "ClusterIP",
            });
            if headless {
                spec["publishNotReadyAddresses"] = json!(true);
            }
            let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": {"loadBalancer": {}}});
            self.applied(&mut svc, Flavor::Helm, app.created);
            services.push(svc);
        }
        out.push(sts.clone());
        out.extend(services);
        for _ in 0..replicas {
            let node = self.range(0, self.nodes.len() as u64 - 1) as usize;
            let created = self.between(app.created, self.now - HOUR);
            out.push(self.pod_at(&sts, node, created));
        }
        out
    }
}

impl Churn {
    pub(in crate::sim) fn reconcile_stateful_set(&mut self, key: &Key) {
        let Some(sts) = self.get(key) else { return };
        if terminating(sts) {
            return;
        }
        let (_, ready, _) = self.pod_counts(sts.str_at("/metadata/uid"));
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
}
