//! `portlab report DIR...`: saved runs re-rendered, one or several (a comparison).

use super::exit;
use crate::report::{self, Format, Run};
use crate::results;
use crate::results::summary::Summary;
use clap::Args;
use std::path::PathBuf;

/// `portlab report DIR...`: a directory that cannot be read is named and left out; the
/// others are rendered, and the exit code is then 2. A suite's results directory stands for
/// its runs.
pub fn run(args: &ReportArgs, out: &mut dyn crate::say::Output) -> anyhow::Result<u8> {
    let paths: Vec<PathBuf> = args
        .runs
        .iter()
        .flat_map(|p| results::dir::runs_named(p))
        .collect();
    let mut runs = Vec::with_capacity(paths.len());
    let mut unreadable = 0;
    for path in &paths {
        let summary = match results::dir::load_summary(path) {
            Ok(s) => s,
            Err(e) if paths.len() > 1 => {
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
            _ => PathBuf::from("."),
        };
        runs.push((label, summary, dir));
    }
    if runs.is_empty() {
        anyhow::bail!("none of the {} directories could be read", paths.len());
    }
    let renderer = report::renderer(args.format);
    let shown: Vec<Run> = runs
        .iter()
        .map(|(label, summary, dir)| Run {
            label: label.clone(),
            summary,
            dir: Some(dir),
        })
        .collect();
    match shown.as_slice() {
        [one] => renderer.run(one, out),
        many => {
            let labelled: Vec<(String, Summary)> = runs
                .iter()
                .map(|(l, s, _)| (l.clone(), s.clone()))
                .collect();
            renderer.runs(many, &results::compare::compare(&labelled), out)
        }
    }
    .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    if unreadable > 0 {
        return Ok(exit::SETUP);
    }
    // One run: its verdict decides, as it did when it ran; a comparison only shows. A
    // rendering that judges each run (junit) fails when any failed.
    let verdict_failed = |s: &Summary| s.verdict.as_ref().is_some_and(|v| !v.pass);
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
        many if renderer.judges_each_run() => many.iter().any(|(_, s, _)| verdict_failed(s)),
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
