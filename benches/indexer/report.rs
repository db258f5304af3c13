//! What a run prints: progress lines on stderr while it runs, and at the end the report (the
//! tables BENCHMARKS.md quotes) on stdout.

use std::time::Instant;

use outpost::indexer::apply::ApplyStats;

use crate::activity::{Samples, sample_rows};
use crate::baselines::{Baselines, Written};
use crate::diffs::DiffRounds;
use crate::fleet::FleetRun;
use crate::load::Load;
use crate::measure::PhaseTime;

/// Prints a progress line with the time since the start of the run.
pub fn progress(started: Instant, what: &str) {
    eprintln!("[{:7.1} s] {what}", started.elapsed().as_secs_f64());
}

/// `n` with commas between groups of three digits.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Everything a run measured, for the report.
pub struct Results {
    /// A release run (`cargo bench`) rather than the smoke run of `cargo test`.
    pub full: bool,
    pub fleet_concurrency: usize,
    /// The big cluster's objects, and its snapshot's records and compressed bytes.
    pub objects: usize,
    pub snapshot_records: u64,
    pub snapshot_bytes: u64,
    pub loads: Vec<Load>,
    /// What each server's sessions did during its snapshot load.
    pub load_samples: Vec<(&'static str, Samples)>,
    pub baselines: Baselines,
    /// What a snapshot load wrote on PostgreSQL, then on MariaDB.
    pub written: Vec<Written>,
    pub phases: Vec<(&'static str, PhaseTime)>,
    pub diffs: DiffRounds,
    /// Each database's rows against the reference builder's, as a one-line verdict.
    pub checks: Vec<(&'static str, String)>,
    pub fleet: Option<FleetRun>,
}

/// The report's lines, printed on stdout as they are added.
#[derive(Default)]
pub struct Report {
    pub lines: Vec<String>,
}

impl Report {
    fn out(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }

    /// The whole report of `results`, the run having started at `started`.
    pub fn of(results: &Results, started: Instant) -> Self {
        let mut report = Self::default();
        report.snapshot_loads(results);
        report.written(results);
        report.phases(results);
        report.load_samples(results);
        report.diffs(results);
        report.checks(results);
        if let Some(fleet) = &results.fleet {
            report.fleet(fleet, results.fleet_concurrency);
        }
        report.out(String::new());
        report.out(format!(
            "Whole run: {:.0} s.",
            started.elapsed().as_secs_f64()
        ));
        report
    }

    /// The snapshot loads against the baselines loading the same rows without the indexer.
    fn snapshot_loads(&mut self, results: &Results) {
        let Results {
            objects,
            snapshot_records,
            snapshot_bytes,
            loads,
            baselines,
            ..
        } = results;
        let Baselines {
            copied,
            copy_seconds,
            copied_all,
            copy_all_seconds,
            inserted,
        } = *baselines;
        let pg_load = &loads[0].result;
        self.out(String::new());
        self.out(format!(
            "Snapshot: {objects} objects, {snapshot_records} records, {:.1} MB compressed. {}.",
            *snapshot_bytes as f64 / 1e6,
            if results.full {
                "Release build"
            } else {
                "Smoke run"
            }
        ));
        self.out(String::new());
        self.out("| Snapshot load | rows | s | rows/s | indexer peak RSS (VmHWM) | indexer CPU s | server CPU s |".into());
        self.out("|---|---:|---:|---:|---:|---:|---:|".into());
        for Load {
            label,
            result: r,
            server_cpu: server,
        } in loads
        {
            self.out(format!(
                "| indexer → {label} | {} | {:.1} | {} | {:.0} MB (idle {:.0} MB) | {:.1} | {} |",
                thousands(r.rows_written),
                r.seconds,
                thousands((r.rows_written as f64 / r.seconds) as u64),
                r.hwm_kb as f64 / 1024.0,
                r.hwm_before_kb as f64 / 1024.0,
                r.cpu_seconds,
                if *label == "SQLite" {
                    "(in-process)".to_string()
                } else {
                    format!("{server:.1}")
                }
            ));
        }
        self.out(format!(
            "| COPY FROM STDIN (csv) → PostgreSQL, the same cats rows | {} | {copy_seconds:.2} | {} | | | |",
            thousands(copied),
            thousands((copied as f64 / copy_seconds) as u64)
        ));
        self.out(format!(
            "| COPY FROM STDIN (csv) → PostgreSQL, every row the load wrote ({} with outpost_resources and outpost_links) | {} | {copy_all_seconds:.2} | {} | | | |",
            thousands(copied_all),
            thousands(copied),
            thousands((copied as f64 / copy_all_seconds) as u64)
        ));
        if let Some(((rows, seconds), (rows_all, seconds_all))) = inserted {
            self.out(format!(
                "| multi-row INSERT (500) → MariaDB, the same cats rows | {} | {seconds:.2} | {} | | | |",
                thousands(rows),
                thousands((rows as f64 / seconds) as u64)
            ));
            self.out(format!(
                "| multi-row INSERT (500) → MariaDB, every row the load wrote ({} with outpost_resources and outpost_links) | {} | {seconds_all:.2} | {} | | | |",
                thousands(rows_all),
                thousands(rows),
                thousands((rows as f64 / seconds_all) as u64)
            ));
        }
        self.out(String::new());
        // Same rows, so rows/s ratios are ratios of the baseline's time to the indexer's.
        let percent = |baseline: f64, load: f64| baseline / load * 100.0;
        self.out(format!(
            "Indexer / baseline (goal ≥ 50%): PostgreSQL {:.1}% of COPY of every row it wrote, {:.1}% of COPY of its cats rows alone{}.",
            percent(copy_all_seconds, pg_load.seconds),
            percent(copy_seconds, pg_load.seconds),
            match (inserted, loads.iter().find(|l| l.label == "MariaDB")) {
                (Some(((_, seconds), (_, seconds_all))), Some(Load { result: r, .. })) => format!(
                    "; MariaDB {:.1}% of multi-row INSERT of every row it wrote, {:.1}% of its cats rows alone",
                    percent(seconds_all, r.seconds),
                    percent(seconds, r.seconds)
                ),
                _ => String::new(),
            }
        ));
    }

    /// What a snapshot load writes, in rows and bytes, per table group and server.
    fn written(&mut self, results: &Results) {
        self.out(String::new());
        self.out("| Written by a snapshot load | PostgreSQL rows | PostgreSQL size | MariaDB rows | MariaDB size (approx.) |".into());
        self.out("|---|---:|---:|---:|---:|".into());
        let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
        let pick = |i: usize| -> Vec<(u64, u64)> {
            results
                .written
                .iter()
                .map(|w| [w.cats, w.resources, w.links][i])
                .collect()
        };
        for (i, name) in [
            "cats_v1_* (Clouddriver's rows)",
            "outpost_resources",
            "outpost_links",
        ]
        .iter()
        .enumerate()
        {
            let v = pick(i);
            let cell = |j: usize| {
                v.get(j)
                    .map(|(r, b)| (thousands(*r), mb(*b)))
                    .unwrap_or_default()
            };
            let (pr, pb) = cell(0);
            let (mr, mbytes) = cell(1);
            self.out(format!("| {name} | {pr} | {pb} | {mr} | {mbytes} |"));
        }
    }

    /// The PostgreSQL snapshot load step by step, when it was replayed.
    fn phases(&mut self, results: &Results) {
        if results.phases.is_empty() {
            return;
        }
        self.out(String::new());
        self.out(
            "| PostgreSQL snapshot load, step by step | wall s | indexer CPU s | server CPU s |"
                .into(),
        );
        self.out("|---|---:|---:|---:|".into());
        for (what, p) in &results.phases {
            self.out(format!(
                "| {what} | {:.1} | {:.1} | {:.1} |",
                p.wall, p.client_cpu, p.server_cpu
            ));
        }
    }

    /// What each server's sessions were doing during its snapshot load.
    fn load_samples(&mut self, results: &Results) {
        for (label, samples) in &results.load_samples {
            self.out(String::new());
            self.out(format!(
                "What the {label} sessions were doing during the snapshot load (sampled every 100 ms):"
            ));
            self.samples(samples);
        }
    }

    /// A table of the most sampled statements.
    fn samples(&mut self, samples: &Samples) {
        self.out(String::new());
        self.out("| statement | share of samples | ≈ s |".into());
        self.out("|---|---:|---:|".into());
        for row in sample_rows(samples, 8) {
            self.out(row);
        }
    }

    /// The three rounds of 10-object diffs on each database.
    fn diffs(&mut self, results: &Results) {
        self.out(String::new());
        self.out(format!(
            "Diffs of 10 changed objects ({:?} records) into the {}-object account, three rounds:",
            results.diffs.records, results.objects
        ));
        self.out(String::new());
        self.out(
            "| 10-object diff | ms (each round) | rows written | rows unchanged | rows deleted |"
                .into(),
        );
        self.out("|---|---:|---:|---:|---:|".into());
        for (label, rounds) in &results.diffs.by_database {
            let list = |f: &dyn Fn(&(f64, ApplyStats)) -> String| {
                rounds.iter().map(f).collect::<Vec<_>>().join(" / ")
            };
            self.out(format!(
                "| {label} | {} | {} | {} | {} |",
                list(&|(s, _)| format!("{:.0}", s * 1000.0)),
                list(&|(_, st)| st.rows_written.to_string()),
                list(&|(_, st)| st.rows_unchanged.to_string()),
                list(&|(_, st)| st.rows_deleted.to_string()),
            ));
        }
    }

    /// Each database's rows after the diffs against the reference builder's, when checked.
    fn checks(&mut self, results: &Results) {
        if results.checks.is_empty() {
            return;
        }
        self.out(String::new());
        for (label, verdict) in &results.checks {
            self.out(format!("Rows after the diffs, {label}: {verdict}."));
        }
    }

    /// One indexer over the fleet of small clusters: its first run and the next.
    fn fleet(&mut self, fleet: &FleetRun, concurrency: usize) {
        let FleetRun {
            clusters,
            objects,
            first,
            next,
            samples,
        } = fleet;
        self.out(String::new());
        self.out(format!(
            "One indexer, {clusters} clusters ({objects} objects in all), {concurrency} at once, PostgreSQL:"
        ));
        self.out(String::new());
        self.out("| run_once(None) | clusters | applied | rows written | s | clusters/s | indexer CPU s | server CPU s |".into());
        self.out("|---|---:|---:|---:|---:|---:|---:|---:|".into());
        self.out(format!(
            "| first run (every snapshot) | {clusters} | {} snapshots | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            first.applied,
            thousands(first.rows),
            first.seconds,
            *clusters as f64 / first.seconds,
            first.client_cpu,
            first.server_cpu
        ));
        self.out(format!(
            "| next run (10% shipped one diff, {} records in all) | {clusters} | {} diffs, {} unchanged | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            next.records,
            next.applied,
            next.unchanged,
            thousands(next.rows),
            next.seconds,
            *clusters as f64 / next.seconds,
            next.client_cpu,
            next.server_cpu
        ));
        if !samples.is_empty() {
            self.out(String::new());
            self.out("What the PostgreSQL sessions were doing during the first run (sampled every 100 ms):".into());
            self.samples(samples);
        }
    }
}
