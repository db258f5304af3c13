//! Setting value types shared by `outpost agent` and `outpost index`: durations, cron schedules
//! and label selectors, each parsed in one place.

pub mod duration;
pub mod schedule;
pub mod selector;
