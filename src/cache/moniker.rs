//! Spinnaker monikers of Kubernetes objects (`KubernetesManifestAnnotater.getMoniker`), with
//! frigga's name parsing (`Names.parseName`) as the fallback.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// `moniker.spinnaker.io/application`.
pub const APPLICATION_ANNOTATION: &str = "moniker.spinnaker.io/application";
/// `moniker.spinnaker.io/cluster`.
pub const CLUSTER_ANNOTATION: &str = "moniker.spinnaker.io/cluster";
/// `moniker.spinnaker.io/stack`.
pub const STACK_ANNOTATION: &str = "moniker.spinnaker.io/stack";
/// `moniker.spinnaker.io/detail`.
pub const DETAIL_ANNOTATION: &str = "moniker.spinnaker.io/detail";
/// `moniker.spinnaker.io/sequence`.
pub const SEQUENCE_ANNOTATION: &str = "moniker.spinnaker.io/sequence";
/// `deployment.kubernetes.io/revision`: a replica set's sequence when it has no sequence
/// annotation.
pub const DEPLOYMENT_REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

// frigga NameConstants: NAME_CHARS = a-zA-Z0-9._, NAME_HYPHEN_CHARS = -a-zA-Z0-9._,
// PUSH_FORMAT = v([0-9]{3}). Java's matches() anchors the whole input, hence ^...$.
static PUSH_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([-a-zA-Z0-9._]*)-(v([0-9]{3}))$").ok());
static NAME_PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9._]+)(?:-([a-zA-Z0-9._]*)(?:-([-a-zA-Z0-9._]*?))?)?$").ok()
});
// KubernetesResourceAwareNames.PUSH_PATTERN is "^([system:].*)-(v([0-9]{3}))$": `[system:]` is a
// one-character class, and Java's `.` stops at any line terminator.
static SYSTEM_PUSH_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new("^([system:][^\n\r\u{85}\u{2028}\u{2029}]*)-(v([0-9]{3}))$").ok());

/// A Spinnaker moniker: the five fields Clouddriver's `Moniker` has. It serializes with absent
/// fields omitted and `sequence` as an integer, as the cache body needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Moniker {
    /// The application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The detail (annotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The stack (annotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The sequence (version) number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i32>,
}

impl Moniker {
    /// Derives the moniker of an object from its name and annotations, as Clouddriver's
    /// `KubernetesManifestAnnotater.getMoniker` does:
    /// - `app`/`cluster` from the moniker annotations, else from the parsed name;
    /// - `stack`/`detail` from the annotations only (Clouddriver ignores frigga's stack and
    ///   detail);
    /// - `sequence` from `moniker.spinnaker.io/sequence`, else (replica sets only)
    ///   `deployment.kubernetes.io/revision`, else the name's `-vNNN`.
    ///
    /// An annotation that is present but does not parse gives no value rather than the fallback,
    /// as in Clouddriver.
    pub fn derive(
        name: Option<&str>,
        annotations: &BTreeMap<String, String>,
        is_replica_set: bool,
    ) -> Moniker {
        let parsed = ResourceAwareNames::parse(name);
        let string = |key: &str, default: Option<String>| match annotations.get(key) {
            Some(value) => annotation_string(value),
            None => default,
        };
        let integer = |key: &str, default: Option<i32>| match annotations.get(key) {
            Some(value) => annotation_integer(value),
            None => default,
        };
        let default_sequence = if is_replica_set {
            integer(DEPLOYMENT_REVISION_ANNOTATION, parsed.sequence)
        } else {
            parsed.sequence
        };
        Moniker {
            app: string(APPLICATION_ANNOTATION, parsed.app),
            cluster: string(CLUSTER_ANNOTATION, parsed.cluster),
            detail: string(DETAIL_ANNOTATION, None),
            stack: string(STACK_ANNOTATION, None),
            sequence: integer(SEQUENCE_ANNOTATION, default_sequence),
        }
    }
}

/// Java's `String.trim()`: strips characters up to U+0020 from both ends.
fn java_trim(value: &str) -> &str {
    value.trim_matches(|c: char| c <= ' ')
}

/// The JSON value at the start of `text`, with anything after it ignored, as Jackson's
/// `readValue` does by default (`FAIL_ON_TRAILING_TOKENS` off). Like Jackson, a number must be
/// followed by a separator, so `3abc` is an error.
fn first_json_value(text: &str) -> Option<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()
}

/// A string annotation as Clouddriver reads it: the raw value, unless it looks like a JSON
/// string (at least two characters, starting and ending with `"`), in which case it is
/// JSON-decoded; a value that fails to decode gives `None`.
pub fn annotation_string(value: &str) -> Option<String> {
    let quoted = value.chars().count() > 1 && value.starts_with('"') && value.ends_with('"');
    if !quoted {
        return Some(value.to_string());
    }
    match first_json_value(value)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    }
}

/// An integer annotation read the way Jackson reads an `Integer` with default settings [inferred
/// from Jackson's defaults, not run]: a JSON integer in range, a JSON float truncated toward zero
/// (`ACCEPT_FLOAT_AS_INT`), or a JSON string holding a decimal integer (scalar coercion);
/// anything else, `null` included, gives `None`.
pub fn annotation_integer(value: &str) -> Option<i32> {
    match first_json_value(value)? {
        serde_json::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                i32::try_from(integer).ok()
            } else if number.is_u64() {
                None
            } else {
                let float = number.as_f64()?.trunc();
                (float >= f64::from(i32::MIN) && float <= f64::from(i32::MAX))
                    .then_some(float as i32)
            }
        }
        serde_json::Value::String(text) => {
            let text = java_trim(&text);
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse::<i32>().ok()
        }
        _ => None,
    }
}

/// A boolean annotation read the way Jackson reads a `Boolean` with default settings [inferred]:
/// JSON `true`/`false`, a JSON integer (non-zero is true), or a JSON string `true`/`True`/`TRUE`
/// (or the same spellings of false); anything else gives `None`.
pub fn annotation_boolean(value: &str) -> Option<bool> {
    match first_json_value(value)? {
        serde_json::Value::Bool(flag) => Some(flag),
        serde_json::Value::Number(number) if number.is_i64() || number.is_u64() => {
            Some(number.as_f64() != Some(0.0))
        }
        serde_json::Value::String(text) => match java_trim(&text) {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The parts of a name frigga's `Names.parseName` finds (Asgard naming:
/// `app-stack-detail-v000`). A name that does not match leaves every part `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FriggaNames {
    /// The whole name, when it parsed.
    pub group: Option<String>,
    /// The name without its `-vNNN` push suffix.
    pub cluster: Option<String>,
    /// The text before the first `-`.
    pub app: Option<String>,
    /// The second `-`-separated part, if not empty.
    pub stack: Option<String>,
    /// Everything after the stack, if not empty.
    pub detail: Option<String>,
    /// The push suffix, e.g. `v003`.
    pub push: Option<String>,
    /// The push number, e.g. 3.
    pub sequence: Option<i32>,
}

impl FriggaNames {
    /// Parses `name` exactly like frigga's `Names` constructor (`PUSH_PATTERN`, then
    /// `NAME_PATTERN` on what precedes the push suffix).
    pub fn parse(name: Option<&str>) -> FriggaNames {
        let Some(name) = name.filter(|n| !java_trim(n).is_empty()) else {
            return FriggaNames::default();
        };
        let (Some(push_pattern), Some(name_pattern)) = (&*PUSH_PATTERN, &*NAME_PATTERN) else {
            return FriggaNames::default();
        };
        let push = push_pattern.captures(name);
        let the_cluster = match &push {
            Some(captures) => captures.get(1).map_or("", |m| m.as_str()),
            None => name,
        };
        let Some(parts) = name_pattern.captures(the_cluster) else {
            return FriggaNames::default();
        };
        let non_empty = |index: usize| {
            parts
                .get(index)
                .map(|m| m.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        FriggaNames {
            group: Some(name.to_string()),
            cluster: Some(the_cluster.to_string()),
            app: parts.get(1).map(|m| m.as_str().to_string()),
            stack: non_empty(2),
            detail: non_empty(3),
            push: push
                .as_ref()
                .and_then(|c| c.get(2))
                .map(|m| m.as_str().to_string()),
            sequence: push
                .as_ref()
                .and_then(|c| c.get(3))
                .and_then(|m| m.as_str().parse().ok()),
        }
    }
}

/// Clouddriver's `KubernetesResourceAwareNames`: frigga's parse, except that names starting with
/// `system:` get app `system` and the whole name (less any `-vNNN`) as cluster.
struct ResourceAwareNames {
    app: Option<String>,
    cluster: Option<String>,
    sequence: Option<i32>,
}

impl ResourceAwareNames {
    fn parse(name: Option<&str>) -> ResourceAwareNames {
        if let Some(name) = name.filter(|n| !java_trim(n).is_empty() && n.starts_with("system:")) {
            let push = SYSTEM_PUSH_PATTERN
                .as_ref()
                .and_then(|pattern| pattern.captures(name));
            let cluster = push
                .as_ref()
                .and_then(|c| c.get(1))
                .map_or(name, |m| m.as_str());
            return ResourceAwareNames {
                app: Some("system".to_string()),
                cluster: Some(cluster.to_string()),
                sequence: push
                    .as_ref()
                    .and_then(|c| c.get(3))
                    .and_then(|m| m.as_str().parse().ok()),
            };
        }
        let parsed = FriggaNames::parse(name);
        ResourceAwareNames {
            app: parsed.app,
            cluster: parsed.cluster,
            sequence: parsed.sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> FriggaNames {
        FriggaNames::parse(Some(name))
    }

    fn moniker(name: &str, annotations: &[(&str, &str)], replica_set: bool) -> Moniker {
        let annotations = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Moniker::derive(Some(name), &annotations, replica_set)
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    #[test]
    fn frigga_examples() {
        let parsed = names("myapp-v003");
        assert_eq!(parsed.app, s("myapp"));
        assert_eq!(parsed.cluster, s("myapp"));
        assert_eq!(parsed.push, s("v003"));
        assert_eq!(parsed.sequence, Some(3));
        assert_eq!(parsed.stack, None);

        let parsed = names("myapp-stack-detail-v010");
        assert_eq!(parsed.app, s("myapp"));
        assert_eq!(parsed.cluster, s("myapp-stack-detail"));
        assert_eq!(parsed.stack, s("stack"));
        assert_eq!(parsed.detail, s("detail"));
        assert_eq!(parsed.sequence, Some(10));

        let parsed = names("myapp-staging");
        assert_eq!(parsed.app, s("myapp"));
        assert_eq!(parsed.stack, s("staging"));
        assert_eq!(parsed.cluster, s("myapp-staging"));
        assert_eq!(parsed.sequence, None);

        let parsed = names("myapp--detail-with-dashes");
        assert_eq!(parsed.stack, None);
        assert_eq!(parsed.detail, s("detail-with-dashes"));

        // frigga's own examples: a push without cluster text, and a version that is not 3 digits.
        assert_eq!(names("app-v1").cluster, s("app-v1"));
        assert_eq!(names("app-v1").sequence, None);
        assert_eq!(names("nccp-v0100").stack, s("v0100"));

        for bad in ["", "  ", "my app", "myapp:x", "-v003", "é"] {
            assert_eq!(names(bad), FriggaNames::default(), "{bad:?}");
        }
        assert_eq!(FriggaNames::parse(None), FriggaNames::default());
    }

    #[test]
    fn moniker_from_name() {
        assert_eq!(
            moniker("myapp-v003", &[], false),
            Moniker {
                app: s("myapp"),
                cluster: s("myapp"),
                sequence: Some(3),
                ..Moniker::default()
            }
        );
        // Clouddriver takes no stack or detail from the name.
        assert_eq!(
            moniker("myapp-stack-detail-v010", &[], false),
            Moniker {
                app: s("myapp"),
                cluster: s("myapp-stack-detail"),
                sequence: Some(10),
                ..Moniker::default()
            }
        );
        assert_eq!(moniker("my app", &[], false), Moniker::default());
    }

    #[test]
    fn system_names() {
        let m = moniker("system:coredns", &[], false);
        assert_eq!(
            (m.app, m.cluster, m.sequence),
            (s("system"), s("system:coredns"), None)
        );
        let m = moniker(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient-v003",
            &[],
            false,
        );
        assert_eq!(m.app, s("system"));
        assert_eq!(
            m.cluster,
            s("system:certificates.k8s.io:certificatesigningrequests:nodeclient")
        );
        assert_eq!(m.sequence, Some(3));
    }

    #[test]
    fn moniker_from_annotations() {
        let m = moniker(
            "frontend-6d4cf56db6",
            &[
                (APPLICATION_ANNOTATION, "shop"),
                (CLUSTER_ANNOTATION, "\"deployment frontend\""),
                (STACK_ANNOTATION, "prod"),
                (DETAIL_ANNOTATION, "\"\""),
                (SEQUENCE_ANNOTATION, "7"),
                (DEPLOYMENT_REVISION_ANNOTATION, "4"),
            ],
            true,
        );
        assert_eq!(
            m,
            Moniker {
                app: s("shop"),
                cluster: s("deployment frontend"),
                detail: s(""),
                stack: s("prod"),
                sequence: Some(7),
            }
        );
        // The revision stands in for the sequence of replica sets only.
        assert_eq!(
            moniker("web-abc", &[(DEPLOYMENT_REVISION_ANNOTATION, "4")], true).sequence,
            Some(4)
        );
        assert_eq!(
            moniker("web-v002", &[(DEPLOYMENT_REVISION_ANNOTATION, "4")], false).sequence,
            Some(2)
        );
        // A present but unparsable annotation gives nothing, not the fallback.
        assert_eq!(
            moniker("web-v002", &[(SEQUENCE_ANNOTATION, "two")], false).sequence,
            None
        );
        assert_eq!(
            moniker("web-v002", &[(APPLICATION_ANNOTATION, "\"a\\q\"")], false).app,
            None
        );
    }

    #[test]
    fn annotation_parsing() {
        assert_eq!(annotation_string("\""), s("\""));
        assert_eq!(annotation_string("\"a\" trailing \""), s("a"));
        assert_eq!(annotation_string("plain \"x\""), s("plain \"x\""));
        assert_eq!(annotation_integer("3"), Some(3));
        assert_eq!(annotation_integer(" 3 trailing"), Some(3));
        assert_eq!(annotation_integer("3abc"), None);
        assert_eq!(annotation_integer("\" 12 \""), Some(12));
        assert_eq!(annotation_integer("3.9"), Some(3));
        assert_eq!(annotation_integer("2147483648"), None);
        assert_eq!(annotation_integer("null"), None);
        assert_eq!(annotation_integer(""), None);
        assert_eq!(annotation_boolean("true"), Some(true));
        assert_eq!(annotation_boolean("\"True\""), Some(true));
        assert_eq!(annotation_boolean("True"), None);
        assert_eq!(annotation_boolean("0"), Some(false));
        assert_eq!(annotation_boolean("false"), Some(false));
    }

    #[test]
    fn serialization_omits_absent_fields() {
        let m = Moniker {
            app: s("myapp"),
            cluster: s("replicaSet myapp"),
            sequence: Some(3),
            ..Moniker::default()
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"app":"myapp","cluster":"replicaSet myapp","sequence":3}"#
        );
        assert_eq!(serde_json::to_string(&Moniker::default()).unwrap(), "{}");
    }
}
