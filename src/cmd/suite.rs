//! `portlab suite [DIR]`: every scenario of a directory as a child run, one table; with
//! `--dry-run`, every file validated and shown, nothing sent. Running the scenarios and the
//! table are [`crate::suite`]'s.

use crate::report::Format;
use crate::say::Output;
use crate::suite::{self, SuiteArgs};

/// Runs the suite (or its dry run). Returns the exit code: 0 every verdict passed, 1 one
/// failed, 2 bad input or a run could not be set up, 130 interrupted.
pub fn run(args: &SuiteArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    if args.dry_run {
        return crate::cmd::dry_run::suite(
            &suite::scenarios_dir(args),
            Format::Text,
            args.allow_exec,
            out,
        );
    }
    suite::run_all(args, out).map(|r| r.exit_code)
}
