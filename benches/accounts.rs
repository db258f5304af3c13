//! What registering accounts adds to the indexer's runs, against the same runs without a
//! template, in one process on the same database servers:
//!
//! 1. a heartbeat run (the head moved, no segment to apply) and a run applying a diff of about
//!    10 changes, each timed with and without an account template, alternating, on PostgreSQL,
//!    MariaDB and SQLite;
//! 2. the namespaces query a registration makes ([`registration::reported_namespaces`], an index
//!    walk per namespace) against the plain `SELECT DISTINCT namespace … WHERE account = ?`
//!    a first version would write.
//!
//! `cargo bench --bench accounts` (`-- --objects N --rounds N`). Database servers:
//! `OUTPOST_TEST_POSTGRES_URL` / `OUTPOST_TEST_MYSQL_URL`, by default the local ones. Under
//! `cargo test` it runs a small smoke version when those variables are set, and skips otherwise.

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use outpost::cache::definition::AccountTemplate;
use outpost::format::ClusterName;
use outpost::indexer::registration;
use outpost::indexer::{Database, Graces, IndexOptions, Indexer, Outcome};
use outpost::store::Store;
use outpost::test_support::bench;
use outpost::test_support::db::{TestDb, server_database, sqlite_database};
use outpost::test_support::sim::SimCluster;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Config {
    objects: usize,
    rounds: usize,
    full: bool,
}

fn config() -> Config {
    let full = bench::is_full_run();
    Config {
        objects: bench::flag("--objects").unwrap_or(if full { 20_000 } else { 400 }),
        rounds: bench::flag("--rounds").unwrap_or(if full { 15 } else { 2 }),
        full,
    }
}

fn median_ms(mut samples: Vec<StdDuration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// One indexer per side of the comparison: the same options but the template.
fn indexers(store: &Store, database: &Database) -> [(&'static str, Indexer); 2] {
    let options = IndexOptions {
        graces: Graces {
            stale_after: StdDuration::from_secs(100 * 365 * 86_400),
            evict_after: StdDuration::from_secs(200 * 365 * 86_400),
        },
        ..IndexOptions::default()
    };
    let with = IndexOptions {
        accounts: Some(AccountTemplate::default()),
        ..options.clone()
    };
    [
        (
            "without",
            Indexer {
                store: store.clone(),
                database: database.clone(),
                options,
            },
        ),
        (
            "with",
            Indexer {
                store: store.clone(),
                database: database.clone(),
                options: with,
            },
        ),
    ]
}

async fn index(indexer: &Indexer, cluster: &ClusterName) -> StdDuration {
    let started = Instant::now();
    let outcome = indexer.index_cluster(cluster).await.expect("indexed");
    let took = started.elapsed();
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    took
}

async fn measure(label: &str, url: &str, config: &Config) {
    let database = Database::connect(url, None).await.expect("a database");
    let store = Store::open(&format!(
        "memory://accounts-bench-{:08x}",
        rand::random::<u32>()
    ))
    .await
    .expect("a bucket");
    let mut sim = SimCluster::new(&store, "bench-1", 11, config.objects)
        .starting_at(Utc::now() - Duration::days(1));
    sim.write_identity(&store, "bench").await;
    sim.ship_after(0).await;
    let name = sim.name.clone();
    let [without, with] = indexers(&store, &database);
    // The snapshot, then a first registration, before anything is timed.
    index(&with.1, &name).await;
    let mut heartbeat = [Vec::new(), Vec::new()];
    let mut diff = [Vec::new(), Vec::new()];
    for _ in 0..config.rounds {
        for (side, (_, indexer)) in [&without, &with].into_iter().enumerate() {
            // A heartbeat: 5 min of nothing.
            sim.ship_after(301).await;
            heartbeat[side].push(index(indexer, &name).await);
            // About 10 changes, shipped as one diff.
            sim.step(10.0, 1.0);
            sim.ship_after(15).await;
            diff[side].push(index(indexer, &name).await);
        }
    }

    // The namespaces query against the plain one, on the same connection.
    let mut conn = database.connection("bench").await.expect("a connection");
    let mut walk = Vec::new();
    let mut distinct = Vec::new();
    let plain = database.sql(
        "SELECT DISTINCT namespace FROM outpost_resources WHERE account = ? AND namespace > ''",
    );
    let mut namespaces = 0;
    for _ in 0..config.rounds.max(5) {
        let started = Instant::now();
        namespaces = registration::reported_namespaces(&database, &mut conn, name.as_str())
            .await
            .expect("namespaces")
            .len();
        walk.push(started.elapsed());
        let started = Instant::now();
        let rows: Vec<String> = sqlx::query_scalar(&plain)
            .bind(name.as_str())
            .fetch_all(&mut *conn)
            .await
            .expect("DISTINCT");
        distinct.push(started.elapsed());
        assert!(rows.len() <= namespaces);
    }
    drop(conn);
    let objects = sim.state().len();
    println!(
        "{label}: {objects} objects, {namespaces} namespaces, {} rounds (median ms)",
        config.rounds
    );
    println!(
        "  heartbeat run: {:.2} without a template, {:.2} with",
        median_ms(heartbeat[0].clone()),
        median_ms(heartbeat[1].clone())
    );
    println!(
        "  diff run:      {:.2} without a template, {:.2} with",
        median_ms(diff[0].clone()),
        median_ms(diff[1].clone())
    );
    println!(
        "  namespaces:    {:.2} walking the index, {:.2} plain DISTINCT",
        median_ms(walk),
        median_ms(distinct)
    );
    database.close().await;
}

fn main() {
    let config = config();
    let Some((pg, my)) = outpost::test_support::db::bench_servers(config.full) else {
        println!(
            "accounts bench: OUTPOST_TEST_POSTGRES_URL / OUTPOST_TEST_MYSQL_URL not set; skipped"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(async {
        let databases: [(&str, TestDb); 3] = [
            ("PostgreSQL", server_database(&pg, "outpost_bench").await),
            ("MariaDB", server_database(&my, "outpost_bench").await),
            ("SQLite", sqlite_database()),
        ];
        for (label, db) in &databases {
            measure(label, &db.url, &config).await;
            db.drop_database().await;
        }
    });
}
