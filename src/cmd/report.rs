//! `portlab report DIR...`: saved runs re-rendered, one or several (a comparison).

use super::exit;
use crate::cli::ReportArgs;
use crate::report::{self, Render};
use std::io::Write;

/// `portlab report DIR...`: a directory that cannot be read is named and left out; the
/// others are rendered, and the exit code is then 2.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    if args.format == report::Format::Html {
        // The page draws each run's timeline too, so it reads the directories itself.
        return report::html::report_dirs(&args.runs, out);
    }
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
        [(_, one)] => one.render(args.format, out),
        _ => report::compare::compare(&runs).render(args.format, out),
    }
    .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    if unreadable > 0 {
        return Ok(exit::SETUP);
    }
    // One run: its verdict decides, as it did when it ran; a comparison only shows.
    let failed =
        matches!(runs.as_slice(), [(_, one)] if one.verdict.as_ref().is_some_and(|v| !v.pass));
    Ok(if failed { exit::VERDICT } else { 0 })
}
