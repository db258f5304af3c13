//! The claim policy: which Spinnaker accounts each cluster may appear as. Without a policy a
//! cluster may appear only as the account of its own name; with one, a cluster not named in it,
//! or asking for an account it is not granted, is refused. Account names are DNS-1123 labels
//! ([`crate::format::check_account_name`]). A malformed policy fails closed: it is refused when
//! loaded, before anything is indexed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What went wrong reading a policy file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read claim policy {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid claim policy {path}: {reason}")]
    Parse { path: String, reason: String },
}

/// One cluster's entry: the accounts it may claim (`*` for any), and the account it gets when it
/// asks for none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterGrant {
    /// Accounts this cluster may claim; `["*"]` allows any.
    pub accounts: Vec<String>,
}

/// The policy file:
///
/// ```yaml
/// clusters:
///   prod-eu-1: {accounts: [prod-eu-1, prod-eu]}
///   "*": {accounts: ["*"]}          # optional: every other cluster may claim any account
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub clusters: BTreeMap<String, ClusterGrant>,
}

/// The policy in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClaimPolicy {
    /// No policy: a cluster may claim only the account of its own name (a cluster named
    /// `aaa-evil` cannot ask for `prod`).
    #[default]
    OwnName,
    /// Only what the file grants.
    File(PolicyFile),
}

/// What a cluster was granted (kept in `outpost_clusters.policy_grant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The account its rows are written to.
    pub account: String,
    /// How: `own name` (no policy) or the policy entry that allowed it.
    pub by: String,
}

impl ClaimPolicy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates policy text (`path` names it in errors).
    pub fn parse(path: &str, text: &str) -> Result<Self, Error> {
        let file: PolicyFile = serde_yaml_ng::from_str(text).map_err(|e| Error::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        for (cluster, grant) in &file.clusters {
            if grant.accounts.is_empty() {
                return Err(Error::Parse {
                    path: path.to_string(),
                    reason: format!(
                        "cluster {cluster:?} is granted no account (use accounts: [\"*\"] to allow any)"
                    ),
                });
            }
            for account in grant.accounts.iter().filter(|a| *a != "*") {
                crate::format::check_account_name(account).map_err(|e| Error::Parse {
                    path: path.to_string(),
                    reason: format!("cluster {cluster:?}: {e}"),
                })?;
            }
        }
        Ok(ClaimPolicy::File(file))
    }

    fn entry(&self, cluster: &str) -> Option<(&str, &ClusterGrant)> {
        match self {
            ClaimPolicy::OwnName => None,
            ClaimPolicy::File(file) => file
                .clusters
                .get_key_value(cluster)
                .or_else(|| file.clusters.get_key_value("*"))
                .map(|(k, v)| (k.as_str(), v)),
        }
    }

    /// Whether `cluster` may claim `account`; the reason when not.
    pub fn check(&self, cluster: &str, account: &str) -> Result<(), String> {
        if let Err(e) = crate::format::check_account_name(account) {
            return Err(format!(
                "cluster {cluster} asks for an account that cannot be: {e}"
            ));
        }
        match (self, self.entry(cluster)) {
            (ClaimPolicy::OwnName, _) if account == cluster => Ok(()),
            (ClaimPolicy::OwnName, _) => Err(format!(
                "cluster {cluster} asks for account {account}, but without a claim policy a cluster may claim only the account of its own name; grant it in a claim policy (outpost index --policy FILE)"
            )),
            (ClaimPolicy::File(_), None) => Err(format!(
                "the claim policy names no cluster {cluster} (and has no \"*\" entry)"
            )),
            (ClaimPolicy::File(_), Some((_, grant)))
                if grant.accounts.iter().any(|a| a == "*" || a == account) =>
            {
                Ok(())
            }
            (ClaimPolicy::File(_), Some((entry, grant))) => Err(format!(
                "cluster {cluster} asks for account {account} but the claim policy (entry {entry:?}) grants only {}",
                grant.accounts.join(", ")
            )),
        }
    }

    /// The grant of an allowed claim.
    pub fn grant(&self, cluster: &str, account: &str) -> Grant {
        Grant {
            account: account.to_string(),
            by: match self.entry(cluster) {
                None => "own name".to_string(),
                Some((entry, _)) => format!("policy entry {entry:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_policy_a_cluster_gets_only_its_own_name() {
        assert!(ClaimPolicy::OwnName.check("c1", "c1").is_ok());
        let e = ClaimPolicy::OwnName.check("aaa-evil", "prod").unwrap_err();
        assert!(e.contains("only the account of its own name"), "{e}");
        assert_eq!(ClaimPolicy::OwnName.grant("c1", "c1").by, "own name");
    }

    #[test]
    fn account_names_are_dns_labels() {
        let any = ClaimPolicy::parse("p.yaml", "clusters:\n  '*': {accounts: ['*']}\n").unwrap();
        for bad in [
            "PROD",
            "Prod",
            "a/b",
            "a:b",
            "",
            "-a",
            "a-",
            "pród",
            "a b",
            "a_b",
            &"a".repeat(64),
        ] {
            let e = any.check("c1", bad).unwrap_err();
            assert!(e.contains("account name"), "{bad:?}: {e}");
        }
        assert!(any.check("c1", "prod-eu-1").is_ok());
    }

    #[test]
    fn a_policy_grants_only_what_it_names() {
        let policy = ClaimPolicy::parse(
            "p.yaml",
            "clusters:\n  prod-1: {accounts: [prod-1, prod]}\n",
        )
        .unwrap();
        assert!(policy.check("prod-1", "prod").is_ok());
        let e = policy.check("prod-1", "staging").unwrap_err();
        assert!(e.contains("grants only prod-1, prod"), "{e}");
        let e = policy.check("dev-1", "dev-1").unwrap_err();
        assert!(e.contains("names no cluster dev-1"), "{e}");
        let open = ClaimPolicy::parse("p.yaml", "clusters:\n  '*': {accounts: ['*']}\n").unwrap();
        assert!(open.check("dev-1", "whatever").is_ok());
        assert_eq!(open.grant("dev-1", "x").by, "policy entry \"*\"");
    }

    #[test]
    fn a_malformed_policy_fails_closed() {
        for (text, expected) in [
            ("clusters:\n  c: {accounts: []}\n", "granted no account"),
            (
                "clusters:\n  c: {accounts: [a], extra: 1}\n",
                "unknown field `extra`",
            ),
            ("clusters: [1, 2]\n", "invalid type"),
            (
                "clusters:\n  c: {accounts: ['a:b']}\n",
                "invalid account name",
            ),
            (
                "clusters:\n  c: {accounts: [PROD]}\n",
                "invalid account name",
            ),
            ("nonsense: true\n", "unknown field `nonsense`"),
        ] {
            let e = ClaimPolicy::parse("p.yaml", text).unwrap_err().to_string();
            assert!(
                e.contains("invalid claim policy p.yaml") && e.contains(expected),
                "{text}: {e}"
            );
        }
    }
}
