//! `portlab merge DIR... --out DIR`: the shards of one run (`--shard I/N`, one per machine)
//! made into one results directory (the merge itself is `results::merge`): its arguments,
//! and the merged summary and each shard's line on stdout.

use crate::report::Format;
use crate::results::dir::ResultsDir;
use crate::results::merge::{merge, write_summary};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `portlab merge DIR... --out DIR`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' results directories (each with summary.json and histograms.hlog).
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where the merged results go: a new or empty directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace portlab's own files in a non-empty --out directory.
    #[arg(long)]
    pub force: bool,
    /// Format of the merged summary printed on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Runs `portlab merge`: merges, writes the directory, prints the merged summary and each
/// shard's line. Exit 1 when a shard's verdict failed, as `report` does for one run.
pub fn run(args: &MergeArgs, out: &mut dyn crate::say::Output) -> Result<u8> {
    // Everything that can be checked before writing is: a refused shard leaves no --out.
    let merge = merge(&args.runs)?;
    let dir = ResultsDir::prepare("merge", Some(&args.out), args.force)?;
    let summary = match merge.write(&dir) {
        Ok(s) => s,
        Err(e) => {
            dir.discard();
            return Err(e);
        }
    };
    write_summary(&summary, &dir)?;
    // The summary alone, as `merge` has always printed it: no timeline drawn, no attachment.
    let run = crate::report::Run {
        label: String::new(),
        summary: &summary,
        dir: None,
    };
    crate::report::renderer(args.format).merged(&run, dir.path(), out)?;
    Ok(if summary.verdict.as_ref().is_some_and(|v| !v.pass) {
        super::exit::VERDICT
    } else {
        0
    })
}
