//! Tests of the simulator by kind: every kind's objects carry what a kube-apiserver returns for it,
//! owners exist, and churn keeps the cluster consistent, for any seed.

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::Value;

use crate::sim::json::{Fields, namespace_of, parse_ts};
use crate::sim::{Churn, ChurnEvent, ClusterShape};

type Id = (String, String, String);

fn id(o: &Value) -> Id {
    (
        o.str_at("/kind").to_string(),
        namespace_of(o).to_string(),
        o.str_at("/metadata/name").to_string(),
    )
}

/// Kinds that live outside any namespace.
const CLUSTER_SCOPED: &[&str] = &["Namespace"];

/// The fields every object of `kind` has in a GET response, beyond the common metadata.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Namespace" => &["/spec/finalizers", "/status/phase"],
        "Deployment" => &[
            "/spec/replicas",
            "/spec/selector/matchLabels",
            "/spec/template/spec/containers/0/image",
            "/spec/strategy/type",
            "/status/observedGeneration",
        ],
        "ReplicaSet" => &[
            "/spec/replicas",
            "/spec/selector/matchLabels",
            "/spec/template/spec/containers/0/image",
            "/metadata/ownerReferences/0/uid",
        ],
        "StatefulSet" => &[
            "/spec/serviceName",
            "/spec/template/spec/containers/0/image",
        ],
        "DaemonSet" => &["/spec/selector", "/spec/template/spec/containers/0/image"],
        "Pod" => &[
            "/spec/containers/0/name",
            "/spec/containers/0/image",
            "/status/phase",
            "/metadata/ownerReferences/0/uid",
        ],
        "Service" => &["/spec/type", "/spec/ports/0/port"],
        "CronJob" => &[
            "/spec/schedule",
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
        ],
        "Job" => &[
            "/spec/template/spec/containers/0/image",
            "/metadata/ownerReferences/0/uid",
        ],
        "Secret" => &["/type"],
        _ => &[],
    }
}

/// Checks `objects` as one consistent cluster: unique keys and uids, the common metadata and each
/// kind's fields, and every owner reference naming an existing owner of the same namespace.
fn check_cluster<'a>(objects: impl IntoIterator<Item = &'a Value>) -> BTreeMap<Id, &'a Value> {
    let mut by_id = BTreeMap::new();
    let mut uids = BTreeSet::new();
    for o in objects {
        let kind = o.str_at("/kind");
        assert!(o.str_at("/apiVersion").contains('v'), "{:?}", id(o));
        assert!(
            uids.insert(o.str_at("/metadata/uid")),
            "uid of {:?} twice",
            id(o)
        );
        assert!(o.str_at("/metadata/resourceVersion").parse::<u64>().is_ok());
        assert!(parse_ts(o.str_at("/metadata/creationTimestamp")).is_some());
        assert_eq!(
            o.opt_str_at("/metadata/namespace").is_none(),
            CLUSTER_SCOPED.contains(&kind),
            "{:?}",
            id(o)
        );
        for entry in o
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(!entry.str_at("/manager").is_empty(), "{:?}", id(o));
            assert!(parse_ts(entry.str_at("/time")).is_some(), "{:?}", id(o));
        }
        for field in kind_fields(kind) {
            assert!(o.pointer(field).is_some(), "{:?} has no {field}", id(o));
        }
        assert!(by_id.insert(id(o), o).is_none(), "{:?} twice", id(o));
    }
    for o in by_id.values() {
        for r in o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let owner = (
                r.str_at("/kind").to_string(),
                namespace_of(o).to_string(),
                r.str_at("/name").to_string(),
            );
            let found = by_id
                .get(&owner)
                .unwrap_or_else(|| panic!("{:?} owned by missing {owner:?}", id(o)));
            assert_eq!(found.str_at("/metadata/uid"), r.str_at("/uid"));
        }
    }
    by_id
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn any_cluster_is_consistent_and_of_the_promised_size(seed in any::<u64>(), n in 2_000usize..6_000) {
        let objects = ClusterShape::with_approx_objects(seed, n).build();
        let by_id = check_cluster(&objects);
        let err = (objects.len() as f64 - n as f64).abs() / n as f64;
        prop_assert!(err <= 0.15, "asked {n}, got {}", objects.len());
        // Every Deployment-managed pod's ReplicaSet is owned by an existing Deployment.
        for pod in by_id.values().filter(|o| o.str_at("/kind") == "Pod") {
            if pod.str_at("/metadata/ownerReferences/0/kind") == "ReplicaSet" {
                let rs = &by_id[&(
                    "ReplicaSet".to_string(),
                    namespace_of(pod).to_string(),
                    pod.str_at("/metadata/ownerReferences/0/name").to_string(),
                )];
                prop_assert_eq!(rs.str_at("/metadata/ownerReferences/0/kind"), "Deployment");
            }
        }
    }

    #[test]
    fn churn_keeps_any_cluster_consistent(seed in any::<u64>(), rate in 0.5f64..20.0) {
        let mut churn = Churn::new(seed, 500);
        let mut state: BTreeMap<Id, Value> =
            churn.initial().into_iter().map(|o| (id(&o), o)).collect();
        let mut created = 0;
        let mut deleted = 0;
        for _ in 0..60 {
            for event in churn.step(1.0, rate) {
                match event {
                    ChurnEvent::Apply(o) => {
                        created += usize::from(!state.contains_key(&id(&o)));
                        state.insert(id(&o), o);
                    }
                    ChurnEvent::Delete(o) => {
                        let gone = state.remove(&id(&o));
                        prop_assert!(gone.is_some(), "delete of missing {:?}", id(&o));
                        deleted += 1;
                    }
                }
            }
            check_cluster(state.values());
        }
        prop_assert!(created + deleted > 0, "nothing created or deleted in 60 s at {rate}/s");
        let now: BTreeMap<Id, Value> = churn.objects().into_iter().map(|o| (id(&o), o)).collect();
        prop_assert_eq!(now, state);
    }
}
