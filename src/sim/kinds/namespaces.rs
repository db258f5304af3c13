//! Namespaces and what every namespace gets (its default ServiceAccount and `kube-root-ca.crt` ConfigMap).

use serde_json::{Map, Value, json};

use crate::sim::factory::{DAY, ObjectFactory};
use crate::sim::json::labels_of;
use crate::sim::managed::{fields_of, managed_entry};
use crate::sim::vocabulary::{SYSTEM_NAMESPACES, TEAMS};

pub(in crate::sim) const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions \
of Kubernetes clusters.";

impl ObjectFactory {
    /// A Namespace created some time after the cluster.
    pub fn namespace(&mut self, name: &str) -> Value {
        let created = self.between(self.cluster_created + DAY, self.now - 10 * DAY);
        self.namespace_at(name, created)
    }

    pub(in crate::sim) fn namespace_at(&mut self, name: &str, created: i64) -> Value {
        self.reserve("Namespace", "", name);
        let mut labels = labels_of(&[("kubernetes.io/metadata.name", name)]);
        let system = SYSTEM_NAMESPACES.contains(&name);
        if !system && self.chance(0.6) {
            labels.insert("team".into(), Value::String(self.pick(TEAMS).to_string()));
            labels.insert(
                "pod-security.kubernetes.io/enforce".into(),
                Value::String(
                    self.pick(&["baseline", "restricted", "privileged"])
                        .to_string(),
                ),
            );
        }
        let meta = self.metadata(None, name, created, labels, Map::new());
        let mut ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let fields = json!({"metadata": {"labels": ns["metadata"]["labels"].clone()}});
        let manager = if system {
            "kube-apiserver"
        } else {
            "kubectl-create"
        };
        Self::push_managed(
            &mut ns,
            managed_entry(manager, "Update", "v1", created, fields_of(&fields), None),
        );
        ns
    }

    /// The objects every namespace gets, plus the occasional StatefulSet, CronJob and default-deny policy.
    pub(in crate::sim) fn namespace_contents(&mut self, ns: &str, created: i64) -> Vec<Value> {
        let mut out = self.namespace_basics(ns, created);
        if self.chance(0.35) {
            out.extend(self.stateful_set_bundle(ns, created));
        }
        if self.chance(0.4) {
            out.extend(self.cron_job_bundle(ns, created));
        }
        if self.chance(0.5) {
            out.push(self.default_deny(ns, created));
        }
        if self.chance(0.4) {
            out.push(self.docker_config_secret(ns, "regcred", created));
        }
        out
    }

    pub(in crate::sim) fn namespace_basics(&mut self, ns: &str, created: i64) -> Vec<Value> {
        self.reserve("ServiceAccount", ns, "default");
        let meta = self.metadata(Some(ns), "default", created, Map::new(), Map::new());
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        self.reserve("ConfigMap", ns, "kube-root-ca.crt");
        let annotations = labels_of(&[("kubernetes.io/description", ROOT_CA_DESCRIPTION)]);
        let meta = self.metadata(
            Some(ns),
            "kube-root-ca.crt",
            created,
            Map::new(),
            annotations,
        );
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"ca.crt": self.ca_pem.clone()}});
        let fields = json!({"data": cm["data"].clone(), "metadata": {"annotations": cm["metadata"]["annotations"].clone()}});
        Self::push_managed(
            &mut cm,
            managed_entry(
                "kube-controller-manager",
                "Update",
                "v1",
                created,
                fields_of(&fields),
                None,
            ),
        );
        vec![sa, cm]
    }
}
