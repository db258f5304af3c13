//! The indexer as an AWS Lambda function: a scheduled event (EventBridge) indexes every cluster;
//! an S3 event notification (direct, or through EventBridge) indexes the clusters its object keys
//! name; `{"clusters": [...]}` indexes those.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::format::ClusterName;
use crate::store::layout::Layout;

use super::{Indexer, Outcome};

/// What an event asks for, or why it cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "unsupported Lambda event (expected a scheduled event, an S3 event notification or {{\"clusters\": [...]}}): {shape}"
    )]
    UnsupportedEvent { shape: String },
    #[error("invalid cluster name {name:?} in the event: {reason}")]
    ClusterName { name: String, reason: String },
    #[error("{failed} of {clusters} clusters failed: {details}")]
    ClustersFailed {
        failed: usize,
        clusters: usize,
        details: String,
    },
    #[error(transparent)]
    Index(#[from] super::Error),
}

/// The clusters an event asks to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every cluster in the bucket.
    All,
    /// These clusters (possibly none: an event about other objects).
    Clusters(BTreeSet<ClusterName>),
}

/// An S3 key as event notifications carry it: URL-encoded, spaces as `+`.
fn decode_key(key: &str) -> String {
    let plus_decoded = key.replace('+', " ");
    percent_decode(&plus_decoded)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A short description of an event's shape for error messages (its top-level keys).
fn shape(event: &Value) -> String {
    match event {
        Value::Object(map) => format!(
            "an object with keys {:?}",
            map.keys().take(8).collect::<Vec<_>>()
        ),
        other => format!(
            "a JSON {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            }
        ),
    }
}

/// What `event` asks to index, with keys mapped to clusters by `layout`.
pub fn target_of(event: &Value, layout: &Layout) -> Result<Target, Error> {
    // S3 event notifications delivered directly (or through SQS/SNS already unwrapped).
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut clusters = BTreeSet::new();
        for record in records {
            let source = record.get("eventSource").and_then(Value::as_str);
            let key = record.pointer("/s3/object/key").and_then(Value::as_str);
            match (source, key) {
                (Some("aws:s3"), Some(key)) => {
                    clusters.extend(layout.cluster_of_key(&decode_key(key)));
                }
                _ => {
                    return Err(Error::UnsupportedEvent {
                        shape: format!(
                            "a record that is not an S3 object event ({})",
                            shape(record)
                        ),
                    });
                }
            }
        }
        return Ok(Target::Clusters(clusters));
    }
    let source = event.get("source").and_then(Value::as_str);
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    // S3 events through EventBridge: the key is not URL-encoded there.
    if source == Some("aws.s3") {
        let key = event
            .pointer("/detail/object/key")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::UnsupportedEvent {
                shape: format!(
                    "an aws.s3 event without detail.object.key ({})",
                    shape(event)
                ),
            })?;
        return Ok(Target::Clusters(
            layout.cluster_of_key(key).into_iter().collect(),
        ));
    }
    if source == Some("aws.events") || detail_type == Some("Scheduled Event") {
        return Ok(Target::All);
    }
    if let Some(names) = event.get("clusters").and_then(Value::as_array) {
        let mut clusters = BTreeSet::new();
        for name in names {
            let name = name.as_str().unwrap_or_default();
            clusters.insert(ClusterName::new(name).map_err(|e| Error::ClusterName {
                name: name.to_string(),
                reason: e.to_string(),
            })?);
        }
        return Ok(Target::Clusters(clusters));
    }
    Err(Error::UnsupportedEvent {
        shape: shape(event),
    })
}

/// The function's answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Response {
    /// Clusters indexed, by outcome: `applied`, `unchanged`, `evicted`, `refused`, `raced`.
    pub applied: Vec<String>,
    pub unchanged: Vec<String>,
    pub evicted: Vec<String>,
    pub refused: Vec<String>,
    pub raced: Vec<String>,
}

/// Handles one event: indexes what it names. Fails (so that Lambda reports and may retry) when a
/// cluster failed; the others were indexed all the same.
pub async fn handle(indexer: &Indexer, event: &Value) -> Result<Response, Error> {
    let target = target_of(event, indexer.store.layout())?;
    let report = match &target {
        Target::All => indexer.run_once(None).await?,
        Target::Clusters(clusters) => {
            let clusters: Vec<ClusterName> = clusters.iter().cloned().collect();
            indexer.run_once(Some(&clusters)).await?
        }
    };
    let mut response = Response {
        applied: vec![],
        unchanged: vec![],
        evicted: vec![],
        refused: vec![],
        raced: vec![],
    };
    let mut failures = Vec::new();
    for cluster in &report.clusters {
        let name = cluster.cluster.clone();
        match &cluster.result {
            Ok(Outcome::Applied { .. }) => response.applied.push(name),
            Ok(Outcome::Unchanged { .. }) => response.unchanged.push(name),
            Ok(Outcome::Evicted { .. }) => response.evicted.push(name),
            Ok(Outcome::Refused { .. }) => response.refused.push(name),
            Ok(Outcome::Raced) => response.raced.push(name),
            Err(e) => failures.push(format!("{name}: {}", crate::error_chain(e))),
        }
    }
    if !failures.is_empty() {
        return Err(Error::ClustersFailed {
            failed: failures.len(),
            clusters: report.clusters.len(),
            details: failures.join("; "),
        });
    }
    Ok(response)
}

/// Serves events from the Lambda Runtime API until the process is stopped.
pub async fn serve(indexer: Indexer) -> Result<(), lambda_runtime::Error> {
    let indexer = std::sync::Arc::new(indexer);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let indexer = indexer.clone();
            async move {
                // Lambda reports the error type and the message (the whole chain, said once).
                handle(&indexer, &event.payload)
                    .await
                    .map_err(|e| lambda_runtime::Diagnostic {
                        error_type: "outpost::indexer::lambda::Error".into(),
                        error_message: crate::error_chain(&e),
                    })
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout() -> Layout {
        Layout::new("fleet").unwrap()
    }

    fn clusters(names: &[&str]) -> Target {
        Target::Clusters(names.iter().map(|n| ClusterName::new(n).unwrap()).collect())
    }

    #[test]
    fn s3_notifications_name_their_clusters() {
        let event = json!({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": "b"}, "object": {"key": "fleet/outpost/v1/clusters/eu-1/head.json"}}},
            {"eventSource": "aws:s3", "s3": {"object": {"key": "fleet/outpost/v1/clusters/us%2D2/head.json"}}},
            {"eventSource": "aws:s3", "s3": {"object": {"key": "fleet/outpost/v1/clusters/eu-1/epochs/e/1.snap.ndjson.zst"}}},
            {"eventSource": "aws:s3", "s3": {"object": {"key": "other/readme+file.txt"}}}
        ]});
        assert_eq!(
            target_of(&event, &layout()).unwrap(),
            clusters(&["eu-1", "us-2"])
        );
        let eventbridge = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "fleet/outpost/v1/clusters/ap-3/head.json"}}});
        assert_eq!(
            target_of(&eventbridge, &layout()).unwrap(),
            clusters(&["ap-3"])
        );
    }

    #[test]
    fn scheduled_events_index_everything() {
        let event = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(target_of(&event, &layout()).unwrap(), Target::All);
    }

    #[test]
    fn explicit_lists_and_bad_events() {
        assert_eq!(
            target_of(&json!({"clusters": ["a", "b"]}), &layout()).unwrap(),
            clusters(&["a", "b"])
        );
        let e = target_of(&json!({"clusters": ["Bad_Name"]}), &layout())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid cluster name \"Bad_Name\""), "{e}");
        let e = target_of(&json!({"hello": 1}), &layout())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported Lambda event") && e.contains("hello"),
            "{e}"
        );
        let e = target_of(&json!({"Records": [{"eventSource": "aws:sqs"}]}), &layout())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an S3 object event"), "{e}");
        assert!(target_of(&json!(null), &layout()).is_err());
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("a+b%2Fc%zz"), "a b/c%zz");
    }
}
