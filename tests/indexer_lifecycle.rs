//! The indexer's trust and lifecycle rules (on SQLite; the SQL paths are covered on every
//! database by tests/indexer_db.rs): the golden fixtures load as the reference builder says and
//! the decommissioned one is evicted; clusters go STALE and EVICTED by heartbeat age; a changed
//! identity is refused until allowed; the claim policy and account collisions refuse claims.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use outpost::agent::redact::Redactor;
use outpost::agent::ship::{ShipOptions, Shipper};
use outpost::agent::state::{Scope, State, kind_name};
use outpost::agent::watch::redacted_entry;
use outpost::cache::{self, CacheOptions, Resource};
use outpost::format::{ClusterName, Identity};
use outpost::indexer::db::text;
use outpost::indexer::{
    ClaimPolicy, ClusterState, Database, Graces, IndexOptions, Indexer, Outcome,
};
use outpost::store::Store;
use serde_json::{Value, json};

mod common;

async fn sqlite() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let database = Database::connect(&url, None).await.unwrap();
    (dir, database)
}

/// Rows of `account` by (type, id), bodies without cacheExpiry.
async fn rows(database: &Database, account: &str) -> BTreeMap<(String, String), Value> {
    let agent = format!("{account}/KubernetesCoreCachingAgent[1/1]");
    let mut rows = BTreeMap::new();
    let tables = sqlx::query("SELECT name AS n FROM sqlite_master WHERE type = 'table' AND name LIKE 'cats_v1_%' AND name NOT LIKE '%_rel'")
        .fetch_all(database.pool())
        .await
        .unwrap();
    for table in tables {
        let table = text(&table, "n").unwrap();
        let type_name = table.trim_start_matches("cats_v1_").to_string();
        for row in sqlx::query(&format!("SELECT id, body FROM {table} WHERE agent = ?"))
            .bind(&agent)
            .fetch_all(database.pool())
            .await
            .unwrap()
        {
            let mut body: Value = serde_json::from_str(&text(&row, "body").unwrap()).unwrap();
            if let Some(a) = body["attributes"].as_object_mut() {
                a.remove("cacheExpiry");
            }
            rows.insert((type_name.clone(), text(&row, "id").unwrap()), body);
        }
    }
    rows
}

async fn expected(
    store: &Store,
    cluster: &ClusterName,
    account: &str,
) -> BTreeMap<(String, String), Value> {
    let (_, objects) = common::replay(store, cluster).await.unwrap();
    let resources: Vec<Resource> = objects
        .into_values()
        .map(|(_, o)| Resource::parse(o).unwrap())
        .collect();
    cache::build_account(account, &resources, &CacheOptions::default(), 0)
        .into_iter()
        .map(|row| {
            let mut body: Value = serde_json::from_str(&row.body).unwrap();
            if let Some(a) = body["attributes"].as_object_mut() {
                a.remove("cacheExpiry");
            }
            ((cache::names::sanitize_type(&row.type_name), row.id), body)
        })
        .collect()
}

fn long_graces() -> Graces {
    Graces {
        stale_after: StdDuration::from_secs(100 * 365 * 86_400),
        evict_after: StdDuration::from_secs(200 * 365 * 86_400),
    }
}

#[tokio::test]
async fn the_golden_fixtures_load_and_the_decommissioned_cluster_is_evicted() {
    let bucket = format!("file://{}/fixtures/v1/bucket", env!("CARGO_MANIFEST_DIR"));
    let store = Store::open(&bucket).await.unwrap();
    let (_dir, database) = sqlite().await;
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions {
            graces: long_graces(),
            // fixture-prod asks for account prod-eu, which only a policy can grant.
            policy: outpost::indexer::ClaimPolicy::parse(
                "policy.yaml",
                "clusters:\n  fixture-prod: {accounts: [prod-eu]}\n  '*': {accounts: ['*']}\n",
            )
            .unwrap(),
            ..IndexOptions::default()
        },
    };
    let report = indexer.run_once(None).await.unwrap();
    let outcomes: BTreeMap<String, String> = report
        .clusters
        .iter()
        .map(|c| (c.cluster.clone(), format!("{:?}", c.result)))
        .collect();
    assert!(outcomes["fixture-prod"].contains("Applied"), "{outcomes:?}");
    assert!(
        outcomes["fixture-rolled"].contains("Applied"),
        "{outcomes:?}"
    );
    assert!(
        outcomes["fixture-retired"].contains("Evicted"),
        "{outcomes:?}"
    );
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    let account = |name: &str| {
        records
            .iter()
            .find(|r| r.cluster == name)
            .map(|r| r.account.clone())
            .unwrap_or_else(|| name.to_string())
    };
    // fixture-prod asks for account prod-eu in its identity.json.
    assert_eq!(account("fixture-prod"), "prod-eu");
    for name in ["fixture-prod", "fixture-rolled"] {
        let cluster = ClusterName::new(name).unwrap();
        let stored = rows(&database, &account(name)).await;
        assert!(stored.len() > 50, "{name}: {} rows", stored.len());
        assert_eq!(
            stored,
            expected(&store, &cluster, &account(name)).await,
            "{name}"
        );
    }
    assert!(
        rows(&database, &account("fixture-retired"))
            .await
            .is_empty()
    );
}

/// A one-object cluster shipped at `at`, with an identity.
async fn ship_cluster(
    store: &Store,
    name: &str,
    at: chrono::DateTime<Utc>,
    uid: &str,
    account: Option<&str>,
    replicas: u32,
) {
    let cluster = ClusterName::new(name).unwrap();
    let mut identity = Identity::new(cluster.clone(), at);
    identity.kube_system_uid = Some(uid.to_string());
    identity.account.name = account.map(str::to_string);
    store
        .put_overwrite(
            &store.layout().identity(&cluster),
            identity.to_json().unwrap().into(),
        )
        .await
        .unwrap();
    let redactor = Redactor::new(&[9; 32], vec![]).unwrap();
    let mut shipper = Shipper::new(
        store.clone(),
        cluster,
        ShipOptions {
            redaction: redactor.rule_ids(),
            ..ShipOptions::default()
        },
    );
    let mut state = State::new();
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "resourceVersion": replicas.to_string()},
        "spec": {"replicas": replicas}});
    let scope = Scope {
        kind: kind_name("apps/v1", "Deployment"),
        namespace: None,
    };
    state.apply(redacted_entry(object, &scope, &redactor).unwrap());
    shipper.tick(&mut state, at).await.unwrap();
}

#[tokio::test]
async fn silent_clusters_go_stale_then_are_evicted() {
    let store = Store::open("memory://lifecycle-age").await.unwrap();
    let (_dir, database) = sqlite().await;
    let now = Utc::now();
    ship_cluster(&store, "fresh", now, "u-fresh", None, 1).await;
    ship_cluster(
        &store,
        "quiet",
        now - Duration::hours(1),
        "u-quiet",
        None,
        1,
    )
    .await;
    ship_cluster(&store, "gone", now - Duration::hours(25), "u-gone", None, 1).await;
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    };
    let report = indexer.run_once(None).await.unwrap();
    let state = |name: &str| -> String {
        format!(
            "{:?}",
            report
                .clusters
                .iter()
                .find(|c| c.cluster == name)
                .unwrap()
                .result
        )
    };
    assert!(state("fresh").contains("Active"), "{}", state("fresh"));
    assert!(state("quiet").contains("Stale"), "{}", state("quiet"));
    assert!(
        rows(&database, "quiet").await.len() > 1,
        "a stale cluster keeps its rows"
    );
    assert!(rows(&database, "gone").await.is_empty());
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    let states: BTreeMap<&str, ClusterState> = records
        .iter()
        .map(|r| (r.cluster.as_str(), r.state))
        .collect();
    assert_eq!(states["fresh"], ClusterState::Active);
    assert_eq!(states["quiet"], ClusterState::Stale);

    // Later, with a shorter eviction grace: the quiet cluster (head unchanged) is evicted.
    let later = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions {
            graces: Graces {
                stale_after: StdDuration::from_secs(60),
                evict_after: StdDuration::from_secs(1800),
            },
            ..IndexOptions::default()
        },
    };
    let report = later
        .run_once(Some(&[ClusterName::new("quiet").unwrap()]))
        .await
        .unwrap();
    assert!(
        matches!(report.clusters[0].result, Ok(Outcome::Evicted { rows_deleted, .. }) if rows_deleted > 1),
        "{:?}",
        report.clusters[0].result
    );
    assert!(rows(&database, "quiet").await.is_empty());
    assert!(!rows(&database, "fresh").await.is_empty());
}

#[tokio::test]
async fn a_changed_identity_is_refused_until_allowed() {
    let store = Store::open("memory://lifecycle-identity").await.unwrap();
    let (_dir, database) = sqlite().await;
    let now = Utc::now();
    ship_cluster(
        &store,
        "prod",
        now - Duration::minutes(20),
        "uid-original",
        None,
        1,
    )
    .await;
    let indexer = |allow: &[&str]| Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions {
            allow_identity_change: allow.iter().map(|s| s.to_string()).collect(),
            ..IndexOptions::default()
        },
    };
    let cluster = ClusterName::new("prod").unwrap();
    assert!(matches!(
        indexer(&[]).index_cluster(&cluster).await.unwrap(),
        Outcome::Applied { .. }
    ));
    let before = rows(&database, "prod").await;

    // Another cluster claims the name: a new kube-system UID, other objects.
    // (Its agent takes the head over once the original writer has been silent past the grace;
    // both heartbeats are in the past, as one in the future would be a fault.)
    ship_cluster(
        &store,
        "prod",
        now - Duration::seconds(30),
        "uid-impostor",
        None,
        7,
    )
    .await;
    match indexer(&[]).index_cluster(&cluster).await.unwrap() {
        Outcome::Refused { reason } => {
            assert!(
                reason.contains("uid-impostor") && reason.contains("uid-original"),
                "{reason}"
            );
            assert!(reason.contains("--allow-identity-change prod"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rows(&database, "prod").await, before, "rows untouched");

    // Allowed: applied, and the new identity is pinned.
    assert!(matches!(
        indexer(&["prod"]).index_cluster(&cluster).await.unwrap(),
        Outcome::Applied { .. }
    ));
    assert_eq!(
        rows(&database, "prod").await,
        expected(&store, &cluster, "prod").await
    );
    let records = outpost::indexer::checkpoint::load_all(&database)
        .await
        .unwrap();
    assert_eq!(records[0].kube_system_uid.as_deref(), Some("uid-impostor"));
    assert_eq!(records[0].state, ClusterState::Active);
}

#[tokio::test]
async fn the_claim_policy_and_account_collisions_refuse_claims() {
    let store = Store::open("memory://lifecycle-policy").await.unwrap();
    let (_dir, database) = sqlite().await;
    let now = Utc::now() - Duration::seconds(10);
    ship_cluster(&store, "eu-1", now, "u1", Some("team-b"), 1).await;
    ship_cluster(&store, "eu-2", now, "u2", Some("team-a"), 1).await;
    ship_cluster(&store, "eu-3", now, "u3", Some("team-a"), 1).await;
    let policy = ClaimPolicy::parse(
        "policy.yaml",
        "clusters:\n  eu-1: {accounts: [team-a]}\n  eu-2: {accounts: [team-a]}\n  eu-3: {accounts: ['*']}\n",
    )
    .unwrap();
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions {
            policy,
            ..IndexOptions::default()
        },
    };
    let report = indexer.run_once(None).await.unwrap();
    let result = |name: &str| {
        report
            .clusters
            .iter()
            .find(|c| c.cluster == name)
            .map(|c| format!("{:?}", c.result))
            .unwrap()
    };
    assert!(
        result("eu-1").contains("grants only team-a"),
        "{}",
        result("eu-1")
    );
    assert!(result("eu-2").contains("Applied"), "{}", result("eu-2"));
    assert!(
        result("eu-3").contains("account team-a is already claimed by cluster eu-2"),
        "{}",
        result("eu-3")
    );
    assert!(!rows(&database, "team-a").await.is_empty());
    assert!(rows(&database, "team-b").await.is_empty());
}
