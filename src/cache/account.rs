//! The reference builder: every cache row of one account computed from scratch, as Clouddriver's
//! core caching agent would write them. It is the oracle for the indexer's incremental path.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::body::{CacheData, canonical_json};
use super::keys::CacheKey;
use super::relationships::account_links;
use super::resource::{CacheOptions, Resource};

/// One row to store in `cats_v1_<type_name>` (with the agent from `body::core_agent_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRow {
    /// The cache type: the kind string (`replicaSet`), `applications` or `clusters`.
    pub type_name: String,
    /// The cache key (the `id` column).
    pub id: String,
    /// The `body` column.
    pub body: String,
    /// The `body_hash` column.
    pub body_hash: String,
}

impl CacheRow {
    fn new(type_name: &str, data: &CacheData) -> CacheRow {
        let body = data.body();
        CacheRow {
            type_name: type_name.to_string(),
            id: data.id.clone(),
            body_hash: super::body::body_hash(&body),
            body,
        }
    }
}

/// Every row of `account`: one per cached object (see [`CacheOptions::caches`]) and one per
/// application and cluster those objects link to, written at `now_ms`. Rows are sorted by type
/// and id, and the result does not depend on the order of `resources`.
///
/// Objects sharing a key (e.g. one Ingress seen under two API versions) give one row listing the
/// union of their links, as in Clouddriver; its attributes come from the one with the greatest
/// (`apiVersion`, manifest JSON), where Clouddriver keeps whichever it read last.
///
/// Differences from Clouddriver [inferred, by design]: custom-resource kinds are built with the
/// others as if one agent cached them all, so a custom resource's row also lists its children and
/// its application and cluster links land in the logical rows' bodies (Clouddriver's separate
/// custom-resource agents do neither, but its reads merge to the same view); and ids longer than
/// the dialect's `max_id_length` are kept here — the writer must drop them, as Clouddriver does.
pub fn build_account(
    account: &str,
    resources: &[Resource],
    options: &CacheOptions,
    now_ms: i64,
) -> Vec<CacheRow> {
    let links = account_links(account, resources, options);
    let none = BTreeSet::new();

    let mut cached: BTreeMap<CacheKey, (&Resource, String)> = BTreeMap::new();
    for resource in resources.iter().filter(|r| options.caches(r)) {
        let rank = format!(
            "{}\n{}",
            resource.api_version(),
            canonical_json(resource.manifest())
        );
        match cached.entry(resource.key(account)) {
            Entry::Vacant(entry) => {
                entry.insert((resource, rank));
            }
            Entry::Occupied(mut entry) => {
                if rank > entry.get().1 {
                    entry.insert((resource, rank));
                }
            }
        }
    }

    let mut rows: Vec<CacheRow> = cached
        .iter()
        .map(|(key, (resource, _))| {
            let data =
                CacheData::infrastructure(resource, account, links.get(key).unwrap_or(&none));
            CacheRow::new(key.group(), &data)
        })
        .collect();
    rows.extend(
        links
            .iter()
            .filter(|(key, _)| key.is_logical())
            .map(|(key, related)| {
                CacheRow::new(key.group(), &CacheData::logical(key, related, now_ms))
            }),
    );
    rows.sort_by(|a, b| (&a.type_name, &a.id).cmp(&(&b.type_name, &b.id)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::kinds::SpinnakerKind;
    use crate::cache::resource::KindFilter;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const ACCOUNT: &str = "prod-east";
    const NOW: i64 = 1_700_000_000_000;

    fn managed(app: &str, cluster: &str) -> Value {
        json!({"moniker.spinnaker.io/application": app, "moniker.spinnaker.io/cluster": cluster})
    }

    fn owner(api_version: &str, kind: &str, name: &str) -> Value {
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": format!("{name}-uid"), "controller": true}])
    }

    fn replica_set() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": "web-6d4cf56db6", "namespace": "prod", "uid": "rs-1",
                "labels": {"app": "web", "pod-template-hash": "6d4cf56db6"},
                "annotations": {
                    "deployment.kubernetes.io/revision": "3",
                    "moniker.spinnaker.io/application": "shop",
                    "moniker.spinnaker.io/cluster": "deployment web"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1", "controller": true}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "6d4cf56db6"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "6d4cf56db6"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                }
            },
            "status": {"replicas": 2, "readyReplicas": 2}
        })
    }

    fn realistic_account() -> Vec<Value> {
        let pod = |name: &str, ns: &str, owner_refs: Value, annotations: Value| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                    "labels": {"app": "web"}, "ownerReferences": owner_refs},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        };
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "prod", "uid": "d-1",
                    "annotations": managed("shop", "deployment web")},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}),
            replica_set(),
            pod(
                "web-6d4cf56db6-x7k2p",
                "prod",
                owner("apps/v1", "ReplicaSet", "web-6d4cf56db6"),
                managed("shop", "deployment web"),
            ),
            pod(
                "web-6d4cf56db6-b9q4z",
                "prod",
                owner("apps/v1", "ReplicaSet", "web-6d4cf56db6"),
                managed("shop", "deployment web"),
            ),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "prod", "annotations": managed("shop", "service web")},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "prod"},
                "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "prod", "annotations": managed("shop", "statefulSet db")},
                "spec": {"serviceName": "db", "template": {"metadata": {"labels": {"app": "db"}}}}}),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "db", "namespace": "prod"},
                "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "report", "namespace": "batch"},
                "spec": {"schedule": "0 * * * *"}}),
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "report-28000000", "namespace": "batch",
                    "ownerReferences": owner("batch/v1", "CronJob", "report")}}),
            pod(
                "report-28000000-q8w2e",
                "batch",
                owner("batch/v1", "Job", "report-28000000"),
                json!({}),
            ),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "db-creds", "namespace": "prod"},
                "data": {"password": "aHVudGVyMg=="}}),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "canary", "namespace": "prod"},
                "spec": {"replicas": 1}}),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "canary-7f9c", "namespace": "prod",
                    "ownerReferences": owner("argoproj.io/v1alpha1", "Rollout", "canary")},
                "spec": {"template": {"metadata": {"labels": {"app": "canary"}}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "legacy", "namespace": "prod",
                    "annotations": {"caching.spinnaker.io/ignore": "true"}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "prod"}, "data": {"a": "b"}}),
        ]
    }

    fn options() -> CacheOptions {
        let kinds = [
            "deployment",
            "replicaSet",
            "pod",
            "service",
            "ingress",
            "statefulSet",
            "job",
            "cronJob",
            "secret",
            "Rollout.argoproj.io",
        ];
        CacheOptions {
            kinds: KindFilter::Only(kinds.iter().map(|k| k.to_string()).collect()),
            spinnaker_kinds: [(
                "Rollout.argoproj.io".to_string(),
                SpinnakerKind::ServerGroupManagers,
            )]
            .into(),
            ..CacheOptions::default()
        }
    }

    fn parse_all(values: Vec<Value>) -> Vec<Resource> {
        values
            .into_iter()
            .map(|v| Resource::parse(v).unwrap())
            .collect()
    }

    fn infra(kind: &str, ns: &str, name: &str) -> String {
        format!("kubernetes.v2:infrastructure:{kind}:{ACCOUNT}:{ns}:{name}")
    }

    fn by_id(rows: &[CacheRow]) -> BTreeMap<String, Value> {
        rows.iter()
            .map(|row| (row.id.clone(), serde_json::from_str(&row.body).unwrap()))
            .collect()
    }

    fn related(bodies: &BTreeMap<String, Value>, id: &str, group: &str) -> Vec<String> {
        bodies[id]["relationships"][group]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn realistic_account_rows() {
        let rows = build_account(ACCOUNT, &parse_all(realistic_account()), &options(), NOW);
        let ids: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.type_name.as_str(), r.id.as_str()))
            .collect();
        let app = "kubernetes.v2:logical:applications:shop".to_string();
        let cluster = |name: &str| format!("kubernetes.v2:logical:clusters:{ACCOUNT}:shop:{name}");
        let expected = [
            (
                "Rollout.argoproj.io",
                infra("Rollout.argoproj.io", "prod", "canary"),
            ),
            ("applications", app.clone()),
            (
                "applications",
                "kubernetes.v2:logical:applications:canary".to_string(),
            ),
            (
                "applications",
                "kubernetes.v2:logical:applications:db".to_string(),
            ),
            (
                "applications",
                "kubernetes.v2:logical:applications:report".to_string(),
            ),
            (
                "applications",
                "kubernetes.v2:logical:applications:web".to_string(),
            ),
            (
                "clusters",
                format!("kubernetes.v2:logical:clusters:{ACCOUNT}:canary:canary"),
            ),
            (
                "clusters",
                format!("kubernetes.v2:logical:clusters:{ACCOUNT}:canary:canary-7f9c"),
            ),
            (
                "clusters",
                format!("kubernetes.v2:logical:clusters:{ACCOUNT}:report:report"),
            ),
            (
                "clusters",
                format!("kubernetes.v2:logical:clusters:{ACCOUNT}:report:report-28000000"),
            ),
            ("clusters", cluster("deployment web")),
            ("clusters", cluster("statefulSet db")),
            ("cronJob", infra("cronJob", "batch", "report")),
            ("deployment", infra("deployment", "prod", "web")),
            ("ingress", infra("ingress", "prod", "web")),
            ("job", infra("job", "batch", "report-28000000")),
            ("pod", infra("pod", "batch", "report-28000000-q8w2e")),
            ("pod", infra("pod", "prod", "web-6d4cf56db6-b9q4z")),
            ("pod", infra("pod", "prod", "web-6d4cf56db6-x7k2p")),
            ("replicaSet", infra("replicaSet", "prod", "canary-7f9c")),
            ("replicaSet", infra("replicaSet", "prod", "web-6d4cf56db6")),
            ("secret", infra("secret", "prod", "db-creds")),
            ("service", infra("service", "prod", "db")),
            ("service", infra("service", "prod", "web")),
            ("statefulSet", infra("statefulSet", "prod", "db")),
        ];
        let mut expected: Vec<(&str, &str)> =
            expected.iter().map(|(t, id)| (*t, id.as_str())).collect();
        expected.sort();
        assert_eq!(ids, expected);

        let bodies = by_id(&rows);
        let rs = infra("replicaSet", "prod", "web-6d4cf56db6");
        let deployment = infra("deployment", "prod", "web");
        let service = infra("service", "prod", "web");
        let pods = [
            infra("pod", "prod", "web-6d4cf56db6-b9q4z"),
            infra("pod", "prod", "web-6d4cf56db6-x7k2p"),
        ];
        // Both directions of every edge.
        assert_eq!(related(&bodies, &deployment, "replicaSet"), [rs.as_str()]);
        assert_eq!(related(&bodies, &rs, "deployment"), [deployment.as_str()]);
        assert_eq!(related(&bodies, &rs, "pod"), pods);
        assert_eq!(related(&bodies, &pods[0], "replicaSet"), [rs.as_str()]);
        assert_eq!(related(&bodies, &service, "replicaSet"), [rs.as_str()]);
        assert_eq!(related(&bodies, &rs, "service"), [service.as_str()]);
        let ingress = infra("ingress", "prod", "web");
        assert_eq!(related(&bodies, &ingress, "service"), [service.as_str()]);
        assert_eq!(related(&bodies, &service, "ingress"), [ingress.as_str()]);
        let sts = infra("statefulSet", "prod", "db");
        let db = infra("service", "prod", "db");
        assert_eq!(related(&bodies, &sts, "service"), [db.as_str()]);
        assert_eq!(related(&bodies, &db, "statefulSet"), [sts.as_str()]);
        assert_eq!(bodies[&db]["relationships"].get("replicaSet"), None);
        let job = infra("job", "batch", "report-28000000");
        let cron = infra("cronJob", "batch", "report");
        assert_eq!(related(&bodies, &job, "cronJob"), [cron.as_str()]);
        assert_eq!(related(&bodies, &cron, "job"), [job.as_str()]);
        assert_eq!(
            related(&bodies, &job, "pod"),
            [infra("pod", "batch", "report-28000000-q8w2e")]
        );
        let rollout = infra("Rollout.argoproj.io", "prod", "canary");
        let canary_rs = infra("replicaSet", "prod", "canary-7f9c");
        assert_eq!(
            related(&bodies, &canary_rs, "Rollout.argoproj.io"),
            [rollout.as_str()]
        );
        assert_eq!(
            related(&bodies, &rollout, "replicaSet"),
            [canary_rs.as_str()]
        );

        // Logical rows list what links to them; pods and ingresses without an app do not.
        assert_eq!(
            related(&bodies, &app, "clusters"),
            [cluster("deployment web"), cluster("statefulSet db")]
        );
        assert_eq!(related(&bodies, &app, "replicaSet"), [rs.as_str()]);
        assert_eq!(related(&bodies, &app, "service"), [service.as_str()]);
        assert!(related(&bodies, &app, "pod").is_empty());
        assert_eq!(
            related(&bodies, &cluster("deployment web"), "applications"),
            [app.as_str()]
        );
        assert_eq!(
            related(&bodies, &cluster("deployment web"), "deployment"),
            [deployment.as_str()]
        );
        assert_eq!(
            bodies[&app]["attributes"],
            json!({"name": "shop", "cacheExpiry": NOW + 600_000})
        );
        assert_eq!(
            bodies[&cluster("deployment web")]["attributes"]["name"],
            "deployment web"
        );

        // Monikers, the secret's data, the ignored and unlisted objects.
        assert_eq!(
            bodies[&pods[0]]["attributes"]["moniker"],
            json!({"app": "shop", "cluster": "deployment web"})
        );
        assert_eq!(
            bodies[&job]["attributes"]["moniker"],
            json!({"app": "report", "cluster": "report-28000000"})
        );
        assert_eq!(
            bodies[&ingress]["attributes"]["moniker"],
            json!({"app": "web", "cluster": "web"})
        );
        let secret = &bodies[&infra("secret", "prod", "db-creds")]["attributes"];
        assert_eq!(secret["manifest"].get("data"), None);
        assert_eq!(secret["kind"], "secret");
        assert!(!bodies.contains_key(&infra("deployment", "prod", "legacy")));
        assert!(!bodies.contains_key(&infra("configMap", "prod", "settings")));
        for row in &rows {
            assert_eq!(row.body_hash, crate::cache::body::body_hash(&row.body));
        }

        // The exact body of one ReplicaSet row.
        let manifest = concat!(
            r#"{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"annotations":{"#,
            r#""deployment.kubernetes.io/revision":"3","moniker.spinnaker.io/application":"shop","#,
            r#""moniker.spinnaker.io/cluster":"deployment web"},"#,
            r#""labels":{"app":"web","pod-template-hash":"6d4cf56db6"},"name":"web-6d4cf56db6","#,
            r#""namespace":"prod","ownerReferences":[{"apiVersion":"apps/v1","controller":true,"#,
            r#""kind":"Deployment","name":"web","uid":"d-1"}],"uid":"rs-1"},"#,
            r#""spec":{"replicas":2,"selector":{"matchLabels":{"app":"web","pod-template-hash":"6d4cf56db6"}},"#,
            r#""template":{"metadata":{"labels":{"app":"web","pod-template-hash":"6d4cf56db6"}},"#,
            r#""spec":{"containers":[{"image":"nginx:1.27","name":"web"}]}}},"#,
            r#""status":{"readyReplicas":2,"replicas":2}}"#
        );
        let expected_body = format!(
            concat!(
                r#"{{"id":"kubernetes.v2:infrastructure:replicaSet:prod-east:prod:web-6d4cf56db6","ttlSeconds":-1,"#,
                r#""attributes":{{"kind":"replicaSet","apiVersion":"apps/v1","name":"web-6d4cf56db6","#,
                r#""namespace":"prod","fullResourceName":"replicaSet web-6d4cf56db6","manifest":{},"#,
                r#""moniker":{{"app":"shop","cluster":"deployment web","sequence":3}}}},"#,
                r#""relationships":{{"applications":["kubernetes.v2:logical:applications:shop"],"#,
                r#""clusters":["kubernetes.v2:logical:clusters:prod-east:shop:deployment web"],"#,
                r#""deployment":["kubernetes.v2:infrastructure:deployment:prod-east:prod:web"],"#,
                r#""pod":["kubernetes.v2:infrastructure:pod:prod-east:prod:web-6d4cf56db6-b9q4z","#,
                r#""kubernetes.v2:infrastructure:pod:prod-east:prod:web-6d4cf56db6-x7k2p"],"#,
                r#""service":["kubernetes.v2:infrastructure:service:prod-east:prod:web"]}}}}"#
            ),
            manifest
        );
        let row = rows.iter().find(|r| r.id == rs).unwrap();
        assert_eq!(row.body, expected_body);
        assert_eq!(row.body_hash, crate::cache::body::body_hash(&expected_body));
    }

    #[test]
    fn default_options_skip_configs_and_custom_kinds() {
        let rows = build_account(
            ACCOUNT,
            &parse_all(realistic_account()),
            &CacheOptions::default(),
            NOW,
        );
        let types: BTreeSet<&str> = rows.iter().map(|r| r.type_name.as_str()).collect();
        assert!(!types.contains("secret"));
        assert!(!types.contains("Rollout.argoproj.io"));
        // The replica set still lists its (uncached) Rollout owner as a dangling key.
        let bodies = by_id(&rows);
        assert_eq!(
            related(
                &bodies,
                &infra("replicaSet", "prod", "canary-7f9c"),
                "Rollout.argoproj.io"
            ),
            [infra("Rollout.argoproj.io", "prod", "canary")]
        );
    }

    /// A small random object from a fixed vocabulary, so that names, owners and labels collide.
    fn arbitrary_manifest() -> impl Strategy<Value = Value> {
        let kinds = prop::sample::select(vec![
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("v1", "Pod"),
            ("v1", "Service"),
            ("networking.k8s.io/v1", "Ingress"),
            ("extensions/v1beta1", "Ingress"),
            ("apps/v1", "StatefulSet"),
            ("batch/v1", "Job"),
            ("batch/v1", "CronJob"),
            ("argoproj.io/v1alpha1", "Rollout"),
        ]);
        let name = || prop::sample::select(vec!["web", "web-v001", "db", "api-prod-v002", "x"]);
        let label = || {
            prop::collection::btree_map(
                prop::sample::select(vec!["app", "tier"]),
                prop::sample::select(vec!["web", "db"]),
                0..3,
            )
        };
        (
            kinds,
            name(),
            prop::sample::select(vec!["a", "b"]),
            prop::option::of((
                prop::sample::select(vec!["ReplicaSet", "Deployment", "Job"]),
                name(),
            )),
            label(),
            label(),
            name(),
            any::<bool>(),
            prop::option::of(prop::sample::select(vec!["shop", ""])),
            0..3u8,
        )
            .prop_map(
                |(
                    (api, kind),
                    name,
                    ns,
                    owner,
                    selector,
                    template,
                    service,
                    ignored,
                    app,
                    generation,
                )| {
                    let mut annotations = serde_json::Map::new();
                    if ignored {
                        annotations.insert("caching.spinnaker.io/ignore".into(), json!("true"));
                    }
                    if let Some(app) = app {
                        annotations.insert("moniker.spinnaker.io/application".into(), json!(app));
                    }
                    let owners = owner.map_or(json!([]), |(kind, name)| {
                        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name}])
                    });
                    json!({
                        "apiVersion": api, "kind": kind,
                        "metadata": {"name": name, "namespace": ns, "generation": generation,
                            "annotations": annotations, "ownerReferences": owners},
                        "spec": {
                            "selector": selector, "serviceName": service,
                            "template": {"metadata": {"labels": template}},
                            "backend": {"serviceName": service},
                            "defaultBackend": {"service": {"name": service}},
                        }
                    })
                },
            )
    }

    fn arbitrary_account() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
        prop::collection::vec(arbitrary_manifest(), 0..14)
            .prop_flat_map(|manifests| (Just(manifests.clone()), Just(manifests).prop_shuffle()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn relationships_are_symmetric_and_order_free((manifests, shuffled) in arbitrary_account(),
                                                      cache_all in any::<bool>()) {
            let options = CacheOptions {
                kinds: KindFilter::All,
                cache_all_application_relationships: cache_all,
                ..CacheOptions::default()
            };
            let rows = build_account(ACCOUNT, &parse_all(manifests), &options, NOW);
            let bodies = by_id(&rows);
            for (id, body) in &bodies {
                for (_, keys) in body["relationships"].as_object().unwrap() {
                    for key in keys.as_array().unwrap() {
                        let key = key.as_str().unwrap();
                        if let Some(other) = bodies.get(key) {
                            let group = CacheKey::parse(id).unwrap();
                            let listed = other["relationships"][group.group()]
                                .as_array()
                                .is_some_and(|l| l.iter().any(|k| k == id.as_str()));
                            prop_assert!(listed, "{key} does not list {id}");
                        }
                    }
                }
            }
            let again = build_account(ACCOUNT, &parse_all(shuffled), &options, NOW);
            prop_assert_eq!(rows, again);
        }
    }
}
