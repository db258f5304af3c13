//! A cluster's lifecycle state from the age of its heartbeat (docs/FORMAT.md §5.4): ACTIVE,
//! then STALE (rows kept, flagged), then EVICTED (rows removed); decommissioned clusters are
//! evicted at once.

use std::time::Duration;

use super::checkpoint::ClusterState;

/// How long a silent cluster stays ACTIVE, then STALE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graces {
    /// Heartbeat older than this: STALE (default 15 min: three missed heartbeats of 5 min).
    pub stale_after: Duration,
    /// Heartbeat older than this: EVICTED (default 24 h).
    pub evict_after: Duration,
}

impl Default for Graces {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(15 * 60),
            evict_after: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl Graces {
    /// Checks that eviction comes after staleness.
    pub fn check(&self) -> Result<(), String> {
        if self.evict_after <= self.stale_after {
            return Err(format!(
                "evictAfter ({}s) must be longer than staleAfter ({}s)",
                self.evict_after.as_secs(),
                self.stale_after.as_secs()
            ));
        }
        Ok(())
    }
}

/// How far ahead of the indexer's clock a heartbeat may be (clock skew between a cluster and
/// the indexer). A heartbeat further ahead is a fault: counted as fresh, it would keep a cluster
/// ACTIVE long after it went silent.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(10 * 60);

/// Checks a heartbeat at `heartbeat_ms` read at `now_ms` (Unix ms): how far ahead of the clock
/// it is when that is more than [`MAX_CLOCK_SKEW`].
pub fn check_heartbeat(now_ms: i64, heartbeat_ms: i64) -> Result<(), Duration> {
    let ahead = u64::try_from(heartbeat_ms.saturating_sub(now_ms)).unwrap_or(0);
    if u128::from(ahead) > MAX_CLOCK_SKEW.as_millis() {
        Err(Duration::from_millis(ahead))
    } else {
        Ok(())
    }
}

/// The state of a cluster at `now_ms` whose last heartbeat was at `heartbeat_ms` (Unix ms).
/// A heartbeat in the future (clock skew, at most [`MAX_CLOCK_SKEW`] as
/// [`check_heartbeat`] makes sure of before it is recorded) counts as fresh; no heartbeat at all counts as fresh
/// too (nothing was ever indexed, so there is nothing to flag).
pub fn state_for(
    now_ms: i64,
    heartbeat_ms: Option<i64>,
    decommissioned: bool,
    graces: &Graces,
) -> ClusterState {
    if decommissioned {
        return ClusterState::Evicted;
    }
    let Some(heartbeat) = heartbeat_ms else {
        return ClusterState::Active;
    };
    let age = u128::try_from(now_ms.saturating_sub(heartbeat)).unwrap_or(0);
    if age >= graces.evict_after.as_millis() {
        ClusterState::Evicted
    } else if age >= graces.stale_after.as_millis() {
        ClusterState::Stale
    } else {
        ClusterState::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_heartbeat_ahead_by_more_than_the_skew_is_refused() {
        let now = 1_000_000 * MIN;
        let skew = MAX_CLOCK_SKEW.as_millis() as i64;
        assert_eq!(check_heartbeat(now, now), Ok(()));
        assert_eq!(check_heartbeat(now, now - 100 * MIN), Ok(()));
        assert_eq!(check_heartbeat(now, now + skew), Ok(()));
        assert_eq!(
            check_heartbeat(now, now + skew + 1),
            Err(Duration::from_millis(skew as u64 + 1))
        );
        assert_eq!(
            check_heartbeat(i64::MIN, i64::MAX),
            Err(Duration::from_millis(i64::MAX as u64))
        );
        assert_eq!(check_heartbeat(i64::MAX, i64::MIN), Ok(()));
    }

    #[test]
    fn states_follow_the_heartbeat_age() {
        let g = Graces::default();
        let now = 1_000_000 * MIN;
        assert_eq!(state_for(now, Some(now), false, &g), ClusterState::Active);
        assert_eq!(
            state_for(now, Some(now - 14 * MIN), false, &g),
            ClusterState::Active
        );
        assert_eq!(
            state_for(now, Some(now - 15 * MIN), false, &g),
            ClusterState::Stale
        );
        assert_eq!(
            state_for(now, Some(now - 24 * 60 * MIN + 1), false, &g),
            ClusterState::Stale
        );
        assert_eq!(
            state_for(now, Some(now - 24 * 60 * MIN), false, &g),
            ClusterState::Evicted
        );
        assert_eq!(
            state_for(now, Some(now + 5 * MIN), false, &g),
            ClusterState::Active
        );
        assert_eq!(state_for(now, None, false, &g), ClusterState::Active);
        assert_eq!(state_for(now, Some(now), true, &g), ClusterState::Evicted);
    }

    #[test]
    fn graces_must_be_ordered() {
        let g = Graces {
            stale_after: Duration::from_secs(60),
            evict_after: Duration::from_secs(60),
        };
        assert!(g.check().unwrap_err().contains("evictAfter (60s)"));
        assert!(Graces::default().check().is_ok());
    }

    proptest! {
        #[test]
        fn older_heartbeats_never_give_a_fresher_state(now in 0i64..1i64 << 50, a in 0i64..1i64 << 40, b in 0i64..1i64 << 40) {
            let g = Graces::default();
            let (young, old) = (a.min(b), a.max(b));
            prop_assert!(state_for(now, Some(now - young), false, &g) <= state_for(now, Some(now - old), false, &g));
        }
    }
}
