//! A snapshot larger than 64 MiB stored loads: no cap on a segment's size but the format's own
//! limits and the per-cluster quotas (docs/SECURITY.md).

use outpost::format::ClusterName;
use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;

#[macro_use]
#[allow(unused_macros)]
mod common;

use common::chain::Chain;

/// Stored bytes the snapshot must exceed: the size of the largest document read whole.
const FLOOR: u64 = 64 << 20;

/// `bytes` printable ASCII letters (no `"` or `\`, so JSON keeps them as they are) from a
/// xorshift generator: about 6.5 bits of entropy per byte, so zstd keeps over 80% of them.
fn noise(state: &mut u64, bytes: usize) -> String {
    (0..bytes)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            let letter = b'#' + (*state % 57) as u8; // '#'..='[' holds neither '"' nor '\'
            letter as char
        })
        .collect()
}

/// A Deployment (a kind Clouddriver caches by default) carrying `payload` in an annotation, as
/// large as Kubernetes allows annotations.
fn annotated(index: usize, payload: String) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": format!("blob-{index}"), "namespace": "big",
            "uid": format!("uid-{index}"), "resourceVersion": "1",
            "annotations": {"example.com/payload": payload}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "blob"}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_over_64_mib_stored_loads() {
    const OBJECTS: usize = 380;
    const PAYLOAD: usize = 250 << 10;
    let bucket = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("file://{}", bucket.path().display()))
        .await
        .unwrap();
    let db = outpost::test_support::db::sqlite_database();
    let database = Database::connect(&db.url, None).await.unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let objects: Vec<serde_json::Value> = (0..OBJECTS)
        .map(|i| annotated(i, noise(&mut state, PAYLOAD)))
        .collect();
    let mut chain = Chain::new(&store, "big");
    let snapshot = chain.snapshot(&objects).await;
    drop(objects);
    chain.publish().await;
    assert!(
        snapshot.bytes > FLOOR,
        "the snapshot is {} bytes stored, not over {FLOOR}",
        snapshot.bytes
    );

    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    };
    let report = indexer.run_once(None).await.unwrap();
    let outcome = &report.clusters[0].result;
    assert!(
        matches!(outcome, Ok(Outcome::Applied { .. })),
        "{outcome:?}"
    );
    let cluster = ClusterName::new("big").unwrap();
    let expected = common::db::expected_rows(&store, &cluster, "big").await;
    let stored = common::db::stored_rows(&database, "big").await;
    let deployments = stored.keys().filter(|(t, _)| t == "deployment").count();
    assert_eq!(
        deployments,
        OBJECTS,
        "deployment rows of {} stored",
        stored.len()
    );
    assert_eq!(stored, expected);
    database.close().await;
}
