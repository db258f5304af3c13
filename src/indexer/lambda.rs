//! The indexer as an AWS Lambda function: a scheduled event (EventBridge) indexes every cluster;
//! an S3 event notification (direct, or through EventBridge) indexes the clusters its object keys
//! name; `{"clusters": [...]}` indexes those.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::format::ClusterName;
use crate::store::layout::Layout;

use super::{Indexer, Outcome};

/// The most clusters one event may name: a whole fleet is indexed by a scheduled event, and an
/// event naming thousands of clusters (missing ones: a failure each) is refused, not run.
pub const MAX_EVENT_CLUSTERS: usize = 1000;

/// The most names listed per outcome in a response; the rest are counted.
pub const MAX_LISTED: usize = 100;

/// The most failures spelled out in an error, and the most characters of each: Lambda reports
/// the message whole, and thousands of failures would make megabytes of it.
pub const MAX_LISTED_FAILURES: usize = 10;
pub const MAX_FAILURE_TEXT: usize = 1000;

/// What an event asks for, or why it cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "unsupported Lambda event (expected a scheduled event, an S3 event notification or {{\"clusters\": [...]}}): {shape}"
    )]
    UnsupportedEvent { shape: String },
    #[error("invalid cluster name {name:?} in the event: {reason}")]
    ClusterName { name: String, reason: String },
    #[error(
        "the event names {named} clusters, more than the {limit} an event may name (a scheduled event indexes every cluster)"
    )]
    TooManyClusters { named: usize, limit: usize },
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
        return bounded(clusters.len()).map(|()| Target::Clusters(clusters));
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
        bounded(names.len())?;
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

/// Refuses an event naming more than [`MAX_EVENT_CLUSTERS`] clusters.
fn bounded(named: usize) -> Result<(), Error> {
    if named > MAX_EVENT_CLUSTERS {
        return Err(Error::TooManyClusters {
            named,
            limit: MAX_EVENT_CLUSTERS,
        });
    }
    Ok(())
}

/// The function's answer.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Response {
    /// Clusters indexed, by outcome: `applied`, `unchanged`, `evicted`, `refused`, `raced`,
    /// `nothing_shipped` (no head.json yet); at most [`MAX_LISTED`] names each.
    pub applied: Vec<String>,
    pub unchanged: Vec<String>,
    pub evicted: Vec<String>,
    pub refused: Vec<String>,
    pub raced: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nothing_shipped: Vec<String>,
    /// How many more clusters had an outcome than its list names.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub not_listed: BTreeMap<String, usize>,
}

impl Response {
    /// Counts `name` under `outcome`, listing it while the list is short.
    fn push(&mut self, outcome: &str, name: String) {
        let list = match outcome {
            "applied" => &mut self.applied,
            "unchanged" => &mut self.unchanged,
            "evicted" => &mut self.evicted,
            "refused" => &mut self.refused,
            "nothing_shipped" => &mut self.nothing_shipped,
            _ => &mut self.raced,
        };
        if list.len() < MAX_LISTED {
            list.push(name);
        } else {
            *self.not_listed.entry(outcome.to_string()).or_default() += 1;
        }
    }
}

/// The failures of a run as one message of bounded size: the first few, each cut short, and
/// how many more.
fn failure_details(failures: &[String]) -> String {
    let mut details: Vec<String> = failures
        .iter()
        .take(MAX_LISTED_FAILURES)
        .map(
            |failure| match failure.char_indices().nth(MAX_FAILURE_TEXT) {
                Some((end, _)) => format!("{}…", &failure[..end]),
                None => failure.clone(),
            },
        )
        .collect();
    if failures.len() > MAX_LISTED_FAILURES {
        details.push(format!("and {} more", failures.len() - MAX_LISTED_FAILURES));
    }
    details.join("; ")
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
    let mut response = Response::default();
    let mut failures = Vec::new();
    for cluster in &report.clusters {
        let name = cluster.cluster.clone();
        match &cluster.result {
            Ok(Outcome::Applied { .. }) => response.push("applied", name),
            Ok(Outcome::Unchanged { .. }) => response.push("unchanged", name),
            Ok(Outcome::Evicted { .. }) => response.push("evicted", name),
            Ok(Outcome::Refused { .. }) => response.push("refused", name),
            Ok(Outcome::Raced) => response.push("raced", name),
            Ok(Outcome::NothingShipped) => response.push("nothing_shipped", name),
            Err(e) => failures.push(format!("{name}: {}", crate::error_chain(e))),
        }
    }
    if !failures.is_empty() {
        return Err(Error::ClustersFailed {
            failed: failures.len(),
            clusters: report.clusters.len(),
            details: failure_details(&failures),
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
    fn an_event_may_name_a_bounded_number_of_clusters() {
        let names: Vec<String> = (0..20_000).map(|i| format!("c-{i}")).collect();
        let e = target_of(&json!({ "clusters": names }), &layout())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("20000 clusters") && e.contains(&MAX_EVENT_CLUSTERS.to_string()),
            "{e}"
        );
        assert!(e.len() < 400, "{e}");
        let records: Vec<Value> = (0..=MAX_EVENT_CLUSTERS)
            .map(|i| {
                json!({"eventSource": "aws:s3", "s3": {"object": {"key": format!("fleet/outpost/v1/clusters/c-{i}/head.json")}}})
            })
            .collect();
        let e = target_of(&json!({ "Records": records }), &layout())
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
        let names: Vec<String> = (0..MAX_EVENT_CLUSTERS).map(|i| format!("c-{i}")).collect();
        assert!(target_of(&json!({ "clusters": names }), &layout()).is_ok());
    }

    #[tokio::test]
    async fn failures_are_reported_within_a_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let indexer = Indexer {
            store: crate::store::Store::open(&format!(
                "memory://lambda-failures-{:08x}",
                rand::random::<u32>()
            ))
            .await
            .unwrap(),
            database: super::super::Database::connect(
                &format!("sqlite://{}", dir.path().join("cache.db").display()),
                None,
            )
            .await
            .unwrap(),
            options: Default::default(),
        };
        let missing = MAX_LISTED_FAILURES + 50;
        let names: Vec<String> = (0..missing).map(|i| format!("broken-{i}")).collect();
        // A head that is not JSON fails its cluster (a missing one is only "nothing shipped").
        for name in &names {
            let cluster = ClusterName::new(name).unwrap();
            let key = indexer.store.layout().head(&cluster);
            indexer
                .store
                .put_overwrite(&key, bytes::Bytes::from_static(b"not json"))
                .await
                .unwrap();
        }
        let e = handle(&indexer, &json!({ "clusters": names }))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{missing} of {missing} clusters failed")),
            "{e}"
        );
        assert!(e.contains("and 50 more"), "{e}");
        assert!(
            e.len() <= MAX_LISTED_FAILURES * (MAX_FAILURE_TEXT + 8) + 200,
            "{}",
            e.len()
        );
    }

    #[test]
    fn responses_list_a_bounded_number_of_names() {
        let mut response = Response::default();
        for i in 0..MAX_LISTED + 5 {
            response.push("raced", format!("c-{i}"));
        }
        assert_eq!(response.raced.len(), MAX_LISTED);
        assert_eq!(response.not_listed.get("raced"), Some(&5));
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(decode_key("a+b%2Fc%zz"), "a b/c%zz");
    }
}
