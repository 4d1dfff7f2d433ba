//! portlab's entry point: parse, plan, run, and turn the outcome into an exit code
//! (0 ran, 1 a check failed, 2 bad input or setup failure, 130 interrupted).

use clap::Parser;
use portlab::cli::{Cli, Command, RunArgs};
use portlab::engine::{self, Progress, RunOptions};
use portlab::plan::{Plan, Scenario};
use std::process::ExitCode;

/// Exit code for a run whose verdict failed (a check did not hold).
const EXIT_VERDICT: u8 = 1;
/// Exit code for bad input or a set-up failure (nothing was sent).
const EXIT_SETUP: u8 = 2;
/// Exit code for a run stopped by Ctrl-C (128 + SIGINT), results written.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Predict(args) => predict(&args),
        Command::Inspect(args) => {
            portlab::inspect::run(&args, &mut std::io::stdout().lock()).map(|()| 0)
        }
        Command::Report(args) => report(&args),
        Command::Suite(args) => portlab::suite::run(&args).map(|r| r.exit_code),
        Command::Watch(args) => portlab::watch::run(&args),
        Command::Scenarios(args) => portlab::catalog::run(&args, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The whole chain once, most general first.
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

fn predict(args: &portlab::model::PredictArgs) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    portlab::model::run_predict(args, &mut stdout.lock())?;
    Ok(0)
}

fn report(args: &portlab::cli::ReportArgs) -> anyhow::Result<u8> {
    use portlab::report;
    let mut runs = Vec::with_capacity(args.runs.len());
    for path in &args.runs {
        let summary = report::load_summary(path)?;
        let label = path
            .file_name()
            .filter(|n| *n != "summary.json")
            .or_else(|| path.parent().and_then(|p| p.file_name()))
            .map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
        runs.push((label, summary));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = match runs.as_slice() {
        [(_, one)] => report::reporter(args.format).render(one, &mut out),
        _ => report::compare::render(&report::compare::compare(&runs), args.format, &mut out),
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(anyhow::Error::new(e).context("writing the report"))
        }
        _ => {}
    }
    // One run: its verdict decides, as it did when it ran; a comparison only shows.
    let failed =
        matches!(runs.as_slice(), [(_, one)] if one.verdict.as_ref().is_some_and(|v| !v.pass));
    Ok(if failed { EXIT_VERDICT } else { 0 })
}

fn run(args: &RunArgs) -> anyhow::Result<u8> {
    let file = match &args.scenario {
        Some(path) => portlab::catalog::load(path)?,
        None => Scenario::default(),
    };
    portlab::client::check_consent(&file, &args.to_scenario(), args.allow_exec)?;
    let plan = Plan::resolve(&args.over(file))?;
    let baseline = match &args.baseline {
        Some(path) => {
            let margin = args
                .baseline_margin
                .unwrap_or(portlab::report::verdict::DEFAULT_BASELINE_MARGIN_PCT);
            if !(margin.is_finite() && margin >= 0.0) {
                anyhow::bail!(
                    "--baseline-margin {margin} is not a percentage; write 0 or more, e.g. 10"
                );
            }
            let summary =
                portlab::report::load_summary(path).map_err(|e| e.context("--baseline"))?;
            Some((Box::new(summary), margin))
        }
        None => None,
    };
    let opts = RunOptions {
        baseline,
        out: args.out.clone(),
        format: args.format,
        progress: match (args.quiet, args.progress) {
            (true, _) => Progress::Never,
            (false, true) => Progress::Always,
            (false, false) => Progress::Auto,
        },
    };
    let result = engine::run(plan, &opts)?;
    let failed = result.summary.verdict.as_ref().is_some_and(|v| !v.pass);
    Ok(match (result.summary.interrupted, failed) {
        (true, _) => EXIT_INTERRUPTED,
        (false, true) => EXIT_VERDICT,
        (false, false) => 0,
    })
}
