//! What an unmodified Clouddriver reads from the tables the indexer writes, on SQLite, PostgreSQL
//! and MariaDB: a reader issuing Clouddriver's own SQL (contract §5: `filterIdentifiers` as LIKE,
//! `getAll` as the UNION over the resource and `_rel` tables, rows of one id from several agents
//! merged) follows application → clusters → server groups → pods and load balancers, and finds
//! relationships in both directions, monikers, and the tables under the names Clouddriver
//! computes (lower case on PostgreSQL, murmur3-shortened past the length limit).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use outpost::agent::redact::Redactor;
use outpost::agent::ship::{ShipOptions, Shipper};
use outpost::agent::state::{Scope, State, kind_name};
use outpost::agent::watch::redacted_entry;
use outpost::cache::{Dialect, KindFilter};
use outpost::format::ClusterName;
use outpost::indexer::db::text;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use serde_json::{Value, json};

mod common;

const LONG_KIND: &str = "VeryLongCustomResourceKindName";
const LONG_GROUP: &str = "subgroup.example.org";

fn meta(name: &str, extra: Value) -> Value {
    let mut metadata = json!({"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": "1"});
    if let (Some(m), Some(e)) = (metadata.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    metadata
}

fn spinnaker(app: &str, cluster: &str) -> Value {
    json!({"moniker.spinnaker.io/application": app, "moniker.spinnaker.io/cluster": cluster})
}

/// One account's objects: a Spinnaker-deployed app `shop` (annotations) and a frigga-named
/// `legacy-v002` ReplicaSet.
fn objects() -> Vec<Value> {
    let labels = json!({"app": "web"});
    let template = json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}});
    vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": meta("web", json!({"annotations": spinnaker("shop", "deployment web")})),
               "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": meta("web-7d4b9c", json!({
                   "annotations": {"moniker.spinnaker.io/application": "shop", "moniker.spinnaker.io/cluster": "deployment web", "deployment.kubernetes.io/revision": "3"},
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web"}]})),
               "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template}}),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": meta("web-7d4b9c-x1", json!({"labels": labels,
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "uid-web-7d4b9c"}]})),
               "spec": template["spec"], "status": {"phase": "Running", "podIP": "10.1.2.3"}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": meta("web", json!({"annotations": {"moniker.spinnaker.io/application": "shop"}})),
               "spec": {"selector": labels, "ports": [{"port": 80}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": meta("web", json!({"annotations": {"moniker.spinnaker.io/application": "shop"}})),
               "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": meta("legacy-v002", json!({})),
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
                        "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": meta("deny-all", json!({"annotations": {"moniker.spinnaker.io/application": "shop"}})),
               "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        json!({"apiVersion": format!("{LONG_GROUP}/v1"), "kind": LONG_KIND,
               "metadata": meta("gadget", json!({"annotations": {"moniker.spinnaker.io/application": "shop"}})),
               "spec": {"size": 1}}),
    ]
}

async fn ship(store: &Store, cluster: &str, objects: Vec<Value>) {
    let name = ClusterName::new(cluster).unwrap();
    let redactor = Redactor::new(&[5; 32], vec![]).unwrap();
    let mut shipper = Shipper::new(
        store.clone(),
        name,
        ShipOptions {
            redaction: redactor.rule_ids(),
            ..ShipOptions::default()
        },
    );
    let mut state = State::new();
    for object in objects {
        let scope = Scope {
            kind: kind_name(
                object["apiVersion"].as_str().unwrap(),
                object["kind"].as_str().unwrap(),
            ),
            namespace: None,
        };
        state.apply(redacted_entry(object, &scope, &redactor).unwrap());
    }
    shipper
        .tick(&mut state, Utc::now() - Duration::seconds(5))
        .await
        .unwrap();
}

/// A cache item as Clouddriver's `SqlCache` returns it after merging.
#[derive(Debug, Default)]
struct Item {
    attributes: serde_json::Map<String, Value>,
    relationships: BTreeMap<String, BTreeSet<String>>,
}

/// Clouddriver's reads, with its SQL text (jOOQ renders `?` binds; identifiers unquoted).
struct Reader<'a> {
    database: &'a Database,
}

impl Reader<'_> {
    fn table(&self, type_name: &str) -> (String, String) {
        let t = self.database.cache_tables(type_name).unwrap();
        (t.resource, t.rel)
    }

    /// `filterIdentifiers(type, glob)` on the LIKE path.
    async fn filter_identifiers(&self, type_name: &str, glob: &str) -> BTreeSet<String> {
        let (table, _) = self.table(type_name);
        let pattern = glob.replace('*', "%").replace('_', "\\_");
        let sql = self
            .database
            .sql(&format!("SELECT id FROM {table} WHERE id LIKE ?"));
        sqlx::query(&sql)
            .bind(pattern)
            .fetch_all(self.database.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| text(row, "id").unwrap())
            .collect()
    }

    /// `getAll(type, ids)` with relationships: the UNION ALL query and `mergeDataAndRelationships`.
    async fn get_all(&self, type_name: &str, ids: &BTreeSet<String>) -> BTreeMap<String, Item> {
        let mut items: BTreeMap<String, Item> = BTreeMap::new();
        if ids.is_empty() {
            return items;
        }
        let (table, rel) = self.table(type_name);
        let list = vec!["?"; ids.len()].join(",");
        let sql = self.database.sql(&format!(
            "SELECT body AS body, NULL AS id, NULL AS rel_id, NULL AS rel_type FROM {table} WHERE ID IN ({list}) UNION ALL SELECT NULL AS body, id AS id, rel_id AS rel_id, rel_type AS rel_type FROM {rel} WHERE ID IN ({list})"
        ));
        let mut query = sqlx::query(&sql);
        for id in ids.iter().chain(ids.iter()) {
            query = query.bind(id);
        }
        for row in query.fetch_all(self.database.pool()).await.unwrap() {
            let Some(body) = outpost::indexer::db::opt_text(&row, "body").unwrap() else {
                // A `_rel` row: rel_type → rel_id (we never write any).
                let id = text(&row, "id").unwrap();
                let item = items.entry(id).or_default();
                item.relationships
                    .entry(text(&row, "rel_type").unwrap())
                    .or_default()
                    .insert(text(&row, "rel_id").unwrap());
                continue;
            };
            let body: Value = serde_json::from_str(&body).unwrap();
            let id = body["id"].as_str().unwrap().to_string();
            let relationships = body["relationships"]
                .as_object()
                .expect("relationships must be an object");
            let item = items.entry(id).or_default();
            // The first row supplies attributes; later rows add only missing keys.
            for (k, v) in body["attributes"].as_object().unwrap() {
                item.attributes.entry(k.clone()).or_insert(v.clone());
            }
            for (group, keys) in relationships {
                let set = item.relationships.entry(group.clone()).or_default();
                for key in keys.as_array().expect("relationship values are arrays") {
                    set.insert(key.as_str().unwrap().to_string());
                }
            }
        }
        items
    }
}

fn one(set: &BTreeSet<String>) -> BTreeSet<String> {
    set.clone()
}

async fn clouddriver_reads(kind: &str) {
    let (url, _keep) = match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            (
                format!("sqlite://{}", dir.path().join("c.db").display()),
                Some(dir),
            )
        }
        _ => {
            let var = if kind == "postgres" {
                "OUTPOST_TEST_POSTGRES_URL"
            } else {
                "OUTPOST_TEST_MYSQL_URL"
            };
            let Some(base) = common::server_url(var) else {
                return;
            };
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            let name = format!("outpost_reads_{:08x}", rand::random::<u32>());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            let mut url = url::Url::parse(&base).unwrap();
            url.set_path(&format!("/{name}"));
            (url.to_string(), None)
        }
    };
    let store = Store::open(&format!("memory://reads-{:08x}", rand::random::<u32>()))
        .await
        .unwrap();
    // Two accounts deploy the same application: their application rows share an id.
    ship(&store, "reads-a", objects()).await;
    ship(&store, "reads-b", objects()).await;
    let database = Database::connect(&url, None).await.unwrap();
    let mut options = IndexOptions::default();
    options.cache.kinds = KindFilter::All;
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options,
    };
    let report = indexer.run_once(None).await.unwrap();
    assert_eq!(report.failures().count(), 0, "{report:?}");
    let reader = Reader {
        database: &database,
    };
    let dialect = database.dialect();

    // Table names as Clouddriver computes them.
    let names: Vec<String> = {
        let sql = match dialect {
            Dialect::Postgres => {
                "SELECT table_name::text AS n FROM information_schema.tables WHERE table_schema = current_schema()"
            }
            Dialect::MySql => {
                "SELECT table_name AS n FROM information_schema.tables WHERE table_schema = DATABASE()"
            }
            Dialect::Sqlite => "SELECT name AS n FROM sqlite_master WHERE type = 'table'",
        };
        sqlx::query(sql)
            .fetch_all(database.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| text(row, "n").unwrap())
            .collect()
    };
    let expected_tables: &[&str] = match dialect {
        Dialect::Postgres => &[
            "cats_v1_replicaset",
            "cats_v1_replicaset_rel",
            "cats_v1_applications",
            "cats_v1_clusters_rel",
            "cats_v1_verylongcustomresourcekindname_subgroup_example_org",
            "cats_v1_verylongcustomresourcekindname_subge3f49c4eccda7c68_rel",
        ],
        _ => &[
            "cats_v1_replicaSet",
            "cats_v1_replicaSet_rel",
            "cats_v1_applications",
            "cats_v1_clusters_rel",
            "cats_v1_VeryLongCustomResourceKindName_subgroup_example_org",
            "cats_v1_VeryLongCustomResourceKindName_subgroup_example_org_rel",
        ],
    };
    for table in expected_tables {
        assert!(
            names.iter().any(|n| n == table),
            "{kind}: no table {table} in {names:?}"
        );
    }

    // Applications view: every application with clusters, then this one's clusters.
    let all_clusters = reader
        .filter_identifiers("clusters", "kubernetes.v2:logical:clusters:*:*:*")
        .await;
    let shop_clusters = reader
        .filter_identifiers("clusters", "kubernetes.v2:logical:clusters:*:shop:*")
        .await;
    let expected_clusters: BTreeSet<String> = [
        "kubernetes.v2:logical:clusters:reads-a:shop:deployment web",
        "kubernetes.v2:logical:clusters:reads-b:shop:deployment web",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(shop_clusters, expected_clusters, "{kind}");
    assert!(all_clusters.contains("kubernetes.v2:logical:clusters:reads-a:legacy:legacy"));

    // application → clusters: one row per account, merged.
    let app_key = "kubernetes.v2:logical:applications:shop".to_string();
    let apps = reader
        .get_all("applications", &BTreeSet::from([app_key.clone()]))
        .await;
    let app = &apps[&app_key];
    assert_eq!(app.attributes["name"], "shop");
    assert_eq!(app.relationships["clusters"], expected_clusters);
    for group in ["service", "pod"] {
        assert!(app.relationships.contains_key(group), "sticky {group}");
    }
    assert!(
        app.relationships["pod"].is_empty(),
        "pods get no application link"
    );
    assert_eq!(
        app.relationships["networkPolicy"],
        BTreeSet::from([
            "kubernetes.v2:infrastructure:networkPolicy:reads-a:shop:deny-all".to_string(),
            "kubernetes.v2:infrastructure:networkPolicy:reads-b:shop:deny-all".to_string()
        ])
    );

    // cluster → server groups and manager.
    let a_cluster = "kubernetes.v2:logical:clusters:reads-a:shop:deployment web".to_string();
    let clusters = reader
        .get_all("clusters", &BTreeSet::from([a_cluster.clone()]))
        .await;
    let cluster = &clusters[&a_cluster];
    assert_eq!(cluster.attributes["name"], "deployment web");
    assert_eq!(
        cluster.relationships["applications"],
        BTreeSet::from([app_key.clone()])
    );
    let rs_key = "kubernetes.v2:infrastructure:replicaSet:reads-a:shop:web-7d4b9c".to_string();
    let deploy_key = "kubernetes.v2:infrastructure:deployment:reads-a:shop:web".to_string();
    assert_eq!(
        cluster.relationships["replicaSet"],
        BTreeSet::from([rs_key.clone()])
    );
    assert_eq!(
        cluster.relationships["deployment"],
        BTreeSet::from([deploy_key.clone()])
    );

    // server group → pods, its manager, its load balancer, and back.
    let server_groups = reader
        .get_all("replicaSet", &one(&cluster.relationships["replicaSet"]))
        .await;
    let rs = &server_groups[&rs_key];
    assert_eq!(rs.attributes["kind"], "replicaSet");
    assert_eq!(rs.attributes["apiVersion"], "apps/v1");
    assert_eq!(rs.attributes["fullResourceName"], "replicaSet web-7d4b9c");
    assert_eq!(rs.attributes["manifest"]["metadata"]["name"], "web-7d4b9c");
    assert_eq!(
        rs.attributes["moniker"],
        json!({"app": "shop", "cluster": "deployment web", "sequence": 3})
    );
    let pod_key = "kubernetes.v2:infrastructure:pod:reads-a:shop:web-7d4b9c-x1".to_string();
    let service_key = "kubernetes.v2:infrastructure:service:reads-a:shop:web".to_string();
    assert_eq!(rs.relationships["pod"], BTreeSet::from([pod_key.clone()]));
    assert_eq!(
        rs.relationships["deployment"],
        BTreeSet::from([deploy_key.clone()])
    );
    assert_eq!(
        rs.relationships["service"],
        BTreeSet::from([service_key.clone()])
    );
    assert_eq!(
        rs.relationships["clusters"],
        BTreeSet::from([a_cluster.clone()])
    );

    let pods = reader.get_all("pod", &rs.relationships["pod"]).await;
    let pod = &pods[&pod_key];
    assert_eq!(pod.attributes["manifest"]["status"]["podIP"], "10.1.2.3");
    assert_eq!(
        pod.relationships["replicaSet"],
        BTreeSet::from([rs_key.clone()])
    );
    assert!(!pod.relationships.contains_key("applications"));

    let services = reader
        .get_all("service", &rs.relationships["service"])
        .await;
    let service = &services[&service_key];
    assert_eq!(
        service.relationships["replicaSet"],
        BTreeSet::from([rs_key.clone()])
    );
    assert_eq!(
        service.relationships["ingress"],
        BTreeSet::from(["kubernetes.v2:infrastructure:ingress:reads-a:shop:web".to_string()])
    );
    assert!(
        service.relationships["pod"].is_empty(),
        "service↔replicaSet, not service↔pod"
    );

    let deployments = reader
        .get_all("deployment", &BTreeSet::from([deploy_key.clone()]))
        .await;
    assert_eq!(
        deployments[&deploy_key].relationships["replicaSet"],
        BTreeSet::from([rs_key.clone()])
    );

    // Frigga names when there are no annotations.
    let legacy = "kubernetes.v2:infrastructure:replicaSet:reads-a:shop:legacy-v002".to_string();
    let legacy_rows = reader
        .get_all("replicaSet", &BTreeSet::from([legacy.clone()]))
        .await;
    assert_eq!(
        legacy_rows[&legacy].attributes["moniker"],
        json!({"app": "legacy", "cluster": "legacy", "sequence": 2})
    );

    // The custom kind, in its shortened-name tables, found by search.
    let long_type = format!("{LONG_KIND}.{LONG_GROUP}");
    let found = reader.filter_identifiers(&long_type, "*gadget*").await;
    assert_eq!(found.len(), 2, "{kind}: {found:?}");
    let gadgets = reader.get_all(&long_type, &found).await;
    for gadget in gadgets.values() {
        assert_eq!(gadget.attributes["kind"], long_type);
    }
    database.close().await;
    if kind != "sqlite" {
        let mut admin_url = url::Url::parse(&url).unwrap();
        let name = admin_url.path().trim_start_matches('/').to_string();
        admin_url.set_path(if kind == "postgres" {
            "/postgres"
        } else {
            "/mysql"
        });
        let admin = sqlx::AnyPool::connect(admin_url.as_str()).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE {name}"))
            .execute(&admin)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clouddriver_reads_sqlite() {
    clouddriver_reads("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clouddriver_reads_postgres() {
    clouddriver_reads("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clouddriver_reads_mariadb() {
    clouddriver_reads("mysql").await;
}
