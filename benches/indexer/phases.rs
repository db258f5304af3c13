//! Where a snapshot load's time goes: the load `index_cluster` does, replayed step by step
//! through the public [`AccountWriter`] API on a fresh PostgreSQL database, each step timed.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::Utc;
use outpost::cache::KubernetesKind;
use outpost::format::{ClusterName, Record, SegmentReader, SegmentType};
use outpost::indexer::apply::AccountWriter;
use outpost::indexer::{Database, IndexOptions};
use outpost::store::Store;
use outpost::test_support::rows;

use crate::measure::{Clock, PhaseTime, procs_of};
use crate::report::progress;
use crate::{Config, fresh_database};

/// The steps of a snapshot load of `cluster` from `store`, timed on a scratch database of the
/// PostgreSQL server at `pg_base` (dropped again).
pub async fn breakdown(
    config: &Config,
    pg_base: &str,
    store: &Store,
    cluster: &ClusterName,
    started: Instant,
) -> Vec<(&'static str, PhaseTime)> {
    progress(
        started,
        "phase breakdown: the snapshot load replayed step by step on PostgreSQL",
    );
    let scratch = fresh_database(pg_base).await;
    if config.pg_jit_off {
        scratch.jit_off().await;
    }
    let scratch_db = Database::connect(&scratch.url, None)
        .await
        .expect("connects");
    let phases = snapshot_phases(store, &scratch_db, cluster).await;
    for (what, p) in &phases {
        progress(
            started,
            &format!(
                "  {what}: {:.1} s wall, indexer CPU {:.1} s, server CPU {:.1} s",
                p.wall, p.client_cpu, p.server_cpu
            ),
        );
    }
    scratch_db.close().await;
    scratch.drop_database().await;
    phases
}

/// The snapshot load of `index_cluster` replayed step by step through the public
/// [`AccountWriter`] API into a fresh database, timing each step (its COMMIT too).
async fn snapshot_phases(
    store: &Store,
    database: &Database,
    cluster: &ClusterName,
) -> Vec<(&'static str, PhaseTime)> {
    let procs = procs_of(database.dialect());
    let mut phases = Vec::new();
    let options = IndexOptions::default();
    let name = cluster.as_str();

    let clock = Clock::start(procs);
    let (head_bytes, _) = store
        .get(&store.layout().head(cluster))
        .await
        .expect("a head");
    let head = outpost::format::Head::from_json("head.json", &head_bytes).expect("a head");
    let key = store.layout().segment(
        cluster,
        &head.epoch,
        head.snapshot.seq,
        SegmentType::Snapshot,
    );
    let (bytes, _) = store.get(&key).await.expect("the snapshot");
    phases.push(("GET the snapshot", clock.stop()));

    // What fetch_verified does besides the GET: one full decode pass.
    let clock = Clock::start(procs);
    let mut types = BTreeSet::new();
    let mut reader =
        SegmentReader::new("snapshot", &bytes[..], &options.limits).expect("a segment");
    while let Some(record) = reader.next_record().expect("a record") {
        let (Record::Put { target, .. } | Record::Delete { target }) = &record;
        types.insert(
            KubernetesKind::from_manifest(&target.api_version, &target.kind)
                .as_str()
                .to_string(),
        );
    }
    reader.finish().expect("a complete segment");
    phases.push(("decode + verify (zstd, JSON lines, sha256)", clock.stop()));

    let clock = Clock::start(procs);
    types.insert("applications".into());
    types.insert("clusters".into());
    for type_name in &types {
        database
            .ensure_cache_tables(type_name)
            .await
            .expect("creates the tables");
    }
    let mut tx = database.begin_cluster(name).await.expect("begins");
    phases.push(("create tables, BEGIN, lock", clock.stop()));

    let agent = rows::agent_of(name, database.dialect());
    let now_ms = Utc::now().timestamp_millis();
    let mut writer = AccountWriter::new(
        database,
        tx.conn(),
        name,
        name,
        &agent,
        &options.cache,
        now_ms,
    );
    let clock = Clock::start(procs);
    let previous = writer.cached_types().await.expect("types");
    let mut load = writer.begin_snapshot().await.expect("begins the snapshot");
    for batch in batches(&bytes, &options) {
        load.load_batch(batch).await.expect("loads a batch");
    }
    phases.push((
        "pass 1: objects → outpost_resources, graph in memory (load_batch)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    let mut second = load.link().await.expect("links the snapshot");
    phases.push((
        "partners matched, every link → outpost_links (link_snapshot)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    for batch in batches(&bytes, &options) {
        second.write_batch(batch).await.expect("writes a batch");
    }
    phases.push((
        "pass 2: every object's cats row computed and written (write_batch)",
        clock.stop(),
    ));
    let clock = Clock::start(procs);
    second
        .finish(&previous)
        .await
        .expect("finishes the snapshot");
    let rows = writer.stats().rows_written;
    phases.push((
        "logical rows, vanished rows deleted (finish_snapshot)",
        clock.stop(),
    ));
    drop(writer);
    let clock = Clock::start(procs);
    tx.commit().await.expect("commits");
    phases.push(("COMMIT", clock.stop()));
    eprintln!("  (phase replay wrote {rows} cats rows)");
    phases
}

/// A snapshot's records in batches of 400, as the indexer reads them.
fn batches<'a>(bytes: &'a [u8], options: &IndexOptions) -> impl Iterator<Item = Vec<Record>> + 'a {
    let mut reader = SegmentReader::new("snapshot", bytes, &options.limits).expect("a segment");
    std::iter::from_fn(move || {
        let mut batch = Vec::with_capacity(400);
        while batch.len() < 400 {
            match reader.next_record().expect("a record") {
                Some(record) => batch.push(record),
                None => break,
            }
        }
        (!batch.is_empty()).then_some(batch)
    })
}
