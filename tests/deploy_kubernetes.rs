//! The in-cluster objects `terraform/modules/*/manifests` render, against the real
//! kube-apiserver: they pass its server-side dry run; the agent, holding a token of exactly its
//! ServiceAccount (TokenRequest) under exactly its ClusterRole, ships a snapshot and is refused a
//! kind the role does not grant; and the gateway, started with its Deployment's arguments and its
//! Secret's files, answers kubectl holding the token and CA of the Secret Clouddriver mounts.
//!
//! Needs Terraform or OpenTofu (`OUTPOST_TEST_TERRAFORM`, set by `scripts/test-terraform env`),
//! kubectl (`OUTPOST_TEST_KUBECTL`) and the API server (`scripts/test-kube`).

use std::path::Path;
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

/// `kubectl` with `kubeconfig`, which must succeed; its stdout.
fn kubectl(binary: &Path, kubeconfig: &str, args: &[&str]) -> String {
    let (ok, stdout, stderr) = common::kubectl(binary, Path::new(kubeconfig), args);
    assert!(ok, "kubectl {args:?} failed: {stdout}\n{stderr}");
    stdout
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
        common::terraform::binary("OUTPOST_TEST_TERRAFORM"),
        common::terraform::binary("OUTPOST_TEST_KUBECTL"),
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
    let yaml = common::terraform::render(
        &terraform,
        "kubernetes-agent/manifests",
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
        "yaml",
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
        format!("configmap/{name}-settings"),
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
    // Who the cluster is and where it ships: the settings ConfigMap, as the pod's env reads it.
    let settings = config_maps.get(&format!("{name}-settings")).await.unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_outpost"));
    agent
        .args(["agent", "--config"])
        .arg(&config_file)
        .env("POD_NAMESPACE", &namespace);
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &namespace,
        &common::resource("apps", "v1", "Deployment"),
    );
    let deployment = deployments.get(&name).await.unwrap();
    for env in deployment.data["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        if let Some(key) = env["valueFrom"]["configMapKeyRef"]["key"].as_str() {
            agent.env(
                env["name"].as_str().unwrap(),
                settings.data["data"][key].as_str().unwrap(),
            );
        }
    }
    let mut agent = agent
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

/// The documents of a multi-document YAML stream, by `kind/name`.
fn documents(yaml: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    yaml.split("\n---\n")
        .map(|doc| serde_yaml_ng::from_str::<serde_json::Value>(doc).expect("a YAML document"))
        .map(|doc| {
            let key = format!(
                "{}/{}",
                doc["kind"].as_str().unwrap(),
                doc["metadata"]["name"].as_str().unwrap()
            );
            (key, doc)
        })
        .collect()
}

fn secret_file(secret: &serde_json::Value, key: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(
            secret["data"][key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {secret}")),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_runs_from_its_rendered_objects_and_clouddriver_reaches_it_with_its_secret() {
    let (Some(terraform), Some(kubectl_binary)) = (
        common::terraform::binary("OUTPOST_TEST_TERRAFORM"),
        common::terraform::binary("OUTPOST_TEST_KUBECTL"),
    ) else {
        return;
    };
    let Some(admin_kubeconfig) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unique = format!("{:08x}", rand::random::<u32>());
    let namespace = format!("spinnaker-{unique}");

    // A serving certificate for 127.0.0.1, as the parent module makes one for the Service.
    let (cert, key) = common::certificate(dir.path());
    let db = dir.path().join("cache.db");
    let db_url = format!("sqlite://{}", db.display());
    let empty_bucket = dir.path().join("empty-bucket");
    std::fs::create_dir_all(&empty_bucket).unwrap();
    // The indexer makes the tables the gateway reads.
    common::terraform::run(
        Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["index", "--once", "--bucket"])
            .arg(format!("file://{}", empty_bucket.display()))
            .args(["--db", &db_url]),
    );
    let token = "t".repeat(48);
    let yaml = common::terraform::render(
        &terraform,
        "kubernetes-gateway/manifests",
        &format!(
            r#"  namespace        = "{namespace}"
  client_namespace = "{namespace}"
  image            = "outpost:test"
  database_url     = "{db_url}"
  tls_cert_pem     = file("{cert}")
  tls_key_pem      = file("{key}")
  ca_pem           = file("{cert}")
  tokens           = [{{ name = "clouddriver", token = "{token}" }}]
  client_token     = "{token}"
  kubernetes_minor_version = 20"#,
            cert = cert.display(),
            key = key.display(),
        ),
        "yaml",
    );
    let manifests = dir.path().join("gateway.yaml");
    std::fs::write(&manifests, &yaml).unwrap();
    kubectl(
        &kubectl_binary,
        &admin_kubeconfig,
        &["create", "namespace", &namespace],
    );
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
        "secret/outpost-gateway",
        "secret/outpost-gateway-client",
        "deployment.apps/outpost-gateway",
        "service/outpost-gateway",
        "poddisruptionbudget.policy/outpost-gateway",
    ] {
        assert!(
            dry_run.contains(&format!("{object} created (server dry run)")),
            "{object} in:\n{dry_run}"
        );
    }

    // The container as the Deployment runs it: its arguments, its env from the Secret, the
    // Secret's files where the volume mounts them.
    let docs = documents(&yaml);
    let deployment = &docs["Deployment/outpost-gateway"];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mount_path = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir_all(&mount).unwrap();
    let secret = &docs["Secret/outpost-gateway"];
    for item in deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]
        .as_array()
        .unwrap()
    {
        let (key, path) = (
            item["key"].as_str().unwrap(),
            item["path"].as_str().unwrap(),
        );
        std::fs::write(mount.join(path), secret_file(secret, key)).unwrap();
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace(mount_path, mount.to_str().unwrap())
                .replace("0.0.0.0:8443", "127.0.0.1:0")
        })
        .collect();
    let env = &container["env"][0];
    assert_eq!(env["name"], "OUTPOST_DB");
    let db_key = env["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
    let stderr = dir.path().join("gateway.stderr");
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(&args)
        .env(
            "OUTPOST_DB",
            String::from_utf8(secret_file(secret, db_key)).unwrap(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("outpost gateway starts");
    let mut address = None;
    for _ in 0..100 {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        if let Some(rest) = log.split("listening on ").nth(1) {
            address = rest.lines().next().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let address = address.unwrap_or_else(|| {
        let _ = gateway.kill();
        panic!(
            "the gateway did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });

    // What Clouddriver mounts: the token and the CA of the client Secret.
    let client = &docs["Secret/outpost-gateway-client"];
    let ca = dir.path().join("client-ca.crt");
    std::fs::write(&ca, secret_file(client, "ca.crt")).unwrap();
    let kubeconfig = |file: &str, token: &str| {
        let path = dir.path().join(file);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: gw\n  cluster: {{server: \"https://{address}/clusters/absent\", certificate-authority: \"{}\"}}\nusers:\n- name: gw\n  user: {{token: {token}}}\ncontexts:\n- name: gw\n  context: {{cluster: gw, user: gw}}\ncurrent-context: gw\n",
                ca.display()
            ),
        )
        .unwrap();
        path
    };
    let client_token = String::from_utf8(secret_file(client, "token")).unwrap();
    let attempt = |config: &Path| {
        Command::new(&kubectl_binary)
            .arg("--kubeconfig")
            .arg(config)
            .args(["get", "--raw", "/clusters/absent/api"])
            .output()
            .unwrap()
    };
    let good = attempt(&kubeconfig("good", &client_token));
    let bad = attempt(&kubeconfig("bad", &"x".repeat(48)));
    let _ = gateway.kill();
    let _ = gateway.wait();
    let (good, bad) = (
        String::from_utf8_lossy(&good.stderr).into_owned(),
        String::from_utf8_lossy(&bad.stderr).into_owned(),
    );
    // Past TLS and the token: the gateway itself says it holds no cluster of that account.
    assert!(
        good.contains("no indexed cluster holds account absent"),
        "{good}"
    );
    assert!(bad.contains("Unauthorized"), "{bad}");
}

/// `kubectl apply --dry-run=server` of `documents`; every one must be accepted as created.
fn server_dry_run(
    kubectl_binary: &Path,
    admin_kubeconfig: &str,
    dir: &Path,
    documents: &[serde_json::Value],
) {
    let file = dir.join(format!("dry-run-{:08x}.yaml", rand::random::<u32>()));
    let yaml: Vec<String> = documents
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    std::fs::write(&file, yaml.join("---\n")).unwrap();
    let answer = kubectl(
        kubectl_binary,
        admin_kubeconfig,
        &["apply", "--dry-run=server", "-f", file.to_str().unwrap()],
    );
    assert_eq!(
        answer.matches("created (server dry run)").count(),
        documents.len(),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_helm_chart_and_kustomize_base_pass_the_dry_run() {
    let (Some(helm), Some(kubectl_binary)) = (
        common::terraform::binary("OUTPOST_TEST_HELM"),
        common::terraform::binary("OUTPOST_TEST_KUBECTL"),
    ) else {
        return;
    };
    let Some(admin_kubeconfig) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let admin = common::kube_client(&admin_kubeconfig).await;
    let version = admin.apiserver_version().await.unwrap();
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/outpost-agent");
    let namespace = format!("helm-{:08x}", rand::random::<u32>());

    // Helm: the values it needs are required, by name.
    for (set, missing) in [
        ("cluster=helm-test", "values.bucketUrl is required"),
        ("bucketUrl=s3://fleet", "values.cluster is required"),
    ] {
        let refused = Command::new(&helm)
            .args(["template", "outpost"])
            .arg(&chart)
            .args(["--set", set])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(missing), "{stderr}");
    }
    let rendered = common::terraform::run(
        Command::new(&helm)
            .args(["template", "outpost"])
            .arg(&chart)
            .args([
                "--namespace",
                &namespace,
                "--kube-version",
                &version.git_version,
            ])
            .args([
                "--set",
                "cluster=helm-test",
                "--set",
                "bucketUrl=s3://fleet/prod",
            ])
            .args([
                "--set",
                "roleArn=arn:aws:iam::111122223333:role/outpost-agent-helm-test",
            ]),
    );
    let documents: Vec<serde_json::Value> = rendered
        .split("\n---\n")
        .filter(|d| {
            d.lines()
                .any(|l| l.starts_with("\"kind\"") || l.starts_with("kind:"))
        })
        .map(|d| serde_yaml_ng::from_str(d).expect("a YAML document"))
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "CronJob",
        "Job",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let account = documents
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .unwrap();
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/outpost-agent-helm-test"
    );
    let settings = documents
        .iter()
        .find(|d| d["metadata"]["name"] == "outpost-agent-settings")
        .unwrap();
    assert_eq!(settings["data"]["cluster"], "helm-test");
    kubectl(
        &kubectl_binary,
        &admin_kubeconfig,
        &["create", "namespace", &namespace],
    );
    server_dry_run(&kubectl_binary, &admin_kubeconfig, dir.path(), &documents);

    // Kustomize: the example overlay, built by a kubectl whose kustomize reads it (Debian's 1.20
    // carries a kustomize too old for `patches`).
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kustomize/example");
    let built = common::kubectls().into_iter().find_map(|binary| {
        let output = Command::new(&binary)
            .arg("kustomize")
            .arg(&example)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    let Some(built) = built else {
        panic!(
            "no kubectl of OUTPOST_TEST_KUBECTL or PATH builds {}",
            example.display()
        );
    };
    let documents: Vec<serde_json::Value> = built
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).expect("a YAML document"))
        .collect();
    let settings = documents
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "outpost-agent-settings")
        .expect("the overlay's settings");
    assert_eq!(settings["data"]["cluster"], "shop-prod");
    // The base is for 1.21 and later (policy/v1, batch/v1); an older server is shown the rest.
    let served: Vec<serde_json::Value> = documents
        .into_iter()
        .filter(|d| {
            minor >= 21 || !matches!(d["kind"].as_str(), Some("PodDisruptionBudget" | "CronJob"))
        })
        .filter(|d| d["kind"] != "Namespace")
        .collect();
    let _ = Command::new(&kubectl_binary)
        .arg("--kubeconfig")
        .arg(&admin_kubeconfig)
        .args(["create", "namespace", "outpost"])
        .output();
    server_dry_run(&kubectl_binary, &admin_kubeconfig, dir.path(), &served);
}
