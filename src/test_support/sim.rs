//! A simulated cluster shipping into a store through the agent's own pipeline, on a clock the
//! test or benchmark chooses.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::agent::ship::Shipped;
use crate::agent::simulated::SimAgent;
use crate::format::{ClusterName, Identity};
use crate::sim::Churn;
use crate::store::Store;

/// How a [`SimCluster`] dates its ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShipClock {
    /// Each ship 15 s after the previous one, from a minute ago: a test ships many times within
    /// a second, each ship still spaced from the last as an agent spaces them.
    Stepped,
    /// The wall clock, strictly increasing: the indexer judges heartbeats against its own clock,
    /// and a benchmark runs long enough for a stepped clock to leave it behind.
    Wall,
}

/// A simulated cluster (the agent's own pipeline, [`SimAgent`], which it dereferences to)
/// shipping into a store.
pub struct SimCluster {
    agent: SimAgent,
    clock: ShipClock,
    /// The time of the last ship (before the first one, where the clock starts).
    t: DateTime<Utc>,
}

impl std::ops::Deref for SimCluster {
    type Target = SimAgent;
    fn deref(&self) -> &SimAgent {
        &self.agent
    }
}

impl std::ops::DerefMut for SimCluster {
    fn deref_mut(&mut self) -> &mut SimAgent {
        &mut self.agent
    }
}

impl SimCluster {
    /// A cluster named `name` holding the initial objects of a churn of `objects` objects from
    /// `seed` (not shipped yet), on the stepped clock.
    pub fn new(store: &Store, name: &str, seed: u64, objects: usize) -> Self {
        Self::with_churn(store, name, Churn::new(seed, objects))
    }

    /// A cluster holding `churn`'s initial objects (not shipped yet), on the stepped clock.
    pub fn with_churn(store: &Store, name: &str, churn: Churn) -> Self {
        let cluster = ClusterName::new(name)
            .unwrap_or_else(|e| panic!("{name:?} is not a valid cluster name: {e}"));
        Self {
            agent: SimAgent::new(store, cluster, churn, &[3; 32]).expect("a valid redaction key"),
            clock: ShipClock::Stepped,
            t: Utc::now() - Duration::minutes(1),
        }
    }

    /// The same cluster, its first ship `at` and each later one `seconds` after the previous
    /// with [`Self::ship_after`] (a test that needs heartbeats minutes apart, or old ones).
    pub fn starting_at(mut self, at: DateTime<Utc>) -> Self {
        self.t = at;
        self
    }

    /// Writes the cluster's `identity.json`, with `kube_system_uid` and the kinds and resources
    /// its agent watches, dated at its clock.
    pub async fn write_identity(&self, store: &Store, kube_system_uid: &str) {
        let mut identity = Identity::new(self.agent.name.clone(), self.t);
        identity.kube_system_uid = Some(kube_system_uid.to_string());
        self.agent.describe(&mut identity);
        store
            .put_overwrite(
                &store.layout().identity(&self.agent.name),
                identity.to_json().expect("identity JSON").into(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: identity.json written: {e}", self.agent.name));
    }

    /// What the agent's shipping loop does `seconds` after the last ship (0: at the clock's
    /// start).
    pub async fn ship_after(&mut self, seconds: i64) -> Shipped {
        self.t += Duration::seconds(seconds);
        let now = self.t;
        self.agent
            .tick(now)
            .await
            .unwrap_or_else(|e| panic!("{} ships: {e}", self.agent.name))
    }

    /// The same cluster shipping on the wall clock.
    pub fn on_wall_clock(mut self) -> Self {
        self.clock = ShipClock::Wall;
        self
    }

    /// Feeds churn events, in order, until `objects` distinct objects changed (the events a
    /// watch would have delivered by then); returns how many events that took.
    pub fn change_objects(&mut self, objects: usize) -> usize {
        let mut touched = BTreeSet::new();
        let mut events = 0;
        while touched.len() < objects {
            events += self.agent.step_while(1.0, 1.0, |event| {
                if touched.len() >= objects {
                    return false;
                }
                let o = event.object();
                touched.insert((
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ));
                true
            });
        }
        events
    }

    /// What the agent's shipping loop does at the clock's next time.
    pub async fn ship(&mut self) -> Shipped {
        self.t = match self.clock {
            ShipClock::Stepped => self.t + Duration::seconds(15),
            ShipClock::Wall => Utc::now().max(self.t + Duration::milliseconds(1)),
        };
        let now = self.t;
        self.agent
            .tick(now)
            .await
            .unwrap_or_else(|e| panic!("{} ships: {e}", self.agent.name))
    }
}
