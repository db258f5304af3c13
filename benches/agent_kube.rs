//! Agent against a real kube-apiserver holding ~10k realistic objects: resident memory, CPU per
//! watch event and time from start to the first snapshot, against a plain kube-rs reflector
//! watching the same kinds, measured in the same run.
//!
//! `just bench-kube` (starts a fresh API server with `scripts/test-kube`, runs
//! `cargo bench --bench agent_kube`, stops the server). By hand:
//!
//! ```sh
//! export OUTPOST_TEST_RUN=/tmp/bench-kube-run
//! scripts/test-kube start && eval "$(scripts/test-kube env)"
//! cargo bench --bench agent_kube
//! scripts/test-kube stop
//! ```
//!
//! `OUTPOST_BENCH_AGENT=/path/to/outpost` measures that agent binary instead of the one cargo
//! built with the bench (e.g. a copy of an older build, to compare in the same conditions).
//!
//! 1. Load: a simulated cluster (`sim::Churn`, seed 42), sized so that ~10,000 objects are of the
//!    agent's default kinds, only those loaded: namespaces first, then owners before the objects
//!    they own, 16 requests in flight. Server-managed metadata is removed; `ownerReferences` are
//!    rewritten to the uid the server gave the owner (references to owners not loaded, e.g. the
//!    Node of a mirror pod, are dropped). What this server allocates or generates itself is left
//!    to it (Service cluster IPs and node ports, Job selectors and their labels, Pod priority),
//!    and container requests the simulation drew above their limit are capped at it. Then every
//!    `status` is written through the status subresource, so objects (pods above all) have their
//!    real size.
//! 2. The agent (`outpost agent --config`, admin kubeconfig, default kinds, every namespace,
//!    default settings, a folder bucket) as a subprocess: time from spawn to `head.json`, then
//!    RSS. (Started with flags only, the agent currently spins a core while idle.)
//! 3. The baseline: this binary re-executed with `OUTPOST_BENCH_ROLE=reflector`: one
//!    `kube::runtime::reflector` + `watcher` per default kind over `DynamicObject`, every
//!    namespace; it prints `ready` once every store's initial list is complete.
//! 4. Churn with both running: merge patches of an annotation on random pods and deployments at
//!    a steady rate; each is one watch event for each process. CPU (utime + stime) over the
//!    window, until the agent has shipped the diff holding the last change.
//!
//! Memory figures come from `/proc/<pid>/status` (VmRSS, VmHWM, RssAnon), CPU from
//! `/proc/<pid>/stat`. Under `cargo test` this target only says how to run it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use outpost::agent::config::DEFAULT_KINDS;
use outpost::agent::redact::Redactor;
use outpost::agent::state::{Scope, kind_name};
use outpost::agent::watch::{discover, redacted_entry};
use outpost::sim::Churn;
use serde_json::{Value, json};

/// Set to `reflector` in the baseline process.
const ROLE_VAR: &str = "OUTPOST_BENCH_ROLE";
/// The agent binary to measure, if not the one built with this bench.
const AGENT_VAR: &str = "OUTPOST_BENCH_AGENT";
/// Objects of the watched kinds to load.
const TARGET_OBJECTS: usize = 10_000;
/// Requests in flight while loading and churning.
const IN_FLIGHT: usize = 16;
/// Updates in the churn phase, and their rate.
const UPDATES: usize = 2_000;
const UPDATES_PER_SECOND: f64 = 50.0;
/// Quiet window measured before the churn (background CPU).
const IDLE: Duration = Duration::from_secs(10);
const CLUSTER: &str = "bench";
const SEED: u64 = 42;

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The same runtime as `outpost` itself (multi-threaded, one worker per core).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    if std::env::var(ROLE_VAR).as_deref() == Ok("reflector") {
        runtime.block_on(reflector_role());
        return ExitCode::SUCCESS;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "agent_kube: needs a real API server and a few minutes; run `just bench-kube` \
             (or `cargo bench --bench agent_kube` with OUTPOST_TEST_KUBECONFIG set). Nothing to do under cargo test."
        );
        return ExitCode::SUCCESS;
    }
    let Ok(kubeconfig) = std::env::var("OUTPOST_TEST_KUBECONFIG") else {
        eprintln!(
            "agent_kube: OUTPOST_TEST_KUBECONFIG is not set. Run `just bench-kube`, or start an API \
             server yourself:\n  export OUTPOST_TEST_RUN=/tmp/bench-kube-run\n  \
             scripts/test-kube start && eval \"$(scripts/test-kube env)\"\n  \
             cargo bench --bench agent_kube\n  scripts/test-kube stop"
        );
        return ExitCode::FAILURE;
    };
    runtime.block_on(bench(kubeconfig))
}

async fn client(kubeconfig: &str) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("the kubeconfig reads"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("the kubeconfig is valid");
    kube::Client::try_from(config).expect("the client builds")
}

/// The API resource of every default kind the agent's discovery finds (the preferred version of
/// each group), i.e. the kinds the agent watches.
async fn resources(client: &kube::Client) -> BTreeMap<String, ApiResource> {
    let served = discover(client).await.expect("API discovery");
    DEFAULT_KINDS
        .iter()
        .filter_map(|kind| Some((kind.to_string(), served.get(*kind)?.0.clone())))
        .collect()
}

// ------------------------------------------------------------------ the baseline process --

/// A plain kube-rs reflector per default kind; prints `ready <objects>` once every store is
/// ready, then answers every line on stdin with `events <n> objects <n>` (watch events after the
/// initial lists). Exits when stdin closes.
async fn reflector_role() {
    let kubeconfig = std::env::var("OUTPOST_TEST_KUBECONFIG").expect("OUTPOST_TEST_KUBECONFIG");
    let client = client(&kubeconfig).await;
    let events = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for resource in resources(&client).await.into_values() {
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        readers.push(writer.as_reader());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let stream = reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        let events = events.clone();
        tokio::spawn(stream.for_each(move |event| {
            if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) = event {
                events.fetch_add(1, Ordering::Relaxed);
            }
            std::future::ready(())
        }));
    }
    for reader in &readers {
        reader.wait_until_ready().await.expect("the store fills");
    }
    let objects = |readers: &[reflector::Store<DynamicObject>]| -> usize {
        readers.iter().map(|r| r.len()).sum()
    };
    println!("ready {}", objects(&readers));
    std::io::stdout().flush().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            println!(
                "events {} objects {}",
                events.load(Ordering::Relaxed),
                objects(&readers)
            );
            let _ = std::io::stdout().flush();
        }
        std::process::exit(0);
    });
    std::future::pending::<()>().await;
}

// ---------------------------------------------------------------------------- measuring --

/// One reading of a process's memory and CPU.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    cpu_ticks: u64,
    at: Instant,
}

fn sample(pid: u32) -> Sample {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reads /proc/PID/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reads /proc/PID/stat");
    // "pid (comm) state ppid ...": after the last ')' field 3 (state) is index 0, so utime
    // (field 14) and stime (field 15) are 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .expect("/proc/PID/stat has a comm")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> u64 { fields[i].parse().expect("a tick count") };
    Sample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        cpu_ticks: ticks(11) + ticks(12),
        at: Instant::now(),
    }
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

/// MB (10^6 bytes) from KiB.
fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the end of its log if it has exited.
    fn check_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{what} exited ({status}); end of its log:\n{}",
                tail.join("\n")
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` from the agent: the value of each sample line.
fn metrics(port: u16) -> HashMap<String, f64> {
    let mut values = HashMap::new();
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return values;
    };
    let request = "GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_err()
        || stream.read_to_string(&mut response).is_err()
    {
        return values;
    }
    for line in response.lines().filter(|l| l.starts_with("outpost_")) {
        if let Some((name, value)) = line.rsplit_once(' ')
            && let Ok(value) = value.parse()
        {
            values.insert(name.to_string(), value);
        }
    }
    values
}

fn metric(values: &HashMap<String, f64>, name: &str) -> f64 {
    values.get(name).copied().unwrap_or(f64::NAN)
}

// -------------------------------------------------------------------------------- loading --

type Key = (String, String, String);

/// An object's key, its status to write, and the uid it was created with (`None`: it existed).
type Created = (Key, Option<Value>, Result<Option<String>, String>);

fn key(kind: &str, namespace: &str, name: &str) -> Key {
    (kind.to_string(), namespace.to_string(), name.to_string())
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The simulated objects of the watched kinds, about `target` of them; and how many objects
/// (of every kind) the simulated cluster had.
fn sim_objects(target: usize, kinds: &BTreeMap<String, ApiResource>) -> (usize, Vec<Value>) {
    let watched = |o: &Value| kinds.contains_key(text(o, "/kind"));
    let probe = Churn::new(SEED, target).initial();
    let share = probe.iter().filter(|o| watched(o)).count() as f64 / probe.len() as f64;
    let all = Churn::new(SEED, (target as f64 / share).round() as usize).initial();
    (all.len(), all.into_iter().filter(watched).collect())
}

/// A resource quantity (`500m`, `384Mi`, `2Gi`, `1`) as a number.
fn quantity(text: &str) -> Option<f64> {
    let units = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// Caps every container's requests at its limits: the simulation sometimes draws a memory
/// request above the memory limit, which the API server refuses. Returns how many were capped.
fn cap_requests(object: &mut Value) -> usize {
    let mut capped = 0;
    for pointer in [
        "/spec/containers",
        "/spec/initContainers",
        "/spec/template/spec/containers",
        "/spec/template/spec/initContainers",
        "/spec/jobTemplate/spec/template/spec/containers",
        "/spec/jobTemplate/spec/template/spec/initContainers",
    ] {
        let Some(containers) = object.pointer_mut(pointer).and_then(Value::as_array_mut) else {
            continue;
        };
        for resources in containers.iter_mut().filter_map(|c| c.get_mut("resources")) {
            let limits = resources.get("limits").cloned().unwrap_or_default();
            let Some(requests) = resources.get_mut("requests").and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (name, request) in requests.iter_mut() {
                let limit = &limits[name.as_str()];
                let (Some(r), Some(l)) = (
                    request.as_str().and_then(quantity),
                    limit.as_str().and_then(quantity),
                ) else {
                    continue;
                };
                if r > l {
                    *request = limit.clone();
                    capped += 1;
                }
            }
        }
    }
    capped
}

/// Load order: an object's owners are created in an earlier phase.
fn phase(kind: &str) -> usize {
    match kind {
        "Namespace" => 0,
        "ReplicaSet" | "Job" => 2,
        "Pod" => 3,
        _ => 1,
    }
}

/// The object as it can be created: server-managed metadata removed, owner references pointing
/// at the created owners, fields this API server allocates itself removed; and its status.
fn prepare(
    mut object: Value,
    resource: &ApiResource,
    uids: &HashMap<Key, String>,
) -> (Value, Option<Value>) {
    let kind = text(&object, "/kind").to_string();
    let namespace = text(&object, "/metadata/namespace").to_string();
    let status = object.as_object_mut().and_then(|o| o.remove("status"));
    // The version discovery prefers (the one the agent watches).
    object["apiVersion"] = resource.api_version.clone().into();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(field);
        }
        if let Some(Value::Array(owners)) = meta.remove("ownerReferences") {
            let owners: Vec<Value> = owners
                .into_iter()
                .filter_map(|mut owner| {
                    let uid = uids.get(&key(
                        text(&owner, "/kind"),
                        &namespace,
                        text(&owner, "/name"),
                    ))?;
                    owner["uid"] = uid.clone().into();
                    Some(owner)
                })
                .collect();
            if !owners.is_empty() {
                meta.insert("ownerReferences".into(), owners.into());
            }
        }
    }
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        match kind.as_str() {
            "Service" => {
                // Allocated by this server (its own service range, its own node ports).
                if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                spec.remove("healthCheckNodePort");
                for port in spec
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(port) = port.as_object_mut() {
                        port.remove("nodePort");
                    }
                }
            }
            // The server generates the selector and the template's labels for it (with the
            // Job's new uid).
            "Job" => {
                spec.remove("selector");
                if let Some(labels) = spec
                    .get_mut("template")
                    .and_then(|t| t.pointer_mut("/metadata/labels"))
                    .and_then(Value::as_object_mut)
                {
                    for label in [
                        "controller-uid",
                        "job-name",
                        "batch.kubernetes.io/controller-uid",
                        "batch.kubernetes.io/job-name",
                    ] {
                        labels.remove(label);
                    }
                }
            }
            // Computed by the Priority admission plugin.
            "Pod" => {
                spec.remove("priority");
            }
            _ => {}
        }
    }
    let status =
        status.filter(|s| kind != "Namespace" && s.as_object().is_some_and(|m| !m.is_empty()));
    (object, status)
}

fn api(client: &kube::Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, resource)
    }
}

/// The start of an error message (the API server's are long).
fn truncate(message: &str) -> String {
    match message.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message.to_string(),
    }
}

/// Outcome of the load.
struct Loaded {
    /// Container requests capped at their limits.
    capped: usize,
    created: usize,
    existed: usize,
    rejected: usize,
    statuses: usize,
    status_rejected: usize,
    seconds: f64,
    per_kind: BTreeMap<String, usize>,
    /// Pods and Deployments, for the churn.
    targets: Vec<Key>,
}

async fn load(
    client: &kube::Client,
    resources: &BTreeMap<String, ApiResource>,
    objects: Vec<Value>,
) -> Loaded {
    let started = Instant::now();
    let mut phases: Vec<Vec<Value>> = vec![Vec::new(); 4];
    let mut capped = 0;
    for mut object in objects {
        capped += cap_requests(&mut object);
        phases[phase(text(&object, "/kind"))].push(object);
    }
    let mut uids: HashMap<Key, String> = HashMap::new();
    let mut statuses: Vec<(Key, Value)> = Vec::new();
    let (mut created, mut existed, mut rejected) = (0, 0, 0);
    let mut per_kind = BTreeMap::new();
    let mut rejected_per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut targets = Vec::new();
    for batch in phases {
        let prepared: Vec<(Key, Value, Option<Value>)> = batch
            .into_iter()
            .map(|object| {
                let kind = text(&object, "/kind").to_string();
                let (object, status) = prepare(object, &resources[&kind], &uids);
                let key = key(
                    &kind,
                    text(&object, "/metadata/namespace"),
                    text(&object, "/metadata/name"),
                );
                (key, object, status)
            })
            .collect();
        let results: Vec<Created> = stream::iter(prepared)
            .map(|(key, object, status)| async move {
                let api = api(client, &resources[&key.0], &key.1);
                let object: DynamicObject = serde_json::from_value(object).expect("a valid object");
                let outcome = match api.create(&PostParams::default(), &object).await {
                    Ok(created) => Ok(created.metadata.uid),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                    Err(error) => Err(format!("{} {}/{}: {error}", key.0, key.1, key.2)),
                };
                (key, status, outcome)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (key, status, outcome) in results {
            match outcome {
                Ok(Some(uid)) => {
                    created += 1;
                    *per_kind.entry(key.0.clone()).or_insert(0) += 1;
                    if key.0 == "Pod" || key.0 == "Deployment" {
                        targets.push(key.clone());
                    }
                    if let Some(status) = status {
                        statuses.push((key.clone(), status));
                    }
                    uids.insert(key, uid);
                }
                Ok(None) => existed += 1,
                Err(error) => {
                    rejected += 1;
                    *rejected_per_kind.entry(key.0.clone()).or_insert(0) += 1;
                    if rejected <= 5 {
                        eprintln!("  rejected: {}", truncate(&error));
                    }
                }
            }
        }
    }
    let status_count = statuses.len();
    let status_errors: Vec<String> = stream::iter(statuses)
        .map(|(key, status)| async move {
            let api = api(client, &resources[&key.0], &key.1);
            api.patch_status(
                &key.2,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .err()
            .map(|error| format!("{} {}/{} status: {error}", key.0, key.1, key.2))
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(std::future::ready)
        .collect()
        .await;
    for error in status_errors.iter().take(5) {
        eprintln!("  rejected: {}", truncate(error));
    }
    if !rejected_per_kind.is_empty() {
        eprintln!("  rejected per kind: {rejected_per_kind:?}");
    }
    targets.sort();
    Loaded {
        capped,
        created,
        existed,
        rejected,
        statuses: status_count - status_errors.len(),
        status_rejected: status_errors.len(),
        seconds: started.elapsed().as_secs_f64(),
        per_kind,
        targets,
    }
}

/// What the server holds of the watched kinds: objects, their JSON as a LIST returns them, and
/// the JSON the agent keeps of them after redaction (its state).
async fn held(
    client: &kube::Client,
    resources: &BTreeMap<String, ApiResource>,
) -> (usize, u64, u64) {
    let redactor = Redactor::new(&[7; 32], vec![]).expect("a valid key");
    let (mut objects, mut json_bytes, mut state_bytes) = (0, 0u64, 0u64);
    for resource in resources.values() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let scope = Scope {
            kind: kind_name(&resource.api_version, &resource.kind),
            namespace: None,
        };
        let mut params = ListParams::default().limit(500);
        loop {
            let list = api.list(&params).await.expect("lists");
            for item in list.items {
                let mut value = serde_json::to_value(&item).expect("serializes");
                value["apiVersion"] = resource.api_version.clone().into();
                value["kind"] = resource.kind.clone().into();
                objects += 1;
                json_bytes += serde_json::to_vec(&value).expect("serializes").len() as u64;
                if let Some(entry) = redacted_entry(value, &scope, &redactor) {
                    state_bytes += entry.object.json_len() as u64;
                }
            }
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = ListParams::default().limit(500).continue_token(&token),
                None => break,
            }
        }
    }
    (objects, json_bytes, state_bytes)
}

// ---------------------------------------------------------------------------- processes --

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reflector process and its stdout lines.
struct Reflector {
    proc: Proc,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Reflector {
    fn spawn(dir: &Path) -> Self {
        let log = dir.join("reflector.log");
        let mut child = Command::new(std::env::current_exe().expect("the bench binary"))
            .env(ROLE_VAR, "reflector")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("creates the log"))
            .spawn()
            .expect("starts the reflector");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            proc: Proc { child, log },
            stdin,
            lines,
        }
    }

    async fn next_line(&mut self, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            match self.lines.try_recv() {
                Ok(line) => return line,
                Err(TryRecvError::Empty) => {
                    self.proc.check_alive("the reflector");
                    assert!(
                        start.elapsed() < timeout,
                        "timed out waiting for the reflector"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(TryRecvError::Disconnected) => {
                    self.proc.check_alive("the reflector");
                    panic!("the reflector closed its stdout");
                }
            }
        }
    }

    /// (watch events since its lists, objects held).
    async fn counts(&mut self) -> (u64, u64) {
        self.stdin
            .write_all(b"\n")
            .expect("writes to the reflector");
        self.stdin.flush().expect("writes to the reflector");
        let line = self.next_line(Duration::from_secs(30)).await;
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match numbers[..] {
            [events, objects] => (events, objects),
            _ => panic!("unexpected reflector line: {line}"),
        }
    }
}

// -------------------------------------------------------------------------------- the run --

async fn bench(kubeconfig: String) -> ExitCode {
    let tick = clock_ticks_per_second();
    let client = client(&kubeconfig).await;
    let resources = resources(&client).await;
    let pods: Api<DynamicObject> = Api::all_with(client.clone(), &resources["Pod"]);
    if !pods
        .list(&ListParams::default().limit(1))
        .await
        .expect("lists pods")
        .items
        .is_empty()
    {
        eprintln!(
            "agent_kube: the API server already holds pods; the bench needs a fresh one \
             (`scripts/test-kube stop && scripts/test-kube start` with your own OUTPOST_TEST_RUN)."
        );
        return ExitCode::FAILURE;
    }

    // 1. Load.
    let unwatched: Vec<&str> = DEFAULT_KINDS
        .iter()
        .filter(|k| !resources.contains_key(**k))
        .copied()
        .collect();
    if !unwatched.is_empty() {
        println!(
            "Default kinds the agent does not watch here (not at their group's preferred version): {unwatched:?}; not loaded"
        );
    }
    let (generated, objects) = sim_objects(TARGET_OBJECTS, &resources);
    println!(
        "Loading {} objects of the watched kinds (of a simulated cluster of {generated}, seed {SEED}), {IN_FLIGHT} requests in flight...",
        objects.len()
    );
    let loaded = load(&client, &resources, objects).await;
    let requests = loaded.created
        + loaded.existed
        + loaded.rejected
        + loaded.statuses
        + loaded.status_rejected;
    println!(
        "  created {} ({} existed, {} rejected), {} statuses written ({} rejected) in {:.1} s: {:.0} requests/s",
        loaded.created,
        loaded.existed,
        loaded.rejected,
        loaded.statuses,
        loaded.status_rejected,
        loaded.seconds,
        requests as f64 / loaded.seconds
    );
    println!(
        "  per kind: {:?}; {} container requests above their limit capped at it",
        loaded.per_kind, loaded.capped
    );
    let (held_objects, json_bytes, state_bytes) = held(&client, &resources).await;
    println!(
        "  the server holds {held_objects} objects of the watched kinds: {:.1} MB of JSON as listed; {:.1} MB after the agent's redaction (its state)",
        json_bytes as f64 / 1e6,
        state_bytes as f64 / 1e6
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("creates the bucket folder");
    let head = bucket.join(format!("outpost/v1/clusters/{CLUSTER}/head.json"));

    // 2. The agent, until its first snapshot.
    let port = free_port();
    let agent_log = dir.path().join("agent.log");
    // Settings in a config file, as the agent is deployed (defaults for everything else).
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "cluster: {CLUSTER}\nbucket: \"file://{}\"\nkubeconfig: \"{kubeconfig}\"\nlisten: \"127.0.0.1:{port}\"\n",
            bucket.display()
        ),
    )
    .expect("writes the agent config");
    let spawned = Instant::now();
    // Another build of the agent (e.g. a copy of an older one, to compare): `OUTPOST_BENCH_AGENT`.
    let agent_binary = std::env::var_os(AGENT_VAR).map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_outpost")),
        PathBuf::from,
    );
    println!("Agent binary: {}", agent_binary.display());
    let child = Command::new(&agent_binary)
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).expect("creates the log"))
        .spawn()
        .expect("starts the agent");
    let mut agent = Proc {
        child,
        log: agent_log,
    };
    wait_until(
        "the agent's first snapshot",
        Duration::from_secs(300),
        || {
            agent.check_alive("the agent");
            head.exists()
        },
    )
    .await;
    let agent_first_s = spawned.elapsed().as_secs_f64();
    let agent_at_first = sample(agent.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let agent_settled = sample(agent.pid());
    let agent_objects = metric(&metrics(port), "outpost_objects");
    println!(
        "Agent: first snapshot {agent_first_s:.2} s after spawn ({agent_objects} objects), RSS {:.1} MB (peak {:.1} MB)",
        mb(agent_settled.rss_kib),
        mb(agent_settled.hwm_kib)
    );

    // 3. The reflector, until every store is ready.
    let spawned = Instant::now();
    let mut reflector = Reflector::spawn(dir.path());
    let ready = reflector.next_line(Duration::from_secs(300)).await;
    let reflector_ready_s = spawned.elapsed().as_secs_f64();
    assert!(
        ready.starts_with("ready"),
        "unexpected reflector line: {ready}"
    );
    let reflector_at_ready = sample(reflector.proc.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reflector_settled = sample(reflector.proc.pid());
    println!(
        "Reflector: {ready} {reflector_ready_s:.2} s after spawn, RSS {:.1} MB (peak {:.1} MB)",
        mb(reflector_settled.rss_kib),
        mb(reflector_settled.hwm_kib)
    );

    // Background CPU while nothing changes.
    let idle = (sample(agent.pid()), sample(reflector.proc.pid()));
    tokio::time::sleep(IDLE).await;
    let idle_end = (sample(agent.pid()), sample(reflector.proc.pid()));

    // 4. Churn.
    let before = metrics(port);
    let (reflector_events_before, _) = reflector.counts().await;
    let churn_start = (sample(agent.pid()), sample(reflector.proc.pid()));
    println!(
        "Churn: {UPDATES} merge patches (an annotation) on {} pods and deployments at {UPDATES_PER_SECOND}/s...",
        loaded.targets.len()
    );
    let mut rng = SEED;
    let picks: Vec<&Key> = (0..UPDATES)
        .map(|_| {
            // xorshift64
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            &loaded.targets[(rng % loaded.targets.len() as u64) as usize]
        })
        .collect();
    let period = Duration::from_secs_f64(1.0 / UPDATES_PER_SECOND);
    let t0 = tokio::time::Instant::now();
    let failed = stream::iter(picks.into_iter().enumerate())
        .map(|(i, key)| {
            let api = api(&client, &resources[&key.0], &key.1);
            async move {
                tokio::time::sleep_until(t0 + period * i as u32).await;
                let patch =
                    json!({"metadata": {"annotations": {"bench.outpost.dev/seq": i.to_string()}}});
                api.patch(&key.2, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_err()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let churn_s = t0.elapsed().as_secs_f64();
    let updates = UPDATES - failed;
    // Until the agent has every event and has shipped the diff holding the last of them.
    let events_before = metric(&before, "outpost_watch_events_total");
    wait_until("the agent's watch events", Duration::from_secs(60), || {
        metric(&metrics(port), "outpost_watch_events_total") - events_before >= updates as f64
    })
    .await;
    let segments = metric(&metrics(port), "outpost_segments_written_total");
    wait_until("the agent's next diff", Duration::from_secs(60), || {
        metric(&metrics(port), "outpost_segments_written_total") > segments
    })
    .await;
    let churn_end = (sample(agent.pid()), sample(reflector.proc.pid()));
    let after = metrics(port);
    let (reflector_events_after, reflector_objects) = reflector.counts().await;
    let agent_events = metric(&after, "outpost_watch_events_total") - events_before;
    let reflector_events = reflector_events_after - reflector_events_before;
    let window_s = churn_end
        .0
        .at
        .duration_since(churn_start.0.at)
        .as_secs_f64();
    println!(
        "  {updates} updates in {churn_s:.1} s ({failed} failed); window until the agent shipped them: {window_s:.1} s; \
         watch events seen: agent {agent_events}, reflector {reflector_events} ({reflector_objects} objects)"
    );
    agent.check_alive("the agent");
    reflector.proc.check_alive("the reflector");

    // 5. Report.
    let cpu_s = |a: &Sample, b: &Sample| (b.cpu_ticks - a.cpu_ticks) as f64 / tick;
    let idle_ms_per_s =
        |a: &Sample, b: &Sample| cpu_s(a, b) * 1000.0 / b.at.duration_since(a.at).as_secs_f64();
    let per_event_ms = |a: &Sample, b: &Sample| cpu_s(a, b) * 1000.0 / updates as f64;
    let rows: Vec<(&str, String, String)> = vec![
        (
            "time from start to first snapshot / all stores ready",
            format!("{agent_first_s:.2} s"),
            format!("{reflector_ready_s:.2} s"),
        ),
        (
            "CPU from start to first snapshot / ready",
            format!("{:.2} s", agent_at_first.cpu_ticks as f64 / tick),
            format!("{:.2} s", reflector_at_ready.cpu_ticks as f64 / tick),
        ),
        (
            "RSS 2 s after first snapshot / ready",
            format!("{:.1} MB", mb(agent_settled.rss_kib)),
            format!("{:.1} MB", mb(reflector_settled.rss_kib)),
        ),
        (
            "RSS after the churn",
            format!("{:.1} MB", mb(churn_end.0.rss_kib)),
            format!("{:.1} MB", mb(churn_end.1.rss_kib)),
        ),
        (
            "of which anonymous (heap) after the churn",
            format!("{:.1} MB", mb(churn_end.0.anon_kib)),
            format!("{:.1} MB", mb(churn_end.1.anon_kib)),
        ),
        (
            "peak RSS (VmHWM) over the run",
            format!("{:.1} MB", mb(churn_end.0.hwm_kib)),
            format!("{:.1} MB", mb(churn_end.1.hwm_kib)),
        ),
        (
            "CPU while idle",
            format!("{:.2} ms/s", idle_ms_per_s(&idle.0, &idle_end.0)),
            format!("{:.2} ms/s", idle_ms_per_s(&idle.1, &idle_end.1)),
        ),
        (
            "CPU per watch event during the churn",
            format!("{:.3} ms", per_event_ms(&churn_start.0, &churn_end.0)),
            format!("{:.3} ms", per_event_ms(&churn_start.1, &churn_end.1)),
        ),
    ];
    let mut md = String::new();
    md.push_str(&format!(
        "API server: kube-apiserver 1.20 + etcd (`scripts/test-kube`), holding {held_objects} objects of the {} kinds \
         the agent watches (its defaults{}; {:.1} MB of JSON as listed, {:.1} MB after redaction), loaded at {:.0} requests/s. \
         Churn: {updates} annotation patches on pods and deployments at {UPDATES_PER_SECOND}/s; CPU over {window_s:.0} s, \
         until the agent shipped the diff holding the last change (agent saw {agent_events} events, reflector {reflector_events}). \
         CLK_TCK {tick}.\n\n",
        resources.len(),
        if unwatched.is_empty() {
            String::new()
        } else {
            format!(" but {}, not served at its group's preferred version", unwatched.join(", "))
        },
        json_bytes as f64 / 1e6,
        state_bytes as f64 / 1e6,
        requests as f64 / loaded.seconds,
    ));
    md.push_str("| | agent | kube-rs reflector (`DynamicObject`) |\n|---|---:|---:|\n");
    for (what, a, r) in &rows {
        md.push_str(&format!("| {what} | {a} | {r} |\n"));
    }
    println!();
    for (what, a, r) in &rows {
        println!("{what:<55} {a:>12} {r:>12}");
    }
    println!("\n{md}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-agent-kube.md");
    if std::fs::write(&out, &md).is_ok() {
        println!("(also written to {})", out.display());
    }
    drop(reflector);
    drop(agent);
    ExitCode::SUCCESS
}
