//! Secrets under the agent's RBAC: no value leaves the cluster, and the redaction key comes from
//! a key file or a Secret the agent may create, or the agent says what to grant.

use std::path::Path;

use kube::api::{Api, DynamicObject};
use outpost::format::ClusterName;
use outpost::store::Store;
use serde_json::json;

use super::{
    AgentProcess, RunningAgent, agent_settings, common, create, create_secret, grant_agent,
    service, wait_for,
};

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
    let key_dir = tempfile::tempdir().expect("a temporary folder");
    let key_file = key_dir.path().join("redaction.key");
    std::fs::write(&key_file, [1u8; 32]).expect("the key file is written");
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

/// `outpost-hmac-sha256:` and the HMAC-SHA256 of `text` under `key`, as the agent writes a
/// Secret value.
fn secret_hmac(key: &[u8], text: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    format!(
        "{}{}",
        outpost::agent::redact::HMAC_PREFIX,
        hex::encode(mac.finalize().into_bytes())
    )
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
