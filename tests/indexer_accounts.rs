//! Clusters become Clouddriver accounts by themselves and leave after a grace period, on every
//! database: the indexer registers each ACTIVE cluster's account (named by the template's prefix,
//! cache rows included) in the same transaction as its rows, rewrites it only when its
//! definition changes, waits for Clouddriver's tables where Clouddriver creates them, never
//! touches an account it did not create, and removes the account after the rows on eviction.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use outpost::agent::simulated::SimAgent;
use outpost::cache::Dialect;
use outpost::cache::definition::AccountTemplate;
use outpost::format::{ClusterName, Identity};
use outpost::indexer::registration;
use outpost::indexer::{ClusterState, Database, Graces, IndexOptions, Indexer, Outcome};
use outpost::sim::Churn;
use outpost::store::Store;
use outpost::test_support::sim::SimCluster;
use serde_json::{Value, json};

#[macro_use]
mod common;

use common::accounts::{account, clouddriver_tables, history};
use common::db::{expected_rows, fresh_database, stored_rows};

/// A simulated cluster with its identity in the bucket, its first ship at `started`.
async fn new_cluster(store: &Store, name: &str, seed: u64, started: DateTime<Utc>) -> SimCluster {
    let cluster = SimCluster::new(store, name, seed, 120).starting_at(started);
    cluster.write_identity(store, &format!("uid-{seed}")).await;
    cluster
}

/// The namespaces the bucket holds for `cluster`: those its objects are in and its Namespaces.
async fn reported(store: &Store, cluster: &ClusterName) -> Vec<String> {
    let (_, objects) = common::replay(store, cluster).await.expect("a chain");
    let mut namespaces = BTreeSet::new();
    for (kind, namespace, name) in objects.keys() {
        if !namespace.is_empty() {
            namespaces.insert(namespace.clone());
        }
        if kind == "Namespace" {
            namespaces.insert(name.clone());
        }
    }
    namespaces.into_iter().collect()
}

fn indexer(store: &Store, database: &Database, template: &AccountTemplate) -> Indexer {
    Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions {
            accounts: Some(template.clone()),
            ..IndexOptions::default()
        },
    }
}

/// The registration recorded for `cluster`: (account, state, reason).
async fn recorded(database: &Database, cluster: &str) -> Vec<(String, String, Option<String>)> {
    registration::recorded(database)
        .await
        .expect("registrations")
        .into_iter()
        .filter(|r| r.1 == cluster)
        .map(|r| (r.0, r.2, r.3))
        .collect()
}

/// How many cache rows, in every `cats_v1_*` table, an agent of `account` wrote.
async fn cache_rows_of(database: &Database, account: &str) -> usize {
    stored_rows(database, account).await.len()
}

async fn accounts_follow_clusters(kind: &str) {
    let Some(db) = fresh_database(kind).await else {
        return;
    };
    let store = Store::open(&format!(
        "memory://accounts-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .expect("a bucket");
    let mut database = Database::connect(&db.url, None).await.expect("a database");
    let server = database.dialect() != Dialect::Sqlite;
    let template = AccountTemplate {
        prefix: "op-".into(),
        environment: Some("prod".into()),
        ..AccountTemplate::default()
    };
    // Within the default STALE grace (15 min) to the end: heartbeats are 5 min apart.
    let start = Utc::now() - Duration::minutes(13);
    let mut eu = new_cluster(&store, "eu-1", 1, start).await;
    eu.ship_after(0).await;

    // Before Clouddriver made its tables, a server database only gets the cache rows: the
    // registration waits, and says why.
    if server {
        let outcome = indexer(&store, &database, &template)
            .index_cluster(&eu.name)
            .await
            .expect("indexed");
        assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
        let pending = recorded(&database, "eu-1").await;
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(
            (pending[0].0.as_str(), pending[0].1.as_str()),
            ("op-eu-1", "pending")
        );
        assert!(
            pending[0]
                .2
                .as_deref()
                .unwrap_or_default()
                .contains("account.storage.enabled"),
            "{pending:?}"
        );
        clouddriver_tables(&database).await;
        // A process that found the tables missing looks again only after
        // ACCOUNT_STORAGE_RECHECK: the next indexer process finds them at once.
        database = Database::connect(&db.url, None).await.expect("a database");
        eu.step(60.0, 1.0);
        eu.ship_after(15).await;
    }

    // The first index with Clouddriver's tables registers the account, named with the prefix,
    // its namespaces those the cluster reports; the cache rows carry the same name.
    let outcome = indexer(&store, &database, &template)
        .index_cluster(&eu.name)
        .await
        .expect("indexed");
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    let (body, by) = account(&database, "op-eu-1")
        .await
        .expect("an accounts row");
    assert_eq!(by, registration::MODIFIED_BY);
    let namespaces = reported(&store, &eu.name).await;
    assert!(namespaces.len() > 3, "{namespaces:?}");
    assert_eq!(
        body,
        template
            .definition("eu-1", &namespaces)
            .expect("a definition")
    );
    assert_eq!(body["environment"], "prod");
    assert_eq!(body["namespaces"], json!(namespaces));
    assert_eq!(history(&database, "op-eu-1").await.len(), 1);
    assert_eq!(
        recorded(&database, "eu-1").await,
        vec![("op-eu-1".to_string(), "registered".to_string(), None)]
    );
    assert_eq!(
        stored_rows(&database, "op-eu-1").await,
        expected_rows(&store, &eu.name, "op-eu-1").await,
        "the cache rows are the prefixed account's"
    );
    assert_eq!(cache_rows_of(&database, "eu-1").await, 0);

    // A heartbeat (nothing changed) writes nothing to Clouddriver's tables.
    eu.ship_after(5 * 60 + 1).await;
    indexer(&store, &database, &template)
        .index_cluster(&eu.name)
        .await
        .expect("indexed");
    assert_eq!(
        history(&database, "op-eu-1").await.len(),
        1,
        "no history row"
    );
    assert_eq!(
        account(&database, "op-eu-1").await.map(|a| a.0),
        Some(body.clone())
    );

    // A second cluster appears while the first keeps working.
    let mut us = new_cluster(&store, "us-1", 2, start).await;
    us.ship_after(0).await;
    eu.step(60.0, 1.0);
    eu.ship_after(15).await;
    let report = indexer(&store, &database, &template)
        .run_once(None)
        .await
        .expect("a run");
    common::db::assert_no_failures(&report, "two clusters");
    assert!(account(&database, "op-us-1").await.is_some());
    // Its namespaces may have moved with the churn; a change of namespaces alone waits until
    // the last write is NAMESPACES_SETTLE_MS old.
    assert_eq!(
        account(&database, "op-eu-1").await.map(|a| a.0),
        Some(body.clone())
    );
    assert_eq!(history(&database, "op-eu-1").await.len(), 1);

    // A changed template changes the account once, with a history row.
    let changed = AccountTemplate {
        environment: Some("staging".into()),
        ..template.clone()
    };
    let before = history(&database, "op-eu-1").await.len();
    eu.ship_after(5 * 60 + 1).await;
    indexer(&store, &database, &changed)
        .index_cluster(&eu.name)
        .await
        .expect("indexed");
    let (body, _) = account(&database, "op-eu-1")
        .await
        .expect("an accounts row");
    assert_eq!(body["environment"], "staging");
    assert_eq!(body["namespaces"], json!(reported(&store, &eu.name).await));
    let after = history(&database, "op-eu-1").await;
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last().and_then(|h| h.2.clone()), Some(body));

    // An account Outpost did not create is left alone, and so are its cache rows' names: the
    // cluster is refused, the conflict shown.
    let static_body = json!({"type": "kubernetes", "name": "op-static-1", "context": "admin"});
    sqlx::query(&database.sql(&format!(
        "INSERT INTO accounts (id, type, body, created_at, last_modified_at, last_modified_by) VALUES (?, 'kubernetes', {}, 1, 1, 'admin')",
        if database.dialect() == Dialect::Postgres { "CAST(? AS JSONB)" } else { "?" }
    )))
    .bind("op-static-1")
    .bind(static_body.to_string())
    .execute(database.pool())
    .await
    .expect("a static account");
    let mut squatter = new_cluster(&store, "static-1", 3, start).await;
    squatter.ship_after(0).await;
    let outcome = indexer(&store, &database, &template)
        .index_cluster(&squatter.name)
        .await
        .expect("indexed");
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("did not create")),
        "{outcome:?}"
    );
    assert_eq!(
        account(&database, "op-static-1").await,
        Some((static_body.clone(), "admin".to_string()))
    );
    assert_eq!(cache_rows_of(&database, "op-static-1").await, 0);
    let conflict = recorded(&database, "static-1").await;
    assert_eq!(conflict.len(), 1, "{conflict:?}");
    assert_eq!(conflict[0].1, "conflict");

    // Decommissioning removes every cache row of the account, then the account (with a
    // tombstone); the other account's rows of the same applications stay.
    let applications = |rows: &common::db::Rows| -> BTreeSet<String> {
        rows.keys()
            .filter(|(type_name, _)| type_name == "applications")
            .map(|(_, id)| id.clone())
            .collect()
    };
    let shared: BTreeSet<String> = applications(&stored_rows(&database, "op-eu-1").await)
        .intersection(&applications(&stored_rows(&database, "op-us-1").await))
        .cloned()
        .collect();
    assert!(!shared.is_empty(), "both clusters hold some application");
    store
        .put_overwrite(
            &store.layout().decommissioned(&eu.name),
            br#"{"format":"outpost.decommissioned/v1"}"#.to_vec().into(),
        )
        .await
        .expect("decommissioned.json written");
    let outcome = indexer(&store, &database, &template)
        .index_cluster(&eu.name)
        .await
        .expect("indexed");
    assert!(matches!(outcome, Outcome::Evicted { .. }), "{outcome:?}");
    assert_eq!(account(&database, "op-eu-1").await, None);
    assert_eq!(cache_rows_of(&database, "op-eu-1").await, 0);
    let tombstone = history(&database, "op-eu-1").await;
    assert!(
        tombstone.last().is_some_and(|h| h.1 && h.2.is_none()),
        "{tombstone:?}"
    );
    assert!(shared.is_subset(&applications(&stored_rows(&database, "op-us-1").await)));
    assert_eq!(recorded(&database, "eu-1").await[0].1, "removed");

    // A heartbeat older than the eviction grace removes the other one the same way.
    let strict = Indexer {
        options: IndexOptions {
            graces: Graces {
                stale_after: StdDuration::from_secs(60),
                evict_after: StdDuration::from_secs(120),
            },
            ..indexer(&store, &database, &template).options
        },
        ..indexer(&store, &database, &template)
    };
    let outcome = strict.index_cluster(&us.name).await.expect("indexed");
    assert!(matches!(outcome, Outcome::Evicted { .. }), "{outcome:?}");
    assert_eq!(account(&database, "op-us-1").await, None);
    assert_eq!(cache_rows_of(&database, "op-us-1").await, 0);
    assert_eq!(
        account(&database, "op-static-1").await,
        Some((static_body, "admin".to_string())),
        "the static account outlives every eviction"
    );
}

on_each_database!(accounts_follow_clusters: sqlite, postgres, mariadb);

async fn what_a_cluster_cannot_become(kind: &str) {
    let Some(db) = fresh_database(kind).await else {
        return;
    };
    let store = Store::open(&format!(
        "memory://refusals-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .expect("a bucket");
    let database = Database::connect(&db.url, None).await.expect("a database");
    clouddriver_tables(&database).await;
    let template = AccountTemplate {
        prefix: "outpost-".into(),
        ..AccountTemplate::default()
    };
    let start = Utc::now() - Duration::minutes(10);

    // A name that, with the prefix, is longer than Clouddriver's names may be: refused, with
    // nothing written anywhere.
    let long = "x".repeat(60);
    let mut too_long = new_cluster(&store, &long, 4, start).await;
    too_long.ship_after(0).await;
    let outcome = indexer(&store, &database, &template)
        .index_cluster(&too_long.name)
        .await
        .expect("indexed");
    assert!(
        matches!(&outcome, Outcome::Refused { reason } if reason.contains("longer than 63")),
        "{outcome:?}"
    );
    assert_eq!(account(&database, &format!("outpost-{long}")).await, None);
    assert_eq!(
        cache_rows_of(&database, &format!("outpost-{long}")).await,
        0
    );

    // An account a cluster asks for in its identity that the policy does not grant: refused.
    let name = ClusterName::new("greedy").expect("a name");
    let mut identity = Identity::new(name.clone(), start);
    identity.account.name = Some("prod".into());
    store
        .put_overwrite(
            &store.layout().identity(&name),
            identity.to_json().expect("JSON").into(),
        )
        .await
        .expect("identity.json");
    let mut greedy =
        SimAgent::new(&store, name.clone(), Churn::new(5, 60), &[5; 32]).expect("an agent");
    greedy.tick(start).await.expect("shipped");
    let outcome = indexer(&store, &database, &template)
        .index_cluster(&name)
        .await
        .expect("indexed");
    assert!(matches!(outcome, Outcome::Refused { .. }), "{outcome:?}");
    for id in ["prod", "outpost-prod", "outpost-greedy"] {
        assert_eq!(account(&database, id).await, None, "{id}");
    }

    // A STALE cluster's first load writes its rows but registers nothing.
    let mut late = new_cluster(&store, "late-1", 6, Utc::now() - Duration::minutes(20)).await;
    late.ship_after(0).await;
    let stale = Indexer {
        options: IndexOptions {
            graces: Graces {
                stale_after: StdDuration::from_secs(600),
                evict_after: StdDuration::from_secs(86_400),
            },
            ..indexer(&store, &database, &template).options
        },
        ..indexer(&store, &database, &template)
    };
    let outcome = stale.index_cluster(&late.name).await.expect("indexed");
    assert!(
        matches!(
            outcome,
            Outcome::Applied {
                state: ClusterState::Stale,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(cache_rows_of(&database, "outpost-late-1").await > 0);
    assert_eq!(account(&database, "outpost-late-1").await, None);
    assert!(recorded(&database, "late-1").await.is_empty());
}

on_each_database!(what_a_cluster_cannot_become: sqlite, postgres, mariadb);

/// Every definition the indexer writes refuses what a cluster could choose: the kubeconfig,
/// context and executable come from the template, whatever the bucket holds.
#[test]
fn a_definition_names_nothing_a_cluster_wrote() {
    let body: Value = AccountTemplate::default()
        .definition("eu-1", &["kube-system".into()])
        .expect("a definition");
    assert!(body.get("kubectlExecutable").is_none());
    assert!(body.get("kubeconfigFile").is_none());
    assert_eq!(body["context"], "outpost");
}
