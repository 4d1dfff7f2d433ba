//! Command-line definitions (clap derive): raw flags only. Each `run` flag is one scenario
//! key; `RunArgs::to_scenario` turns the flags into a scenario laid over the file's.

use crate::plan::{
    BindMode, Bytes, ClientSection, CloseMode, Expect, ExpectSection, LoadSection, PayloadKind,
    PayloadSection, Rate, Scenario, ServerClose, Span, TargetSection,
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
    Predict(crate::model::PredictArgs),
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
    /// Exit codes: 0 shown, 1 a single run whose verdict failed, 2 unreadable input.
    Report(ReportArgs),
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
}

/// `portlab report DIR... [--format F]`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results directories (results/<run>/) or their summary.json files.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub runs: Vec<PathBuf>,
    /// Output format; markdown fits a pull-request comment.
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

    /// Starts per second (open loop: start i at t0 + i/R), or "max" for a closed loop
    /// [key: load.rate; default 100].
    #[arg(long, help_heading = "Load", value_name = "R|max")]
    pub rate: Option<Rate>,
    /// Closed-loop workers with --rate max [key: load.concurrency; default 32, or the pool size].
    #[arg(long, help_heading = "Load", value_name = "N")]
    pub concurrency: Option<u32>,
    /// Client threads, each running its share of the workers on its own event loop
    /// [key: load.threads; default one per core].
    #[arg(long, help_heading = "Load", value_name = "N")]
    pub threads: Option<u32>,
    /// How long to issue starts, e.g. 5s, 2m [key: load.duration; default 10s unless --count].
    #[arg(long, help_heading = "Load", value_name = "DURATION")]
    pub duration: Option<Span>,
    /// Total starts [key: load.count].
    #[arg(long, help_heading = "Load", value_name = "N")]
    pub count: Option<u64>,
    /// A start due while N are in flight is dropped and counted, not queued
    /// [key: load.max_in_flight; default 1024].
    #[arg(long, help_heading = "Load", value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// connect() bound; past it the attempt fails as TIMEOUT [key: load.connect_timeout; default 5s].
    #[arg(long, help_heading = "Load", value_name = "DURATION")]
    pub connect_timeout: Option<Span>,
    /// Exchange bound after connect [key: load.exchange_timeout; default 5s].
    #[arg(long, help_heading = "Load", value_name = "DURATION")]
    pub exchange_timeout: Option<Span>,
    /// After the last start or Ctrl-C, how long in-flight connections may finish
    /// [key: load.drain_timeout; default 3s].
    #[arg(long, help_heading = "Load", value_name = "DURATION")]
    pub drain_timeout: Option<Span>,
    /// Timeline and progress interval [key: load.interval; default 1s].
    #[arg(long, help_heading = "Load", value_name = "DURATION")]
    pub interval: Option<Span>,

    /// Who closes: active (client first: client TIME_WAIT), passive (server first: server
    /// TIME_WAIT), reset (SO_LINGER 0: RST, no TIME_WAIT), linger=N [key: client.close; default active].
    #[arg(long, help_heading = "Client", value_name = "MODE")]
    pub close: Option<CloseMode>,
    /// N persistent connections carry all requests; 0 = one connection per request
    /// [key: client.pool; default 0].
    #[arg(long, help_heading = "Client", value_name = "N")]
    pub pool: Option<u32>,
    /// SO_REUSEADDR on client sockets [key: client.reuse_addr].
    #[arg(long, help_heading = "Client", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub reuse_addr: Option<bool>,
    /// TCP_NODELAY on client sockets [key: client.nodelay].
    #[arg(long, help_heading = "Client", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nodelay: Option<bool>,
    /// Local address(es), round robin; repeat or comma-separate [key: client.source].
    #[arg(
        long,
        help_heading = "Client",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub source: Vec<String>,
    /// Port choice: auto (connect() picks, shared across destinations), any-port (bind(0)
    /// first: exclusive across destinations), no-port (IP_BIND_ADDRESS_NO_PORT, Linux),
    /// range=LO-HI (portlab binds LO..HI in order, like MaxUserPort) [key: client.bind; default auto].
    #[arg(long, help_heading = "Client", value_name = "MODE")]
    pub bind: Option<BindMode>,

    /// none (connect, close), tcp (--send/--expect), http (GET --path) [key: payload.kind; default none].
    #[arg(long, help_heading = "Payload", value_name = "KIND")]
    pub payload: Option<PayloadKind>,
    /// tcp: bytes to send, as text or hex:0a0b.. [key: payload.send; default "hello\n"].
    #[arg(long, help_heading = "Payload", value_name = "BYTES")]
    pub send: Option<Bytes>,
    /// tcp: bytes to read back before closing, or eof [key: payload.expect; default the reply's length].
    #[arg(long, help_heading = "Payload", value_name = "N|eof")]
    pub expect: Option<Expect>,
    /// tcp: the embedded server's reply [key: payload.response; default "ok\n"].
    #[arg(long, help_heading = "Payload", value_name = "BYTES")]
    pub response: Option<Bytes>,
    /// http: request path [key: payload.path; default /].
    #[arg(long, help_heading = "Payload", value_name = "PATH")]
    pub path: Option<String>,

    /// HOST:PORT of an external server instead of the embedded one [key: target.address].
    #[arg(long, help_heading = "Target", value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Embedded server address [key: target.listen; default 127.0.0.1:0].
    #[arg(long, help_heading = "Target", value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Embedded server listen() backlog (capped by somaxconn) [key: target.backlog; default 4096].
    #[arg(long, help_heading = "Target", value_name = "N")]
    pub backlog: Option<u32>,
    /// Embedded server pause before each accept(), to fill its backlog [key: target.accept_delay].
    #[arg(long, help_heading = "Target", value_name = "DURATION")]
    pub accept_delay: Option<Span>,
    /// Embedded server close: first, after-client, reset [key: target.server_close; default
    /// follows --close].
    #[arg(long, help_heading = "Target", value_name = "HOW")]
    pub server_close: Option<ServerClose>,
    /// Embedded server ports (destinations) the client round-robins over [key: target.destinations; default 1].
    #[arg(long, help_heading = "Target", value_name = "N")]
    pub destinations: Option<u32>,
    /// A command serving --target (e.g. "nginx -c /tmp/x/nginx.conf"), started before the run
    /// (inside the lab when there is one) and stopped after it [key: target.exec].
    #[arg(long, help_heading = "Target", value_name = "COMMAND")]
    pub target_exec: Option<String>,
    /// How long the --target-exec command may take to accept on --target
    /// [key: target.ready_timeout; default 10s].
    #[arg(long, help_heading = "Target", value_name = "DURATION")]
    pub ready_timeout: Option<Span>,

    /// Your own client instead of portlab's: a command run by `sh -c` in the client's
    /// namespace with PORTLAB_TARGET=host:port, PORTLAB_TARGET_HOST, PORTLAB_TARGET_PORT and
    /// PORTLAB_RATE set; portlab sends nothing itself, samples the sockets and reads the
    /// client's output for its failure [key: client.exec].
    #[arg(long, help_heading = "Your own client", value_name = "COMMAND")]
    pub client_exec: Option<String>,
    /// How often the client's namespace is sampled [key: client.sample; default 100ms].
    #[arg(long, help_heading = "Your own client", value_name = "DURATION")]
    pub client_sample: Option<Span>,
    /// Stop the client this long after its first recognised failure (SIGTERM, then SIGKILL)
    /// [key: client.stop_after; default: at --duration or when it exits].
    #[arg(long, help_heading = "Your own client", value_name = "DURATION")]
    pub client_stop_after: Option<Span>,
    /// A regular expression for your client's own failure line, besides the built-in Java,
    /// Python, Go, Node, .NET, libpq and curl signatures [key: client.failure_pattern].
    #[arg(long, help_heading = "Your own client", value_name = "REGEX")]
    pub failure_pattern: Option<String>,
    /// Let a command written in the scenario file (client.exec, target.exec) run; a command
    /// given as a flag needs no consent.
    #[arg(long, help_heading = "Your own client")]
    pub allow_exec: bool,

    /// The Linux lab: a private network namespace with its own sysctls [keys: lab.*].
    #[command(flatten, next_help_heading = "Lab (Linux)")]
    pub lab: crate::lab::LabArgs,

    /// The run must (true) or must not (false) run out of ports [key: expect.exhaustion].
    #[arg(long, help_heading = "Expect (CI: a failed check exits 1)", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub expect_exhaustion: Option<bool>,
    /// failed / attempts must stay at or below F, e.g. 0.01 [key: expect.max_error_rate].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "F"
    )]
    pub max_error_rate: Option<f64>,
    /// p99 connect latency must stay at or below MS milliseconds [key: expect.max_connect_p99_ms].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "MS"
    )]
    pub max_connect_p99_ms: Option<f64>,
    /// completed / attempts must reach at least F, e.g. 0.99 [key: expect.min_success_rate].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "F"
    )]
    pub min_success_rate: Option<f64>,
    /// An error kind that must appear (as summary.errors names it, e.g. ECONNRESET); repeat
    /// or comma-separate [key: expect.errors].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_delimiter = ',',
        value_name = "KIND"
    )]
    pub expect_error: Vec<String>,
    /// Whether the model's checks count toward the verdict; false reports them only
    /// [key: expect.model; default true].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
        value_name = "BOOL"
    )]
    pub model_checks: Option<bool>,
    /// Tolerance of the model's checks in percent (PCT), or of one check (NAME=PCT, NAME one
    /// of first_error_s, timewait_max, post_exhaustion_rate); repeat
    /// [keys: expect.tolerance_pct, expect.tolerance.NAME; default 5].
    #[arg(
        long,
        help_heading = "Expect (CI: a failed check exits 1)",
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
        value_name = "PCT",
        requires = "baseline"
    )]
    pub baseline_margin: Option<f64>,

    /// Results directory [default results/<name>-<UTC time>/].
    #[arg(long, help_heading = "Output", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, help_heading = "Output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Show progress even when stderr is not a terminal (one line per interval).
    #[arg(long, help_heading = "Output", conflicts_with = "quiet")]
    pub progress: bool,
    /// No progress display.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
}

impl RunArgs {
    /// The flags as a scenario (unset flags are absent keys).
    pub fn to_scenario(&self) -> Scenario {
        Scenario {
            name: self.name.clone(),
            description: None,
            load: LoadSection {
                rate: self.rate,
                concurrency: self.concurrency,
                threads: self.threads,
                duration: self.duration,
                count: self.count,
                max_in_flight: self.max_in_flight,
                connect_timeout: self.connect_timeout,
                exchange_timeout: self.exchange_timeout,
                drain_timeout: self.drain_timeout,
                interval: self.interval,
            },
            client: ClientSection {
                close: self.close,
                pool: self.pool,
                reuse_addr: self.reuse_addr,
                nodelay: self.nodelay,
                source: (!self.source.is_empty()).then(|| self.source.clone()),
                bind: self.bind,
                exec: self.client_exec.clone(),
                sample: self.client_sample,
                stop_after: self.client_stop_after,
                failure_pattern: self.failure_pattern.clone(),
            },
            payload: PayloadSection {
                kind: self.payload,
                send: self.send.clone(),
                expect: self.expect,
                response: self.response.clone(),
                path: self.path.clone(),
            },
            target: TargetSection {
                address: self.target.clone(),
                listen: self.listen.clone(),
                backlog: self.backlog,
                accept_delay: self.accept_delay,
                server_close: self.server_close,
                destinations: self.destinations,
                exec: self.target_exec.clone(),
                ready_timeout: self.ready_timeout,
            },
            lab: None,
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
            exhaustion: self.expect_exhaustion,
            max_error_rate: self.max_error_rate,
            max_connect_p99_ms: self.max_connect_p99_ms,
            min_success_rate: self.min_success_rate,
            errors: (!self.expect_error.is_empty()).then(|| self.expect_error.clone()),
            model: self.model_checks,
            tolerance_pct,
            tolerance: (!per_check.is_empty()).then_some(per_check),
        }
    }

    /// The scenario `file` with these flags laid over it, `[lab]` included.
    pub fn over(&self, file: Scenario) -> Scenario {
        let mut s = file.overlay(self.to_scenario());
        let lab = s.lab.take().unwrap_or_default().merge_args(&self.lab);
        s.lab = (lab != crate::lab::LabConfig::default()).then_some(lab);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
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
}
