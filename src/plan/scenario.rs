//! The scenario file: TOML, every key optional, unknown keys refused. Flags are turned into a
//! `Scenario` too (see `cli`), and `overlay` puts them on top of the file's, so a key and its
//! flag can never mean two different things.

use super::values::{
    BindMode, Bytes, CloseMode, Expect, PayloadKind, PortRange, Rate, ServerClose, Span,
};
use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the run and its results directory (default: the file name, or "run").
    pub name: Option<String>,
    /// What the scenario reproduces, shown in reports.
    pub description: Option<String>,
    /// How fast and how long.
    #[serde(default, skip_serializing_if = "is_default")]
    pub load: LoadSection,
    /// How each connection is opened and closed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub client: ClientSection,
    /// What is exchanged on each connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub payload: PayloadSection,
    /// Where connections go: the embedded server (default) or an external address.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: TargetSection,
    /// Linux lab: a private network namespace with its own port range and TIME_WAIT settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<super::lab::LabConfig>,
    /// What the run must show for CI: each key becomes a check of the verdict.
    #[serde(default, skip_serializing_if = "is_default")]
    pub expect: ExpectSection,
}

/// One definition per key: a section field's doc comment is its `--help` text, its `#[arg]`
/// its `portlab run` flag, its name (and serde attributes) its scenario key, and the overlay of
/// flags on a file follows from the same list. Adding a key is one field here plus its
/// resolution in the section's own file (plan/load.rs, client.rs, ...). A field's type says
/// how a flag lays over the file's value ([`Layer`]): an `Option` is replaced when the flag is
/// given, a `bool` switch can only be turned on, a nested section merges key by key.
macro_rules! section {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty, )+
        }
    ) => {
        $(#[$m])*
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )+
        }

        impl $name {
            /// `top`'s keys over `self`'s: a key set in `top` wins.
            pub fn overlay(&mut self, top: $name) {
                $( $crate::plan::scenario::Layer::layer(&mut self.$f, top.$f); )+
            }
        }

        impl $crate::plan::scenario::Layer for $name {
            fn layer(&mut self, top: Self) {
                self.overlay(top);
            }
        }
    };
}
pub(crate) use section;

/// How one key of a section takes the value laid over it (the flags over the file).
pub trait Layer {
    /// Puts `top` over `self`.
    fn layer(&mut self, top: Self);
}

impl<T> Layer for Option<T> {
    /// A key set on top wins; an unset one leaves the value below alone.
    fn layer(&mut self, top: Self) {
        if top.is_some() {
            *self = top;
        }
    }
}

impl Layer for bool {
    /// A switch (`--lab`) can only be turned on: an absent flag is `false`, not "off".
    fn layer(&mut self, top: Self) {
        *self |= top;
    }
}

section! {
    /// `[load]`: how fast, how long, how many at once (flags under "Load").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct LoadSection {
        /// Starts per second (open loop: start i at t0 + i/R; also 200/s or 1800/min), or
        /// "max" for a closed loop [key: load.rate; default 100].
        #[arg(long, allow_hyphen_values = true, value_name = "R|max")]
        pub rate: Option<Rate>,
        /// Closed-loop workers with --rate max [key: load.concurrency; default 32, or the pool
        /// size].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub concurrency: Option<u32>,
        /// Client threads, each running its share of the workers on its own event loop
        /// [key: load.threads; default one per core].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub threads: Option<u32>,
        /// How long to issue starts, e.g. 5s, 2m [key: load.duration; default 10s unless
        /// --count].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub duration: Option<Span>,
        /// Total starts [key: load.count].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub count: Option<u64>,
        /// A start due while N are in flight is dropped and counted, not queued
        /// [key: load.max_in_flight; default 1024].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub max_in_flight: Option<u32>,
        /// connect() bound; past it the attempt fails as TIMEOUT [key: load.connect_timeout;
        /// default 5s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub connect_timeout: Option<Span>,
        /// Exchange bound after connect [key: load.exchange_timeout; default 5s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub exchange_timeout: Option<Span>,
        /// After the last start or Ctrl-C, how long in-flight connections may finish
        /// [key: load.drain_timeout; default 3s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub drain_timeout: Option<Span>,
        /// Timeline and progress interval [key: load.interval; default 1s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub interval: Option<Span>,
        /// Run shard I of N (from 0): rate R/N, first start at I/R, count split exactly, so
        /// N shards on N machines make one even schedule; "N" alone takes I from
        /// $JOB_COMPLETION_INDEX [key: load.shard].
        #[arg(long, value_name = "I/N")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub shard: Option<crate::shard::ShardSpec>,
        /// Begin the load at this instant (RFC 3339 UTC or Unix seconds), with a countdown;
        /// give every shard the same one [key: load.start_at].
        #[arg(long, value_name = "TIME")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_at: Option<crate::shard::StartAt>,
    }
}

section! {
    /// `[client]`: how each connection is opened and closed (flags under "Client").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ClientSection {
        /// Who closes: active (client first: client TIME_WAIT), passive (server first: server
        /// TIME_WAIT), reset (SO_LINGER 0: RST, no TIME_WAIT), linger=N [key: client.close;
        /// default active].
        #[arg(long, value_name = "MODE")]
        pub close: Option<CloseMode>,
        /// N persistent connections carry all requests; 0 = one connection per request
        /// [key: client.pool; default 0].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub pool: Option<u32>,
        /// SO_REUSEADDR on client sockets [key: client.reuse_addr].
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub reuse_addr: Option<bool>,
        /// TCP_NODELAY on client sockets [key: client.nodelay].
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub nodelay: Option<bool>,
        /// Local address(es), round robin; repeat or comma-separate [key: client.source].
        #[arg(long, value_delimiter = ',', value_name = "IP")]
        pub source: Option<Vec<String>>,
        /// Port choice: auto (connect() picks, shared across destinations), any-port (bind(0)
        /// first: exclusive across destinations), no-port (IP_BIND_ADDRESS_NO_PORT, Linux),
        /// range=LO-HI (portlab binds LO..HI in order, like MaxUserPort) [key: client.bind;
        /// default auto].
        #[arg(long, value_name = "MODE")]
        pub bind: Option<BindMode>,
        /// Ports this client's sockets may be given, LO-HI: a per-socket IP_LOCAL_PORT_RANGE
        /// (Linux 6.3+) within the system's ip_local_port_range, for connect() and bind(0); not
        /// with --bind range= [key: client.local_port_range].
        #[arg(long, value_name = "LO-HI")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub local_port_range: Option<PortRange>,
        /// Your own client instead of portlab's: a command run by `sh -c` in the client's
        /// namespace with PORTLAB_TARGET=host:port, PORTLAB_TARGET_HOST, PORTLAB_TARGET_PORT
        /// and PORTLAB_RATE set; portlab sends nothing itself, samples the sockets and reads
        /// the client's output for its failure (src/client) [key: client.exec].
        #[arg(id = "client_exec", long = "client-exec", value_name = "COMMAND")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exec: Option<String>,
        /// How often the client's namespace is sampled with --client-exec
        /// [key: client.sample; default 100ms].
        #[arg(long = "client-sample", allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sample: Option<Span>,
        /// Stop the --client-exec client this long after its first recognised failure
        /// (SIGTERM, then SIGKILL) [key: client.stop_after; default: at --duration or when it
        /// exits].
        #[arg(long = "client-stop-after", allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stop_after: Option<Span>,
        /// A regular expression for your client's own failure line, besides the built-in
        /// Java, Python, Go, Node, .NET, libpq and curl signatures
        /// [key: client.failure_pattern].
        #[arg(long = "failure-pattern", value_name = "REGEX")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub failure_pattern: Option<String>,
    }
}

section! {
    /// `[payload]`: what is exchanged on each connection (flags under "Payload").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct PayloadSection {
        /// none (connect, close), tcp (--send/--expect), http (GET --path) [key: payload.kind;
        /// default none].
        #[arg(long = "payload", value_name = "KIND")]
        pub kind: Option<PayloadKind>,
        /// tcp: bytes to send, as text or hex:0a0b.. [key: payload.send; default "hello\n"].
        #[arg(long, value_name = "BYTES")]
        pub send: Option<Bytes>,
        /// tcp: bytes to read back before closing, or eof [key: payload.expect; default the
        /// reply's length].
        #[arg(long, allow_hyphen_values = true, value_name = "N|eof")]
        pub expect: Option<Expect>,
        /// tcp: the embedded server's reply [key: payload.response; default "ok\n"].
        #[arg(long, value_name = "BYTES")]
        pub response: Option<Bytes>,
        /// http: request path [key: payload.path; default /].
        #[arg(long, value_name = "PATH")]
        pub path: Option<String>,
    }
}

section! {
    /// `[target]`: where connections go, the embedded server (default) or an external one
    /// (flags under "Target").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct TargetSection {
        /// HOST:PORT of an external server instead of the embedded one [key: target.address].
        #[arg(long = "target", value_name = "HOST:PORT")]
        pub address: Option<String>,
        /// Embedded server address [key: target.listen; default 127.0.0.1:0].
        #[arg(long, value_name = "IP:PORT")]
        pub listen: Option<String>,
        /// Embedded server listen() backlog (capped by somaxconn) [key: target.backlog;
        /// default 4096].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub backlog: Option<u32>,
        /// Embedded server pause before each accept(), to fill its backlog
        /// [key: target.accept_delay].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub accept_delay: Option<Span>,
        /// Embedded server close: first, after-client, reset [key: target.server_close;
        /// default follows --close].
        #[arg(long, value_name = "HOW")]
        pub server_close: Option<ServerClose>,
        /// Embedded server ports (destinations) the client round-robins over; connect()
        /// shares a local port across destinations, bind(0) does not
        /// [key: target.destinations; default 1].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub destinations: Option<u32>,
        /// A command serving --target (e.g. "nginx -c /tmp/x/nginx.conf"), started before the
        /// run (inside the lab when there is one) and stopped after it [key: target.exec].
        #[arg(long = "target-exec", value_name = "COMMAND")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exec: Option<String>,
        /// How long the --target-exec command may take to accept on --target
        /// [key: target.ready_timeout; default 10s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ready_timeout: Option<Span>,
    }
}

section! {
    /// `[expect]`: the user's own expectations (flags under "Expect"). Each key set becomes a
    /// verdict check named `expect.<key>`; a failed one makes the run exit 1.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectSection {
        /// The run must (true) or must not (false) run out of ports [key: expect.exhaustion].
        #[arg(long = "expect-exhaustion", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub exhaustion: Option<bool>,
        /// failed / attempts must stay at or below F, e.g. 0.01 [key: expect.max_error_rate].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        pub max_error_rate: Option<f64>,
        /// p99 connect latency must stay at or below MS milliseconds
        /// [key: expect.max_connect_p99_ms].
        #[arg(long, allow_hyphen_values = true, value_name = "MS")]
        pub max_connect_p99_ms: Option<f64>,
        /// completed / attempts must reach at least F, e.g. 0.99 [key: expect.min_success_rate].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        pub min_success_rate: Option<f64>,
        /// The ports must cover at least F times what the load holds: P / (R x T) >= F, e.g.
        /// 2 (fails a client that stopped reusing connections or a settings change that
        /// narrowed the headroom) [key: expect.min_margin].
        #[arg(long, allow_hyphen_values = true, value_name = "F")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub min_margin: Option<f64>,
        /// An error kind that must appear (as summary.errors names it, e.g. ECONNRESET);
        /// repeat or comma-separate [key: expect.errors].
        #[arg(long = "expect-error", value_delimiter = ',', value_name = "KIND")]
        pub errors: Option<Vec<String>>,
        /// Whether the model's checks count toward the verdict; false reports them only
        /// [key: expect.model; default true].
        #[arg(long = "model-checks", value_name = "BOOL")]
        pub model: Option<bool>,
        /// Tolerance of every model check, percent (default 5); the flag is --tolerance PCT.
        #[arg(skip)]
        pub tolerance_pct: Option<f64>,
        /// Tolerance of one model check, by its name; the flag is --tolerance NAME=PCT.
        #[arg(skip)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tolerance: Option<std::collections::BTreeMap<String, f64>>,
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Scenario {
    /// Puts `top` (usually the flags) over `self` (usually the file), key by key, `[lab]`
    /// and `[lab.server]` included.
    pub fn overlay(mut self, mut top: Scenario) -> Scenario {
        self.name = top.name.or(self.name);
        self.description = top.description.or(self.description);
        self.lab = match (self.lab.take(), top.lab.take()) {
            (Some(mut file), Some(flags)) => {
                file.overlay(flags);
                Some(file)
            }
            (file, flags) => flags.or(file),
        };
        // Per-check tolerances merge by name: a flag replaces the file's value for its check.
        if let (Some(file), Some(flags)) = (&self.expect.tolerance, &mut top.expect.tolerance) {
            for (name, pct) in file {
                flags.entry(name.clone()).or_insert(*pct);
            }
        }
        self.load.overlay(top.load);
        self.client.overlay(top.client);
        self.payload.overlay(top.payload);
        self.target.overlay(top.target);
        self.expect.overlay(top.expect);
        self
    }
}
