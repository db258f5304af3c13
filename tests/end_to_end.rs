//! End to end over real servers: the real kube-apiserver → `outpost agent` (a process) → moto
//! (S3 with conditional writes) → `outpost index --interval` (a process) → PostgreSQL. An object
//! created in the cluster appears in the cats tables, an update and a deletion follow; the time
//! from the API call to the row is measured and printed (freshness lag).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use outpost::indexer::db::text;
use serde_json::json;

mod common;

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Polls `sql` (one text column, or none) until `done` holds; returns how long it took.
async fn wait_row(
    pool: &sqlx::AnyPool,
    sql: &str,
    what: &str,
    done: impl Fn(Option<&str>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let value = match sqlx::query(sql).fetch_optional(pool).await {
            Ok(row) => row.map(|r| text(&r, "body").unwrap()),
            Err(_) => None, // the table does not exist yet
        };
        if done(value.as_deref()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_the_cluster_reaches_the_clouddriver_tables() {
    let Some(kubeconfig) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let (Some(s3), Some(pg)) = (
        common::server_url("OUTPOST_TEST_S3_URL"),
        common::server_url("OUTPOST_TEST_POSTGRES_URL"),
    ) else {
        return;
    };
    let admin = common::kube_client(&kubeconfig).await;
    let ns = common::new_namespace(&admin, "e2e").await;
    let namespaces: Api<DynamicObject> =
        Api::all_with(admin.clone(), &common::resource("", "v1", "Namespace"));

    // A fresh bucket prefix and a fresh database.
    let prefix = format!("e2e-{:08x}", rand::random::<u32>());
    let bucket = s3.replacen('?', &format!("/{prefix}?"), 1);
    sqlx::any::install_default_drivers();
    let server = sqlx::AnyPool::connect(&pg).await.unwrap();
    let db_name = format!("outpost_e2e_{:08x}", rand::random::<u32>());
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&server)
        .await
        .unwrap();
    let mut db_url = url::Url::parse(&pg).unwrap();
    db_url.set_path(&format!("/{db_name}"));
    let db = db_url.to_string();

    let binary = env!("CARGO_BIN_EXE_outpost");
    let _agent = Reaped(
        Command::new(binary)
            .args([
                "agent",
                "--cluster",
                "e2e",
                "--bucket",
                &bucket,
                "--kubeconfig",
                &kubeconfig,
                "--namespaces",
                &ns,
                "--interval",
                "1s",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let _indexer = Reaped(
        Command::new(binary)
            .args([
                "index",
                "--bucket",
                &bucket,
                "--db",
                &db,
                "--interval",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    // The first snapshot (an empty namespace) is indexed.
    wait_row(
        &pool,
        "SELECT cluster AS body FROM outpost_clusters WHERE cluster = 'e2e' AND seq IS NOT NULL",
        "the first snapshot",
        |v| v.is_some(),
    )
    .await;

    // Idle, the agent (started without --config) uses next to no CPU: it once spun a core on
    // its closed reconfiguration channel.
    let idle_ticks = cpu_ticks(_agent.0.id());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_ticks = cpu_ticks(_agent.0.id()) - idle_ticks;
    assert!(
        idle_ticks < 100,
        "the idle agent used {idle_ticks} clock ticks of CPU in 3 s (a spinning loop uses ~300)"
    );

    let deployments: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &common::resource("apps", "v1", "Deployment"),
    );
    let id = format!("kubernetes.v2:infrastructure:deployment:e2e:{ns}:web");
    let select = format!("SELECT body FROM cats_v1_deployment WHERE id = '{id}'");
    let labels = json!({"app": "web"});
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "annotations": {"moniker.spinnaker.io/application": "web"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let created = wait_row(&pool, &select, "the created deployment", |v| v.is_some()).await;

    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let updated = wait_row(&pool, &select, "the updated deployment", |v| {
        v.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .is_some_and(|b| b["attributes"]["manifest"]["spec"]["replicas"] == 3)
    })
    .await;

    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = wait_row(&pool, &select, "the deleted deployment", |v| v.is_none()).await;
    let app = wait_row(
        &pool,
        "SELECT body FROM cats_v1_applications WHERE id = 'kubernetes.v2:logical:applications:web'",
        "the application row to go with its last member",
        |v| v.is_none(),
    )
    .await;
    println!(
        "freshness lag (API call → row, agent --interval 1s, indexer --interval 1s): create {:.1}s, update {:.1}s, delete {:.1}s (application row gone after {:.1}s more)",
        created.as_secs_f64(),
        updated.as_secs_f64(),
        deleted.as_secs_f64(),
        app.as_secs_f64()
    );
    pool.close().await;
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    drop(_indexer);
    let _ = sqlx::query(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .execute(&server)
        .await;
}
