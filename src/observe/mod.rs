//! Kernel observation: TIME_WAIT counts and TCP counters.
//!
//! A [`Sampler`] is made once per run for the run's target and asked for a [`KernelSample`]
//! every interval. On Linux it reads the network namespace of the thread that created it
//! (it keeps its netlink socket and /proc files open, and both stay bound to that namespace):
//!
//! - TIME_WAIT (and ESTABLISHED) sockets through NETLINK_SOCK_DIAG (inet_diag, one dump per
//!   address family, counted in the receive loop without allocating per socket), falling back
//!   to /proc/net/tcp and tcp6 when netlink is not available;
//! - /proc/net/sockstat `tw`;
//! - the raw values of the TCP counters in /proc/net/snmp and /proc/net/netstat
//!   ([`Counter`]); [`KernelSample::delta`] turns two samples into counts for the interval.
//!
//! Elsewhere every figure is `None`: "not observed".
//!
//! Figures are for the whole namespace the sampler reads: in the lab that is only the run's
//! own traffic; on the host it includes everything else, except `tw_client`, `tw_server`
//! and `established_client`, which are filtered to the run's target.

use std::net::SocketAddr;

use serde::ser::{Serialize, SerializeMap, Serializer};

mod parse;
pub use parse::{parse_proc_net_tcp_line, parse_sockstat_tw, parse_table, ProcTcpEntry};

pub mod conntrack;
#[cfg(target_os = "linux")]
pub mod conntrack_linux;
pub mod kernel_timeline;
pub mod port_set;
pub mod slab;
pub(crate) mod tally;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "linux")]
pub(crate) use linux::{parse_diag_msg, CounterFiles, DiagSink, SocketLister};

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as os;

/// How many destinations [`KernelSample::tw_by_destination`] lists at most.
pub const TOP_DESTINATIONS: usize = 8;

/// One TCP counter from /proc/net/snmp (`Tcp:`) or /proc/net/netstat (`TcpExt:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Tcp ActiveOpens: connect()s that sent a SYN (not those refused a local port).
    ActiveOpens,
    /// Tcp PassiveOpens: connections accepted from LISTEN.
    PassiveOpens,
    /// Tcp AttemptFails: SYN_SENT/SYN_RECV -> CLOSED or LISTEN.
    AttemptFails,
    /// Tcp EstabResets: ESTABLISHED/CLOSE_WAIT -> CLOSED by a reset.
    EstabResets,
    /// Tcp OutRsts: resets sent.
    OutRsts,
    /// Tcp InSegs: segments received.
    InSegs,
    /// Tcp OutSegs: segments sent.
    OutSegs,
    /// Tcp RetransSegs: segments sent again (SYNs to a full backlog, FINs whose ACK came late).
    RetransSegs,
    /// TcpExt TW: TIME_WAIT sockets; on Linux 6.18 counted as they enter TIME_WAIT (measured:
    /// equal to the connections this namespace closed first).
    Tw,
    /// TcpExt TWKilled: TIME_WAIT sockets killed early.
    TwKilled,
    /// TcpExt TWRecycled: each reuse of a TIME_WAIT port by connect().
    TwRecycled,
    /// TcpExt TCPTimeWaitOverflow: closes that skipped TIME_WAIT (tcp_max_tw_buckets).
    TimeWaitOverflow,
    /// TcpExt ListenOverflows: accept queue full.
    ListenOverflows,
    /// TcpExt ListenDrops: SYNs dropped at a listener (includes overflows).
    ListenDrops,
    /// TcpExt TCPAbortOnData: resets on close with unread data or SO_LINGER {on, 0}.
    AbortOnData,
}

impl Counter {
    /// Every counter, in report order.
    pub const ALL: [Counter; 15] = [
        Counter::ActiveOpens,
        Counter::PassiveOpens,
        Counter::AttemptFails,
        Counter::EstabResets,
        Counter::OutRsts,
        Counter::InSegs,
        Counter::OutSegs,
        Counter::RetransSegs,
        Counter::Tw,
        Counter::TwKilled,
        Counter::TwRecycled,
        Counter::TimeWaitOverflow,
        Counter::ListenOverflows,
        Counter::ListenDrops,
        Counter::AbortOnData,
    ];

    /// The kernel's name, as in the /proc file (also the key in reports).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::ActiveOpens => "ActiveOpens",
            Counter::PassiveOpens => "PassiveOpens",
            Counter::AttemptFails => "AttemptFails",
            Counter::EstabResets => "EstabResets",
            Counter::OutRsts => "OutRsts",
            Counter::InSegs => "InSegs",
            Counter::OutSegs => "OutSegs",
            Counter::RetransSegs => "RetransSegs",
            Counter::Tw => "TW",
            Counter::TwKilled => "TWKilled",
            Counter::TwRecycled => "TWRecycled",
            Counter::TimeWaitOverflow => "TCPTimeWaitOverflow",
            Counter::ListenOverflows => "ListenOverflows",
            Counter::ListenDrops => "ListenDrops",
            Counter::AbortOnData => "TCPAbortOnData",
        }
    }

    /// The section of the /proc file it is in: "Tcp" (snmp) or "TcpExt" (netstat).
    pub const fn section(self) -> &'static str {
        match self {
            Counter::ActiveOpens
            | Counter::PassiveOpens
            | Counter::AttemptFails
            | Counter::EstabResets
            | Counter::OutRsts
            | Counter::InSegs
            | Counter::OutSegs
            | Counter::RetransSegs => "Tcp",
            _ => "TcpExt",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Values of every [`Counter`]: raw kernel values in a sample, differences in a delta.
/// Serialized as a map from the kernel's name to the value (null = not observed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    values: [Option<u64>; Counter::ALL.len()],
}

impl TcpCounters {
    /// The value of one counter, None when not observed.
    pub fn get(&self, c: Counter) -> Option<u64> {
        self.values[c.index()]
    }

    /// Sets one counter.
    pub fn set(&mut self, c: Counter, v: Option<u64>) {
        self.values[c.index()] = v;
    }

    /// (counter, value) pairs in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, Option<u64>)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }

    /// `self - earlier` counter by counter; None where either is None or the counter went
    /// backwards (a different namespace).
    pub fn since(&self, earlier: &TcpCounters) -> TcpCounters {
        let mut out = TcpCounters::default();
        for c in Counter::ALL {
            out.set(
                c,
                self.get(c)
                    .zip(earlier.get(c))
                    .and_then(|(a, b)| a.checked_sub(b)),
            );
        }
        out
    }

    /// InSegs + OutSegs (the packets behind a figure like "segments per request").
    pub fn segments(&self) -> Option<u64> {
        Some(self.get(Counter::InSegs)? + self.get(Counter::OutSegs)?)
    }
}

impl Serialize for TcpCounters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(Counter::ALL.len()))?;
        for (c, v) in self.iter() {
            map.serialize_entry(c.name(), &v)?;
        }
        map.end()
    }
}

/// TIME_WAIT sockets toward one destination (remote address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DestinationCount {
    /// The remote address:port.
    pub destination: SocketAddr,
    /// TIME_WAIT sockets toward it.
    pub time_wait: u64,
}

/// Where the per-socket figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketSource {
    /// NETLINK_SOCK_DIAG (inet_diag dump).
    SockDiag,
    /// /proc/net/tcp and /proc/net/tcp6 (slower fallback).
    ProcNetTcp,
}

/// One look at the kernel. Every figure is None when it could not be observed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KernelSample {
    /// TIME_WAIT sockets whose remote address:port is the target: the client's side.
    pub tw_client: Option<u64>,
    /// TIME_WAIT sockets on the target's port (local address = target or any): the server's side.
    pub tw_server: Option<u64>,
    /// Every TIME_WAIT socket in the namespace (from the socket listing).
    pub tw_total: Option<u64>,
    /// The destinations with the most TIME_WAIT sockets, most first, at most
    /// [`TOP_DESTINATIONS`]; sockets on listening ports (server side) are not destinations.
    pub tw_by_destination: Option<Vec<DestinationCount>>,
    /// TIME_WAIT sockets toward destinations not listed in `tw_by_destination`.
    pub tw_other_destinations: Option<u64>,
    /// False when more than 64 distinct destinations were seen: the listed counts are then
    /// upper bounds (every destination holding more than 1/64 of them is still listed).
    pub tw_destinations_exact: Option<bool>,
    /// /proc/net/sockstat "tw" (O(1); includes orphaned FIN_WAIT_2 on some kernels).
    pub tw_sockstat: Option<u64>,
    /// ESTABLISHED sockets in the namespace.
    pub established: Option<u64>,
    /// ESTABLISHED sockets whose remote address:port is the target.
    pub established_client: Option<u64>,
    /// Client-side sockets (TIME_WAIT or ESTABLISHED, not on a listening port) toward every
    /// destination.
    pub client_held: Option<u64>,
    /// The distinct local ports among `client_held`: fewer when connect() gave one port to
    /// several destinations; equal when each port served one (bind before connect).
    pub client_ports: Option<u64>,
    /// Which listing the socket figures came from.
    pub source: Option<SocketSource>,
    /// Raw counter values (use [`KernelSample::delta`] for an interval).
    pub counters: TcpCounters,
}

impl KernelSample {
    /// Counter changes from `earlier` to `self`.
    pub fn delta(&self, earlier: &KernelSample) -> TcpCounters {
        self.counters.since(&earlier.counters)
    }
}

/// Something that looks at the kernel: [`Sampler`] for real, a script of samples in tests of
/// what is made of them ([`kernel_timeline::KernelTimeline`]).
pub trait Sample: Send {
    /// Takes one sample.
    fn sample(&mut self) -> KernelSample;
}

impl Sample for Sampler {
    fn sample(&mut self) -> KernelSample {
        Sampler::sample(self)
    }
}

/// Samples the kernel for one target. Create it on a thread in the namespace to observe
/// (after `lab::enter`, or inside `Applied::in_server_ns` for the server side of veth).
pub struct Sampler {
    inner: os::Sampler,
}

impl Sampler {
    /// A sampler for TIME_WAIT toward / on `target`. Never fails: what cannot be opened is
    /// reported as not observed.
    pub fn new(target: SocketAddr) -> Sampler {
        Sampler {
            inner: os::Sampler::new(target),
        }
    }

    /// Takes one sample.
    pub fn sample(&mut self) -> KernelSample {
        self.inner.sample()
    }

    /// The target the per-side figures are filtered to.
    pub fn target(&self) -> SocketAddr {
        self.inner.target()
    }
}
