//! The indexer as an AWS Lambda function: the `outpost` binary, started without arguments as a
//! custom runtime's `bootstrap`, polls a Lambda Runtime API (served here by the test: the one
//! thing a real server cannot be run locally for) and answers an S3 event notification by
//! indexing the cluster it names, a scheduled event by indexing all, and an unknown event with an
//! error naming its shape.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State as AxumState};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;
use outpost::agent::redact::Redactor;
use outpost::agent::ship::{ShipOptions, Shipper};
use outpost::agent::state::{Scope, State, kind_name};
use outpost::agent::watch::redacted_entry;
use outpost::format::ClusterName;
use outpost::store::Store;
use serde_json::{Value, json};

#[derive(Default)]
struct Runtime {
    events: Vec<Value>,
    served: usize,
    answers: Vec<(String, String, Value)>,
}

type Shared = Arc<Mutex<Runtime>>;

async fn next(AxumState(runtime): AxumState<Shared>) -> impl IntoResponse {
    loop {
        let event = {
            let mut r = runtime.lock().unwrap();
            let event = r.events.get(r.served).cloned();
            if event.is_some() {
                r.served += 1;
            }
            event.map(|e| (r.served, e))
        };
        if let Some((n, event)) = event {
            let mut headers = HeaderMap::new();
            let deadline = (Utc::now().timestamp_millis() + 60_000).to_string();
            headers.insert(
                "lambda-runtime-aws-request-id",
                format!("req-{n}").parse().unwrap(),
            );
            headers.insert("lambda-runtime-deadline-ms", deadline.parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:outpost"
                    .parse()
                    .unwrap(),
            );
            headers.insert("lambda-runtime-trace-id", "Root=1-test".parse().unwrap());
            return (headers, event.to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn answer(
    AxumState(runtime): AxumState<Shared>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> impl IntoResponse {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    runtime.lock().unwrap().answers.push((id, kind, value));
    axum::http::StatusCode::ACCEPTED
}

async fn ship(store: &Store, name: &str) {
    let cluster = ClusterName::new(name).unwrap();
    let redactor = Redactor::new(&[4; 32], vec![]).unwrap();
    let mut shipper = Shipper::new(
        store.clone(),
        cluster,
        ShipOptions {
            redaction: redactor.rule_ids(),
            ..ShipOptions::default()
        },
    );
    let mut state = State::new();
    let object = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
        "spec": {"selector": {"app": "web"}}});
    let scope = Scope {
        kind: kind_name("v1", "Service"),
        namespace: None,
    };
    state.apply(redacted_entry(object, &scope, &redactor).unwrap());
    shipper.tick(&mut state, Utc::now()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_lambda_events_on_a_mock_runtime_api() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("file://{}/bucket", dir.path().display());
    std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
    let db = format!("sqlite://{}/cache.db", dir.path().display());
    let store = Store::open(&bucket).await.unwrap();
    ship(&store, "lam-a").await;
    ship(&store, "lam-b").await;

    let runtime: Shared = Arc::default();
    runtime.lock().unwrap().events = vec![
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "fleet"}, "object": {"key": "outpost/v1/clusters/lam-a/head.json"}}}]}),
        json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
        json!({"greeting": "hello"}),
    ];
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .with_state(runtime.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "outpost-indexer")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("OUTPOST_BUCKET", &bucket)
        .env("OUTPOST_DB", &db)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while runtime.lock().unwrap().answers.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "answers so far: {:?}",
            runtime.lock().unwrap().answers
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let answers = runtime.lock().unwrap().answers.clone();
    let (id, kind, body) = &answers[0];
    assert_eq!(
        (id.as_str(), kind.as_str()),
        ("req-1", "response"),
        "{body}"
    );
    assert_eq!(body["applied"], json!(["lam-a"]));
    let (id, kind, body) = &answers[1];
    assert_eq!(
        (id.as_str(), kind.as_str()),
        ("req-2", "response"),
        "{body}"
    );
    assert_eq!(body["applied"], json!(["lam-b"]));
    assert_eq!(body["unchanged"], json!(["lam-a"]));
    let (id, kind, body) = &answers[2];
    assert_eq!((id.as_str(), kind.as_str()), ("req-3", "error"), "{body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("unsupported Lambda event") && message.contains("greeting"),
        "{body}"
    );
}
