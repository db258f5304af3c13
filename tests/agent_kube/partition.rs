//! The agent through a network partition: its watches cut while the cluster changes and etcd
//! is compacted, then restored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use outpost::format::ClusterName;
use outpost::store::Store;
use serde_json::json;

use super::{RunningAgent, agent_settings, common, create, grant_agent, service, wait_for};

/// Kills and restores TCP connections to the API server on demand: a network partition, which a
/// real server cannot be asked for.
struct CuttableProxy {
    address: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    /// Listens on a free local port and forwards every connection to `upstream` (`host:port`).
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy listens");
        let address = listener
            .local_addr()
            .expect("the proxy's address")
            .to_string();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_cut, tasks) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused by closing it
                }
                let upstream = upstream.clone();
                tasks
                    .lock()
                    .expect("the proxy's connections")
                    .push(tokio::spawn(async move {
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

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self
            .connections
            .lock()
            .expect("the proxy's connections")
            .drain(..)
        {
            task.abort();
        }
    }

    /// Accepts connections again.
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
    let dir = tempfile::tempdir().expect("a temporary folder");
    let kubeconfig = kubeconfig_through(&agent_config, &proxy.address, dir.path());
    let cluster = ClusterName::new("relist").unwrap();
    let bucket = format!("memory://agent-relist-{ns}");
    let store = Store::open(&bucket).await.expect("the bucket opens");
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
