//! Durations as settings write them (`500ms`, `15s`, `5m`, `1h30m`), for `outpost agent` and
//! `outpost index` alike.
//!
//! This is our own parser rather than `humantime`'s: humantime also accepts spaces between parts
//! (`1h 30m`), repeated or out-of-order units (`1s1s`, `1m1h`) and other unit spellings, which
//! the settings refuse today so that each value has one spelling.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

const UNITS: &[(&str, u128)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Parses a duration such as `15s`, `5m`, `1h30m` or `500ms`: whole numbers, each with a unit
/// (`d`, `h`, `m`, `s`, `ms`, `us`, `ns`), largest unit first, no spaces.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXAMPLES: &str = "e.g. 15s, 5m, 1h30m or 500ms";
    if text.is_empty() {
        return Err(format!("empty duration; expected {EXAMPLES}"));
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration: expected a whole number at {rest:?} ({EXAMPLES})"
            ));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?} is too long a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("{text:?} is not a duration: the number needs a unit ({EXAMPLES})")
            } else if unit.starts_with('.') {
                format!(
                    "{text:?} is not a duration: no fractions, use smaller units (e.g. 1m30s, 1500ms)"
                )
            } else {
                format!(
                    "{text:?} is not a duration: unknown unit {unit:?} (use d, h, m, s, ms, us or ns; {EXAMPLES})"
                )
            });
        };
        if previous_unit.is_some_and(|previous| index <= previous) {
            return Err(format!(
                "{text:?} is not a duration: write each unit once, largest first (e.g. 1h30m)"
            ));
        }
        previous_unit = Some(index);
        nanos = number
            .checked_mul(UNITS[index].1)
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000)
        .map_err(|_| format!("{text:?} is too long a duration"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Writes a duration as [`parse_duration`] reads it: `15s`, `1h30m`, `500ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (name, size) in UNITS {
        let count = nanos / size;
        if count > 0 {
            text.push_str(&format!("{count}{name}"));
            nanos %= size;
        }
    }
    text
}

/// Serde for `Option<Duration>` written as `15s`, `1h30m`…
pub mod optional_duration {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
    }

    struct Text(Duration);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visitor)
        }
    }

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = Text;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 15s, 5m, 1h30m or 500ms")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
            parse_duration(v).map(Text).map_err(E::custom)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
            Err(E::custom(format!(
                "{v} has no unit; write e.g. {v}s or {v}m"
            )))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
            Err(E::custom(format!(
                "{v} is not a duration; write e.g. 15s, 5m or 1h30m"
            )))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
            Err(E::custom(format!(
                "{v} is not a duration; write e.g. 15s, 5m or 1h30m"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_and_garbage_is_refused() {
        for (text, duration) in [
            ("15s", Duration::from_secs(15)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1d2h3m4s5ms6us7ns", Duration::new(93_784, 5_006_007)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text).unwrap(), duration, "{text}");
            assert_eq!(format_duration(duration), text);
        }
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        for garbage in [
            "",
            "15",
            "s",
            "1.5h",
            "-5s",
            "5 m",
            "1m1h",
            "1s1s",
            "5x",
            "1h 30m",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(garbage).is_err(), "{garbage:?} accepted");
        }
        assert!(parse_duration("15").unwrap_err().contains("unit"));
        assert!(parse_duration("1.5h").unwrap_err().contains("fractions"));
    }
}
