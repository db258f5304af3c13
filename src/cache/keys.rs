//! Clouddriver's Kubernetes cache keys (`Keys.java`): building them, and parsing them back.

use std::fmt;

/// The provider segment every Kubernetes cache key starts with.
pub const PROVIDER: &str = "kubernetes.v2";

/// The cache type (and relationship group) of application rows.
pub const APPLICATIONS: &str = "applications";

/// The cache type (and relationship group) of cluster rows.
pub const CLUSTERS: &str = "clusters";

/// Joins key parts with `:` after replacing any `:` inside a part with `;`
/// (`Keys.createKeyFromParts`).
fn key_from_parts(parts: &[&str]) -> String {
    let mut key = String::from(PROVIDER);
    for part in parts {
        key.push(':');
        key.push_str(&part.replace(':', ";"));
    }
    key
}

/// The key of a Kubernetes object:
/// `kubernetes.v2:infrastructure:<kind>:<account>:<namespace>:<name>` (the namespace is empty for
/// cluster-scoped objects).
pub fn infrastructure_key(kind: &str, account: &str, namespace: &str, name: &str) -> String {
    key_from_parts(&["infrastructure", kind, account, namespace, name])
}

/// The key of an application row: `kubernetes.v2:logical:applications:<app>`.
pub fn application_key(app: &str) -> String {
    key_from_parts(&["logical", APPLICATIONS, app])
}

/// The key of a cluster row: `kubernetes.v2:logical:clusters:<account>:<app>:<cluster>`.
pub fn cluster_key(account: &str, app: &str, cluster: &str) -> String {
    key_from_parts(&["logical", CLUSTERS, account, app, cluster])
}

/// A parsed cache key, holding its parts unescaped (`:` inside a part is `:` here, `;` in the
/// key string).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CacheKey {
    /// An application row, named after the application.
    Application {
        /// The moniker application.
        name: String,
    },
    /// A cluster row of one account and application.
    Cluster {
        /// The Spinnaker account.
        account: String,
        /// The moniker application.
        application: String,
        /// The moniker cluster, e.g. `deployment myapp`.
        name: String,
    },
    /// A Kubernetes object.
    Infrastructure {
        /// The canonical kind string (see `KubernetesKind`).
        kind: String,
        /// The Spinnaker account.
        account: String,
        /// The namespace, empty for cluster-scoped objects.
        namespace: String,
        /// The object name.
        name: String,
    },
}

impl CacheKey {
    /// The group of the key: the cache type of its row and the relationship-map key under which
    /// other rows list it (`applications`, `clusters`, or the kind string).
    pub fn group(&self) -> &str {
        match self {
            CacheKey::Application { .. } => APPLICATIONS,
            CacheKey::Cluster { .. } => CLUSTERS,
            CacheKey::Infrastructure { kind, .. } => kind,
        }
    }

    /// The key's name part: the application, the cluster or the object name.
    pub fn name(&self) -> &str {
        match self {
            CacheKey::Application { name }
            | CacheKey::Cluster { name, .. }
            | CacheKey::Infrastructure { name, .. } => name,
        }
    }

    /// Whether this is an application or cluster key.
    pub fn is_logical(&self) -> bool {
        !matches!(self, CacheKey::Infrastructure { .. })
    }

    /// Parses a key string like `Keys.parseKey`: split on every `:`, `;` turned back into `:`,
    /// and the part count checked. Artifact keys and anything else unknown give `None`.
    pub fn parse(key: &str) -> Option<CacheKey> {
        let parts: Vec<String> = key.split(':').map(|p| p.replace(';', ":")).collect();
        if parts.len() < 3 || parts[0] != PROVIDER {
            return None;
        }
        match (parts[1].to_lowercase().as_str(), parts.len()) {
            ("infrastructure", 6) => Some(CacheKey::Infrastructure {
                kind: parts[2].clone(),
                account: parts[3].clone(),
                namespace: parts[4].clone(),
                name: parts[5].clone(),
            }),
            ("logical", 4) if parts[2].eq_ignore_ascii_case(APPLICATIONS) => {
                Some(CacheKey::Application {
                    name: parts[3].clone(),
                })
            }
            ("logical", 6) if parts[2].eq_ignore_ascii_case(CLUSTERS) => Some(CacheKey::Cluster {
                account: parts[3].clone(),
                application: parts[4].clone(),
                name: parts[5].clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self {
            CacheKey::Application { name } => application_key(name),
            CacheKey::Cluster {
                account,
                application,
                name,
            } => cluster_key(account, application, name),
            CacheKey::Infrastructure {
                kind,
                account,
                namespace,
                name,
            } => infrastructure_key(kind, account, namespace, name),
        };
        f.write_str(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_match_clouddriver_examples() {
        assert_eq!(
            application_key("spinnaker"),
            "kubernetes.v2:logical:applications:spinnaker"
        );
        assert_eq!(
            cluster_key("k8s", "docs", "docs-site"),
            "kubernetes.v2:logical:clusters:k8s:docs:docs-site"
        );
        assert_eq!(
            infrastructure_key("replicaSet", "ac", "namespace", "v1-v000"),
            "kubernetes.v2:infrastructure:replicaSet:ac:namespace:v1-v000"
        );
        assert_eq!(
            infrastructure_key(
                "clusterRole",
                "k8s",
                "",
                "system:controller:resourcequota-controller"
            ),
            "kubernetes.v2:infrastructure:clusterRole:k8s::system;controller;resourcequota-controller"
        );
    }

    #[test]
    fn parse_recovers_colons_and_rejects_unknown_keys() {
        let key = CacheKey::parse(
            "kubernetes.v2:infrastructure:clusterRole:k8s::system;controller;resourcequota-controller",
        )
        .unwrap();
        assert_eq!(key.name(), "system:controller:resourcequota-controller");
        assert_eq!(key.group(), "clusterRole");
        assert_eq!(
            CacheKey::parse("kubernetes.v2:logical:clusters:acct:myapp:deployment myapp")
                .unwrap()
                .name(),
            "deployment myapp"
        );
        assert_eq!(CacheKey::parse("kubernetes.v2:artifact:a:b:c:d"), None);
        assert_eq!(CacheKey::parse("aws:logical:applications:x"), None);
        assert_eq!(
            CacheKey::parse("kubernetes.v2:logical:applications:a:b"),
            None
        );
    }

    fn part() -> impl Strategy<Value = String> {
        // Parts may hold ':' (escaped as ';'); a literal ';' cannot round-trip, as in Clouddriver.
        "[a-zA-Z0-9 .:_-]{0,12}"
    }

    proptest! {
        #[test]
        fn keys_round_trip(kind in "[a-zA-Z.]{1,12}", account in part(), namespace in part(),
                           name in part(), app in part(), cluster in part()) {
            let keys = [
                CacheKey::Infrastructure { kind, account: account.clone(), namespace, name },
                CacheKey::Application { name: app.clone() },
                CacheKey::Cluster { account, application: app, name: cluster },
            ];
            for key in keys {
                prop_assert_eq!(CacheKey::parse(&key.to_string()), Some(key));
            }
        }
    }
}
