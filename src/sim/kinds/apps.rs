//! Deployment-based apps: what an app is (names, labels, flavor, runtime), the objects it is made of, and apps created and deleted by churn.

use rand::RngExt;
use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::actions::Action;
use crate::sim::churn::store::{Key, POOL_APP_DEPLOYMENTS};
use crate::sim::factory::{DAY, HOUR, ObjectFactory};
use crate::sim::json::{Fields, set, terminating};
use crate::sim::kinds::deployments::REVISION;
use crate::sim::kinds::networking::defer_load_balancer;
use crate::sim::kinds::system::Component;
use crate::sim::managed::{Flavor, KCM, refresh_last_applied, retime_managed};
use crate::sim::strings::{lower_first, spinnaker_application};
use crate::sim::vocabulary::{DOMAINS, ENVIRONMENTS, ORGS, ROLES, TEAMS};

/// The language stack of an app, which shapes its command line, environment and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sim) enum Runtime {
    Jvm,
    Go,
    Node,
    Python,
}

/// Everything the builders of one app share.
pub(in crate::sim) struct App {
    pub(in crate::sim) ns: String,
    pub(in crate::sim) name: String,
    pub(in crate::sim) flavor: Flavor,
    pub(in crate::sim) runtime: Runtime,
    pub(in crate::sim) created: i64,
    /// Labels on every object of the app.
    pub(in crate::sim) labels: Map<String, Value>,
    /// The pods' selector, a subset of the template labels.
    pub(in crate::sim) selector: Map<String, Value>,
    /// Extra labels on the pod template.
    pub(in crate::sim) template_labels: Map<String, Value>,
    pub(in crate::sim) image_repo: String,
    pub(in crate::sim) version: String,
    pub(in crate::sim) port: u64,
    pub(in crate::sim) config_map: Option<String>,
    pub(in crate::sim) secret: Option<String>,
    pub(in crate::sim) service_account: Option<String>,
    pub(in crate::sim) component: Option<&'static Component>,
    /// A plain workload: few env vars, no liveness probe, sidecars or scheduling constraints.
    pub(in crate::sim) lean: bool,
}

impl ObjectFactory {
    /// One Deployment-based app in `namespace`: Deployment, its ReplicaSets, the current ReplicaSet's
    /// Pods, a Service and sometimes a ServiceAccount, ConfigMap, Secret, Ingress and NetworkPolicy.
    pub fn app(&mut self, namespace: &str) -> Vec<Value> {
        let floor = self.cluster_created;
        self.app_created(namespace, floor)
    }

    /// The labels and annotations `flavor` puts on an object of `kind` in `app`.
    pub(in crate::sim) fn app_metadata(
        &mut self,
        app: &App,
        kind: &str,
        name: &str,
    ) -> (Map<String, Value>, Map<String, Value>) {
        let labels = app.labels.clone();
        let mut annotations = Map::new();
        match app.flavor {
            Flavor::Spinnaker | Flavor::SpinnakerServerSide => {
                let artifact_kind = format!("kubernetes/{}", lower_first(kind));
                let cluster = format!("{} {name}", lower_first(kind));
                for (k, v) in [
                    ("artifact.spinnaker.io/location", app.ns.as_str()),
                    ("artifact.spinnaker.io/name", name),
                    ("artifact.spinnaker.io/type", artifact_kind.as_str()),
                    ("artifact.spinnaker.io/version", ""),
                    (
                        "moniker.spinnaker.io/application",
                        spinnaker_application(&app.name),
                    ),
                    ("moniker.spinnaker.io/cluster", cluster.as_str()),
                ] {
                    annotations.insert(k.into(), Value::String(v.to_string()));
                }
            }
            Flavor::Helm => {
                let release = Value::Object(app.labels.clone())
                    .str_at("/app.kubernetes.io~1instance")
                    .to_string();
                annotations.insert("meta.helm.sh/release-name".into(), Value::String(release));
                annotations.insert(
                    "meta.helm.sh/release-namespace".into(),
                    Value::String(app.ns.clone()),
                );
            }
            Flavor::Kubectl | Flavor::ServerSide | Flavor::System => {}
        }
        if kind == "Deployment" && self.chance(0.3) {
            annotations.insert(
                "kubernetes.io/change-cause".into(),
                Value::String(format!("deploy {} by {}", app.version, self.pick(TEAMS))),
            );
        }
        (labels, annotations)
    }

    pub(in crate::sim) fn new_app(&mut self, ns: &str, floor: i64) -> App {
        let mut name = String::new();
        for attempt in 0..50 {
            let candidate = if attempt < 40 {
                format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES))
            } else {
                format!(
                    "{}-{}-{}",
                    self.pick(DOMAINS),
                    self.pick(ROLES),
                    self.range(2, 999)
                )
            };
            if self.reserve("App", ns, &candidate) {
                name = candidate;
                break;
            }
        }
        let flavor = match self.range(0, 19) {
            0..=5 => Flavor::Spinnaker,
            6..=9 => Flavor::SpinnakerServerSide,
            10..=14 => Flavor::Helm,
            15..=17 => Flavor::Kubectl,
            _ => Flavor::ServerSide,
        };
        let runtime = self.pick(&[
            Runtime::Jvm,
            Runtime::Jvm,
            Runtime::Go,
            Runtime::Go,
            Runtime::Node,
            Runtime::Python,
        ]);
        let org = self.pick(ORGS);
        let team = self.pick(TEAMS);
        let version = self.version();
        let mut labels = Map::new();
        let mut selector = Map::new();
        let mut template_labels = Map::new();
        match flavor {
            Flavor::Helm => {
                let chart = format!(
                    "{name}-{}.{}.{}",
                    self.range(0, 5),
                    self.range(0, 30),
                    self.range(0, 20)
                );
                let release = if self.chance(0.5) {
                    name.clone()
                } else {
                    format!("{}-{}", name, self.pick(ENVIRONMENTS))
                };
                for (k, v) in [
                    ("app.kubernetes.io/instance", release.as_str()),
                    ("app.kubernetes.io/managed-by", "Helm"),
                    ("app.kubernetes.io/name", name.as_str()),
                    ("app.kubernetes.io/version", version.as_str()),
                    ("helm.sh/chart", chart.as_str()),
                ] {
                    labels.insert(k.into(), Value::String(v.to_string()));
                }
                selector.insert(
                    "app.kubernetes.io/instance".into(),
                    Value::String(release.clone()),
                );
                selector.insert("app.kubernetes.io/name".into(), Value::String(name.clone()));
            }
            Flavor::Spinnaker | Flavor::SpinnakerServerSide => {
                labels.insert("app.kubernetes.io/managed-by".into(), json!("spinnaker"));
                labels.insert(
                    "app.kubernetes.io/name".into(),
                    Value::String(spinnaker_application(&name).to_string()),
                );
                selector.insert("app".into(), Value::String(name.clone()));
                template_labels.insert("app.kubernetes.io/managed-by".into(), json!("spinnaker"));
                template_labels.insert(
                    "app.kubernetes.io/name".into(),
                    Value::String(spinnaker_application(&name).to_string()),
                );
            }
            _ => {
                labels.insert("app".into(), Value::String(name.clone()));
                selector.insert("app".into(), Value::String(name.clone()));
            }
        }
        if self.chance(0.5) {
            labels.insert("team".into(), Value::String(team.to_string()));
            template_labels.insert("team".into(), Value::String(team.to_string()));
        }
        if self.chance(0.3) {
            labels.insert(
                "app.kubernetes.io/part-of".into(),
                Value::String(self.pick(DOMAINS).to_string()),
            );
        }
        if self.chance(0.4) {
            template_labels.insert("version".into(), Value::String(version.clone()));
        }
        let image_repo = self.image_repo(org, &name);
        let port = self.pick(match runtime {
            Runtime::Jvm => &[8080, 8080, 8081, 9000][..],
            Runtime::Go => &[8080, 9090, 8000, 3000][..],
            Runtime::Node => &[3000, 3000, 8080, 4000][..],
            Runtime::Python => &[8000, 8000, 5000, 8080][..],
        });
        let created = self.between(floor.max(self.cluster_created) + HOUR, self.now - 2 * DAY);
        let lean = self.chance(0.65);
        App {
            ns: ns.to_string(),
            config_map: None,
            secret: None,
            service_account: None,
            name,
            flavor,
            runtime,
            created,
            labels,
            selector,
            template_labels,
            image_repo,
            version,
            port,
            component: None,
            lean,
        }
    }

    pub(in crate::sim) fn app_created(&mut self, ns: &str, floor: i64) -> Vec<Value> {
        self.ensure_nodes();
        let mut app = self.new_app(ns, floor);
        let mut extras = Vec::new();
        if self.chance(0.4) {
            let name = app.name.clone();
            extras.push(self.service_account(&app, &name));
            app.service_account = Some(name);
        }
        if self.chance(0.5) {
            let name = format!("{}-config", app.name);
            extras.push(self.config_map(&app, &name));
            app.config_map = Some(name);
        }
        if self.chance(0.5) {
            let name = format!("{}-secrets", app.name);
            let data = self.secret_data();
            let (labels, annotations) = self.app_metadata(&app, "Secret", &name);
            let created = app.created;
            extras.push(self.secret_object(
                ns,
                &name,
                "Opaque",
                data,
                created,
                app.flavor,
                labels,
                annotations,
            ));
            app.secret = Some(name);
        }
        let replicas = self.pick(&[1u64, 2, 2, 3, 3, 3, 4, 4, 5, 6]);
        let mut out = self.deployment_bundle(&app, replicas);
        out.push(self.service(&app));
        out.extend(extras);
        if self.chance(0.35) {
            out.extend(self.ingress(&app));
        }
        if self.chance(0.25) {
            out.push(self.network_policy(&app));
        }
        out
    }
}

impl Churn {
    pub(in crate::sim) fn app_created(&mut self) -> bool {
        if self.app_namespaces.is_empty() {
            return false;
        }
        let ns = self.app_namespaces[self.rng.random_range(0..self.app_namespaces.len())].clone();
        let bundle = self.factory.app(&ns);
        let now = self.ts();
        let mut deployment = None;
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut deferred = Vec::new();
        for mut obj in bundle {
            let kind = obj.str_at("/kind").to_string();
            if kind == "ReplicaSet" || kind == "Pod" {
                continue; // The controllers make these.
            }
            set(&mut obj, "/metadata", "creationTimestamp", json!(now));
            retime_managed(&mut obj, &now);
            match kind.as_str() {
                "Deployment" => deployment = Some(obj),
                "ServiceAccount" | "ConfigMap" | "Secret" | "Service" => {
                    if let Some(d) = defer_load_balancer(&mut obj) {
                        deferred.push((Key::of(&obj), d));
                    }
                    before.push(obj);
                }
                _ => {
                    if let Some(d) = defer_load_balancer(&mut obj) {
                        deferred.push((Key::of(&obj), d));
                    }
                    after.push(obj);
                }
            }
        }
        let Some(mut d) = deployment else {
            return false;
        };
        before.sort_by_key(|o| match o.str_at("/kind") {
            "ServiceAccount" => 0,
            "ConfigMap" => 1,
            "Secret" => 2,
            _ => 3,
        });
        for obj in before {
            self.create(obj);
        }
        // A fresh Deployment: revision 1 once the controller has seen it, status empty until then.
        set(&mut d, "/metadata/annotations", REVISION, json!("0"));
        set(&mut d, "/metadata", "generation", json!(0));
        let (mut d, rs) = self.factory.new_replica_set_revision(&d);
        if let Some(a) = d
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(REVISION);
        }
        set(&mut d, "/metadata", "creationTimestamp", json!(now));
        set(&mut d, "", "status", json!({}));
        if let Some(entries) = d
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            entries.retain(|e| e.str_at("/manager") != KCM);
        }
        refresh_last_applied(&mut d);
        retime_managed(&mut d, &now);
        let d_key = self.create(d);
        self.add_replica_set(&d_key, rs, &now);
        for obj in after {
            self.create(obj);
        }
        for (key, (status, manager)) in deferred {
            let Some(uid) = self
                .get(&key)
                .map(|o| o.str_at("/metadata/uid").to_string())
            else {
                continue;
            };
            let delay = self.rng.random_range(20..=120);
            self.schedule(
                delay as f64,
                Action::StatusArrives {
                    key,
                    uid,
                    status: Box::new(status),
                    manager,
                },
            );
        }
        true
    }

    pub(in crate::sim) fn app_deleted(&mut self) -> bool {
        let Some(key) = (0..8).find_map(|_| {
            let key = self.pools[POOL_APP_DEPLOYMENTS].pick(&mut self.rng)?;
            self.get(&key).filter(|d| !terminating(d)).map(|_| key)
        }) else {
            return false;
        };
        let Some(uid) = self
            .get(&key)
            .map(|d| d.str_at("/metadata/uid").to_string())
        else {
            return false;
        };
        let name = key.name.clone();
        let ns = key.ns.clone();
        // Foreground deletion: the Deployment and its ReplicaSets wait for their pods.
        self.begin_delete(&key, true);
        let mut grace = 0;
        for rs in self.dependents_of(&uid) {
            self.begin_delete(&rs, true);
            let rs_uid = self.get(&rs).map(|r| r.str_at("/metadata/uid").to_string());
            for pod in rs_uid.map(|u| self.dependents_of(&u)).unwrap_or_default() {
                grace = grace.max(self.terminate_pod(&pod));
            }
        }
        self.schedule(grace as f64 + 1.0, Action::FinishDelete { key, uid });
        for (kind, object) in [
            ("Service", name.clone()),
            ("Ingress", name.clone()),
            ("NetworkPolicy", name.clone()),
            ("ServiceAccount", name.clone()),
            ("ConfigMap", format!("{name}-config")),
            ("Secret", format!("{name}-secrets")),
            ("Secret", format!("{name}-tls")),
        ] {
            let key = Key::new(kind, &ns, &object);
            let Some(obj) = self.get(&key) else { continue };
            let finalizers = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if finalizers {
                // The ingress controller removes its finalizer once the load balancer is cleaned up.
                let uid = obj.str_at("/metadata/uid").to_string();
                self.begin_delete(&key, false);
                let delay = self.rng.random_range(5..=40);
                self.schedule(delay as f64, Action::FinishDelete { key, uid });
            } else {
                self.delete(&key);
            }
        }
        true
    }
}
