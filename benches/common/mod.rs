//! Helpers shared by the end-to-end benches (Linux only): a private network namespace per
//! comparison, running the portlab binary that cargo built for this bench, and reading its
//! summary.json and CPU time.
#![allow(dead_code)] // each bench uses a different subset

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use portlab::lab;
use portlab::plan::lab::LabConfig;

/// The portlab binary built by cargo for this bench (release settings under `cargo bench`).
pub const PORTLAB: &str = env!("CARGO_BIN_EXE_portlab");

/// Enters a fresh private network namespace (lo up) with `tcp_tw_reuse = 1` and the given
/// port range and reuse delay. Threads and child processes started by this thread afterwards
/// live in it; the host is not touched. Needs root or unprivileged user namespaces.
pub fn enter_lab(port_range: &str, tw_reuse_delay_ms: Option<u32>) -> Result<lab::Applied> {
    let plan = LabConfig {
        isolate: true,
        port_range: Some(port_range.into()),
        tw_reuse: Some(1),
        tw_reuse_delay_ms,
        ..LabConfig::default()
    }
    .validate()
    .context("lab settings")?;
    lab::enter(&plan).context("entering a private network namespace")
}

/// Whether a private network namespace can be made here; the reason when it cannot.
pub fn lab_unavailable() -> Option<String> {
    // Probe on a thread of its own so the caller's namespace stays as it is.
    let probe = std::thread::spawn(|| enter_lab("32768-60999", None).map(|_| ()));
    match probe.join() {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some("the namespace probe panicked".into()),
    }
}

/// An integer from the environment, or a default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one portlab run measured.
#[derive(Debug, Clone)]
pub struct PortlabRun {
    /// The whole summary.json.
    pub summary: serde_json::Value,
    /// Connections that completed without error, per second of load.
    pub completed_rate: f64,
    /// CPU time (user + system) of the portlab process, seconds.
    pub cpu_s: f64,
    /// CPU time of its collector thread, seconds (last read a few ms before it exited).
    pub collector_cpu_s: f64,
}

impl PortlabRun {
    /// A number from summary.json by JSON pointer, e.g. "/schedule_lag_us/p99".
    pub fn num(&self, pointer: &str) -> f64 {
        self.summary
            .pointer(pointer)
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN)
    }
}

/// Runs `portlab run ARGS --format json --quiet --out TMP` in this thread's namespace and
/// returns its summary and CPU time. Bounded: portlab's own --duration / --count and drain
/// timeout bound it; `limit` kills it if it hangs.
pub fn run_portlab(args: &[&str], limit: Duration) -> Result<PortlabRun> {
    run_portlab_bin(PORTLAB, args, limit)
}

/// As [`run_portlab`], with another portlab binary (an earlier build, for before/after).
pub fn run_portlab_bin(bin: &str, args: &[&str], limit: Duration) -> Result<PortlabRun> {
    let out = tempfile::tempdir()?;
    let dir: PathBuf = out.path().join("run");
    let before = children_cpu_s();
    let mut child = Command::new(bin)
        .arg("run")
        .args(args)
        .args(["--format", "json", "--quiet", "--out"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting portlab")?;
    let deadline = std::time::Instant::now() + limit;
    let mut collector_ticks = 0u64;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        collector_ticks = thread_ticks(child.id(), "portlab-collect").unwrap_or(collector_ticks);
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("portlab {args:?} still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu_s = children_cpu_s() - before;
    let text = std::fs::read_to_string(dir.join("summary.json")).with_context(|| {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        format!("portlab {args:?} exited {status} without summary.json: {err}")
    })?;
    let summary: serde_json::Value = serde_json::from_str(&text)?;
    let completed = summary["completed"].as_f64().unwrap_or(0.0);
    let load_s = summary["load_duration_s"].as_f64().unwrap_or(f64::NAN);
    Ok(PortlabRun {
        completed_rate: completed / load_s,
        summary,
        cpu_s,
        collector_cpu_s: collector_ticks as f64 / clock_ticks_per_s(),
    })
}

/// CPU seconds (user + system) of every child waited for so far.
pub fn children_cpu_s() -> f64 {
    // SAFETY: rusage is plain old data, valid zeroed; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds (user + system) of this process so far.
pub fn self_cpu_s() -> f64 {
    // SAFETY: as above, RUSAGE_SELF.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds (user + system) of the calling thread so far.
pub fn thread_cpu_s() -> f64 {
    // SAFETY: as above, RUSAGE_THREAD (Linux).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// The median of some figures (NaN when there are none).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// utime + stime (clock ticks) of the thread of process `pid` named `name`, from /proc.
pub fn thread_ticks(pid: u32, name: &str) -> Option<u64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the ")" that ends the name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        return Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?);
    }
    None
}

/// Clock ticks per second (for /proc CPU times).
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf takes a constant and returns a value or -1.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
