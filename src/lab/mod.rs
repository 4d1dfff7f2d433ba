//! The Linux network-namespace lab.
//!
//! A run with `isolate = true` enters a private network namespace before any thread exists
//! (as root: `CLONE_NEWNET`; otherwise `CLONE_NEWUSER | CLONE_NEWNET` with uid/gid maps), brings
//! `lo` up, writes the scenario's sysctls into that namespace and reads every one back. The
//! host's own sysctls and interfaces are never written.
//!
//! The flow is:
//!
//! 1. [`LabConfig`] (the `[lab]` table of a scenario) merged with [`LabArgs`] (the `--lab-*`
//!    flags) by [`LabConfig::merge_args`];
//! 2. [`LabConfig::validate`] (pure) turns it into a [`LabPlan`]: the exact sysctls to write,
//!    the time scale, and refusals with a message saying what would work;
//! 3. [`enter`] (Linux) carries the plan out and returns what the kernel really holds
//!    ([`Applied`]); elsewhere it returns [`LabError::Unsupported`].
//!
//! [`read_settings`] reads the same sysctls in the current namespace without changing
//! anything (for `inspect` and for the model when there is no lab).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod plan;
pub use plan::{LabPlan, PortRange, Sysctl, Topology};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) mod netlink;
#[cfg(target_os = "linux")]
use linux as os;
/// Moves the calling thread into the network namespace `fd` refers to (`portlab watch`).
#[cfg(target_os = "linux")]
pub(crate) use linux::setns;

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as os;

#[cfg(all(test, target_os = "linux"))]
mod ns_tests;

/// Every sysctl the model cares about, in the order they are written and reported.
///
/// [`read_settings`] and [`Applied::settings`] report each of these that the kernel has,
/// whether the lab set it or not.
pub const MODEL_SYSCTLS: [&str; 9] = [
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_timestamps",
    "net.core.somaxconn",
    "net.ipv4.tcp_abort_on_overflow",
];

/// The `[lab]` table of a scenario file. Every key is optional; nothing is written unless
/// `isolate = true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    /// Enter a private network namespace before the run (Linux only). Required for every
    /// other key: the lab never changes the host.
    #[serde(default)]
    pub isolate: bool,
    /// `net.ipv4.ip_local_port_range` as "LO-HI" (inclusive), e.g. "32768-32967" = 200 ports.
    pub port_range: Option<String>,
    /// `net.ipv4.ip_local_reserved_ports` in kernel syntax, e.g. "1000-1010,2000"; "" clears it.
    pub reserved_ports: Option<String>,
    /// `net.ipv4.tcp_tw_reuse`: 0 off, 1 on, 2 loopback only (the kernel default). Unset,
    /// the lab writes 0 (as toward another host), or 1 with a delay or time_wait.
    pub tw_reuse: Option<u8>,
    /// `net.ipv4.tcp_tw_reuse_delay` in ms (1..=60000, Linux 6.14+): how long after entering
    /// TIME_WAIT a port may be reused when tw_reuse allows it.
    pub tw_reuse_delay_ms: Option<u32>,
    /// `net.ipv4.tcp_max_tw_buckets`: above this many, closing sockets skip TIME_WAIT.
    pub max_tw_buckets: Option<u64>,
    /// `net.ipv4.tcp_fin_timeout` in seconds (bounds orphaned FIN_WAIT_2; not TIME_WAIT).
    pub fin_timeout: Option<u32>,
    /// `net.ipv4.tcp_timestamps` (tcp_tw_reuse needs them).
    pub timestamps: Option<bool>,
    /// `net.core.somaxconn`: the cap on every listen() backlog.
    pub somaxconn: Option<u32>,
    /// `net.ipv4.tcp_abort_on_overflow`: RST instead of a silent drop when the accept queue is full.
    pub abort_on_overflow: Option<bool>,
    /// A TIME_WAIT to emulate, e.g. "240s" (Windows' default), through tcp_tw_reuse = 1 and
    /// tcp_tw_reuse_delay = time_wait / time_scale.
    pub time_wait: Option<String>,
    /// Compress time by this factor: the emulated hold is divided and the rate multiplied by it.
    pub time_scale: Option<f64>,
    /// "loopback" (default: client and server share one namespace) or "veth" (two namespaces
    /// joined by a veth pair, 198.18.0.1 and 198.18.0.2).
    pub topology: Option<String>,
    /// With topology = "veth": the server namespace's own settings.
    pub server: Option<ServerSideConfig>,
}

/// The `[lab.server]` table: settings of the server's namespace in the veth topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSideConfig {
    /// `net.ipv4.tcp_tw_reuse` in the server namespace (0, 1 or 2).
    pub tw_reuse: Option<u8>,
    /// `net.ipv4.tcp_tw_reuse_delay` in ms in the server namespace (1..=60000).
    pub tw_reuse_delay_ms: Option<u32>,
    /// `net.ipv4.tcp_max_tw_buckets` in the server namespace.
    pub max_tw_buckets: Option<u64>,
    /// `net.core.somaxconn` in the server namespace.
    pub somaxconn: Option<u32>,
    /// `net.ipv4.tcp_abort_on_overflow` in the server namespace.
    pub abort_on_overflow: Option<bool>,
    /// `net.ipv4.tcp_fin_timeout` in the server namespace, in seconds.
    pub fin_timeout: Option<u32>,
    /// `net.ipv4.tcp_timestamps` in the server namespace.
    pub timestamps: Option<bool>,
}

/// The `--lab-*` flags. Each overrides the scenario's `[lab]` key of the same name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LabArgs {
    /// Run inside a private network namespace (Linux; root, or an unprivileged user where user
    /// namespaces are enabled). Needed by every other --lab-* flag: the host is never changed.
    #[arg(long = "lab")]
    pub lab: bool,
    /// Ephemeral port range inside the lab, "LO-HI" inclusive (net.ipv4.ip_local_port_range),
    /// e.g. 32768-32967 for 200 ports.
    #[arg(long, value_name = "LO-HI")]
    pub lab_port_range: Option<String>,
    /// Ports the kernel must not hand out automatically (net.ipv4.ip_local_reserved_ports),
    /// kernel syntax "1000-1010,2000".
    #[arg(long, value_name = "LIST")]
    pub lab_reserved_ports: Option<String>,
    /// net.ipv4.tcp_tw_reuse inside the lab: 0 off, 1 any destination, 2 loopback only.
    /// Applies to connect() only, and only when TCP timestamps were on. Unset, the lab writes
    /// 0, as for traffic to another host (the kernel's default 2 exempts loopback, so a lab
    /// on loopback would never run out); 2 gives the loopback behaviour.
    #[arg(long, value_name = "0|1|2")]
    pub lab_tw_reuse: Option<u8>,
    /// net.ipv4.tcp_tw_reuse_delay in milliseconds (1-60000, Linux 6.14+): with tw_reuse on,
    /// this is the effective TIME_WAIT hold for port reuse.
    #[arg(long, value_name = "MS")]
    pub lab_tw_reuse_delay: Option<u32>,
    /// net.ipv4.tcp_max_tw_buckets: beyond this many TIME_WAIT sockets, closing sockets skip
    /// TIME_WAIT (counted as TCPTimeWaitOverflow).
    #[arg(long, value_name = "N")]
    pub lab_max_tw_buckets: Option<u64>,
    /// net.ipv4.tcp_fin_timeout in seconds. Bounds orphaned FIN_WAIT_2 only; it does NOT
    /// shorten TIME_WAIT (a popular myth this lets you test).
    #[arg(long, value_name = "SECONDS")]
    pub lab_fin_timeout: Option<u32>,
    /// net.ipv4.tcp_timestamps on or off (true/false); tcp_tw_reuse needs them on.
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub lab_timestamps: Option<bool>,
    /// net.core.somaxconn: the cap on every listen() backlog inside the lab.
    #[arg(long, value_name = "N")]
    pub lab_somaxconn: Option<u32>,
    /// net.ipv4.tcp_abort_on_overflow (true/false): a full accept queue answers the final ACK
    /// with RST (client sees ECONNRESET) instead of dropping it.
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub lab_abort_on_overflow: Option<bool>,
    /// A TIME_WAIT to emulate, e.g. 240s (Windows default); done with tcp_tw_reuse = 1 and
    /// tcp_tw_reuse_delay = time-wait / time-scale, which must come to at most 60 s.
    #[arg(long, value_name = "DURATION")]
    pub lab_time_wait: Option<String>,
    /// Compress time by this factor (with --lab-time-wait): the emulated hold is divided and the
    /// request rate multiplied by it; reports give lab and modelled seconds.
    #[arg(long, value_name = "FACTOR")]
    pub lab_time_scale: Option<f64>,
    /// loopback (client and server in one namespace) or veth (two namespaces joined by a veth
    /// pair, client 198.18.0.1, server 198.18.0.2: traffic is not loopback).
    #[arg(long, value_name = "loopback|veth")]
    pub lab_topology: Option<String>,
}

impl LabConfig {
    /// Flags override the file, key by key. `--lab` can only turn isolation on.
    pub fn merge_args(self, args: &LabArgs) -> LabConfig {
        LabConfig {
            isolate: self.isolate || args.lab,
            port_range: args.lab_port_range.clone().or(self.port_range),
            reserved_ports: args.lab_reserved_ports.clone().or(self.reserved_ports),
            tw_reuse: args.lab_tw_reuse.or(self.tw_reuse),
            tw_reuse_delay_ms: args.lab_tw_reuse_delay.or(self.tw_reuse_delay_ms),
            max_tw_buckets: args.lab_max_tw_buckets.or(self.max_tw_buckets),
            fin_timeout: args.lab_fin_timeout.or(self.fin_timeout),
            timestamps: args.lab_timestamps.or(self.timestamps),
            somaxconn: args.lab_somaxconn.or(self.somaxconn),
            abort_on_overflow: args.lab_abort_on_overflow.or(self.abort_on_overflow),
            time_wait: args.lab_time_wait.clone().or(self.time_wait),
            time_scale: args.lab_time_scale.or(self.time_scale),
            topology: args.lab_topology.clone().or(self.topology),
            server: self.server,
        }
    }
}

/// What a user (scenario, flags) or the OS can get wrong in the lab. Messages name the key
/// and say what would work.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A key has a value outside what it accepts.
    #[error("lab.{key} = {value}: {expected}")]
    Invalid {
        /// The scenario key (flags use --lab-<key with dashes>).
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

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl LabError {
    pub(crate) fn setup(what: impl Into<String>, source: std::io::Error) -> LabError {
        LabError::Setup {
            what: what.into(),
            source,
        }
    }
}

/// What [`enter`] did: the mode, and the values the kernel really holds.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// "root" (CLONE_NEWNET), "user-namespace" (CLONE_NEWUSER | CLONE_NEWNET) or "host"
    /// (isolate = false: nothing entered, nothing written).
    pub mode: &'static str,
    /// "loopback" or "veth".
    pub topology: Topology,
    /// Effective values read back for every sysctl in [`MODEL_SYSCTLS`] this kernel has, in
    /// the (client's) namespace, set by the lab or not.
    pub settings: BTreeMap<String, String>,
    /// Effective values in the server namespace (veth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_settings: Option<BTreeMap<String, String>>,
    /// The client's address toward the server (veth only: 198.18.0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<std::net::IpAddr>,
    /// The address the server must listen on (veth: 198.18.0.2; loopback: 127.0.0.1).
    pub server_addr: std::net::IpAddr,
    /// The sysctls written, in order (name -> value as written).
    pub written: Vec<Sysctl>,
    /// Non-fatal notes from validation (carried into the report).
    pub warnings: Vec<String>,
    /// Namespace handles (Linux, isolate only). Not serialized.
    #[serde(skip)]
    pub(crate) ns: Option<os::Namespaces>,
}

/// Carries out a [`LabPlan`]: enters a private network namespace, brings `lo` up, writes the
/// sysctls and reads them back; with `isolate = false` only reads the current settings.
///
/// Call it first in `main`, before any thread (and so before the tokio runtime) exists:
/// the namespace is entered by the calling thread and inherited only by threads it spawns
/// later; without root the user namespace cannot be entered at all once threads exist.
pub fn enter(plan: &LabPlan) -> Result<Applied, LabError> {
    os::enter(plan)
}

/// Reads every sysctl of [`MODEL_SYSCTLS`] in the calling thread's network namespace. A key
/// missing from the map means this kernel does not have that setting (e.g.
/// tcp_tw_reuse_delay before Linux 6.14). Not on Linux: [`LabError::Unsupported`].
pub fn read_settings() -> Result<BTreeMap<String, String>, LabError> {
    os::read_settings()
}

impl Applied {
    /// Runs `f` with the calling thread inside the server namespace (veth topology), then
    /// returns to the client namespace, even if `f` panics. Sockets keep the namespace they
    /// were created in, so a listener bound here on [`Applied::server_addr`] serves from the
    /// server side. Without a server namespace (loopback, host) `f` simply runs.
    pub fn in_server_ns<T>(&self, f: impl FnOnce() -> T) -> Result<T, LabError> {
        match &self.ns {
            Some(ns) => os::in_server_ns(ns, f),
            None => Ok(f()),
        }
    }

    /// The server namespace's fd (veth only), e.g. for a sampler of the server side.
    #[cfg(target_os = "linux")]
    pub fn server_ns(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ns.as_ref().and_then(|ns| ns.server_fd())
    }
}
