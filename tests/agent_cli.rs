//! `outpost agent` as a process, on a simulated cluster and a folder bucket: SIGTERM ships what
//! is pending and releases the head, so a restarted agent takes over at once with a new epoch;
//! of two agents one writes and the other stands by until the writer is killed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost::format::{ClusterName, Head};
use outpost::store::Store;

mod common;

fn agent(bucket: &str, cluster: &str, extra: &[&str]) -> Child {
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
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
