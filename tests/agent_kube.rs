//! The agent against a real kube-apiserver (`scripts/test-kube`), watching with its own
//! RBAC-restricted token: objects created, updated and deleted in the cluster appear in the
//! bucket exactly; a kind the agent may not list is reported while the others ship.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use outpost::agent::redact::Redactor;
use outpost::agent::run::{Agent, Status};
use outpost::agent::ship::{ShipOptions, Shipper};
use outpost::agent::state::{Scope, State};
use outpost::agent::watch::{self, Selection, Watches};
use outpost::format::{ClusterName, Identity};
use outpost::store::Store;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

mod common;

const DEFAULT_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Pod",
    "Service",
    "Ingress",
    "NetworkPolicy",
    "Namespace",
];

async fn client(kubeconfig: &str) -> kube::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

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
            {"apiGroups": [""], "resources": ["pods", "services", "namespaces"], "verbs": ["get", "list", "watch"]},
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
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind))
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
        Api::namespaced_with(admin.clone(), ns, &resource(group, version, kind));
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
    for _ in 0..120 {
        if let Some((_, objects)) = common::replay(store, cluster).await
            && done(&objects)
        {
            return objects;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_what_happens_in_the_cluster() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = client(&admin_config).await;
    let agent_client = client(&agent_config).await;
    grant_agent(&admin).await;

    let ns = format!("ship-{:08x}", rand::random::<u32>());
    let namespaces: Api<DynamicObject> =
        Api::all_with(admin.clone(), &resource("", "v1", "Namespace"));
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
    let store = Store::open(&format!("memory://agent-kube-{ns}"))
        .await
        .unwrap();
    let served = watch::discover(&agent_client).await.unwrap();
    let selection = Selection {
        kinds: DEFAULT_KINDS.iter().map(|k| k.to_string()).collect(),
        namespaces: vec![ns.clone()],
        ..Selection::default()
    };
    let redactor = Arc::new(Redactor::new(&[1; 32], vec![]).unwrap());
    let (events_tx, events) = mpsc::channel(1024);
    let watches = Watches::start(
        &agent_client,
        &served,
        &selection,
        redactor.clone(),
        events_tx,
    );
    let scopes: BTreeSet<Scope> = watches.scopes().cloned().collect();
    let status = Arc::new(Mutex::new(Status::default()));
    let mut identity = Identity::new(cluster.clone(), chrono::Utc::now());
    identity.kinds = selection.kinds.clone();
    let agent = Agent {
        store: store.clone(),
        cluster: cluster.clone(),
        shipper: Shipper::new(
            store.clone(),
            cluster.clone(),
            ShipOptions {
                redaction: redactor.rule_ids(),
                ..ShipOptions::default()
            },
        ),
        state: State::new(),
        identity,
        interval: Duration::from_millis(500),
        status: status.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(agent.run(events, scopes, async {
        let _ = stopped.await;
    }));

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
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &resource("apps", "v1", "Deployment"));
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let pods: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &resource("", "v1", "Pod"));
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
    assert!(
        status
            .lock()
            .unwrap()
            .unavailable
            .contains_key("NetworkPolicy")
    );

    stop.send(()).unwrap();
    let state = running.await.unwrap();
    assert_eq!(state.len(), objects.len());
    drop(watches);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
