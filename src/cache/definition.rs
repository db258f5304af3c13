//! The account definitions Clouddriver's credentials poller reads from its `accounts` table (pure,
//! no I/O): built from the operator's template and the account's name only, never from a string
//! a cluster wrote, so that no bucket can choose what Clouddriver executes, reads or writes.
//!
//! A definition is the body of one `accounts` row (`type` = `kubernetes`): the fields of
//! Clouddriver's `KubernetesAccountProperties.ManagedAccount`. Those that would make Clouddriver
//! call the cluster are set so that it does not (`namespaces` listed, `checkPermissionsOnStartup`
//! and `metrics` off) and so that any call that remains fails at once or reaches Outpost's own
//! read-only API ([`Gateway`]); `docs/CLOUDDRIVER.md` explains each.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::core_agent_name;
use super::names::check_agent_name;

/// The `type` of every definition Outpost writes: the column and the body's discriminator, which
/// must agree or Clouddriver's whole account reload aborts.
pub const ACCOUNT_TYPE: &str = "kubernetes";

/// The `context` of the kubeconfig in every definition.
const CONTEXT: &str = "outpost";

/// The longest account name: Clouddriver's names must also fit its agent names
/// (`<account>/KubernetesCoreCachingAgent[1/1]`, 127 characters in MySQL) and its temp-file path
/// `${java.io.tmpdir}/<account>`; a DNS-1123 label (63) fits both.
pub const MAX_ACCOUNT_NAME: usize = 63;

/// What is wrong with a template or a name; each names the setting and the value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid account template: {field} {value:?}: {reason}")]
    Template {
        field: String,
        value: String,
        reason: String,
    },
    #[error("cannot name account {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("invalid account template {path}: {reason}")]
    Parse { path: String, reason: String },
}

/// A Fiat authorization, as the keys of `permissions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Authorization {
    READ,
    WRITE,
    EXECUTE,
    CREATE,
}

/// Roles per authorization. An account with any role listed is restricted to them (Fiat on).
pub type Permissions = BTreeMap<Authorization, Vec<String>>;

/// Outpost's read-only Kubernetes API (`outpost gateway`), where Clouddriver's remaining live calls
/// (`kubectl`) go: the account's server is `<url>/clusters/<account>`, verified with `caFile`,
/// authenticated with `tokenFile`, both files mounted in Clouddriver. Without one, the server
/// refuses connections (`https://127.0.0.1:1`), so every live call fails within milliseconds
/// instead of dialling a cluster that cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Gateway {
    pub url: String,
    pub ca_file: String,
    pub token_file: String,
}

/// The server of accounts without a gateway.
const REFUSING_SERVER: &str = "https://127.0.0.1:1";

/// A custom resource's Spinnaker mapping (`customResources` of the definition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomResource {
    /// `Kind.group`, as the agent's `kinds` name it.
    pub kubernetes_kind: String,
    /// `serverGroups`, `loadBalancers`, `securityGroups`, `unclassified`…
    #[serde(default = "unclassified")]
    pub spinnaker_kind: String,
    #[serde(default)]
    pub versioned: bool,
    #[serde(default = "yes")]
    pub namespaced: bool,
}

fn unclassified() -> String {
    "unclassified".into()
}

fn yes() -> bool {
    true
}

/// What one account may set apart from the template's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountSettings {
    pub environment: Option<String>,
    pub account_type: Option<String>,
    pub permissions: Option<Permissions>,
}

/// The operator's template for every account the indexer registers (the indexer's
/// `--account-template` file).
///
/// ```yaml
/// prefix: outpost-              # account = prefix + the account the cluster was granted
/// environment: prod             # default: the account's name, as Clouddriver defaults it
/// accountType: outpost          # default: the account's name
/// permissions: {READ: [sre]}    # default roles of every account (default: none, unrestricted)
/// accounts:                     # by granted account, before the prefix
///   payments: {permissions: {READ: [payments, sre]}}
/// customResources:
///   - {kubernetesKind: Rollout.argoproj.io, spinnakerKind: serverGroups}
/// gateway: {url: "https://gw:8443", caFile: /ca.crt, tokenFile: /token}   # default: none
/// kubectlRequestTimeoutSeconds: 5
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountTemplate {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSettings>,
    #[serde(default)]
    pub custom_resources: Vec<CustomResource>,
    #[serde(default)]
    pub gateway: Option<Gateway>,
    #[serde(default = "default_timeout")]
    pub kubectl_request_timeout_seconds: u32,
}

fn default_timeout() -> u32 {
    5
}

impl Default for AccountTemplate {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            environment: None,
            account_type: None,
            permissions: Permissions::new(),
            accounts: BTreeMap::new(),
            custom_resources: Vec::new(),
            gateway: None,
            kubectl_request_timeout_seconds: default_timeout(),
        }
    }
}

fn template_error(field: impl Into<String>, value: impl Into<String>, reason: &str) -> Error {
    Error::Template {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Checks a role, environment or account type: printable, no surrounding blanks, not empty.
fn check_label(field: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(template_error(field, value, "it is empty"));
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err(template_error(
            field,
            value,
            "it has blanks around it or control characters",
        ));
    }
    if value.len() > 255 {
        return Err(template_error(field, value, "it is longer than 255 bytes"));
    }
    Ok(())
}

fn check_permissions(field: &str, permissions: &Permissions) -> Result<(), Error> {
    for (authorization, roles) in permissions {
        for role in roles {
            check_label(&format!("{field}.{authorization:?}"), role)?;
        }
    }
    Ok(())
}

impl AccountTemplate {
    /// Parses and validates a template's YAML (`path` names it in errors, which give the line
    /// and column of a syntax error and the setting of an invalid value).
    pub fn parse(path: &str, text: &str) -> Result<Self, Error> {
        let template: Self = serde_yaml_ng::from_str(text).map_err(|e| Error::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        template.validate().map_err(|e| Error::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(template)
    }

    /// Checks every value the template puts into a definition: a template that fails here is
    /// refused when loaded, before anything is registered.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.prefix.is_empty() {
            // The prefix with a one-letter account must itself make a valid name.
            account_name(&self.prefix, "a").map_err(|e| match e {
                Error::Name { reason, .. } => template_error("prefix", &self.prefix, &reason),
                other => other,
            })?;
        }
        for (field, value) in [
            ("environment", &self.environment),
            ("accountType", &self.account_type),
        ] {
            if let Some(value) = value {
                check_label(field, value)?;
            }
        }
        check_permissions("permissions", &self.permissions)?;
        for (account, settings) in &self.accounts {
            crate::format::check_account_name(account)
                .map_err(|e| template_error("accounts", account, &e.to_string()))?;
            let field = |name: &str| format!("accounts.{account}.{name}");
            if let Some(value) = &settings.environment {
                check_label(&field("environment"), value)?;
            }
            if let Some(value) = &settings.account_type {
                check_label(&field("accountType"), value)?;
            }
            if let Some(permissions) = &settings.permissions {
                check_permissions(&field("permissions"), permissions)?;
            }
        }
        for (i, resource) in self.custom_resources.iter().enumerate() {
            let field = format!("customResources[{i}].kubernetesKind");
            let Some((kind, group)) = resource.kubernetes_kind.split_once('.') else {
                return Err(template_error(
                    field,
                    &resource.kubernetes_kind,
                    "write Kind.group, as the agent's kinds name a custom resource",
                ));
            };
            if kind.is_empty()
                || group.is_empty()
                || !resource
                    .kubernetes_kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(template_error(
                    field,
                    &resource.kubernetes_kind,
                    "write Kind.group (letters, digits, '.', '-')",
                ));
            }
            check_label(
                &format!("customResources[{i}].spinnakerKind"),
                &resource.spinnaker_kind,
            )?;
        }
        if let Some(Gateway {
            url,
            ca_file,
            token_file,
        }) = &self.gateway
        {
            let Some(rest) = url.strip_prefix("https://") else {
                return Err(template_error(
                    "gateway.url",
                    url,
                    "the gateway is reached over https://",
                ));
            };
            if rest.is_empty()
                || rest.ends_with('/')
                || rest.contains(['?', '#', ' '])
                || url.chars().any(char::is_control)
            {
                return Err(template_error(
                    "gateway.url",
                    url,
                    "write https://host[:port][/path], with no trailing '/', query or fragment",
                ));
            }
            for (field, path) in [
                ("gateway.caFile", ca_file),
                ("gateway.tokenFile", token_file),
            ] {
                if !path.starts_with('/') || path.chars().any(char::is_control) {
                    return Err(template_error(
                        field,
                        path,
                        "an absolute path of a file mounted in Clouddriver",
                    ));
                }
            }
        }
        if !(1..=300).contains(&self.kubectl_request_timeout_seconds) {
            return Err(template_error(
                "kubectlRequestTimeoutSeconds",
                self.kubectl_request_timeout_seconds.to_string(),
                "between 1 and 300",
            ));
        }
        Ok(())
    }

    /// The definition of the account `granted` (what the claim policy gave the cluster, before
    /// the prefix), watching `namespaces` (what the cluster reports; sorted and deduplicated
    /// here). Its name is [`account_name`]`(prefix, granted)`.
    pub fn definition(&self, granted: &str, namespaces: &[String]) -> Result<Value, Error> {
        let name = account_name(&self.prefix, granted)?;
        let settings = self.accounts.get(granted).cloned().unwrap_or_default();
        let environment = settings
            .environment
            .or_else(|| self.environment.clone())
            .unwrap_or_else(|| name.clone());
        let account_type = settings
            .account_type
            .or_else(|| self.account_type.clone())
            .unwrap_or_else(|| name.clone());
        let permissions = settings
            .permissions
            .unwrap_or_else(|| self.permissions.clone());
        let mut namespaces: Vec<&String> = namespaces.iter().collect();
        namespaces.sort();
        namespaces.dedup();
        Ok(json!({
            "type": ACCOUNT_TYPE,
            "name": name,
            "environment": environment,
            "accountType": account_type,
            "permissions": permissions,
            "kubeconfigContents": self.kubeconfig_for(&name),
            "context": CONTEXT,
            "kubectlRequestTimeoutSeconds": self.kubectl_request_timeout_seconds,
            "checkPermissionsOnStartup": false,
            "metrics": false,
            "cacheThreads": 1,
            "namespaces": namespaces,
            "customResources": self.custom_resources,
        }))
    }

    /// The kubeconfig Clouddriver's `kubectl` gets for `account`, as YAML.
    fn kubeconfig_for(&self, account: &str) -> String {
        let (cluster, user) = match &self.gateway {
            None => (json!({"server": REFUSING_SERVER}), json!({})),
            Some(Gateway {
                url,
                ca_file,
                token_file,
            }) => (
                json!({"server": format!("{url}/clusters/{account}"), "certificate-authority": ca_file}),
                json!({"tokenFile": token_file}),
            ),
        };
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": cluster}],
            "users": [{"name": CONTEXT, "user": user}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
            "current-context": CONTEXT,
        });
        // JSON is YAML, and kubectl reads it as such: no quoting of ours to get wrong.
        kubeconfig.to_string()
    }
}

/// The Spinnaker account of a granted account: `prefix` + `granted`, checked for every place
/// Clouddriver puts it: a DNS-1123 label (no `:` for cache keys, no `/` or `..` for agent names
/// and the temp-file path), at most [`MAX_ACCOUNT_NAME`] characters, and an agent name that fits.
pub fn account_name(prefix: &str, granted: &str) -> Result<String, Error> {
    let name = format!("{prefix}{granted}");
    let refuse = |reason: String| Error::Name {
        name: name.clone(),
        reason,
    };
    crate::format::check_account_name(&name).map_err(|e| refuse(e.to_string()))?;
    if name.len() > MAX_ACCOUNT_NAME {
        return Err(refuse(format!(
            "it is longer than {MAX_ACCOUNT_NAME} characters"
        )));
    }
    let agent = core_agent_name(&name);
    for dialect in [super::Dialect::MySql, super::Dialect::Postgres] {
        if check_agent_name(&agent, dialect).map_err(|e| refuse(e.to_string()))? != agent {
            return Err(refuse(format!(
                "its agent name {agent:?} would be shortened"
            )));
        }
    }
    Ok(name)
}

/// How long after its last write a definition that differs only in its namespaces waits to be
/// written again: a namespace whose last object is replaced, or a burst of namespaces made one
/// by one, rebuilds the account's credentials in every Clouddriver once per this, not once per
/// run.
pub const NAMESPACES_SETTLE_MS: i64 = 5 * 60 * 1000;

/// What to do with a stored definition given the one wanted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// The same account: nothing to write.
    Same,
    /// Only the namespaces differ and the stored one was written less than
    /// [`NAMESPACES_SETTLE_MS`] ago: written by a later run.
    Deferred,
    /// Write it.
    Due,
}

/// Whether the stored definition (written at `last_modified_ms`) is to be replaced by `new` at
/// `now_ms`: compared as parsed JSON, since MySQL and PostgreSQL reorder keys, so that an
/// unchanged definition is never written again (each write makes every Clouddriver rebuild the
/// account). A stored body that does not parse is replaced.
pub fn rewrite(stored: &str, new: &Value, last_modified_ms: i64, now_ms: i64) -> Rewrite {
    let Ok(mut stored) = serde_json::from_str::<Value>(stored) else {
        return Rewrite::Due;
    };
    if &stored == new {
        return Rewrite::Same;
    }
    let mut new = new.clone();
    if let (Some(stored), Some(new)) = (stored.as_object_mut(), new.as_object_mut()) {
        stored.remove("namespaces");
        new.remove("namespaces");
    }
    if stored == new && now_ms.saturating_sub(last_modified_ms) < NAMESPACES_SETTLE_MS {
        Rewrite::Deferred
    } else {
        Rewrite::Due
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn template(yaml: &str) -> AccountTemplate {
        let template: AccountTemplate = serde_yaml_ng::from_str(yaml).unwrap();
        template.validate().unwrap();
        template
    }

    #[test]
    fn only_namespaces_changing_waits_for_the_settle_time() {
        let template = AccountTemplate::default();
        let stored = template
            .definition("eu-1", &["a".into()])
            .unwrap()
            .to_string();
        let same = template.definition("eu-1", &["a".into()]).unwrap();
        let more = template
            .definition("eu-1", &["a".into(), "b".into()])
            .unwrap();
        let retyped = AccountTemplate {
            environment: Some("prod".into()),
            ..AccountTemplate::default()
        }
        .definition("eu-1", &["a".into()])
        .unwrap();
        let at = 1_000_000;
        assert_eq!(rewrite(&stored, &same, at, at + 1), Rewrite::Same);
        assert_eq!(rewrite(&stored, &more, at, at + 1), Rewrite::Deferred);
        assert_eq!(
            rewrite(&stored, &more, at, at + NAMESPACES_SETTLE_MS - 1),
            Rewrite::Deferred
        );
        assert_eq!(
            rewrite(&stored, &more, at, at + NAMESPACES_SETTLE_MS),
            Rewrite::Due
        );
        assert_eq!(
            rewrite(&stored, &retyped, at, at + 1),
            Rewrite::Due,
            "a template change is at once"
        );
        assert_eq!(rewrite("{not json", &same, at, at + 1), Rewrite::Due);
        // A clock gone backwards, or a row written by another clock, never waits forever.
        assert_eq!(rewrite(&stored, &more, i64::MIN, i64::MAX), Rewrite::Due);
    }

    #[test]
    fn a_template_file_is_checked_whole_and_named_in_its_errors() {
        assert_eq!(
            AccountTemplate::parse("t.yaml", "# only defaults\n").unwrap(),
            AccountTemplate::default()
        );
        let parsed = AccountTemplate::parse("t.yaml", "prefix: op-\nenvironment: prod\n").unwrap();
        assert_eq!(parsed.prefix, "op-");
        let typo = AccountTemplate::parse("t.yaml", "prefix: op-\nenviroment: prod\n")
            .unwrap_err()
            .to_string();
        assert!(
            typo.contains("t.yaml") && typo.contains("enviroment") && typo.contains("line 2"),
            "{typo}"
        );
        let invalid = AccountTemplate::parse("t.yaml", "prefix: Op_\n")
            .unwrap_err()
            .to_string();
        assert!(
            invalid.contains("t.yaml") && invalid.contains("prefix") && invalid.contains("Op_"),
            "{invalid}"
        );
    }

    #[test]
    fn the_default_definition_calls_nothing_and_refuses_what_remains() {
        let body = AccountTemplate::default()
            .definition("prod-eu-1", &["b".into(), "a".into(), "b".into()])
            .unwrap();
        assert_eq!(body["type"], ACCOUNT_TYPE);
        assert_eq!(body["name"], "prod-eu-1");
        assert_eq!(body["environment"], "prod-eu-1");
        assert_eq!(body["accountType"], "prod-eu-1");
        assert_eq!(body["namespaces"], json!(["a", "b"]));
        assert_eq!(body["checkPermissionsOnStartup"], false);
        assert_eq!(body["metrics"], false);
        assert_eq!(body["cacheThreads"], 1);
        assert_eq!(body["context"], "outpost");
        assert_eq!(body["kubectlRequestTimeoutSeconds"], 5);
        let kubeconfig: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(body["kubeconfigContents"].as_str().unwrap()).unwrap();
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1"
        );
        assert_eq!(kubeconfig["current-context"], "outpost");
        // Nothing that would run a program or read a file of Clouddriver's.
        for field in ["kubectlExecutable", "kubeconfigFile", "serviceAccount"] {
            assert!(body.get(field).is_none(), "{field}");
        }
    }

    #[test]
    fn the_template_sets_names_permissions_and_the_gateway() {
        let t = template(
            "prefix: outpost-\nenvironment: prod\naccountType: outpost\npermissions: {READ: [sre]}\n\
             accounts: {payments: {environment: pci, permissions: {READ: [payments], WRITE: [payments]}}}\n\
             customResources: [{kubernetesKind: Rollout.argoproj.io, spinnakerKind: serverGroups}]\n\
             gateway: {url: 'https://gw.spinnaker:8443', caFile: /ca.crt, tokenFile: /token}\n",
        );
        let shop = t.definition("shop", &[]).unwrap();
        assert_eq!(shop["name"], "outpost-shop");
        assert_eq!(shop["environment"], "prod");
        assert_eq!(shop["permissions"], json!({"READ": ["sre"]}));
        assert_eq!(
            shop["customResources"],
            json!([{"kubernetesKind": "Rollout.argoproj.io", "spinnakerKind": "serverGroups", "versioned": false, "namespaced": true}])
        );
        let payments = t.definition("payments", &[]).unwrap();
        assert_eq!(payments["environment"], "pci");
        assert_eq!(payments["accountType"], "outpost");
        assert_eq!(
            payments["permissions"],
            json!({"READ": ["payments"], "WRITE": ["payments"]})
        );
        let kubeconfig: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(payments["kubeconfigContents"].as_str().unwrap()).unwrap();
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["server"],
            "https://gw.spinnaker:8443/clusters/outpost-payments"
        );
        assert_eq!(
            kubeconfig["clusters"][0]["cluster"]["certificate-authority"],
            "/ca.crt"
        );
        assert_eq!(kubeconfig["users"][0]["user"]["tokenFile"], "/token");
    }

    #[test]
    fn a_bad_template_is_refused_naming_the_setting() {
        for (yaml, expected) in [
            ("prefix: Outpost-\n", "prefix"),
            ("prefix: 'outpost:'\n", "prefix"),
            ("environment: ' prod'\n", "environment"),
            ("permissions: {READ: ['']}\n", "permissions.READ"),
            ("accounts: {Bad: {}}\n", "accounts \"Bad\""),
            (
                "accounts: {ok: {permissions: {WRITE: [\"a\\nb\"]}}}\n",
                "accounts.ok.permissions.WRITE",
            ),
            (
                "customResources: [{kubernetesKind: Rollout}]\n",
                "customResources[0].kubernetesKind",
            ),
            (
                "gateway: {url: 'http://gw', caFile: /ca, tokenFile: /t}\n",
                "gateway.url",
            ),
            (
                "gateway: {url: 'https://gw/', caFile: /ca, tokenFile: /t}\n",
                "gateway.url",
            ),
            (
                "gateway: {url: 'https://gw', caFile: ca, tokenFile: /t}\n",
                "gateway.caFile",
            ),
            (
                "kubectlRequestTimeoutSeconds: 0\n",
                "kubectlRequestTimeoutSeconds",
            ),
        ] {
            let template: AccountTemplate = serde_yaml_ng::from_str(yaml).unwrap();
            let error = template.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
        // Unknown settings and authorizations are refused when parsed.
        assert!(
            serde_yaml_ng::from_str::<AccountTemplate>("kubectlExecutable: /bin/sh\n").is_err()
        );
        assert!(serde_yaml_ng::from_str::<AccountTemplate>("permissions: {ADMIN: [x]}\n").is_err());
    }

    #[test]
    fn account_names_fit_every_place_clouddriver_puts_them() {
        assert_eq!(account_name("outpost-", "eu-1").unwrap(), "outpost-eu-1");
        for (prefix, granted) in [
            ("", "a/b"),
            ("", "a:b"),
            ("", ".."),
            ("", "../etc"),
            ("x", "-"),
            ("", ""),
            ("", "UPPER"),
            ("outpost-", &"a".repeat(56)),
        ] {
            assert!(
                account_name(prefix, granted).is_err(),
                "{prefix:?} + {granted:?}"
            );
        }
        assert!(account_name("outpost-", &"a".repeat(55)).is_ok());
    }

    #[test]
    fn a_stored_body_compares_as_json() {
        let body = AccountTemplate::default()
            .definition("a", &["x".into()])
            .unwrap();
        // The database hands it back with its keys reordered and spaced.
        let mut stored: Vec<(String, Value)> = body
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        stored.reverse();
        let text = format!(
            "{{{}}}",
            stored
                .iter()
                .map(|(k, v)| format!("{:?}: {v}", k))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(rewrite(&text, &body, 0, 1), Rewrite::Same);
        let other = AccountTemplate::default()
            .definition("b", &["x".into()])
            .unwrap();
        assert_eq!(rewrite(&text, &other, 0, 1), Rewrite::Due);
        assert_eq!(rewrite("not json", &body, 0, 1), Rewrite::Due);
    }

    proptest! {
        /// Whatever a cluster manages to get granted, a definition is either refused or holds
        /// only the template's values and a name that is a DNS label.
        #[test]
        fn any_granted_name_gives_a_safe_definition_or_none(
            granted in "[ -~]{0,80}",
            namespaces in proptest::collection::vec("[a-z0-9-]{1,10}", 0..5),
        ) {
            let template = AccountTemplate { prefix: "outpost-".into(), ..AccountTemplate::default() };
            if let Ok(body) = template.definition(&granted, &namespaces) {
                let name = body["name"].as_str().unwrap();
                prop_assert!(name.len() <= MAX_ACCOUNT_NAME);
                prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                prop_assert_eq!(name, format!("outpost-{granted}"));
                let kubeconfig: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(body["kubeconfigContents"].as_str().unwrap()).unwrap();
                prop_assert_eq!(&kubeconfig["clusters"][0]["cluster"]["server"], REFUSING_SERVER);
            }
        }
    }
}
