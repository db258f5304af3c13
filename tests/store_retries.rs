//! Retries: transient failures (503) are retried with backoff until they pass; permanent ones
//! (403) are returned at once. A real S3 server (moto) cannot fail on demand, so a small proxy
//! in front of it injects the faults: these tests are named `*_fault_injected`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use outpost::format::{ClusterName, SegmentType};
use outpost::store::{Error, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// Answers the first `failures` requests with `status` (closing the connection), then forwards
/// every connection to `upstream`. Returns the proxy's address and the count of requests seen.
async fn faulty_proxy(
    upstream: String,
    failures: usize,
    status: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    // Read the request head so the client sees a response, not a reset.
                    let mut buffer = vec![0u8; 64 << 10];
                    let _ = client.read(&mut buffer).await;
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = client.write_all(response.as_bytes()).await;
                    return;
                }
                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (address, seen)
}

/// The S3 server's `host:port` and the URL through a proxy at `proxy`.
fn s3_through(proxy: &str) -> Option<(String, String)> {
    let base = common::server_url("OUTPOST_TEST_S3_URL")?;
    let endpoint = base
        .split("endpoint=http://")
        .nth(1)?
        .split('&')
        .next()?
        .to_string();
    let prefix = format!("retry-{:08x}", rand::random::<u32>());
    let url = base.replace(&endpoint, proxy).replacen(
        '?',
        &format!("/{prefix}?retries=4&retry_timeout=30&"),
        1,
    );
    Some((endpoint, url))
}

#[tokio::test]
async fn transient_503s_are_retried_until_they_pass_fault_injected() {
    let Some((upstream, _)) = s3_through("unused") else {
        return;
    };
    let (proxy, seen) = faulty_proxy(upstream, 2, "503 Service Unavailable").await;
    let (_, url) = s3_through(&proxy).unwrap();
    let store = Store::open(&url).await.unwrap();
    let key = store.layout().head(&ClusterName::new("retried").unwrap());
    store
        .put_create(&key, Bytes::from_static(b"landed"))
        .await
        .unwrap();
    assert!(
        seen.load(Ordering::SeqCst) >= 3,
        "expected two failed attempts and a success"
    );
    assert_eq!(&store.get(&key).await.unwrap().0[..], b"landed");
}

#[tokio::test]
async fn permanent_403s_are_not_retried_fault_injected() {
    let Some((upstream, _)) = s3_through("unused") else {
        return;
    };
    let (proxy, seen) = faulty_proxy(upstream, usize::MAX, "403 Forbidden").await;
    let (_, url) = s3_through(&proxy).unwrap();
    let store = Store::open(&url).await.unwrap();
    let key = store.layout().segment(
        &ClusterName::new("denied").unwrap(),
        &outpost::format::Epoch::from_parts(1, 1).unwrap(),
        1,
        SegmentType::Snapshot,
    );
    let err = store
        .put_create(&key, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Request { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains(key.path.as_ref()), "{err}");
    // One attempt for the put, plus the read that checks whether an earlier attempt landed is
    // not made for a refusal that is not 'already exists'.
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn persistent_503s_end_as_a_transient_error_fault_injected() {
    let Some((upstream, _)) = s3_through("unused") else {
        return;
    };
    let (proxy, seen) = faulty_proxy(upstream, usize::MAX, "503 Service Unavailable").await;
    let (_, url) = s3_through(&proxy).unwrap();
    let url = url.replace("retries=4", "retries=2");
    let store = Store::open(&url).await.unwrap();
    let key = store.layout().head(&ClusterName::new("down").unwrap());
    let err = store.get(&key).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "one attempt and two retries"
    );
}
