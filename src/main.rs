//! portlab's entry point: parse, plan, run, and turn the outcome into an exit code
//! (0 ran, 1 a check failed, 2 bad input or setup failure, 3 ran but the results are
//! incomplete, 130 interrupted).

use clap::Parser;
use portlab::cli::{Cli, Command, RunArgs};
use portlab::engine::{self, Progress, RunOptions};
use portlab::plan::{self, Plan, Scenario};
use portlab::report::{self, Format};
use std::io::{self, Write};
use std::process::ExitCode;

/// Exit code for a run whose verdict failed (a check did not hold).
const EXIT_VERDICT: u8 = 1;
/// Exit code for bad input or a set-up failure (nothing was sent).
const EXIT_SETUP: u8 = 2;
/// Exit code for a run that sent traffic but whose results are incomplete: summary.json
/// could not be written (it went to stdout instead), or a worker's outcomes are missing.
const EXIT_INCOMPLETE: u8 = 3;
/// Exit code for a run stopped by Ctrl-C or SIGTERM (128 + SIGINT), results written.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Stdout::default();
    let result = match cli.command {
        Command::Run(args) => {
            // First thing: a signal from now on ends the run with everything written.
            portlab::sys::catch_stop_signals();
            run(&args, &mut out)
        }
        Command::Predict(args) => portlab::cmd::predict::run_predict(&args, &mut out).map(|()| 0),
        Command::Inspect(args) => portlab::inspect::run(&args, &mut out).map(|()| 0),
        Command::Report(args) => report(&args, &mut out),
        Command::Suite(args) => {
            portlab::sys::catch_stop_signals();
            portlab::suite::run(&args, &mut out).map(|r| r.exit_code)
        }
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", portlab::report::chain(&e));
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// stdout for every command. A reader that went away (`portlab run | head`) is not an
/// error: from the first broken pipe on, output is dropped and the command goes on to its
/// own exit code. This is the one place a broken pipe is handled.
#[derive(Default)]
struct Stdout {
    gone: bool,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        match io::stdout().lock().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.gone {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(())
            }
            r => r,
        }
    }
}

/// `portlab report DIR...`: a directory that cannot be read is named and left out; the
/// others are rendered, and the exit code is then 2.
fn report(args: &portlab::cli::ReportArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut runs = Vec::with_capacity(args.runs.len());
    let mut unreadable = 0;
    for path in &args.runs {
        let summary = match report::load_summary(path) {
            Ok(s) => s,
            Err(e) if args.runs.len() > 1 => {
                eprintln!("error: {}; left out", report::chain(&e));
                unreadable += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
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
    if runs.is_empty() {
        anyhow::bail!("none of the {} directories could be read", args.runs.len());
    }
    match runs.as_slice() {
        [(_, one)] => report::reporter(args.format).render(one, out),
        _ => report::compare::render(&report::compare::compare(&runs), args.format, out),
    }
    .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    if unreadable > 0 {
        return Ok(EXIT_SETUP);
    }
    // One run: its verdict decides, as it did when it ran; a comparison only shows.
    let failed =
        matches!(runs.as_slice(), [(_, one)] if one.verdict.as_ref().is_some_and(|v| !v.pass));
    Ok(if failed { EXIT_VERDICT } else { 0 })
}

fn run(args: &RunArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let file = match &args.scenario {
        Some(path) => {
            let file = plan::load_scenario(path)?;
            portlab::target::exec::consent(
                path,
                "target.exec",
                file.target.exec.as_deref(),
                args.target_exec.is_some(),
                args.allow_exec,
            )?;
            file
        }
        None => Scenario::default(),
    };
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
        force: args.force,
        progress: match (args.quiet, args.progress) {
            (true, _) => Progress::Never,
            (false, true) => Progress::Always,
            (false, false) => Progress::Auto,
        },
    };
    let result = engine::run(plan, &opts)?;
    report::reporter(args.format)
        .render(&result.summary, out)
        .and_then(|()| match args.format {
            Format::Text => writeln!(out, "\nresults: {}/", result.dir.display()),
            _ => Ok(()),
        })
        .map_err(|e| anyhow::Error::new(e).context("writing the summary to stdout"))?;
    let mut incomplete = false;
    if let Some(why) = &result.unsaved {
        // Nothing measured is lost: the summary goes to stdout instead.
        if args.format != Format::Json {
            writeln!(
                out,
                "\nsummary.json (not saved):\n{}",
                result.summary_json()?
            )?;
        }
        eprintln!("error: {why}; the summary is on stdout instead");
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
    Ok(match (incomplete, result.summary.interrupted, failed) {
        (true, _, _) => EXIT_INCOMPLETE,
        (false, true, _) => EXIT_INTERRUPTED,
        (false, false, true) => EXIT_VERDICT,
        (false, false, false) => 0,
    })
}
