//! The DDL of the indexer's tables: its own `outpost_*` tables, and Clouddriver's per-type
//! `cats_v1_*` tables as its templates define them, per dialect.

use sha2::{Digest, Sha256};

use crate::cache::Dialect;

pub(super) fn column_type(dialect: Dialect, mysql: &str) -> String {
    match dialect {
        Dialect::MySql => mysql.to_string(),
        _ => "TEXT".to_string(),
    }
}

/// Columns added to `outpost_*` tables after their first release, added to older databases by
/// the migration: (table, column, type). Each is nullable; NULL is what an older row means.
pub(super) const ADDED_COLUMNS: [(&str, &str, &str); 1] = [
    // The sha256 of the last applied segment, which lets a reader see a rewritten chain.
    ("outpost_clusters", "sha256", "VARCHAR(255)"),
];

/// The `outpost_*` tables.
pub(super) fn outpost_schema(dialect: Dialect) -> Vec<String> {
    let engine = if dialect == Dialect::MySql {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    } else {
        ""
    };
    let key = column_type(dialect, "VARCHAR(352)");
    let short = column_type(dialect, "VARCHAR(255)");
    let long = column_type(dialect, "LONGTEXT");
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS outpost_clusters (
  cluster {short} NOT NULL PRIMARY KEY,
  account {short} NOT NULL,
  state {short} NOT NULL,
  epoch {short} NULL,
  seq BIGINT NULL,
  snapshot_seq BIGINT NULL,
  head_version {short} NULL,
  head_epoch {short} NULL,
  head_seq BIGINT NULL,
  heartbeat_at BIGINT NULL,
  head_updated_at BIGINT NULL,
  applied_at BIGINT NULL,
  lag_ms BIGINT NULL,
  objects BIGINT NOT NULL,
  kinds {long} NULL,
  identity {long} NULL,
  kube_system_uid {short} NULL,
  ca_fingerprint {short} NULL,
  forbidden_kinds {long} NULL,
  permissions {long} NULL,
  policy_grant {long} NULL,
  error {long} NULL,
  updated_at BIGINT NOT NULL
){engine}"
        ),
        // Which cluster holds each account: the primary key is what makes an account one
        // cluster's at any moment; a row goes when its cluster is evicted or moves.
        format!(
            "CREATE TABLE IF NOT EXISTS outpost_accounts (
  account {short} NOT NULL PRIMARY KEY,
  cluster {short} NOT NULL,
  claimed_at BIGINT NOT NULL
){engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS outpost_resources (
  account {short} NOT NULL,
  cache_id {key} NOT NULL,
  cache_type {short} NOT NULL,
  cluster {short} NOT NULL,
  api_version {short} NOT NULL,
  kind {short} NOT NULL,
  namespace {short} NOT NULL,
  name {short} NOT NULL,
  uid {short} NOT NULL,
  resource_version {short} NOT NULL,
  listed INTEGER NOT NULL,
  cached INTEGER NOT NULL,
  selector {long} NULL,
  template_labels {long} NULL,
  service_refs {long} NULL,
  object {long} NOT NULL,
  PRIMARY KEY (account, cache_id)
){engine}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS outpost_links (
  account {short} NOT NULL,
  declarer_id {key} NOT NULL,
  a_id {key} NOT NULL,
  b_id {key} NOT NULL,
  origin {short} NOT NULL
){engine}"
        ),
        crate::indexer::registration::schema(dialect),
    ]
}

pub(super) fn outpost_indexes(dialect: Dialect) -> Vec<String> {
    let (if_not_exists, prefix) = match dialect {
        Dialect::MySql => ("", ""),
        _ => ("IF NOT EXISTS ", ""),
    };
    [
        (
            "outpost_resources_ns_idx",
            "outpost_resources",
            "account, namespace, cache_type",
        ),
        (
            "outpost_links_declarer_idx",
            "outpost_links",
            "account, declarer_id",
        ),
        ("outpost_links_a_idx", "outpost_links", "account, a_id"),
        ("outpost_links_b_idx", "outpost_links", "account, b_id"),
    ]
    .iter()
    .map(|(name, table, columns)| {
        format!("CREATE INDEX {if_not_exists}{prefix}{name} ON {table} ({columns})")
    })
    .collect()
}

/// `CREATE TABLE ... LIKE` Clouddriver's template (contract §2.1, `SqlUtil.createTableLike`).
pub(super) fn create_like(dialect: Dialect, table: &str, rel: bool) -> String {
    let template = if rel {
        "cats_v1_rel_template"
    } else {
        "cats_v1_resource_template"
    };
    match dialect {
        Dialect::MySql => format!("CREATE TABLE IF NOT EXISTS {table} LIKE {template}"),
        Dialect::Postgres => {
            format!("CREATE TABLE IF NOT EXISTS {table} (LIKE {template} INCLUDING ALL)")
        }
        // SQLite has no LIKE: its templates (if any) came from us, never from Clouddriver.
        Dialect::Sqlite => cats_ddl(dialect, table, rel).remove(0),
    }
}

/// DDL equivalent to Clouddriver's templates (contract §2.3, §2.4) for one per-type table.
/// Index names carry the table's name: on PostgreSQL and SQLite they share one namespace.
pub(super) fn cats_ddl(dialect: Dialect, table: &str, rel: bool) -> Vec<String> {
    let index = |suffix: &str| -> String {
        // Index names must stay within the identifier limit too.
        let name = format!("{table}_{suffix}");
        if name.len() <= 63 {
            name
        } else {
            let digest = Sha256::digest(name.as_bytes());
            format!(
                "{}_{}",
                &table[..table.len().min(40)],
                &hex::encode(digest)[..16]
            )
        }
    };
    match (dialect, rel) {
        (Dialect::MySql, false) => vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (
  id VARCHAR(352) NOT NULL,
  agent VARCHAR(127) NOT NULL,
  application VARCHAR(255) NULL,
  body_hash CHAR(64) NOT NULL,
  body LONGTEXT NOT NULL,
  last_updated BIGINT NOT NULL,
  PRIMARY KEY (id, agent),
  KEY agent_body_hash_idx (agent, body_hash),
  KEY resource_last_updated_idx (last_updated),
  KEY application_idx (application)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )],
        (Dialect::MySql, true) => vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (
  uuid CHAR(26) NOT NULL PRIMARY KEY,
  id VARCHAR(352) NOT NULL,
  rel_id VARCHAR(352) NOT NULL,
  rel_agent VARCHAR(127) NOT NULL,
  rel_type VARCHAR(64) NULL,
  last_updated BIGINT NULL,
  KEY id_idx (id),
  KEY rel_agent_idx (rel_agent),
  KEY rel_type_idx (rel_type),
  KEY rel_ids_type_idx (id, rel_type, rel_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )],
        (_, false) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
  id TEXT NOT NULL,
  agent TEXT NOT NULL,
  body_hash VARCHAR(64) NOT NULL,
  body TEXT NOT NULL,
  last_updated BIGINT NOT NULL,
  application TEXT NULL,
  PRIMARY KEY (id, agent)
)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (agent, body_hash)",
                index("agent_body_hash_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (last_updated)",
                index("last_updated_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (application)",
                index("application_idx")
            ),
        ],
        (_, true) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
  uuid VARCHAR(26) NOT NULL PRIMARY KEY,
  id TEXT NOT NULL,
  rel_id TEXT NOT NULL,
  rel_agent TEXT NOT NULL,
  rel_type TEXT NULL,
  last_updated BIGINT NULL
)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (id)",
                index("id_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (rel_agent)",
                index("rel_agent_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (rel_type)",
                index("rel_type_idx")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} (id, rel_type, rel_id)",
                index("rel_ids_type_idx")
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_stay_within_postgres_limits() {
        let table = format!("cats_v1_{}", "x".repeat(55));
        for statement in cats_ddl(Dialect::Postgres, &table, true) {
            if let Some(rest) = statement.strip_prefix("CREATE INDEX IF NOT EXISTS ") {
                let name = rest.split(' ').next().unwrap();
                assert!(name.len() <= 63, "{name}");
            }
        }
    }
}
