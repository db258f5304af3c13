//! The agent's in-cluster objects as `terraform/modules/kubernetes-agent/manifests` renders them,
//! against the real kube-apiserver: they pass its server-side dry run, and the agent, holding a
//! token of exactly that ServiceAccount (TokenRequest) under exactly that ClusterRole, ships a
//! snapshot and is refused a kind the role does not grant.
//!
//! Needs Terraform or OpenTofu (`OUTPOST_TEST_TERRAFORM`, set by `scripts/test-terraform env`),
//! kubectl (`OUTPOST_TEST_KUBECTL`) and the API server (`scripts/test-kube`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use outpost::format::{ClusterName, Identity};
use outpost::store::Store;
use serde_json::json;

mod common;

/// The module every manifest comes from.
fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform/modules/kubernetes-agent/manifests")
}

/// The first of a colon-separated list of binaries in `var`, or `None` (with a printed reason)
/// when it is not set and the servers are not required.
fn binary(var: &str) -> Option<PathBuf> {
    let found = std::env::var(var)
        .ok()
        .and_then(|v| v.split(':').find(|p| !p.is_empty()).map(PathBuf::from));
    if found.is_none() {
        assert!(
            std::env::var("OUTPOST_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "{var} is not set (scripts/test sets it)"
        );
        eprintln!("skipped: {var} is not set");
    }
    found
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Renders the module with `inputs` (HCL assignments) in a root of its own under `dir`, offline,
/// and returns its multi-document YAML.
fn render(terraform: &Path, dir: &Path, inputs: &str) -> String {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("main.tf"),
        format!(
            "module \"agent\" {{\n  source = \"{}\"\n{inputs}\n}}\n\
             output \"yaml\" {{\n  value     = module.agent.yaml\n  sensitive = true\n}}\n",
            module_dir().display()
        ),
    )
    .unwrap();
    let cli_config = dir.join("terraformrc");
    std::fs::write(&cli_config, "").unwrap();
    let tf = |args: &[&str]| {
        run(Command::new(terraform)
            .args(args)
            .current_dir(&root)
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1"))
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    tf(&["output", "-raw", "yaml"])
}

fn kubectl(binary: &Path, kubeconfig: &str, args: &[&str]) -> String {
    run(Command::new(binary)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

/// A kubeconfig for the test server that authenticates with `token`.
fn token_kubeconfig(admin_kubeconfig: &str, token: &str, path: &Path) {
    let mut config: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(admin_kubeconfig).expect("the admin kubeconfig"),
    )
    .unwrap();
    config["users"] = json!([{"name": "agent", "user": {"token": token}}]);
    let context = config["contexts"][0]["context"]["cluster"].clone();
    config["contexts"] =
        json!([{"name": "agent", "context": {"cluster": context, "user": "agent"}}]);
    config["current-context"] = json!("agent");
    std::fs::write(path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_the_dry_run_and_the_agent_ships_under_exactly_that_role() {
    let (Some(terraform), Some(kubectl_binary)) = (
        binary("OUTPOST_TEST_TERRAFORM"),
        binary("OUTPOST_TEST_KUBECTL"),
    ) else {
        return;
    };
    let Some(admin_kubeconfig) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let admin = common::kube_client(&admin_kubeconfig).await;
    let dir = tempfile::tempdir().unwrap();
    let unique = format!("{:08x}", rand::random::<u32>());
    let namespace = format!("outpost-{unique}");
    let name = format!("outpost-agent-{unique}");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();

    // Pods and Services and Secrets are granted; ConfigMaps are not.
    let yaml = render(
        &terraform,
        dir.path(),
        &format!(
            r#"  name       = "{name}"
  namespace  = "{namespace}"
  cluster    = "deploy-{unique}"
  bucket_url = "file://{bucket}"
  image      = "outpost:test"
  # A server-side dry run of namespaced objects needs their namespace to exist already.
  create_namespace = false
  kinds = [
    {{ name = "Pod", group = "", resource = "pods" }},
    {{ name = "Service", group = "", resource = "services" }},
    {{ name = "Secret", group = "", resource = "secrets" }},
  ]
  redaction_key            = "{key}"
  kubernetes_minor_version = 20
  extra_config             = {{ interval = "1s", namespaces = ["{namespace}"] }}"#,
            bucket = bucket.display(),
            key = "k".repeat(40),
        ),
    );
    kubectl(
        &kubectl_binary,
        &admin_kubeconfig,
        &["create", "namespace", &namespace],
    );
    let manifests = dir.path().join("agent.yaml");
    std::fs::write(&manifests, &yaml).unwrap();

    let dry_run = kubectl(
        &kubectl_binary,
        &admin_kubeconfig,
        &[
            "apply",
            "--dry-run=server",
            "-f",
            manifests.to_str().unwrap(),
        ],
    );
    for object in [
        format!("serviceaccount/{name}"),
        format!("clusterrole.rbac.authorization.k8s.io/{name}"),
        format!("clusterrolebinding.rbac.authorization.k8s.io/{name}"),
        format!("configmap/{name}"),
        format!("deployment.apps/{name}"),
        format!("poddisruptionbudget.policy/{name}"),
        format!("cronjob.batch/{name}-decommission"),
        format!("secret/{name}-redaction-key"),
    ] {
        assert!(
            dry_run.contains(&format!("{object} created (server dry run)")),
            "{object} in:\n{dry_run}"
        );
    }
    kubectl(
        &kubectl_binary,
        &admin_kubeconfig,
        &["apply", "-f", manifests.to_str().unwrap()],
    );

    // A token of exactly that ServiceAccount, as the pod would be given.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", &name, &PostParams::default(), &request)
        .await
        .expect("a TokenRequest for the agent's ServiceAccount");
    let token = answer.status.expect("a token").token;
    let agent_kubeconfig = dir.path().join("agent.kubeconfig");
    token_kubeconfig(&admin_kubeconfig, &token, &agent_kubeconfig);

    // Something to ship, and something the role does not grant.
    let pods: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &namespace,
        &common::resource("", "v1", "Pod"),
    );
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();

    // The agent's own config file, as the ConfigMap holds it, with the key file it mounts.
    let config_maps: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &namespace,
        &common::resource("", "v1", "ConfigMap"),
    );
    let config_map = config_maps.get(&name).await.unwrap();
    let agent_yaml = config_map.data["data"]["agent.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let key_file = dir.path().join("redaction.key");
    std::fs::write(&key_file, "k".repeat(40)).unwrap();
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&agent_yaml).unwrap();
    config["redaction"]["keyFile"] = json!(key_file.to_str().unwrap());
    config["listen"] = json!("127.0.0.1:0");
    config["kubeconfig"] = json!(agent_kubeconfig.to_str().unwrap());
    config["kinds"]
        .as_array_mut()
        .unwrap()
        .push(json!("ConfigMap"));
    let config_file = dir.path().join("agent-config.yaml");
    std::fs::write(&config_file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let stderr = dir.path().join("agent.stderr");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["agent", "--config"])
        .arg(&config_file)
        .env("POD_NAMESPACE", &namespace)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("outpost agent starts");

    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new(&format!("deploy-{unique}")).unwrap();
    let mut shipped = None;
    for _ in 0..120 {
        if let Some((_, objects)) = common::replay(&store, &cluster).await
            && objects.contains_key(&("Pod".into(), namespace.clone(), "web".into()))
        {
            shipped = Some(objects);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let identity = store
        .get(&store.layout().identity(&cluster))
        .await
        .map(|(bytes, _)| {
            Identity::from_json("identity.json", &bytes).expect("a valid identity.json")
        });
    let _ = agent.kill();
    let _ = agent.wait();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let shipped = shipped.unwrap_or_else(|| panic!("no snapshot with the pod; agent log:\n{log}"));
    assert!(
        shipped.keys().all(|(kind, _, _)| kind != "ConfigMap"),
        "{shipped:?}"
    );
    let identity = identity.expect("identity.json");
    let forbidden: Vec<&str> = identity
        .forbidden_kinds
        .iter()
        .map(|k| k.kind.as_str())
        .collect();
    assert_eq!(forbidden, ["ConfigMap"], "{log}");
}
