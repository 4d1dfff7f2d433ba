//! The lab's pure half: the `[lab]` and `[lab.server]` sections ([`LabConfig`],
//! [`ServerSideConfig`]: each field is one key and one `--lab-*` flag, laid over the file by
//! the same `section!` overlay as every section), and [`LabConfig::validate`], the step from
//! the table to the exact sysctls to write and the emulation arithmetic. Entering namespaces
//! and writing sysctls is `crate::lab`'s.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sysctl::{
    Knob, CONNTRACK_TIME_WAIT, PORT_RANGE, REGISTRY, RESERVED_PORTS, TIMESTAMPS, TW_REUSE,
    TW_REUSE_DELAY,
};
use super::Span;
use std::collections::BTreeMap;

super::scenario::section! {
    /// `[lab]`: a private network namespace with its own sysctls (flags under "Lab (Linux)",
    /// each `--lab-<key>`). Every key is optional; nothing is written unless `isolate = true`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct LabConfig in "lab" {
        /// Run inside a private network namespace (Linux; root, or an unprivileged user where
        /// user namespaces are enabled). Needed by every other --lab-* flag: the host is never
        /// changed [key: lab.isolate].
        #[arg(id = "isolate", long = "lab")]
        #[serde(default)]
        pub isolate: bool,
        /// Ephemeral port range inside the lab, "LO-HI" inclusive
        /// (net.ipv4.ip_local_port_range), e.g. 32768-32967 for 200 ports
        /// [key: lab.port_range].
        #[arg(long = "lab-port-range", value_name = "LO-HI")]
        pub port_range: Option<String>,
        /// Ports the kernel must not hand out automatically (net.ipv4.ip_local_reserved_ports),
        /// kernel syntax "1000-1010,2000"; "" clears it [key: lab.reserved_ports].
        #[arg(long = "lab-reserved-ports", value_name = "LIST")]
        pub reserved_ports: Option<String>,
        /// net.ipv4.tcp_tw_reuse inside the lab: 0 off, 1 any destination, 2 loopback only.
        /// Applies to connect() only, and only when TCP timestamps were on. Unset, the lab
        /// writes 0, as for traffic to another host (the kernel's default 2 exempts loopback,
        /// so a lab on loopback would never run out); 2 gives the loopback behaviour
        /// [key: lab.tw_reuse].
        #[arg(long = "lab-tw-reuse", value_name = "0|1|2")]
        pub tw_reuse: Option<u8>,
        /// net.ipv4.tcp_tw_reuse_delay (1ms-60s, Linux 6.14+), a duration like every other
        /// one: 250ms, 4s, or a bare number of seconds (as `predict --tw-reuse-delay`); with
        /// tw_reuse on, this is the effective TIME_WAIT hold for port reuse. The scenario key
        /// keeps its unit in its name: whole milliseconds [key: lab.tw_reuse_delay_ms].
        #[arg(
            long = "lab-tw-reuse-delay",
            value_name = "DURATION",
            allow_hyphen_values = true,
            value_parser = delay_ms,
        )]
        pub tw_reuse_delay_ms: Option<u32>,
        /// net.ipv4.tcp_max_tw_buckets: beyond this many TIME_WAIT sockets, closing sockets
        /// skip TIME_WAIT (counted as TCPTimeWaitOverflow) [key: lab.max_tw_buckets].
        #[arg(long = "lab-max-tw-buckets", value_name = "N")]
        pub max_tw_buckets: Option<u64>,
        /// net.ipv4.tcp_fin_timeout in seconds. Bounds orphaned FIN_WAIT_2 only; it does NOT
        /// shorten TIME_WAIT (a popular myth this lets you test) [key: lab.fin_timeout].
        #[arg(long = "lab-fin-timeout", value_name = "SECONDS")]
        pub fin_timeout: Option<u32>,
        /// net.ipv4.tcp_timestamps on or off (true/false); tcp_tw_reuse needs them on
        /// [key: lab.timestamps].
        #[arg(
            long = "lab-timestamps",
            value_name = "BOOL",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub timestamps: Option<bool>,
        /// net.core.somaxconn: the cap on every listen() backlog inside the lab
        /// [key: lab.somaxconn].
        #[arg(long = "lab-somaxconn", value_name = "N")]
        pub somaxconn: Option<u32>,
        /// net.ipv4.tcp_abort_on_overflow (true/false): a full accept queue answers the final
        /// ACK with RST (client sees ECONNRESET) instead of dropping it
        /// [key: lab.abort_on_overflow].
        #[arg(
            long = "lab-abort-on-overflow",
            value_name = "BOOL",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub abort_on_overflow: Option<bool>,
        /// A TIME_WAIT to emulate, e.g. 240s (Windows default; a bare number is seconds);
        /// done with tcp_tw_reuse = 1 and tcp_tw_reuse_delay = time-wait / time-scale, which
        /// must come to at most 60 s [key: lab.time_wait].
        #[arg(long = "lab-time-wait", value_name = "DURATION", allow_hyphen_values = true)]
        pub time_wait: Option<Span>,
        /// Compress time by this factor (with --lab-time-wait): the emulated hold is divided
        /// and the request rate multiplied by it; reports give lab and modelled seconds
        /// [key: lab.time_scale].
        #[arg(long = "lab-time-scale", value_name = "FACTOR", allow_hyphen_values = true)]
        pub time_scale: Option<f64>,
        /// loopback (client and server in one namespace) or veth (two namespaces joined by a
        /// veth pair, client 198.18.0.1, server 198.18.0.2: traffic is not loopback)
        /// [key: lab.topology].
        #[arg(long = "lab-topology", value_name = "loopback|veth")]
        pub topology: Option<String>,
        /// Track the lab's connections with conntrack (true/false): a netfilter table in the
        /// server's namespace (the lab's, with loopback) makes the kernel keep an entry per
        /// connection, as a host firewall with state rules or a NAT does; the run records the
        /// table's count and statistics and checks them against R x (lifetime + the
        /// conntrack timeout). Needs the nft tool (Debian: nftables) and the nf_conntrack
        /// module already loaded on the host [key: lab.conntrack].
        #[arg(
            long = "lab-conntrack",
            value_name = "BOOL",
            num_args = 0..=1,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub conntrack: Option<bool>,
        /// net.netfilter.nf_conntrack_tcp_timeout_time_wait in seconds: how long conntrack
        /// keeps a connection's entry after a FIN close, whichever side closed (kernel default
        /// 120). With lab.conntrack and time_scale, unset means 120 / time_scale
        /// [key: lab.conntrack_time_wait].
        #[arg(long = "lab-conntrack-time-wait", value_name = "SECONDS")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub conntrack_time_wait: Option<u32>,
        /// Emulates a full conntrack table of N entries in the tracked namespace (with
        /// lab.conntrack): nf_conntrack_max is host-wide and cannot be lowered in a namespace,
        /// so an nftables set of N elements stands in for the table, each connection holding
        /// one until conntrack's timeout after its last packet (the TIME_WAIT timeout, or the
        /// CLOSE timeout after a reset); a new connection that finds it full has its SYN
        /// dropped, as the kernel drops it with "nf_conntrack: table full, dropping packet".
        /// Reported as an emulation (docs/nat.md) [key: lab.conntrack_max].
        #[arg(long = "lab-conntrack-max", value_name = "N")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub conntrack_max: Option<u64>,
        /// K client namespaces (1-64) in front of one server namespace, each with its own
        /// address (198.18.0.10 + k), the lab's client sysctls and shard k of the load (rate
        /// R / K); the server's TIME_WAIT is their sum. K > 1 implies --lab-topology veth
        /// (docs/many-clients.md) [key: lab.clients].
        #[arg(long = "lab-clients", value_name = "K")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub clients: Option<u32>,
        /// A NAT in front of the server, "LO-HI" inclusive: its pool of source ports. A third
        /// namespace stands between the client(s) and the server and masquerades every
        /// connection to its own address (198.18.1.1) with a port from this pool, as a
        /// Kubernetes node does for its pods or a cloud NAT for its VMs; the server moves to
        /// 198.18.1.2. When the pool runs out, the NAT drops the SYN and the client sees a
        /// connect TIMEOUT, not EADDRNOTAVAIL; the run records the NAT's conntrack table and
        /// its refusals. Implies --lab-topology veth; works with --lab-clients
        /// (docs/nat.md) [key: lab.nat_ports].
        #[arg(long = "lab-nat-ports", value_name = "LO-HI")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nat_ports: Option<String>,
        /// `[lab.server]`: with topology = "veth", the server namespace's own settings.
        #[command(flatten, next_help_heading = "Lab server (Linux, --lab-topology veth)")]
        #[serde(
            default,
            serialize_with = "ServerSideConfig::as_option",
            deserialize_with = "ServerSideConfig::or_null"
        )]
        pub server: ServerSideConfig,
    }
}

super::scenario::section! {
    /// `[lab.server]`: settings of the server's namespace in the veth topology (flags
    /// `--lab-server-<key>`; clap ids are the keys as `server.<key>`, as messages name them).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ServerSideConfig in "lab.server" {
        /// net.ipv4.tcp_tw_reuse in the server namespace (0, 1 or 2)
        /// [key: lab.server.tw_reuse].
        #[arg(id = "server.tw_reuse", long = "lab-server-tw-reuse", value_name = "0|1|2")]
        pub tw_reuse: Option<u8>,
        /// net.ipv4.tcp_tw_reuse_delay in the server namespace, a duration (1ms-60s); the key
        /// is in whole milliseconds [key: lab.server.tw_reuse_delay_ms].
        #[arg(
            id = "server.tw_reuse_delay_ms",
            long = "lab-server-tw-reuse-delay",
            value_name = "DURATION",
            allow_hyphen_values = true,
            value_parser = delay_ms,
        )]
        pub tw_reuse_delay_ms: Option<u32>,
        /// net.ipv4.tcp_max_tw_buckets in the server namespace
        /// [key: lab.server.max_tw_buckets].
        #[arg(id = "server.max_tw_buckets", long = "lab-server-max-tw-buckets", value_name = "N")]
        pub max_tw_buckets: Option<u64>,
        /// net.core.somaxconn in the server namespace [key: lab.server.somaxconn].
        #[arg(id = "server.somaxconn", long = "lab-server-somaxconn", value_name = "N")]
        pub somaxconn: Option<u32>,
        /// net.ipv4.tcp_abort_on_overflow in the server namespace (true/false)
        /// [key: lab.server.abort_on_overflow].
        #[arg(
            id = "server.abort_on_overflow",
            long = "lab-server-abort-on-overflow",
            value_name = "BOOL",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub abort_on_overflow: Option<bool>,
        /// net.ipv4.tcp_fin_timeout in the server namespace, in seconds
        /// [key: lab.server.fin_timeout].
        #[arg(id = "server.fin_timeout", long = "lab-server-fin-timeout", value_name = "SECONDS")]
        pub fin_timeout: Option<u32>,
        /// net.netfilter.nf_conntrack_tcp_timeout_time_wait in the server namespace, seconds
        /// [key: lab.server.conntrack_time_wait].
        #[arg(
            id = "server.conntrack_time_wait",
            long = "lab-server-conntrack-time-wait",
            value_name = "SECONDS"
        )]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub conntrack_time_wait: Option<u32>,
        /// net.ipv4.tcp_timestamps in the server namespace (true/false)
        /// [key: lab.server.timestamps].
        #[arg(
            id = "server.timestamps",
            long = "lab-server-timestamps",
            value_name = "BOOL",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        pub timestamps: Option<bool>,
    }
}

impl ServerSideConfig {
    /// No `[lab.server]` key is set (the table is absent).
    pub fn is_empty(&self) -> bool {
        *self == ServerSideConfig::default()
    }

    /// An empty table as `None`: JSON writes `"server": null` as it always has, TOML nothing.
    fn as_option<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (!self.is_empty()).then_some(self).serialize(s)
    }

    /// `"server": null`, as summaries before the table became a section wrote an absent one.
    fn or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<ServerSideConfig>::deserialize(d)?.unwrap_or_default())
    }
}

/// `--lab-tw-reuse-delay DURATION` as the key's whole milliseconds, the kernel's unit: a
/// sub-millisecond or huge value becomes one validation refuses by name (0, or past 60000).
fn delay_ms(text: &str) -> Result<u32, String> {
    let span: Span = text.parse().map_err(|e| format!("{e}"))?;
    Ok(u32::try_from(span.0.as_millis()).unwrap_or(u32::MAX))
}

/// What a user (scenario, flags) or the OS can get wrong in the lab. Messages name the key
/// and say what would work.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A key has a value outside what it accepts.
    #[error("lab.{key} = {value}{}: {expected}", flag_of(key).map(|f| format!(" (flag {f})")).unwrap_or_default())]
    Invalid {
        /// The scenario key (its flag: [`flag_of`]).
        key: &'static str,
        /// The value as given.
        value: String,
        /// What the key accepts, or what would work instead.
        expected: String,
    },
    /// Settings were given but isolation is off.
    #[error(
        "lab.{keys} would change this host's network settings; the lab never changes the host: \
         set isolate = true in [lab] (or pass --lab) to apply them inside a private namespace"
    )]
    HostChange {
        /// The offending keys, comma-separated.
        keys: String,
    },
    /// Two keys that cannot be combined.
    #[error("{0}")]
    Conflict(String),
    /// A user namespace is needed (not root) but threads already exist.
    #[error(
        "the lab needs a user namespace (not running as root), which the kernel only grants \
         to a single-threaded process, but this one has {threads} threads: call lab::enter \
         first in main, before any thread or runtime starts (or run as root)"
    )]
    Threads {
        /// Threads in the process at the time of the call.
        threads: usize,
    },
    /// Not on Linux.
    #[error("the lab needs Linux network namespaces; this is {os}: run without isolate/--lab")]
    Unsupported {
        /// std::env::consts::OS.
        os: &'static str,
    },
    /// A system call or /proc write failed while setting the lab up.
    #[error("lab setup: {what}: {source}")]
    Setup {
        /// What was being done, and what would help.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel has no such sysctl.
    #[error("this kernel has no {name} ({hint})")]
    SysctlMissing {
        /// Dotted sysctl name.
        name: &'static str,
        /// When it was added and what to drop instead.
        hint: &'static str,
    },
    /// A sysctl was written but reads back differently.
    #[error("{name}: wrote {wanted:?} but the kernel holds {got:?}")]
    SysctlMismatch {
        /// Dotted sysctl name.
        name: &'static str,
        /// What the lab wrote.
        wanted: String,
        /// What the kernel reports.
        got: String,
    },
}

/// The `run` flag that sets lab key `key` (`"tw_reuse"`, `"server.tw_reuse"`), as the
/// `#[arg]` of its field in [`LabConfig`] / [`ServerSideConfig`] spells it.
pub fn flag_of(key: &str) -> Option<&'static str> {
    LabConfig::flag_of(key)
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl LabError {
    pub(crate) fn setup(what: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Setup {
            what: what.into(),
            source,
        }
    }
}

/// Highest value the kernel accepts for net.ipv4.tcp_tw_reuse_delay (ms).
pub const MAX_TW_REUSE_DELAY_MS: u32 = 60_000;

/// Accepted time scales: beyond these the emulated hold or the scaled rate leave every range.
pub const TIME_SCALE_RANGE: (f64, f64) = (0.001, 10_000.0);

/// Lowest port the kernel accepts as the start of ip_local_port_range while
/// net.ipv4.ip_unprivileged_port_start keeps its default (1024): it refuses a range that
/// encroaches on privileged ports.
pub const MIN_RANGE_START: u16 = 1024;

/// How client and server are laid out inside the lab.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One namespace; traffic over `lo` (127.0.0.1).
    #[default]
    Loopback,
    /// Two namespaces joined by a veth pair: client 198.18.0.1, server 198.18.0.2 (with a
    /// NAT between them, the server is 198.18.1.2).
    Veth,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Loopback => "loopback",
            Topology::Veth => "veth",
        })
    }
}

/// One sysctl to write: its registry row (name, path, read-back) and the value exactly as
/// written to /proc/sys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// Its row, e.g. [`PORT_RANGE`].
    pub knob: &'static Knob,
    /// e.g. "32768 32967".
    pub value: String,
    /// Written in the server's namespace (`[lab.server]`), not the client's.
    pub server: bool,
}

impl Sysctl {
    /// Dotted name, e.g. "net.ipv4.ip_local_port_range".
    pub fn name(&self) -> &'static str {
        self.knob.name
    }

    /// The name in the record of what was written: "server:" + name for the server's side.
    pub fn recorded_name(&self) -> String {
        match self.server {
            true => format!("server:{}", self.knob.name),
            false => self.knob.name.to_string(),
        }
    }
}

impl Serialize for Sysctl {
    /// `{"name", "value"}`, as before the row was carried.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Sysctl", 2)?;
        st.serialize_field("name", self.knob.name)?;
        st.serialize_field("value", &self.value)?;
        st.end()
    }
}

pub use super::values::PortRange;

/// A validated [`LabConfig`]: everything [`crate::lab::enter`] will do, decided up front.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabPlan {
    /// Enter a private namespace. False: nothing is written (and `sysctls` is empty).
    pub isolate: bool,
    /// Loopback or veth.
    pub topology: Topology,
    /// The ephemeral port range the lab sets, if any.
    pub port_range: Option<PortRange>,
    /// Reserved ports as merged inclusive ranges, if set.
    pub reserved_ports: Option<Vec<PortRange>>,
    /// Sysctls for the (client's) namespace, in write order.
    pub sysctls: Vec<Sysctl>,
    /// Sysctls for the server namespace (veth only), in write order.
    pub server_sysctls: Vec<Sysctl>,
    /// The TIME_WAIT being emulated, in modelled time (time_wait as given).
    pub time_wait: Option<Duration>,
    /// The hold the kernel applies in lab time (tcp_tw_reuse_delay), when the lab sets one.
    pub lab_hold: Option<Duration>,
    /// Lab seconds -> modelled seconds factor (1 without time_scale).
    time_scale: f64,
    /// Client namespaces in front of the server (1 unless `clients` was set).
    pub clients: u32,
    /// Non-fatal notes worth printing and keeping in the report.
    pub warnings: Vec<String>,
    /// Which tcp_tw_reuse the lab used and why, when the scenario did not say (the lab's
    /// default, 0: see [`DEFAULT_TW_REUSE_NOTE`]).
    pub tw_reuse_note: Option<&'static str>,
    /// Track the connections in the server's namespace (a netfilter table with a conntrack
    /// rule; the lab's namespace with loopback).
    pub conntrack: bool,
    /// The NAT's pool of source ports (`nat_ports`): a NAT namespace between client(s) and
    /// server masquerades to these.
    pub nat: Option<PortRange>,
    /// The emulated table size (`conntrack_max`), with `conntrack`.
    pub conntrack_max: Option<u64>,
}

/// Why a lab whose scenario leaves tw_reuse unset writes tcp_tw_reuse = 0.
pub const DEFAULT_TW_REUSE_NOTE: &str = "tw_reuse unset: the lab writes tcp_tw_reuse = 0, as \
    for traffic to another host (the kernel default 2 reuses TIME_WAIT ports toward loopback \
    only, which production traffic to another host does not get); write tw_reuse = 2 in [lab] \
    (--lab-tw-reuse 2) for the loopback behaviour";

impl LabPlan {
    /// The factor the runner multiplies the scenario's rate by (= time scale).
    pub fn rate_multiplier(&self) -> f64 {
        self.time_scale
    }

    /// Modelled seconds per lab second (1 without time_scale).
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Converts a time measured in the lab to modelled time.
    pub fn to_modelled(&self, lab: Duration) -> Duration {
        lab.mul_f64(self.time_scale)
    }

    /// The effective TIME_WAIT hold the lab emulates in modelled time: tcp_tw_reuse_delay x
    /// time scale (exactly time_wait up to the millisecond rounding of the delay).
    pub fn emulated_hold(&self) -> Option<Duration> {
        self.lab_hold.map(|h| h.mul_f64(self.time_scale))
    }

    /// Ports of `port_range` the kernel may hand out automatically (minus reserved ones).
    pub fn usable_ports(&self) -> Option<u32> {
        let range = self.port_range?;
        let reserved = reserved_ports_in(range, self.reserved_ports.as_deref().unwrap_or(&[]));
        Some(range.len() - reserved)
    }
}

/// Parses "LO-HI" (inclusive) as the kernel's ip_local_port_range would take it.
pub fn parse_port_range(key: &'static str, s: &str) -> Result<PortRange, LabError> {
    let bad = |expected: String| LabError::Invalid {
        key,
        value: format!("{s:?}"),
        expected,
    };
    let usage =
        "expected \"LO-HI\" with 1024 <= LO <= HI <= 65535, e.g. \"32768-32967\" (200 ports)";
    let (lo, hi) = s.trim().split_once('-').ok_or_else(|| bad(usage.into()))?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad(usage.into()))?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad(usage.into()))?;
    if lo > hi {
        return Err(bad(format!(
            "the range is inverted (empty); write it low to high: \"{hi}-{lo}\""
        )));
    }
    if lo < MIN_RANGE_START {
        return Err(bad(format!(
            "the kernel refuses a range starting below {MIN_RANGE_START} \
             (net.ipv4.ip_unprivileged_port_start); start at {MIN_RANGE_START} or above"
        )));
    }
    Ok(PortRange { lo, hi })
}

/// Parses the kernel's ip_local_reserved_ports syntax ("1000-1010,2000", "" = none) into
/// sorted, merged ranges.
pub fn parse_reserved_ports(key: &'static str, s: &str) -> Result<Vec<PortRange>, LabError> {
    let bad = || LabError::Invalid {
        key,
        value: format!("{s:?}"),
        expected: "a comma-separated list of ports and LO-HI ranges within 1-65535, \
                   e.g. \"1000-1010,2000\", or \"\" for none"
            .into(),
    };
    let mut ranges = PortRange::parse_list(s).map_err(|_| bad())?;
    ranges.sort_by_key(|r| r.lo);
    let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(r.hi),
            _ => merged.push(r),
        }
    }
    Ok(merged)
}

/// Formats merged ranges the way the kernel prints ip_local_reserved_ports.
pub fn format_reserved_ports(ranges: &[PortRange]) -> String {
    ranges
        .iter()
        .map(|r| {
            if r.lo == r.hi {
                r.lo.to_string()
            } else {
                format!("{}-{}", r.lo, r.hi)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The values one side (`[lab]`, or `[lab.server]` with `server`) gives the knobs both sides
/// share, by registry row, as numbers (a bool as 0 or 1). Each row reads its own field, so a
/// new knob needs no line here.
struct Side {
    values: BTreeMap<&'static str, u64>,
    server: bool,
}

/// The knobs both sides have, in write order.
fn shared() -> impl Iterator<Item = &'static Knob> {
    REGISTRY.iter().filter(|k| k.server.is_some())
}

impl Side {
    /// `[lab]`'s values.
    fn client(lab: &LabConfig) -> Side {
        let values = shared()
            .filter_map(|k| Some((k.name, (k.lab.get)(lab)?.number()?)))
            .collect();
        Side {
            values,
            server: false,
        }
    }

    /// `[lab.server]`'s values.
    fn server(server: &ServerSideConfig) -> Side {
        let values = shared()
            .filter_map(|k| Some((k.name, (k.server?.get)(server)?.number()?)))
            .collect();
        Side {
            values,
            server: true,
        }
    }

    fn get(&self, k: &Knob) -> Option<u64> {
        self.values.get(k.name).copied()
    }

    fn set(&mut self, k: &Knob, v: u64) {
        self.values.insert(k.name, v);
    }

    /// The key messages name: `tw_reuse` or `server.tw_reuse`.
    fn key(&self, k: &Knob) -> &'static str {
        match (self.server, k.server) {
            (true, Some(field)) => field.key,
            _ => k.lab.key,
        }
    }

    /// Every value within what its knob accepts (the kernel would refuse the others): refused
    /// here by name, before set-up.
    fn check(&self) -> Result<(), LabError> {
        for k in shared() {
            if let Some(v) = self.get(k) {
                k.accepts.check(v).map_err(|expected| LabError::Invalid {
                    key: self.key(k),
                    value: v.to_string(),
                    expected: expected.into(),
                })?;
            }
        }
        Ok(())
    }

    /// The rules between tw_reuse, its delay and timestamps: a delay that reuse 0 would
    /// ignore is refused; one without tw_reuse turns reuse on (1); the rest are warnings.
    fn relations(
        &mut self,
        topology: Topology,
        warnings: &mut Vec<String>,
    ) -> Result<(), LabError> {
        let (k_reuse, k_delay) = (self.key(&TW_REUSE), self.key(&TW_REUSE_DELAY));
        let reuse = self.get(&TW_REUSE);
        if let Some(d) = self.get(&TW_REUSE_DELAY) {
            match reuse {
                Some(0) => {
                    return Err(LabError::Conflict(format!(
                        "lab.{k_delay} = {d} has no effect with {k_reuse} = 0: set {k_reuse} = 1 \
                         (any destination) or 2 (loopback only), or drop {k_delay}"
                    )))
                }
                Some(2) if topology == Topology::Veth => warnings.push(format!(
                    "{k_delay} = {d} with {k_reuse} = 2: over veth the traffic is not loopback, \
                     so tcp_tw_reuse = 2 never reuses and the delay does not apply"
                )),
                _ => {}
            }
        }
        if self.get(&TIMESTAMPS) == Some(0) && matches!(reuse, Some(1 | 2)) {
            warnings.push(format!(
                "{k_reuse} with timestamps = false: tcp_tw_reuse only reuses a port whose old \
                 connection used TCP timestamps, so no reuse will happen"
            ));
        }
        // A delay without tw_reuse: the delay only acts when reuse is on, so the lab turns it
        // on (1: any destination), and says so.
        if reuse.is_none() && self.get(&TW_REUSE_DELAY).is_some() {
            warnings.push(format!(
                "{k_delay} set without {k_reuse}: setting tcp_tw_reuse = 1 so the delay applies"
            ));
            self.set(&TW_REUSE, 1);
        }
        Ok(())
    }

    /// Checks the side and appends its sysctls, in registry order, to `out`.
    fn sysctls(
        mut self,
        topology: Topology,
        out: &mut Vec<Sysctl>,
        warnings: &mut Vec<String>,
    ) -> Result<(), LabError> {
        self.check()?;
        self.relations(topology, warnings)?;
        out.extend(shared().filter_map(|k| {
            Some(Sysctl {
                knob: k,
                value: k.accepts.check(self.get(k)?).ok()?,
                server: self.server,
            })
        }));
        Ok(())
    }
}

impl LabConfig {
    /// Checks the table and computes everything the lab will do. Pure: reads nothing from the
    /// system (whether this kernel has a sysctl is checked by [`crate::lab::enter`]).
    ///
    /// Decisions worth knowing:
    /// - any setting with `isolate = false` is refused: the lab never changes the host;
    /// - `time_wait` (+ optional `time_scale`) sets tcp_tw_reuse = 1 and
    ///   tcp_tw_reuse_delay = time_wait / time_scale (rounded to the ms), which must be
    ///   1..=60000 ms; it cannot be combined with `tw_reuse_delay_ms` or `tw_reuse` 0/2, nor
    ///   with `timestamps = false` (reuse needs timestamps);
    /// - `tw_reuse_delay_ms` with `tw_reuse = 0` is an error (it would do nothing); without
    ///   `tw_reuse` it turns tw_reuse = 1 on, with a warning;
    /// - `time_scale` without `time_wait` is an error (there is nothing to scale).
    pub fn validate(&self) -> Result<LabPlan, LabError> {
        let topology = match self.topology.as_deref().map(str::trim) {
            // K > 1 clients need their own namespaces: veth unless said otherwise.
            None if self.clients.is_some_and(|k| k > 1) || self.nat_ports.is_some() => {
                Topology::Veth
            }
            None | Some("loopback") => Topology::Loopback,
            Some("veth") => Topology::Veth,
            Some(other) => {
                return Err(LabError::Invalid {
                    key: "topology",
                    value: format!("{other:?}"),
                    expected: "\"loopback\" (one namespace) or \"veth\" (client and server \
                               namespaces joined by a veth pair)"
                        .into(),
                })
            }
        };

        if !self.isolate {
            super::clients::needs_isolation(self.clients)?;
            return self.host_only(topology);
        }
        let clients = super::clients::validate(self.clients, topology)?;
        let nat = self.nat(topology)?;
        let conntrack_max = self.conntrack_max()?;

        if !self.server.is_empty() && topology != Topology::Veth {
            return Err(LabError::Conflict(
                "[lab.server] only applies with topology = \"veth\" (with loopback, client and \
                 server share one namespace and its settings): set topology = \"veth\" or \
                 move the keys to [lab]"
                    .into(),
            ));
        }

        let mut warnings = Vec::new();
        let mut sysctls = Vec::new();

        let (port_range, reserved_ports) = self.ports(&mut sysctls)?;

        // Time scale: emulate `time_wait` with tw_reuse = 1 and a delay of time_wait / scale.
        let mut common = Side::client(self);
        let scale = self.scale()?;
        let time_wait = self.emulate_time_wait(&mut common, scale)?;
        // Unless the scenario says otherwise, the lab behaves like traffic to another host:
        // the loopback exemption of the kernel default (2) would hide the exhaustion.
        let tw_reuse_note =
            (common.get(&TW_REUSE).is_none() && common.get(&TW_REUSE_DELAY).is_none()).then(|| {
                common.set(&TW_REUSE, 0);
                DEFAULT_TW_REUSE_NOTE
            });
        let lab_hold = common.get(&TW_REUSE_DELAY).map(Duration::from_millis);
        // Conntrack's hold is scaled with the lab's time: its 120 s default, divided.
        let conntrack = self.conntrack == Some(true);
        let scaled_hold = (conntrack && self.time_scale.is_some()).then(|| {
            (super::sysctl::CONNTRACK_TIME_WAIT_DEFAULT_S as f64 / scale)
                .round()
                .max(1.0) as u64
        });
        let mut server = (!self.server.is_empty() || (conntrack && topology == Topology::Veth))
            .then(|| Side::server(&self.server));
        if let Some(hold) = scaled_hold {
            let tracked = server.as_mut().unwrap_or(&mut common);
            if tracked.get(&CONNTRACK_TIME_WAIT).is_none() {
                tracked.set(&CONNTRACK_TIME_WAIT, hold);
            }
        }
        common.sysctls(topology, &mut sysctls, &mut warnings)?;

        let mut server_sysctls = Vec::new();
        if let Some(side) = server {
            side.sysctls(topology, &mut server_sysctls, &mut warnings)?;
        }

        Ok(LabPlan {
            isolate: true,
            topology,
            port_range,
            reserved_ports,
            sysctls,
            server_sysctls,
            time_wait,
            lab_hold,
            time_scale: scale,
            clients,
            warnings,
            tw_reuse_note,
            conntrack,
            nat,
            conntrack_max,
        })
    }

    /// `conntrack_max`, checked: at least 1, and only with `conntrack` (the table it
    /// emulates is the tracked one).
    fn conntrack_max(&self) -> Result<Option<u64>, LabError> {
        match (self.conntrack_max, self.conntrack == Some(true)) {
            (None, _) => Ok(None),
            (Some(0), _) => Err(LabError::Invalid {
                key: "conntrack_max",
                value: "0".into(),
                expected: "the emulated table's size, at least 1, e.g. 500".into(),
            }),
            (Some(n), true) => Ok(Some(n)),
            (Some(_), false) => Err(LabError::Conflict(
                "lab.conntrack_max emulates a full conntrack table in the tracked namespace: \
                 set lab.conntrack = true (--lab-conntrack) too"
                    .into(),
            )),
        }
    }

    /// `nat_ports`, checked: a range of 1-65535 the masquerade may hand out, only over veth,
    /// and not with `conntrack` (the NAT's own table is the one a NAT run records).
    fn nat(&self, topology: Topology) -> Result<Option<PortRange>, LabError> {
        let Some(s) = &self.nat_ports else {
            return Ok(None);
        };
        let range = s
            .trim()
            .split_once('-')
            .and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)))
            .and_then(|(lo, hi)| PortRange::new(lo, hi).ok())
            .ok_or_else(|| LabError::Invalid {
                key: "nat_ports",
                value: format!("{s:?}"),
                expected: "the NAT's pool of source ports, \"LO-HI\" inclusive within 1-65535, \
                           e.g. \"40000-40099\" (100 ports)"
                    .into(),
            })?;
        if topology != Topology::Veth {
            return Err(LabError::Conflict(
                "lab.nat_ports puts a NAT namespace between the client and the server, which \
                 topology = \"loopback\" (one namespace) cannot have: drop lab.topology \
                 (--lab-topology) or set it to \"veth\""
                    .into(),
            ));
        }
        if self.conntrack == Some(true) {
            return Err(LabError::Conflict(
                "lab.conntrack tracks the server's namespace; with lab.nat_ports the run records \
                 the NAT's conntrack table, which tracks every connection already: drop \
                 lab.conntrack (--lab-conntrack)"
                    .into(),
            ));
        }
        Ok(Some(range))
    }

    /// The plan with isolation off: nothing may be set (the lab never changes the host).
    fn host_only(&self, topology: Topology) -> Result<LabPlan, LabError> {
        // Every registry knob whose key is set, then the lab's own keys.
        let mut keys: Vec<&str> = REGISTRY
            .iter()
            .filter(|k| (k.lab.get)(self).is_some())
            .map(|k| k.lab.key)
            .collect();
        let set = [
            ("time_wait", self.time_wait.is_some()),
            ("time_scale", self.time_scale.is_some()),
            ("topology", topology != Topology::Loopback),
            ("server", !self.server.is_empty()),
            ("conntrack", self.conntrack == Some(true)),
            ("nat_ports", self.nat_ports.is_some()),
            ("conntrack_max", self.conntrack_max.is_some()),
        ];
        keys.extend(set.iter().filter(|(_, s)| *s).map(|(k, _)| *k));
        if !keys.is_empty() {
            return Err(LabError::HostChange {
                keys: keys.join(", lab."),
            });
        }
        Ok(LabPlan {
            isolate: false,
            topology,
            port_range: None,
            reserved_ports: None,
            sysctls: Vec::new(),
            server_sysctls: Vec::new(),
            time_wait: None,
            lab_hold: None,
            time_scale: 1.0,
            clients: 1,
            warnings: Vec::new(),
            tw_reuse_note: None,
            conntrack: false,
            nat: None,
            conntrack_max: None,
        })
    }

    /// ip_local_port_range and ip_local_reserved_ports, checked and pushed to `sysctls`.
    #[allow(clippy::type_complexity)]
    fn ports(
        &self,
        sysctls: &mut Vec<Sysctl>,
    ) -> Result<(Option<PortRange>, Option<Vec<PortRange>>), LabError> {
        let port_range = match &self.port_range {
            Some(s) => Some(parse_port_range("port_range", s)?),
            None => None,
        };
        if let Some(r) = port_range {
            sysctls.push(Sysctl {
                knob: &PORT_RANGE,
                server: false,
                value: format!("{} {}", r.lo, r.hi),
            });
        }
        let reserved_ports = match &self.reserved_ports {
            Some(s) => Some(parse_reserved_ports("reserved_ports", s)?),
            None => None,
        };
        if let Some(r) = &reserved_ports {
            if let Some(range) = port_range {
                if reserved_ports_in(range, r) >= range.len() {
                    return Err(LabError::Conflict(format!(
                        "lab.reserved_ports covers all {} ports of port_range {}-{}: no port \
                     would be left to connect from; reserve fewer ports or widen the range",
                        range.len(),
                        range.lo,
                        range.hi
                    )));
                }
            }
            sysctls.push(Sysctl {
                knob: &RESERVED_PORTS,
                server: false,
                value: format_reserved_ports(r),
            });
        }
        Ok((port_range, reserved_ports))
    }

    /// time_scale, checked (1 when unset).
    fn scale(&self) -> Result<f64, LabError> {
        Ok(match self.time_scale {
            None => 1.0,
            Some(s) if (TIME_SCALE_RANGE.0..=TIME_SCALE_RANGE.1).contains(&s) => s,
            Some(s) => {
                return Err(LabError::Invalid {
                    key: "time_scale",
                    value: s.to_string(),
                    expected: format!(
                "a finite factor > 0, from {} to {}, e.g. 10 (ten times faster than modelled)",
                TIME_SCALE_RANGE.0, TIME_SCALE_RANGE.1
            ),
                })
            }
        })
    }

    /// time_wait emulated with tw_reuse = 1 and tw_reuse_delay = time_wait / `scale` (set in
    /// `common`); returns the TIME_WAIT being emulated.
    fn emulate_time_wait(
        &self,
        common: &mut Side,
        scale: f64,
    ) -> Result<Option<Duration>, LabError> {
        Ok(match &self.time_wait {
            None => {
                if self.time_scale.is_some() {
                    return Err(LabError::Conflict(
                        "lab.time_scale needs lab.time_wait, the TIME_WAIT to emulate \
                     (e.g. time_wait = \"240s\", time_scale = 10); without it there is \
                     nothing the kernel can scale (Linux's own 60 s is fixed)"
                            .into(),
                    ));
                }
                None
            }
            Some(span) => {
                let tw = span.0;
                if tw.is_zero() {
                    return Err(LabError::Invalid {
                        key: "time_wait",
                        value: format!("\"{span}\""),
                        expected: "a duration above zero, e.g. \"240s\"".into(),
                    });
                }
                if common.get(&TW_REUSE_DELAY).is_some() {
                    return Err(LabError::Conflict(
                        "lab.time_wait and lab.tw_reuse_delay_ms both set the reuse delay: \
                     keep time_wait (+ time_scale) to emulate a hold, or tw_reuse_delay_ms \
                     to set the kernel value directly"
                            .into(),
                    ));
                }
                if let Some(r @ (0 | 2)) = common.get(&TW_REUSE) {
                    return Err(LabError::Conflict(format!(
                        "lab.time_wait is emulated with tw_reuse = 1, but tw_reuse = {} is set: \
                     drop tw_reuse (or set it to 1)",
                        r
                    )));
                }
                if common.get(&TIMESTAMPS) == Some(0) {
                    return Err(LabError::Conflict(
                        "lab.time_wait is emulated with tcp_tw_reuse, which only reuses ports \
                     whose connection used TCP timestamps: drop timestamps = false"
                            .into(),
                    ));
                }
                let delay_ms = (tw.as_secs_f64() * 1000.0 / scale).round();
                if delay_ms > f64::from(MAX_TW_REUSE_DELAY_MS) {
                    // The smallest scale that brings the delay within the kernel's limit,
                    // rounded up to two decimals.
                    let need = (tw.as_secs_f64() * 1000.0 / f64::from(MAX_TW_REUSE_DELAY_MS)
                        * 100.0)
                        .ceil()
                        / 100.0;
                    return Err(LabError::Invalid {
                        key: "time_scale",
                        value: self
                            .time_scale
                            .map_or_else(|| "unset (1)".into(), |s| s.to_string()),
                        expected: format!(
                            "time_wait {} / time_scale = {} ms exceeds the kernel's 60000 ms \
                         limit for tcp_tw_reuse_delay: raise time_scale to at least {need}",
                            humantime::format_duration(tw),
                            delay_ms
                        ),
                    });
                }
                if delay_ms < 1.0 {
                    return Err(LabError::Invalid {
                        key: "time_scale",
                        value: scale.to_string(),
                        expected: format!(
                            "time_wait {} / time_scale is below the kernel's 1 ms minimum for \
                         tcp_tw_reuse_delay: lower time_scale to at most {}",
                            humantime::format_duration(tw),
                            tw.as_secs_f64() * 1000.0
                        ),
                    });
                }
                common.set(&TW_REUSE, 1);
                common.set(&TW_REUSE_DELAY, delay_ms as u64);
                Some(tw)
            }
        })
    }
}

fn reserved_ports_in(range: PortRange, reserved: &[PortRange]) -> u32 {
    reserved.iter().map(|r| r.overlap(range)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> super::Span {
        s.parse().unwrap()
    }

    fn lab() -> LabConfig {
        LabConfig {
            isolate: true,
            ..LabConfig::default()
        }
    }

    fn value<'a>(plan: &'a LabPlan, name: &str) -> Option<&'a str> {
        plan.sysctls
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.value.as_str())
    }

    /// Accepted configurations: (what it shows, config, expected sysctls in write order).
    /// Over 100 lines because it is a table, one case per entry: a case is added as an entry.
    #[test]
    fn accepted_table() {
        type Case = (&'static str, LabConfig, Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            // Isolation alone: a private namespace with kernel defaults, except tw_reuse = 0
            // (traffic to another host has no loopback exemption).
            ("isolate only", lab(), vec![("net.ipv4.tcp_tw_reuse", "0")]),
            // Not isolated and nothing set: a "host" plan that writes nothing.
            ("host, nothing set", LabConfig::default(), vec![]),
            // A 200-port range is written in the kernel's "LO HI" form.
            (
                "port range",
                LabConfig {
                    port_range: Some("32768-32967".into()),
                    ..lab()
                },
                vec![
                    ("net.ipv4.ip_local_port_range", "32768 32967"),
                    ("net.ipv4.tcp_tw_reuse", "0"),
                ],
            ),
            // A one-port range is legal (the kernel only refuses hi < lo).
            (
                "single port",
                LabConfig {
                    port_range: Some("40000-40000".into()),
                    ..lab()
                },
                vec![
                    ("net.ipv4.ip_local_port_range", "40000 40000"),
                    ("net.ipv4.tcp_tw_reuse", "0"),
                ],
            ),
            // Reserved ports are normalised the way the kernel prints them back.
            (
                "reserved ports merged",
                LabConfig {
                    reserved_ports: Some("2000, 1000-1010,1005-1011".into()),
                    ..lab()
                },
                vec![
                    ("net.ipv4.ip_local_reserved_ports", "1000-1011,2000"),
                    ("net.ipv4.tcp_tw_reuse", "0"),
                ],
            ),
            // The seed case: 240 s TIME_WAIT at time scale 10 -> reuse 1, delay 24000 ms.
            (
                "time scale 240s / 10",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(10.0),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.tcp_tw_reuse_delay", "24000"),
                ],
            ),
            // time_wait alone is fine while it fits the kernel's 60 s limit.
            (
                "time_wait 30s unscaled",
                LabConfig {
                    time_wait: Some(span("30s")),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.tcp_tw_reuse_delay", "30000"),
                ],
            ),
            // Exactly 60 s unscaled is the kernel's maximum and still accepted.
            (
                "time_wait 60s unscaled",
                LabConfig {
                    time_wait: Some(span("1m")),
                    tw_reuse: Some(1),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.tcp_tw_reuse_delay", "60000"),
                ],
            ),
            // A fractional scale rounds the delay to the millisecond: 240 s / 7 = 34286 ms.
            (
                "fractional delay rounds",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(7.0),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.tcp_tw_reuse_delay", "34286"),
                ],
            ),
            // A delay without tw_reuse turns reuse on (1) so it applies.
            (
                "delay implies reuse 1",
                LabConfig {
                    tw_reuse_delay_ms: Some(4000),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "1"),
                    ("net.ipv4.tcp_tw_reuse_delay", "4000"),
                ],
            ),
            // tw_reuse = 2 (loopback) with a delay is meaningful on the loopback topology.
            (
                "reuse 2 with delay on loopback",
                LabConfig {
                    tw_reuse: Some(2),
                    tw_reuse_delay_ms: Some(1000),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_tw_reuse", "2"),
                    ("net.ipv4.tcp_tw_reuse_delay", "1000"),
                ],
            ),
            // Every other setting, booleans as 0/1, in the documented write order.
            (
                "everything else",
                LabConfig {
                    max_tw_buckets: Some(5000),
                    fin_timeout: Some(5),
                    timestamps: Some(true),
                    somaxconn: Some(5),
                    abort_on_overflow: Some(true),
                    tw_reuse: Some(0),
                    ..lab()
                },
                vec![
                    ("net.ipv4.tcp_timestamps", "1"),
                    ("net.ipv4.tcp_tw_reuse", "0"),
                    ("net.ipv4.tcp_max_tw_buckets", "5000"),
                    ("net.ipv4.tcp_fin_timeout", "5"),
                    ("net.core.somaxconn", "5"),
                    ("net.ipv4.tcp_abort_on_overflow", "1"),
                ],
            ),
        ];
        for (what, cfg, want) in cases {
            let plan = cfg
                .validate()
                .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            let got: Vec<(&str, &str)> = plan
                .sysctls
                .iter()
                .map(|s| (s.name(), s.value.as_str()))
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    /// The lab's tw_reuse: 0 with a note when the scenario leaves it unset, the scenario's
    /// own value (and no note) when it sets one or asks for a hold.
    #[test]
    fn tw_reuse_defaults_to_zero_and_says_why() {
        let plan = lab().validate().unwrap();
        assert_eq!(value(&plan, "net.ipv4.tcp_tw_reuse"), Some("0"));
        assert!(plan.tw_reuse_note.unwrap().contains("tw_reuse = 2"));
        for (set, want) in [(Some(2), "2"), (Some(1), "1"), (Some(0), "0")] {
            let plan = LabConfig {
                tw_reuse: set,
                ..lab()
            }
            .validate()
            .unwrap();
            assert_eq!(value(&plan, "net.ipv4.tcp_tw_reuse"), Some(want));
            assert_eq!(plan.tw_reuse_note, None);
        }
        let held = LabConfig {
            time_wait: Some(span("240s")),
            time_scale: Some(10.0),
            ..lab()
        }
        .validate()
        .unwrap();
        assert_eq!(value(&held, "net.ipv4.tcp_tw_reuse"), Some("1"));
        assert_eq!(held.tw_reuse_note, None);
        assert_eq!(LabConfig::default().validate().unwrap().sysctls, vec![]);
    }

    /// Refused configurations: (what it shows, config, a fragment the message must contain).
    /// Over 100 lines because it is a table, one case per entry: a case is added as an entry.
    #[test]
    fn refused_table() {
        let cases: Vec<(&str, LabConfig, &str)> = vec![
            // Any setting without isolation would touch the host.
            (
                "host change",
                LabConfig {
                    port_range: Some("40000-40100".into()),
                    ..LabConfig::default()
                },
                "the lab never changes the host: set isolate = true",
            ),
            // The message names every offending key.
            (
                "host change names keys",
                LabConfig {
                    tw_reuse: Some(1),
                    somaxconn: Some(5),
                    ..LabConfig::default()
                },
                "lab.tw_reuse, lab.somaxconn",
            ),
            // An inverted range is empty.
            (
                "inverted range",
                LabConfig {
                    port_range: Some("5000-1025".into()),
                    ..lab()
                },
                "inverted",
            ),
            // Garbage is refused with the expected syntax.
            (
                "range syntax",
                LabConfig {
                    port_range: Some("1025:5000".into()),
                    ..lab()
                },
                "expected \"LO-HI\"",
            ),
            // The kernel refuses ranges that start among privileged ports.
            (
                "range below 1024",
                LabConfig {
                    port_range: Some("1000-5000".into()),
                    ..lab()
                },
                "start at 1024",
            ),
            // A port above 65535 does not parse.
            (
                "range above 65535",
                LabConfig {
                    port_range: Some("60000-70000".into()),
                    ..lab()
                },
                "HI <= 65535",
            ),
            // Reserving the whole range leaves nothing to connect from.
            (
                "reserved covers range",
                LabConfig {
                    port_range: Some("40000-40009".into()),
                    reserved_ports: Some("39000-41000".into()),
                    ..lab()
                },
                "covers all 10 ports",
            ),
            // Reserved-ports syntax errors name the syntax.
            (
                "reserved syntax",
                LabConfig {
                    reserved_ports: Some("10-5".into()),
                    ..lab()
                },
                "lab.reserved_ports",
            ),
            // tw_reuse outside 0..=2.
            (
                "tw_reuse 3",
                LabConfig {
                    tw_reuse: Some(3),
                    ..lab()
                },
                "0 (off), 1 (any destination) or 2 (loopback only)",
            ),
            // A delay that reuse = 0 would ignore.
            (
                "delay with reuse 0",
                LabConfig {
                    tw_reuse: Some(0),
                    tw_reuse_delay_ms: Some(1000),
                    ..lab()
                },
                "no effect with tw_reuse = 0",
            ),
            // The kernel's delay range is 1..=60000 ms.
            (
                "delay too long",
                LabConfig {
                    tw_reuse_delay_ms: Some(60001),
                    ..lab()
                },
                "1-60000 ms",
            ),
            // 240 s cannot be emulated unscaled: say which scale would work (240 / 60 = 4).
            (
                "time_wait 240s unscaled",
                LabConfig {
                    time_wait: Some(span("240s")),
                    ..lab()
                },
                "raise time_scale to at least 4",
            ),
            // 240 s at scale 2 is 120 s, still too long.
            (
                "time_wait 240s scale 2",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(2.0),
                    ..lab()
                },
                "raise time_scale to at least 4",
            ),
            // A fractional minimum is rounded up: 100 s needs at least 1.67.
            (
                "time_wait 100s",
                LabConfig {
                    time_wait: Some(span("100s")),
                    ..lab()
                },
                "at least 1.67",
            ),
            // A scale so large the delay rounds below 1 ms.
            (
                "delay below 1 ms",
                LabConfig {
                    time_wait: Some(span("1s")),
                    time_scale: Some(5000.0),
                    ..lab()
                },
                "lower time_scale to at most 1000",
            ),
            // time_scale alone has nothing to scale.
            (
                "scale without time_wait",
                LabConfig {
                    time_scale: Some(10.0),
                    ..lab()
                },
                "needs lab.time_wait",
            ),
            // Zero, negative and non-finite scales.
            (
                "scale zero",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(0.0),
                    ..lab()
                },
                "finite factor > 0",
            ),
            (
                "scale NaN",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(f64::NAN),
                    ..lab()
                },
                "finite factor > 0",
            ),
            // time_wait and an explicit delay fight over one sysctl.
            (
                "time_wait and delay",
                LabConfig {
                    time_wait: Some(span("30s")),
                    tw_reuse_delay_ms: Some(1000),
                    ..lab()
                },
                "both set the reuse delay",
            ),
            // Emulation needs tw_reuse = 1.
            (
                "time_wait with reuse 2",
                LabConfig {
                    time_wait: Some(span("30s")),
                    tw_reuse: Some(2),
                    ..lab()
                },
                "drop tw_reuse",
            ),
            // Emulation needs timestamps.
            (
                "time_wait without timestamps",
                LabConfig {
                    time_wait: Some(span("30s")),
                    timestamps: Some(false),
                    ..lab()
                },
                "drop timestamps = false",
            ),
            // A zero duration (an unparseable one is refused by the one duration grammar,
            // see time_wait_takes_the_one_duration_grammar).
            (
                "time_wait zero",
                LabConfig {
                    time_wait: Some(span("0s")),
                    ..lab()
                },
                "above zero",
            ),
            // Values the kernel would refuse are refused by name before set-up, not met as a
            // failed sysctl write halfway through.
            (
                "max_tw_buckets past the kernel's int",
                LabConfig {
                    max_tw_buckets: Some(9_007_199_254_740_992),
                    ..lab()
                },
                "lab.max_tw_buckets = 9007199254740992 (flag --lab-max-tw-buckets): 0-2147483647",
            ),
            (
                "server max_tw_buckets past the kernel's int",
                LabConfig {
                    topology: Some("veth".into()),
                    server: ServerSideConfig {
                        max_tw_buckets: Some(1 << 40),
                        ..Default::default()
                    },
                    ..lab()
                },
                "lab.server.max_tw_buckets",
            ),
            (
                "fin_timeout past the kernel's jiffies",
                LabConfig {
                    fin_timeout: Some(4_000_000_000),
                    ..lab()
                },
                "lab.fin_timeout = 4000000000 (flag --lab-fin-timeout): 0-2147483 seconds",
            ),
            (
                "scale huge",
                LabConfig {
                    time_wait: Some(span("240s")),
                    time_scale: Some(1e300),
                    ..lab()
                },
                "from 0.001 to 10000",
            ),
            // Unknown topology names the accepted ones.
            (
                "topology",
                LabConfig {
                    topology: Some("bridge".into()),
                    ..lab()
                },
                "\"loopback\" (one namespace) or \"veth\"",
            ),
            // A server table makes no sense on loopback.
            (
                "server table on loopback",
                LabConfig {
                    server: ServerSideConfig {
                        somaxconn: Some(5),
                        ..ServerSideConfig::default()
                    },
                    ..lab()
                },
                "only applies with topology = \"veth\"",
            ),
            // Server values are checked too, and named with their table.
            (
                "server tw_reuse 5",
                LabConfig {
                    topology: Some("veth".into()),
                    server: ServerSideConfig {
                        tw_reuse: Some(5),
                        ..ServerSideConfig::default()
                    },
                    ..lab()
                },
                "lab.server.tw_reuse = 5",
            ),
        ];
        for (what, cfg, fragment) in cases {
            match cfg.validate() {
                Ok(plan) => panic!("{what}: accepted: {plan:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(fragment), "{what}: {msg:?} lacks {fragment:?}");
                }
            }
        }
    }

    #[test]
    fn time_scale_mapping_240s_by_10() {
        let plan = LabConfig {
            time_wait: Some(span("240s")),
            time_scale: Some(10.0),
            port_range: Some("1025-5000".into()),
            ..lab()
        }
        .validate()
        .expect("valid");
        assert_eq!(value(&plan, "net.ipv4.tcp_tw_reuse_delay"), Some("24000"));
        assert_eq!(plan.rate_multiplier(), 10.0);
        assert_eq!(plan.time_scale(), 10.0);
        assert_eq!(plan.lab_hold, Some(Duration::from_secs(24)));
        assert_eq!(plan.emulated_hold(), Some(Duration::from_secs(240)));
        assert_eq!(plan.time_wait, Some(Duration::from_secs(240)));
        assert_eq!(plan.usable_ports(), Some(3976));
        // First error at P / R: 3976 / 300 = 13.25 lab s = 132.5 modelled s (= 3976 / 30).
        let lab_first_error = Duration::from_secs_f64(3976.0 / 300.0);
        let modelled = plan.to_modelled(lab_first_error).as_secs_f64();
        assert!((modelled - 3976.0 / 30.0).abs() < 1e-6, "{modelled}");
    }

    #[test]
    fn warnings_are_kept() {
        // Reuse without timestamps is a legitimate experiment (no reuse happens): a warning.
        let plan = LabConfig {
            tw_reuse: Some(1),
            timestamps: Some(false),
            ..lab()
        }
        .validate()
        .expect("valid");
        assert_eq!(plan.warnings.len(), 1);
        // A delay with reuse 2 over veth does nothing: a warning, not an error.
        let plan = LabConfig {
            topology: Some("veth".into()),
            tw_reuse: Some(2),
            tw_reuse_delay_ms: Some(1000),
            ..lab()
        }
        .validate()
        .expect("valid");
        assert!(plan.warnings[0].contains("not loopback"));
    }

    #[test]
    fn usable_ports_subtracts_reserved_inside_range() {
        let plan = LabConfig {
            port_range: Some("40000-40199".into()),
            reserved_ports: Some("39990-40009,40100,50000".into()),
            ..lab()
        }
        .validate()
        .expect("valid");
        assert_eq!(plan.usable_ports(), Some(200 - 10 - 1));
    }

    #[test]
    fn server_side_sysctls() {
        let plan = LabConfig {
            topology: Some("veth".into()),
            tw_reuse: Some(2),
            server: ServerSideConfig {
                somaxconn: Some(5),
                abort_on_overflow: Some(true),
                ..ServerSideConfig::default()
            },
            ..lab()
        }
        .validate()
        .expect("valid");
        assert_eq!(plan.topology, Topology::Veth);
        assert_eq!(
            plan.server_sysctls,
            vec![
                Sysctl {
                    knob: &super::super::sysctl::SOMAXCONN,
                    value: "5".into(),
                    server: true,
                },
                Sysctl {
                    knob: &super::super::sysctl::ABORT_ON_OVERFLOW,
                    value: "1".into(),
                    server: true,
                }
            ]
        );
        // summary.json's record of what was written keeps the two sides apart.
        assert_eq!(
            plan.server_sysctls[0].recorded_name(),
            "server:net.core.somaxconn"
        );
        assert_eq!(plan.sysctls[0].recorded_name(), plan.sysctls[0].name());
    }

    #[test]
    fn unknown_keys_are_refused_and_flags_override() {
        let err = toml::from_str::<LabConfig>("isolate = true\nport_rang = \"1-2\"\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("port_rang"), "{err}");
        let cfg: LabConfig = toml::from_str(
            "isolate = false\nport_range = \"40000-40099\"\ntw_reuse = 2\n[server]\nsomaxconn = 5\n",
        )
        .expect("parses");
        let args = LabConfig {
            isolate: true,
            port_range: Some("50000-50009".into()),
            server: ServerSideConfig {
                fin_timeout: Some(7),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut merged = cfg;
        merged.overlay(args);
        assert!(merged.isolate);
        assert_eq!(merged.port_range.as_deref(), Some("50000-50009"));
        assert_eq!(merged.tw_reuse, Some(2));
        // [lab.server] merges key by key too.
        assert_eq!(merged.server.somaxconn, Some(5));
        assert_eq!(merged.server.fin_timeout, Some(7));
        // A switch left off on top does not turn the file's isolation off.
        merged.overlay(LabConfig::default());
        assert!(merged.isolate);
    }

    #[test]
    fn lab_flags_parse_into_the_section() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            lab: LabConfig,
        }
        let cli = Cli::try_parse_from([
            "portlab",
            "--lab",
            "--lab-port-range",
            "1025-5000",
            "--lab-time-wait",
            "240s",
            "--lab-time-scale",
            "10",
            "--lab-timestamps",
            "off",
            "--lab-tw-reuse-delay",
            "1.5",
            "--lab-server-somaxconn",
            "7",
        ])
        .expect("flags parse");
        assert!(cli.lab.isolate);
        assert_eq!(cli.lab.timestamps, Some(false));
        assert_eq!(cli.lab.time_scale, Some(10.0));
        assert_eq!(cli.lab.time_wait, Some(span("240s")));
        assert_eq!(cli.lab.port_range.as_deref(), Some("1025-5000"));
        assert_eq!(cli.lab.server.somaxconn, Some(7));
        // A bare number is seconds, as in every other duration; the key stays in ms.
        assert_eq!(cli.lab.tw_reuse_delay_ms, Some(1500));
        // 4000 read as seconds is past the kernel's 60 s: refused naming the key and flag.
        let cli =
            Cli::try_parse_from(["portlab", "--lab", "--lab-tw-reuse-delay", "4000"]).unwrap();
        let e = cli.lab.validate().unwrap_err().to_string();
        assert!(
            e.contains("lab.tw_reuse_delay_ms")
                && e.contains("--lab-tw-reuse-delay")
                && e.contains("60000"),
            "{e}"
        );
        // The flags a message names are the ones clap parses, for both tables.
        assert_eq!(flag_of("tw_reuse"), Some("--lab-tw-reuse"));
        assert_eq!(
            flag_of("server.max_tw_buckets"),
            Some("--lab-server-max-tw-buckets")
        );
        assert_eq!(flag_of("isolate"), Some("--lab"));
        assert_eq!(flag_of("no_such_key"), None);
    }

    #[test]
    fn time_wait_takes_the_one_duration_grammar() {
        for (text, secs) in [
            ("\"240\"", 240.0),
            ("240", 240.0),
            ("\"4m\"", 240.0),
            ("2.5", 2.5),
        ] {
            let cfg: LabConfig = toml::from_str(&format!(
                "isolate = true\ntime_wait = {text}\ntime_scale = 10"
            ))
            .unwrap();
            assert_eq!(cfg.time_wait.map(|s| s.secs()), Some(secs), "{text}");
            cfg.validate().unwrap();
        }
        let e = toml::from_str::<LabConfig>("time_wait = \"four minutes\"").unwrap_err();
        assert!(e.to_string().contains("not a duration"), "{e}");
    }
}
