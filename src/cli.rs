//! Command-line definitions (clap derive): raw flags only. Each `run` flag is one scenario
//! key; `RunArgs::to_scenario` turns the flags into a scenario laid over the file's.

use crate::plan::{
    ClientSection, ExpectSection, LoadSection, PayloadSection, Scenario, TargetSection,
};
use crate::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// With `--format html` it prints a self-contained page with charts (what each run writes
    /// as report.html): one run, several runs overlaid, or a suite directory's runs.
    ///
    /// Exit codes: 0 shown, 1 a single run whose verdict failed, 2 unreadable input.
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
    Scenarios(crate::catalog::ScenariosArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `portlab completions bash > ~/.local/share/bash-completion/completions/portlab`;
    /// zsh: `portlab completions zsh > ~/.zfunc/_portlab` (with ~/.zfunc in fpath);
    /// fish: `portlab completions fish > ~/.config/fish/completions/portlab.fish`;
    /// PowerShell: `portlab completions powershell >> $PROFILE`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout: `portlab man | man -l -`, or install it with
    /// `portlab man > ~/.local/share/man/man1/portlab.1`.
    Man,
}

/// `portlab completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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

/// `portlab run [SCENARIO.toml] [FLAGS]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML), or the name of a built-in scenario (`portlab scenarios` lists
    /// them; a file that exists wins). Flags override its keys.
    #[arg(value_name = "SCENARIO")]
    pub scenario: Option<PathBuf>,

    /// Run name, used for the results directory [key: name].
    #[arg(long)]
    pub name: Option<String>,

    /// `[load]`: every field is one flag and one key (plan/scenario.rs).
    #[command(flatten, next_help_heading = "Load")]
    pub load: LoadSection,
    /// `[client]`.
    #[command(flatten, next_help_heading = "Client")]
    pub client: ClientSection,
    /// `[payload]`.
    #[command(flatten, next_help_heading = "Payload")]
    pub payload: PayloadSection,
    /// `[target]`.
    #[command(flatten, next_help_heading = "Target")]
    pub target: TargetSection,

    /// Let a command written in the scenario file (client.exec, target.exec) run; without it
    /// such a file is refused (exit 2). A command given as a flag is its own consent.
    #[arg(long, help_heading = "Client")]
    pub allow_exec: bool,

    /// `[lab]` and `[lab.server]`: the Linux lab, a private network namespace with its own
    /// sysctls (plan/lab.rs).
    #[command(flatten, next_help_heading = "Lab (Linux)")]
    pub lab: crate::lab::LabConfig,
    /// Internal (a many-client lab starts its clients with it): this process already stands
    /// in a lab client namespace whose sysctls are set, and its target is the server's one
    /// address ADDR (198.18.0.2:PORT): it enters no namespace and writes no sysctl.
    #[arg(long, hide = true, value_name = "ADDR")]
    pub in_lab_client: Option<std::net::SocketAddr>,

    /// `[expect]` (its tolerances are --tolerance below).
    #[command(flatten, next_help_heading = "Expect (CI: a failed check exits 1)")]
    pub expect: ExpectSection,
    /// Tolerance of the model's checks in percent (PCT), or of one check (NAME=PCT, NAME one
    /// of first_error_s, timewait_max, post_exhaustion_rate, delivery: the planned rate's
    /// shortfall, default 1); repeat [keys: expect.tolerance_pct, expect.tolerance.NAME;
    /// default 5].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        allow_hyphen_values = true,
        value_name = "[NAME=]PCT"
    )]
    pub tolerance: Vec<Tolerance>,
    /// An earlier run's summary.json: fail (exit 1) if p99 connect latency rose or the
    /// success rate fell by more than --baseline-margin.
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "SUMMARY.json"
    )]
    pub baseline: Option<PathBuf>,
    /// How much worse than the baseline a run may be, percent [default 10].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        allow_hyphen_values = true,
        value_name = "PCT",
        requires = "baseline"
    )]
    pub baseline_margin: Option<f64>,

    /// Results directory [default results/<name>-<UTC time>/]; an existing one must be
    /// empty unless --force. Files are always created new, never through a symlink.
    #[arg(long, help_heading = "Output", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Use a non-empty --out directory: portlab's own files in it (plan.toml, timeline.csv,
    /// summary.json, target-exec.log) are replaced; nothing else is touched.
    #[arg(long, help_heading = "Output")]
    pub force: bool,
    /// Summary format on stdout.
    #[arg(long, help_heading = "Output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Show progress even when stderr is not a terminal (one line per interval).
    #[arg(long, help_heading = "Output", conflicts_with = "quiet")]
    pub progress: bool,
    /// No progress display and no notes: stderr holds only errors, warnings and, on exit 1,
    /// the failed checks (stdout keeps the --format output).
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
    /// Parse, merge and validate (the host checks too), then print the resolved plan (TOML;
    /// with --format json one object) and the model's prediction; nothing is sent, no results
    /// directory is created. Exit 0 valid, 2 not.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
}

impl RunArgs {
    /// The flags as a scenario (unset flags are absent keys).
    pub fn to_scenario(&self) -> Scenario {
        Scenario {
            name: self.name.clone(),
            description: None,
            load: self.load.clone(),
            client: self.client.clone(),
            payload: self.payload.clone(),
            target: self.target.clone(),
            lab: (self.lab != crate::lab::LabConfig::default()).then(|| self.lab.clone()),
            expect: self.expect_section(),
        }
    }

    fn expect_section(&self) -> ExpectSection {
        let mut tolerance_pct = None;
        let mut per_check = std::collections::BTreeMap::new();
        for t in &self.tolerance {
            match &t.check {
                Some(name) => {
                    per_check.insert(name.clone(), t.pct);
                }
                None => tolerance_pct = Some(t.pct),
            }
        }
        ExpectSection {
            tolerance_pct,
            tolerance: (!per_check.is_empty()).then_some(per_check),
            ..self.expect.clone()
        }
    }

    /// The scenario `file` with these flags laid over it, `[lab]` included.
    pub fn over(&self, file: Scenario) -> Scenario {
        let mut s = file.overlay(self.to_scenario());
        // A `[lab]` that sets nothing is no lab (as if the table were absent).
        s.lab = s.lab.filter(|l| *l != crate::lab::LabConfig::default());
        s
    }
}

/// `--tolerance PCT` or `--tolerance NAME=PCT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    /// The check it applies to (None: every model check).
    pub check: Option<String>,
    /// Percent.
    pub pct: f64,
}

impl std::str::FromStr for Tolerance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (check, pct) = match s.split_once('=') {
            Some((name, pct)) => (Some(name.trim().to_string()), pct),
            None => (None, s),
        };
        let pct = pct.trim().trim_end_matches('%');
        let pct: f64 = pct
            .parse()
            .map_err(|_| format!("'{s}' is not PCT or NAME=PCT, e.g. 10 or first_error_s=10"))?;
        Ok(Tolerance { check, pct })
    }
}

/// `portlab completions SHELL`: the completion script on `out`.
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "portlab", &mut buf);
    write_out(out, &buf, "the completion script")
}

/// `portlab man`: portlab(1) followed by a page per subcommand (portlab-run(1), ...), roff.
pub fn man(out: &mut dyn std::io::Write) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("portlab-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(name);
        clap_mangen::Man::new(page).render(&mut buf)?;
    }
    write_out(out, &buf, "the manual page")
}

/// Writes `bytes`; a reader that went away (`portlab man | head`) is not an error.
fn write_out(out: &mut dyn std::io::Write, bytes: &[u8], what: &str) -> anyhow::Result<u8> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context(format!("writing {what}")))
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{CloseMode, Rate, Span};
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
