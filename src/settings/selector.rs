//! Kubernetes label selectors as settings write them (`tier in (web,api),!canary`), checked once
//! into a [`LabelSelector`] whose text the API server then receives unchanged (pure, no I/O).
//!
//! kube-core models selectors (`kube::core::Selector`) and matches them, but has no parser of the
//! text form, so the grammar is parsed here into its expressions: comma-separated `k=v`, `k==v`,
//! `k!=v`, `k`, `!k`, `k in (a,b)` and `k notin (a,b)`, keys with an optional DNS-subdomain
//! prefix, names and values of at most 63 characters.

use std::collections::BTreeMap;
use std::fmt;

use kube::core::{Expression, Selector, SelectorExt};

/// A label selector that the API server will accept, trimmed, and what it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    selector: Selector,
}

impl LabelSelector {
    /// Checks `text`; an empty or blank selector is `None` (it selects everything). The error is
    /// the reason alone, for the caller to put beside the setting's name and value.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let selector = parse(text)?;
        Ok(Some(Self {
            text: text.to_string(),
            selector,
        }))
    }

    /// The selector as the API server's `labelSelector` parameter takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an object with `labels` is selected, as the API server decides it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A DNS-1123 subdomain: dot-separated labels of lower-case letters, digits and '-', each
/// starting and ending with a letter or digit, at most 253 characters in all.
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty part between dots".into());
        }
        if label.len() > 63 {
            return Err(format!("{label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "it contains {c:?}; only lower-case letters, digits, '-' and '.' are allowed"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "{label:?} must start and end with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// Kubernetes label selector syntax: comma-separated `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// `k in (a,b)`, `k notin (a,b)`.
fn parse(selector: &str) -> Result<Selector, String> {
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut requirements = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' => {
                if depth > 0 {
                    return Err("nested parentheses".into());
                }
                depth += 1;
            }
            ')' => {
                if depth == 0 {
                    return Err("')' without '('".into());
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("'(' without ')'".into());
    }
    requirements.push(&selector[start..]);
    requirements
        .into_iter()
        .map(|requirement| {
            parse_requirement(requirement.trim())
                .map_err(|reason| format!("in {:?}: {reason}", requirement.trim()))
        })
        .collect()
}

fn parse_requirement(requirement: &str) -> Result<Expression, String> {
    if requirement.is_empty() {
        return Err("empty requirement (a stray comma?)".into());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        let key = key.trim();
        check_label_key(key)?;
        return Ok(Expression::DoesNotExist(key.to_string()));
    }
    if let Some((key, value)) = requirement.split_once("!=") {
        let (key, value) = (key.trim(), value.trim());
        check_label_key(key)?;
        check_label_value(value)?;
        return Ok(Expression::NotEqual(key.to_string(), value.to_string()));
    }
    if let Some((key, value)) = requirement
        .split_once("==")
        .or_else(|| requirement.split_once('='))
    {
        let (key, value) = (key.trim(), value.trim());
        check_label_key(key)?;
        check_label_value(value)?;
        return Ok(Expression::Equal(key.to_string(), value.to_string()));
    }
    if let Some(open) = requirement.find('(') {
        let Some(values) = requirement[open + 1..].strip_suffix(')') else {
            return Err("nothing may follow the ')' of a set".into());
        };
        let head = requirement[..open].trim_end();
        let Some((key, operator)) = head.rsplit_once(char::is_whitespace) else {
            return Err("expected `key in (a,b)` or `key notin (a,b)`".into());
        };
        if operator != "in" && operator != "notin" {
            return Err(format!(
                "unknown operator {operator:?}; expected in or notin"
            ));
        }
        let key = key.trim();
        check_label_key(key)?;
        if values.trim().is_empty() {
            return Err(format!("the set of values after {operator} is empty"));
        }
        let mut set = std::collections::BTreeSet::new();
        for value in values.split(',') {
            let value = value.trim();
            if value.is_empty() {
                return Err("an empty value in a set (a stray comma?)".into());
            }
            check_label_value(value)?;
            set.insert(value.to_string());
        }
        return Ok(if operator == "in" {
            Expression::In(key.to_string(), set)
        } else {
            Expression::NotIn(key.to_string(), set)
        });
    }
    check_label_key(requirement)?;
    Ok(Expression::Exists(requirement.to_string()))
}

/// A label key: an optional DNS-subdomain prefix and '/', then a name.
fn check_label_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix)
                .map_err(|reason| format!("the key prefix {prefix:?}: {reason}"))?;
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err(format!("the key {key:?} has no name"));
    }
    check_label_name(name).map_err(|reason| format!("the key {key:?}: {reason}"))
}

/// A label value: empty, or like a key's name.
fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name(value).map_err(|reason| format!("the value {value:?}: {reason}"))
}

/// At most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
fn check_label_name(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("it is longer than 63 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "it contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_selectors_pass_unchanged_but_trimmed() {
        for selector in [
            "app=web",
            "app==web,tier!=db",
            "app.kubernetes.io/managed-by=spinnaker",
            "!canary, env in (prod, staging), tier notin (x)",
            "release",
            "a=",
        ] {
            let parsed = LabelSelector::parse(&format!(" {selector} "))
                .unwrap_or_else(|e| panic!("{selector}: {e}"))
                .unwrap();
            assert_eq!(parsed.as_str(), selector);
        }
        assert_eq!(LabelSelector::parse("  "), Ok(None));
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (selector, reason) in [
            ("a in b", "the key \"a in b\": it contains ' '"),
            ("in (b)", "expected `key in (a,b)`"),
            ("a=b,,c", "empty requirement"),
            ("a in (b", "'(' without ')'"),
            ("a notin ()", "the set of values after notin is empty"),
            ("a=b c", "contains ' '"),
            ("x/y/z", "the key \"x/y/z\""),
            ("a in ((b))", "nested parentheses"),
            ("a) in (b", "')' without '('"),
            ("a exists (b)", "unknown operator \"exists\""),
            ("a in (b),", "empty requirement"),
            ("-a=b", "must start and end with a letter or digit"),
            ("Bad_Prefix/a=b", "the key prefix"),
        ] {
            let e = LabelSelector::parse(selector).unwrap_err();
            assert!(e.contains(reason), "{selector:?}: {e}");
        }
        let long = "a".repeat(64);
        assert!(
            LabelSelector::parse(&format!("{long}=b"))
                .unwrap_err()
                .contains("longer than 63")
        );
        assert!(
            LabelSelector::parse(&format!("a={long}"))
                .unwrap_err()
                .contains("longer than 63")
        );
    }

    #[test]
    fn selectors_select_as_the_api_server_does() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[]);
        for (selector, selects) in [
            ("app=web", [true, false, false]),
            ("app==web", [true, false, false]),
            ("app!=web", [false, true, true]),
            ("tier", [true, false, false]),
            ("!tier", [false, true, true]),
            ("app in (web, db)", [true, true, false]),
            ("app notin (web)", [false, true, true]),
            ("app=web,tier=front", [true, false, false]),
            ("app=web,tier=back", [false, false, false]),
            ("app=", [false, false, false]),
        ] {
            let parsed = LabelSelector::parse(selector).unwrap().unwrap();
            assert_eq!(
                [&web, &db, &none].map(|l| parsed.matches(l)),
                selects,
                "{selector}"
            );
        }
    }

    #[test]
    fn dns_subdomains() {
        for good in ["a", "example.com", "x-y.example.com", "0.1"] {
            check_dns_subdomain(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "A.com",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b",
            &"a".repeat(64),
            &["a"; 130].join("."),
        ] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad:?}");
        }
    }
}
