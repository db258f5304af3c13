//! ConfigMaps, Secrets and ServiceAccounts, and how churn edits configuration and rotates secrets.

use rand::RngExt;
use serde_json::{Map, Value, json};

use crate::sim::churn::Churn;
use crate::sim::churn::store::POOL_ROTATABLE;
use crate::sim::factory::{HOUR, ObjectFactory};
use crate::sim::json::{Fields, labels_of, set};
use crate::sim::kinds::apps::App;
use crate::sim::managed::{Flavor, refresh_last_applied, retime_applier};
use crate::sim::strings::{base64, base64url};
use crate::sim::vocabulary::{ALNUM, CONFIG_KEYS, DOMAINS, LOG_LEVELS, ROLES, SECRET_KEYS};

impl ObjectFactory {
    /// An Opaque Secret with a few random keys, as Helm or a controller would create it.
    pub fn secret(&mut self, namespace: &str, name: &str) -> Value {
        let created = self.between(self.cluster_created, self.now - HOUR);
        let data = self.secret_data();
        self.secret_object(
            namespace,
            name,
            "Opaque",
            data,
            created,
            Flavor::Helm,
            Map::new(),
            Map::new(),
        )
    }

    /// An Opaque Secret applied with `kubectl apply`: its `last-applied-configuration` annotation holds the
    /// manifest, `data` included.
    pub fn applied_secret(&mut self, namespace: &str, name: &str) -> Value {
        let created = self.between(self.cluster_created, self.now - HOUR);
        let data = self.secret_data();
        let labels = labels_of(&[("app", name)]);
        self.secret_object(
            namespace,
            name,
            "Opaque",
            data,
            created,
            Flavor::Kubectl,
            labels,
            Map::new(),
        )
    }

    /// A rotated copy of a Secret's `data`: the same keys with fresh values (usernames are kept).
    pub fn rotated_secret_data(&mut self, data: &Map<String, Value>) -> Map<String, Value> {
        data.iter()
            .map(|(key, old)| {
                let value = if key == "username" {
                    old.clone()
                } else {
                    Value::String(base64(self.secret_value(key).as_bytes()))
                };
                (key.clone(), value)
            })
            .collect()
    }

    pub(in crate::sim) fn secret_data(&mut self) -> Map<String, Value> {
        let mut data = Map::new();
        for _ in 0..self.range(1, 5) {
            let key = self.pick(SECRET_KEYS);
            let value = self.secret_value(key);
            data.insert(key.to_string(), Value::String(base64(value.as_bytes())));
        }
        data
    }

    /// A fresh plain-text value for the Secret key `key`.
    pub(in crate::sim) fn secret_value(&mut self, key: &str) -> String {
        match key {
            "database-url" => format!(
                "postgres://{}:{}@{}.{}.rds.amazonaws.com:5432/{}",
                self.pick(DOMAINS),
                self.chars(ALNUM, 24),
                self.pick(DOMAINS),
                self.hex(12),
                self.pick(DOMAINS)
            ),
            "username" => format!("{}-{}", self.pick(DOMAINS), self.pick(ROLES)),
            "stripe-key" => format!("sk_live_{}", self.chars(ALNUM, 40)),
            _ => {
                let n = self.range(16, 64) as usize;
                self.chars(ALNUM, n)
            }
        }
    }

    pub(in crate::sim) fn service_account_token(
        &mut self,
        ns: &str,
        sa: &str,
        secret: &str,
    ) -> String {
        let header = base64url(
            format!(
                "{{\"alg\":\"RS256\",\"kid\":\"{}\"}}",
                self.chars(ALNUM, 43)
            )
            .as_bytes(),
        );
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": self.uid(),
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        });
        let payload = base64url(claims.to_string().as_bytes());
        let signature = base64url(&self.bytes(256));
        format!("{header}.{payload}.{signature}")
    }

    pub(in crate::sim) fn service_account(&mut self, app: &App, name: &str) -> Value {
        self.reserve("ServiceAccount", &app.ns, name);
        let (labels, mut annotations) = self.app_metadata(app, "ServiceAccount", name);
        if self.chance(0.6) {
            annotations.insert(
                "eks.amazonaws.com/role-arn".into(),
                Value::String(format!(
                    "arn:aws:iam::{}:role/{}-{}-irsa",
                    self.account, app.ns, name
                )),
            );
        }
        let meta = self.metadata(Some(&app.ns), name, app.created, labels, annotations);
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        if self.chance(0.3) {
            sa["automountServiceAccountToken"] = json!(true);
        }
        self.applied(&mut sa, app.flavor, app.created);
        sa
    }

    pub(in crate::sim) fn config_map(&mut self, app: &App, name: &str) -> Value {
        self.reserve("ConfigMap", &app.ns, name);
        let (labels, annotations) = self.app_metadata(app, "ConfigMap", name);
        let created = self.between(app.created, self.now - HOUR);
        let meta = self.metadata(Some(&app.ns), name, created, labels, annotations);
        let mut yaml = format!("server:\n  port: {}\n  shutdown: graceful\n", app.port);
        for section in 0..self.range(1, 4) {
            let _ = section;
            yaml.push_str(&format!("{}:\n", self.pick(DOMAINS)));
            for _ in 0..self.range(2, 8) {
                let key = self.pick(CONFIG_KEYS);
                let value = match self.range(0, 3) {
                    0 => format!("{}ms", self.range(50, 30_000)),
                    1 => self.range(1, 10_000).to_string(),
                    2 => format!(
                        "http://{}-{}.{}.svc.cluster.local:{}",
                        self.pick(DOMAINS),
                        self.pick(ROLES),
                        app.ns,
                        self.pick(&[80, 8080, 9090])
                    ),
                    _ => self.pick(&["true", "false"]).to_string(),
                };
                yaml.push_str(&format!("  {key}: {value}\n"));
            }
        }
        let mut data = Map::new();
        data.insert("application.yaml".into(), Value::String(yaml));
        if self.chance(0.5) {
            data.insert("LOG_LEVEL".into(), json!(self.pick(LOG_LEVELS)));
            data.insert(
                "FEATURE_FLAGS".into(),
                Value::String(
                    (0..self.range(1, 5))
                        .map(|_| self.pick(DOMAINS))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            );
        }
        let mut cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data});
        self.applied(&mut cm, app.flavor, created);
        cm
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::sim) fn secret_object(
        &mut self,
        ns: &str,
        name: &str,
        kind: &str,
        data: Map<String, Value>,
        created: i64,
        flavor: Flavor,
        labels: Map<String, Value>,
        annotations: Map<String, Value>,
    ) -> Value {
        let name = if self.reserve("Secret", ns, name) {
            name.to_string()
        } else {
            loop {
                let candidate = format!("{name}-{}", self.suffix());
                if self.reserve("Secret", ns, &candidate) {
                    break candidate;
                }
            }
        };
        let meta = self.metadata(Some(ns), &name, created, labels, annotations);
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data, "type": kind});
        self.applied(&mut secret, flavor, created);
        secret
    }

    pub(in crate::sim) fn docker_config_secret(
        &mut self,
        ns: &str,
        name: &str,
        created: i64,
    ) -> Value {
        let registry = format!("{}.dkr.ecr.{}.amazonaws.com", self.account, self.region);
        let password = self.chars(ALNUM, 1200);
        let auth = base64(format!("AWS:{password}").as_bytes());
        let config =
            json!({"auths": {registry: {"auth": auth, "password": password, "username": "AWS"}}});
        let mut data = Map::new();
        data.insert(
            ".dockerconfigjson".into(),
            Value::String(base64(config.to_string().as_bytes())),
        );
        self.secret_object(
            ns,
            name,
            "kubernetes.io/dockerconfigjson",
            data,
            created,
            Flavor::Kubectl,
            Map::new(),
            Map::new(),
        )
    }

    pub(in crate::sim) fn tls_secret(
        &mut self,
        ns: &str,
        name: &str,
        created: i64,
        flavor: Flavor,
    ) -> Value {
        let mut data = Map::new();
        let cert = format!("{}{}", self.pem("CERTIFICATE", 1_200), self.ca_pem);
        data.insert("tls.crt".into(), Value::String(base64(cert.as_bytes())));
        data.insert(
            "tls.key".into(),
            Value::String(base64(self.pem("PRIVATE KEY", 1_190).as_bytes())),
        );
        if self.chance(0.5) {
            data.insert(
                "ca.crt".into(),
                Value::String(base64(self.ca_pem.as_bytes())),
            );
        }
        let common_name = format!("{name}.{ns}.svc");
        let annotations = labels_of(&[
            ("cert-manager.io/common-name", common_name.as_str()),
            ("cert-manager.io/issuer-name", "selfsigned"),
        ]);
        self.secret_object(
            ns,
            name,
            "kubernetes.io/tls",
            data,
            created,
            flavor,
            Map::new(),
            annotations,
        )
    }

    pub(in crate::sim) fn token_secret(&mut self, ns: &str, sa: &Value, created: i64) -> Value {
        let sa_name = sa.str_at("/metadata/name").to_string();
        let name = format!("{sa_name}-token");
        let token = self.service_account_token(ns, &sa_name, &name);
        let mut data = Map::new();
        data.insert(
            "ca.crt".into(),
            Value::String(base64(self.ca_pem.as_bytes())),
        );
        data.insert("namespace".into(), Value::String(base64(ns.as_bytes())));
        data.insert("token".into(), Value::String(base64(token.as_bytes())));
        let annotations = labels_of(&[("kubernetes.io/service-account.name", sa_name.as_str())]);
        let mut secret = self.secret_object(
            ns,
            &name,
            "kubernetes.io/service-account-token",
            data,
            created,
            Flavor::Kubectl,
            Map::new(),
            annotations,
        );
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] =
            Value::String(sa.str_at("/metadata/uid").to_string());
        secret
    }

    pub(in crate::sim) fn system_service_account(
        &mut self,
        ns: &str,
        name: &str,
        created: i64,
    ) -> Value {
        self.reserve("ServiceAccount", ns, name);
        let labels = labels_of(&[
            ("app.kubernetes.io/name", name),
            ("eks.amazonaws.com/component", name),
        ]);
        let meta = self.metadata(Some(ns), name, created, labels, Map::new());
        let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta});
        self.applied(&mut sa, Flavor::System, created);
        sa
    }

    pub(in crate::sim) fn system_config_map(
        &mut self,
        ns: &str,
        name: &str,
        created: i64,
        key: &str,
        value: &str,
    ) -> Value {
        self.reserve("ConfigMap", ns, name);
        let labels = labels_of(&[("eks.amazonaws.com/component", name)]);
        let meta = self.metadata(Some(ns), name, created, labels, Map::new());
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {key: value}});
        self.applied(&mut cm, Flavor::System, created);
        cm
    }
}

impl Churn {
    pub(in crate::sim) fn rotation(&mut self) -> bool {
        let Some(key) = self.pools[POOL_ROTATABLE].pick(&mut self.rng) else {
            return false;
        };
        let Some(obj) = self.get(&key) else {
            return false;
        };
        let Some(old) = obj.get("data").and_then(Value::as_object).cloned() else {
            return false;
        };
        let data = if key.kind == "Secret" {
            self.factory.rotated_secret_data(&old)
        } else {
            self.edit_config(old)
        };
        let now = self.ts();
        self.modify(&key, |o| {
            set(o, "", "data", Value::Object(data));
            refresh_last_applied(o);
            retime_applier(o, &now);
        });
        true
    }

    /// `data` of an app ConfigMap with one setting changed.
    pub(in crate::sim) fn edit_config(
        &mut self,
        mut data: Map<String, Value>,
    ) -> Map<String, Value> {
        if data.contains_key("LOG_LEVEL") && self.rng.random_bool(0.3) {
            let level = ["info", "debug", "warn", "INFO", "DEBUG", "error"]
                [self.rng.random_range(0..6usize)];
            data.insert("LOG_LEVEL".into(), json!(level));
            return data;
        }
        let Some(yaml) = data.get("application.yaml").and_then(Value::as_str) else {
            return data;
        };
        let lines: Vec<&str> = yaml.lines().collect();
        let numeric: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.starts_with("  ")
                    && l.split_once(": ").is_some_and(|(_, v)| {
                        v.trim_end_matches("ms").parse::<u64>().is_ok()
                            || v == "true"
                            || v == "false"
                    })
            })
            .map(|(i, _)| i)
            .collect();
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        if numeric.is_empty() {
            out.push(format!(
                "  revision: {}",
                self.rng.random_range(1..10_000u32)
            ));
        } else {
            let i = numeric[self.rng.random_range(0..numeric.len())];
            if let Some((k, v)) = lines[i].split_once(": ") {
                let value = match v {
                    "true" => "false".to_string(),
                    "false" => "true".to_string(),
                    _ if v.ends_with("ms") => format!("{}ms", self.rng.random_range(50..30_000u32)),
                    _ => self.rng.random_range(1..10_000u32).to_string(),
                };
                out[i] = format!("{k}: {value}");
            }
        }
        let mut yaml = out.join("\n");
        yaml.push('\n');
        data.insert("application.yaml".into(), Value::String(yaml));
        data
    }
}
