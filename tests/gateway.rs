//! The gateway against real clients, on every database: kube-rs (the Rust Kubernetes client)
//! discovers and reads an indexed cluster through it exactly as it would a cluster's API server,
//! pages and selectors included; writes, watches, logs, wrong tokens and other accounts are
//! refused with Kubernetes `Status` errors; and, when a `kubectl` is on the machine, kubectl's
//! own `get`, `api-resources` and `delete` behave as against a read-only API server.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use chrono::Utc;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::discovery::Discovery;
use outpost::format::{ClusterName, Identity, ServedResource};
use outpost::gateway::server::{self, Listener};
use outpost::gateway::source::Source;
use outpost::gateway::tokens::Tokens;
use outpost::indexer::{Database, IndexOptions, Indexer};
use outpost::store::Store;
use outpost::test_support::sim::SimCluster;

#[macro_use]
mod common;

use common::db::fresh_database;

const TOKEN: &str = "gateway-test-token-0123456789abcdef";
const OTHER_TOKEN: &str = "gateway-test-token-for-another-account";

/// What discovery said of the simulated kinds, as an API server lists them.
fn resources() -> Vec<ServedResource> {
    let verbs: Vec<String> = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ]
    .map(String::from)
    .to_vec();
    [
        ("", "pods", "Pod", true, "po"),
        ("", "services", "Service", true, "svc"),
        ("", "configmaps", "ConfigMap", true, "cm"),
        ("", "namespaces", "Namespace", false, "ns"),
        ("apps", "deployments", "Deployment", true, "deploy"),
        ("apps", "replicasets", "ReplicaSet", true, "rs"),
    ]
    .into_iter()
    .map(|(group, name, kind, namespaced, short)| ServedResource {
        group: group.into(),
        version: "v1".into(),
        name: name.into(),
        singular_name: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: vec![short.into()],
        categories: if kind == "Namespace" {
            vec![]
        } else {
            vec!["all".into()]
        },
        verbs: verbs.clone(),
    })
    .collect()
}

/// An indexed simulated cluster and a gateway in front of its database.
struct Served {
    address: SocketAddr,
    store: Store,
    cluster: ClusterName,
    _tokens: tempfile::TempDir,
    serving: tokio::task::JoinHandle<()>,
}

async fn serve(url: &str, listener: Listener) -> Served {
    let store = Store::open(&format!("memory://gateway-{:08x}", rand::random::<u32>()))
        .await
        .expect("a bucket");
    let mut sim = SimCluster::new(&store, "eu-1", 21, 300);
    let mut identity = Identity::new(sim.name.clone(), Utc::now());
    identity.server_version = Some("v1.31.4".into());
    identity.resources = resources();
    store
        .put_overwrite(
            &store.layout().identity(&sim.name),
            identity.to_json().expect("JSON").into(),
        )
        .await
        .expect("identity.json");
    sim.ship().await;
    let database = Database::connect(url, None).await.expect("a database");
    let indexer = Indexer {
        store: store.clone(),
        database: database.clone(),
        options: IndexOptions::default(),
    };
    indexer.index_cluster(&sim.name).await.expect("indexed");
    let dir = tempfile::tempdir().expect("a folder");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!(
            "- {{name: clouddriver, token: {TOKEN}}}\n- {{name: team, token: {OTHER_TOKEN}, accounts: [us-1]}}\n"
        ),
    )
    .expect("tokens.yaml");
    let reader = Database::connect_reader(url).await.expect("a reader");
    let (address, running) = server::bind(
        "127.0.0.1:0".parse().expect("an address"),
        listener,
        Source::new(reader),
        Tokens::load(&tokens).expect("tokens"),
    )
    .await
    .expect("bound");
    let serving = tokio::spawn(async move {
        running.await.expect("the gateway runs");
    });
    Served {
        address,
        store,
        cluster: sim.name.clone(),
        _tokens: dir,
        serving,
    }
}

fn client(address: SocketAddr, account: &str, token: &str) -> kube::Client {
    let url = format!("http://{address}/clusters/{account}")
        .parse()
        .expect("a URL");
    let mut config = kube::Config::new(url);
    config.auth_info.token = Some(token.to_string().into());
    config.default_namespace = "default".into();
    kube::Client::try_from(config).expect("a client")
}

/// The (namespace, name) of every object of `kind` the bucket holds for the cluster.
async fn held(served: &Served, kind: &str) -> BTreeSet<(String, String)> {
    let (_, objects) = common::replay(&served.store, &served.cluster)
        .await
        .expect("a chain");
    objects
        .keys()
        .filter(|(k, _, _)| k == kind)
        .map(|(_, namespace, name)| (namespace.clone(), name.clone()))
        .collect()
}

fn status_code(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected a Kubernetes Status, got {other}"),
    }
}

async fn kube_rs_reads_through_the_gateway(kind: &str) {
    let Some(db) = fresh_database(kind).await else {
        return;
    };
    let served = serve(&db.url, Listener::Plain).await;
    let client = client(served.address, "eu-1", TOKEN);

    // Discovery, as a client of the cluster's API server sees it.
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let apps = discovery.get("apps").expect("the apps group");
    let (deployments, capabilities) = apps
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "Deployment")
        .expect("deployments");
    assert_eq!(deployments.plural, "deployments");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Namespaced);
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "31")
    );

    // Every object, typed, as the cluster had it.
    let expected = held(&served, "Deployment").await;
    let all: Api<Deployment> = Api::all(client.clone());
    let listed = all.list(&ListParams::default()).await.expect("a list");
    let names: BTreeSet<(String, String)> = listed
        .items
        .iter()
        .map(|d| {
            (
                d.metadata.namespace.clone().unwrap_or_default(),
                d.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(names, expected);
    let (namespace, name) = expected.iter().next().expect("a deployment").clone();
    let in_namespace: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let one = in_namespace.get(&name).await.expect("a get");
    assert_eq!(one.metadata.name.as_deref(), Some(name.as_str()));
    assert!(one.metadata.resource_version.is_some());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        !namespaces
            .list(&ListParams::default())
            .await
            .expect("namespaces")
            .items
            .is_empty()
    );

    // Selectors, as the API server applies them.
    let by_name = all
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .expect("a field selector");
    assert!(
        by_name
            .items
            .iter()
            .all(|d| d.metadata.name.as_deref() == Some(&name))
    );
    assert!(!by_name.items.is_empty());
    let label = one
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.iter().next())
        .map(|(k, v)| format!("{k}={v}"))
        .expect("a labelled deployment");
    let by_label = all
        .list(&ListParams::default().labels(&label))
        .await
        .expect("a label selector");
    assert!(!by_label.items.is_empty() && by_label.items.len() <= expected.len());
    let refused = all
        .list(&ListParams::default().fields("spec.replicas=1"))
        .await
        .unwrap_err();
    assert_eq!(status_code(refused).0, 400);

    // Pages of two, followed to the end, hold every pod once.
    let pods: Api<Pod> = Api::all(client.clone());
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = pods.list(&params).await.expect("a page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|p| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no pod twice");
    assert_eq!(unique, held(&served, "Pod").await);

    // Events are served whether or not the agent ships them (this one does not: empty).
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), &namespace);
    let involved = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("events");
    assert!(involved.items.is_empty());

    // What the gateway refuses, and how.
    let (code, message) = status_code(in_namespace.get("no-such-deployment").await.unwrap_err());
    assert_eq!(code, 404, "{message}");
    let (code, message) = status_code(
        in_namespace
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        code == 403 && message.contains("read-only"),
        "{code} {message}"
    );
    assert!(in_namespace.get(&name).await.is_ok(), "still there");
    let pod_name = seen.first().expect("a pod").clone();
    let pods_there: Api<Pod> = Api::namespaced(client.clone(), &pod_name.0);
    let (code, message) = status_code(
        pods_there
            .logs(&pod_name.1, &Default::default())
            .await
            .unwrap_err(),
    );
    assert!(
        code == 405 && message.contains("bucket"),
        "{code} {message}"
    );
    let wrong = Api::<Deployment>::all(self::client(
        served.address,
        "eu-1",
        "not-a-token-of-this-gateway-at-all",
    ));
    assert_eq!(
        status_code(wrong.list(&ListParams::default()).await.unwrap_err()).0,
        401
    );
    let other = Api::<Deployment>::all(self::client(served.address, "eu-1", OTHER_TOKEN));
    assert_eq!(
        status_code(other.list(&ListParams::default()).await.unwrap_err()).0,
        403
    );
    let unknown = Api::<Deployment>::all(self::client(served.address, "nobody", TOKEN));
    assert_eq!(
        status_code(unknown.list(&ListParams::default()).await.unwrap_err()).0,
        404
    );

    // How old the answer is, in a header of every answer.
    let response = client
        .send(
            axum::http::Request::get("/apis/apps/v1/deployments")
                .body(kube::client::Body::from(Vec::new()))
                .expect("a request"),
        )
        .await
        .expect("an answer");
    let age: i64 = response
        .headers()
        .get(outpost::gateway::DATA_AGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("the data age header");
    assert!(age >= 0);
    served.serving.abort();
    db.drop_database().await;
}

on_each_database!(kube_rs_reads_through_the_gateway: sqlite, postgres, mariadb);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_through_the_gateway() {
    let binaries = common::kubectls();
    if binaries.is_empty() {
        assert!(
            std::env::var_os("OUTPOST_TEST_REQUIRE_SERVERS").is_none()
                || std::env::var_os("OUTPOST_TEST_KUBECTL").is_none(),
            "OUTPOST_TEST_KUBECTL names no kubectl"
        );
        eprintln!("no kubectl on this machine: skipped");
        return;
    }
    // kubectl sends a token only to an HTTPS server: a self-signed certificate for 127.0.0.1.
    let dir = tempfile::tempdir().expect("a folder");
    let (cert, key) = common::certificate(dir.path());
    let tls = outpost::gateway::tls_config(&cert, &key).expect("a TLS configuration");
    let db = outpost::test_support::db::sqlite_database();
    let served = serve(&db.url, Listener::Tls(tls)).await;
    let kubeconfig = |name: &str, token: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: gw\n  cluster: {{server: \"https://{}/clusters/eu-1\", certificate-authority: \"{}\"}}\nusers:\n- name: gw\n  user: {{token: {token}}}\ncontexts:\n- name: gw\n  context: {{cluster: gw, user: gw}}\ncurrent-context: gw\n",
                served.address,
                cert.display()
            ),
        )
        .expect("a kubeconfig");
        path
    };
    let good = kubeconfig("good", TOKEN);
    let bad = kubeconfig("bad", "not-a-token-of-this-gateway-at-all");
    let deployments = held(&served, "Deployment").await;
    let (namespace, name) = deployments.iter().next().expect("a deployment").clone();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("a token file");
    let template = outpost::cache::definition::AccountTemplate {
        gateway: Some(outpost::cache::definition::Gateway {
            url: format!("https://{}", served.address),
            ca_file: cert.display().to_string(),
            token_file: token_file.display().to_string(),
        }),
        ..Default::default()
    };
    let definition = template
        .definition("eu-1", std::slice::from_ref(&namespace))
        .expect("a definition");
    let registered = dir.path().join("registered");
    std::fs::write(
        &registered,
        definition["kubeconfigContents"]
            .as_str()
            .expect("a kubeconfig"),
    )
    .expect("the account's kubeconfig");
    for binary in &binaries {
        let run = |config: &Path, args: &[&str]| common::kubectl(binary, config, args);
        let context = binary.display().to_string();
        let (ok, out, err) = run(&good, &["get", "deployments", "-A"]);
        assert!(ok, "{context}: {err}");
        assert!(
            out.starts_with("NAMESPACE") && out.contains(&name),
            "{context}: {out}"
        );
        assert_eq!(
            out.lines().count(),
            deployments.len() + 1,
            "{context}: {out}"
        );
        let (ok, out, err) = run(
            &good,
            &["get", "deploy", &name, "-n", &namespace, "-o", "json"],
        );
        assert!(ok, "{context}: {err}");
        let object: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(object["metadata"]["name"], name.as_str());
        let (ok, out, err) = run(
            &good,
            &["get", "deployments", "-n", &namespace, "-o", "yaml"],
        );
        assert!(ok && out.contains("kind: List"), "{context}: {out}{err}");
        let (ok, out, err) = run(
            &good,
            &[
                "get",
                "deployments",
                "-A",
                "--field-selector",
                &format!("metadata.name={name}"),
            ],
        );
        assert!(ok && out.contains(&name), "{context}: {out}{err}");
        let (ok, out, err) = run(&good, &["api-resources"]);
        assert!(
            ok && out.contains("deployments") && out.contains("deploy"),
            "{context}: {out}{err}"
        );
        let (ok, out, err) = run(
            &good,
            &[
                "get",
                "events",
                "-n",
                &namespace,
                "--field-selector",
                &format!("involvedObject.name={name}"),
            ],
        );
        assert!(ok, "{context}: {out}{err}");
        let (ok, out, err) = run(&good, &["api-versions"]);
        assert!(ok && out.contains("apps/v1"), "{context}: {out}{err}");
        let (ok, _, err) = run(&good, &["delete", "deployment", &name, "-n", &namespace]);
        assert!(!ok && err.contains("read-only"), "{context}: {err}");
        let (ok, _, err) = run(&bad, &["get", "deployments", "-A"]);
        assert!(
            !ok && err.to_lowercase().contains("unauthorized"),
            "{context}: {err}"
        );
        // The kubeconfig a registered account carries, with the template's gateway: what
        // Clouddriver's kubectl would run with.
        let (ok, out, err) = run(
            &registered,
            &["get", "deployments", "-n", &namespace, "-o", "name"],
        );
        assert!(
            ok && out.contains(&format!("deployment.apps/{name}")),
            "{context}: {out}{err}"
        );
    }
    served.serving.abort();
}
