//! Shared by the integration tests only: replaying a cluster's chain and the test kube-apiserver
//! (what benchmarks share too is in `outpost::test_support`).

#[macro_use]
#[allow(dead_code)]
pub mod db;
#[allow(dead_code)]
pub mod accounts;
#[allow(dead_code)]
pub mod chain;
#[allow(dead_code)]
pub mod terraform;

#[allow(unused_imports)]
pub use outpost::test_support::server_url;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use outpost::format::{ClusterName, DecodeLimits, Head, Record};
use outpost::store::Store;

/// An object as the bucket says it is: its resourceVersion and redacted JSON.
#[allow(dead_code)]
pub type Replayed = BTreeMap<(String, String, String), (String, serde_json::Value)>;

/// Reads and verifies the chain a cluster's head names and applies it: (kind, namespace, name) →
/// (resourceVersion, object). `None` while there is no head.
#[allow(dead_code)]
pub async fn replay(store: &Store, cluster: &ClusterName) -> Option<(Head, Replayed)> {
    let head = store.read_head(cluster).await.expect("a verified head")?;
    let mut objects = BTreeMap::new();
    for listed in head.segments() {
        let mut stream = store
            .read_listed(cluster, &head, &listed, &DecodeLimits::default())
            .await
            .expect("a readable segment");
        while let Some(record) = stream.next().await {
            match record.expect("a valid record") {
                Record::Put {
                    target,
                    resource_version,
                    object,
                } => {
                    let value = serde_json::from_str(object.get()).expect("JSON");
                    objects.insert(
                        (target.kind, target.namespace, target.name),
                        (resource_version, value),
                    );
                }
                Record::Delete { target } => {
                    objects.remove(&(target.kind, target.namespace, target.name));
                }
            }
        }
        stream.finish().await.expect("a verified segment");
    }
    Some((head, objects))
}

/// A client for the test API server from a kubeconfig file.
#[allow(dead_code)]
pub async fn kube_client(kubeconfig: &str) -> kube::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A Kubernetes API resource by group, version and kind.
#[allow(dead_code)]
pub fn resource(group: &str, version: &str, kind: &str) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind))
}

/// Creates a namespace named `<prefix>-<random>` and returns its name.
#[allow(dead_code)]
pub async fn new_namespace(admin: &kube::Client, prefix: &str) -> String {
    let ns = format!("{prefix}-{:08x}", rand::random::<u32>());
    let namespaces: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(admin.clone(), &resource("", "v1", "Namespace"));
    namespaces
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    ns
}

/// A self-signed certificate for 127.0.0.1: kubectl sends a token only over HTTPS.
#[allow(dead_code)]
pub fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=outpost-gateway",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// The `kubectl` binaries to try: `OUTPOST_TEST_KUBECTL` (colon-separated) and any on `PATH`.
#[allow(dead_code)]
pub fn kubectls() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::env::var("OUTPOST_TEST_KUBECTL")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let candidate = Path::new(dir).join("kubectl");
            // `/bin` is often `/usr/bin`: one binary is run once.
            let same = |p: &PathBuf| p.canonicalize().ok() == candidate.canonicalize().ok();
            if candidate.is_file() && !found.iter().any(same) {
                found.push(candidate);
            }
        }
    }
    found
}

/// Runs `kubectl --kubeconfig <kubeconfig> <args>`: whether it succeeded, its stdout, its stderr.
#[allow(dead_code)]
pub fn kubectl(binary: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
