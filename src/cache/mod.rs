//! Turns Kubernetes manifests into exactly the rows Clouddriver's `KubernetesCoreCachingAgent`
//! writes to its SQL cache (pure: no I/O, no SQL); "The cache contract" in `docs/CLOUDDRIVER.md`
//! is the specification.

pub mod account;
pub mod body;
pub mod definition;
pub mod keys;
pub mod kinds;
pub mod moniker;
pub mod names;
pub mod relationships;
pub mod resource;

pub use account::{CacheRow, build_account};
pub use body::{
    Attributes, CacheData, InfrastructureAttributes, body_hash, canonical_json, core_agent_name,
};
pub use keys::{CacheKey, application_key, cluster_key, infrastructure_key};
pub use kinds::{KubernetesKind, SpinnakerKind};
pub use moniker::{FriggaNames, Moniker};
pub use names::{Dialect, check_agent_name, rel_table, resource_table};
pub use relationships::{LogicalLinks, account_links, selector_matches};
pub use resource::{
    CacheOptions, DEFAULT_MAX_SELECTOR_LINKS, KindFilter, OwnerReference, Resource, SelectorBound,
};

/// What went wrong while naming tables or agents or reading a manifest; each variant names the
/// offending value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `sql.table-namespace` is not `^\w+$`.
    #[error("invalid sql.table-namespace {namespace:?}: {reason}")]
    TableNamespace { namespace: String, reason: String },
    /// A table name cannot fit the dialect's limit (the table namespace is too long).
    #[error("cannot name table {name:?}: {reason}")]
    TableName { name: String, reason: String },
    /// An agent name's first `:` is too far in to shorten it.
    #[error("cannot shorten agent name {agent:?}: {reason}")]
    AgentName { agent: String, reason: String },
    /// A manifest lacks what caching needs (`apiVersion`, `kind`, `metadata.name`, ...).
    #[error("cannot read manifest {object}: {reason}")]
    ParseManifest { object: String, reason: String },
}
