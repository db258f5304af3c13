//! When the agent ships and the indexer runs: every fixed interval, or at the times of a
//! crontab-style schedule (pure, no I/O).
//!
//! A schedule is checked and parsed once, where the setting is read (`--schedule` of both
//! commands, `schedule:` in the agent's file). The check is our own, field by field, because its
//! errors name the field and what is wrong (`minute field "61": 61 is outside 0-59`) where the
//! `cron` crate's do not. Schedules are written as in crontab and Kubernetes CronJobs (5 fields, Sunday = 0 or 7, or 6
//! fields with seconds first, or `@hourly`-style shortcuts) and evaluated by the `cron` crate,
//! whose day-of-week numbering differs (Sunday = 1); day-of-week fields are therefore rewritten
//! as day names.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("schedule {expression:?}: {reason}")]
    Parse { expression: String, reason: String },
}

/// When to ship.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Every so often, from the previous ship.
    Every(Duration),
    /// At the times of a schedule (UTC).
    Cron(Schedule),
}

impl Trigger {
    /// A trigger for a crontab-style expression.
    pub fn cron(expression: &str) -> Result<Self, Error> {
        Schedule::parse(expression)
            .map(Self::Cron)
            .map_err(|reason| Error::Parse {
                expression: expression.to_string(),
                reason,
            })
    }

    /// How long from `now` until the next ship.
    pub fn delay(&self, now: DateTime<Utc>) -> Duration {
        match self {
            Self::Every(interval) => *interval,
            Self::Cron(schedule) => schedule
                .after(&now)
                .next()
                .and_then(|next| (next - now).to_std().ok())
                // A schedule with no future time (e.g. a past year): check again in an hour.
                .unwrap_or(Duration::from_secs(3600)),
        }
    }
}

/// A cron schedule, checked and parsed once.
///
/// Five fields (`minute hour day-of-month month day-of-week`, as in crontab and Kubernetes
/// CronJobs) or six (`second` first). Each field is a comma-separated list of `*`, `N`, `N-M`,
/// each optionally `/STEP`; `?` is accepted for either day field. Months may be `JAN`…`DEC`,
/// days of the week `SUN`…`SAT` or `0`…`7` (0 and 7 are Sunday, as in crontab). Also `@yearly`,
/// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as given, with single spaces between fields.
    text: String,
    parsed: Box<cron::Schedule>,
}

impl Schedule {
    /// Parses a crontab-style expression; the error explains the first problem.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let text = check(expression)?;
        let converted = to_cron_crate(&text).map_err(|e| e.to_string())?;
        let parsed: cron::Schedule = converted
            .parse()
            .map_err(|e: cron::error::Error| e.to_string())?;
        Ok(Self {
            text,
            parsed: Box::new(parsed),
        })
    }

    /// The expression, with single spaces between fields.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the expression has a seconds field (six fields).
    pub fn has_seconds(&self) -> bool {
        self.text.split_whitespace().count() == 6
    }

    /// The times the schedule fires after `time` (UTC).
    pub fn after<'a>(
        &'a self,
        time: &'a DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + 'a {
        self.parsed.after(time)
    }
}

/// Two schedules are the same when their expressions are.
impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites a crontab expression into the `cron` crate's form: seconds first, and the
/// day-of-week field as day names (so numbering differences cannot matter).
fn to_cron_crate(expression: &str) -> Result<String, Error> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let invalid = |reason: String| Error::Parse {
        expression: expression.to_string(),
        reason,
    };
    let mut fields: Vec<String> = match fields.len() {
        1 if fields[0].starts_with('@') => return Ok(fields[0].to_string()),
        5 => std::iter::once("0")
            .chain(fields)
            .map(str::to_string)
            .collect(),
        6 => fields.into_iter().map(str::to_string).collect(),
        n => {
            return Err(invalid(format!(
                "{n} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            )));
        }
    };
    let days = days_of_week(&fields[5]).map_err(invalid)?;
    fields[5] = match days {
        None => fields[5].clone(), // `*` or `?`
        Some(days) => days
            .iter()
            .map(|d| DAY_NAMES[*d])
            .collect::<Vec<_>>()
            .join(","),
    };
    Ok(fields.join(" "))
}

/// The days (0 = Sunday) a crontab day-of-week field names, or `None` for `*` / `?`.
fn days_of_week(field: &str) -> Result<Option<BTreeSet<usize>>, String> {
    if field == "*" || field == "?" {
        return Ok(None);
    }
    let day = |text: &str| -> Result<usize, String> {
        if let Some(i) = DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(text)) {
            return Ok(i);
        }
        match text.parse::<usize>() {
            Ok(n @ 0..=7) => Ok(n % 7),
            _ => Err(format!(
                "{text:?} is not a day of the week (0-7 or SUN-SAT)"
            )),
        }
    };
    let mut days = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<usize>()
                    .map_err(|_| format!("bad step in {item:?}"))?,
            ),
            None => (item, 1),
        };
        if step == 0 {
            return Err(format!("a step of 0 in {item:?}"));
        }
        let (first, last) = match range {
            "*" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => {
                    // 7 closes a range as Sunday at the end of the week (5-7 = Fri..Sun).
                    let last = if b == "7" { 7 } else { day(b)? };
                    (day(a)?, last)
                }
                None if item.contains('/') => (day(range)?, 6),
                None => (day(range)?, day(range)?),
            },
        };
        if first > last {
            return Err(format!("the range {range:?} runs backwards"));
        }
        days.extend((first..=last).step_by(step).map(|d| d % 7));
    }
    Ok(Some(days))
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of `names[0]`.
    names_start: u32,
    question_mark: bool,
}

const SECOND: CronField = CronField {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
    names_start: 0,
    question_mark: false,
};
const MINUTE: CronField = CronField {
    name: "minute",
    ..SECOND
};
const HOUR: CronField = CronField {
    name: "hour",
    max: 23,
    ..SECOND
};
const DAY_OF_MONTH: CronField = CronField {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    names_start: 0,
    question_mark: true,
};
const MONTH: CronField = CronField {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
    names_start: 1,
    question_mark: false,
};
const DAY_OF_WEEK: CronField = CronField {
    name: "day of week",
    min: 0,
    max: 7,
    names: DAYS,
    names_start: 0,
    question_mark: true,
};

/// Checks a cron expression field by field, so that the error names the field and what is wrong
/// with it (the `cron` crate's own errors do not); returns it with single spaces between fields.
fn check(expression: &str) -> Result<String, String> {
    let expression = expression.trim();
    if let Some(name) = expression.strip_prefix('@') {
        return match name {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(expression.to_string())
            }
            _ => Err(format!(
                "unknown @{name}; use @yearly, @monthly, @weekly, @daily or @hourly"
            )),
        };
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let layout: &[CronField] = match fields.len() {
        5 => &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        6 => &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        n => {
            return Err(format!(
                "it has {n} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second first)"
            ));
        }
    };
    for (text, field) in fields.iter().zip(layout) {
        check_cron_field(text, field)
            .map_err(|reason| format!("{} field {text:?}: {reason}", field.name))?;
    }
    Ok(fields.join(" "))
}

fn check_cron_field(text: &str, field: &CronField) -> Result<(), String> {
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if n >= 1 && n <= field.max.max(1) => {}
                _ => {
                    return Err(format!(
                        "the step {step:?} must be a whole number from 1 to {}",
                        field.max.max(1)
                    ));
                }
            }
        }
        match base {
            "" => return Err("an empty item (a stray comma or slash?)".into()),
            "*" => {}
            "?" if field.question_mark && step.is_none() => {}
            "?" => return Err("'?' is only for a day field, without a step".into()),
            _ => match base.split_once('-') {
                Some((low, high)) => {
                    let low = cron_value(low, field)?;
                    let high = cron_value(high, field)?;
                    if low > high {
                        return Err(format!("the range {base:?} runs backwards"));
                    }
                }
                None => {
                    cron_value(base, field)?;
                }
            },
        }
    }
    Ok(())
}

fn cron_value(text: &str, field: &CronField) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        if n < field.min || n > field.max {
            return Err(format!("{n} is outside {}-{}", field.min, field.max));
        }
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    match field.names.iter().position(|name| *name == upper) {
        Some(i) => Ok(field.names_start + i as u32),
        None if field.names.is_empty() => Err(format!("{text:?} is not a number")),
        None => Err(format!(
            "{text:?} is neither a number from {} to {} nor one of {}",
            field.min,
            field.max,
            field.names.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    use super::*;

    fn fires(expression: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let Trigger::Cron(schedule) = Trigger::cron(expression).unwrap() else {
            panic!()
        };
        schedule.after(&from).take(n).collect()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        let times = fires("*/5 * * * *", at(2026, 11, 23, 10, 2), 3);
        assert_eq!(
            times,
            vec![
                at(2026, 11, 23, 10, 5),
                at(2026, 11, 23, 10, 10),
                at(2026, 11, 23, 10, 15)
            ]
        );
    }

    #[test]
    fn crontab_day_numbers_mean_what_crontab_says() {
        // From Sunday 2026-11-22 23:00: the next fires, by weekday.
        let sunday_night = at(2026, 11, 22, 23, 0);
        let days = |expression: &str, n: usize| -> Vec<Weekday> {
            fires(expression, sunday_night, n)
                .iter()
                .map(|t| t.weekday())
                .collect()
        };
        assert_eq!(
            days("0 9 * * 1-5", 6),
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Mon
            ]
        );
        assert_eq!(days("0 9 * * 0", 1), [Weekday::Sun]);
        assert_eq!(days("0 9 * * 7", 1), [Weekday::Sun]);
        assert_eq!(days("0 9 * * SAT", 1), [Weekday::Sat]);
        assert_eq!(
            days("0 9 * * 5-7", 3),
            [Weekday::Fri, Weekday::Sat, Weekday::Sun]
        );
        assert_eq!(
            days("0 9 * * */2", 4),
            [Weekday::Tue, Weekday::Thu, Weekday::Sat, Weekday::Sun]
        );
        assert!(fires("0 9 * * 1-5", sunday_night, 1)[0].hour() == 9);
    }

    #[test]
    fn six_fields_have_seconds_first_and_shortcuts_pass_through() {
        let times = fires("30 * * * * *", at(2026, 11, 23, 10, 0), 2);
        assert_eq!(times[0].second(), 30);
        assert_eq!((times[1] - times[0]).num_seconds(), 60);
        let hourly = fires("@hourly", at(2026, 11, 23, 10, 7), 1);
        assert_eq!(hourly, vec![at(2026, 11, 23, 11, 0)]);
    }

    #[test]
    fn delays_follow_the_trigger() {
        let now = at(2026, 11, 23, 10, 2) + chrono::Duration::seconds(30);
        assert_eq!(
            Trigger::cron("*/5 * * * *").unwrap().delay(now),
            Duration::from_secs(150)
        );
        assert_eq!(
            Trigger::Every(Duration::from_secs(15)).delay(now),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expression, expect) in [
            ("* * *", "3 fields"),
            ("0 9 * * 8", "8 is outside 0-7"),
            ("0 9 * * 5-1", "backwards"),
            ("0 9 * * 1/0", "the step \"0\""),
            ("61 * * * *", "schedule"),
        ] {
            let err = Trigger::cron(expression).unwrap_err().to_string();
            assert!(
                err.contains(expect) && err.contains(expression),
                "{expression}: {err}"
            );
        }
    }
}
