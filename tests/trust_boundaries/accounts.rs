//! Accounts: a cluster reaches only the account it may claim, an account has one holder at a
//! time, and a cluster moving away or refused deletes nothing of another's.

use outpost::format::ClusterName;
use outpost::indexer::{ClaimPolicy, IndexOptions, Outcome};
use outpost::store::Store;

use crate::common::chain::{Chain, pod};
use crate::common::db::{assert_no_failures, expected_rows, stored_rows};
use crate::{indexer, outcome_of, setup};

/// A one-pod snapshot of `cluster`, published, with an identity asking for `account`.
async fn one_pod_cluster(store: &Store, cluster: &str, account: Option<&str>) -> Chain {
    let mut chain = Chain::new(store, cluster);
    chain.identity(account).await;
    chain
        .snapshot(&[pod("default", &format!("{cluster}-pod"), None)])
        .await;
    chain.publish().await;
    chain
}

/// A claim policy letting any cluster claim any account.
fn any_account_policy() -> ClaimPolicy {
    ClaimPolicy::parse("p.yaml", "clusters:\n  '*': {accounts: ['*']}\n").expect("a valid policy")
}

/// No cluster reaches into another's account: `PROD` is not an account name (on MySQL it would
/// collate equal to `prod`), without a policy a cluster may claim only its own name, with a
/// policy that allows anything an account still has one holder, and a refused claimant that
/// decommissions itself deletes nothing of the holder's.
async fn no_cluster_reaches_into_another_account(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let prod = one_pod_cluster(&store, "prod", None).await;
    let only = |names: &[&str]| -> Vec<ClusterName> {
        names.iter().map(|n| ClusterName::new(n).unwrap()).collect()
    };
    let open = indexer(&store, &database, IndexOptions::default());
    assert_no_failures(&open.run_once(None).await.unwrap(), "prod");
    let prod_rows = stored_rows(&database, "prod").await;
    assert_eq!(
        prod_rows,
        expected_rows(&store, &prod.cluster, "prod").await
    );

    let evil = one_pod_cluster(&store, "aaa-evil", Some("PROD")).await;
    let report = open.run_once(Some(&only(&["aaa-evil"]))).await.unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => assert!(reason.contains("account name"), "{reason}"),
        other => panic!("PROD: {other:?}"),
    }
    evil.identity(Some("prod")).await;
    let report = open.run_once(Some(&only(&["aaa-evil"]))).await.unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => {
            assert!(
                reason.contains("only the account of its own name"),
                "{reason}"
            )
        }
        other => panic!("prod without a policy: {other:?}"),
    }
    let any = IndexOptions {
        policy: any_account_policy(),
        ..IndexOptions::default()
    };
    let permissive = indexer(&store, &database, any);
    let report = permissive
        .run_once(Some(&only(&["aaa-evil"])))
        .await
        .unwrap();
    match outcome_of(&report, "aaa-evil") {
        Outcome::Refused { reason } => {
            assert!(
                reason.contains("already claimed by cluster prod"),
                "{reason}"
            )
        }
        other => panic!("prod with a policy allowing any: {other:?}"),
    }
    evil.decommission().await;
    let report = permissive
        .run_once(Some(&only(&["aaa-evil"])))
        .await
        .unwrap();
    assert!(
        matches!(
            outcome_of(&report, "aaa-evil"),
            Outcome::Evicted {
                rows_deleted: 0,
                ..
            }
        ),
        "{report:?}"
    );
    assert_eq!(stored_rows(&database, "prod").await, prod_rows);
    database.close().await;
    db.drop_database().await;
}
on_each_database!(no_cluster_reaches_into_another_account: sqlite, postgres, mariadb);

/// Two clusters asking for one account in the same run, indexed at once: exactly one holds it,
/// and its rows are the only ones there.
async fn one_account_has_one_holder_at_a_time(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let names: Vec<String> = (0..6).map(|i| format!("claimant-{i}")).collect();
    for name in &names {
        one_pod_cluster(&store, name, Some("shared")).await;
    }
    let options = IndexOptions {
        policy: any_account_policy(),
        concurrency: 6,
        ..IndexOptions::default()
    };
    let report = indexer(&store, &database, options)
        .run_once(None)
        .await
        .unwrap();
    let holders: Vec<&str> = names
        .iter()
        .filter(|name| matches!(outcome_of(&report, name), Outcome::Applied { .. }))
        .map(String::as_str)
        .collect();
    assert_eq!(holders.len(), 1, "{report:?}");
    let holder = ClusterName::new(holders[0]).unwrap();
    assert_eq!(
        stored_rows(&database, "shared").await,
        expected_rows(&store, &holder, "shared").await
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(one_account_has_one_holder_at_a_time: sqlite, postgres, mariadb);

/// A cluster that moves to another account leaves nothing in the old one, and the old one is
/// free for another cluster.
async fn a_cluster_moving_account_leaves_nothing_behind(kind: &str) {
    let Some((db, store, database)) = setup(kind).await else {
        return;
    };
    let options = IndexOptions {
        policy: any_account_policy(),
        ..IndexOptions::default()
    };
    let indexer = indexer(&store, &database, options);
    let mover = one_pod_cluster(&store, "mover", Some("before")).await;
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "before");
    assert!(!stored_rows(&database, "before").await.is_empty());
    mover.identity(Some("after")).await;
    let mut mover = mover;
    mover.now += chrono::Duration::seconds(30);
    mover.publish().await;
    assert_no_failures(&indexer.run_once(None).await.unwrap(), "after");
    assert!(
        stored_rows(&database, "before").await.is_empty(),
        "rows left in the old account"
    );
    assert_eq!(
        stored_rows(&database, "after").await,
        expected_rows(&store, &mover.cluster, "after").await
    );
    one_pod_cluster(&store, "newcomer", Some("before")).await;
    let report = indexer.run_once(None).await.unwrap();
    assert!(
        matches!(outcome_of(&report, "newcomer"), Outcome::Applied { .. }),
        "{report:?}"
    );
    database.close().await;
    db.drop_database().await;
}
on_each_database!(a_cluster_moving_account_leaves_nothing_behind: sqlite, postgres, mariadb);
