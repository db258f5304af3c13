//! The adversarial suite (docs/SECURITY.md): crafted buckets and ordinary-but-messy clusters
//! against the indexer on real databases. Each test is the regression test of one way a cluster
//! could harm another account, fail itself on ordinary objects, or make the indexer spend without
//! bound.

use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;

#[macro_use]
mod common;

use common::chain::{Chain, pod};
use common::db::{TestDb, assert_no_failures, expected_rows, fresh_database, stored_rows};

async fn setup(kind: &str) -> Option<(TestDb, Store, Database)> {
    let db = fresh_database(kind).await?;
    let store = Store::open(&format!(
        "memory://trust-{kind}-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .unwrap();
    let database = Database::connect(&db.url, None).await.unwrap();
    Some((db, store, database))
}

fn indexer(store: &Store, database: &Database, options: IndexOptions) -> Indexer {
    Indexer {
        store: store.clone(),
        database: database.clone(),
        options,
    }
}

/// Pods owned by kinds Outpost does not cache (an Argo Workflow, a ReplicaSet owned by a
/// Rollout) are ordinary: the cluster is indexed, on its first load (snapshot and diff in one
/// run) and on later diffs, and its rows are the reference builder's.
async fn owners_of_uncached_kinds_do_not_fail_a_cluster(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let mut chain = Chain::new(&store, "argo");
    let workflow_pod = pod(
        "ci",
        "build-1",
        Some(("argoproj.io/v1alpha1", "Workflow", "build")),
    );
    let mut replica_set = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-5d8f", "namespace": "ci", "uid": "uid-rs", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "name": "web", "uid": "uid-rollout", "controller": true}],
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
    });
    let rs_pod = pod(
        "ci",
        "web-5d8f-x",
        Some(("apps/v1", "ReplicaSet", "web-5d8f")),
    );
    chain
        .snapshot(&[workflow_pod.clone(), replica_set.clone(), rs_pod])
        .await;
    let mut changed = workflow_pod.clone();
    changed["metadata"]["resourceVersion"] = "2".into();
    changed["metadata"]["labels"]["step"] = "two".into();
    chain.diff(&[changed], &[]).await;
    chain.publish().await;

    let indexer = indexer(&store, &database, IndexOptions::default());
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "first load");
    assert_eq!(
        stored_rows(&database, "argo").await,
        expected_rows(&store, &chain.cluster, "argo").await
    );

    replica_set["metadata"]["resourceVersion"] = "3".into();
    replica_set["spec"]["replicas"] = 2.into();
    chain.diff(&[replica_set], &[workflow_pod]).await;
    chain.publish().await;
    let report = indexer.run_once(None).await.unwrap();
    assert_no_failures(&report, "a later diff");
    assert_eq!(
        stored_rows(&database, "argo").await,
        expected_rows(&store, &chain.cluster, "argo").await
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(owners_of_uncached_kinds_do_not_fail_a_cluster: sqlite, postgres, mariadb);
