//! The IAM policies of `terraform/modules/aws-agent-identity` and `aws-bucket`, rendered offline
//! by Terraform from their provider-free `policy` modules and judged by an IAM evaluator: an
//! agent reads and writes only its own cluster's keys, never lists, never deletes, and cannot
//! overwrite a segment; the bucket policy holds the same lines for any principal.
//!
//! The evaluator follows AWS's documented logic for one account (an explicit deny in any policy
//! wins, else an allow in the identity or the bucket policy, else the implicit deny) and the
//! condition operators these policies use. It is tested on its own below, so a policy that
//! passes is not passing because the evaluator allows everything.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

mod common;

/// One request as IAM sees it.
#[derive(Debug, Clone)]
struct Request<'a> {
    principal: &'a str,
    principal_tags: &'a [(&'a str, &'a str)],
    action: &'a str,
    resource: String,
    /// Condition keys present in the request (`s3:if-none-match`, `aws:SecureTransport`, …).
    context: BTreeMap<&'a str, &'a str>,
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

mod iam {
    //! A small IAM policy evaluator (pure, no I/O): statements, wildcards, policy variables
    //! and the condition operators the Outpost policies use.

    use super::{Decision, Request};
    use serde_json::Value;

    /// `*` matches any run of characters, `?` one character.
    pub fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
            (
                pattern.to_lowercase().chars().collect(),
                text.to_lowercase().chars().collect(),
            )
        } else {
            (pattern.chars().collect(), text.chars().collect())
        };
        let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                mark = ti;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ti = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }

    fn strings(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Value::Bool(b) => vec![b.to_string()],
            _ => Vec::new(),
        }
    }

    /// `${aws:PrincipalTag/k}` → the tag's value; an unknown variable matches nothing.
    fn substitute(pattern: &str, request: &Request) -> Option<String> {
        let mut out = pattern.to_string();
        while let Some(start) = out.find("${") {
            let end = start + out[start..].find('}')?;
            let name = &out[start + 2..end];
            let value = name
                .strip_prefix("aws:PrincipalTag/")
                .and_then(|tag| request.principal_tags.iter().find(|(k, _)| *k == tag))
                .map(|(_, v)| v.to_string())?;
            out.replace_range(start..=end, &value);
        }
        Some(out)
    }

    fn matches_any(patterns: &Value, text: &str, request: &Request, ci: bool) -> bool {
        strings(patterns)
            .iter()
            .filter_map(|p| substitute(p, request))
            .any(|p| glob(&p, text, ci))
    }

    fn principal_matches(statement: &Value, request: &Request) -> bool {
        match statement.get("Principal") {
            None => true, // an identity policy: its principal is whoever holds it
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(by_type)) => by_type
                .get("AWS")
                .is_some_and(|p| matches_any(p, request.principal, request, false)),
            Some(_) => false,
        }
    }

    fn context_value<'r>(request: &'r Request, key: &str) -> Option<&'r str> {
        if key == "aws:PrincipalArn" {
            return Some(request.principal);
        }
        request
            .context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    fn condition_holds(operator: &str, key: &str, values: &Value, request: &Request) -> bool {
        let present = context_value(request, key);
        let values = strings(values);
        let any = |f: &dyn Fn(&str, &str) -> bool| {
            present.is_some_and(|actual| values.iter().any(|v| f(v, actual)))
        };
        match operator {
            "Null" => values.iter().any(|v| (v == "true") == present.is_none()),
            "Bool" | "StringEquals" | "ArnEquals" => any(&|v, a| v == a),
            "StringLike" | "ArnLike" => any(&|v, a| glob(v, a, false)),
            // A negated operator holds when the key is absent.
            "StringNotLike" | "ArnNotLike" => {
                present.is_none_or(|actual| !values.iter().any(|v| glob(v, actual, false)))
            }
            other => panic!("the evaluator does not know the condition operator {other}"),
        }
    }

    fn applies(statement: &Value, request: &Request) -> bool {
        let action = match (statement.get("Action"), statement.get("NotAction")) {
            (Some(a), None) => matches_any(a, request.action, request, true),
            (None, Some(a)) => !matches_any(a, request.action, request, true),
            _ => panic!("a statement needs exactly one of Action and NotAction: {statement}"),
        };
        let resource = match (statement.get("Resource"), statement.get("NotResource")) {
            (Some(r), None) => matches_any(r, &request.resource, request, false),
            (None, Some(r)) => !matches_any(r, &request.resource, request, false),
            _ => panic!("a statement needs exactly one of Resource and NotResource: {statement}"),
        };
        let conditions = statement
            .get("Condition")
            .and_then(Value::as_object)
            .map(|ops| {
                ops.iter().all(|(op, keys)| {
                    keys.as_object()
                        .expect("a condition maps keys to values")
                        .iter()
                        .all(|(key, values)| condition_holds(op, key, values, request))
                })
            })
            .unwrap_or(true);
        action && resource && conditions && principal_matches(statement, request)
    }

    /// The decision of every policy together, for one account.
    pub fn evaluate(policies: &[&Value], request: &Request) -> Decision {
        let mut allowed = false;
        for policy in policies {
            for statement in policy["Statement"].as_array().expect("statements") {
                if applies(statement, request) {
                    match statement["Effect"].as_str() {
                        Some("Deny") => return Decision::ExplicitDeny,
                        Some("Allow") => allowed = true,
                        other => panic!("unknown effect {other:?}"),
                    }
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

fn request<'a>(action: &'a str, resource: String, context: &[(&'a str, &'a str)]) -> Request<'a> {
    Request {
        principal: AGENT_ROLE,
        principal_tags: &[("outpost-cluster", "eu-1")],
        action,
        resource,
        context: context
            .iter()
            .copied()
            .chain([("aws:SecureTransport", "true")])
            .collect(),
    }
}

#[test]
fn the_evaluator_follows_iam_logic() {
    use iam::glob;
    assert!(glob("arn:aws:s3:::b/a/*", "arn:aws:s3:::b/a/x/y", false));
    assert!(!glob("arn:aws:s3:::b/a/*", "arn:aws:s3:::b/ab/x", false));
    assert!(glob("s3:Get*", "s3:getobject", true));
    assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
    assert!(glob("*", "", false) && !glob("", "x", false));

    let allow = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${aws:PrincipalTag/outpost-cluster}/*"}
    ]});
    let deny_unconditional = serde_json::json!({"Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
         "Condition": {"Null": {"s3:if-none-match": "true"}}}
    ]});
    let get = |key: &str, context: &[(&'static str, &'static str)]| {
        request("s3:GetObject", format!("arn:aws:s3:::b/{key}"), context)
    };
    assert_eq!(
        iam::evaluate(&[&allow], &get("eu-1/x", &[])),
        Decision::Allow
    );
    assert_eq!(
        iam::evaluate(&[&allow], &get("eu-2/x", &[])),
        Decision::ImplicitDeny
    );
    assert_eq!(
        iam::evaluate(&[&allow, &deny_unconditional], &get("eu-1/x", &[])),
        Decision::ExplicitDeny
    );
    assert_eq!(
        iam::evaluate(
            &[&allow, &deny_unconditional],
            &get("eu-1/x", &[("s3:if-none-match", "*")])
        ),
        Decision::Allow
    );
    let untagged = Request {
        principal_tags: &[],
        ..get("eu-1/x", &[])
    };
    assert_eq!(iam::evaluate(&[&allow], &untagged), Decision::ImplicitDeny);
}

const AGENT_ROLE: &str = "arn:aws:iam::111122223333:role/outpost-agent-eu-1";

/// A provider-free policy module's `json` output, rendered offline.
fn render(terraform: &Path, module: &str, inputs: &str) -> Value {
    serde_json::from_str(&common::terraform::render(
        terraform, module, inputs, "json",
    ))
    .expect("the policy is JSON")
}

#[test]
fn an_agent_reaches_only_its_own_cluster_and_never_deletes_or_overwrites() {
    let Some(terraform) = common::terraform::binary("OUTPOST_TEST_TERRAFORM") else {
        return;
    };
    let identity = render(
        &terraform,
        "aws-agent-identity/policy",
        r#"  bucket = "fleet"
  prefix = "prod/"
  cluster = "eu-1"
  kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/k"
  region = "eu-west-1""#,
    );
    let bucket = render(
        &terraform,
        "aws-bucket/policy",
        r#"  bucket = "fleet"
  prefix = "prod"
  agent_role_pattern = "arn:aws:iam::*:role/outpost-agent-*"
  admin_role_arns = ["arn:aws:iam::111122223333:role/storage-admin"]"#,
    );
    let key = |cluster: &str, rest: &str| {
        format!("arn:aws:s3:::fleet/prod/outpost/v1/clusters/{cluster}/{rest}")
    };
    let segment = |cluster: &str| {
        key(
            cluster,
            "epochs/1763899200000-abcdef01/0000000000000003.diff.ndjson.zst",
        )
    };
    let create_only = [("s3:if-none-match", "*")];
    let cas = [("s3:if-match", "\"etag\"")];
    let both = [&identity, &bucket];
    let decide = |r: Request| iam::evaluate(&both, &r);
    use Decision::*;

    // What the agent does.
    assert_eq!(
        decide(request("s3:GetObject", key("eu-1", "head.json"), &[])),
        Allow
    );
    assert_eq!(
        decide(request("s3:PutObject", segment("eu-1"), &create_only)),
        Allow
    );
    assert_eq!(
        decide(request("s3:PutObjectTagging", segment("eu-1"), &[])),
        Allow
    );
    assert_eq!(
        decide(request(
            "s3:PutObject",
            key("eu-1", "head.json"),
            &create_only
        )),
        Allow
    );
    assert_eq!(
        decide(request("s3:PutObject", key("eu-1", "head.json"), &cas)),
        Allow
    );
    assert_eq!(
        decide(request("s3:PutObject", key("eu-1", "identity.json"), &[])),
        Allow
    );
    assert_eq!(
        decide(request(
            "s3:PutObject",
            key("eu-1", "decommissioned.json"),
            &create_only
        )),
        Allow
    );

    // Never overwrite a segment, the marker or the head without its condition.
    assert_eq!(
        decide(request("s3:PutObject", segment("eu-1"), &[])),
        ExplicitDeny
    );
    assert_eq!(
        decide(request("s3:PutObject", segment("eu-1"), &cas)),
        ExplicitDeny
    );
    assert_eq!(
        decide(request(
            "s3:PutObject",
            key("eu-1", "decommissioned.json"),
            &[]
        )),
        ExplicitDeny
    );
    assert_eq!(
        decide(request("s3:PutObject", key("eu-1", "head.json"), &[])),
        ExplicitDeny
    );

    // Never delete, never list, never another cluster's keys (eu-10 shares eu-1's first chars).
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        assert_eq!(
            decide(request(action, segment("eu-1"), &[])),
            ExplicitDeny,
            "{action}"
        );
    }
    assert_ne!(
        decide(request("s3:ListBucket", "arn:aws:s3:::fleet".into(), &[])),
        Allow
    );
    for other in ["eu-2", "eu-10", "eu-1-b"] {
        assert_ne!(
            decide(request("s3:GetObject", key(other, "head.json"), &[])),
            Allow,
            "{other}"
        );
        assert_ne!(
            decide(request("s3:PutObject", segment(other), &create_only)),
            Allow,
            "{other}"
        );
    }
    assert_ne!(
        decide(request(
            "s3:GetObject",
            "arn:aws:s3:::fleet/prod/other/x".into(),
            &[]
        )),
        Allow
    );

    // The bucket policy alone holds the same lines for an agent whose own policy were too wide.
    let too_wide = serde_json::json!({"Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::fleet", "arn:aws:s3:::fleet/*"]}
    ]});
    let wide = [&too_wide, &bucket];
    let decide_wide = |r: Request| iam::evaluate(&wide, &r);
    assert_eq!(
        decide_wide(request("s3:GetObject", key("eu-1", "head.json"), &[])),
        Allow
    );
    assert_eq!(
        decide_wide(request("s3:GetObject", key("eu-2", "head.json"), &[])),
        ExplicitDeny
    );
    assert_eq!(
        decide_wide(request("s3:DeleteObject", segment("eu-1"), &[])),
        ExplicitDeny
    );
    assert_eq!(
        decide_wide(request("s3:PutObject", segment("eu-1"), &[])),
        ExplicitDeny
    );
    let plain_http = Request {
        context: [("aws:SecureTransport", "false")].into_iter().collect(),
        ..request("s3:GetObject", key("eu-1", "head.json"), &[])
    };
    assert_eq!(decide_wide(plain_http), ExplicitDeny);

    // The named administrator may still delete; the indexer's reads are its own role's business.
    let admin = Request {
        principal: "arn:aws:iam::111122223333:role/storage-admin",
        principal_tags: &[],
        ..request("s3:DeleteObject", segment("eu-1"), &[])
    };
    assert_eq!(iam::evaluate(&[&too_wide, &bucket], &admin), Allow);

    // KMS only through S3, for this bucket.
    let kms = |context: &[(&'static str, &'static str)]| {
        request(
            "kms:GenerateDataKey",
            "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            context,
        )
    };
    assert_eq!(
        iam::evaluate(
            &[&identity],
            &kms(&[
                ("kms:ViaService", "s3.eu-west-1.amazonaws.com"),
                (
                    "kms:EncryptionContext:aws:s3:arn",
                    "arn:aws:s3:::fleet/prod/outpost/v1/clusters/eu-1/head.json"
                ),
            ])
        ),
        Allow
    );
    assert_eq!(iam::evaluate(&[&identity], &kms(&[])), ImplicitDeny);
}
