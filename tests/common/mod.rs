//! Shared by the integration tests: finding the test servers that `scripts/test` started.

#[macro_use]
#[allow(dead_code)]
pub mod db;
#[allow(dead_code)]
pub mod chain;

/// The value of a test server's environment variable, or `None` (with the reason printed) when it
/// is not set — unless `OUTPOST_TEST_REQUIRE_SERVERS=1` (as in CI), which makes it a failure.
#[allow(dead_code)]
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) if std::env::var("OUTPOST_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!(
                "{var} is not set but OUTPOST_TEST_REQUIRE_SERVERS=1: start the servers with scripts/test"
            )
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (run scripts/test to start the test servers)");
            None
        }
    }
}

use std::collections::BTreeMap;

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
