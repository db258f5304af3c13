//! Setting value types shared by `outpost agent` and `outpost index`: durations and cron
//! schedules, each parsed in one place.

pub mod duration;
pub mod schedule;
