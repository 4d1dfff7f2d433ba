//! `portlab report DIR...`: saved runs re-rendered, one or several (a comparison).

use super::exit;
use crate::report::{self, Format, Render};
use crate::results;
use clap::Args;
use std::path::PathBuf;

/// `portlab report DIR...`: a directory that cannot be read is named and left out; the
/// others are rendered, and the exit code is then 2.
pub fn run(args: &ReportArgs, out: &mut dyn crate::say::Output) -> anyhow::Result<u8> {
    if args.format == report::Format::Html {
        // The page draws each run's timeline too, so it reads the directories itself.
        return report::html::report_dirs(&args.runs, out);
    }
    let mut runs = Vec::with_capacity(args.runs.len());
    let mut unreadable = 0;
    for path in &args.runs {
        let summary = match results::dir::load_summary(path) {
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
        // The results directory: the one named, or the summary.json's.
        let dir = match path.parent() {
            _ if path.is_dir() => path.clone(),
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        runs.push((label, summary, dir));
    }
    if runs.is_empty() {
        anyhow::bail!("none of the {} directories could be read", args.runs.len());
    }
    match runs.as_slice() {
        // JUnit holds verdicts, one test suite per run, whatever their number.
        _ if args.format == report::Format::Junit => {
            let suites: Vec<report::junit::SuiteRun> = runs
                .iter()
                .map(|(_, s, dir)| report::junit::SuiteRun::Ran(s, Some(dir)))
                .collect();
            report::junit::render_suite(&suites, out)
        }
        [(_, one, dir)] => report::render_run(args.format, one, dir, out),
        _ => {
            let labelled: Vec<(String, results::summary::Summary)> =
                runs.into_iter().map(|(l, s, _)| (l, s)).collect();
            let written = results::compare::compare(&labelled).render(args.format, out);
            runs = labelled
                .into_iter()
                .map(|(l, s)| (l, s, std::path::PathBuf::new()))
                .collect();
            written
        }
    }
    .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    if unreadable > 0 {
        return Ok(exit::SETUP);
    }
    // One run: its verdict decides, as it did when it ran; a comparison only shows. JUnit of
    // several runs is a verdict of each, so any failed one fails.
    let verdict_failed =
        |s: &results::summary::Summary| s.verdict.as_ref().is_some_and(|v| !v.pass);
    if let [(_, one, _)] = runs.as_slice() {
        if one
            .verdict
            .as_ref()
            .is_some_and(|v| v.inconclusive.is_some())
        {
            super::name_failed_checks(one);
            return Ok(super::verdict_code(one));
        }
    }
    let failed = match runs.as_slice() {
        [(_, one, _)] => verdict_failed(one),
        many if args.format == report::Format::Junit => {
            many.iter().any(|(_, s, _)| verdict_failed(s))
        }
        _ => false,
    };
    if failed {
        for (_, s, _) in &runs {
            super::name_failed_checks(s);
        }
    }
    Ok(if failed { exit::VERDICT } else { 0 })
}

/// `portlab report DIR... [--format F]`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results directories (results/<run>/) or their summary.json files.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub runs: Vec<PathBuf>,
    /// Output format; markdown fits a pull-request comment, junit a CI server's test report
    /// (one test suite per run), html a page with charts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
