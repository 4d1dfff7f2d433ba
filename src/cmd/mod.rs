//! One file per subcommand, each with one entry point,
//! `pub fn run(args: &XArgs, out: &mut dyn Output) -> anyhow::Result<u8>` returning the
//! exit code ([`exit`]): the command's orchestration (its flags where they are its own, its
//! argument handling, its printing); the logic it drives stays in its own module (`inspect`
//! reads the host, `watch` samples and renders, `catalog` holds the scenarios, `suite` runs
//! them). [`cli`] assembles the commands' flags into the command line; main.rs parses it and
//! calls `cmd::<name>::run`. `dry_run` is `run --dry-run` and `suite --dry-run`.
//!
//! [`Output`]: crate::say::Output

pub mod cli;
pub mod completions;
pub mod dry_run;
pub mod inspect;
pub mod man;
pub mod merge;
pub mod predict;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod suite;
pub mod watch;

/// The exit code a saved verdict gives: 0 passed, 1 a check failed, 4 inconclusive.
pub fn verdict_code(s: &crate::results::summary::Summary) -> u8 {
    match &s.verdict {
        Some(v) if v.inconclusive.is_some() => exit::INCONCLUSIVE,
        Some(v) if !v.pass => exit::VERDICT,
        _ => 0,
    }
}

/// Exit 1 says why on stderr, whatever stdout holds (JSON, JUnit) and even with --quiet:
/// every failed check that counts, as the sentence the text report gives.
pub fn name_failed_checks(s: &crate::results::summary::Summary) {
    let Some(v) = &s.verdict else { return };
    if let Some(why) = &v.inconclusive {
        eprintln!(
            "portlab: {:?} INCONCLUSIVE (exit {}): {why}",
            s.scenario,
            exit::INCONCLUSIVE
        );
    }
    let failed: Vec<_> = v.checks.iter().filter(|c| !c.pass && !c.advisory).collect();
    if failed.is_empty() {
        return;
    }
    eprintln!(
        "portlab: {:?} FAILED {} of {} checks (exit {}):",
        s.scenario,
        failed.len(),
        v.checks.iter().filter(|c| !c.advisory).count(),
        exit::VERDICT
    );
    for c in failed {
        eprintln!("  {}", c.explain());
    }
}

/// portlab's exit codes (docs/reference/exit-codes.md).
pub mod exit {
    /// A check failed (the verdict).
    pub const VERDICT: u8 = 1;
    /// Bad input or a set-up failure: nothing was sent.
    pub const SETUP: u8 = 2;
    /// The run sent traffic but its results are incomplete: summary.json could not be
    /// written (it went to stdout instead), or a worker's outcomes are missing.
    pub const INCOMPLETE: u8 = 3;
    /// The run could not be judged: the client stalled or never connected (a client
    /// command's run), so neither PASS nor FAIL would be true.
    pub const INCONCLUSIVE: u8 = 4;
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT), results written.
    pub const INTERRUPTED: u8 = 130;
}
