//! The agent against a real kube-apiserver (`scripts/test-kube`), watching with its own
//! RBAC-restricted token: objects created, updated and deleted in the cluster appear in the
//! bucket exactly; a kind the agent may not list is reported while the others ship.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use outpost::agent::config::{
    self, AgentArgs, AgentSettings, DEFAULT_KINDS, DEFAULT_SIM_CHANGES_PER_SECOND,
};
use outpost::agent::run::{SharedStatus, Status};
use outpost::agent::state::State;
use outpost::format::{ClusterName, Identity};
use outpost::store::Store;
use serde_json::json;
use tokio::sync::oneshot;

mod common;

/// Lets the user `outpost-agent` list and watch every default kind but NetworkPolicy.
async fn grant_agent(admin: &kube::Client) {
    let roles: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
        )),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
        )),
    );
    let role: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "outpost-agent-test"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "services", "namespaces", "secrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list", "watch"]}
        ]
    })).unwrap();
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "outpost-agent-test"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "outpost-agent-test"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]
    })).unwrap();
    for (api, object) in [(&roles, role), (&bindings, binding)] {
        let name = object.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("outpost-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }
}

async fn create(
    admin: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    body: serde_json::Value,
) -> DynamicObject {
    let api: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), ns, &common::resource(group, version, kind));
    api.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap()
}

/// Waits (at most 60 s) until the bucket's replayed state satisfies `done`.
async fn wait_for(
    store: &Store,
    cluster: &ClusterName,
    what: &str,
    done: impl Fn(&common::Replayed) -> bool,
) -> common::Replayed {
    let mut last = None;
    for _ in 0..120 {
        if let Some((_, objects)) = common::replay(store, cluster).await {
            if done(&objects) {
                return objects;
            }
            last = Some(objects);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seen: Vec<_> = last.iter().flat_map(|o| o.keys()).collect();
    panic!("timed out waiting for: {what}; the bucket holds {seen:?}");
}

/// The agent's settings for the test cluster, as `outpost agent` would take them from its flags:
/// `cluster` shipping to `bucket` every second (the shortest interval accepted), reaching the API
/// server through `kubeconfig` and watching `kinds` in the namespace `ns` only.
fn agent_settings(
    cluster: &str,
    bucket: &str,
    kubeconfig: &Path,
    kinds: &[&str],
    ns: &str,
) -> AgentSettings {
    AgentSettings {
        cluster: Some(cluster.to_string()),
        bucket: Some(bucket.to_string()),
        kubeconfig: Some(kubeconfig.to_path_buf()),
        kinds: Some(kinds.iter().map(|k| k.to_string()).collect()),
        namespaces: Some(vec![ns.to_string()]),
        interval: Some(Duration::from_secs(1)),
        ..AgentSettings::default()
    }
}

/// An agent running in this process against a real API server, built by `outpost::agent::build`
/// from settings resolved as `outpost agent` resolves its flags.
struct RunningAgent {
    stop: oneshot::Sender<()>,
    running: tokio::task::JoinHandle<State>,
    status: SharedStatus,
}

impl RunningAgent {
    /// Resolves `settings`, builds the agent and runs it until [`RunningAgent::stop`]. Discovery
    /// runs again every second while a kind is not served, so that a CRD installed by a test is
    /// watched within its waits.
    async fn start(settings: AgentSettings) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let args = AgentArgs {
            config: None,
            settings,
            decommission: false,
            sim: None,
            sim_changes_per_second: DEFAULT_SIM_CHANGES_PER_SECOND,
        };
        let config = config::resolve(&args, None).expect("a valid agent configuration");
        let store = Store::open(&config.bucket.url)
            .await
            .expect("the agent's bucket opens");
        let agent = outpost::agent::build(&config, store)
            .await
            .expect("the agent builds")
            .rediscover_every(Duration::from_secs(1));
        let status = agent.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(agent.run(async {
            let _ = stopped.await;
        }));
        Self {
            stop,
            running,
            status,
        }
    }

    /// What the agent has done so far.
    fn status(&self) -> Status {
        self.status.lock().expect("the agent's status").clone()
    }

    /// Stops the agent, which ships once more, and returns the state it held at the end.
    async fn stop(self) -> State {
        let _ = self.stop.send(());
        self.running.await.expect("the agent's task ends")
    }
}

fn service(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"v": value}}, "spec": {"ports": [{"port": 80}]}})
}

/// Kills and restores TCP connections to the API server on demand: a network partition, which a
/// real server cannot be asked for.
struct CuttableProxy {
    address: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_cut, tasks) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused by closing it
                }
                let upstream = upstream.clone();
                tasks.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            address,
            cut,
            connections,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Writes into `dir` a copy of the kubeconfig at `kubeconfig` whose servers are reached at
/// `address` (a [`CuttableProxy`]), and returns its path. The proxy passes TLS through, so the
/// server's certificate is checked against the host it was reached by before (`tls-server-name`).
fn kubeconfig_through(kubeconfig: &str, address: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig reads");
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("the kubeconfig is YAML");
    let clusters = config["clusters"]
        .as_sequence_mut()
        .expect("the kubeconfig lists its clusters");
    for named in clusters {
        let cluster = named["cluster"]
            .as_mapping_mut()
            .expect("a cluster entry of the kubeconfig");
        let server = cluster
            .get("server")
            .and_then(|s| s.as_str())
            .expect("the cluster's server");
        let host = url::Url::parse(server)
            .expect("the server is a URL")
            .host_str()
            .expect("the server URL has a host")
            .to_string();
        if !cluster.contains_key("tls-server-name") {
            cluster.insert("tls-server-name".into(), host.into());
        }
        cluster.insert("server".into(), format!("https://{address}").into());
    }
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&config).expect("the kubeconfig serializes"),
    )
    .expect("the kubeconfig is written");
    path
}

/// After a network partition during which objects changed and etcd was compacted, the watches
/// get 410 Gone, relist, and the bucket ends exactly like the cluster: the deleted object is
/// deleted, the changed ones put, and the unchanged ones produce no record at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_relist_after_compaction_loses_nothing_and_invents_nothing_fault_injected() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let etcd = common::server_url("OUTPOST_TEST_ETCD_ENDPOINT").unwrap();
    let server = common::server_url("OUTPOST_TEST_KUBE_SERVER").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "relist").await;
    for (name, value) in [("keep", "1"), ("change", "1"), ("remove", "1")] {
        create(&admin, &ns, "", "v1", "Service", service(name, value)).await;
    }
    let proxy = CuttableProxy::start(server.trim_start_matches("https://").to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_through(&agent_config, &proxy.address, dir.path());
    let cluster = ClusterName::new("relist").unwrap();
    let bucket = format!("memory://agent-relist-{ns}");
    let store = Store::open(&bucket).await.unwrap();
    let agent = RunningAgent::start(agent_settings(
        "relist",
        &bucket,
        &kubeconfig,
        &["Service"],
        &ns,
    ))
    .await;
    let key = |name: &str| ("Service".to_string(), ns.clone(), name.to_string());
    wait_for(&store, &cluster, "the three services", |o| o.len() == 3).await;
    let before = common::replay(&store, &cluster).await.unwrap().0.seq;

    // Partition: the agent's watches are cut while the cluster changes, then etcd is compacted
    // past everything the agent saw.
    proxy.cut();
    let services: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &common::resource("", "v1", "Service"));
    services
        .patch(
            "change",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
        )
        .await
        .unwrap();
    services
        .delete("remove", &DeleteParams::default())
        .await
        .unwrap();
    let added = create(&admin, &ns, "", "v1", "Service", service("add", "1")).await;
    let revision = added.metadata.resource_version.clone().unwrap();
    let compacted = std::process::Command::new("etcdctl")
        .args(["--endpoints", &etcd, "compact", &revision])
        .output()
        .unwrap();
    assert!(
        compacted.status.success(),
        "{}",
        String::from_utf8_lossy(&compacted.stderr)
    );
    proxy.restore();

    let objects = wait_for(&store, &cluster, "the relisted state", |o| {
        o.contains_key(&key("add"))
            && !o.contains_key(&key("remove"))
            && o.get(&key("change"))
                .is_some_and(|(_, s)| s["metadata"]["labels"]["v"] == "2")
    })
    .await;
    let names: BTreeSet<String> = objects.keys().map(|(_, _, n)| n.clone()).collect();
    assert_eq!(
        names,
        ["add", "change", "keep"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // Exactly three records since the partition: nothing for "keep", one per real change.
    let (head, _) = common::replay(&store, &cluster).await.unwrap();
    let mut records = Vec::new();
    for diff in head.diffs.iter().filter(|d| d.seq > before) {
        let key = store.layout().segment(
            &cluster,
            &head.epoch,
            diff.seq,
            outpost::format::SegmentType::Diff,
        );
        let mut stream = store
            .read_segment(&key, &outpost::format::DecodeLimits::default())
            .await
            .unwrap();
        while let Some(record) = stream.next().await {
            let record = record.unwrap();
            records.push(format!("{:?} {}", record.op(), record.target().name));
        }
    }
    records.sort();
    assert_eq!(
        records,
        vec!["Delete remove", "Put add", "Put change"],
        "since seq {before}: {records:?}"
    );
    agent.stop().await;
}

/// Values planted in Secrets (data, stringData, the last-applied annotation) appear nowhere in
/// the bucket: not in any segment (decompressed), head or identity, in plain or base64 form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_leaves_the_cluster() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "leak").await;
    let planted = [
        "planted-password-7f3a9c",
        "planted-token-b81d2e",
        "planted-applied-44c0de",
    ];
    let b64 = |s: &str| k8s_openapi::ByteString(s.as_bytes().to_vec());
    let encoded: Vec<String> = planted
        .iter()
        .map(|p| {
            serde_json::to_value(b64(p))
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns}, "data": {"password": encoded[2]}});
    create(&admin, &ns, "", "v1", "Secret", json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()}},
        "data": {"password": encoded[0]},
        "stringData": {"token": planted[1]}
    })).await;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("file://{}", dir.path().display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("leak").unwrap();
    // The key, outside the bucket scanned below.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("redaction.key");
    std::fs::write(&key_file, [1u8; 32]).unwrap();
    let mut settings = agent_settings(
        "leak",
        &format!("file://{}", dir.path().display()),
        Path::new(&agent_config),
        &["Secret"],
        &ns,
    );
    settings.redaction.key_file = Some(key_file);
    let agent = RunningAgent::start(settings).await;
    let objects = wait_for(&store, &cluster, "the secret", |o| {
        o.contains_key(&("Secret".to_string(), ns.clone(), "db".to_string()))
    })
    .await;
    let secret = &objects[&("Secret".to_string(), ns.clone(), "db".to_string())].1;
    // Key names stay visible; values are HMACs.
    for key in ["password", "token"] {
        assert!(
            secret["data"][key]
                .as_str()
                .unwrap()
                .starts_with("outpost-hmac-sha256:"),
            "{secret}"
        );
    }
    agent.stop().await;

    let mut scanned = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let text = if path.to_string_lossy().ends_with(".zst") {
            zstd::decode_all(&raw[..]).unwrap()
        } else {
            raw
        };
        let text = String::from_utf8_lossy(&text);
        for needle in planted
            .iter()
            .map(|s| s.to_string())
            .chain(encoded.iter().cloned())
        {
            assert!(!text.contains(&needle), "{} leaks {needle}", path.display());
        }
        scanned += 1;
    }
    assert!(scanned >= 3, "only {scanned} objects in the bucket");
}

/// A custom resource whose CRD is installed after the agent started is picked up by rediscovery:
/// reported as not served first, then watched (its initial list completes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_installed_later_starts_being_watched() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "crd").await;
    let group = format!("w{:08x}.outpost.example.com", rand::random::<u32>());
    let kind_name = format!("Widget.{group}");
    let roles: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    );
    let role_name = format!("outpost-agent-{group}");
    for (api, body) in [
        (
            &roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name},
            "rules": [{"apiGroups": [group], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            &bindings,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
    ] {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    }
    create(&admin, &ns, "", "v1", "Service", service("web", "1")).await;

    let cluster = ClusterName::new("crd").unwrap();
    let bucket = format!("memory://agent-crd-{ns}");
    let store = Store::open(&bucket).await.unwrap();
    let agent = RunningAgent::start(agent_settings(
        "crd",
        &bucket,
        Path::new(&agent_config),
        &["Service", &kind_name],
        &ns,
    ))
    .await;
    wait_for(
        &store,
        &cluster,
        "the first snapshot without widgets",
        |o| o.len() == 1,
    )
    .await;
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(
        identity
            .forbidden_kinds
            .iter()
            .any(|f| f.kind == kind_name && f.reason.contains("does not serve")),
        "{identity:?}"
    );

    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    // The kind becomes watched: its initial (empty) list completes and it is no longer reported.
    let identity_key = store.layout().identity(&cluster);
    let mut watched = false;
    for _ in 0..60 {
        let (bytes, _) = store.get(&identity_key).await.unwrap();
        let identity = Identity::from_json("identity.json", &bytes).unwrap();
        if identity.forbidden_kinds.is_empty() && identity.kinds.contains(&kind_name) {
            watched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(watched, "the CRD installed later was never watched");
    let (head, _) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(head.kinds.get(&kind_name), None);
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(identity.forbidden_kinds.is_empty(), "{identity:?}");
    assert!(identity.kinds.contains(&kind_name));
    // And its objects ship.
    create(&admin, &ns, &group, "v1", "Widget", json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .await;
    let objects = wait_for(&store, &cluster, "the widget", |o| {
        o.contains_key(&("Widget".to_string(), ns.clone(), "w1".to_string()))
    })
    .await;
    assert_eq!(
        objects[&("Widget".to_string(), ns.clone(), "w1".to_string())].1["spec"]["size"],
        3
    );
    agent.stop().await;
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_what_happens_in_the_cluster() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;

    let ns = format!("ship-{:08x}", rand::random::<u32>());
    let namespaces: Api<DynamicObject> =
        Api::all_with(admin.clone(), &common::resource("", "v1", "Namespace"));
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let web = create(&admin, &ns, "apps", "v1", "Deployment", json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    })).await;

    // The agent, with its own restricted token, watching the test namespace.
    let cluster = ClusterName::new("kube-test").unwrap();
    let bucket = format!("memory://agent-kube-{ns}");
    let store = Store::open(&bucket).await.unwrap();
    let agent = RunningAgent::start(agent_settings(
        "kube-test",
        &bucket,
        Path::new(&agent_config),
        DEFAULT_KINDS,
        &ns,
    ))
    .await;

    let key = |kind: &str, name: &str| (kind.to_string(), ns.clone(), name.to_string());
    let objects = wait_for(
        &store,
        &cluster,
        "the deployment in the first snapshot",
        |o| o.contains_key(&key("Deployment", "web")),
    )
    .await;
    assert_eq!(objects[&key("Deployment", "web")].1["spec"]["replicas"], 1);
    assert!(
        objects[&key("Deployment", "web")].1["metadata"]
            .get("managedFields")
            .is_none()
    );

    // Create: a ReplicaSet owned by the deployment, a Pod owned by it, a Service.
    let rs = create(&admin, &ns, "apps", "v1", "ReplicaSet", json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f7c9b4", "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": web.metadata.uid, "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    })).await;
    create(&admin, &ns, "", "v1", "Pod", json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5d8f7c9b4-abcde", "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b4", "uid": rs.metadata.uid, "controller": true}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    })).await;
    create(
        &admin,
        &ns,
        "",
        "v1",
        "Service",
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }),
    )
    .await;
    wait_for(&store, &cluster, "replicaset, pod and service", |o| {
        o.contains_key(&key("ReplicaSet", "web-5d8f7c9b4"))
            && o.contains_key(&key("Pod", "web-5d8f7c9b4-abcde"))
            && o.contains_key(&key("Service", "web"))
    })
    .await;

    // Update, then delete: the bucket follows.
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &common::resource("apps", "v1", "Deployment"),
    );
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let pods: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &common::resource("", "v1", "Pod"));
    pods.delete(
        "web-5d8f7c9b4-abcde",
        &DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    let objects = wait_for(
        &store,
        &cluster,
        "the scaled deployment and the deleted pod",
        |o| {
            o.get(&key("Deployment", "web"))
                .is_some_and(|(_, d)| d["spec"]["replicas"] == 3)
                && !o.contains_key(&key("Pod", "web-5d8f7c9b4-abcde"))
        },
    )
    .await;

    // Exactly what the cluster holds in the namespace (the agent sees nothing else there).
    let names: BTreeSet<(String, String)> = objects
        .keys()
        .filter(|(_, n, _)| n == &ns)
        .map(|(k, _, n)| (k.clone(), n.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("Deployment", "web"),
        ("ReplicaSet", "web-5d8f7c9b4"),
        ("Service", "web"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(names, expected);

    // NetworkPolicy is forbidden to the agent: reported, while the rest shipped.
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    let forbidden: BTreeMap<String, String> = identity
        .forbidden_kinds
        .iter()
        .map(|f| (f.kind.clone(), f.reason.clone()))
        .collect();
    assert!(
        forbidden
            .get("NetworkPolicy")
            .is_some_and(|r| r.contains("forbidden")),
        "{forbidden:?}"
    );
    assert!(!identity.kinds.contains(&"NetworkPolicy".to_string()));
    assert!(agent.status().unavailable.contains_key("NetworkPolicy"));

    let state = agent.stop().await;
    // The agent ships once more as it stops: the bucket then holds its whole state (compared
    // after the stop: objects of other namespaces may arrive after the wait above).
    let (_, shipped) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(state.len(), shipped.len());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// The agent as a process, configured by a YAML file: adding a kind to the file starts watching
/// it, removing one turns its objects into deletions — without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_file_changes_apply_without_restart() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "reload").await;
    create(&admin, &ns, "", "v1", "Service", service("web", "1")).await;
    create(&admin, &ns, "", "v1", "Pod", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).await;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("redaction.key");
    std::fs::write(&key_file, [9u8; 32]).unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let config_file = dir.path().join("agent.yaml");
    let write_config = |kinds: &str| {
        std::fs::write(
            &config_file,
            format!(
                "cluster: reload\nbucket: file://{}\nkubeconfig: {agent_config}\nkinds: [{kinds}]\nnamespaces: [{ns}]\ninterval: 1s\nlisten: 127.0.0.1:0\nredaction:\n  keyFile: {}\n",
                bucket.display(),
                key_file.display()
            ),
        )
        .unwrap();
    };
    write_config("Service");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["agent", "--config"])
        .arg(&config_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("reload").unwrap();
    let service_key = ("Service".to_string(), ns.clone(), "web".to_string());
    let pod_key = ("Pod".to_string(), ns.clone(), "p1".to_string());
    wait_for(&store, &cluster, "the service only", |o| {
        o.contains_key(&service_key) && !o.contains_key(&pod_key)
    })
    .await;

    write_config("Service, Pod");
    wait_for(&store, &cluster, "the pod after adding Pod", |o| {
        o.contains_key(&service_key) && o.contains_key(&pod_key)
    })
    .await;

    write_config("Pod");
    wait_for(
        &store,
        &cluster,
        "the service gone after removing Service",
        |o| !o.contains_key(&service_key) && o.contains_key(&pod_key),
    )
    .await;
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert_eq!(identity.kinds, vec!["Pod".to_string()]);

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

/// Every default kind, and a custom resource, created, updated and deleted in the cluster: the
/// bucket shows exactly those objects after each step. The agent's token may list
/// NetworkPolicies only in this test's namespace (a RoleBinding), where it watches them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_default_kind_and_a_custom_resource_ship_exactly() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "kinds").await;

    // A CRD, and the agent's right to read it and this namespace's NetworkPolicies.
    let group = format!("g{:08x}.outpost.example.com", rand::random::<u32>());
    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("gadgets.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let role_name = format!("outpost-agent-{group}");
    let grants = [
        (
            common::resource("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name},
                   "rules": [{"apiGroups": [group], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "Role"),
            Some(&ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "netpol-reader"},
                   "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            Some(&ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "netpol-reader"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "netpol-reader"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
    ];
    for (api_resource, namespace, body) in grants {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &api_resource),
            None => Api::all_with(admin.clone(), &api_resource),
        };
        api.create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    }
    // Wait until the API server serves the new kind.
    let gadget = common::resource(&group, "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &gadget);
    for attempt in 0.. {
        if gadgets.list(&Default::default()).await.is_ok() {
            break;
        }
        assert!(attempt < 60, "the CRD was never served");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let cluster = ClusterName::new("kinds").unwrap();
    let bucket = format!("memory://agent-kinds-{ns}");
    let store = Store::open(&bucket).await.unwrap();
    let gadget_kind = format!("Gadget.{group}");
    let kinds: Vec<&str> = DEFAULT_KINDS
        .iter()
        .copied()
        .chain([gadget_kind.as_str()])
        .collect();
    let agent = RunningAgent::start(agent_settings(
        "kinds",
        &bucket,
        Path::new(&agent_config),
        &kinds,
        &ns,
    ))
    .await;
    wait_for(&store, &cluster, "the first snapshot", |_| true).await;

    let labels = json!({"app": "shop"});
    let template = json!({"metadata": {"labels": labels},
                          "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Always"}});
    let job_template = json!({"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Never"}});
    // (group, version, kind, body): the versions kube-apiserver 1.20 serves.
    let objects = [
        ("", "v1", "Pod", json!({"spec": template["spec"]})),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"selector": labels, "ports": [{"port": 80}]}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"replicas": 1, "serviceName": "shop", "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "batch",
            "v1",
            "Job",
            json!({"spec": {"template": job_template}}),
        ),
        (
            "batch",
            "v1beta1",
            "CronJob",
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            json!({"spec": {"defaultBackend": {"service": {"name": "shop", "port": {"number": 80}}}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]}}),
        ),
        (group.as_str(), "v1", "Gadget", json!({"spec": {"size": 1}})),
    ];
    let api_of = |g: &str, v: &str, k: &str| -> Api<DynamicObject> {
        Api::namespaced_with(admin.clone(), &ns, &common::resource(g, v, k))
    };
    let key = |kind: &str| (kind.to_string(), ns.clone(), "shop".to_string());
    for (g, v, k, body) in &objects {
        let mut body = body.clone();
        body["apiVersion"] = json!(if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        });
        body["kind"] = json!(k);
        body["metadata"] = json!({"name": "shop", "labels": {"rev": "1"}});
        api_of(g, v, k)
            .create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {k}: {e}"));
    }
    let in_namespace = |o: &common::Replayed| -> BTreeMap<String, String> {
        o.iter()
            .filter(|((_, n, _), _)| n == &ns)
            .map(|((k, _, _), (_, object))| {
                (
                    k.clone(),
                    object["metadata"]["labels"]["rev"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let every = |rev: &str| -> BTreeMap<String, String> {
        objects
            .iter()
            .map(|(_, _, k, _)| (k.to_string(), rev.to_string()))
            .collect()
    };
    let created = wait_for(&store, &cluster, "every kind created", |o| {
        in_namespace(o) == every("1")
    })
    .await;
    assert_eq!(created[&key("Gadget")].1["spec"]["size"], 1);
    assert_eq!(
        created[&key("Ingress")].1["spec"]["defaultBackend"]["service"]["name"],
        "shop"
    );

    for (g, v, k, _) in &objects {
        api_of(g, v, k)
            .patch(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"rev": "2"}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("updating {k}: {e}"));
    }
    wait_for(&store, &cluster, "every kind updated", |o| {
        in_namespace(o) == every("2")
    })
    .await;

    for (g, v, k, _) in &objects {
        // Background propagation: batch kinds default to orphaning, whose finalizer only a
        // garbage collector (absent here) would remove.
        api_of(g, v, k)
            .delete("shop", &DeleteParams::background().grace_period(0))
            .await
            .unwrap_or_else(|e| panic!("deleting {k}: {e}"));
    }
    // Without a garbage collector (only an API server runs here) nothing else goes away, so the
    // namespace must be empty of watched objects once the deletions shipped.
    wait_for(&store, &cluster, "every kind deleted", |o| {
        in_namespace(o).is_empty()
    })
    .await;
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(identity.forbidden_kinds.is_empty(), "{identity:?}");
    agent.stop().await;
    crds.delete(&format!("gadgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}

/// `outpost agent` as a process on the test cluster, configured by a YAML file, with the
/// agent's read-only token (see [`grant_agent`]) and its own namespace as `POD_NAMESPACE`.
struct AgentProcess {
    child: std::process::Child,
    stderr: std::path::PathBuf,
}

impl AgentProcess {
    /// Writes `config` (YAML, `kubeconfig:` and `listen:` added) to `dir` and starts the agent.
    fn start(dir: &std::path::Path, kubeconfig: &str, pod_namespace: &str, config: &str) -> Self {
        let config_file = dir.join("agent.yaml");
        std::fs::write(
            &config_file,
            format!("kubeconfig: {kubeconfig}\nlisten: 127.0.0.1:0\ninterval: 1s\n{config}"),
        )
        .unwrap();
        let stderr = dir.join("agent.stderr");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["agent", "--config"])
            .arg(&config_file)
            .env("POD_NAMESPACE", pod_namespace)
            .env_remove("OUTPOST_REDACTION_KEY_FILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most 60 s) for the agent to exit by itself: its exit status and stderr.
    async fn exited(mut self) -> (std::process::ExitStatus, String) {
        for _ in 0..120 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let _ = self.child.kill();
        panic!("the agent did not exit; stderr: {}", self.stderr());
    }

    /// SIGTERM; the agent must exit cleanly.
    fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit}; stderr: {}", self.stderr());
    }
}

impl Drop for AgentProcess {
    /// A failed test leaves no agent running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `outpost-hmac-sha256:` and the HMAC-SHA256 of `text` under `key`, as the agent writes a
/// Secret value.
fn secret_hmac(key: &[u8], text: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(text.as_bytes());
    format!(
        "{}{}",
        outpost::agent::redact::HMAC_PREFIX,
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A Secret `name` whose `data.password` is the base64 text returned.
async fn create_secret(admin: &kube::Client, ns: &str, name: &str) -> String {
    let password = "cGxhbnRlZC1yYmFjLXBhc3N3b3Jk"; // "planted-rbac-password"
    create(
        admin,
        ns,
        "",
        "v1",
        "Secret",
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name}, "data": {"password": password}}),
    )
    .await;
    password.to_string()
}

/// With only get/list/watch (the read-only ClusterRole of [`grant_agent`]) and no Secret
/// watched, the agent needs no redaction key: it starts, ships, and creates no Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_agent_watching_no_secret_needs_no_key() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "readonly").await;
    create(&admin, &ns, "", "v1", "Service", service("web", "1")).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &format!(
            "cluster: readonly\nbucket: file://{}\nkinds: [Service]\nnamespaces: [{ns}]\n",
            bucket.display()
        ),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("readonly").unwrap();
    let service_key = ("Service".to_string(), ns.clone(), "web".to_string());
    wait_for(&store, &cluster, "the service", |o| {
        o.contains_key(&service_key)
    })
    .await;
    agent.stop();
    let secrets: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &common::resource("", "v1", "Secret"));
    assert!(
        secrets
            .get_opt("outpost-redaction-key")
            .await
            .unwrap()
            .is_none()
    );
}

/// Watching Secrets with a key file (a Secret the installer created, mounted): the values in
/// the bucket are HMACs under that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_agent_watching_secrets_uses_the_key_file() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "keyfile").await;
    let password = create_secret(&admin, &ns, "db").await;
    let dir = tempfile::tempdir().unwrap();
    let key: Vec<u8> = (0..48).map(|i| i as u8 ^ 0x5c).collect();
    let key_file = dir.path().join("redaction.key");
    std::fs::write(&key_file, &key).unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &format!(
            "cluster: keyfile\nbucket: file://{}\nkinds: [Secret]\nnamespaces: [{ns}]\nredaction: {{keyFile: {}}}\n",
            bucket.display(),
            key_file.display()
        ),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("keyfile").unwrap();
    let secret_key = ("Secret".to_string(), ns.clone(), "db".to_string());
    let objects = wait_for(&store, &cluster, "the secret", |o| {
        o.contains_key(&secret_key)
    })
    .await;
    agent.stop();
    assert_eq!(
        objects[&secret_key].1["data"]["password"],
        secret_hmac(&key, &password)
    );
}

/// Watching Secrets with neither a key file nor the right to create the key's Secret: the
/// agent stops at once, and its error names the grant that is missing, the flag, and the API
/// server's own message (not a debug dump of kube's `Status`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_agent_watching_secrets_without_a_key_says_what_to_grant_or_pass() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "nokey").await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &format!(
            "cluster: nokey\nbucket: file://{}\nkinds: [Secret]\nnamespaces: [{ns}]\n",
            bucket.display()
        ),
    );
    let (status, stderr) = agent.exited().await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    for needle in [
        "\"create\"".to_string(),
        "\"secrets\"".to_string(),
        format!("namespace \"{ns}\""),
        "outpost-redaction-key".to_string(),
        "--redaction-key-file".to_string(),
        // The API server's message.
        "cannot create resource \"secrets\"".to_string(),
    ] {
        assert!(stderr.contains(&needle), "no {needle} in: {stderr}");
    }
    assert!(!stderr.contains("Status {"), "a debug dump in: {stderr}");
    assert!(!bucket.join("outpost").exists(), "something was shipped");
}

/// Watching Secrets with no key file but the right to create Secrets in its namespace: the
/// agent creates the key's Secret once and uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_allowed_to_create_the_key_secret_creates_and_uses_it() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "mkkey").await;
    let password = create_secret(&admin, &ns, "db").await;
    create(
        &admin,
        &ns,
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "outpost-key"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]}),
    )
    .await;
    create(
        &admin,
        &ns,
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "outpost-key"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "outpost-key"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &format!(
            "cluster: mkkey\nbucket: file://{}\nkinds: [Secret]\nnamespaces: [{ns}]\n",
            bucket.display()
        ),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("mkkey").unwrap();
    let secret_key = ("Secret".to_string(), ns.clone(), "db".to_string());
    let objects = wait_for(&store, &cluster, "the secret", |o| {
        o.contains_key(&secret_key)
    })
    .await;
    agent.stop();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), &ns);
    let created = secrets.get("outpost-redaction-key").await.unwrap();
    let key = created.data.unwrap()["key"].0.clone();
    assert!(key.len() >= 32);
    assert_eq!(
        objects[&secret_key].1["data"]["password"],
        secret_hmac(&key, &password)
    );
}

/// A redaction rule edited in the config file while the agent runs (same id, corrected pointer):
/// the objects already held are redacted by the corrected rule, so the bucket no longer holds
/// the value it removes, and the segment that says so names the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redaction_rule_edited_in_place_is_applied_to_what_is_held() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "rule").await;
    let mut web = service("web", "1");
    web["metadata"]["labels"]["token"] = json!("planted-label-token");
    create(&admin, &ns, "", "v1", "Service", web).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let config = |pointer: &str| {
        format!(
            "cluster: rule\nbucket: file://{}\nkinds: [Service]\nnamespaces: [{ns}]\nredaction:\n  rules:\n    - {{id: hide, kind: Service, pointer: {pointer}}}\n",
            bucket.display()
        )
    };
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &config("/metadata/labels/tokn"),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("rule").unwrap();
    let key = ("Service".to_string(), ns.clone(), "web".to_string());
    let token = |o: &common::Replayed| {
        o.get(&key)
            .map(|(_, object)| object["metadata"]["labels"]["token"].clone())
    };
    wait_for(&store, &cluster, "the service with its token", |o| {
        token(o) == Some(json!("planted-label-token"))
    })
    .await;

    // The same file with the pointer corrected (AgentProcess::start wrote the rest).
    let file = dir.path().join("agent.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("/metadata/labels/tokn", "/metadata/labels/token"),
    )
    .unwrap();
    let objects = wait_for(&store, &cluster, "the service without its token", |o| {
        token(o) == Some(serde_json::Value::Null)
    })
    .await;
    assert_eq!(objects[&key].1["metadata"]["labels"]["v"], "1");
    let (head, _) = common::replay(&store, &cluster).await.unwrap();
    let tip = head.tip();
    let segment_type = if head.diffs.is_empty() {
        outpost::format::SegmentType::Snapshot
    } else {
        outpost::format::SegmentType::Diff
    };
    let segment = store
        .read_segment(
            &store
                .layout()
                .segment(&cluster, &head.epoch, tip.seq, segment_type),
            &outpost::format::DecodeLimits::default(),
        )
        .await
        .unwrap();
    assert!(
        segment
            .header()
            .redaction
            .contains(&"remove:hide".to_string()),
        "{:?}",
        segment.header().redaction
    );
    agent.stop();
}

/// A running agent that watches no Secret and has no key: a config file change that starts
/// watching Secrets, when it may not create the key's Secret, is not applied, and the warning
/// says what to grant or pass; the agent goes on shipping the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_added_to_a_keyless_agent_without_the_create_right_are_refused() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "addsecret").await;
    create(&admin, &ns, "", "v1", "Service", service("web", "1")).await;
    create_secret(&admin, &ns, "db").await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &agent_config,
        &ns,
        &format!(
            "cluster: addsecret\nbucket: file://{}\nkinds: [Service]\nnamespaces: [{ns}]\n",
            bucket.display()
        ),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("addsecret").unwrap();
    let service_key = ("Service".to_string(), ns.clone(), "web".to_string());
    wait_for(&store, &cluster, "the service", |o| {
        o.contains_key(&service_key)
    })
    .await;
    let file = dir.path().join("agent.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("kinds: [Service]", "kinds: [Service, Secret]"),
    )
    .unwrap();
    let mut refused = false;
    for _ in 0..60 {
        let stderr = agent.stderr();
        if stderr.contains("configuration change not applied") {
            for needle in [
                "grant verb \"create\" on resource \"secrets\"",
                "--redaction-key-file",
            ] {
                assert!(stderr.contains(needle), "no {needle} in: {stderr}");
            }
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(refused, "no refusal in: {}", agent.stderr());
    let (_, objects) = common::replay(&store, &cluster).await.unwrap();
    assert!(
        objects.keys().all(|(kind, _, _)| kind == "Service"),
        "{objects:?}"
    );
    agent.stop();
}
