//! Scenario + flags -> one validated [`Plan`] with every default filled in.
//!
//! Everything a user can get wrong is refused here, before any traffic, with a [`PlanError`]
//! that names the key (and its flag) and what is accepted.

pub mod bounds;
mod client;
pub mod client_exec;
pub mod clients;
mod expect;
pub mod host;
pub mod lab;
mod load;
mod payload;
mod scenario;
pub mod sysctl;
mod target;
pub mod values;

pub use client::ClientSection;
pub use expect::ExpectSection;
pub use expect::{Expectations, DEFAULT_TOLERANCE_PCT, MODEL_CHECKS};
pub use host::check_host;
pub use load::LoadSection;
pub use payload::PayloadSection;
pub use scenario::Scenario;
pub use target::TargetSection;
pub use values::{
    BindMode, Bytes, CloseMode, Expect, PayloadKind, PortRange, Rate, ServerClose, Span,
};

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// What a user got wrong in a scenario file or the flags.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file named on the command line.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("scenario file {path}: {message}")]
    Parse {
        /// The file named on the command line.
        path: String,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// The `[lab]` table (or a `--lab-*` flag) is invalid; the message names the key.
    #[error(transparent)]
    Lab(#[from] lab::LabError),
    /// A value is out of range or contradicts another.
    #[error("{key} (flag {flag}): {message}")]
    Invalid {
        /// The scenario key, e.g. `load.rate`.
        key: &'static str,
        /// The flag with the same meaning, e.g. `--rate`.
        flag: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// A count that must be at least 1, or `default` when unset.
fn positive(
    v: Option<u32>,
    default: u32,
    key: &'static str,
    flag: &'static str,
) -> Result<u32, PlanError> {
    match v {
        Some(0) => Err(invalid(key, flag, "must be at least 1")),
        v => Ok(v.unwrap_or(default)),
    }
}

/// A duration that must be longer than 0, or `default` when unset.
fn span_or(
    v: Option<Span>,
    default: Duration,
    key: &'static str,
    flag: &'static str,
) -> Result<Duration, PlanError> {
    match v {
        Some(Span(d)) if d.is_zero() => Err(invalid(key, flag, "must be longer than 0s")),
        v => Ok(v.map_or(default, |s| s.0)),
    }
}

fn invalid(key: &'static str, flag: &'static str, message: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        key,
        flag,
        message: message.into(),
    }
}

/// Refuses the first of `keys` (set?, key, flag) that is set, with `why` (keys that only
/// apply with another key or mode).
fn refuse_set(
    keys: &[(bool, &'static str, &'static str)],
    why: impl FnOnce() -> String,
) -> Result<(), PlanError> {
    match keys.iter().find(|(set, _, _)| *set) {
        Some(&(_, key, flag)) => Err(invalid(key, flag, why())),
        None => Ok(()),
    }
}

/// Reads and parses a scenario file; unknown keys are an error naming the key.
pub fn load_scenario(path: &Path) -> Result<Scenario, PlanError> {
    let shown = path.display().to_string();
    let bytes = crate::input::read(path, crate::input::SCENARIO_LIMIT).map_err(|source| {
        PlanError::Read {
            path: shown.clone(),
            source,
        }
    })?;
    parse_scenario(&bytes, path)
}

/// Parses scenario file contents (`path` names it in messages and gives the default name).
/// Pure: the entry point of the fuzz harness too.
pub fn parse_scenario(bytes: &[u8], path: &Path) -> Result<Scenario, PlanError> {
    let shown = path.display().to_string();
    let text = std::str::from_utf8(bytes).map_err(|e| PlanError::Parse {
        path: shown.clone(),
        message: format!(
            "not UTF-8 text: invalid byte 0x{:02x} at byte offset {} (TOML files are UTF-8)",
            bytes[e.valid_up_to()],
            e.valid_up_to()
        ),
    })?;
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| PlanError::Parse {
        path: shown,
        message: e.to_string(),
    })?;
    if scenario.name.is_none() {
        scenario.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    Ok(scenario)
}

/// The load: how fast, how long, how many at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Open loop (starts per second) or closed loop (max).
    pub rate: Rate,
    /// Closed-loop workers; for pooled runs, at most the pool size.
    pub concurrency: u32,
    /// Client threads, each with its share of the workers (None: one per core).
    pub threads: Option<u32>,
    /// Stop issuing starts after this long (None: only `count` bounds the run).
    pub duration: Option<Duration>,
    /// Stop after this many starts.
    pub count: Option<u64>,
    /// Open loop: a start due while this many are in flight is dropped.
    pub max_in_flight: u32,
    /// Bound on connect(); past it the attempt fails as TIMEOUT.
    pub connect_timeout: Duration,
    /// Bound on the exchange after connect.
    pub exchange_timeout: Duration,
    /// Bound on the drain after the last start or Ctrl-C.
    pub drain_timeout: Duration,
    /// Timeline and progress granularity.
    pub interval: Duration,
    /// `--shard I/N`: `rate` and `count` above are this shard's share (R / N, C split).
    pub shard: Option<crate::shard::Shard>,
    /// `--start-at`: the instant the load begins.
    pub start_at: Option<crate::shard::StartAt>,
}

/// The client's socket behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Who closes, and how.
    pub close: CloseMode,
    /// Persistent connections (0 = one connection per request).
    pub pool: u32,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Local addresses, used round robin (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// How the local port is chosen.
    pub bind: BindMode,
    /// Per-socket ephemeral range (IP_LOCAL_PORT_RANGE, Linux 6.3+), None: the system's.
    pub local_port_range: Option<PortRange>,
}

/// What is exchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// none, tcp or http.
    pub kind: PayloadKind,
    /// tcp: bytes sent by the client.
    pub send: Bytes,
    /// tcp: what the client reads back before closing.
    pub expect: Expect,
    /// tcp: the embedded server's reply.
    pub response: Bytes,
    /// http: the request path.
    pub path: String,
}

/// Where connections go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An external server, HOST:PORT as written (resolved when the run starts).
    External(String),
    /// portlab's own server.
    Embedded(EmbeddedServer),
}

/// The embedded server's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedServer {
    /// Listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// listen() backlog (the kernel caps it at somaxconn).
    pub backlog: u32,
    /// Pause before each accept(), to fill the backlog on purpose.
    pub accept_delay: Duration,
    /// How the server ends each connection.
    pub close: ServerClose,
    /// Ports it listens on (consecutive destinations the client round-robins over).
    pub destinations: u32,
}

/// A server command portlab starts before the run and stops after it (`[target] exec`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetExec {
    /// The command line, run by the shell (`sh -c 'exec ...'` on Unix).
    pub command: String,
    /// How long it may take to accept a connection on the target address.
    pub ready_timeout: Duration,
}

/// Default bound on an `exec` target's start-up.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated run: what the runner, the server and the reports work from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Run name (results directory prefix).
    pub name: String,
    /// What the scenario reproduces.
    pub description: Option<String>,
    /// Pace and bounds.
    pub load: Load,
    /// Socket behaviour.
    pub client: Client,
    /// Exchange.
    pub payload: Payload,
    /// Destination.
    pub target: Target,
    /// A command serving the external target, started and stopped by portlab.
    pub exec: Option<TargetExec>,
    /// The lab, validated (None: no `[lab]` table and no `--lab*` flag).
    pub lab: Option<lab::LabPlan>,
    /// The scenario with every default filled in: what plan.toml (and summary.json's
    /// `plan`) holds, and read back it resolves to this same plan.
    pub scenario: Scenario,
    /// `[expect]`, validated.
    pub expect: Expectations,
    /// The user's own client (`client.exec`), run instead of portlab's.
    pub client_exec: Option<client_exec::ClientExec>,
}

/// Default pace when neither file nor flags give one.
pub const DEFAULT_RATE: f64 = 100.0;
/// Default length when neither duration nor count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default closed-loop workers.
pub const DEFAULT_CONCURRENCY: u32 = 32;
/// Default bound on connections in flight (open loop).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1024;
/// Upper bound on `load.threads` (a typo like 1000 would only cost memory and switches).
pub const MAX_THREADS: u32 = 256;
/// Most destinations the embedded server serves (one listening port each): the TIME_WAIT
/// observer lists the top 8 destinations besides the target, so up to 8 are counted exactly.
pub const MAX_DESTINATIONS: u32 = 8;

impl Plan {
    /// Validates a (file + flags) scenario and fills in every default, in the typed parts the
    /// run works from and in [`Plan::scenario`], the same plan as a scenario (plan.toml). The
    /// scenario is taken apart field by field, and each section's `written` takes its typed
    /// part apart likewise: a key added anywhere is a compile error until it is written back.
    pub fn resolve(s: &Scenario) -> Result<Plan, PlanError> {
        bounds::check(s)?;
        let Scenario {
            name,
            description,
            load,
            client,
            payload,
            target,
            lab,
            expect,
        } = s;
        let client_typed = client::resolve(client)?;
        let load_typed = load::resolve(load, client_typed.pool)?;
        let payload_typed = payload::resolve(payload, &target.address, client_typed.close)?;
        let (target_typed, exec) = target::resolve(target, payload, client_typed.close)?;
        let lab_typed = lab.as_ref().map(|c| c.validate()).transpose()?;
        let expect_typed = Expectations::resolve(expect)?;
        let client_exec = client_exec::ClientExec::resolve(client)?;
        let name = name.clone().unwrap_or_else(|| "run".to_string());
        let scenario = Scenario {
            name: Some(name.clone()),
            description: description.clone(),
            load: load::written(&load_typed),
            client: client::written(&client_typed, client_exec.as_ref()),
            payload: payload::written(&payload_typed, target.address.is_some()),
            target: target::written(&target_typed, exec.as_ref()),
            lab: lab.clone(),
            expect: expect_typed.to_section(),
        };
        let plan = Plan {
            expect: expect_typed,
            lab: lab_typed,
            scenario,
            name,
            description: description.clone(),
            load: load_typed,
            client: client_typed,
            payload: payload_typed,
            target: target_typed,
            exec,
            client_exec,
        };
        plan.check_consistency()?;
        if let Rate::PerSecond(r) = plan.lab_rate() {
            if r > bounds::MAX_RATE {
                return Err(invalid("load.rate", "--rate", format!(
                    "{} x lab.time_scale (--lab-time-scale) {} = {r} starts per second is out of range: accepted at most {}",
                    plan.load.rate, plan.time_scale(), bounds::MAX_RATE
                )));
            }
        }
        Ok(plan)
    }

    /// Points the plan at an external `server` (a lab client, whose server its parent runs),
    /// in the typed target and in [`Plan::scenario`] alike.
    pub fn retarget(&mut self, server: String) {
        self.target = Target::External(server);
        self.scenario.target = target::written(&self.target, self.exec.as_ref());
        self.scenario.payload = payload::written(&self.payload, true);
    }

    /// Combinations that cannot hold, refused with the reason and the way out.
    fn check_consistency(&self) -> Result<(), PlanError> {
        let (c, p) = (&self.client, &self.payload);
        if !self
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            || self.name.is_empty()
        {
            return Err(invalid(
                "name",
                "--name",
                format!("'{}' must be letters, digits, '-', '_' or '.' (it names the results directory)", self.name),
            ));
        }
        if c.pool > 0 {
            if p.kind == PayloadKind::None {
                return Err(invalid("client.pool", "--pool", "a pooled connection carries requests: set payload.kind (--payload) to tcp or http, or use pool = 0"));
            }
            if c.close == CloseMode::Passive {
                return Err(invalid("client.close", "--close", "passive (the server closes after each reply) cannot hold with pooling: use active, reset or linger with pool > 0, or pool = 0"));
            }
            if p.expect == Expect::Eof && p.kind == PayloadKind::Tcp {
                return Err(invalid(
                    "payload.expect",
                    "--expect",
                    "eof ends the connection, so it cannot hold with pooling: write a byte count",
                ));
            }
            if let Target::Embedded(s) = &self.target {
                if s.close != ServerClose::AfterClient {
                    return Err(invalid(
                        "target.server_close",
                        "--server-close",
                        "a pooled connection needs a server that keeps it open: use after-client",
                    ));
                }
            }
        }
        if p.kind == PayloadKind::Tcp && p.expect == Expect::Eof && c.close != CloseMode::Passive {
            return Err(invalid("payload.expect", "--expect", format!(
                "eof waits for the server to close first, which contradicts close = {}; use --close passive or a byte count", c.close
            )));
        }
        if let Target::Embedded(s) = &self.target {
            let last = u32::from(s.listen.port()) + s.destinations - 1;
            if s.listen.port() != 0 && last > u32::from(u16::MAX) {
                return Err(invalid("target.destinations", "--destinations", format!(
                    "{} ports from target.listen (--listen) port {} run past 65535 (the last would be {last}): listen on port {} or lower, or on port 0",
                    s.destinations, s.listen.port(), u32::from(u16::MAX) + 1 - s.destinations
                )));
            }
            if c.close == CloseMode::Passive && s.close == ServerClose::AfterClient {
                return Err(invalid("target.server_close", "--server-close", "after-client with close = passive would leave both sides waiting for the other: use first or reset"));
            }
            if p.kind == PayloadKind::Tcp && p.send.0.is_empty() {
                return Err(invalid(
                    "payload.send",
                    "--send",
                    "the embedded server replies after reading the request: send at least one byte",
                ));
            }
        }
        Ok(())
    }

    /// The rate the runner drives: the scenario's rate times the lab's time scale (a lab that
    /// compresses time by k runs k times faster).
    pub fn lab_rate(&self) -> Rate {
        match (self.load.rate, &self.lab) {
            (Rate::PerSecond(r), Some(lab)) => Rate::PerSecond(r * lab.rate_multiplier()),
            (rate, _) => rate,
        }
    }

    /// Lab seconds -> modelled seconds (1 without a time scale).
    pub fn time_scale(&self) -> f64 {
        self.lab.as_ref().map_or(1.0, |l| l.time_scale())
    }

    /// The client's long-lived worker tasks: one per connection that may be open at once
    /// (max_in_flight in the open loop, concurrency in the closed loop), or one per pooled
    /// connection.
    pub fn workers(&self) -> u32 {
        match (self.client.pool, self.load.rate) {
            (0, Rate::PerSecond(_)) => self.load.max_in_flight,
            (0, Rate::Max) => self.load.concurrency,
            (pool, Rate::PerSecond(_)) => pool,
            (pool, Rate::Max) => pool.min(self.load.concurrency),
        }
    }

    /// Destinations the client spreads its connections over (the embedded server's ports).
    pub fn destinations(&self) -> u32 {
        match &self.target {
            Target::Embedded(s) => s.destinations,
            Target::External(_) => 1,
        }
    }

    /// True when the run is in a private network namespace.
    pub fn isolated(&self) -> bool {
        self.lab.as_ref().is_some_and(|l| l.isolate)
    }

    /// True when the run is open loop (a start schedule), false for rate = max.
    pub fn open_loop(&self) -> bool {
        matches!(self.load.rate, Rate::PerSecond(_))
    }

    /// How many file descriptors the run may hold at once (client and embedded server).
    pub fn descriptors_needed(&self) -> u64 {
        let client = match (self.client.pool, self.load.rate) {
            (0, Rate::PerSecond(_)) => u64::from(self.load.max_in_flight),
            (0, Rate::Max) => u64::from(self.load.concurrency),
            (n, _) => u64::from(n),
        };
        let server = if matches!(self.target, Target::Embedded(_)) {
            client
        } else {
            0
        };
        client + server + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, PlanError> {
        let s: Scenario = toml::from_str(text).map_err(|e| PlanError::Parse {
            path: "test.toml".into(),
            message: e.to_string(),
        })?;
        Plan::resolve(&s)
    }

    fn message(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn empty_scenario_gets_every_default() {
        let plan = parse("").unwrap();
        assert_eq!(plan.load.rate, Rate::PerSecond(DEFAULT_RATE));
        assert_eq!(plan.load.duration, Some(DEFAULT_DURATION));
        assert_eq!(plan.client.close, CloseMode::Active);
        match plan.target {
            Target::Embedded(s) => assert_eq!(s.close, ServerClose::AfterClient),
            Target::External(_) => panic!("embedded by default"),
        }
    }

    #[test]
    fn resolved_plan_round_trips_through_toml() {
        let plan = parse(
            "name = \"rt\"\n[load]\nrate = 250\ncount = 900\n[client]\nclose = \"reset\"\nbind = \"range=40000-40100\"\n[payload]\nkind = \"tcp\"\nsend = \"hex:00ff\"\n",
        )
        .unwrap();
        let text = toml::to_string(&plan.scenario).unwrap();
        let again = Plan::resolve(&toml::from_str(&text).unwrap()).unwrap();
        assert_eq!(plan, again, "plan.toml must re-run the same plan:\n{text}");
        for extra in [
            "[target]\ndestinations = 3\n",
            "[load]\nthreads = 3\n",
            "[client]\nlocal_port_range = \"40000-40009\"\n",
            "[payload]\nkind = \"http\"\n[target]\naddress = \"127.0.0.1:8080\"\nexec = \"nginx -c /tmp/x.conf\"\nready_timeout = \"3s\"\n",
        ] {
            let plan = parse(extra).unwrap();
            let text = toml::to_string(&plan.scenario).unwrap();
            let again = Plan::resolve(&toml::from_str(&text).unwrap()).unwrap();
            assert_eq!(plan, again, "plan.toml must re-run the same plan:\n{text}");
        }
    }

    /// Every key path (`load.rate`, `lab.server.somaxconn`) set in a TOML table.
    fn keys_set(table: &toml::Table, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                // `[expect.tolerance]` is one key, a map of checks.
                toml::Value::Table(t) if path != "expect.tolerance" => {
                    keys_set(t, &format!("{path}."), out)
                }
                _ => {
                    out.insert(path);
                }
            }
        }
    }

    /// scenario -> plan.toml -> scenario -> plan, for cases that between them set every key
    /// of every section (the keys are taken from the sections' own field lists): each key a
    /// case sets is in its plan.toml, which re-runs the same plan. A key added to a section
    /// fails here until a case sets it, and fails again if plan.toml loses it.
    #[cfg(target_os = "linux")]
    #[test]
    fn every_key_survives_plan_toml() {
        let soon = std::time::SystemTime::now() + Duration::from_secs(60);
        let soon = soon
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let cases = [
            format!(
                r#"
                name = "every-key"
                description = "all of them"
                [load]
                rate = 200
                concurrency = 7
                threads = 2
                duration = "4s"
                count = 500
                max_in_flight = 99
                connect_timeout = "2s"
                exchange_timeout = "3s"
                drain_timeout = "1500ms"
                interval = "500ms"
                shard = "1/2"
                start_at = "{soon}"
                [client]
                close = "reset"
                pool = 4
                reuse_addr = true
                nodelay = true
                source = ["127.0.0.1"]
                bind = "no-port"
                local_port_range = "40000-40999"
                [payload]
                kind = "tcp"
                send = "hi"
                expect = 3
                response = "abc"
                [target]
                listen = "127.0.0.1:0"
                backlog = 100
                accept_delay = "1ms"
                server_close = "after-client"
                destinations = 2
                [expect]
                exhaustion = true
                max_error_rate = 0.5
                max_connect_p99_ms = 20
                min_success_rate = 0.25
                min_margin = 1.5
                errors = ["eaddrnotavail"]
                model = false
                tolerance_pct = 8
                [expect.tolerance]
                first_error_s = 2
                "#
            ),
            r#"
            [payload]
            kind = "http"
            path = "/health"
            [target]
            address = "127.0.0.1:8080"
            exec = "nginx -c /tmp/x.conf"
            ready_timeout = "3s"
            "#
            .to_string(),
            r#"
            [client]
            exec = "curl http://127.0.0.1:8080/"
            sample = "50ms"
            stop_after = "2s"
            failure_pattern = "refused"
            [target]
            address = "127.0.0.1:8080"
            "#
            .to_string(),
            r#"
            [lab]
            isolate = true
            port_range = "40000-40999"
            reserved_ports = "40100"
            tw_reuse = 2
            tw_reuse_delay_ms = 500
            max_tw_buckets = 1000
            fin_timeout = 10
            timestamps = true
            somaxconn = 128
            abort_on_overflow = true
            topology = "veth"
            clients = 2
            conntrack = true
            conntrack_time_wait = 6
            conntrack_max = 500
            [lab.server]
            conntrack_time_wait = 3
            tw_reuse = 1
            tw_reuse_delay_ms = 700
            max_tw_buckets = 2000
            somaxconn = 256
            abort_on_overflow = false
            fin_timeout = 20
            timestamps = true
            "#
            .to_string(),
            "[lab]\nisolate = true\ntime_wait = \"240s\"\ntime_scale = 10\n".to_string(),
            "[lab]\nisolate = true\nnat_ports = \"40000-40099\"\nclients = 3\n".to_string(),
        ];
        let mut covered = std::collections::BTreeSet::new();
        for text in &cases {
            let plan = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let written = toml::to_string(&plan.scenario).unwrap();
            let again = Plan::resolve(&toml::from_str(&written).unwrap()).unwrap();
            assert_eq!(
                plan, again,
                "plan.toml must re-run the same plan:\n{written}"
            );
            let (mut given, mut kept) = Default::default();
            keys_set(&toml::from_str(text).unwrap(), "", &mut given);
            keys_set(&toml::from_str(&written).unwrap(), "", &mut kept);
            let lost: Vec<_> = given.difference(&kept).collect();
            assert!(lost.is_empty(), "plan.toml lost {lost:?}:\n{written}");
            covered.extend(given);
        }
        let sections: [(&str, &[&str]); 7] = [
            ("load.", LoadSection::KEYS),
            ("client.", ClientSection::KEYS),
            ("payload.", PayloadSection::KEYS),
            ("target.", TargetSection::KEYS),
            ("expect.", ExpectSection::KEYS),
            ("lab.", lab::LabConfig::KEYS),
            ("lab.server.", lab::ServerSideConfig::KEYS),
        ];
        let every = sections
            .iter()
            .flat_map(|(prefix, keys)| keys.iter().map(move |k| format!("{prefix}{k}")))
            .filter(|k| k != "lab.server")
            .chain(["name".to_string(), "description".to_string()]);
        for key in every {
            assert!(
                covered.contains(&key),
                "no case sets {key}: add it to a case"
            );
        }
    }

    #[test]
    fn threads_unset_stay_unset_in_plan_toml() {
        // A plan re-run on another machine takes that machine's cores.
        let plan = parse("[load]\nrate = 10\n").unwrap();
        assert_eq!(plan.load.threads, None);
        let text = toml::to_string(&plan.scenario).unwrap();
        assert!(!text.contains("threads"), "{text}");
        assert_eq!(
            parse("[load]\nthreads = 3\n").unwrap().load.threads,
            Some(3)
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file: Scenario = toml::from_str("[load]\nrate = 10\nduration = \"3s\"").unwrap();
        let mut flags = Scenario::default();
        flags.load.rate = Some(Rate::PerSecond(99.0));
        let s = file.overlay(flags);
        assert_eq!(s.load.rate, Some(Rate::PerSecond(99.0)));
        assert_eq!(s.load.duration, Some(Span(Duration::from_secs(3))));
    }

    // Each broken input: the key (or flag) it must name, and what the message must say.
    #[test]
    fn bad_input_names_the_problem() {
        let cases: &[(&str, &[&str])] = &[
            // unknown key, with a typo
            ("[load]\nrat = 5", &["unknown field", "rat"]),
            // unknown table
            ("[loadd]\nrate = 5", &["unknown field", "loadd"]),
            // zero rate
            ("[load]\nrate = 0", &["rate", "positive"]),
            // not a rate
            ("[load]\nrate = \"fast\"", &["rate", "max"]),
            // close mode misspelt
            ("[client]\nclose = \"half\"", &["active, passive, reset"]),
            // empty (inverted) port range
            (
                "[client]\nbind = \"range=5000-1000\"",
                &["port range", "LO-HI"],
            ),
            // pooling with nothing to carry
            ("[client]\npool = 4", &["client.pool", "--payload"]),
            // pooling with a server that closes after each reply
            (
                "[client]\npool = 4\nclose = \"passive\"\n[payload]\nkind = \"http\"",
                &["client.close", "pooling"],
            ),
            // waiting for EOF while closing first
            (
                "[payload]\nkind = \"tcp\"\nexpect = \"eof\"",
                &["payload.expect", "--close passive"],
            ),
            // zero count
            ("[load]\ncount = 0", &["load.count", "at least 1"]),
            // server settings against an external target
            (
                "[target]\naddress = \"127.0.0.1:80\"\nbacklog = 5",
                &["target.backlog", "external"],
            ),
            // a source that is not an address
            (
                "[client]\nsource = [\"localhost\"]",
                &["client.source", "IP address"],
            ),
            // a send without the tcp payload
            ("[payload]\nsend = \"x\"", &["payload.send", "tcp"]),
            // a name that cannot name a directory
            ("name = \"a/b\"", &["name", "results directory"]),
            // a server command without the address it serves
            (
                "[target]\nexec = \"nginx\"",
                &["target.exec", "--target-exec", "target.address"],
            ),
            // an empty server command
            (
                "[target]\naddress = \"127.0.0.1:80\"\nexec = \" \"",
                &["target.exec", "empty"],
            ),
            // a ready timeout with nothing to wait for
            (
                "[target]\nready_timeout = \"5s\"",
                &["target.ready_timeout", "target.exec"],
            ),
            // destinations are the embedded server's ports
            (
                "[target]\naddress = \"127.0.0.1:80\"\ndestinations = 2",
                &["target.destinations", "external"],
            ),
            // a per-socket range with portlab binding the ports itself
            (
                "[client]\nlocal_port_range = \"40000-40009\"\nbind = \"range=40000-40009\"",
                &["client.local_port_range", "--local-port-range", "drop one"],
            ),
            // an inverted per-socket range
            (
                "[client]\nlocal_port_range = \"40009-40000\"",
                &["local_port_range", "LO-HI"],
            ),
            // zero or too many destinations
            (
                "[target]\ndestinations = 0",
                &["target.destinations", "1 to 8"],
            ),
        ];
        for (text, needles) in cases {
            let msg = message(text);
            for needle in *needles {
                assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn expect_table_resolves_and_round_trips() {
        let text = r#"
            [expect]
            exhaustion = true
            max_error_rate = 0.5
            max_connect_p99_ms = 20
            min_success_rate = 0.25
            errors = ["eaddrnotavail"]
            model = false
            tolerance_pct = 8
            [expect.tolerance]
            first_error_s = 2
        "#;
        let plan = parse(text).unwrap();
        let e = &plan.expect;
        assert_eq!(e.exhaustion, Some(true));
        assert_eq!(
            e.errors,
            ["EADDRNOTAVAIL"],
            "names are matched in upper case"
        );
        assert!(!e.model);
        assert_eq!(e.tolerance_for("first_error_s"), 2.0);
        assert_eq!(
            e.tolerance_for("timewait_max"),
            8.0,
            "the default for the others"
        );
        let again = Plan::resolve(&plan.scenario).unwrap();
        assert_eq!(again.expect, plan.expect, "plan.toml keeps [expect]");
        assert_eq!(parse("").unwrap().expect, Expectations::default());
    }

    #[test]
    fn flags_override_expectations_key_by_key() {
        let file: Scenario = toml::from_str(
            "[expect]\nexhaustion = true\nmax_error_rate = 0.1\n[expect.tolerance]\nfirst_error_s = 2\ntimewait_max = 3",
        )
        .unwrap();
        let flags: Scenario =
            toml::from_str("[expect]\nexhaustion = false\n[expect.tolerance]\ntimewait_max = 9")
                .unwrap();
        let plan = Plan::resolve(&file.overlay(flags)).unwrap();
        assert_eq!(plan.expect.exhaustion, Some(false));
        assert_eq!(plan.expect.max_error_rate, Some(0.1));
        assert_eq!(plan.expect.tolerance_for("first_error_s"), 2.0);
        assert_eq!(plan.expect.tolerance_for("timewait_max"), 9.0);
    }

    #[test]
    fn bad_expectations_name_the_key() {
        for (text, needles) in [
            (
                "[expect]\nmax_error_rate = 1.5",
                &["expect.max_error_rate", "--max-error-rate", "0 to 1"][..],
            ),
            (
                "[expect]\nmin_success_rate = -0.1",
                &["expect.min_success_rate", "fraction"],
            ),
            (
                "[expect]\nmin_margin = 0",
                &["expect.min_margin", "--min-margin", "above 0"],
            ),
            (
                "[expect]\nmax_connect_p99_ms = 0",
                &["expect.max_connect_p99_ms", "above 0"],
            ),
            (
                "[expect]\ntolerance_pct = -1",
                &["expect.tolerance_pct", "--tolerance"],
            ),
            (
                "[expect.tolerance]\nfirst_eror_s = 1",
                &["first_eror_s", "first_error_s, timewait_max"],
            ),
            (
                "[expect]\nerrors = [\"not a name\"]",
                &["expect.errors", "ECONNRESET"],
            ),
            ("[expect]\nexhaust = true", &["exhaust", "unknown field"]),
        ] {
            let msg = match toml::from_str::<Scenario>(text) {
                Ok(s) => Plan::resolve(&s).expect_err(text).to_string(),
                Err(e) => e.to_string(),
            };
            for needle in needles {
                assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }
}
