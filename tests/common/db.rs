//! Test databases: a macro that runs one test on each database (a fresh one from
//! `outpost::test_support::db`), and the rows the indexer wrote compared with the reference
//! builder's.

use std::collections::BTreeMap;

use outpost::cache;
use outpost::format::ClusterName;
use outpost::indexer::Database;
use outpost::store::Store;
use outpost::test_support::rows;
use serde_json::Value;

/// `mod $test` with one `#[tokio::test]` per database running `$test(kind)`: `$test::sqlite`,
/// `$test::postgres`, `$test::mariadb` (a server's test passes without running when its URL
/// is not set).
#[allow(unused_macros)]
macro_rules! on_each_database {
    ($test:ident: $($database:ident),+) => {
        mod $test {
            $(on_each_database!(@one $test $database);)+
        }
    };
    (@one $test:ident sqlite) => { on_each_database!(@test $test, sqlite, "sqlite"); };
    (@one $test:ident postgres) => { on_each_database!(@test $test, postgres, "postgres"); };
    (@one $test:ident mariadb) => { on_each_database!(@test $test, mariadb, "mysql"); };
    (@test $test:ident, $database:ident, $kind:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $database() {
            super::$test($kind).await;
        }
    };
}

#[allow(unused_imports)]
pub use outpost::test_support::db::{TestDb, fresh_database};

/// Rows as compared: (type, id) → body with `cacheExpiry` removed (it carries the write time).
pub type Rows = BTreeMap<(String, String), Value>;

/// What the reference builder computes for the objects the bucket holds for `cluster` now.
pub async fn expected_rows(store: &Store, cluster: &ClusterName, account: &str) -> Rows {
    let (_, objects) = super::replay(store, cluster).await.unwrap();
    rows::reference_rows(account, objects.into_values().map(|(_, object)| object))
        .into_iter()
        .map(|row| ((row.type_name, row.id), rows::comparable_body(&row.body)))
        .collect()
}

/// Every cache row the indexer wrote for `account`, checking each body_hash on the way.
pub async fn stored_rows(database: &Database, account: &str) -> Rows {
    let mut stored = Rows::new();
    for row in rows::stored_rows(database, account).await {
        assert_eq!(
            row.body_hash,
            cache::body_hash(&row.body),
            "body_hash of {}",
            row.id
        );
        let key = (row.type_name, row.id);
        let id = key.1.clone();
        assert!(
            stored
                .insert(key, rows::comparable_body(&row.body))
                .is_none(),
            "{id} twice"
        );
    }
    stored
}

/// Fails with every failed cluster's error chain, if any.
pub fn assert_no_failures(report: &outpost::indexer::RunReport, context: &str) {
    let failures: Vec<_> = report
        .failures()
        .map(|(c, e)| (c.to_string(), outpost::error_chain(e)))
        .collect();
    assert!(failures.is_empty(), "{context}: {failures:?}");
}
