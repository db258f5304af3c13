//! Pod templates: the containers, command lines, environment, probes and resources of an app's or a system component's pods.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::sim::factory::ObjectFactory;
use crate::sim::json::ts;
use crate::sim::kinds::apps::{App, Runtime};
use crate::sim::kinds::system::Component;
use crate::sim::managed::Flavor;
use crate::sim::strings::spinnaker_application;
use crate::sim::vocabulary::{
    CRON_TASKS, DATASTORES, DOMAINS, ENV_NAMES, ENVIRONMENTS, GO_FLAGS, INIT_IMAGES, JVM_FLAGS,
    LOG_LEVELS, ORGS, ROLES, SECRET_KEYS, SIDECARS,
};

impl ObjectFactory {
    /// The pod template of an app's workload, defaulted as the API server stores it.
    pub(in crate::sim) fn pod_template(&mut self, app: &App) -> Value {
        let mut labels = app.selector.clone();
        for (k, v) in &app.template_labels {
            labels.insert(k.clone(), v.clone());
        }
        let mut annotations = Map::new();
        if app.component.is_none() {
            if !app.lean && self.chance(0.6) {
                annotations.insert("prometheus.io/scrape".into(), json!("true"));
                annotations.insert(
                    "prometheus.io/port".into(),
                    Value::String(app.port.to_string()),
                );
                annotations.insert(
                    "prometheus.io/path".into(),
                    json!(self.pick(&["/metrics", "/actuator/prometheus", "/prometheus"])),
                );
            }
            if app.flavor == Flavor::Helm {
                annotations.insert("checksum/config".into(), Value::String(self.hex(64)));
                if self.chance(0.5) {
                    annotations.insert("checksum/secret".into(), Value::String(self.hex(64)));
                }
            }
            if app.flavor.spinnaker() {
                annotations.insert(
                    "moniker.spinnaker.io/application".into(),
                    Value::String(spinnaker_application(&app.name).to_string()),
                );
                annotations.insert(
                    "moniker.spinnaker.io/cluster".into(),
                    Value::String(format!("deployment {}", app.name)),
                );
            }
            if self.chance(0.15) {
                let t = self.between(app.created, self.now);
                annotations.insert(
                    "kubectl.kubernetes.io/restartedAt".into(),
                    Value::String(ts(t).replace('Z', "+00:00")),
                );
            }
        }
        let spec = self.pod_spec(app);
        let mut metadata = json!({"creationTimestamp": null, "labels": labels});
        if !annotations.is_empty() {
            metadata["annotations"] = Value::Object(annotations);
        }
        json!({"metadata": metadata, "spec": spec})
    }

    pub(in crate::sim) fn pod_spec(&mut self, app: &App) -> Value {
        let mut containers = vec![self.main_container(app)];
        let mut volumes = Vec::new();
        if let Some(cm) = &app.config_map {
            volumes.push(json!({"configMap": {"defaultMode": 420, "name": cm}, "name": "config"}));
        }
        let read_only_root = containers[0].pointer("/securityContext/readOnlyRootFilesystem")
            == Some(&Value::Bool(true));
        if app.component.is_none() && read_only_root {
            volumes.push(json!({"emptyDir": {}, "name": "tmp"}));
        }
        if !app.lean && self.chance(0.15) {
            let (name, image, args, port) = self.pick(SIDECARS);
            let mut sidecar = json!({
                "args": args,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "name": name,
                "ports": [{"containerPort": port, "name": "admin", "protocol": "TCP"}],
                "resources": self.resources(0.6),
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            });
            if self.chance(0.5) {
                sidecar["volumeMounts"] = json!([{"mountPath": format!("/etc/{name}"), "name": format!("{name}-config")}]);
                volumes.push(json!({"configMap": {"defaultMode": 420, "name": format!("{}-{name}", app.name)}, "name": format!("{name}-config")}));
            }
            containers.push(sidecar);
        }
        let sa = app
            .service_account
            .clone()
            .or_else(|| app.component.map(|c| c.name.to_string()));
        let mut spec = json!({
            "containers": containers,
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": self.pick(&[30, 30, 30, 60, 45, 120]),
        });
        if let Some(sa) = sa {
            spec["serviceAccount"] = Value::String(sa.clone());
            spec["serviceAccountName"] = Value::String(sa);
        }
        if let Some(component) = app.component {
            spec["priorityClassName"] = json!("system-cluster-critical");
            if component.host_network {
                spec["hostNetwork"] = json!(true);
            }
            spec["tolerations"] = json!([{"key": "CriticalAddonsOnly", "operator": "Exists"}]);
            spec["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        } else if !app.lean {
            if self.chance(0.5) {
                spec["securityContext"] = json!({"fsGroup": 10001, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
            }
            if self.chance(0.15) {
                let selector = Value::Object(app.selector.clone());
                spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "podAffinityTerm": {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"},
                    "weight": 100,
                }]}});
            }
            if self.chance(0.1) {
                spec["topologySpreadConstraints"] = json!([{
                    "labelSelector": {"matchLabels": Value::Object(app.selector.clone())},
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                }]);
            }
            if self.chance(0.2) {
                spec["nodeSelector"] = json!({"karpenter.sh/capacity-type": self.pick(&["on-demand", "spot"]), "kubernetes.io/arch": "amd64"});
            }
            if self.chance(0.2) {
                spec["imagePullSecrets"] = json!([{"name": "regcred"}]);
            }
            if self.chance(0.05) {
                let image = format!("{}:{}", app.image_repo, app.version);
                spec["initContainers"] = json!([{
                    "command": ["/app/migrate", "up", format!("--timeout={}s", self.range(30, 600))],
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "name": "migrate",
                    "resources": self.resources(0.5),
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }]);
            } else if self.chance(0.03) {
                let target = format!("{}-{}", self.pick(DATASTORES).0, self.pick(ROLES));
                spec["initContainers"] = json!([{
                    "command": ["sh", "-c", format!("until nc -z {target} {}; do echo waiting; sleep 2; done", self.range(1000, 9999))],
                    "image": self.pick(INIT_IMAGES),
                    "imagePullPolicy": "IfNotPresent",
                    "name": "wait-for-deps",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }]);
            }
        }
        if !volumes.is_empty() {
            spec["volumes"] = Value::Array(volumes);
        }
        spec
    }

    pub(in crate::sim) fn resources(&mut self, p_limits: f64) -> Value {
        let cpu = self.pick(&["50m", "100m", "200m", "250m", "500m", "750m", "1", "2"]);
        let memory = self.pick(&[
            "64Mi", "128Mi", "256Mi", "384Mi", "512Mi", "768Mi", "1Gi", "2Gi", "3Gi", "4Gi",
        ]);
        let mut r = json!({"requests": {"cpu": cpu, "memory": memory}});
        if self.chance(p_limits) {
            r["limits"] = if self.chance(0.4) {
                json!({"cpu": cpu, "memory": memory})
            } else {
                // A limit below the request is refused by the API server: only those above it.
                let mebibytes = |q: &str| match q.strip_suffix("Gi") {
                    Some(g) => g.parse::<u32>().unwrap_or(0) * 1024,
                    None => q.trim_end_matches("Mi").parse::<u32>().unwrap_or(0),
                };
                let at_least: Vec<&str> = ["256Mi", "512Mi", "1Gi", "1536Mi", "2Gi", "4Gi", "6Gi"]
                    .into_iter()
                    .filter(|limit| mebibytes(limit) >= mebibytes(memory))
                    .collect();
                json!({"memory": self.pick(&at_least)})
            };
        }
        r
    }

    pub(in crate::sim) fn probe(&mut self, path: &str, port: Value, initial: u64) -> Value {
        let mut p = json!({
            "failureThreshold": self.pick(&[3, 3, 3, 5, 6, 10]),
            "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
            "periodSeconds": self.pick(&[10, 10, 5, 15, 20, 30]),
            "successThreshold": 1,
            "timeoutSeconds": self.pick(&[1, 1, 2, 3, 5]),
        });
        if initial > 0 {
            p["initialDelaySeconds"] = json!(initial);
        }
        p
    }

    pub(in crate::sim) fn main_container(&mut self, app: &App) -> Value {
        if let Some(component) = app.component {
            return self.component_container(component);
        }
        let tag = app.version.clone();
        let image = self.image(&app.image_repo, &tag);
        let mut c = Map::new();
        let (command, args) = self.command_line(app);
        if !args.is_empty() {
            c.insert("args".into(), json!(args));
        }
        if !command.is_empty() {
            c.insert("command".into(), json!(command));
        }
        c.insert("env".into(), Value::Array(self.env(app)));
        if let Some(cm) = &app.config_map
            && self.chance(0.4)
        {
            c.insert("envFrom".into(), json!([{"configMapRef": {"name": cm}}]));
        }
        let pull = if tag.starts_with("main-") || self.chance(0.15) {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("image".into(), Value::String(image));
        c.insert("imagePullPolicy".into(), json!(pull));
        let health = match app.runtime {
            Runtime::Jvm => ("/actuator/health/liveness", "/actuator/health/readiness"),
            Runtime::Go => ("/healthz", "/readyz"),
            Runtime::Node => ("/health", "/ready"),
            Runtime::Python => ("/health/live", "/health/ready"),
        };
        let port_ref = if self.chance(0.5) {
            json!("http")
        } else {
            json!(app.port)
        };
        let initial = if app.runtime == Runtime::Jvm {
            self.range(20, 90)
        } else {
            self.range(0, 15)
        };
        if !app.lean {
            c.insert(
                "livenessProbe".into(),
                self.probe(health.0, port_ref.clone(), initial),
            );
        }
        c.insert(
            "name".into(),
            Value::String(if self.chance(0.6) {
                app.name.clone()
            } else {
                self.pick(&["app", "server", "main"]).to_string()
            }),
        );
        let mut ports = vec![json!({"containerPort": app.port, "name": "http", "protocol": "TCP"})];
        if !app.lean && self.chance(0.3) {
            ports.push(json!({"containerPort": self.pick(&[9090, 9091, 8081, 9100]), "name": "metrics", "protocol": "TCP"}));
        }
        if self.chance(0.2) {
            ports.push(json!({"containerPort": self.pick(&[50051, 9000, 6565]), "name": "grpc", "protocol": "TCP"}));
        }
        let mut seen = BTreeSet::new();
        ports.retain(|p| seen.insert(p["containerPort"].as_u64()));
        c.insert("ports".into(), Value::Array(ports));
        if !app.lean || self.chance(0.5) {
            c.insert(
                "readinessProbe".into(),
                self.probe(health.1, port_ref.clone(), initial / 2),
            );
        }
        c.insert("resources".into(), self.resources(0.7));
        if !app.lean && self.chance(0.5) {
            c.insert(
                "securityContext".into(),
                json!({
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "runAsUser": self.pick(&[1000, 10001, 65532, 1001]),
                }),
            );
        }
        if app.runtime == Runtime::Jvm && !app.lean && self.chance(0.3) {
            let mut startup = self.probe(health.0, port_ref, 0);
            startup["failureThreshold"] = json!(self.range(12, 60));
            c.insert("startupProbe".into(), startup);
        }
        c.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        c.insert("terminationMessagePolicy".into(), json!("File"));
        let mut mounts = Vec::new();
        if c.contains_key("securityContext") {
            mounts.push(json!({"mountPath": "/tmp", "name": "tmp"}));
        }
        if app.config_map.is_some() {
            mounts.push(json!({"mountPath": format!("/etc/{}", app.name), "name": "config", "readOnly": true}));
        }
        if !mounts.is_empty() {
            c.insert("volumeMounts".into(), Value::Array(mounts));
        }
        Value::Object(c)
    }

    pub(in crate::sim) fn component_container(&mut self, component: &Component) -> Value {
        let fill = |s: &str, f: &Self| {
            s.replace("{region}", f.region)
                .replace("{cluster}", &f.cluster_name)
        };
        let mut c = Map::new();
        if !component.args.is_empty() {
            c.insert(
                "args".into(),
                json!(
                    component
                        .args
                        .iter()
                        .map(|a| fill(a, self))
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !component.command.is_empty() {
            c.insert(
                "command".into(),
                json!(
                    component
                        .command
                        .iter()
                        .map(|a| fill(a, self))
                        .collect::<Vec<_>>()
                ),
            );
        }
        let mut env = vec![
            json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}),
        ];
        if component.name.contains("ebs-csi") {
            env.push(json!({"name": "CSI_ENDPOINT", "value": "unix:///var/lib/csi/sockets/pluginproxy/csi.sock"}));
        }
        if component.name == "aws-node" {
            for (k, v) in [
                ("ADDITIONAL_ENI_TAGS", "{}"),
                ("AWS_VPC_CNI_NODE_PORT_SUPPORT", "true"),
                ("AWS_VPC_ENI_MTU", "9001"),
                ("WARM_ENI_TARGET", "1"),
                ("ENABLE_PREFIX_DELEGATION", "false"),
            ] {
                env.push(json!({"name": k, "value": v}));
            }
            env.push(json!({"name": "CLUSTER_NAME", "value": self.cluster_name.clone()}));
        }
        c.insert("env".into(), Value::Array(env));
        c.insert("image".into(), Value::String(fill(component.image, self)));
        c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
        if let Some((path, port)) = component.probe {
            c.insert("livenessProbe".into(), self.probe(path, json!(port), 10));
        }
        c.insert("name".into(), Value::String(component.name.to_string()));
        if !component.ports.is_empty() {
            let ports: Vec<Value> = component
                .ports
                .iter()
                .map(|(n, p, proto)| json!({"containerPort": p, "name": n, "protocol": proto}))
                .collect();
            c.insert("ports".into(), Value::Array(ports));
        }
        c.insert("resources".into(), self.resources(0.5));
        c.insert(
            "securityContext".into(),
            json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}),
        );
        c.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        c.insert("terminationMessagePolicy".into(), json!("File"));
        Value::Object(c)
    }

    /// Fills the placeholders of a flag or JVM option with values from the app's context.
    pub(in crate::sim) fn fill_flag(&mut self, flag: &str, app: &App) -> String {
        let mut out = flag.to_string();
        let subs: [(&str, String); 13] = [
            ("{pct}", self.range(50, 85).to_string()),
            ("{pct2}", self.range(20, 50).to_string()),
            ("{ms}", self.range(50, 2000).to_string()),
            ("{kb}", self.pick(&["256", "512", "1024"]).to_string()),
            ("{n}", self.range(2, 5000).to_string()),
            ("{cpu}", self.range(1, 16).to_string()),
            ("{port}", self.range(1024, 65000).to_string()),
            ("{level}", self.pick(LOG_LEVELS).to_string()),
            ("{version}", app.version.clone()),
            ("{bytes}", (1u64 << self.range(20, 27)).to_string()),
            (
                "{peer}",
                format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES)),
            ),
            ("{ns}", app.ns.clone()),
            ("{region}", self.region.to_string()),
        ];
        for (k, v) in subs {
            out = out.replace(k, &v);
        }
        out.replace("{app}", &app.name)
    }

    pub(in crate::sim) fn command_line(&mut self, app: &App) -> (Vec<String>, Vec<String>) {
        match app.runtime {
            Runtime::Jvm => {
                if self.chance(0.5) {
                    return (Vec::new(), Vec::new()); // configured through JAVA_TOOL_OPTIONS
                }
                let mut command = vec!["java".to_string()];
                for _ in 0..self.range(1, 4) {
                    let flag = self.pick(JVM_FLAGS);
                    command.push(self.fill_flag(flag, app));
                }
                command.push("-jar".into());
                command.push(format!("/app/{}.jar", app.name));
                (command, Vec::new())
            }
            Runtime::Go => {
                let mut args = vec![format!("--port={}", app.port)];
                for _ in 0..self.range(1, 4) {
                    let flag = self.pick(GO_FLAGS);
                    args.push(self.fill_flag(flag, app));
                }
                let command = if self.chance(0.5) {
                    vec![format!("/usr/local/bin/{}", app.name)]
                } else {
                    Vec::new()
                };
                (command, args)
            }
            Runtime::Node => {
                let entry = self.pick(&[
                    "dist/index.js",
                    "dist/main.js",
                    "server.js",
                    "build/server/index.js",
                ]);
                (
                    vec![
                        "node".into(),
                        format!("--max-old-space-size={}", self.range(256, 4096)),
                        entry.into(),
                    ],
                    Vec::new(),
                )
            }
            Runtime::Python => {
                let workers = self.range(2, 9).to_string();
                let module =
                    self.pick(&["app:app", "main:app", "wsgi:application", "server.asgi:app"]);
                let args = vec![
                    module.to_string(),
                    "--bind".into(),
                    format!("0.0.0.0:{}", app.port),
                    "--workers".into(),
                    workers,
                    "--timeout".into(),
                    self.range(30, 120).to_string(),
                ];
                (vec!["gunicorn".into()], args)
            }
        }
    }

    pub(in crate::sim) fn env(&mut self, app: &App) -> Vec<Value> {
        let mut env = Vec::new();
        let mut names = BTreeSet::new();
        if app.runtime == Runtime::Jvm {
            let mut opts = Vec::new();
            for _ in 0..self.range(2, 4) {
                let flag = self.pick(JVM_FLAGS);
                opts.push(self.fill_flag(flag, app));
            }
            env.push(json!({"name": "JAVA_TOOL_OPTIONS", "value": opts.join(" ")}));
            env.push(json!({"name": "SPRING_PROFILES_ACTIVE", "value": self.pick(&["prod", "production,aws", "kubernetes", "prod,json-logs"])}));
        }
        let most = if app.lean { 2 } else { 5 };
        for _ in 0..self.range(0, most) {
            let name = self.pick(ENV_NAMES);
            if !names.insert(name) {
                continue;
            }
            let peer = format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES));
            let value = match name {
                "LOG_LEVEL" => self.pick(LOG_LEVELS).to_string(),
                "LOG_FORMAT" => self.pick(&["json", "logfmt", "text"]).to_string(),
                "DATABASE_URL" if app.secret.is_some() => {
                    let secret = app.secret.clone().unwrap_or_default();
                    env.push(json!({"name": name, "valueFrom": {"secretKeyRef": {"key": "database-url", "name": secret}}}));
                    continue;
                }
                "DATABASE_URL" => format!(
                    "jdbc:postgresql://{}.{}.{}.rds.amazonaws.com:5432/{}",
                    peer,
                    self.hex(12),
                    self.region,
                    app.name.replace('-', "_")
                ),
                "REDIS_URL" => format!(
                    "redis://redis-master.{}.svc.cluster.local:6379/{}",
                    app.ns,
                    self.range(0, 15)
                ),
                "KAFKA_BOOTSTRAP_SERVERS" => (0..3)
                    .map(|i| {
                        format!(
                            "b-{}.{}.{}.c{}.kafka.{}.amazonaws.com:9098",
                            i + 1,
                            app.ns,
                            self.hex(6),
                            self.range(2, 25),
                            self.region
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                "OTEL_EXPORTER_OTLP_ENDPOINT" => format!(
                    "http://otel-collector.{}.svc.cluster.local:4317",
                    self.pick(&["observability", "monitoring", "otel"])
                ),
                "OTEL_SERVICE_NAME" => app.name.clone(),
                "AWS_REGION" => self.region.to_string(),
                "SENTRY_DSN" => format!(
                    "https://{}@o{}.ingest.sentry.io/{}",
                    self.hex(32),
                    self.digits(6),
                    self.digits(7)
                ),
                "UPSTREAM_URL" => format!(
                    "http://{peer}.{}.svc.cluster.local:{}",
                    app.ns,
                    self.pick(&[80, 8080, 9090, 3000])
                ),
                "S3_BUCKET" => format!(
                    "{}-{}-{}",
                    self.pick(ORGS),
                    app.name,
                    self.pick(ENVIRONMENTS)
                ),
                "SQS_QUEUE_URL" => {
                    let task = self.pick(CRON_TASKS);
                    format!(
                        "https://sqs.{}.amazonaws.com/{}/{}-{task}",
                        self.region, self.account, app.name
                    )
                }
                "ENVIRONMENT" | "DD_ENV" => self.pick(ENVIRONMENTS).to_string(),
                "DD_VERSION" => app.version.clone(),
                "STATSD_HOST" => "$(HOST_IP)".to_string(),
                "TZ" => self
                    .pick(&["UTC", "Etc/UTC", "America/New_York", "Europe/Berlin"])
                    .to_string(),
                "FEATURE_NEW_CHECKOUT" => self
                    .pick(&["true", "false", "0", "1", "enabled"])
                    .to_string(),
                "ALLOWED_ORIGINS" => format!(
                    "https://{}.{},https://www.{}",
                    self.pick(DOMAINS),
                    self.domain,
                    self.domain
                ),
                "RETRY_BACKOFF" | "SESSION_TTL" => {
                    format!("{}{}", self.range(1, 600), self.pick(&["s", "ms", "m"]))
                }
                "TRACE_SAMPLE_RATE" => format!("0.{}", self.range(1, 99)),
                _ => self.range(1, 20_000).to_string(),
            };
            env.push(json!({"name": name, "value": value}));
        }
        if !app.lean && self.chance(0.4) {
            env.push(json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}));
            env.push(json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}));
        }
        if self.chance(0.3) {
            env.push(json!({"name": "HOST_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}}));
        }
        if app.runtime == Runtime::Go && self.chance(0.5) {
            env.push(json!({"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}}));
        }
        if let Some(secret) = &app.secret
            && self.chance(0.7)
        {
            let key = self.pick(SECRET_KEYS);
            env.push(json!({"name": key.to_uppercase().replace('-', "_"), "valueFrom": {"secretKeyRef": {"key": key, "name": secret}}}));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::sim::ObjectFactory;

    #[test]
    fn memory_limits_are_never_below_requests() {
        let mebibytes = |q: &str| match q.strip_suffix("Gi") {
            Some(g) => g.parse::<u32>().unwrap() * 1024,
            None => q.trim_end_matches("Mi").parse::<u32>().unwrap(),
        };
        let mut f = ObjectFactory::new(5);
        let mut checked = 0;
        for i in 0..200 {
            for object in f.app(&format!("app{i}")) {
                let containers = object
                    .pointer("/spec/template/spec/containers")
                    .or_else(|| object.pointer("/spec/containers"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for c in containers {
                    if let (Some(request), Some(limit)) = (
                        c.pointer("/resources/requests/memory")
                            .and_then(Value::as_str),
                        c.pointer("/resources/limits/memory")
                            .and_then(Value::as_str),
                    ) {
                        assert!(mebibytes(limit) >= mebibytes(request), "{c}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} containers with both");
    }
}
