//! The gateway against the real kube-apiserver holding the same objects: GET and LIST latency
//! (p50/p99, one request at a time), throughput with concurrent clients, bytes per response and
//! both servers' CPU and memory, measured in one run with the same client over HTTPS.
//!
//! `cargo bench --bench gateway` (`-- --objects N --namespaces N --seconds S --clients N`), with
//! the API server of `scripts/test-kube` (`OUTPOST_TEST_KUBECONFIG`) and PostgreSQL
//! (`OUTPOST_TEST_POSTGRES_URL`, by default the local one of `scripts/test-db`). Under
//! `cargo test` it runs a small smoke version when those servers are set, and skips otherwise.
//!
//! 1. Load: ~100,000 objects (Pods, ConfigMaps, Secrets, Services with labels) over 150
//!    namespaces of skewed sizes, created concurrently with kube-rs. Pods stay Pending: this API
//!    server has no scheduler.
//! 2. The real agent (`outpost agent --config`, default settings, a folder bucket) watches that
//!    server until its first snapshot; the real indexer loads the snapshot into a fresh
//!    PostgreSQL database; `outpost gateway` serves it over HTTPS.
//! 3. Both servers must hold the same objects: every object of the bench's namespaces is listed
//!    from both and compared, after what the agent's redaction changes (managedFields dropped,
//!    Secret values HMAC'd), before anything is timed. A difference fails the bench.
//! 4. The same requests to both, in the same order, from the same seeded choices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use hyper::{Method, Request};
use kube::config::{KubeConfigOptions, Kubeconfig};
use outpost::agent::config::DEFAULT_KINDS;
use outpost::format::ClusterName;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use outpost::test_support::db::{bench_servers, server_database};
use outpost::test_support::{bench, server_url};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLUSTER: &str = "bench";
const TOKEN: &str = "gateway-bench-token-0123456789abcdef";
/// Another gateway binary to time beside this build's.
const BEFORE_VAR: &str = "OUTPOST_BENCH_GATEWAY_BEFORE";
/// Requests in flight while loading the API server.
const LOAD_IN_FLIGHT: usize = 32;
/// What kubectl sends for `kubectl get` (the server-side Table form).
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
/// Distinct `app` label values over the cluster.
const APPS: u64 = 50;

struct Config {
    full: bool,
    objects: usize,
    namespaces: usize,
    seconds: f64,
    clients: usize,
}

fn config() -> Config {
    let full = bench::is_full_run();
    Config {
        full,
        objects: bench::flag("--objects").unwrap_or(if full { 100_000 } else { 600 }),
        namespaces: bench::flag("--namespaces").unwrap_or(if full { 150 } else { 3 }),
        seconds: bench::flag("--seconds").unwrap_or(if full { 6.0 } else { 0.3 }),
        clients: bench::flag("--clients").unwrap_or(if full { 8 } else { 2 }),
    }
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = config();
    let Some(kubeconfig) = server_url("OUTPOST_TEST_KUBECONFIG") else {
        return ExitCode::SUCCESS;
    };
    let postgres = if config.full {
        bench_servers(true).expect("database servers").0
    } else {
        match server_url("OUTPOST_TEST_POSTGRES_URL") {
            Some(url) => url,
            None => return ExitCode::SUCCESS,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(bench(config, kubeconfig, postgres));
    ExitCode::SUCCESS
}

// ------------------------------------------------------------------------ the objects --

/// A small deterministic generator (splitmix64), so both servers get the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn hex(&mut self, len: usize) -> String {
        format!("{:016x}", self.next())[..len].to_string()
    }
}

/// One object the bench creates.
#[derive(Clone)]
struct Object {
    plural: &'static str,
    namespace: String,
    name: String,
    body: Value,
}

fn labels(rng: &mut Rng, app: u64) -> Value {
    let tier = ["web", "api", "worker", "cache"][rng.below(4) as usize];
    json!({
        "app": format!("app-{app}"),
        "tier": tier,
        "release": format!("r{}", rng.below(5)),
        "app.kubernetes.io/managed-by": "spinnaker",
    })
}

fn pod(rng: &mut Rng, namespace: &str, name: &str, app: u64) -> Value {
    let mut labels = labels(rng, app);
    labels["pod-template-hash"] = rng.hex(10).into();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": format!("registry.example.com/team/app-{app}:1.{}.{}", rng.below(20), rng.below(10)),
                    "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": format!("app-{app}-db"), "key": "url"}}},
                    ],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                },
                {
                    "name": "proxy",
                    "image": "registry.example.com/infra/envoy:1.28.0",
                    "args": ["--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                },
            ],
            "volumes": [{"name": "config", "configMap": {"name": format!("app-{app}-config")}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })
}

/// `count` objects over `namespaces` namespaces of skewed sizes (the largest about 16 times the
/// smallest, as a few big teams and many small ones), and the namespaces' names.
fn objects(prefix: &str, count: usize, namespaces: usize) -> (Vec<String>, Vec<Object>) {
    let mut rng = Rng(42);
    let names: Vec<String> = (0..namespaces)
        .map(|i| format!("{prefix}-{i:03}"))
        .collect();
    let weights: Vec<f64> = (0..namespaces)
        .map(|i| 1.0 / (1.0 + i as f64 / 10.0))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut out = Vec::with_capacity(count);
    for (ns, weight) in names.iter().zip(&weights) {
        let here = ((count as f64) * weight / total).round() as usize;
        for i in 0..here {
            let app = rng.below(APPS);
            let roll = rng.below(100);
            let name = format!("app-{app}-{i:05}-{}", rng.hex(5));
            let (plural, body) = if roll < 45 {
                ("pods", pod(&mut rng, ns, &name, app))
            } else if roll < 70 {
                let data: BTreeMap<String, String> = (0..3)
                    .map(|k| {
                        let line = format!("key{k}={} ", rng.hex(16));
                        (format!("setting-{k}.properties"), line.repeat(10 + k * 5))
                    })
                    .collect();
                (
                    "configmaps",
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": ns, "labels": labels(&mut rng, app)},
                        "data": data}),
                )
            } else if roll < 85 {
                let secret = |rng: &mut Rng| {
                    use std::fmt::Write;
                    let mut hex = String::new();
                    for _ in 0..4 {
                        let _ = write!(hex, "{:016x}", rng.next());
                    }
                    base64(hex.as_bytes())
                };
                (
                    "secrets",
                    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": name, "namespace": ns, "labels": labels(&mut rng, app)},
                        "data": {"url": secret(&mut rng), "password": secret(&mut rng)}}),
                )
            } else {
                // Half headless, as StatefulSets' are; the rest get a cluster IP from the
                // server's /16.
                let mut spec = json!({
                    "selector": {"app": format!("app-{app}")},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}],
                });
                if rng.below(2) == 0 {
                    spec["clusterIP"] = "None".into();
                }
                (
                    "services",
                    json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": ns, "labels": labels(&mut rng, app)},
                        "spec": spec}),
                )
            };
            out.push(Object {
                plural,
                namespace: ns.clone(),
                name,
                body,
            });
        }
    }
    (names, out)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// --------------------------------------------------------------------- HTTP and /proc --

async fn client(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("the kubeconfig reads"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("the kubeconfig is valid");
    kube::Client::try_from(config).expect("the client builds")
}

fn get(path: &str, accept: &str) -> Request<Vec<u8>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("accept", accept)
        .body(Vec::new())
        .expect("a request")
}

/// Creates an object, retrying what a busy server may refuse for a moment.
async fn create(client: &kube::Client, path: String, body: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(body).expect("JSON");
    let mut tries = 0;
    loop {
        let request = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header("content-type", "application/json")
            .body(bytes.clone())
            .expect("a request");
        match client.request_text(request).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
            Err(kube::Error::Api(status)) if status.code < 500 && status.code != 429 => {
                return Err(format!("{path}: {}", status.message));
            }
            Err(error) if tries < 5 => {
                tries += 1;
                eprintln!("  retrying {path}: {error}");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(error) => return Err(format!("{path}: {error}")),
        }
    }
}

async fn delete(client: &kube::Client, path: &str) {
    let request = Request::builder()
        .method(Method::DELETE)
        .uri(path)
        .body(Vec::new())
        .expect("a request");
    if let Err(error) = client.request_text(request).await {
        eprintln!("  DELETE {path}: {error}");
    }
}

/// utime + stime in clock ticks, and VmRSS / VmHWM in KiB, of a process.
fn proc_stat(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12), field("VmRSS:"), field("VmHWM:"))
}

/// CPU ticks of every PostgreSQL process on the machine (the server and its backends).
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| proc_stat(pid).0)
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("runs getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("getconf CLK_TCK prints a number")
}

/// The pid a `scripts/test-kube` server wrote (`kube-apiserver`, `etcd`), if it is readable.
fn kube_pid(kubeconfig: &Path, name: &str) -> Option<u32> {
    let dir = kubeconfig.parent()?;
    std::fs::read_to_string(dir.join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// --------------------------------------------------------------------- comparing both --

/// An object as both servers can hold it: without managedFields, and with each Secret value
/// replaced by a marker (the agent ships HMACs of them), serialized with sorted keys.
fn comparable(mut object: Value) -> String {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("selfLink");
    }
    if object.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(data) = object.get_mut("data").and_then(Value::as_object_mut)
    {
        for value in data.values_mut() {
            *value = "(value)".into();
        }
    }
    let mut out = String::new();
    canonical(&object, &mut out);
    out
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Every object of `plural` in the bench's namespaces, as `(namespace, name) → comparable
/// JSON`, listed in pages of 500; and the pages' count.
async fn list_all(
    client: &kube::Client,
    plural: &str,
    prefix: &str,
) -> BTreeMap<(String, String), String> {
    let mut held = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/{plural}?limit=500");
        if let Some(token) = &token {
            path.push_str(&format!("&continue={}", encode(token)));
        }
        let text = client
            .request_text(get(&path, "application/json"))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let mut list: Value = serde_json::from_str(&text).expect("a JSON list");
        let kind = list["kind"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches("List")
            .to_string();
        for mut item in list["items"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default()
        {
            let namespace = item["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !namespace.starts_with(prefix) {
                continue;
            }
            let name = item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            // Items of a list carry no kind or apiVersion: the list says them.
            item["kind"] = kind.clone().into();
            item["apiVersion"] = "v1".into();
            held.insert((namespace, name), comparable(item));
        }
        match list["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    held
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Fails the bench unless both servers hold the same objects of every kind created.
async fn same_objects(
    api: &kube::Client,
    gateway: &kube::Client,
    prefix: &str,
    created: &[Object],
) {
    for plural in ["pods", "configmaps", "secrets", "services"] {
        let expected = created.iter().filter(|o| o.plural == plural).count();
        let from_api = list_all(api, plural, prefix).await;
        let from_gateway = list_all(gateway, plural, prefix).await;
        assert_eq!(
            from_api.len(),
            expected,
            "the API server holds {} {plural} of the {expected} created",
            from_api.len()
        );
        let missing: Vec<_> = from_api
            .keys()
            .filter(|k| !from_gateway.contains_key(*k))
            .take(3)
            .collect();
        let extra: Vec<_> = from_gateway
            .keys()
            .filter(|k| !from_api.contains_key(*k))
            .take(3)
            .collect();
        assert!(
            from_gateway.len() == from_api.len() && missing.is_empty(),
            "{plural}: the gateway holds {} and the API server {}; missing from the gateway e.g. {missing:?}, extra e.g. {extra:?}",
            from_gateway.len(),
            from_api.len()
        );
        let differing: Vec<_> = from_api
            .iter()
            .filter(|(k, v)| from_gateway.get(*k) != Some(*v))
            .collect();
        if let Some((key, api_json)) = differing.first() {
            panic!(
                "{plural}: {} of {} objects differ, e.g. {key:?}:\n  API server: {api_json}\n  gateway:    {}",
                differing.len(),
                from_api.len(),
                from_gateway[*key]
            );
        }
        println!(
            "  {plural}: {} objects, equal on both (managedFields and Secret values aside)",
            from_api.len()
        );
    }
}

// ------------------------------------------------------------------------- the timing --

/// The requests timed, each a function of an iteration number (the same on both servers).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Get,
    ListNamespace,
    ListNamespace500,
    ListAllPaged,
    LabelNamespace,
    LabelAll,
    Table,
}

const OPS: [Op; 7] = [
    Op::Get,
    Op::ListNamespace,
    Op::ListNamespace500,
    Op::ListAllPaged,
    Op::LabelNamespace,
    Op::LabelAll,
    Op::Table,
];

impl Op {
    fn describe(self) -> &'static str {
        match self {
            Op::Get => "GET one object (random kind, namespace, name)",
            Op::ListNamespace => "LIST the pods of one namespace, whole",
            Op::ListNamespace500 => "LIST the pods of one namespace, `limit=500` (first page)",
            Op::ListAllPaged => "LIST every pod, `limit=500` + `continue` (per page)",
            Op::LabelNamespace => "LIST the pods of one namespace, `labelSelector=app=…`",
            Op::LabelAll => "LIST every pod, `labelSelector=app=…`, `limit=500`",
            Op::Table => "Table of the pods of one namespace (`kubectl get pods`, limit 500)",
        }
    }
}

struct Plan {
    created: Vec<Object>,
    namespaces: Vec<String>,
}

impl Plan {
    /// The request(s) of iteration `i`: one path, or for a paged walk the first page's.
    fn path(&self, op: Op, i: usize) -> (String, &'static str) {
        let mut rng = Rng(0x5eed ^ (i as u64).wrapping_mul(0x9E37_79B9) ^ (op as u64) << 48);
        let ns = &self.namespaces[rng.below(self.namespaces.len() as u64) as usize];
        let app = rng.below(APPS);
        match op {
            Op::Get => {
                let o = &self.created[rng.below(self.created.len() as u64) as usize];
                (
                    format!("/api/v1/namespaces/{}/{}/{}", o.namespace, o.plural, o.name),
                    "application/json",
                )
            }
            Op::ListNamespace => (format!("/api/v1/namespaces/{ns}/pods"), "application/json"),
            Op::ListNamespace500 => (
                format!("/api/v1/namespaces/{ns}/pods?limit=500"),
                "application/json",
            ),
            Op::ListAllPaged => ("/api/v1/pods?limit=500".into(), "application/json"),
            Op::LabelNamespace => (
                format!(
                    "/api/v1/namespaces/{ns}/pods?labelSelector={}",
                    encode(&format!("app=app-{app}"))
                ),
                "application/json",
            ),
            Op::LabelAll => (
                format!(
                    "/api/v1/pods?limit=500&labelSelector={}",
                    encode(&format!("app=app-{app}"))
                ),
                "application/json",
            ),
            Op::Table => (
                format!("/api/v1/namespaces/{ns}/pods?limit=500"),
                TABLE_ACCEPT,
            ),
        }
    }
}

/// One iteration: every request it made, as (latency, response bytes). A paged walk follows
/// `continue` to the end; the others are one request.
async fn iteration(client: &kube::Client, plan: &Plan, op: Op, i: usize) -> Vec<(Duration, usize)> {
    let (first, accept) = plan.path(op, i);
    let mut path = first.clone();
    let mut done = Vec::new();
    loop {
        let started = Instant::now();
        let text = client
            .request_text(get(&path, accept))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        done.push((started.elapsed(), text.len()));
        if op != Op::ListAllPaged {
            return done;
        }
        // Only the token is read: parsing the whole page would be the client's time.
        let token = continue_token(&text);
        match token {
            Some(token) => path = format!("{first}&continue={}", encode(&token)),
            None => return done,
        }
    }
}

/// A list's `metadata.continue`, read without parsing the items.
fn continue_token(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "continue", default)]
        continue_: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        metadata: Meta,
    }
    let list: List = serde_json::from_str(text).ok()?;
    list.metadata.continue_.filter(|c| !c.is_empty())
}

struct Timed {
    p50_ms: f64,
    p99_ms: f64,
    sequential_per_s: f64,
    bytes: f64,
    concurrent_per_s: f64,
    /// CPU ms per request during the concurrent phase: the server, then its storage.
    cpu_ms: (f64, f64),
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The server processes whose CPU is counted for one side.
struct Side {
    name: &'static str,
    client: kube::Client,
    server_pid: Option<u32>,
    /// `Some(pid)`: etcd; `None`: every PostgreSQL process.
    storage_pid: Option<u32>,
}

impl Side {
    fn ticks(&self) -> (u64, u64) {
        let server = self.server_pid.map_or(0, |p| proc_stat(p).0);
        let storage = match self.storage_pid {
            Some(pid) => proc_stat(pid).0,
            None => postgres_ticks(),
        };
        (server, storage)
    }
}

async fn time(side: &Side, plan: &Arc<Plan>, op: Op, config: &Config, tick: f64) -> Timed {
    let window = Duration::from_secs_f64(config.seconds);
    // Warm-up: connections, and the servers' caches of what is asked.
    for i in 0..3 {
        iteration(&side.client, plan, op, 1_000_000 + i).await;
    }
    let mut latencies = Vec::new();
    let mut bytes = 0usize;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < window || i < 5 {
        for (latency, size) in iteration(&side.client, plan, op, i).await {
            latencies.push(latency);
            bytes += size;
        }
        i += 1;
    }
    let sequential_s = started.elapsed().as_secs_f64();
    latencies.sort();
    let next = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let before = side.ticks();
    let started = Instant::now();
    let workers: Vec<_> = (0..config.clients)
        .map(|_| {
            let (client, plan, next, requests) = (
                side.client.clone(),
                plan.clone(),
                next.clone(),
                requests.clone(),
            );
            tokio::spawn(async move {
                while started.elapsed() < window {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let done = iteration(&client, &plan, op, i).await;
                    requests.fetch_add(done.len(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a client task");
    }
    let concurrent_s = started.elapsed().as_secs_f64();
    let after = side.ticks();
    let requests = requests.load(Ordering::Relaxed).max(1) as f64;
    let per_request = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tick * 1000.0 / requests;
    Timed {
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        sequential_per_s: latencies.len() as f64 / sequential_s,
        bytes: bytes as f64 / latencies.len() as f64,
        concurrent_per_s: requests / concurrent_s,
        cpu_ms: (
            per_request(before.0, after.0),
            per_request(before.1, after.1),
        ),
    }
}

// --------------------------------------------------------------------------- the run --

/// A test CA and a serving certificate for 127.0.0.1 signed by it (EC P-256, as the API
/// server's of `scripts/test-kube`): (CA, certificate, key). rustls refuses a self-signed
/// certificate that is its own CA.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "1",
            "-subj",
            "/CN=outpost-bench-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=outpost-gateway",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("tls.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("tls.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-sha256",
        "-extfile",
        "tls.ext",
        "-out",
        "tls.crt",
    ]);
    (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"))
}

async fn bench(config: Config, kubeconfig: String, postgres: String) {
    let tick = clock_ticks_per_second();
    let kubeconfig = PathBuf::from(kubeconfig);
    let api = client(&kubeconfig).await;
    let version = api
        .apiserver_version()
        .await
        .expect("the API server answers");
    let prefix = format!("gb{:04x}", rand::random::<u16>());
    let (namespaces, created) = objects(&prefix, config.objects, config.namespaces);
    let per_kind = |plural: &str| created.iter().filter(|o| o.plural == plural).count();
    println!(
        "Gateway bench: {} objects ({} pods, {} configmaps, {} secrets, {} services) in {} namespaces `{prefix}-*`; API server {}",
        created.len(),
        per_kind("pods"),
        per_kind("configmaps"),
        per_kind("secrets"),
        per_kind("services"),
        namespaces.len(),
        version.git_version
    );

    // 1. The API server.
    let started = Instant::now();
    for ns in &namespaces {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        create(&api, "/api/v1/namespaces".into(), &body)
            .await
            .expect("a namespace");
    }
    let failures: Vec<String> = stream::iter(&created)
        .map(|o| {
            let api = api.clone();
            async move {
                create(
                    &api,
                    format!("/api/v1/namespaces/{}/{}", o.namespace, o.plural),
                    &o.body,
                )
                .await
            }
        })
        .buffer_unordered(LOAD_IN_FLIGHT)
        .filter_map(|r| std::future::ready(r.err()))
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} creations failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let load_s = started.elapsed().as_secs_f64();
    println!(
        "Loaded into the API server: {:.1} s ({:.0} objects/s, {LOAD_IN_FLIGHT} requests in flight)",
        load_s,
        created.len() as f64 / load_s
    );

    // 2. The agent's first snapshot into a folder bucket. Its default kinds leave ConfigMaps and
    // Secrets out; they are added, as a deployment that serves them would.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("the bucket folder");
    let head = bucket.join(format!("outpost/v1/clusters/{CLUSTER}/head.json"));
    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "cluster: {CLUSTER}\nbucket: \"file://{}\"\nkubeconfig: \"{}\"\nlisten: \"127.0.0.1:{}\"\nkinds: [{}, ConfigMap, Secret]\n",
            bucket.display(),
            kubeconfig.display(),
            free_port(),
            DEFAULT_KINDS.join(", ")
        ),
    )
    .expect("the agent config");
    let outpost = PathBuf::from(env!("CARGO_BIN_EXE_outpost"));
    let started = Instant::now();
    let mut agent = Proc(
        Command::new(&outpost)
            .arg("agent")
            .arg("--config")
            .arg(&agent_config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log")).expect("the agent log"))
            .spawn()
            .expect("the agent starts"),
    );
    while !head.exists() {
        if let Ok(Some(status)) = agent.0.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
            panic!("the agent exited ({status}):\n{log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "no snapshot after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let agent_s = started.elapsed().as_secs_f64();
    let agent_hwm = proc_stat(agent.0.id()).2;
    drop(agent);
    let shipped: u64 = walk(&bucket)
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "Agent: first snapshot {agent_s:.1} s after its start ({:.1} MB in the bucket, agent peak RSS {:.0} MB); stopped",
        shipped as f64 / 1e6,
        agent_hwm as f64 * 1024.0 / 1e6
    );

    // 3. The indexer into a fresh PostgreSQL database.
    let db = server_database(&postgres, "outpost_bench").await;
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .expect("the bucket");
    let database = Database::connect(&db.url, None)
        .await
        .expect("the database");
    let indexer = Indexer {
        store,
        database: database.clone(),
        options: IndexOptions::default(),
    };
    let started = Instant::now();
    indexer
        .index_cluster(&ClusterName::new(CLUSTER).expect("a cluster name"))
        .await
        .expect("indexed");
    let index_s = started.elapsed().as_secs_f64();
    database.pool().close().await;
    println!("Indexer: snapshot loaded into PostgreSQL in {index_s:.1} s");

    // 4. The gateway over that database, HTTPS.
    let (ca, cert, key) = certificates(dir.path());
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("- {{name: bench, token: {TOKEN}}}\n")).expect("tokens.yaml");
    let (gateway_process, gateway) = spawn_gateway(
        &outpost,
        &db.url,
        dir.path(),
        "gateway",
        (&ca, &cert, &key),
        &tokens,
    )
    .await;
    // Another build of the gateway over the same database, timed in the same run (a change's
    // before and after): `OUTPOST_BENCH_GATEWAY_BEFORE=/path/to/outpost`.
    let before_gateway = match std::env::var_os(BEFORE_VAR) {
        Some(binary) => {
            println!(
                "Also timing the gateway of {}",
                PathBuf::from(&binary).display()
            );
            Some(
                spawn_gateway(
                    Path::new(&binary),
                    &db.url,
                    dir.path(),
                    "gateway-before",
                    (&ca, &cert, &key),
                    &tokens,
                )
                .await,
            )
        }
        None => None,
    };

    // 5. The same objects on both.
    println!("Checking that both servers hold the same objects:");
    same_objects(&api, &gateway, &prefix, &created).await;

    // 6. The same requests to both.
    let sides = [
        Side {
            name: "kube-apiserver",
            client: api.clone(),
            server_pid: kube_pid(&kubeconfig, "kube-apiserver"),
            storage_pid: kube_pid(&kubeconfig, "etcd"),
        },
        Side {
            name: "gateway",
            client: gateway.clone(),
            server_pid: Some(gateway_process.0.id()),
            storage_pid: None,
        },
    ];
    let sides: Vec<Side> = sides
        .into_iter()
        .chain(before_gateway.as_ref().map(|(process, client)| Side {
            name: "gateway before",
            client: client.clone(),
            server_pid: Some(process.0.id()),
            storage_pid: None,
        }))
        .collect();
    let before: Vec<_> = sides.iter().map(|s| s.server_pid.map(proc_stat)).collect();
    let plan = Arc::new(Plan {
        created,
        namespaces,
    });
    println!(
        "\n{} s per phase, sequential then {} concurrent clients; CPU per request during the concurrent phase (server + its storage: etcd, or every PostgreSQL process)\n",
        config.seconds, config.clients
    );
    println!(
        "| request | server | bytes/response | p50 ms | p99 ms | sequential req/s | {} clients req/s | CPU ms/req: server + storage |",
        config.clients
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for op in OPS {
        for side in &sides {
            let t = time(side, &plan, op, &config, tick).await;
            println!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} + {:.2} |",
                op.describe(),
                side.name,
                t.bytes,
                t.p50_ms,
                t.p99_ms,
                t.sequential_per_s,
                t.concurrent_per_s,
                t.cpu_ms.0,
                t.cpu_ms.1
            );
        }
    }
    println!(
        "\n| process | RSS before the requests | RSS after | peak RSS (VmHWM) |\n|---|---:|---:|---:|"
    );
    for (side, before) in sides.iter().zip(before) {
        if let (Some(pid), Some(before)) = (side.server_pid, before) {
            let after = proc_stat(pid);
            let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
            println!(
                "| {} | {:.0} MB | {:.0} MB | {:.0} MB |",
                side.name,
                mb(before.1),
                mb(after.1),
                mb(after.2)
            );
        }
    }
    drop(gateway_process);
    drop(before_gateway);
    // The gateways are gone and the bench's own pools closed, but PostgreSQL may not have
    // noticed every session's end yet: what is left of them would refuse the drop.
    if let (Some(name), Ok(admin)) = (db.name(), sqlx::AnyPool::connect(&postgres).await) {
        let ended = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&admin)
        .await;
        if let Err(error) = ended {
            eprintln!("could not end the sessions of {name}: {error}");
        }
        admin.close().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    db.drop_database().await;
    if !config.full {
        // The smoke run shares its API server with the other tests: it leaves nothing behind
        // (unscheduled pods go at once; namespaces stay Terminating without a controller).
        // Services have no collection delete: one at a time.
        for o in plan.created.iter().filter(|o| o.plural == "services") {
            delete(
                &api,
                &format!("/api/v1/namespaces/{}/services/{}", o.namespace, o.name),
            )
            .await;
        }
        for ns in &plan.namespaces {
            for plural in ["pods", "configmaps", "secrets"] {
                delete(&api, &format!("/api/v1/namespaces/{ns}/{plural}")).await;
            }
            delete(&api, &format!("/api/v1/namespaces/{ns}")).await;
        }
        println!("(smoke run: figures mean nothing at this size)");
    }
}

/// `outpost gateway` from `binary` over the database at `url`, HTTPS with `tls` (CA,
/// certificate, key), and a client of it, once it answers.
async fn spawn_gateway(
    binary: &Path,
    url: &str,
    dir: &Path,
    name: &str,
    tls: (&Path, &Path, &Path),
    tokens: &Path,
) -> (Proc, kube::Client) {
    let (ca, cert, key) = tls;
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let process = Proc(
        Command::new(binary)
            .arg("gateway")
            .arg("--db")
            .arg(url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--tokens")
            .arg(tokens)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the gateway log"))
            .spawn()
            .expect("the gateway starts"),
    );
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gw\n  cluster: {{server: \"https://127.0.0.1:{port}/clusters/{CLUSTER}\", certificate-authority: \"{}\"}}\nusers:\n- name: gw\n  user: {{token: {TOKEN}}}\ncontexts:\n- name: gw\n  context: {{cluster: gw, user: gw}}\ncurrent-context: gw\n",
            ca.display()
        ),
    )
    .expect("the gateway kubeconfig");
    let client = client(&kubeconfig).await;
    let started = Instant::now();
    while let Err(error) = client.apiserver_version().await {
        if started.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the gateway does not answer: {error}; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, client)
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
