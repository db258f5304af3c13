//! Simulated Kubernetes clusters: deterministic, realistic objects for golden fixtures, the demo and benchmarks.
//!
//! [`ObjectFactory`] produces objects exactly as a kube-apiserver (v1.2x) returns them from a GET in JSON:
//! `apiVersion`, `kind`, full `metadata` (unique UIDs, creation timestamps spread over months, increasing
//! resourceVersions, labels, annotations, `ownerReferences`, and `managedFields` as the API server records
//! them), a defaulted `spec` and a `status` as the controllers and the kubelet write it.
//!
//! Realism matters because compression ratios and codec throughput are measured on these objects: randomness
//! sits where real clusters have it (ids, hashes, IPs, timestamps, digests, secret data, certificates,
//! varied configuration), and structure repeats where real clusters repeat it (defaulted fields, managed
//! fields mirroring the spec, the `last-applied-configuration` copy of the manifest). A whole cluster
//! serialized as NDJSON compresses about 9x with gzip, like a real one.
//!
//! Everything is driven by one seeded RNG: the same seed and the same sequence of calls give byte-identical
//! objects.

pub mod churn;
mod factory;
mod json;
mod kinds;
mod managed;
mod strings;
mod vocabulary;

#[cfg(test)]
mod golden;

pub use churn::{Churn, ChurnEvent};
pub use factory::ObjectFactory;

use serde_json::Value;

/// How big and how varied a simulated cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterShape {
    /// Seed mixed into the factory's RNG by [`ObjectFactory::cluster`]; the same seed gives the same cluster.
    pub seed: u64,
    /// Application namespaces. The system namespaces (`default`, `kube-system`, `kube-public`,
    /// `kube-node-lease`) come on top.
    pub namespaces: usize,
    /// Average number of Deployment-based apps per application namespace (each namespace gets between half
    /// and one and a half times this many; at least one).
    pub apps_per_namespace: usize,
    /// Worker nodes. Every DaemonSet runs one pod per node.
    pub nodes: usize,
}

/// Expected objects contributed by one Deployment-based app (Deployment, ReplicaSets, Pods, Service and
/// the occasional Ingress, ConfigMap, Secret, ServiceAccount, NetworkPolicy). Measured over many seeds.
const OBJECTS_PER_APP: f64 = 9.8;
/// Expected objects per application namespace besides its apps (Namespace, default ServiceAccount,
/// `kube-root-ca.crt`, sometimes a StatefulSet bundle, a CronJob bundle, a default-deny NetworkPolicy).
const OBJECTS_PER_NAMESPACE: f64 = 8.2;
/// Objects of the system namespaces that do not depend on the node count.
const SYSTEM_OBJECTS: f64 = 63.7;
/// DaemonSets in `kube-system`; each runs one pod per node.
pub(crate) const DAEMON_SETS: usize = 4;

impl ClusterShape {
    /// A shape whose generated cluster holds close to `n` objects (within a few percent for `n` in the
    /// thousands): about one node per 70 objects, and namespaces of about eight apps.
    pub fn with_approx_objects(seed: u64, n: usize) -> Self {
        let nodes = (n / 70).clamp(2, 1000);
        let per_node = (DAEMON_SETS + 1) as f64; // one pod per DaemonSet, plus the node's share of nothing else
        let remaining = (n as f64 - SYSTEM_OBJECTS - per_node * nodes as f64).max(OBJECTS_PER_APP);
        let target_apps = 8.0;
        let per_namespace = OBJECTS_PER_NAMESPACE + OBJECTS_PER_APP * target_apps;
        let namespaces = ((remaining / per_namespace).round() as usize).max(1);
        let apps =
            ((remaining / namespaces as f64 - OBJECTS_PER_NAMESPACE) / OBJECTS_PER_APP).round();
        ClusterShape {
            seed,
            namespaces,
            apps_per_namespace: (apps as usize).max(1),
            nodes,
        }
    }

    /// Builds this cluster with a fresh factory seeded with [`ClusterShape::seed`].
    pub fn build(&self) -> Vec<Value> {
        ObjectFactory::new(self.seed).cluster(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::factory::{CLOCK_START, DAY};
    use crate::sim::vocabulary::SYSTEM_NAMESPACES;
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Write;

    fn ndjson(objects: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for o in objects {
            serde_json::to_writer(&mut out, o).unwrap();
            out.push(b'\n');
        }
        out
    }

    fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
    }

    fn key(o: &Value) -> (String, String, String) {
        (
            s(o, "/kind").to_string(),
            s(o, "/metadata/namespace").to_string(),
            s(o, "/metadata/name").to_string(),
        )
    }

    fn small_cluster(seed: u64) -> Vec<Value> {
        ClusterShape::with_approx_objects(seed, 2000).build()
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different_bytes() {
        let a = ndjson(&ClusterShape::with_approx_objects(7, 600).build());
        let b = ndjson(&ClusterShape::with_approx_objects(7, 600).build());
        let c = ndjson(&ClusterShape::with_approx_objects(8, 600).build());
        assert_eq!(a, b);
        assert_ne!(a, c);

        let mut f1 = ObjectFactory::new(3);
        let mut f2 = ObjectFactory::new(3);
        assert_eq!(f1.app("shop"), f2.app("shop"));
        assert_eq!(f1.secret("shop", "creds"), f2.secret("shop", "creds"));
    }

    #[test]
    fn names_and_uids_are_unique() {
        let objects = small_cluster(11);
        let mut keys = BTreeSet::new();
        let mut uids = BTreeSet::new();
        for o in &objects {
            assert!(keys.insert(key(o)), "duplicate object {:?}", key(o));
            let uid = s(o, "/metadata/uid");
            assert_eq!(uid.len(), 36, "uid {uid}");
            assert!(uids.insert(uid.to_string()), "duplicate uid {uid}");
        }
        // Repeated builder calls on one factory stay unique too.
        let mut f = ObjectFactory::new(5);
        let mut more = Vec::new();
        for _ in 0..30 {
            more.extend(f.app("team-a"));
        }
        let keys: BTreeSet<_> = more.iter().map(key).collect();
        assert_eq!(keys.len(), more.len());
    }

    #[test]
    fn owner_references_point_at_existing_owners() {
        let objects = small_cluster(12);
        let mut by_key: BTreeMap<(String, String, String), &Value> = BTreeMap::new();
        let mut position = BTreeMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_key.insert(key(o), o);
            position.insert(key(o), i);
        }
        let mut checked = 0;
        for (i, o) in objects.iter().enumerate() {
            let ns = s(o, "/metadata/namespace").to_string();
            for r in o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = (
                    s(r, "/kind").to_string(),
                    ns.clone(),
                    s(r, "/name").to_string(),
                );
                let owner = by_key
                    .get(&k)
                    .unwrap_or_else(|| panic!("missing owner {k:?}"));
                assert_eq!(s(r, "/uid"), s(owner, "/metadata/uid"));
                assert_eq!(s(r, "/apiVersion"), s(owner, "/apiVersion"));
                assert_eq!(r["controller"], true);
                assert_eq!(r["blockOwnerDeletion"], true);
                assert!(position[&k] < i, "owner {k:?} comes after its dependent");
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} owner references");
        // The first objects are the namespaces.
        let first_other = objects
            .iter()
            .position(|o| s(o, "/kind") != "Namespace")
            .unwrap();
        assert!(
            objects[first_other..]
                .iter()
                .all(|o| s(o, "/kind") != "Namespace")
        );
    }

    #[test]
    fn service_selectors_match_pods() {
        let objects = small_cluster(13);
        let pods: Vec<&Value> = objects.iter().filter(|o| s(o, "/kind") == "Pod").collect();
        let mut services = 0;
        for svc in objects.iter().filter(|o| s(o, "/kind") == "Service") {
            let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
                continue; // e.g. default/kubernetes
            };
            services += 1;
            let ns = s(svc, "/metadata/namespace");
            let matched = pods.iter().any(|p| {
                s(p, "/metadata/namespace") == ns
                    && selector.iter().all(|(k, v)| {
                        p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v)
                    })
            });
            assert!(
                matched,
                "service {ns}/{} selects no pod",
                s(svc, "/metadata/name")
            );
        }
        assert!(services > 100);
    }

    #[test]
    fn approx_object_count() {
        for (seed, n) in [(1, 10_000), (2, 2_000), (3, 500)] {
            let shape = ClusterShape::with_approx_objects(seed, n);
            let got = shape.build().len();
            eprintln!("with_approx_objects({seed}, {n}) -> {shape:?} -> {got} objects");
            let err = (got as f64 - n as f64).abs() / n as f64;
            assert!(err <= 0.10, "asked {n}, got {got}");
        }
    }

    #[test]
    fn kinds_and_sizes_are_realistic() {
        let objects = small_cluster(14);
        let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut managed = 0usize;
        let mut total = 0usize;
        for o in &objects {
            let bytes = serde_json::to_vec(o).unwrap().len();
            let mf = o
                .pointer("/metadata/managedFields")
                .map(|m| serde_json::to_vec(m).unwrap().len())
                .unwrap_or(0);
            // The `"managedFields":` key and its comma count as managed-fields bytes.
            managed += if mf > 0 { mf + 17 } else { 0 };
            total += bytes;
            let e = per_kind.entry(s(o, "/kind").to_string()).or_default();
            e.0 += 1;
            e.1 += bytes;
        }
        for (kind, (n, bytes)) in &per_kind {
            eprintln!("{kind:>16}: {n:>5} objects, avg {:>6} bytes", bytes / n);
        }
        let share = managed as f64 / total as f64;
        eprintln!("managedFields share of bytes: {:.1}%", share * 100.0);
        assert!(
            (0.30..=0.65).contains(&share),
            "managedFields share {share}"
        );

        let count = |k: &str| per_kind.get(k).map(|e| e.0).unwrap_or(0);
        let avg = |k: &str| per_kind.get(k).map(|e| e.1 / e.0).unwrap_or(0);
        for k in [
            "Namespace",
            "Deployment",
            "ReplicaSet",
            "Pod",
            "Service",
            "Ingress",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "CronJob",
            "NetworkPolicy",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
        ] {
            assert!(count(k) > 0, "no {k}");
        }
        let most = per_kind
            .iter()
            .max_by_key(|(_, e)| e.0)
            .map(|(k, _)| k.as_str());
        assert_eq!(most, Some("Pod"), "pods should be the most common kind");
        assert!(
            (4_000..=8_000).contains(&avg("Pod")),
            "pod avg {}",
            avg("Pod")
        );
        assert!(
            (4_000..=7_500).contains(&avg("Deployment")),
            "deployment avg {}",
            avg("Deployment")
        );
    }

    #[test]
    fn gzip_ratio_is_realistic() {
        let objects = small_cluster(15);
        let raw = ndjson(&objects);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let compressed = gz.finish().unwrap();
        let ratio = raw.len() as f64 / compressed.len() as f64;
        eprintln!(
            "{} objects, {} bytes NDJSON (avg {} bytes/object), gzip -6: {} bytes, ratio {:.2}x",
            objects.len(),
            raw.len(),
            raw.len() / objects.len(),
            compressed.len(),
            ratio
        );
        assert!(
            (6.0..=13.0).contains(&ratio),
            "gzip ratio {ratio:.2} is not realistic"
        );
    }

    #[test]
    fn secrets_of_every_type_and_some_with_last_applied_data() {
        let objects = small_cluster(16);
        let secrets: Vec<&Value> = objects
            .iter()
            .filter(|o| s(o, "/kind") == "Secret")
            .collect();
        let types: BTreeSet<&str> = secrets.iter().map(|o| s(o, "/type")).collect();
        for t in [
            "Opaque",
            "kubernetes.io/tls",
            "kubernetes.io/dockerconfigjson",
            "kubernetes.io/service-account-token",
        ] {
            assert!(types.contains(t), "no secret of type {t}: {types:?}");
        }
        let with_data_in_annotation = secrets
            .iter()
            .filter(|o| {
                let applied = s(
                    o,
                    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                );
                serde_json::from_str::<Value>(applied)
                    .is_ok_and(|a| a.get("data").is_some_and(|d| d == &o["data"]))
            })
            .count();
        assert!(with_data_in_annotation > 0);

        let mut f = ObjectFactory::new(1);
        let applied = f.applied_secret("shop", "db-credentials");
        assert!(
            s(
                &applied,
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
            )
            .contains("\"data\"")
        );
    }

    #[test]
    fn churn_builders_keep_objects_consistent() {
        let mut f = ObjectFactory::new(21);
        let app = f.app("payments");
        let deployment = app
            .iter()
            .find(|o| s(o, "/kind") == "Deployment")
            .unwrap()
            .clone();
        f.advance_clock(3_600);
        let (updated, rs) = f.new_replica_set_revision(&deployment);
        let rev = |o: &Value| {
            s(
                o,
                "/metadata/annotations/deployment.kubernetes.io~1revision",
            )
            .parse::<u64>()
            .unwrap()
        };
        assert_eq!(rev(&updated), rev(&deployment) + 1);
        assert_eq!(rev(&rs), rev(&updated));
        assert_ne!(
            s(&updated, "/spec/template/spec/containers/0/image"),
            s(&deployment, "/spec/template/spec/containers/0/image")
        );
        let rv = |o: &Value| s(o, "/metadata/resourceVersion").parse::<u64>().unwrap();
        assert!(rv(&updated) > rv(&deployment));
        assert_eq!(
            s(&rs, "/metadata/ownerReferences/0/uid"),
            s(&updated, "/metadata/uid")
        );
        let hash = s(&rs, "/metadata/labels/pod-template-hash");
        assert!(s(&rs, "/metadata/name").ends_with(hash));

        let pod = f.pod_for(&rs);
        assert_eq!(
            s(&pod, "/metadata/ownerReferences/0/uid"),
            s(&rs, "/metadata/uid")
        );
        assert!(s(&pod, "/metadata/name").starts_with(s(&rs, "/metadata/name")));
        assert_eq!(s(&pod, "/metadata/labels/pod-template-hash"), hash);
        assert_eq!(
            s(&pod, "/spec/containers/0/image"),
            s(&updated, "/spec/template/spec/containers/0/image")
        );

        let mut last = 0;
        for _ in 0..5 {
            let v: u64 = f.next_resource_version().parse().unwrap();
            assert!(v > last);
            last = v;
        }
    }

    #[test]
    fn tuning_constants_match_measured_averages() {
        let (mut apps, mut app_objects) = (0usize, 0usize);
        let (mut namespaces, mut ns_objects) = (0usize, 0usize);
        for seed in 0..40 {
            let mut f = ObjectFactory::new(seed);
            for _ in 0..10 {
                app_objects += f.app("team").len();
                apps += 1;
            }
            for i in 0..10 {
                let ns = format!("ns-{i}");
                ns_objects += 1 + f.namespace_contents(&ns, CLOCK_START - 100 * DAY).len();
                namespaces += 1;
            }
        }
        let mut system_objects = 0;
        for seed in 0..40 {
            let mut f = ObjectFactory::new(seed);
            f.ensure_nodes();
            let per_node = f.nodes.len() * (DAEMON_SETS + 1);
            system_objects += f.system_objects().len() + SYSTEM_NAMESPACES.len() - per_node;
        }
        let system = system_objects as f64 / 40.0;
        let per_app = app_objects as f64 / apps as f64;
        let per_ns = ns_objects as f64 / namespaces as f64;
        eprintln!("objects per app {per_app:.2}, per namespace {per_ns:.2}, system {system:.1}");
        assert!(
            (per_app - OBJECTS_PER_APP).abs() < 0.5,
            "OBJECTS_PER_APP should be {per_app:.2}"
        );
        assert!(
            (per_ns - OBJECTS_PER_NAMESPACE).abs() < 0.7,
            "OBJECTS_PER_NAMESPACE should be {per_ns:.2}"
        );
        assert!(
            (system - SYSTEM_OBJECTS).abs() < 1.0,
            "SYSTEM_OBJECTS should be {system:.1}"
        );
    }
}
