//! The `outpost demo`, `outpost index` and `outpost status` commands as a user runs them: the demo
//! ends with a status table; indexing its bucket again changes nothing; a decommissioned cluster
//! is evicted; bad input is refused with exit code 2 and a message naming what was wrong.

use std::process::{Command, Output};

use outpost::format::{ClusterName, Decommissioned};
use outpost::store::Store;

fn outpost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(args)
        .output()
        .expect("runs outpost")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_then_index_then_status_then_decommission() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let demo_dir = demo_dir.to_str().unwrap();
    let demo = outpost(&[
        "demo",
        "--dir",
        demo_dir,
        "--clusters",
        "2",
        "--objects",
        "150",
        "--duration",
        "2s",
    ]);
    let out = text(&demo);
    assert!(demo.status.success(), "{out}");
    assert!(
        out.contains("CLUSTER") && out.contains("demo-1") && out.contains("demo-2"),
        "{out}"
    );
    assert!(out.contains("ACTIVE"), "{out}");
    assert!(out.contains("sqlite3 "), "{out}");

    let bucket = format!("file://{demo_dir}/bucket");
    let db = format!("sqlite://{demo_dir}/cache.db");
    // A second indexer run over the same bucket: nothing new.
    let index = outpost(&["index", "--bucket", &bucket, "--db", &db, "--once"]);
    let out = text(&index);
    assert!(index.status.success(), "{out}");
    assert!(out.contains("demo-1: unchanged (ACTIVE)"), "{out}");

    let status = outpost(&["status", "--db", &db, "--bucket", &bucket, "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let clusters: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(clusters.as_array().unwrap().len(), 2);
    assert_eq!(clusters[0]["state"], "ACTIVE");
    assert_eq!(clusters[0]["applied"], clusters[0]["head"]);
    assert!(clusters[0]["objects"].as_i64().unwrap() > 50);
    // The demo registers every cluster as an account.
    assert_eq!(clusters[0]["registration"], "registered", "{clusters}");
    assert_eq!(clusters[1]["registration"], "registered", "{clusters}");

    // The uninstall hook of demo-2's agent: evicted at the next run.
    let store = Store::open(&bucket).await.unwrap();
    let name = ClusterName::new("demo-2").unwrap();
    let doc = Decommissioned::new(name.clone(), chrono::Utc::now(), Some("uninstalled".into()));
    store
        .put_overwrite(
            &store.layout().decommissioned(&name),
            doc.to_json().unwrap().into(),
        )
        .await
        .unwrap();
    let index = outpost(&["index", "--bucket", &bucket, "--db", &db, "--once"]);
    let out = text(&index);
    assert!(index.status.success(), "{out}");
    assert!(out.contains("demo-2: evicted"), "{out}");
    let status = outpost(&["status", "--db", &db]);
    let out = text(&status);
    assert!(out.contains("EVICTED"), "{out}");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cats_v1_pod WHERE agent = 'demo-2/KubernetesCoreCachingAgent[1/1]'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "the evicted cluster's rows are gone");
    let kept: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cats_v1_pod WHERE agent = 'demo-1/KubernetesCoreCachingAgent[1/1]'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(kept > 0, "the other cluster's rows stay");
    let accounts: Vec<String> = sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        accounts,
        ["demo-1"],
        "the evicted cluster's account is gone"
    );
    let status = outpost(&["status", "--db", &db, "--json"]);
    let clusters: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(clusters[1]["cluster"], "demo-2");
    assert_eq!(clusters[1]["registration"], "removed", "{clusters}");
}

#[test]
fn bad_input_is_refused_naming_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "clusters:\n  eu-1: {accounts: []}\n").unwrap();
    let policy = policy.to_str().unwrap();
    let template = dir.path().join("accounts.yaml");
    std::fs::write(&template, "prefix: op-\nkubectlRequestTimeoutSeconds: 0\n").unwrap();
    let template = template.to_str().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    // `outpost index --bucket memory://x --db <db>` and then `extra`.
    let index = |db: &str, extra: &[&str]| -> Vec<String> {
        ["index", "--bucket", "memory://x", "--db", db]
            .iter()
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    for (args, expected) in [
        (
            index("oracle://db/x", &["--once"]),
            "unsupported scheme \"oracle\"",
        ),
        (index(&db, &["--policy", policy]), "invalid claim policy"),
        (
            index(&db, &["--account-template", template]),
            "kubectlRequestTimeoutSeconds \"0\": between 1 and 300",
        ),
        (
            index(&db, &["--account-template", "/nonexistent/accounts.yaml"]),
            "cannot read account template /nonexistent/accounts.yaml",
        ),
        (
            index(&db, &["--stale-after", "2h", "--evict-after", "1h"]),
            "must be longer than staleAfter",
        ),
        (
            index(&db, &["--agent-name", "fixed"]),
            "must contain {account}",
        ),
        (
            index(&db, &["--schedule", "61 * * * *"]),
            "minute field \"61\": 61 is outside 0-59",
        ),
        (
            index(&db, &["--concurrency", "0"]),
            "invalid --concurrency 0: it must be between 1 and 8",
        ),
        (
            index("postgres://nobody@127.0.0.1:1/x", &["--once"]),
            "cannot connect to postgres://nobody@127.0.0.1:1/x",
        ),
        (
            vec![
                "demo".to_string(),
                "--dir".to_string(),
                dir.path().display().to_string(),
            ],
            "is not a demo directory",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = outpost(&args);
        let out = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {out}");
        assert!(out.contains(expected), "{args:?}: {out}");
        assert_eq!(out.matches("error:").count(), 1, "said once: {out}");
    }
}
