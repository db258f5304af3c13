//! A simulated cluster fed through the agent's own pipeline — churn, redaction, state, shipper —
//! into a bucket: what `outpost demo`, the indexer's benchmark and its tests run on.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Churn, ChurnEvent};
use crate::agent::redact::{self, Redactor};
use crate::agent::ship::{self, ShipOptions, Shipped, Shipper};
use crate::agent::state::{Scope, State, kind_name};
use crate::agent::watch::redacted_entry;
use crate::format::ClusterName;
use crate::store::Store;

/// One simulated cluster and its agent (default shipping options, no user redaction rules).
pub struct SimAgent {
    pub name: ClusterName,
    pub churn: Churn,
    pub state: State,
    pub shipper: Shipper,
    redactor: Redactor,
}

/// The scope a simulated object is watched in: its kind, cluster-wide.
fn scope_of(object: &Value) -> Scope {
    Scope {
        kind: kind_name(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        ),
        namespace: None,
    }
}

impl SimAgent {
    /// A cluster holding `churn`'s initial objects (nothing shipped yet) that ships into
    /// `store`, its Secrets' values redacted with `key`.
    pub fn new(
        store: &Store,
        name: ClusterName,
        churn: Churn,
        key: &[u8; 32],
    ) -> Result<Self, redact::Error> {
        let redactor = Redactor::new(key, vec![])?;
        let shipper = Shipper::new(
            store.clone(),
            name.clone(),
            ShipOptions {
                redaction: redactor.rule_ids(),
                ..ShipOptions::default()
            },
        );
        let mut agent = Self {
            name,
            churn,
            state: State::new(),
            shipper,
            redactor,
        };
        for object in agent.churn.initial() {
            agent.put(object);
        }
        Ok(agent)
    }

    /// An object as it now is (a watch's `Apply`).
    pub fn put(&mut self, object: Value) {
        let scope = scope_of(&object);
        if let Some(entry) = redacted_entry(object, &scope, &self.redactor) {
            self.state.apply(entry);
        }
    }

    /// An object deleted (a watch's `Delete`).
    pub fn delete(&mut self, object: Value) {
        let scope = scope_of(&object);
        if let Some(entry) = redacted_entry(object, &scope, &self.redactor) {
            self.state.delete(&entry.target.key());
        }
    }

    /// One churn event.
    pub fn event(&mut self, event: ChurnEvent) {
        match event {
            ChurnEvent::Apply(object) => self.put(object),
            ChurnEvent::Delete(object) => self.delete(object),
        }
    }

    /// `seconds` of churn at `rate` changes per second; returns how many events that was.
    pub fn step(&mut self, seconds: f64, rate: f64) -> usize {
        let events = self.churn.step(seconds, rate);
        let count = events.len();
        for event in events {
            self.event(event);
        }
        count
    }

    /// What the agent's shipping loop does at `now`: a snapshot, a diff, a heartbeat or nothing.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Shipped, ship::Error> {
        self.shipper.tick(&mut self.state, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ships_a_snapshot_then_the_churn_as_a_diff() {
        let store = Store::open("memory://").await.unwrap();
        let name = ClusterName::new("sim").unwrap();
        let mut agent = SimAgent::new(&store, name, Churn::new(1, 60), &[7; 32]).unwrap();
        let held = agent.state.len();
        assert!(held > 30, "{held} objects");
        let now = Utc::now();
        let Shipped::Snapshot { records, .. } = agent.tick(now).await.unwrap() else {
            panic!("the first tick ships a snapshot");
        };
        assert_eq!(records, held as u64);
        assert!(agent.step(60.0, 1.0) > 0);
        let shipped = agent
            .tick(now + chrono::Duration::seconds(15))
            .await
            .unwrap();
        let Shipped::Diff { records, .. } = shipped else {
            panic!("churn ships a diff, not {shipped:?}");
        };
        assert!(records > 0);
    }
}
