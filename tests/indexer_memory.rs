//! The indexer's memory does not follow what a head lists: a chain of many large diffs is
//! indexed holding about one segment at a time. Measured by this test binary's own allocator
//! (every allocation of the process counted), so it is the only test of its binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use outpost::indexer::{Database, IndexOptions, Indexer, Outcome};
use outpost::store::Store;

#[macro_use]
#[allow(unused_macros)]
mod common;

use common::chain::{Chain, pod};

/// The system allocator, keeping the bytes allocated now and the most since the last reset.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size > layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Letters no compressor can shrink much (about 5.7 bits of entropy per byte).
fn noise(bytes: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..bytes)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect()
}

fn config_map(name: &str, version: usize, payload: String) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "big", "uid": format!("uid-{name}"),
            "resourceVersion": version.to_string()},
        "data": {"payload": payload},
    })
}

/// 60 diffs of about 0.75 MB stored each (45 MB listed): the indexer's peak of allocated bytes
/// over the run stays below a third of that, where holding every listed segment before
/// applying them would need all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_follows_one_segment_not_the_listed_chain() {
    const DIFFS: usize = 60;
    const PAYLOAD: usize = 1 << 20;
    let bucket = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("file://{}", bucket.path().display()))
        .await
        .unwrap();
    let db = outpost::test_support::db::sqlite_database();
    let database = Database::connect(&db.url, None).await.unwrap();
    let mut chain = Chain::new(&store, "big");
    chain.snapshot(&[pod("big", "seed", None)]).await;
    let mut listed = 0u64;
    for i in 0..DIFFS {
        // A few ConfigMaps updated in turn, so rows are replaced rather than piled up.
        let object = config_map(&format!("blob-{}", i % 3), i + 2, noise(PAYLOAD));
        listed += chain.diff(&[object], &[]).await.bytes;
    }
    chain.publish().await;
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    };

    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let report = indexer.run_once(None).await.unwrap();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let outcome = &report.clusters[0].result;
    assert!(
        matches!(outcome, Ok(Outcome::Applied { .. })),
        "{outcome:?}"
    );
    eprintln!(
        "listed {listed} bytes in {DIFFS} diffs; the run's peak above its start: {peak} bytes"
    );
    assert!(
        (peak as u64) < listed / 3,
        "the run allocated {peak} bytes at its peak for a chain listing {listed} bytes"
    );
    database.close().await;
}
