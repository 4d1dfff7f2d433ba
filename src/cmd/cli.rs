//! Command-line definitions (clap derive): the [`Command`] enum assembled from each
//! command's own `Args` struct (`cmd::run::RunArgs`, `cmd::report::ReportArgs`,
//! `cmd::predict::PredictArgs`, ...; `InspectArgs`, `SuiteArgs` and `WatchArgs` live beside
//! the logic that reads them). Each `run` flag is one scenario key; `RunArgs::to_scenario`
//! turns the flags into a scenario laid over the file's. Of the commands, only completions
//! and man import this module (they print the definition).

use crate::cmd::report::ReportArgs;
use crate::cmd::run::RunArgs;
use clap::{Parser, Subcommand};

/// Reproduce TCP ephemeral-port exhaustion on purpose, and check it against the arithmetic.
///
/// A client that opens a new connection per request and closes first leaves each local port
/// in TIME_WAIT; at rate R with P ports it runs out after P / R seconds. portlab drives such
/// a load at a steady rate, records every error by its OS name and when the first
/// "no local port left" error came.
#[derive(Debug, Parser)]
#[command(name = "portlab", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line as [`clap::Parser::try_parse`] does, except that a value
    /// that looks like a negative number (`--destinations -1`) is taken as the flag's value,
    /// on every flag and subcommand: the flag's own parser then refuses it naming the flag,
    /// instead of clap's "unexpected argument '-1'" that names none.
    pub fn try_parse_args() -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = negatives(Cli::command()).try_get_matches()?;
        Cli::from_arg_matches(&matches)
    }
}

/// `cmd` with every value-taking argument (and its subcommands') accepting a negative
/// number as its value.
fn negatives(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .into_iter()
        .fold(cmd, |c, name| c.mut_subcommand(name, negatives))
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive short-lived TCP connections at a set rate and report what happened.
    ///
    /// Every scenario key has a flag; flags override the file, and no file is needed:
    /// `portlab run --rate 200 --duration 5s --close active`.
    /// Exit codes: 0 ran, 1 a check failed, 2 bad input or setup failure (nothing sent),
    /// 130 interrupted (everything measured so far is written).
    Run(Box<RunArgs>),
    /// Predict exhaustion from the arithmetic alone: time to the first error (P / R), the
    /// sustainable rate (P / T), steady TIME_WAIT, and the settings that would make a rate
    /// sustainable, written as the commands that apply them.
    ///
    /// Example: `portlab predict --profile windows-2003 --rate 30`.
    Predict(crate::cmd::predict::PredictArgs),
    /// Show this host's ephemeral-port settings and current TIME_WAIT / ESTABLISHED counts,
    /// and with --rate the model for this host, with a WARNING when the ports run out.
    ///
    /// Linux: port range, reserved ports, tcp_tw_reuse and its delay, tcp_max_tw_buckets,
    /// somaxconn, timestamps, tcp_fin_timeout, RLIMIT_NOFILE; Windows: the netsh dynamic port
    /// range, MaxUserPort and TcpTimedWaitDelay; macOS: the portrange and msl sysctls.
    /// Nothing is changed. Example: `portlab inspect --rate 100`.
    Inspect(crate::inspect::InspectArgs),
    /// Re-render saved runs without running anything: one results directory in any format,
    /// or several side by side (before/after a sysctl or registry change), each run's
    /// figures with their change from the first.
    ///
    /// Example: `portlab report results/before-* results/after-* --format markdown`.
    /// A suite's directory stands for its runs. With `--format html` it prints a
    /// self-contained page with charts (what each run writes as report.html): one run, or
    /// several runs overlaid.
    ///
    /// Exit codes: 0 shown, 1 a single run whose verdict failed, 2 unreadable input (a
    /// directory that cannot be read among several is named and left out).
    Report(ReportArgs),
    /// Merge the results of the shards of one run (`run --shard I/N`, one per machine) into
    /// one results directory: histograms added exactly from each histograms.hlog, counts and
    /// errors summed (earliest first_s), timelines aligned on each run's started_at; each
    /// shard's first exhaustion, model check and start skew, and the overall verdict.
    ///
    /// Example: `portlab merge results/shard-* --out results/merged`.
    /// Exit codes: 0 merged, 1 a shard's verdict failed, 2 an input is not a run or its
    /// histograms have other bounds (nothing written).
    Merge(crate::cmd::merge::MergeArgs),
    /// Run every scenario of a directory (default scenarios/, or the built-in catalog when
    /// ./scenarios does not exist) and print one table: scenario,
    /// what the model predicted, what was measured, verdict. Writes suite.md and suite.json
    /// (results/suite-<time>/, each run's directory underneath).
    ///
    /// Exit codes: 0 every verdict passed, 1 one failed, 2 bad input or a run could not be set
    /// up, 130 interrupted.
    Suite(crate::suite::SuiteArgs),
    /// Watch a live host (or a container's, a lab's or a process's network namespace): per
    /// destination, the sockets holding ephemeral ports, the connection rate (from the
    /// TIME_WAIT timers), the usable ports P, the hold T, and when the ports run out
    /// (ETA = (P - used) / R). Read only; Linux only for now.
    ///
    /// Example: `portlab watch --pid 4242 --dst 10.0.0.5:5432 --once`.
    /// Exit codes: 0 every destination ok, 1 one in warning or exhausted, 2 bad input or no
    /// permission (the message names the missing capability).
    Watch(crate::watch::WatchArgs),
    /// List the built-in scenarios (compiled into the binary) with their one-line story, or
    /// print one to copy and edit: `portlab scenarios show quickstart > my.toml`.
    ///
    /// `portlab run NAME` runs one from any directory (a file of that name wins).
    Scenarios(crate::cmd::scenarios::ScenariosArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `portlab completions bash > ~/.local/share/bash-completion/completions/portlab`;
    /// zsh: `portlab completions zsh > ~/.zfunc/_portlab` (with ~/.zfunc in fpath);
    /// fish: `portlab completions fish > ~/.config/fish/completions/portlab.fish`;
    /// PowerShell: `portlab completions powershell >> $PROFILE`.
    Completions(crate::cmd::completions::CompletionsArgs),
    /// Print the manual page (roff) to stdout: `portlab man | man -l -`, or install it with
    /// `portlab man > ~/.local/share/man/man1/portlab.1`.
    Man(crate::cmd::man::ManArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{CloseMode, Rate, Scenario, Span};
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    // One definition per key: every run flag's help names its scenario key, and that key
    // exists in the scenario file (an unknown key would be refused by name).
    #[test]
    fn every_run_flag_names_a_key_that_exists() {
        let cli = Cli::command();
        let run = cli.find_subcommand("run").expect("run");
        let mut checked = 0;
        for arg in run.get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(at) = help.find("[key: ") else {
                continue;
            };
            let key = help[at + 6..]
                .split([';', ']'])
                .next()
                .unwrap_or_default()
                .trim();
            let text = match key.split_once('.') {
                Some((section, field)) => format!("[{section}]\n{field} = 1"),
                None => format!("{key} = 1"),
            };
            if let Err(e) = toml::from_str::<Scenario>(&text) {
                assert!(
                    !e.to_string().contains("unknown field"),
                    "{:?} names key {key}, which the scenario does not have: {e}",
                    arg.get_long()
                );
            }
            checked += 1;
        }
        assert!(checked >= 35, "only {checked} flags name their key");
    }

    /// One close mode type: run's `--close` takes `linger=N`, predict's and inspect's the three
    /// modes the model tells apart.
    #[test]
    fn close_flags_share_plans_close_mode() {
        let cli = Cli::parse_from(["portlab", "run", "--close", "linger=2"]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.client.close, Some(CloseMode::Linger(2)));
        for cmd in ["predict", "inspect"] {
            assert!(Cli::try_parse_from(["portlab", cmd, "--close", "linger=2"]).is_err());
        }
        let cli = Cli::parse_from(["portlab", "predict", "--close", "passive"]);
        let Command::Predict(p) = cli.command else {
            panic!("not predict")
        };
        assert_eq!(p.close, CloseMode::Passive);
        let cli = Cli::parse_from(["portlab", "inspect", "--close", "reset"]);
        let Command::Inspect(i) = cli.command else {
            panic!("not inspect")
        };
        assert_eq!(i.close, CloseMode::Reset);
    }

    #[test]
    fn flags_become_scenario_keys() {
        let cli = Cli::parse_from([
            "portlab",
            "run",
            "--rate",
            "200",
            "--close",
            "reset",
            "--source",
            "127.0.0.2,127.0.0.3",
            "--reuse-addr",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("parsed as run")
        };
        let s = args.to_scenario();
        assert_eq!(s.load.rate, Some(Rate::PerSecond(200.0)));
        assert_eq!(s.client.close, Some(CloseMode::Reset));
        assert_eq!(s.client.reuse_addr, Some(true));
        assert_eq!(s.client.source.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(
            s.load.duration, None,
            "unset flags leave the file's value alone"
        );
    }

    fn predict_input(args: &[&str]) -> crate::model::ModelInput {
        let cli = Cli::try_parse_from(["portlab", "predict"].iter().chain(args)).unwrap();
        let Command::Predict(p) = cli.command else {
            panic!("parsed as predict")
        };
        crate::cmd::predict::input_from_args(&p).unwrap()
    }

    // One grammar and one vocabulary: run and predict spell a concept the same way.
    #[test]
    fn run_and_predict_share_rates_durations_and_flag_names() {
        let cli = Cli::parse_from([
            "portlab",
            "run",
            "--rate",
            "1800/min",
            "--accept-delay",
            "2",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("parsed as run")
        };
        assert_eq!(args.load.rate, Some(Rate::PerSecond(30.0)));
        assert_eq!(
            args.target.accept_delay.map(Span::secs),
            Some(2.0),
            "bare number = seconds"
        );

        let input = predict_input(&[
            "--rate",
            "1800/min",
            "--source",
            "10.0.0.1,10.0.0.2",
            "--port-range",
            "32768-32867",
            "--reserved-ports",
            "32768-32777,50000",
            "--tw-reuse-delay",
            "250ms",
        ]);
        assert_eq!(input.rate, Some(30.0));
        assert_eq!(input.sources, 2, "--source counts the addresses");
        assert_eq!(
            input.reserved, 10,
            "only reserved ports inside the range count"
        );
        assert_eq!(input.ports, 90);
        assert_eq!(input.tw_reuse_delay_s, 0.25);
        // The older spellings still work.
        let old = predict_input(&[
            "--sources",
            "3",
            "--reserved",
            "5",
            "--port-range",
            "1025-1124",
        ]);
        assert_eq!((old.sources, old.reserved, old.ports), (3, 5, 95));
        // --bind takes run's modes: range= replaces the port range, no-port is per destination.
        let ranged = predict_input(&["--bind", "range=40000-40099", "--rate", "10"]);
        assert_eq!(
            (ranged.ports, ranged.bind),
            (100, crate::model::BindModel::WholeRange)
        );
        let no_port = predict_input(&["--bind", "no-port"]);
        assert_eq!(no_port.bind, crate::model::BindModel::PerDestination);
    }

    #[test]
    fn negative_values_reach_the_keys_own_message() {
        let e = Cli::try_parse_from(["portlab", "run", "--accept-delay", "-1s"]).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        assert!(e.to_string().contains("--accept-delay"), "{e}");
    }
}
