//! Test databases: a fresh SQLite file or a fresh database on the PostgreSQL or MariaDB test
//! server, a macro that runs one test on each, and the rows the indexer wrote compared with the
//! reference builder's.

use std::collections::{BTreeMap, BTreeSet};

use outpost::cache::{self, CacheOptions, Resource};
use outpost::format::ClusterName;
use outpost::indexer::Database;
use outpost::indexer::db::text;
use outpost::store::Store;
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

/// A database for one test: a fresh SQLite file, or a fresh database on a server.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn fresh_database(kind: &str) -> Option<TestDb> {
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("cache.db").display());
            Some(TestDb {
                url,
                _dir: Some(dir),
            })
        }
        "postgres" | "mysql" => {
            let var = if kind == "postgres" {
                "OUTPOST_TEST_POSTGRES_URL"
            } else {
                "OUTPOST_TEST_MYSQL_URL"
            };
            let base = super::server_url(var)?;
            sqlx::any::install_default_drivers();
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            let name = format!("outpost_test_{:08x}", rand::random::<u32>());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let mut url = url::Url::parse(&base).unwrap();
            url.set_path(&format!("/{name}"));
            Some(TestDb {
                url: url.to_string(),
                _dir: None,
            })
        }
        _ => unreachable!(),
    }
}

impl TestDb {
    /// Drops a server database (tests call it when they passed).
    pub async fn drop_database(self) {
        if self._dir.is_some() {
            return;
        }
        let mut base = url::Url::parse(&self.url).unwrap();
        let name = base.path().trim_start_matches('/').to_string();
        base.set_path(if self.url.starts_with("postgres") {
            "/postgres"
        } else {
            "/mysql"
        });
        let admin = sqlx::AnyPool::connect(base.as_str()).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE {name}"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

/// Rows as compared: (type, id) → body with `cacheExpiry` removed (it carries the write time).
pub type Rows = BTreeMap<(String, String), Value>;

pub fn normalize(body: &str) -> Value {
    let mut value: Value = serde_json::from_str(body).unwrap();
    if let Some(attributes) = value["attributes"].as_object_mut() {
        attributes.remove("cacheExpiry");
    }
    value
}

/// What the reference builder computes for the objects the bucket holds for `cluster` now.
pub async fn expected_rows(store: &Store, cluster: &ClusterName, account: &str) -> Rows {
    let (_, objects) = super::replay(store, cluster).await.unwrap();
    let resources: Vec<Resource> = objects
        .into_values()
        .map(|(_, object)| Resource::parse(object).unwrap())
        .collect();
    cache::build_account(account, &resources, &CacheOptions::default(), 0)
        .into_iter()
        .map(|row| ((row.type_name, row.id), normalize(&row.body)))
        .collect()
}

/// Every cache row the indexer wrote for `account`, checking each body_hash on the way.
pub async fn stored_rows(database: &Database, account: &str) -> Rows {
    let agent = cache::check_agent_name(
        &format!("{account}/KubernetesCoreCachingAgent[1/1]"),
        database.dialect(),
    )
    .unwrap();
    let mut types: BTreeSet<String> = ["applications", "clusters"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sql = "SELECT DISTINCT cache_type AS t FROM outpost_resources";
    for row in sqlx::query(sql).fetch_all(database.pool()).await.unwrap() {
        types.insert(text(&row, "t").unwrap());
    }
    let mut rows = Rows::new();
    for type_name in types {
        let table = database.cache_tables(&type_name).unwrap().resource;
        let sql = database.sql(&format!(
            "SELECT id, body_hash, body FROM {table} WHERE agent = ?"
        ));
        let found = match sqlx::query(&sql)
            .bind(&agent)
            .fetch_all(database.pool())
            .await
        {
            Ok(found) => found,
            Err(_) => continue, // no table: no rows
        };
        for row in found {
            let id = text(&row, "id").unwrap();
            let hash = text(&row, "body_hash").unwrap();
            let body = text(&row, "body").unwrap();
            assert_eq!(hash, cache::body_hash(&body), "body_hash of {id}");
            assert!(
                rows.insert((type_name.clone(), id.clone()), normalize(&body))
                    .is_none(),
                "{id} twice"
            );
        }
    }
    rows
}

/// Fails with every failed cluster's error chain, if any.
pub fn assert_no_failures(report: &outpost::indexer::RunReport, context: &str) {
    let failures: Vec<_> = report
        .failures()
        .map(|(c, e)| (c.to_string(), outpost::error_chain(e)))
        .collect();
    assert!(failures.is_empty(), "{context}: {failures:?}");
}
