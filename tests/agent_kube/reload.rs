//! Changes of the agent's configuration file while it runs: applied without a restart, or
//! refused with what to do.

use std::time::Duration;

use outpost::format::{ClusterName, Identity};
use outpost::store::Store;
use serde_json::json;

use super::{AgentProcess, common, create, create_secret, grant_agent, service, wait_for};

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
