//! A list request's parameters as the API server takes them (pure, no I/O): `labelSelector`,
//! `fieldSelector`, `limit` and `continue`, checked once into a [`ListQuery`] that says which
//! objects it selects and where the next page starts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::settings::selector::LabelSelector;

/// The most objects one page holds, whatever `limit` asks: the gateway answers from memory it
/// must bound (kubectl's own pages are 500).
pub const MAX_PAGE: usize = 5_000;

/// A parameter the API server would refuse, and why (its message, for a `400 BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// One `fieldSelector` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    /// A JSON pointer into the object, e.g. `/metadata/name`.
    pointer: String,
    value: String,
    equal: bool,
}

/// Where a page ends: the (namespace, name) of its last object; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub namespace: String,
    pub name: String,
}

impl Position {
    /// The `continue` token of this position (opaque to clients).
    pub fn token(&self) -> String {
        hex::encode(format!("{}/{}", self.namespace, self.name))
    }

    fn from_token(token: &str) -> Result<Self, BadRequest> {
        let invalid = || BadRequest(format!("invalid continue token {token:?}"));
        let text = hex::decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)?;
        let (namespace, name) = text.split_once('/').ok_or_else(invalid)?;
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// A checked list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    labels: Option<LabelSelector>,
    fields: Vec<FieldRequirement>,
    /// Objects per page (at most [`MAX_PAGE`]).
    pub limit: usize,
    /// Start after this object.
    pub after: Option<Position>,
}

/// The fields a `fieldSelector` may name for `kind` (the API server's own lists, for the kinds
/// Spinnaker asks about: every kind has the metadata ones, Events their involved object's).
fn selectable(kind: &str, field: &str) -> Option<String> {
    let common = ["metadata.name", "metadata.namespace"];
    let event = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    let pod = [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ];
    let known = common.contains(&field)
        || (kind == "Event" && event.contains(&field))
        || (kind == "Pod" && pod.contains(&field));
    if !known {
        return None;
    }
    // An Event's `source` is the component that reported it.
    let field = if kind == "Event" && field == "source" {
        "source.component"
    } else {
        field
    };
    Some(format!("/{}", field.replace('.', "/")))
}

impl ListQuery {
    /// Checks the parameters of a list of `kind` (query string pairs, already percent-decoded).
    pub fn parse(kind: &str, parameters: &BTreeMap<String, String>) -> Result<Self, BadRequest> {
        let labels = match parameters.get("labelSelector") {
            Some(text) => LabelSelector::parse(text).map_err(|reason| {
                BadRequest(format!(
                    "unable to parse requirement: labelSelector {text:?}: {reason}"
                ))
            })?,
            None => None,
        };
        let mut fields = Vec::new();
        if let Some(text) = parameters.get("fieldSelector") {
            for requirement in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                let (field, value, equal) = if let Some((f, v)) = requirement.split_once("!=") {
                    (f, v, false)
                } else if let Some((f, v)) = requirement
                    .split_once("==")
                    .or_else(|| requirement.split_once('='))
                {
                    (f, v, true)
                } else {
                    return Err(BadRequest(format!(
                        "invalid field selector {text:?}: {requirement:?} is not field=value or field!=value"
                    )));
                };
                let field = field.trim();
                let pointer = selectable(kind, field).ok_or_else(|| {
                    BadRequest(format!(
                        "field label not supported: {field} (fieldSelector {text:?} on {kind})"
                    ))
                })?;
                fields.push(FieldRequirement {
                    pointer,
                    value: value.trim().to_string(),
                    equal,
                });
            }
        }
        let limit = match parameters.get("limit").map(String::as_str) {
            None | Some("") | Some("0") => MAX_PAGE,
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| BadRequest(format!("invalid limit {text:?}: a number of objects")))?
                .min(MAX_PAGE),
        };
        let after = match parameters.get("continue").map(String::as_str) {
            None | Some("") => None,
            Some(token) => Some(Position::from_token(token)?),
        };
        Ok(Self {
            labels,
            fields,
            limit,
            after,
        })
    }

    /// Whether the query selects `object`.
    /// Whether every object is selected (no label or field selector).
    pub fn selects_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_empty()
    }

    pub fn selects(&self, object: &Value) -> bool {
        if let Some(labels) = &self.labels {
            let map: BTreeMap<String, String> = object["metadata"]["labels"]
                .as_object()
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            if !labels.matches(&map) {
                return false;
            }
        }
        self.fields.iter().all(|requirement| {
            let actual = match object.pointer(&requirement.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == requirement.value) == requirement.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query(kind: &str, pairs: &[(&str, &str)]) -> Result<ListQuery, BadRequest> {
        let parameters = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::parse(kind, &parameters)
    }

    #[test]
    fn selectors_pick_objects_by_labels_and_fields() {
        let web =
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}});
        let db = json!({"metadata": {"name": "db", "namespace": "pay", "labels": {"app": "db"}}});
        let select = |pairs: &[(&str, &str)]| {
            let q = query("Deployment", pairs).unwrap();
            [q.selects(&web), q.selects(&db)]
        };
        assert_eq!(select(&[]), [true, true]);
        assert!(
            query("Deployment", &[("limit", "5")])
                .unwrap()
                .selects_everything()
        );
        for selector in ["labelSelector", "fieldSelector"] {
            let value = if selector == "labelSelector" {
                "app=web"
            } else {
                "metadata.name=db"
            };
            assert!(
                !query("Deployment", &[(selector, value)])
                    .unwrap()
                    .selects_everything()
            );
        }
        assert_eq!(select(&[("labelSelector", "app=web")]), [true, false]);
        assert_eq!(
            select(&[("fieldSelector", "metadata.name=db")]),
            [false, true]
        );
        assert_eq!(
            select(&[("fieldSelector", "metadata.namespace!=shop")]),
            [false, true]
        );
        assert_eq!(
            select(&[
                ("labelSelector", "app in (web,db)"),
                ("fieldSelector", "metadata.namespace==shop")
            ]),
            [true, false]
        );
    }

    #[test]
    fn events_are_selected_by_the_object_they_involve() {
        let event = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1"}, "source": {"component": "kubelet"}, "type": "Warning"});
        let q = query(
            "Event",
            &[(
                "fieldSelector",
                "involvedObject.name=web-1,involvedObject.kind=Pod,type=Warning,source=kubelet",
            )],
        )
        .unwrap();
        assert!(q.selects(&event));
        let other = query("Event", &[("fieldSelector", "involvedObject.uid=u2")]).unwrap();
        assert!(!other.selects(&event));
    }

    #[test]
    fn what_the_api_server_refuses_is_refused_with_its_reason() {
        let unsupported = query("Deployment", &[("fieldSelector", "spec.replicas=1")]).unwrap_err();
        assert!(
            unsupported
                .0
                .contains("field label not supported: spec.replicas")
        );
        assert!(query("Deployment", &[("fieldSelector", "involvedObject.name=x")]).is_err());
        assert!(query("Pod", &[("fieldSelector", "status.phase=Running")]).is_ok());
        assert!(query("Deployment", &[("fieldSelector", "metadata.name")]).is_err());
        assert!(query("Deployment", &[("labelSelector", "a in (b")]).is_err());
        assert!(query("Deployment", &[("limit", "ten")]).is_err());
        assert!(query("Deployment", &[("continue", "zz")]).is_err());
    }

    #[test]
    fn pages_are_bounded_and_continue_where_they_ended() {
        assert_eq!(query("Pod", &[]).unwrap().limit, MAX_PAGE);
        assert_eq!(query("Pod", &[("limit", "500")]).unwrap().limit, 500);
        assert_eq!(
            query("Pod", &[("limit", "999999999")]).unwrap().limit,
            MAX_PAGE
        );
        let position = Position {
            namespace: "shop".into(),
            name: "web/1".into(),
        };
        let token = position.token();
        let q = query("Pod", &[("continue", &token)]).unwrap();
        assert_eq!(
            q.after,
            Some(Position {
                namespace: "shop".into(),
                name: "web/1".into()
            })
        );
    }
}
