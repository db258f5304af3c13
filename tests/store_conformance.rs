//! One conformance suite for every bucket backend: memory, a local folder, and real S3 (moto),
//! GCS (fake-gcs-server) and Azure (azurite) servers that enforce conditional writes.
//!
//! The servers come from `scripts/test-servers` (started by `scripts/test`), which exports
//! `OUTPOST_TEST_S3_URL`, `OUTPOST_TEST_GCS_URL` and `OUTPOST_TEST_AZURE_URL`. Without them a
//! backend's tests print why they are skipped, unless `OUTPOST_TEST_REQUIRE_SERVERS=1` (as in CI),
//! which makes a missing server a failure.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use outpost::format::segment::{Counts, ObjectRef, Window};
use outpost::format::{
    ClusterName, DecodeLimits, EncodeOptions, Epoch, Record, SegmentHeader, SegmentType,
    SegmentWriter,
};
use outpost::store::{Error, Fetched, Store};
use serde_json::value::RawValue;
use tokio::sync::Barrier;

mod common;

/// Opens a fresh, empty prefix of the named backend, or `None` (with a printed reason) when
/// its server is not configured and not required.
async fn open(backend: &str) -> Option<Store> {
    let unique = format!("t{:016x}", rand::random::<u64>());
    let url = match backend {
        "memory" => format!("memory://{unique}"),
        "folder" => {
            let dir = std::env::temp_dir()
                .join("outpost-conformance")
                .join(&unique);
            // A bucket folder exists before outpost uses it, as a cloud bucket does.
            std::fs::create_dir_all(&dir).unwrap();
            format!("file://{}", dir.display())
        }
        _ => {
            let var = format!("OUTPOST_TEST_{}_URL", backend.to_uppercase());
            with_prefix(&common::server_url(&var)?, &unique)
        }
    };
    Some(
        Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}")),
    )
}

/// `s3://bucket?x=y` + `p` → `s3://bucket/p?x=y`
fn with_prefix(base: &str, prefix: &str) -> String {
    match base.split_once('?') {
        Some((head, query)) => format!("{}/{prefix}?{query}", head.trim_end_matches('/')),
        None => format!("{}/{prefix}", base.trim_end_matches('/')),
    }
}

fn cluster(name: &str) -> ClusterName {
    ClusterName::new(name).unwrap()
}

fn epoch() -> Epoch {
    Epoch::from_parts(1_763_899_200_000, rand::random()).unwrap()
}

async fn create_only_puts(store: Store) {
    let key = store
        .layout()
        .segment(&cluster("a"), &epoch(), 1, SegmentType::Snapshot);
    store
        .put_create(&key, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let err = store
        .put_create(&key, Bytes::from_static(b"second"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains(key.path.as_ref()), "{err}");
    // Writing the same bytes again is how a retry of a landed write looks: it succeeds.
    store
        .put_create(&key, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let (bytes, _) = store.get(&key).await.unwrap();
    assert_eq!(&bytes[..], b"first");
    assert_eq!(store.size(&key).await.unwrap(), 5);
}

async fn compare_and_swap(store: Store) {
    let key = store.layout().head(&cluster("a"));
    let v1 = store
        .put_create(&key, Bytes::from_static(b"v1"))
        .await
        .unwrap();
    let (_, read_v1) = store.get(&key).await.unwrap();
    let v2 = store
        .put_update(&key, Bytes::from_static(b"v2"), &read_v1)
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let err = store
        .put_update(&key, Bytes::from_static(b"v3"), &read_v1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(&store.get(&key).await.unwrap().0[..], b"v2");
    // The version a put returns is good for the next compare-and-swap.
    store
        .put_update(&key, Bytes::from_static(b"v4"), &v2)
        .await
        .unwrap();
    assert_eq!(&store.get(&key).await.unwrap().0[..], b"v4");
    // An update of an object that does not exist is refused.
    let missing = store.layout().head(&cluster("nobody"));
    assert!(
        store
            .put_update(&missing, Bytes::from_static(b"x"), &v2)
            .await
            .is_err()
    );
}

async fn conditional_get(store: Store) {
    let key = store.layout().head(&cluster("a"));
    assert_eq!(
        store.get_if_changed(&key, None).await.unwrap(),
        Fetched::Missing
    );
    let err = store.get(&key).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(matches!(
        store.size(&key).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    store
        .put_create(&key, Bytes::from_static(b"one"))
        .await
        .unwrap();
    let (_, version) = store.get(&key).await.unwrap();
    assert_eq!(
        store.get_if_changed(&key, Some(&version)).await.unwrap(),
        Fetched::Unchanged
    );
    store
        .put_update(&key, Bytes::from_static(b"two"), &version)
        .await
        .unwrap();
    match store.get_if_changed(&key, Some(&version)).await.unwrap() {
        Fetched::Changed(bytes, newer) => {
            assert_eq!(&bytes[..], b"two");
            assert_ne!(newer, version);
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

async fn list_clusters(store: Store) {
    assert!(store.list_clusters().await.unwrap().is_empty());
    let layout = store.layout().clone();
    store
        .put_create(&layout.head(&cluster("b")), Bytes::from_static(b"h"))
        .await
        .unwrap();
    store
        .put_create(&layout.head(&cluster("a")), Bytes::from_static(b"h"))
        .await
        .unwrap();
    store
        .put_create(
            &layout.segment(&cluster("c"), &epoch(), 1, SegmentType::Snapshot),
            Bytes::from_static(b"s"),
        )
        .await
        .unwrap();
    store
        .put_overwrite(&layout.identity(&cluster("d")), Bytes::from_static(b"i"))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_clusters()
        .await
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
}

async fn overwrite(store: Store) {
    let key = store.layout().identity(&cluster("a"));
    store
        .put_overwrite(&key, Bytes::from_static(b"one"))
        .await
        .unwrap();
    store
        .put_overwrite(&key, Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(&store.get(&key).await.unwrap().0[..], b"two");
}

/// Several writers CAS the same head at once, round after round: exactly one wins each round,
/// and what is stored is the winner's bytes, never a loser's.
async fn concurrent_head_race(store: Store) {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 8;
    let key = store.layout().head(&cluster("race"));
    store
        .put_create(&key, Bytes::from_static(b"round-0"))
        .await
        .unwrap();
    for round in 1..=ROUNDS {
        let (_, version) = store.get(&key).await.unwrap();
        let barrier = Arc::new(Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let (store, key, version, barrier) =
                (store.clone(), key.clone(), version.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mine = Bytes::from(format!("round-{round}-writer-{writer}"));
                barrier.wait().await;
                (mine.clone(), store.put_update(&key, mine, &version).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (mine, result) = task.await.unwrap();
            match result {
                Ok(_) => winners.push(mine),
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("round {round}: unexpected error {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        assert_eq!(
            store.get(&key).await.unwrap().0,
            winners[0],
            "round {round}"
        );
    }
}

/// Several writers create the same segment key at once: exactly one succeeds.
async fn concurrent_create_race(store: Store) {
    const WRITERS: usize = 6;
    let key = store
        .layout()
        .segment(&cluster("race"), &epoch(), 7, SegmentType::Diff);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mine = Bytes::from(format!("writer-{writer}"));
            barrier.wait().await;
            (mine.clone(), store.put_create(&key, mine).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (mine, result) = task.await.unwrap();
        match result {
            Ok(_) => winners.push(mine),
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get(&key).await.unwrap().0, winners[0]);
}

/// A segment written with the codec streams back record for record with the same hash.
async fn segment_streaming(store: Store) {
    let c = cluster("s");
    let e = epoch();
    let now = Utc::now();
    let records: Vec<Record> = (0..2000)
        .map(|i| Record::Put {
            target: ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: format!("ns-{}", i % 7),
                name: format!("pod-{i}"),
                uid: format!("{:032x}", rand::random::<u128>()),
            },
            resource_version: (1000 + i).to_string(),
            object: RawValue::from_string(
                serde_json::json!({"metadata": {"name": format!("pod-{i}")}, "n": i}).to_string(),
            )
            .unwrap(),
        })
        .collect();
    let header = SegmentHeader::new(
        SegmentType::Snapshot,
        c.clone(),
        e.clone(),
        1,
        None,
        now,
        Window { from: now, to: now },
        Counts {
            put: records.len() as u64,
            delete: 0,
        },
        vec![],
    );
    let key = store.layout().segment(&c, &e, 1, SegmentType::Snapshot);
    let mut writer = SegmentWriter::new(
        &key.to_string(),
        Vec::new(),
        &header,
        &EncodeOptions::default(),
    )
    .unwrap();
    for r in &records {
        writer.write(r).unwrap();
    }
    let (bytes, written) = writer.finish().unwrap();
    store.put_create(&key, Bytes::from(bytes)).await.unwrap();

    let mut stream = store
        .read_segment(&key, &DecodeLimits::default())
        .await
        .unwrap();
    assert_eq!(stream.header(), &header);
    let mut read = Vec::new();
    while let Some(record) = stream.next().await {
        read.push(record.unwrap());
    }
    assert_eq!(read, records);
    assert_eq!(stream.finish().await.unwrap(), written);

    let missing = store.layout().segment(&c, &e, 2, SegmentType::Diff);
    let err = store
        .read_segment(&missing, &DecodeLimits::default())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

/// A damaged segment is reported with its key, through the streaming reader too.
async fn damaged_segment_is_named(store: Store) {
    let c = cluster("d");
    let e = epoch();
    let key = store.layout().segment(&c, &e, 1, SegmentType::Snapshot);
    store
        .put_create(&key, Bytes::from_static(b"\x28\xb5\x2f\xfd garbage"))
        .await
        .unwrap();
    let err = match store.read_segment(&key, &DecodeLimits::default()).await {
        Err(e) => e,
        Ok(stream) => stream.finish().await.unwrap_err(),
    };
    assert!(err.to_string().contains(key.path.as_ref()), "{err}");
}

async fn segment_puts_are_create_only(store: Store) {
    let key = store
        .layout()
        .segment(&cluster("a"), &epoch(), 1, SegmentType::Snapshot);
    store
        .put_segment(&key, Bytes::from_static(b"segment"))
        .await
        .unwrap();
    // The same bytes again are a retry whose first answer was lost; other bytes are refused.
    store
        .put_segment(&key, Bytes::from_static(b"segment"))
        .await
        .unwrap();
    let err = store
        .put_segment(&key, Bytes::from_static(b"other"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(
        store.get(&key).await.unwrap().0,
        Bytes::from_static(b"segment")
    );
}

/// On S3, segments carry the lifecycle tag and nothing else does, unless the URL turns tags off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_segments_carry_the_lifecycle_tag_and_documents_do_not() {
    let Some(base) = common::server_url("OUTPOST_TEST_S3_URL") else {
        return;
    };
    let endpoint = base
        .split("endpoint=")
        .nth(1)
        .and_then(|e| e.split('&').next())
        .expect("the S3 test URL names its endpoint")
        .trim_start_matches("http://")
        .to_string();
    let bucket = base
        .trim_start_matches("s3://")
        .split(['?', '/'])
        .next()
        .unwrap()
        .to_string();
    // moto answers an anonymous request as a public one (403); it checks no signature, but it
    // wants one to be there.
    const SIGNED: &str = "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n";
    let tags_of = |path: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&endpoint).unwrap();
        write!(
            stream,
            "GET /{bucket}/{path}?tagging HTTP/1.1\r\nHost: {endpoint}\r\n{SIGNED}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer
    };
    let (tag, value) = outpost::store::SEGMENT_TAG;
    let tagged = format!("<Key>{tag}</Key><Value>{value}</Value>");

    let unique = format!("t{:016x}", rand::random::<u64>());
    let store = Store::open(&with_prefix(&base, &unique)).await.unwrap();
    let segment = store
        .layout()
        .segment(&cluster("a"), &epoch(), 1, SegmentType::Diff);
    store
        .put_segment(&segment, Bytes::from_static(b"s"))
        .await
        .unwrap();
    let head = store.layout().head(&cluster("a"));
    store
        .put_create(&head, Bytes::from_static(b"h"))
        .await
        .unwrap();
    let identity = store.layout().identity(&cluster("a"));
    store
        .put_overwrite(&identity, Bytes::from_static(b"i"))
        .await
        .unwrap();
    assert!(
        tags_of(segment.path.as_ref())
            .replace(['\n', ' '], "")
            .contains(&tagged)
    );
    for document in [&head, &identity] {
        assert!(!tags_of(document.path.as_ref()).contains(tag), "{document}");
    }

    let untagged = with_prefix(&format!("{base}&tag_segments=false"), &unique);
    let store = Store::open(&untagged).await.unwrap();
    let segment = store
        .layout()
        .segment(&cluster("b"), &epoch(), 1, SegmentType::Diff);
    store
        .put_segment(&segment, Bytes::from_static(b"s"))
        .await
        .unwrap();
    assert!(!tags_of(segment.path.as_ref()).contains(tag));
}

/// One test per case for a backend.
macro_rules! backend_cases {
    ($backend:ident: $($case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(store) = super::open(stringify!($backend)).await {
                        super::$case(store).await;
                    }
                }
            )*
        }
    };
}

/// Every case for every backend.
macro_rules! conformance {
    ($($backend:ident),*) => {
        $(
            backend_cases!($backend: create_only_puts, compare_and_swap, conditional_get,
                list_clusters, overwrite, concurrent_head_race, concurrent_create_race,
                segment_streaming, damaged_segment_is_named, segment_puts_are_create_only);
        )*
    };
}

conformance!(memory, folder, s3, gcs, azure);

#[test]
fn prefixes_are_inserted_before_the_query() {
    assert_eq!(with_prefix("s3://b?endpoint=x", "p"), "s3://b/p?endpoint=x");
    assert_eq!(with_prefix("gs://b/", "p"), "gs://b/p");
}
