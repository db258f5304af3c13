//! Clouddriver's SQL table and agent names (`SqlNames.kt`), including the MurmurHash3 shortening
//! that keeps them within each database's identifier limits.

use super::Error;

/// The SQL database a cache is written to; it decides identifier limits and case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: 63-character identifiers, unquoted names fold to lower case.
    Postgres,
    /// MySQL or MariaDB: 64-character table names, case kept, 127-character agent names.
    MySql,
    /// SQLite (not supported by Clouddriver; for trying Outpost out): treated like MySQL.
    Sqlite,
}

impl Dialect {
    /// The longest table name Clouddriver allows (`SqlConstraints.maxTableNameLength`). SQLite has
    /// no Clouddriver default; 64 is used, like MySQL [inferred].
    pub fn max_table_name_length(self) -> usize {
        match self {
            Dialect::Postgres => 63,
            Dialect::MySql | Dialect::Sqlite => 64,
        }
    }

    /// The longest `agent` column value before `check_agent_name` shortens it: 127 on MySQL (and
    /// SQLite, by analogy [inferred]), unlimited on PostgreSQL.
    pub fn max_agent_length(self) -> Option<usize> {
        match self {
            Dialect::Postgres => None,
            Dialect::MySql | Dialect::Sqlite => Some(127),
        }
    }

    /// The longest cache id Clouddriver writes (`maxIdLength`): longer items are dropped, not
    /// truncated. 352 on MySQL (and SQLite [inferred]), unlimited on PostgreSQL.
    pub fn max_id_length(self) -> Option<usize> {
        match self {
            Dialect::Postgres => None,
            Dialect::MySql | Dialect::Sqlite => Some(352),
        }
    }
}

/// The table-name prefix for schema version 1.
const PREFIX: &str = "cats_v1_";

/// Replaces every character outside `[A-Za-z0-9_]` with `_`, as `SqlNames.sanitizeType` does.
pub fn sanitize_type(type_name: &str) -> String {
    type_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The resource table of a cache type, e.g. `cats_v1_replicaSet` (MySQL) or `cats_v1_replicaset`
/// (PostgreSQL, where Clouddriver's unquoted identifiers fold to lower case; the hash, when one is
/// needed, is taken on the mixed-case name first).
pub fn resource_table(
    type_name: &str,
    dialect: Dialect,
    table_namespace: Option<&str>,
) -> Result<String, Error> {
    table_name(type_name, "", dialect, table_namespace)
}

/// The relationship table of a cache type, e.g. `cats_v1_replicaSet_rel`; same rules as
/// [`resource_table`].
pub fn rel_table(
    type_name: &str,
    dialect: Dialect,
    table_namespace: Option<&str>,
) -> Result<String, Error> {
    table_name(type_name, "_rel", dialect, table_namespace)
}

fn table_name(
    type_name: &str,
    suffix: &str,
    dialect: Dialect,
    table_namespace: Option<&str>,
) -> Result<String, Error> {
    if let Some(namespace) = table_namespace {
        check_table_namespace(namespace)?;
    }
    let name = check_table_name(
        PREFIX,
        &sanitize_type(type_name),
        suffix,
        dialect.max_table_name_length(),
        table_namespace,
    )?;
    Ok(match dialect {
        Dialect::Postgres => name.to_ascii_lowercase(),
        Dialect::MySql | Dialect::Sqlite => name,
    })
}

/// `sql.table-namespace` must match `^\w+$`, where Java's `\w` is `[A-Za-z0-9_]`.
fn check_table_namespace(namespace: &str) -> Result<(), Error> {
    if namespace.is_empty()
        || !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::TableNamespace {
            namespace: namespace.to_string(),
            reason: "it must match ^\\w+$ (letters, digits and '_')".to_string(),
        });
    }
    Ok(())
}

/// `SqlNames.checkTableName`: `base + name + suffix` when shorter than `max`, otherwise a prefix of
/// `name`, the first 16 hex digits of the name's hash, and the suffix if it still fits. `name` is
/// already sanitized, so lengths in characters and bytes agree.
fn check_table_name(
    prefix: &str,
    name: &str,
    suffix: &str,
    max: usize,
    table_namespace: Option<&str>,
) -> Result<String, Error> {
    let base = match table_namespace {
        Some(namespace) => format!("{prefix}{namespace}_"),
        None => prefix.to_string(),
    };
    let table = format!("{base}{name}{suffix}");
    if table.len() < max {
        return Ok(table);
    }
    let too_long = || Error::TableName {
        name: table.clone(),
        reason: format!(
            "it cannot be shortened to {max} characters (is sql.table-namespace {table_namespace:?} too long?)"
        ),
    };
    let digest = murmur3_hex(format!("{name}{suffix}").as_bytes());
    let hash = &digest[..16];
    // Kotlin: available = max - base - suffix - 16 - 1, then name.substring(0..available).
    let available = max as i64 - base.len() as i64 - suffix.len() as i64 - 16 - 1;
    let keep = |count: i64| -> Result<&str, Error> {
        let count = usize::try_from(count).map_err(|_| too_long())?;
        name.get(..count).ok_or_else(too_long)
    };
    if available >= 0 {
        return Ok(format!("{base}{}{hash}{suffix}", keep(available + 1)?));
    }
    if available + suffix.len() as i64 >= 0 {
        return Ok(format!(
            "{base}{}{hash}",
            keep(available + suffix.len() as i64 + 1)?
        ));
    }
    Err(too_long())
}

/// `SqlNames.checkAgentName`: an agent name longer than the dialect's limit keeps its start (at
/// least up to its first `:`) and ends with (a prefix of) its 32-hex-digit hash. Lengths are
/// counted in characters; Kotlin counts UTF-16 units, which differ only outside the BMP
/// [inferred].
pub fn check_agent_name(agent: &str, dialect: Dialect) -> Result<String, Error> {
    let Some(max) = dialect.max_agent_length() else {
        return Ok(agent.to_string());
    };
    let chars: Vec<char> = agent.chars().collect();
    if chars.len() <= max {
        return Ok(agent.to_string());
    }
    let colon = chars.iter().position(|&c| c == ':');
    if colon.is_some_and(|index| index + 2 > max) {
        return Err(Error::AgentName {
            agent: agent.to_string(),
            reason: format!("its first ':' is past position {}", max - 2),
        });
    }
    let hash = murmur3_hex(agent.as_bytes());
    // Kotlin: available = max(max - 32 - 1, colIdx); hashLength = min(32, max - colIdx - 1),
    // where colIdx is -1 without a colon.
    let available = match colon {
        Some(index) => (max - 33).max(index),
        None => max - 33,
    };
    let hash_length = match colon {
        Some(index) => 32.min(max - index - 1),
        None => 32,
    };
    let head: String = chars[..=available].iter().collect();
    Ok(format!("{head}{}", &hash[..hash_length]))
}

/// MurmurHash3 x64_128 of `data` with seed 0, as lowercase hex of `h1` then `h2`, each
/// little-endian: the text of Guava's `Hashing.murmur3_128().hashBytes(data).toString()`.
pub fn murmur3_hex(data: &[u8]) -> String {
    hex::encode(murmur3_x64_128(data, 0))
}

/// MurmurHash3 x64_128 (Austin Appleby's reference algorithm, as in Guava's
/// `Murmur3_128HashFunction`): the 16 output bytes are `h1` little-endian then `h2` little-endian.
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> [u8; 16] {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mix_k1 = |k1: u64| k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
    let mix_k2 = |k2: u64| k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);

    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);
    let mut blocks = data.chunks_exact(16);
    for block in blocks.by_ref() {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&block[..8]);
        hi.copy_from_slice(&block[8..]);
        h1 ^= mix_k1(u64::from_le_bytes(lo));
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(u64::from_le_bytes(hi));
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k1 = 0u64;
        let mut k2 = 0u64;
        for (index, &byte) in tail.iter().enumerate() {
            if index < 8 {
                k1 |= u64::from(byte) << (8 * index);
            } else {
                k2 |= u64::from(byte) << (8 * (index - 8));
            }
        }
        if tail.len() > 8 {
            h2 ^= mix_k2(k2);
        }
        h1 ^= mix_k1(k1);
    }

    let length = data.len() as u64;
    h1 ^= length;
    h2 ^= length;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);

    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h1.to_le_bytes());
    out[8..].copy_from_slice(&h2.to_le_bytes());
    out
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mysql(name: &str, suffix: &str) -> String {
        check_table_name(PREFIX, name, suffix, 64, None).unwrap()
    }

    #[test]
    fn sql_names_test_vectors() {
        let long = "abcdefghij".repeat(10);
        assert_eq!(mysql("hello", ""), "cats_v1_hello");
        assert_eq!(mysql("hello", "world"), "cats_v1_helloworld");
        assert_eq!(
            mysql(&long, ""),
            "cats_v1_abcdefghijabcdefghijabcdefghijabcdefghijaa7d0fee7e891a66"
        );
        assert_eq!(
            mysql(&long, "_rel"),
            "cats_v1_abcdefghijabcdefghijabcdefghijabcdef9246690b33571ecc_rel"
        );
        assert_eq!(
            mysql(&long, &"suffix".repeat(10)),
            "cats_v1_abcdefghijabcdefghijabcdefghijabcdefghijfe546a736182e553"
        );
    }

    #[test]
    fn agent_name_vectors() {
        let unit = "abcdefghij";
        assert_eq!(
            check_agent_name("myagent", Dialect::MySql).unwrap(),
            "myagent"
        );
        assert_eq!(
            check_agent_name(&unit.repeat(20), Dialect::MySql).unwrap(),
            format!("{}bb43b982e477772faa2e899f65d0a86b", &unit.repeat(20)[..95])
        );
        assert_eq!(
            check_agent_name(
                &format!("{}:{}", unit.repeat(10), unit.repeat(10)),
                Dialect::MySql
            )
            .unwrap(),
            format!("{}:20f5a9d8d3f4f18cfec8a40eda", unit.repeat(10))
        );
        assert_eq!(
            check_agent_name(&format!("{unit}:{}", unit.repeat(20)), Dialect::MySql).unwrap(),
            "abcdefghij:abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd5bfa5c163877f247769cd6b488dff339"
        );
        assert!(matches!(
            check_agent_name(&format!("{}:{unit}", unit.repeat(20)), Dialect::MySql),
            Err(Error::AgentName { .. })
        ));
        // PostgreSQL has no agent length limit.
        assert_eq!(
            check_agent_name(&unit.repeat(20), Dialect::Postgres).unwrap(),
            unit.repeat(20)
        );
    }

    #[test]
    fn inferred_examples_from_the_contract() {
        let cases = [
            (
                "replicaSet",
                "cats_v1_replicaSet",
                "cats_v1_replicaSet_rel",
                "cats_v1_replicaset",
                "cats_v1_replicaset_rel",
            ),
            (
                "Rollout.argoproj.io",
                "cats_v1_Rollout_argoproj_io",
                "cats_v1_Rollout_argoproj_io_rel",
                "cats_v1_rollout_argoproj_io",
                "cats_v1_rollout_argoproj_io_rel",
            ),
            (
                "onDemand",
                "cats_v1_onDemand",
                "cats_v1_onDemand_rel",
                "cats_v1_ondemand",
                "cats_v1_ondemand_rel",
            ),
            (
                "VeryLongCustomResourceKindName.subgroup.example.org",
                "cats_v1_VeryLongCustomResourceKindName_subgroup_example_org",
                "cats_v1_VeryLongCustomResourceKindName_subgroup_example_org_rel",
                "cats_v1_verylongcustomresourcekindname_subgroup_example_org",
                "cats_v1_verylongcustomresourcekindname_subge3f49c4eccda7c68_rel",
            ),
        ];
        for (type_name, my_resource, my_rel, pg_resource, pg_rel) in cases {
            assert_eq!(
                resource_table(type_name, Dialect::MySql, None).unwrap(),
                my_resource
            );
            assert_eq!(rel_table(type_name, Dialect::MySql, None).unwrap(), my_rel);
            assert_eq!(
                resource_table(type_name, Dialect::Postgres, None).unwrap(),
                pg_resource
            );
            assert_eq!(
                rel_table(type_name, Dialect::Postgres, None).unwrap(),
                pg_rel
            );
            assert_eq!(
                resource_table(type_name, Dialect::Sqlite, None).unwrap(),
                my_resource
            );
        }
        assert_eq!(pg_rel_len(), 63);
    }

    fn pg_rel_len() -> usize {
        rel_table(
            "VeryLongCustomResourceKindName.subgroup.example.org",
            Dialect::Postgres,
            None,
        )
        .unwrap()
        .len()
    }

    #[test]
    fn table_namespace_is_validated_and_used() {
        assert_eq!(
            resource_table("pod", Dialect::MySql, Some("blue")).unwrap(),
            "cats_v1_blue_pod"
        );
        for bad in ["", "a-b", "a b", "x;drop"] {
            assert!(matches!(
                resource_table("pod", Dialect::MySql, Some(bad)),
                Err(Error::TableNamespace { .. })
            ));
        }
        let huge = "n".repeat(60);
        assert!(matches!(
            rel_table("pod", Dialect::MySql, Some(&huge)),
            Err(Error::TableName { .. })
        ));
    }

    #[test]
    fn murmur3_known_values() {
        // The empty input with seed 0 hashes to zero in the reference implementation.
        assert_eq!(murmur3_hex(b""), "0".repeat(32));
        // One full block plus a tail longer than 8 bytes exercises every branch.
        assert_eq!(
            murmur3_hex("abcdefghij".repeat(10).as_bytes())[..16].to_string(),
            "aa7d0fee7e891a66"
        );
    }

    proptest! {
        #[test]
        fn table_names_are_safe_identifiers(type_name in any::<String>(), rel in any::<bool>()) {
            for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
                let name = if rel {
                    rel_table(&type_name, dialect, None)
                } else {
                    resource_table(&type_name, dialect, None)
                }
                .unwrap();
                prop_assert!(name.len() <= dialect.max_table_name_length());
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                prop_assert!(name.starts_with(PREFIX));
            }
        }

        #[test]
        fn agent_names_fit(agent in "[a-z0-9:/\\[\\]-]{0,300}") {
            match check_agent_name(&agent, Dialect::MySql) {
                Ok(name) => prop_assert!(name.chars().count() <= 127),
                Err(_) => prop_assert!(agent.find(':').is_some_and(|i| i > 125)),
            }
        }
    }
}
