//! Services, Ingresses and NetworkPolicies, and load-balancer addresses arriving after a Service is created.

use serde_json::{Map, Value, json};

use crate::sim::factory::ObjectFactory;
use crate::sim::json::{Fields, set};
use crate::sim::kinds::apps::App;
use crate::sim::managed::{Flavor, fields_of, managed_entry, remove_status_managed};
use crate::sim::strings::{ipv4, truncate};
use crate::sim::vocabulary::{DOMAINS, ENVIRONMENTS, ROLES, TEAMS};

/// For a new Service of type LoadBalancer or a new Ingress: takes out the load-balancer status (and its
/// managed-fields entry) that its controller writes a little later; returns (status, manager).
pub(in crate::sim) fn defer_load_balancer(obj: &mut Value) -> Option<(Value, String)> {
    let status = obj.get("status")?;
    status.pointer("/loadBalancer/ingress")?;
    let status = status.clone();
    let manager = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| e.opt_str_at("/subresource") == Some("status"))
        .map(|e| e.str_at("/manager").to_string())?;
    set(obj, "", "status", json!({"loadBalancer": {}}));
    remove_status_managed(obj);
    Some((status, manager))
}

impl ObjectFactory {
    pub(in crate::sim) fn service(&mut self, app: &App) -> Value {
        self.reserve("Service", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Service", &app.name);
        let load_balancer = self.chance(0.1);
        if load_balancer {
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-type".into(),
                json!("nlb"),
            );
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-scheme".into(),
                json!(self.pick(&["internal", "internet-facing"])),
            );
        }
        let created = app.created + self.range(0, 30) as i64;
        let meta = self.metadata(Some(&app.ns), &app.name, created, labels, annotations);
        let ip = self.cluster_ip();
        let mut ports = vec![
            json!({"name": "http", "port": self.pick(&[80, 80, 8080, app.port]), "protocol": "TCP", "targetPort": if self.chance(0.5) { json!("http") } else { json!(app.port) }}),
        ];
        if self.chance(0.2) {
            ports.push(json!({"name": "grpc", "port": 9000 + self.range(0, 99), "protocol": "TCP", "targetPort": app.port}));
        }
        let mut spec = json!({
            "clusterIP": ip,
            "clusterIPs": [ip],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": ports,
            "selector": Value::Object(app.selector.clone()),
            "sessionAffinity": "None",
            "type": "ClusterIP",
        });
        let mut status = json!({"loadBalancer": {}});
        if load_balancer {
            spec["type"] = json!("LoadBalancer");
            spec["allocateLoadBalancerNodePorts"] = json!(true);
            spec["externalTrafficPolicy"] = json!("Cluster");
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                p["nodePort"] = json!(self.range(30000, 32767));
            }
            let host = format!(
                "k8s-{}-{}-{}.elb.{}.amazonaws.com",
                truncate(&app.ns, 9),
                truncate(&app.name, 9),
                self.hex(10),
                self.region
            );
            status = json!({"loadBalancer": {"ingress": [{"hostname": host}]}});
        }
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status});
        self.applied(&mut svc, app.flavor, created);
        if load_balancer {
            Self::status_managed(&mut svc, "aws-load-balancer-controller", created + 60);
        }
        svc
    }

    pub(in crate::sim) fn ingress(&mut self, app: &App) -> Vec<Value> {
        self.reserve("Ingress", &app.ns, &app.name);
        let (labels, mut annotations) = self.app_metadata(app, "Ingress", &app.name);
        let alb = self.chance(0.6);
        let certificate = self.uid();
        let host = format!("{}.{}", app.name, self.domain);
        let mut out = Vec::new();
        let mut spec = json!({
            "ingressClassName": if alb { "alb" } else { "nginx" },
            "rules": [{"host": host, "http": {"paths": [{
                "backend": {"service": {"name": app.name, "port": {"number": 80}}},
                "path": "/",
                "pathType": "Prefix",
            }]}}],
        });
        if self.chance(0.4) {
            let paths = spec["rules"][0]["http"]["paths"].as_array_mut();
            if let Some(paths) = paths {
                paths.push(json!({
                    "backend": {"service": {"name": app.name, "port": {"name": "http"}}},
                    "path": format!("/api/v{}", self.range(1, 3)),
                    "pathType": "ImplementationSpecific",
                }));
            }
        }
        let lb_host;
        if alb {
            for (k, v) in [
                (
                    "alb.ingress.kubernetes.io/scheme",
                    self.pick(&["internet-facing", "internal"]).to_string(),
                ),
                ("alb.ingress.kubernetes.io/target-type", "ip".to_string()),
                (
                    "alb.ingress.kubernetes.io/listen-ports",
                    "[{\"HTTPS\":443}]".to_string(),
                ),
                (
                    "alb.ingress.kubernetes.io/group.name",
                    format!("{}-{}", self.pick(TEAMS), self.pick(ENVIRONMENTS)),
                ),
                (
                    "alb.ingress.kubernetes.io/certificate-arn",
                    format!(
                        "arn:aws:acm:{}:{}:certificate/{certificate}",
                        self.region, self.account
                    ),
                ),
                (
                    "alb.ingress.kubernetes.io/healthcheck-path",
                    self.pick(&["/healthz", "/health", "/actuator/health"])
                        .to_string(),
                ),
            ] {
                annotations.insert(k.into(), Value::String(v));
            }
            lb_host = format!(
                "internal-k8s-{}-{}-{}.{}.elb.amazonaws.com",
                truncate(&app.ns, 8),
                self.hex(10),
                self.digits(10),
                self.region
            );
        } else {
            let secret = format!("{}-tls", app.name);
            spec["tls"] = json!([{"hosts": [host], "secretName": secret}]);
            annotations.insert(
                "cert-manager.io/cluster-issuer".into(),
                json!("letsencrypt-prod"),
            );
            annotations.insert(
                "nginx.ingress.kubernetes.io/proxy-body-size".into(),
                Value::String(format!("{}m", self.range(1, 64))),
            );
            let created = app.created + self.range(60, 3_600) as i64;
            out.push(self.tls_secret(&app.ns, &secret, created, Flavor::System));
            lb_host = format!(
                "a{}-{}.{}.elb.amazonaws.com",
                self.hex(32),
                self.digits(10),
                self.region
            );
        }
        let created = app.created + self.range(0, 600) as i64;
        let meta = self.metadata(Some(&app.ns), &app.name, created, labels, annotations);
        let mut ingress = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"hostname": lb_host}]}},
        });
        if alb {
            ingress["metadata"]["finalizers"] = json!(["group.ingress.k8s.aws/resources"]);
        }
        self.applied(&mut ingress, app.flavor, created);
        if alb {
            let fields = json!({"metadata": {"finalizers": ["group.ingress.k8s.aws/resources"]}});
            Self::push_managed(
                &mut ingress,
                managed_entry(
                    "controller",
                    "Update",
                    "networking.k8s.io/v1",
                    created + 5,
                    fields_of(&fields),
                    None,
                ),
            );
            Self::status_managed(&mut ingress, "controller", created + 90);
        } else {
            Self::status_managed(&mut ingress, "nginx-ingress-controller", created + 30);
        }
        out.insert(0, ingress);
        out
    }

    pub(in crate::sim) fn network_policy(&mut self, app: &App) -> Value {
        self.reserve("NetworkPolicy", &app.ns, &app.name);
        let (labels, annotations) = self.app_metadata(app, "NetworkPolicy", &app.name);
        let meta = self.metadata(Some(&app.ns), &app.name, app.created, labels, annotations);
        let peer_ns = self.pick(&["ingress-nginx", "monitoring", "istio-system", "kube-system"]);
        let mut np = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {
                "ingress": [{
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": peer_ns}}},
                        {"podSelector": {"matchLabels": {"app": format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES))}}},
                    ],
                    "ports": [{"port": app.port, "protocol": "TCP"}],
                }],
                "podSelector": {"matchLabels": Value::Object(app.selector.clone())},
                "policyTypes": ["Ingress"],
            },
        });
        self.applied(&mut np, app.flavor, app.created);
        np
    }

    pub(in crate::sim) fn default_deny(&mut self, ns: &str, created: i64) -> Value {
        self.reserve("NetworkPolicy", ns, "default-deny");
        let meta = self.metadata(Some(ns), "default-deny", created, Map::new(), Map::new());
        let mut np = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta,
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        });
        self.applied(&mut np, Flavor::Kubectl, created);
        np
    }

    pub(in crate::sim) fn system_service(
        &mut self,
        app: &App,
        name: &str,
        ip: Option<u32>,
        ports: &[(&str, u64, &str)],
    ) -> Value {
        self.reserve("Service", &app.ns, name);
        let meta = self.metadata(
            Some(&app.ns),
            name,
            app.created,
            app.labels.clone(),
            Map::new(),
        );
        let ip = match ip {
            Some(ip) => {
                self.ips.insert(ip);
                ipv4(ip)
            }
            None => self.cluster_ip(),
        };
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto, "targetPort": p}))
            .collect();
        let mut svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "clusterIP": ip,
                "clusterIPs": [ip],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": ports,
                "selector": Value::Object(app.selector.clone()),
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        });
        self.applied(&mut svc, Flavor::System, app.created);
        svc
    }
}
