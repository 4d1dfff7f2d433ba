//! `portlab run [FILE] [FLAGS]`: plan, consent, run, print, and the exit code.

use super::exit;
use crate::cli::RunArgs;
use crate::engine::{self, Progress, RunOptions};
use crate::plan::{self, Plan, Scenario};
use crate::report::Format;
use std::io::Write;

/// Runs `portlab run`; the exit code says how it went (see [`exit`]).
pub fn run(args: &RunArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    crate::say::set_quiet(args.quiet);
    let file = match &args.scenario {
        Some(path) => {
            let file = crate::catalog::load(path)?;
            crate::target::exec::consent_scenario(
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
    let dry_run = args
        .dry_run
        .then(|| crate::cmd::dry_run::render(&given, args.format))
        .transpose()?;
    let mut plan = Plan::resolve(&given)?;
    plan::check_host(&given, &plan)?;
    let many = match args.in_lab_client {
        // Client k of a many-client lab: the server is the one the parent serves.
        Some(server) => {
            plan.target = plan::Target::External(server.to_string());
            false
        }
        None => {
            plan::clients::check(&plan).map_err(anyhow::Error::msg)?;
            if plan::clients::many(&plan).is_some() && args.baseline.is_some() {
                anyhow::bail!("--baseline compares one run; drop it with lab.clients (--lab-clients) > 1, and compare the merged summary with `portlab report`");
            }
            plan::clients::many(&plan).is_some()
        }
    };
    let baseline = match &args.baseline {
        Some(path) => {
            let margin = args
                .baseline_margin
                .unwrap_or(crate::report::verdict::DEFAULT_BASELINE_MARGIN_PCT);
            let max = plan::bounds::MAX_PCT;
            if !(margin.is_finite() && (0.0..=max).contains(&margin)) {
                anyhow::bail!(
                    "--baseline-margin {margin} is not a percentage: accepted 0 to {max}, e.g. 10"
                );
            }
            let summary = crate::report::load_summary(path).map_err(|e| e.context("--baseline"))?;
            Some((Box::new(summary), margin))
        }
        None => None,
    };
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
    crate::report::render_run(args.format, &result.summary, &result.dir, out)
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
    if failed && !result.summary.interrupted {
        super::name_failed_checks(&result.summary);
    }
    Ok(match (incomplete, result.summary.interrupted, failed) {
        (true, _, _) => exit::INCOMPLETE,
        (false, true, _) => exit::INTERRUPTED,
        (false, false, true) => exit::VERDICT,
        (false, false, false) => 0,
    })
}
