//! `portlab suite [DIR]`: every scenario of a directory, one after the other, in one table.
//!
//! Each scenario runs as a child process (`portlab run FILE --format json`): a lab run
//! enters its own network namespace on the thread that runs it, so a fresh process per
//! scenario keeps namespaces, sysctls and descriptors from leaking from one into the next,
//! and works without root (a user namespace can only be entered by a single-threaded
//! process). Every file is parsed and validated before the first one runs, so a typo in the
//! tenth file is refused before any traffic (exit 2).
//!
//! The table (scenario, what the model predicted, what was measured, verdict) is printed at
//! the end and written after every scenario as `suite.md` and `suite.json` in the suite's
//! results directory, with each run's own directory underneath. The command (and its
//! `--dry-run`) is cmd/suite.rs.

use crate::model::TimeWaitSide;
use crate::plan::{self, Plan};
use crate::report::{renderer, Format};
use crate::results::dir::{write_atomic, ResultsDir};
use crate::results::suite::{Outcome, Report, Row};
use crate::results::summary::Summary;
use anyhow::{anyhow, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

/// `portlab suite [DIR] [FLAGS]`
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// Directory of scenario files; every *.toml in it runs, in file-name order [default:
    /// scenarios/, or the built-in catalog (`portlab scenarios`) when ./scenarios does not
    /// exist].
    pub dir: Option<PathBuf>,
    /// Results directory for the suite [default results/suite-<UTC time>/]; each run gets a
    /// directory underneath.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output format on stdout: text (the table), json (suite.json), markdown (suite.md),
    /// csv (one row per scenario), junit (suite.junit.xml: one test suite per scenario, one
    /// test case per check), html (every run's page overlaid).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Use a non-empty --out directory, replacing portlab's own files in it (passed on to
    /// each run).
    #[arg(long)]
    pub force: bool,
    /// Run the commands scenario files give (target.exec, client.exec: java-bindexception,
    /// pgbench-*) as this user; without it a file with a command is refused before anything
    /// runs. Read the files first.
    #[arg(long)]
    pub allow_exec: bool,
    /// No line per scenario on stderr while the suite runs.
    #[arg(long, short)]
    pub quiet: bool,
    /// Validate every file and print each resolved plan with the model's prediction, as
    /// `run --dry-run` does; nothing is sent and nothing written. Exit 0 all valid, 2 not.
    #[arg(long)]
    pub dry_run: bool,
}

/// What `run` produced.
#[derive(Debug)]
pub struct SuiteResult {
    /// The table and its figures.
    pub report: Report,
    /// 0 all passed, 1 a verdict failed, 2 a run could not be set up, 130 interrupted.
    pub exit_code: u8,
}

/// The `*.toml` files of `dir`, in name order; an unreadable or empty directory is an error
/// saying what to name (`portlab suite [--dry-run] DIR`).
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.as_os_str() == BUILT_IN {
        return Ok(crate::catalog::entries()
            .map(|e| PathBuf::from(e.name))
            .collect());
    }
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the scenario directory {} (name a directory of *.toml files: portlab suite DIR)",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(anyhow!(
            "{} holds no *.toml scenario file; name a directory of scenarios (portlab suite DIR)",
            dir.display()
        ));
    }
    Ok(files)
}

/// The scenario files of `dir`, in name order, each validated as `portlab run` would, with
/// its name and, for a file that runs a command when `allow_exec` is not given, why it is
/// skipped and the command that runs it.
pub fn collect(dir: &Path, allow_exec: bool) -> Result<Vec<(PathBuf, String, Option<String>)>> {
    validate(scenario_files(dir)?, allow_exec)
}

/// Why `file` (the scenario in it) is not run without --allow-exec, with the command that
/// runs it; None when it runs no command or `allow_exec`.
pub fn skip_reason(file: &Path, scenario: &plan::Scenario, allow_exec: bool) -> Option<String> {
    if allow_exec {
        return None;
    }
    let (key, command) = [
        ("target.exec", &scenario.target.exec),
        ("client.exec", &scenario.client.exec),
    ]
    .into_iter()
    .find_map(|(k, c)| c.as_deref().map(|c| (k, c)))?;
    Some(format!(
        "{key} runs `{command}` as this user; read the file, then: portlab run {} --allow-exec",
        file.display()
    ))
}

/// What `Report::scenarios_dir` says when the suite ran the built-in catalog.
pub const BUILT_IN: &str = "(built-in catalog)";

/// The suite's directory: the one named, else ./scenarios, else the built-in catalog.
pub fn scenarios_dir(args: &SuiteArgs) -> PathBuf {
    match &args.dir {
        Some(dir) => dir.clone(),
        None if Path::new("scenarios").exists() => PathBuf::from("scenarios"),
        None => PathBuf::from(BUILT_IN),
    }
}

/// Each scenario (a file, or a built-in name) parsed and validated, with its name.
fn validate(
    files: Vec<PathBuf>,
    allow_exec: bool,
) -> Result<Vec<(PathBuf, String, Option<String>)>> {
    let mut out = Vec::with_capacity(files.len());
    let mut names = std::collections::BTreeMap::new();
    for file in files {
        let scenario = crate::catalog::load(&file)?;
        let plan = Plan::resolve(&scenario).with_context(|| format!("{}", file.display()))?;
        let skip = skip_reason(&file, &scenario, allow_exec);
        crate::lab::check_host(&scenario, &plan).with_context(|| format!("{}", file.display()))?;
        if let Some(other) = names.insert(plan.name.clone(), file.clone()) {
            return Err(anyhow!(
                "{} and {} are both named '{}'; each scenario of a suite needs its own name (it names its results directory)",
                other.display(),
                file.display(),
                plan.name
            ));
        }
        out.push((file, plan.name, skip));
    }
    Ok(out)
}

/// Runs every scenario of `args.dir`, prints the table, writes suite.md and suite.json.
pub fn run_all(args: &SuiteArgs, out: &mut dyn Write) -> Result<SuiteResult> {
    let scenarios_dir = scenarios_dir(args);
    let files = collect(&scenarios_dir, args.allow_exec)?;
    let exe = std::env::current_exe().context("finding the portlab executable")?;
    let results = ResultsDir::prepare("suite", args.out.as_deref(), args.force)?;
    let dir = results.path().to_path_buf();
    crate::sys::catch_stop_signals();
    let began = Instant::now();
    let mut report = Report {
        scenarios_dir: scenarios_dir.display().to_string(),
        results: dir.display().to_string(),
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        wall_s: 0.0,
        pass: true,
        scenarios: Vec::with_capacity(files.len()),
    };
    let flags: Vec<&str> = [
        args.force.then_some("--force"),
        args.allow_exec.then_some("--allow-exec"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let n = files.len();
    for (i, (file, name, skip)) in files.iter().enumerate() {
        if !args.quiet {
            eprint!("[{}/{n}] {name} ... ", i + 1);
        }
        let row = match skip {
            Some(why) => skipped_row(file, name, &dir.join(name), why),
            None => run_one(&exe, file, name, &dir.join(name), &flags),
        };
        if !args.quiet {
            eprintln!(
                "{} in {:.1} s{}",
                row.verdict.as_str(),
                row.wall_s,
                if row.problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", row.problems.join("; "))
                }
            );
        }
        let stop = row.verdict == Outcome::Interrupted;
        report.scenarios.push(row);
        report.wall_s = began.elapsed().as_secs_f64();
        report.pass = report
            .scenarios
            .iter()
            .all(|r| matches!(r.verdict, Outcome::Pass | Outcome::Skipped));
        // Written after each scenario: an interrupted or crashed suite keeps what it ran.
        write_files(&report, &dir)?;
        if stop || crate::sys::stop_signals() > 0 {
            break;
        }
    }
    renderer(args.format)
        .suite(&report, out)
        .context("writing the table to stdout")?;
    let verdicts: Vec<Outcome> = report.scenarios.iter().map(|r| r.verdict).collect();
    let exit_code = if verdicts.contains(&Outcome::Interrupted) || verdicts.len() < n {
        130
    } else if verdicts.contains(&Outcome::Error) {
        2
    } else if verdicts.contains(&Outcome::Fail) {
        1
    } else {
        0
    };
    Ok(SuiteResult { report, exit_code })
}

/// The row of a scenario not run (see [`skip_reason`]).
fn skipped_row(file: &Path, name: &str, out: &Path, why: &str) -> Row {
    Row {
        scenario: name.to_string(),
        file: file.display().to_string(),
        results: out.display().to_string(),
        verdict: Outcome::Skipped,
        exit_code: None,
        wall_s: 0.0,
        predicted: "-".into(),
        measured: "-".into(),
        problems: vec![why.to_string()],
        prediction: None,
        checks: None,
    }
}

/// Runs one scenario as `portlab run FILE --out DIR --format json` and reads its summary.
/// `flags` are the suite's own passed on (--force, --allow-exec).
fn run_one(exe: &Path, file: &Path, name: &str, out: &Path, flags: &[&str]) -> Row {
    let began = Instant::now();
    let output = Command::new(exe)
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        // Not --quiet: its warnings belong in stderr.log (no progress shows off a terminal).
        .args(["--format", "json"])
        .args(flags)
        .stdin(Stdio::null())
        .output();
    let wall_s = began.elapsed().as_secs_f64();
    let mut row = Row {
        scenario: name.to_string(),
        file: file.display().to_string(),
        results: out.display().to_string(),
        verdict: Outcome::Error,
        exit_code: None,
        wall_s,
        predicted: "-".into(),
        measured: "-".into(),
        problems: Vec::new(),
        prediction: None,
        checks: None,
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            row.problems
                .push(format!("cannot start {}: {e}", exe.display()));
            return row;
        }
    };
    if !output.stderr.is_empty() {
        let _ = std::fs::create_dir_all(out);
        let _ = std::fs::write(out.join("stderr.log"), &output.stderr);
    }
    row.exit_code = output.status.code();
    let summary: Option<Summary> = serde_json::from_slice(&output.stdout).ok();
    row.verdict = match (row.exit_code, &summary) {
        (Some(130), _) => Outcome::Interrupted,
        (Some(0), Some(_)) => Outcome::Pass,
        (Some(1), Some(_)) => Outcome::Fail,
        _ => Outcome::Error,
    };
    match &summary {
        Some(s) => {
            row.predicted = predicted(s);
            row.measured = measured(s);
            row.prediction = s.prediction.clone();
            row.checks = s.verdict.clone();
            if let Some(v) = &s.verdict {
                row.problems
                    .extend(v.checks.iter().filter(|c| !c.pass).map(|c| {
                        format!("{} expected {} measured {}", c.name, c.expected, c.measured)
                    }));
            }
        }
        None => {
            let err = String::from_utf8_lossy(&output.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no summary and no message");
            row.problems.push(last.trim().to_string());
        }
    }
    row
}

/// Lab seconds -> modelled seconds for this run.
fn scale(s: &Summary) -> f64 {
    s.modelled.as_ref().map_or(1.0, |m| m.time_scale)
}

/// "3.00 s" or "2.21 s (132.5 s modelled)".
fn at(s: &Summary, t: f64) -> String {
    let k = scale(s);
    if k == 1.0 {
        format!("{t:.2} s")
    } else {
        format!("{t:.2} s ({:.1} s modelled)", t * k)
    }
}

/// The model's prediction in a few words.
pub fn predicted(s: &Summary) -> String {
    let Some(p) = &s.prediction else {
        return "-".into();
    };
    let error = &p.exhaustion_error;
    match (p.exhausts, p.first_error_s) {
        (true, Some(t)) if t < s.load_duration_s => format!("{error} at {}", at(s, t)),
        (true, Some(t)) => format!("exhaustion after the run, at {}", at(s, t)),
        _ => {
            let tw = p.steady_timewait.map_or("-".into(), |v| format!("{v:.0}"));
            match p.timewait_side {
                TimeWaitSide::Nobody => "no exhaustion, no TIME_WAIT".to_string(),
                TimeWaitSide::Client => {
                    format!("no exhaustion, TIME_WAIT {tw} on the client (steady)")
                }
                TimeWaitSide::Server => {
                    format!("no exhaustion, TIME_WAIT {tw} on the server (steady)")
                }
            }
        }
    }
}

/// What was measured in a few words: exhaustion, TIME_WAIT by side, other errors and the
/// kernel counters that tell the scenarios apart.
pub fn measured(s: &Summary) -> String {
    let mut parts = Vec::new();
    match (s.exhaustion.first_s, &s.exhaustion.kind) {
        (Some(t), Some(kind)) => parts.push(format!("{kind} at {}", at(s, t))),
        _ => parts.push("no exhaustion".to_string()),
    }
    if let Some(tw) = &s.timewait {
        let v = |x: Option<u64>| x.map_or("-".to_string(), |x| x.to_string());
        parts.push(format!(
            "TIME_WAIT client {} / server {}",
            v(tw.client_max),
            v(tw.server_max)
        ));
    }
    let exhaustion_kind = s.exhaustion.kind.as_deref();
    let others: Vec<String> = s
        .errors
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != exhaustion_kind)
        .map(|(k, e)| format!("{k} x{}", e.count))
        .collect();
    if !others.is_empty() {
        parts.push(others.join(", "));
    }
    if let Some(k) = &s.kernel {
        for name in [
            "TWRecycled",
            "TCPTimeWaitOverflow",
            "ListenOverflows",
            "OutRsts",
        ] {
            if let Some(v) = k.get(name).filter(|&&v| v > 0) {
                parts.push(format!("{name} {v}"));
            }
        }
    }
    if let Some(seg) = s.segments_per_request {
        parts.push(format!("{seg:.1} segments/request"));
    }
    if let Some(x) = &s.target_exec {
        parts.push(format!("server {}", x.exit_status));
    }
    parts.join("; ")
}

fn write_files(report: &Report, dir: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("serialising suite.json")?;
    write_atomic(&dir.join("suite.json"), (json + "\n").as_bytes())
        .with_context(|| format!("writing {}", dir.join("suite.json").display()))?;
    let mut md = Vec::new();
    renderer(Format::Markdown)
        .suite(report, &mut md)
        .context("rendering suite.md")?;
    write_atomic(&dir.join("suite.md"), &md)
        .with_context(|| format!("writing {}", dir.join("suite.md").display()))?;
    let mut xml = Vec::new();
    renderer(Format::Junit)
        .suite(report, &mut xml)
        .context("rendering suite.junit.xml")?;
    write_atomic(&dir.join("suite.junit.xml"), &xml)
        .with_context(|| format!("writing {}", dir.join("suite.junit.xml").display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_scenarios_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = collect(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("no *.toml"), "{e}");
    }

    #[test]
    fn a_bad_file_is_refused_before_anything_runs_naming_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "[load]\nrate = 10\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "[load]\nrat = 10\n").unwrap();
        let e = format!("{:#}", collect(dir.path(), false).unwrap_err());
        assert!(e.contains("b.toml") && e.contains("rat"), "{e}");
    }

    #[test]
    fn two_files_with_one_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "name = \"x\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "name = \"x\"\n").unwrap();
        let e = collect(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("both named 'x'"), "{e}");
    }
}
