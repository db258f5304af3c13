//! What a run costs, read from `/proc`: memory and CPU of this process or a child, and CPU of the
//! database servers' processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use outpost::cache::Dialect;

/// A `/proc/<pid>/status` field in kB.
pub fn status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds (clock ticks of 1/100 s on Linux).
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command may contain spaces: fields start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// CPU seconds used so far by every process named `names` (the database servers).
pub fn server_cpu(names: &[&str]) -> f64 {
    server_cpu_by_pid(names).values().sum()
}

/// CPU seconds used so far by each process named `names`.
pub fn server_cpu_by_pid(names: &[&str]) -> BTreeMap<String, f64> {
    let mut total = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let pid = entry.file_name().to_string_lossy().to_string();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if names.contains(&comm.trim()) {
                let cpu = cpu_seconds(&pid);
                total.insert(pid, cpu);
            }
        }
    }
    total
}

/// The process names of the PostgreSQL server.
pub const PG_PROCS: &[&str] = &["postgres"];
/// The process names of the MariaDB (or MySQL) server.
pub const MYSQL_PROCS: &[&str] = &["mariadbd", "mysqld"];

/// The server processes of `dialect` (none for SQLite, which runs in the indexer's process).
pub fn procs_of(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Postgres => PG_PROCS,
        Dialect::MySql => MYSQL_PROCS,
        Dialect::Sqlite => &[],
    }
}

/// CPU seconds used by the database server's processes between start and stop, sampled every
/// 200 ms so that PostgreSQL backends that exit (a child's connections) are counted too.
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl CpuSampler {
    /// Starts sampling the processes named `names`.
    pub fn start(names: &'static [&'static str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let baseline = server_cpu_by_pid(names);
            let mut latest = baseline.clone();
            loop {
                let done = flag.load(Ordering::Relaxed);
                for (pid, cpu) in server_cpu_by_pid(names) {
                    latest.insert(pid, cpu);
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            latest
                .iter()
                .map(|(pid, cpu)| cpu - baseline.get(pid).copied().unwrap_or(0.0))
                .sum()
        });
        Self { stop, thread }
    }

    /// The CPU seconds they used since the start.
    pub fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0.0)
    }
}

/// Wall, indexer-process CPU and server CPU of one phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseTime {
    pub wall: f64,
    pub client_cpu: f64,
    pub server_cpu: f64,
}

/// A phase being timed: where the wall clock and the CPU counters stood at its start.
pub struct Clock {
    procs: &'static [&'static str],
    wall: Instant,
    client: f64,
    server: f64,
}

impl Clock {
    /// Starts timing a phase, the servers' CPU read from the processes named `procs`.
    pub fn start(procs: &'static [&'static str]) -> Self {
        Self {
            procs,
            wall: Instant::now(),
            client: cpu_seconds("self"),
            server: server_cpu(procs),
        }
    }

    /// What the phase took.
    pub fn stop(self) -> PhaseTime {
        PhaseTime {
            wall: self.wall.elapsed().as_secs_f64(),
            client_cpu: cpu_seconds("self") - self.client,
            server_cpu: server_cpu(self.procs) - self.server,
        }
    }
}
