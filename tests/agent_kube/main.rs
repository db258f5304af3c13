//! The agent against a real kube-apiserver (`scripts/test-kube`), watching with its own
//! RBAC-restricted token; the helpers every module shares are here, the tests in one module per
//! concern.

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use outpost::agent::config::{
    self, AgentArgs, AgentSettings, DEFAULT_SIM_CHANGES_PER_SECOND, MIN_INTERVAL,
};
use outpost::agent::run::{SharedStatus, Status};
use outpost::agent::state::State;
use outpost::format::ClusterName;
use outpost::store::Store;
use serde_json::json;
use tokio::sync::oneshot;

// The helpers every test target shares, one folder up from this target's own.
#[path = "../common/mod.rs"]
mod common;

mod partition;
mod reload;
mod secrets;
mod shipping;

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
    }))
    .expect("the agent's ClusterRole");
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "outpost-agent-test"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "outpost-agent-test"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]
    }))
    .expect("the agent's ClusterRoleBinding");
    for (api, object) in [(&roles, role), (&bindings, binding)] {
        let name = object.metadata.name.clone().expect("a named object");
        api.patch(
            &name,
            &PatchParams::apply("outpost-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }
}

/// Creates an object of `kind` in `ns` as `admin`, and returns it as the API server stored it.
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
        &serde_json::from_value(body).expect("an object's manifest"),
    )
    .await
    .unwrap_or_else(|e| panic!("creating a {kind} in {ns}: {e}"))
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
/// `cluster` shipping to `bucket` at the shortest interval accepted (a second), reaching the API
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
        interval: Some(MIN_INTERVAL),
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

/// A Service `name` labelled `v: value`.
fn service(name: &str, value: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"v": value}}, "spec": {"ports": [{"port": 80}]}})
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
        .expect("the agent's config file is written");
        let stderr = dir.join("agent.stderr");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["agent", "--config"])
            .arg(&config_file)
            .env("POD_NAMESPACE", pod_namespace)
            .env_remove("OUTPOST_REDACTION_KEY_FILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("the agent's stderr file"))
            .spawn()
            .expect("outpost agent starts");
        Self { child, stderr }
    }

    /// What the agent has written to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most 60 s) for the agent to exit by itself: its exit status and stderr.
    async fn exited(mut self) -> (std::process::ExitStatus, String) {
        for _ in 0..120 {
            if let Some(status) = self.child.try_wait().expect("the agent's status") {
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
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("the agent's exit status");
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
