//! `portlab run [FILE] [FLAGS]`: plan, consent, run, print, and the exit code.

use super::exit;
use crate::engine::{self, Progress, RunOptions};
use crate::plan::{
    self, ClientSection, ExpectSection, LoadSection, PayloadSection, Plan, Scenario, TargetSection,
};
use crate::report::Format;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Runs `portlab run`; the exit code says how it went (see [`exit`]): the plan (consent,
/// checks, the dry run), the run, then what it printed and how it ended.
pub fn run(args: &RunArgs, out: &mut dyn crate::say::Output) -> anyhow::Result<u8> {
    crate::say::set_quiet(args.quiet);
    let file = match &args.scenario {
        Some(path) => {
            let file = crate::catalog::load(path)?;
            crate::server::exec::consent_scenario(
                path,
                &file,
                &args.to_scenario(),
                args.allow_exec,
            )?;
            file
        }
        None => Scenario::default(),
    };
    let given = args.over(file);
    let mut plan = Plan::resolve(&given)?;
    crate::lab::check_host(&given, &plan)?;
    let dry_run = args
        .dry_run
        .then(|| crate::cmd::dry_run::render(&plan, args.format))
        .transpose()?;
    let many = many_clients(args, &mut plan)?;
    let baseline = baseline(args)?;
    if let Some(text) = dry_run {
        // Validated, baseline included: show it and send nothing.
        write!(out, "{text}")?;
        return Ok(0);
    }
    let opts = RunOptions {
        baseline,
        out: args.out.clone(),
        force: args.force,
        progress: match (args.quiet, args.progress) {
            (true, _) => Progress::Never,
            (false, true) => Progress::Always,
            (false, false) => Progress::Auto,
        },
        in_lab_client: args.in_lab_client.is_some(),
    };
    let result = if many {
        engine::run_many(plan, &opts)?
    } else {
        engine::run(plan, &opts)?
    };
    outcome(args, &result, out)
}

/// Whether this run is a many-client lab (the parent); client k of one targets the server
/// its parent serves.
fn many_clients(args: &RunArgs, plan: &mut Plan) -> anyhow::Result<bool> {
    if let Some(server) = args.in_lab_client {
        plan.retarget(server.to_string());
        return Ok(false);
    }
    plan::clients::check(plan).map_err(anyhow::Error::msg)?;
    let many = plan::clients::many(plan).is_some();
    if many && args.baseline.is_some() {
        anyhow::bail!("--baseline compares one run; drop it with lab.clients (--lab-clients) > 1, and compare the merged summary with `portlab report`");
    }
    Ok(many)
}

/// `--baseline` and its margin, checked and read before any traffic.
fn baseline(
    args: &RunArgs,
) -> anyhow::Result<Option<(Box<crate::results::summary::Summary>, f64)>> {
    let Some(path) = &args.baseline else {
        return Ok(None);
    };
    let margin = args
        .baseline_margin
        .unwrap_or(crate::results::verdict::DEFAULT_BASELINE_MARGIN_PCT);
    let max = plan::bounds::MAX_PCT;
    if !(margin.is_finite() && (0.0..=max).contains(&margin)) {
        anyhow::bail!(
            "--baseline-margin {margin} is not a percentage: accepted 0 to {max}, e.g. 10"
        );
    }
    let summary = crate::results::dir::load_summary(path).map_err(|e| e.context("--baseline"))?;
    Ok(Some((Box::new(summary), margin)))
}

/// Prints the run's report (or, when summary.json could not be saved, the summary itself)
/// and turns how it ended into the exit code.
fn outcome(args: &RunArgs, result: &engine::RunResult, out: &mut dyn Write) -> anyhow::Result<u8> {
    // The run is over: a stdout that fails now (a full disk, /dev/full, a closed terminal)
    // loses no measurement (the files are written) and is no set-up error: exit 3, naming it.
    let mut incomplete = false;
    let renderer = crate::report::renderer(args.format);
    let run = crate::report::Run {
        label: String::new(),
        summary: &result.summary,
        dir: Some(&result.dir),
    };
    let printed = renderer
        .made(&run, &result.dir, out)
        .and_then(|()| out.flush());
    if let Err(e) = &printed {
        eprintln!(
            "error: writing the summary to stdout failed ({e}); the results are in {}",
            result.dir.display()
        );
        incomplete = true;
    }
    if let Some(why) = &result.unsaved {
        // Nothing measured is lost: the summary goes to stdout instead.
        let on_stdout = printed.is_ok()
            && (renderer.prints_summary_json()
                || writeln!(
                    out,
                    "\nsummary.json (not saved):\n{}",
                    result.summary_json()?
                )
                .and_then(|()| out.flush())
                .is_ok());
        if on_stdout {
            eprintln!("error: {why}; the summary is on stdout instead");
        } else {
            // Neither file nor stdout: stderr is the last place it can go.
            eprintln!(
                "error: {why}, and stdout failed too; the summary follows on stderr:\n{}",
                result.summary_json()?
            );
        }
        incomplete = true;
    }
    if let Some(why) = &result.failed {
        eprintln!(
            "error: {why} (what was measured is in {})",
            result.dir.display()
        );
        incomplete = true;
    }
    let failed = result.summary.verdict.as_ref().is_some_and(|v| !v.pass);
    if failed && !result.summary.interrupted {
        super::name_failed_checks(&result.summary);
    }
    Ok(match (incomplete, result.summary.interrupted) {
        (true, _) => exit::INCOMPLETE,
        (false, true) => exit::INTERRUPTED,
        (false, false) => super::verdict_code(&result.summary),
    })
}

/// `portlab run [SCENARIO.toml] [FLAGS]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML), or the name of a built-in scenario (`portlab scenarios` lists
    /// them; a file that exists wins). Flags override its keys.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,

    /// Run name, used for the results directory [key: name].
    #[arg(long)]
    pub name: Option<String>,

    /// `[load]`: every field is one flag and one key (plan/scenario.rs).
    #[command(flatten, next_help_heading = "Load")]
    pub load: LoadSection,
    /// `[client]`.
    #[command(flatten, next_help_heading = "Client")]
    pub client: ClientSection,
    /// `[payload]`.
    #[command(flatten, next_help_heading = "Payload")]
    pub payload: PayloadSection,
    /// `[target]`.
    #[command(flatten, next_help_heading = "Target")]
    pub target: TargetSection,

    /// Let a command written in the scenario file (client.exec, target.exec) run; without it
    /// such a file is refused (exit 2). A command given as a flag is its own consent.
    #[arg(long, help_heading = "Client")]
    pub allow_exec: bool,

    /// `[lab]` and `[lab.server]`: the Linux lab, a private network namespace with its own
    /// sysctls (plan/lab.rs).
    #[command(flatten, next_help_heading = "Lab (Linux)")]
    pub lab: crate::plan::lab::LabConfig,
    /// Internal (a many-client lab starts its clients with it): this process already stands
    /// in a lab client namespace whose sysctls are set, and its target is the server's one
    /// address ADDR (198.18.0.2:PORT): it enters no namespace and writes no sysctl.
    #[arg(long, hide = true, value_name = "ADDR")]
    pub in_lab_client: Option<std::net::SocketAddr>,

    /// `[expect]` (its tolerances are --tolerance below).
    #[command(flatten, next_help_heading = "Expect (CI: a failed check exits 1)")]
    pub expect: ExpectSection,
    /// Tolerance of the model's checks in percent (PCT), or of one check (NAME=PCT, NAME one
    /// of first_error_s, timewait_max, post_exhaustion_rate, delivery: the planned rate's
    /// shortfall, default 1); repeat [keys: expect.tolerance_pct, expect.tolerance.NAME;
    /// default 5].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        allow_hyphen_values = true,
        value_name = "[NAME=]PCT"
    )]
    pub tolerance: Vec<Tolerance>,
    /// An earlier run's summary.json: fail (exit 1) if p99 connect latency rose or the
    /// success rate fell by more than --baseline-margin.
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "SUMMARY.json"
    )]
    pub baseline: Option<PathBuf>,
    /// How much worse than the baseline a run may be, percent [default 10].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        allow_hyphen_values = true,
        value_name = "PCT",
        requires = "baseline"
    )]
    pub baseline_margin: Option<f64>,

    /// Results directory [default results/<name>-<UTC time>/]; an existing one must be
    /// empty unless --force. Files are always created new, never through a symlink.
    #[arg(long, help_heading = "Output", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Use a non-empty --out directory: portlab's own files in it (plan.toml, timeline.csv,
    /// summary.json, target-exec.log) are replaced; nothing else is touched.
    #[arg(long, help_heading = "Output")]
    pub force: bool,
    /// Summary format on stdout.
    #[arg(long, help_heading = "Output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Show progress even when stderr is not a terminal (one line per interval).
    #[arg(long, help_heading = "Output", conflicts_with = "quiet")]
    pub progress: bool,
    /// No progress display and no notes: stderr holds only errors, warnings and, on exit 1,
    /// the failed checks (stdout keeps the --format output).
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Parse, merge and validate (the host checks too), then print the resolved plan (TOML;
    /// with --format json one object) and the model's prediction; nothing is sent, no results
    /// directory is created. Exit 0 valid, 2 not.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
}

impl RunArgs {
    /// The flags as a scenario (unset flags are absent keys).
    pub fn to_scenario(&self) -> Scenario {
        Scenario {
            name: self.name.clone(),
            description: None,
            load: self.load.clone(),
            client: self.client.clone(),
            payload: self.payload.clone(),
            target: self.target.clone(),
            lab: (self.lab != crate::plan::lab::LabConfig::default()).then(|| self.lab.clone()),
            expect: self.expect_section(),
        }
    }

    fn expect_section(&self) -> ExpectSection {
        let mut tolerance_pct = None;
        let mut per_check = std::collections::BTreeMap::new();
        for t in &self.tolerance {
            match &t.check {
                Some(name) => {
                    per_check.insert(name.clone(), t.pct);
                }
                None => tolerance_pct = Some(t.pct),
            }
        }
        ExpectSection {
            tolerance_pct,
            tolerance: (!per_check.is_empty()).then_some(per_check),
            ..self.expect.clone()
        }
    }

    /// The scenario `file` with these flags laid over it, `[lab]` included.
    pub fn over(&self, file: Scenario) -> Scenario {
        let mut s = file.overlay(self.to_scenario());
        // A `[lab]` that sets nothing is no lab (as if the table were absent).
        s.lab = s
            .lab
            .filter(|l| *l != crate::plan::lab::LabConfig::default());
        s
    }
}

/// `--tolerance PCT` or `--tolerance NAME=PCT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// The check it applies to (None: every model check).
    pub check: Option<String>,
    /// Percent.
    pub pct: f64,
}

impl std::str::FromStr for Tolerance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (check, pct) = match s.split_once('=') {
            Some((name, pct)) => (Some(name.trim().to_string()), pct),
            None => (None, s),
        };
        let pct = pct.trim().trim_end_matches('%');
        let pct: f64 = pct
            .parse()
            .map_err(|_| format!("'{s}' is not PCT or NAME=PCT, e.g. 10 or first_error_s=10"))?;
        Ok(Tolerance { check, pct })
    }
}
