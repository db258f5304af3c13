//! Validated names that end up in bucket keys: cluster names, epochs and sequence numbers.
//!
//! Every key component is one of these types, so no input can produce a key outside its
//! cluster's prefix: a cluster name is a DNS-1123 label, an epoch is `<13 digits>-<8 hex>`, and a
//! sequence number is rendered as 16 hex digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Error;

/// A cluster name: `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?` (a DNS-1123 label, at most 63 bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    /// Checks `name` against the cluster-name rule and explains the first violation.
    pub fn new(name: &str) -> Result<Self, Error> {
        check_dns_label("cluster name", name)?;
        Ok(Self(name.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a Spinnaker account name a cluster asks for or a policy grants: the cluster-name rule
/// (a DNS-1123 label), which is also what Spinnaker accepts for account names everywhere. It
/// keeps account names exact in every database: no two valid names compare equal under
/// MySQL's case- and accent-insensitive collations, nor are they a prefix pattern or a path.
pub fn check_account_name(name: &str) -> Result<(), Error> {
    check_dns_label("account name", name)
}

/// `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`, explaining the first violation.
fn check_dns_label(what: &'static str, name: &str) -> Result<(), Error> {
    let invalid = |reason: &str| Error::InvalidName {
        what,
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 63 {
        return Err(invalid("it is longer than 63 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(invalid(&format!(
            "it contains {c:?}; only lower-case letters, digits and '-' are allowed"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(invalid("it must start and end with a letter or digit"));
    }
    Ok(())
}

/// An epoch: one writer's tenure over a cluster's chain, `<unix-ms, 13 digits>-<8 lower hex>`.
///
/// Epochs sort by the time they were started, so the newest epoch is the greatest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(String);

impl Epoch {
    /// Checks `value` against the epoch rule.
    pub fn new(value: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidName {
            what: "epoch",
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let Some((millis, random)) = value.split_once('-') else {
            return Err(invalid("expected <13 digits>-<8 hex digits>"));
        };
        if millis.len() != 13 || !millis.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the time part must be exactly 13 decimal digits"));
        }
        if random.len() != 8
            || !random
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(invalid(
                "the random part must be exactly 8 lower-case hex digits",
            ));
        }
        Ok(Self(value.to_string()))
    }

    /// Builds an epoch from a start time in unix milliseconds and 32 random bits.
    pub fn from_parts(unix_millis: u64, random: u32) -> Result<Self, Error> {
        Self::new(&format!("{unix_millis:013}-{random:08x}"))
    }

    /// The unix time in milliseconds at which this epoch was started.
    pub fn started_at_millis(&self) -> u64 {
        // Validated in `new`: 13 ASCII digits always parse.
        self.0[..13].parse().unwrap_or(0)
    }

    /// The epoch as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Renders a sequence number the way keys carry it: 16 lower-case hex digits.
pub fn seq_key(seq: u64) -> String {
    format!("{seq:016x}")
}

/// Parses the 16-hex-digit sequence number of a key.
pub fn parse_seq_key(text: &str) -> Result<u64, Error> {
    let invalid = |reason: &str| Error::InvalidName {
        what: "sequence number",
        value: text.to_string(),
        reason: reason.to_string(),
    };
    if text.len() != 16 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("expected 16 lower-case hex digits"));
    }
    u64::from_str_radix(text, 16).map_err(|e| invalid(&e.to_string()))
}

macro_rules! string_newtype_traits {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_newtype_traits!(ClusterName);
string_newtype_traits!(Epoch);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cluster_names_follow_dns_labels() {
        for ok in ["a", "prod-eu-1", "0", "a1b2", &"x".repeat(63)] {
            assert!(ClusterName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a/b",
            "..",
            "a b",
            "ä",
            &"x".repeat(64),
        ] {
            let err = ClusterName::new(bad).unwrap_err().to_string();
            assert!(err.contains("cluster name"), "{bad}: {err}");
        }
    }

    #[test]
    fn epochs_round_trip_and_sort_by_time() {
        let a = Epoch::from_parts(1_700_000_000_000, 0xdeadbeef).unwrap();
        let b = Epoch::from_parts(1_700_000_000_001, 0).unwrap();
        assert_eq!(a.as_str(), "1700000000000-deadbeef");
        assert_eq!(a.started_at_millis(), 1_700_000_000_000);
        assert!(a < b);
        for bad in [
            "",
            "1700000000000",
            "170000000000-deadbeef",
            "1700000000000-DEADBEEF",
            "1700000000000-deadbee",
            "1700000000000-deadbeef-",
            "../../x",
            "1700000000000_deadbeef",
        ] {
            assert!(Epoch::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seq_keys_are_fixed_width_hex() {
        assert_eq!(seq_key(1), "0000000000000001");
        assert_eq!(parse_seq_key("00000000000000ff").unwrap(), 255);
        assert!(parse_seq_key("ff").is_err());
        assert!(parse_seq_key("000000000000000G").is_err());
    }

    proptest! {
        #[test]
        fn valid_cluster_names_contain_no_path_characters(s in "\\PC{0,70}") {
            if let Ok(name) = ClusterName::new(&s) {
                prop_assert!(!name.as_str().contains('/'));
                prop_assert!(!name.as_str().contains(".."));
                prop_assert!(name.as_str().len() <= 63);
            }
        }

        #[test]
        fn seq_keys_round_trip(seq in any::<u64>()) {
            prop_assert_eq!(parse_seq_key(&seq_key(seq)).unwrap(), seq);
        }

        #[test]
        fn seq_keys_sort_like_numbers(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(seq_key(a).cmp(&seq_key(b)), a.cmp(&b));
        }
    }
}
