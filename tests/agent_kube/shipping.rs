//! What happens in the cluster reaches the bucket exactly: every default kind and custom
//! resources, a CRD installed after the agent started, and kinds RBAC forbids reported while the
//! rest ships.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use outpost::agent::config::DEFAULT_KINDS;
use outpost::format::{ClusterName, Identity};
use outpost::store::Store;
use serde_json::json;

use super::{RunningAgent, agent_settings, common, create, grant_agent, service, wait_for};

/// A custom resource whose CRD is installed after the agent started is picked up by rediscovery:
/// reported as not served first, then watched (its initial list completes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_installed_later_starts_being_watched() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "crd").await;
    let group = format!("w{:08x}.outpost.example.com", rand::random::<u32>());
    let kind_name = format!("Widget.{group}");
    let roles: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
    );
    let role_name = format!("outpost-agent-{group}");
    for (api, body) in [
        (
            &roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name},
            "rules": [{"apiGroups": [group], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            &bindings,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
    ] {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    }
    create(&admin, &ns, "", "v1", "Service", service("web", "1")).await;

    let cluster = ClusterName::new("crd").unwrap();
    let bucket = format!("memory://agent-crd-{ns}");
    let store = Store::open(&bucket).await.expect("the bucket opens");
    let agent = RunningAgent::start(agent_settings(
        "crd",
        &bucket,
        Path::new(&agent_config),
        &["Service", &kind_name],
        &ns,
    ))
    .await;
    wait_for(
        &store,
        &cluster,
        "the first snapshot without widgets",
        |o| o.len() == 1,
    )
    .await;
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(
        identity
            .forbidden_kinds
            .iter()
            .any(|f| f.kind == kind_name && f.reason.contains("does not serve")),
        "{identity:?}"
    );

    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(crd).unwrap(),
    )
    .await
    .unwrap();
    // The kind becomes watched: its initial (empty) list completes and it is no longer reported.
    let identity_key = store.layout().identity(&cluster);
    let mut watched = false;
    for _ in 0..60 {
        let (bytes, _) = store.get(&identity_key).await.unwrap();
        let identity = Identity::from_json("identity.json", &bytes).unwrap();
        if identity.forbidden_kinds.is_empty() && identity.kinds.contains(&kind_name) {
            watched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(watched, "the CRD installed later was never watched");
    let (head, _) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(head.kinds.get(&kind_name), None);
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(identity.forbidden_kinds.is_empty(), "{identity:?}");
    assert!(identity.kinds.contains(&kind_name));
    // And its objects ship.
    create(&admin, &ns, &group, "v1", "Widget", json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .await;
    let objects = wait_for(&store, &cluster, "the widget", |o| {
        o.contains_key(&("Widget".to_string(), ns.clone(), "w1".to_string()))
    })
    .await;
    assert_eq!(
        objects[&("Widget".to_string(), ns.clone(), "w1".to_string())].1["spec"]["size"],
        3
    );
    agent.stop().await;
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}

/// With its own restricted token the agent ships a namespace's creates, updates and deletes
/// exactly, and reports the kind its role does not grant (NetworkPolicy) while the rest ships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_what_happens_in_the_cluster() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;

    let ns = format!("ship-{:08x}", rand::random::<u32>());
    let namespaces: Api<DynamicObject> =
        Api::all_with(admin.clone(), &common::resource("", "v1", "Namespace"));
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
    let bucket = format!("memory://agent-kube-{ns}");
    let store = Store::open(&bucket).await.expect("the bucket opens");
    let agent = RunningAgent::start(agent_settings(
        "kube-test",
        &bucket,
        Path::new(&agent_config),
        DEFAULT_KINDS,
        &ns,
    ))
    .await;

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
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &ns,
        &common::resource("apps", "v1", "Deployment"),
    );
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let pods: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns, &common::resource("", "v1", "Pod"));
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
    assert!(agent.status().unavailable.contains_key("NetworkPolicy"));

    let state = agent.stop().await;
    // The agent ships once more as it stops: the bucket then holds its whole state (compared
    // after the stop: objects of other namespaces may arrive after the wait above).
    let (_, shipped) = common::replay(&store, &cluster).await.unwrap();
    assert_eq!(state.len(), shipped.len());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// Every default kind, and a custom resource, created, updated and deleted in the cluster: the
/// bucket shows exactly those objects after each step. The agent's token may list
/// NetworkPolicies only in this test's namespace (a RoleBinding), where it watches them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_default_kind_and_a_custom_resource_ship_exactly() {
    let Some(admin_config) = common::server_url("OUTPOST_TEST_KUBECONFIG") else {
        return;
    };
    let agent_config = common::server_url("OUTPOST_TEST_AGENT_KUBECONFIG").unwrap();
    let admin = common::kube_client(&admin_config).await;
    grant_agent(&admin).await;
    let ns = common::new_namespace(&admin, "kinds").await;

    // A CRD, and the agent's right to read it and this namespace's NetworkPolicies.
    let group = format!("g{:08x}.outpost.example.com", rand::random::<u32>());
    let crds: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &common::resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    );
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("gadgets.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let role_name = format!("outpost-agent-{group}");
    let grants = [
        (
            common::resource("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role_name},
                   "rules": [{"apiGroups": [group], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "Role"),
            Some(&ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "netpol-reader"},
                   "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            common::resource("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            Some(&ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "netpol-reader"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "netpol-reader"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "outpost-agent"}]}),
        ),
    ];
    for (api_resource, namespace, body) in grants {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &api_resource),
            None => Api::all_with(admin.clone(), &api_resource),
        };
        api.create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap();
    }
    // Wait until the API server serves the new kind.
    let gadget = common::resource(&group, "v1", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &gadget);
    for attempt in 0.. {
        if gadgets.list(&Default::default()).await.is_ok() {
            break;
        }
        assert!(attempt < 60, "the CRD was never served");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let cluster = ClusterName::new("kinds").unwrap();
    let bucket = format!("memory://agent-kinds-{ns}");
    let store = Store::open(&bucket).await.expect("the bucket opens");
    let gadget_kind = format!("Gadget.{group}");
    let kinds: Vec<&str> = DEFAULT_KINDS
        .iter()
        .copied()
        .chain([gadget_kind.as_str()])
        .collect();
    let agent = RunningAgent::start(agent_settings(
        "kinds",
        &bucket,
        Path::new(&agent_config),
        &kinds,
        &ns,
    ))
    .await;
    wait_for(&store, &cluster, "the first snapshot", |_| true).await;

    let labels = json!({"app": "shop"});
    let template = json!({"metadata": {"labels": labels},
                          "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Always"}});
    let job_template = json!({"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Never"}});
    // (group, version, kind, body): the versions kube-apiserver 1.20 serves.
    let objects = [
        ("", "v1", "Pod", json!({"spec": template["spec"]})),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"selector": labels, "ports": [{"port": 80}]}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"replicas": 1, "serviceName": "shop", "selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            json!({"spec": {"selector": {"matchLabels": labels}, "template": template}}),
        ),
        (
            "batch",
            "v1",
            "Job",
            json!({"spec": {"template": job_template}}),
        ),
        (
            "batch",
            "v1beta1",
            "CronJob",
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            json!({"spec": {"defaultBackend": {"service": {"name": "shop", "port": {"number": 80}}}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]}}),
        ),
        (group.as_str(), "v1", "Gadget", json!({"spec": {"size": 1}})),
    ];
    let api_of = |g: &str, v: &str, k: &str| -> Api<DynamicObject> {
        Api::namespaced_with(admin.clone(), &ns, &common::resource(g, v, k))
    };
    let key = |kind: &str| (kind.to_string(), ns.clone(), "shop".to_string());
    for (g, v, k, body) in &objects {
        let mut body = body.clone();
        body["apiVersion"] = json!(if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        });
        body["kind"] = json!(k);
        body["metadata"] = json!({"name": "shop", "labels": {"rev": "1"}});
        api_of(g, v, k)
            .create(
                &PostParams::default(),
                &serde_json::from_value(body).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {k}: {e}"));
    }
    let in_namespace = |o: &common::Replayed| -> BTreeMap<String, String> {
        o.iter()
            .filter(|((_, n, _), _)| n == &ns)
            .map(|((k, _, _), (_, object))| {
                (
                    k.clone(),
                    object["metadata"]["labels"]["rev"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let every = |rev: &str| -> BTreeMap<String, String> {
        objects
            .iter()
            .map(|(_, _, k, _)| (k.to_string(), rev.to_string()))
            .collect()
    };
    let created = wait_for(&store, &cluster, "every kind created", |o| {
        in_namespace(o) == every("1")
    })
    .await;
    assert_eq!(created[&key("Gadget")].1["spec"]["size"], 1);
    assert_eq!(
        created[&key("Ingress")].1["spec"]["defaultBackend"]["service"]["name"],
        "shop"
    );

    for (g, v, k, _) in &objects {
        api_of(g, v, k)
            .patch(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"rev": "2"}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("updating {k}: {e}"));
    }
    wait_for(&store, &cluster, "every kind updated", |o| {
        in_namespace(o) == every("2")
    })
    .await;

    for (g, v, k, _) in &objects {
        // Background propagation: batch kinds default to orphaning, whose finalizer only a
        // garbage collector (absent here) would remove.
        api_of(g, v, k)
            .delete("shop", &DeleteParams::background().grace_period(0))
            .await
            .unwrap_or_else(|e| panic!("deleting {k}: {e}"));
    }
    // Without a garbage collector (only an API server runs here) nothing else goes away, so the
    // namespace must be empty of watched objects once the deletions shipped.
    wait_for(&store, &cluster, "every kind deleted", |o| {
        in_namespace(o).is_empty()
    })
    .await;
    let (bytes, _) = store.get(&store.layout().identity(&cluster)).await.unwrap();
    let identity = Identity::from_json("identity.json", &bytes).unwrap();
    assert!(identity.forbidden_kinds.is_empty(), "{identity:?}");
    agent.stop().await;
    crds.delete(&format!("gadgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}
