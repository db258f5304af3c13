//! `outpost agent` as a process, on a simulated cluster and a folder bucket: SIGTERM ships what
//! is pending and releases the head, so a restarted agent takes over at once with a new epoch;
//! of two agents one writes and the other stands by until the writer is killed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost::format::{ClusterName, Head};
use outpost::store::Store;

mod common;

/// Starts an agent on a simulated cluster. Its health server listens on a free port unless
/// `extra` names one; its errors go to the test's stderr.
fn agent(bucket: &str, cluster: &str, extra: &[&str]) -> Child {
    let listen: &[&str] = if extra.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args([
            "agent",
            "--cluster",
            cluster,
            "--bucket",
            bucket,
            "--sim",
            "300",
            "--sim-changes-per-second",
            "20",
        ])
        .args(listen)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

async fn head(store: &Store, cluster: &ClusterName) -> Option<Head> {
    let (bytes, _) = store.get(&store.layout().head(cluster)).await.ok()?;
    Some(Head::from_json("head.json", &bytes).unwrap())
}

/// Waits (at most 60 s) for a head satisfying `done`.
async fn wait_head(
    store: &Store,
    cluster: &ClusterName,
    what: &str,
    done: impl Fn(&Head) -> bool,
) -> Head {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(h) = head(store, cluster).await
            && done(&h)
        {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

fn epochs(bucket: &Path, cluster: &str) -> Vec<String> {
    let dir = bucket
        .join("outpost/v1/clusters")
        .join(cluster)
        .join("epochs");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn sigterm_flushes_and_releases_so_a_restart_takes_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let cluster = ClusterName::new("restarted").unwrap();

    // A long interval: the first snapshot goes out as soon as the initial list is complete,
    // the diff only because of SIGTERM.
    let mut first = agent(&url, "restarted", &["--interval", "1h"]);
    let snapshot = wait_head(&store, &cluster, "the first snapshot", |_| true).await;
    assert_eq!((snapshot.seq, snapshot.diffs.len()), (1, 0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&first, "TERM");
    assert!(first.wait().unwrap().success());
    let flushed = head(&store, &cluster).await.unwrap();
    assert_eq!(
        (flushed.epoch.clone(), flushed.seq),
        (snapshot.epoch.clone(), 2),
        "SIGTERM shipped a final diff"
    );
    assert!(flushed.released_at.is_some(), "the head was released");
    let (_, objects) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(objects.len() as u64, flushed.objects);

    // A restarted agent does not wait for the takeover grace (15 min by default).
    let mut second = agent(&url, "restarted", &["--interval", "1h"]);
    let taken = wait_head(&store, &cluster, "the takeover", |h| {
        h.epoch != snapshot.epoch
    })
    .await;
    assert_eq!((taken.seq, taken.released_at), (1, None));
    assert!(taken.epoch > snapshot.epoch);
    signal(&second, "TERM");
    assert!(second.wait().unwrap().success());
}

#[tokio::test]
async fn of_two_agents_one_writes_and_the_other_takes_over_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let cluster = ClusterName::new("pair").unwrap();
    let fast = [
        "--interval",
        "1s",
        "--heartbeat",
        "1s",
        "--takeover-grace",
        "3s",
    ];

    let mut a = agent(&url, "pair", &fast);
    let first = wait_head(&store, &cluster, "A's snapshot", |_| true).await;
    let mut b = agent(&url, "pair", &fast);
    // While A lives, B only stands by: A's epoch keeps moving and B writes nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = head(&store, &cluster).await.unwrap();
    assert_eq!(later.epoch, first.epoch);
    assert!(later.heartbeat_at > first.heartbeat_at);
    assert_eq!(
        epochs(dir.path(), "pair"),
        vec![first.epoch.to_string()],
        "B wrote a segment while A was alive"
    );

    // A dies without a word: after the grace, B takes over with a new epoch and a snapshot.
    signal(&a, "KILL");
    a.wait().unwrap();
    let taken = wait_head(&store, &cluster, "B's takeover", |h| h.epoch != first.epoch).await;
    assert_eq!(taken.snapshot.seq, 1);
    assert_eq!(epochs(dir.path(), "pair").len(), 2);
    let (_, objects) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(objects.len() as u64, taken.objects);
    signal(&b, "TERM");
    assert!(b.wait().unwrap().success());
}

/// `GET path` on 127.0.0.1:port: (status code, body), or `None` if nothing answers.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        code,
        response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string(),
    ))
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = agent(&url, "served", &["--listen", &listen, "--interval", "1s"]);
    let start = Instant::now();
    let mut ready = false;
    while start.elapsed() < Duration::from_secs(60) && !ready {
        ready = http_get(port, "/readyz")
            .await
            .is_some_and(|(code, _)| code == 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz never answered 200");
    assert_eq!(http_get(port, "/healthz").await.unwrap().0, 200);
    let (code, metrics) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    for line in [
        "outpost_ready 1",
        "outpost_writer 1",
        "outpost_kind_objects{kind=\"Pod\"}",
        "outpost_segments_written_total",
    ] {
        assert!(metrics.contains(line), "no {line} in {metrics}");
    }
    assert_eq!(http_get(port, "/nothing").await.unwrap().0, 404);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn a_cron_schedule_drives_the_shipping() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let cluster = ClusterName::new("scheduled").unwrap();
    // Every second (six fields, seconds first): diffs follow the snapshot without an interval.
    let mut child = agent(&url, "scheduled", &["--schedule", "* * * * * *"]);
    let head = wait_head(&store, &cluster, "three segments", |h| h.seq >= 3).await;
    assert_eq!(head.snapshot.seq, 1);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn a_simulated_cluster_honours_the_kind_and_namespace_selection() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let cluster = ClusterName::new("selected").unwrap();
    let mut child = agent(
        &url,
        "selected",
        &[
            "--interval",
            "1h",
            "--kinds",
            "Deployment,Service,Namespace",
            "--omit-namespaces",
            "kube-system",
        ],
    );
    wait_head(&store, &cluster, "the first snapshot", |_| true).await;
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    let (_, objects) = common::replay(&store, &cluster).await.unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        objects.keys().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["Deployment", "Namespace", "Service"].into_iter().collect()
    );
    assert!(objects.keys().all(|(_, ns, _)| ns != "kube-system"));
    assert!(objects.len() > 10, "{} objects", objects.len());
}
