//! The Lambda zip (`scripts/package lambda-zip`) as AWS Lambda runs it: its `bootstrap` under the
//! real AWS Lambda Runtime Interface Emulator (the one AWS ships in its base images), invoked
//! over the emulator's HTTP API with a scheduled event, an S3 event notification and an event it
//! does not know, against a folder bucket and a SQLite database.
//!
//! `scripts/test-lambda build` makes both; `scripts/test-lambda env` names them
//! (OUTPOST_TEST_LAMBDA_ZIP, OUTPOST_TEST_LAMBDA_RIE).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost::indexer::Database;
use outpost::store::Store;
use outpost::test_support::rows::stored_rows;
use outpost::test_support::sim::SimCluster;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

/// The emulator, stopped with its `bootstrap` when dropped.
struct Emulator {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Emulator {
    fn start(rie: &str, bootstrap: &Path, dir: &Path, bucket: &str, db: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let log = dir.join("rie.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(rie)
            .arg("--runtime-interface-emulator-address")
            .arg(&address)
            .arg(bootstrap)
            .current_dir(bootstrap.parent().unwrap())
            .env("OUTPOST_BUCKET", bucket)
            .env("OUTPOST_DB", db)
            .env_remove("OUTPOST_DB_SECRET")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own process group: the emulator signals the bootstrap's group, never the
            // test's.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {rie}: {e}"));
        Self {
            child,
            address,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Invokes the function with `event` as Lambda's Invoke API does; returns the HTTP status
    /// and the function's answer (its result, or Lambda's error object).
    async fn invoke(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let request = format!(
            "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let started = Instant::now();
        let mut stream = loop {
            match tokio::net::TcpStream::connect(&self.address).await {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "the emulator does not answer on {}: {e}\n{}",
                    self.address,
                    self.log()
                ),
            }
        };
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("no answer in 120 s\n{}", self.log()))
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head}"));
        let value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}\n{}", self.log()));
        (status, value)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM to the emulator alone (by its pid, never a group): it stops the bootstrap it
        // started, as Lambda does. Should it hang, SIGKILL; an orphaned bootstrap then exits on
        // its own, its Runtime API gone.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zip's entries, each with its Unix mode.
fn entries(zip: &str) -> Vec<String> {
    let output = Command::new("zipinfo").arg(zip).output().unwrap();
    assert!(output.status.success(), "zipinfo {zip}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('-') || line.starts_with('d') || line.starts_with('l'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            format!("{} {}", fields[0], fields[fields.len() - 1])
        })
        .collect()
}

fn applied(answer: &Value) -> &Value {
    &answer["applied"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zips_bootstrap_indexes_under_the_lambda_runtime_interface_emulator() {
    let Some(zip) = common::server_url("OUTPOST_TEST_LAMBDA_ZIP") else {
        return;
    };
    let Some(rie) = common::server_url("OUTPOST_TEST_LAMBDA_RIE") else {
        return;
    };
    assert_eq!(entries(&zip), ["-rwxr-xr-x bootstrap"], "{zip}");
    let dir = tempfile::tempdir().unwrap();
    let function = dir.path().join("function");
    let status = Command::new("unzip")
        .args(["-q", &zip, "-d"])
        .arg(&function)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "unzip {zip}");
    let bootstrap = function.join("bootstrap");
    let mode = std::fs::metadata(&bootstrap).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "{mode:o}");
    // The zip holds this source's binary: its `index --help` knows --db-secret and says how it
    // runs in Lambda.
    let help = Command::new(&bootstrap)
        .args(["index", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--db-secret") && help.contains("provided.al2023"),
        "{help}"
    );

    let bucket = format!("file://{}/bucket", dir.path().display());
    std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
    let db = format!("sqlite://{}/cache.db", dir.path().display());
    let store = Store::open(&bucket).await.unwrap();
    SimCluster::new(&store, "rie-a", 1, 30).ship().await;

    let emulator = Emulator::start(&rie, &bootstrap, dir.path(), &bucket, &db);
    let scheduled = json!({"version": "0", "id": "e-1", "source": "aws.events",
        "detail-type": "Scheduled Event", "account": "123456789012", "region": "us-east-1",
        "time": "2026-12-07T08:00:00Z", "resources": [], "detail": {}});
    let (status, answer) = emulator.invoke(&scheduled).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        applied(&answer),
        &json!(["rie-a"]),
        "{answer}\n{}",
        emulator.log()
    );

    // A second cluster shipped: an S3 event notification about its head indexes it alone.
    SimCluster::new(&store, "rie-b", 2, 30).ship().await;
    let notification = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
        "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "fleet"},
            "object": {"key": "outpost/v1/clusters/rie-b/head.json", "size": 512}}}]});
    let (status, answer) = emulator.invoke(&notification).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        applied(&answer),
        &json!(["rie-b"]),
        "{answer}\n{}",
        emulator.log()
    );

    let (_, answer) = emulator.invoke(&json!({"greeting": "hello"})).await;
    let message = answer["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("unsupported Lambda event") && message.contains("greeting"),
        "{answer}"
    );
    assert!(answer["errorType"].is_string(), "{answer}");
    drop(emulator);

    let database = Database::connect_reader(&db).await.unwrap();
    for cluster in ["rie-a", "rie-b"] {
        assert!(
            !stored_rows(&database, cluster).await.is_empty(),
            "no rows of {cluster}"
        );
    }
}
