//! The agent's description of what it watches (`identity.json`'s `resources`) against a real
//! kube-apiserver (`scripts/test-kube`): each watched kind as the API server's discovery serves
//! it, a forbidden kind left out, a CRD installed later described once rediscovery watches it,
//! and the simulated clusters' table agreeing with what a real API server says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use outpost::agent::config::Namespaces;
use outpost::agent::discovery;
use outpost::agent::redact::Redactor;
use outpost::agent::run::{Loop, Status};
use outpost::agent::ship::{ShipOptions, Shipper};
use outpost::agent::state::Scope;
use outpost::agent::watch::{self, Selection, Watches};
use outpost::format::{ClusterName, Identity, ServedResource};
use outpost::store::Store;
use serde_json::json;
use tokio::sync::oneshot;

mod common;

/// Lets the user `outpost-agent` get, list and watch `rules` (`[group, resource]`), through a
/// ClusterRole and binding named `name`.
async fn grant(admin: &kube::Client, name: &str, rules: &[(&str, &str)]) {
    let roles: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    );
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|(group, resource)| json!({"apiGroups": [group], "resources": [resource], "verbs": ["get", "list", "watch"]}))
        .collect();
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]});
    for (api, object) in [(&roles, role), (&bindings, binding)] {
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        api.patch(
            name,
            &PatchParams::apply("outpost-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }
}

async fn revoke(admin: &kube::Client, name: &str) {
    for kind in ["ClusterRoleBinding", "ClusterRole"] {
        let api: Api<DynamicObject> = Api::all_with(
            admin.clone(),
            &common::resource("rbac.authorization.k8s.io", "v1", kind),
        );
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

/// The agent's discovery and identity path in this process, with rediscovery every second:
/// discover, describe the selected kinds, watch them, ship into `store`.
struct RunningAgent {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<outpost::agent::state::State>,
    watching: tokio::task::JoinHandle<()>,
}

impl RunningAgent {
    async fn start(
        client: &kube::Client,
        store: &Store,
        cluster: &ClusterName,
        selection: Selection,
    ) -> Self {
        let served = watch::discover(client).await.unwrap();
        let mut identity = Identity::new(cluster.clone(), chrono::Utc::now());
        identity.kinds = selection.kinds.clone();
        identity.resources = discovery::served_resources(
            client,
            &served,
            selection.kinds.iter().map(String::as_str),
        )
        .await;
        let redactor = Arc::new(Redactor::new(&[1; 32], vec![]).unwrap());
        let (events_tx, events) = tokio::sync::mpsc::channel(1024);
        let watches = Watches::start(client, &served, &selection, redactor.clone(), events_tx);
        let scopes: BTreeSet<Scope> = watches.scopes().cloned().collect();
        let agent = Loop::new(
            store.clone(),
            Shipper::new(
                store.clone(),
                cluster.clone(),
                ShipOptions {
                    redaction: redactor.rule_ids(),
                    ..ShipOptions::default()
                },
            ),
            identity,
            outpost::settings::schedule::Trigger::Every(Duration::from_millis(300)),
            Arc::new(Mutex::new(Status::default())),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(agent.run(events, scopes, async {
            let _ = stopped.await;
        }));
        let watching = tokio::spawn(watches.rediscover(Duration::from_secs(1)));
        Self {
            stop,
            handle,
            watching,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap();
        self.watching.abort();
    }
}

/// Waits (at most 60 s) until the cluster's identity.json satisfies `done`.
async fn identity_when(
    store: &Store,
    cluster: &ClusterName,
    what: &str,
    done: impl Fn(&Identity) -> bool,
) -> Identity {
    let key = store.layout().identity(cluster);
    let mut last = None;
    for _ in 0..240 {
        if let Ok((bytes, _)) = store.get(&key).await {
            let identity = Identity::from_json("identity.json", &bytes).unwrap();
            if done(&identity) {
                return identity;
            }
            last = Some(identity);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for identity.json: {what}; last {last:?}");
}

fn by_kind(identity: &Identity) -> BTreeMap<String, ServedResource> {
    identity
        .resources
        .iter()
        .map(|r| (discovery::kind_of(r), r.clone()))
        .collect()
}

/// identity.json names one resource per kind it names as watched, sorted, as discovery has it.
fn assert_consistent(identity: &Identity) {
    let described: BTreeSet<String> = by_kind(identity).into_keys().collect();
    let watched: BTreeSet<String> = identity.kinds.iter().cloned().collect();
    assert_eq!(described, watched, "{identity:?}");
    assert_eq!(identity.resources.len(), identity.kinds.len());
    let mut sorted = identity.resources.clone();
    sorted.sort();
    assert_eq!(sorted, identity.resources);
}

/// Built-in kinds are described with their short names, scope and verbs; a forbidden kind is not
/// described; a CRD installed after the agent started is, once rediscovery watches it, with the
/// short names and categories its definition gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_describes_the_kinds_watched_as_the_api_server_serves_them() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    let group = format!("d{:08x}.outpost.example.com", rand::random::<u32>());
    let role = format!("outpost-agent-discovery-{group}");
    grant(
        &admin,
        &role,
        &[
            ("apps", "deployments"),
            ("", "pods"),
            ("", "namespaces"),
            (&group, "gadgets"),
        ],
    )
    .await;
    let ns = common::new_namespace(&admin, "discovery").await;
    let cluster = ClusterName::new("discovery").unwrap();
    let store = Store::open(&format!("memory://agent-discovery-{ns}"))
        .await
        .unwrap();
    let gadget = format!("Gadget.{group}");
    let selection = Selection {
        // LimitRange: served, but the agent may not list it.
        kinds: vec![
            "Deployment".into(),
            "Pod".into(),
            "Namespace".into(),
            "LimitRange".into(),
            gadget.clone(),
        ],
        namespaces: Namespaces::Only(vec![ns.clone()]),
        ..Selection::default()
    };
    let agent_client = common::kube_client(&agent_config).await;
    let agent = RunningAgent::start(&agent_client, &store, &cluster, selection).await;

    let identity = identity_when(&store, &cluster, "LimitRange and Gadget reported", |i| {
        let forbidden: BTreeSet<&str> = i.forbidden_kinds.iter().map(|f| f.kind.as_str()).collect();
        forbidden.contains("LimitRange") && forbidden.contains(gadget.as_str())
    })
    .await;
    assert_consistent(&identity);
    let resources = by_kind(&identity);
    assert_eq!(
        resources.keys().collect::<Vec<_>>(),
        ["Deployment", "Namespace", "Pod"]
    );
    let deployments = &resources["Deployment"];
    assert_eq!(
        (deployments.group.as_str(), deployments.version.as_str()),
        ("apps", "v1")
    );
    assert_eq!(deployments.name, "deployments");
    assert_eq!(deployments.short_names, ["deploy"]);
    assert!(deployments.categories.iter().any(|c| c == "all"));
    assert!(deployments.namespaced);
    for verb in ["get", "list", "watch"] {
        assert!(
            deployments.verbs.iter().any(|v| v == verb),
            "{deployments:?}"
        );
    }
    let pods = &resources["Pod"];
    assert_eq!((pods.group.as_str(), pods.name.as_str()), ("", "pods"));
    assert_eq!(pods.short_names, ["po"]);
    let namespaces = &resources["Namespace"];
    assert!(!namespaces.namespaced);
    assert_eq!(namespaces.short_names, ["ns"]);

    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                           "shortNames": ["gdg"], "categories": ["outpost-test"]},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    let identity = identity_when(&store, &cluster, "the Gadget watched", |i| {
        i.kinds.contains(&gadget)
    })
    .await;
    assert_consistent(&identity);
    let gadgets = &by_kind(&identity)[&gadget];
    assert_eq!(
        gadgets,
        &ServedResource {
            group: group.clone(),
            version: "v1".into(),
            name: "gadgets".into(),
            singular_name: "gadget".into(),
            kind: "Gadget".into(),
            namespaced: true,
            short_names: vec!["gdg".into()],
            categories: vec!["outpost-test".into()],
            verbs: gadgets.verbs.clone(),
        }
    );
    assert!(gadgets.verbs.iter().any(|v| v == "list"), "{gadgets:?}");
    assert!(
        identity
            .forbidden_kinds
            .iter()
            .any(|f| f.kind == "LimitRange"),
        "{identity:?}"
    );
    assert!(!identity.kinds.contains(&"LimitRange".to_string()));

    agent.stop().await;
    crds.delete(&format!("gadgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
    revoke(&admin, &role).await;
}

/// A process killed when dropped: a failed test leaves no agent running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `outpost agent` itself (its build path: discovery, then identity.json) writes the resources
/// of the kinds it watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_process_writes_the_resources_it_watches() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    let role = format!("outpost-agent-discovery-{:08x}", rand::random::<u32>());
    grant(&admin, &role, &[("apps", "statefulsets"), ("", "services")]).await;
    let ns = common::new_namespace(&admin, "discovery-process").await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    // A bucket folder exists before anyone uses it (docs/FORMAT.md §7.4).
    std::fs::create_dir(&bucket).unwrap();
    let config_file = dir.path().join("agent.yaml");
    std::fs::write(
        &config_file,
        format!(
            "kubeconfig: {agent_config}\nlisten: 127.0.0.1:0\ninterval: 1s\ncluster: discovery-process\nbucket: file://{}\nkinds: [StatefulSet, Service]\nnamespaces: [{ns}]\n",
            bucket.display()
        ),
    )
    .unwrap();
    let _agent = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["agent", "--config"])
            .arg(&config_file)
            .env("POD_NAMESPACE", &ns)
            .env_remove("OUTPOST_REDACTION_KEY_FILE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    let cluster = ClusterName::new("discovery-process").unwrap();
    let identity = identity_when(&store, &cluster, "both kinds watched", |i| {
        i.kinds.len() == 2
    })
    .await;
    revoke(&admin, &role).await;
    assert_consistent(&identity);
    let short_names: Vec<(&str, &[String])> = identity
        .resources
        .iter()
        .map(|r| (r.kind.as_str(), r.short_names.as_slice()))
        .collect();
    assert_eq!(
        short_names,
        [
            ("Service", &["svc".to_string()][..]),
            ("StatefulSet", &["sts".to_string()][..])
        ]
    );
}

/// A group-version whose discovery document cannot be read (here: one the API server never
/// served) costs its kinds their short names, not the agent its identity: they are described
/// from what kube's discovery kept, and the other kinds as the API server serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_version_whose_discovery_fails_is_described_from_kubes_discovery() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let admin = common::kube_client(&admin_config).await;
    let mut served = watch::discover(&admin).await.unwrap();
    let (mut resource, capabilities) = served["Deployment"].clone();
    resource.group = "gone.outpost.example.com".into();
    resource.api_version = "gone.outpost.example.com/v1".into();
    resource.kind = "Gone".into();
    resource.plural = "gones".into();
    served.insert(
        "Gone.gone.outpost.example.com".into(),
        (resource, capabilities.clone()),
    );
    let resources = discovery::served_resources(
        &admin,
        &served,
        ["Gone.gone.outpost.example.com", "Deployment", "Service"],
    )
    .await;
    let kinds: Vec<&str> = resources.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["Service", "Deployment", "Gone"]);
    let gone = &resources[2];
    assert_eq!(gone.name, "gones");
    assert!(gone.namespaced);
    assert!(gone.short_names.is_empty() && gone.categories.is_empty());
    assert_eq!(gone.verbs, capabilities.operations);
    assert_eq!(resources[0].short_names, ["svc"]);
    assert_eq!(resources[1].short_names, ["deploy"]);
}

/// The simulated clusters' discovery table says what a real API server says of the same
/// kinds: names, scope, short names and categories; no verb the real one lacks but
/// `deletecollection` (which older API servers do not list for Services). Versions may differ
/// (the simulated API server is newer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_discovery_table_agrees_with_a_real_api_server() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let admin = common::kube_client(&admin_config).await;
    let served = watch::discover(&admin).await.unwrap();
    let kinds: Vec<&str> = served.keys().map(String::as_str).collect();
    let simulated = outpost::agent::simulated::simulated_resources(kinds.iter().copied());
    assert!(simulated.len() >= 15, "{simulated:?}");
    let real: BTreeMap<String, ServedResource> =
        discovery::served_resources(&admin, &served, kinds.iter().copied())
            .await
            .into_iter()
            .map(|r| (discovery::kind_of(&r), r))
            .collect();
    for sim in &simulated {
        let real = &real[&discovery::kind_of(sim)];
        let names = |r: &ServedResource| {
            (
                r.group.clone(),
                r.name.clone(),
                r.kind.clone(),
                r.namespaced,
                r.short_names.clone(),
                r.categories.clone(),
            )
        };
        assert_eq!(names(sim), names(real), "{}", sim.kind);
        let sim_verbs: BTreeSet<&String> = sim.verbs.iter().collect();
        let real_verbs: BTreeSet<&String> = real.verbs.iter().collect();
        assert!(
            real_verbs.is_subset(&sim_verbs)
                && sim_verbs
                    .difference(&real_verbs)
                    .all(|v| *v == "deletecollection"),
            "{}: simulated {sim_verbs:?}, real {real_verbs:?}",
            sim.kind
        );
    }
}
