//! `portlab watch`: on a live host (or inside a container's, a lab's or a process's network
//! namespace), which destination runs out of ephemeral ports, and when. Read only.
//!
//! Each sample lists the namespace's TCP sockets once (sock_diag) and groups the client
//! sockets by (local address, destination): TIME_WAIT, ESTABLISHED and SYN_SENT toward it.
//! The connection rate comes from the TIME_WAIT timers of that one sample: a socket with `x`
//! ms left entered TIME_WAIT 60 s - x ago, so the sockets younger than a window `w`, over
//! `w`, are the recent rate of closes (Tcp ActiveOpens deltas across samples are shown as a
//! namespace-wide cross-check). With the usable ports P, the port hold T and the ports used,
//! [`evaluate`] gives each destination its ETA (P - used) / R, the steady-state verdict
//! R x T against P (the model's rules: [`crate::model::predict`]), a state and a sentence
//! written from that ETA and state. The same listing shows whether the client binds before
//! connect() (the parity of its ports, no port held twice): then the whole range is judged
//! as one pool shared by every destination ([`WholeRange`]).
//!
//! - this file: flags, the [`Source`] trait (a sampler; scripted in tests), the pure
//!   grouping ([`Aggregator`]) and evaluation ([`evaluate`]), and the watch loop;
//! - `render.rs`: text (table and one line), JSON and the Prometheus text exposition;
//! - `exporter.rs`: `--listen`, the sampler loop that keeps the latest exposition and the
//!   small HTTP server that serves it;
//! - `linux.rs`: the kernel source and namespace entry; `other.rs`: "Linux only";
//! - the command itself (flags checked, then [`sample`]) is cmd/watch.rs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Serialize;

use crate::model::{num, predict, BindModel, ModelInput, TwReuse};
use crate::observe::port_set::PortSet;
use crate::observe::tally::{
    endpoint, ip_bytes, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT, TCP_TIME_WAIT,
};
use crate::plan::values::Span;
use crate::say::Output;

pub mod conntrack;
pub mod exporter;
pub mod netns;
pub mod render;

#[cfg(target_os = "linux")]
mod allns;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::KernelSource;
#[cfg(not(target_os = "linux"))]
mod other;

/// TCP_TIMEWAIT_LEN (include/net/tcp.h): a TIME_WAIT socket's timer starts at 60 s.
pub const TIMEWAIT_LEN_S: f64 = 60.0;
/// The windows the rate is measured over, shortest first: the shortest that holds at least
/// [`RATE_MIN_SOCKETS`] young sockets is used (so a slow client is measured over longer),
/// each capped at the port hold (where tcp_tw_reuse may take older sockets away), and
/// shorter while the client is younger than the window.
pub const RATE_WINDOWS_S: [f64; 3] = [5.0, 15.0, 60.0];
/// The shortest window of [`RATE_WINDOWS_S`] is used; a longer one only when it has fewer
/// young sockets than this (one socket more or less is then under 5% of the rate).
pub const RATE_MIN_SOCKETS: u64 = 20;
/// The usual window (the first of [`RATE_WINDOWS_S`]).
pub const RATE_WINDOW_S: f64 = RATE_WINDOWS_S[0];
/// Destinations (local address, remote address:port) kept per sample; beyond that they are
/// counted in `other_destinations` only, so memory stays bounded whatever the host does.
pub const MAX_GROUPS: usize = 4096;

/// Flags of `portlab watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Watch the network namespace of this process (a container, a lab, a client), entered
    /// through /proc/PID/ns/net: needs CAP_SYS_ADMIN (and to read that file, the process's
    /// user or CAP_SYS_PTRACE).
    #[arg(long, value_name = "PID", conflicts_with_all = ["netns", "all_netns"])]
    pub pid: Option<u32>,
    /// Watch the network namespace bound at this path, e.g. /run/netns/NAME
    /// (`ip netns add NAME`); needs CAP_SYS_ADMIN.
    #[arg(long, value_name = "PATH", conflicts_with = "all_netns")]
    pub netns: Option<PathBuf>,
    /// Watch every network namespace of the host (each container's and pod's, and the
    /// host's own), found through /proc/*/ns/net every sample and sampled in one pass, each
    /// labelled by its lowest pid, that process's name and cgroup, and the container ID and
    /// pod UID the cgroup path names. Needs CAP_SYS_ADMIN (to enter them) and
    /// CAP_SYS_PTRACE (to read other users' /proc/PID/ns/net). The --max-destinations cap
    /// is per namespace: a node with N namespaces gives at most
    /// N x (10 x --max-destinations + 24) + 4 series (524 per namespace at the default 50;
    /// one without client sockets 16), and 5 more per namespace where nf_conntrack is loaded
    /// (its table; 7 while it tracks connections).
    #[arg(long)]
    pub all_netns: bool,
    /// Only this destination (IP:PORT, e.g. 10.0.0.5:5432 or [::1]:8080).
    #[arg(long, value_name = "IP:PORT")]
    pub dst: Option<SocketAddr>,
    /// Time between samples, e.g. 1s, 250ms (at least 10ms).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: Span,
    /// Take one sample, print it and exit (for cron, CI and node_exporter's textfile
    /// collector). Tcp ActiveOpens is read one --interval before the sample, so that its
    /// rate is there too: the output comes that much later.
    #[arg(long)]
    pub once: bool,
    /// Stop after N samples (default: until interrupted; --once is --count 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// A destination is in `warning` when it runs out at the current rate (R x T > P), or
    /// when its free ports would last less than this (at most one port hold T) even if
    /// none were freed: with the 60 s hold, 10s warns from R x 70 s > P.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub warn_within: Span,
    /// A NAT's ports toward one destination, when this namespace masquerades (a Kubernetes
    /// node, a NAT gateway) and its rule sets a port range (`masquerade to :LO-HI`): its
    /// open mappings per (public address, destination) are judged against it. Unset: 64512,
    /// the 1024-65535 a rule without a range picks from.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub nat_ports: Option<u32>,
    /// Output: text (a live table on a terminal, one line per sample elsewhere; a full
    /// table with --once), json (one object; one per line without --once), prom (the
    /// Prometheus text exposition, for node_exporter's textfile collector).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    pub format: WatchFormat,
    /// Serve the Prometheus exposition at http://ADDR:PORT/metrics instead of printing
    /// samples (an exporter): sampled every --interval on a thread of its own, each scrape
    /// gets the latest sample. Port 0 picks a free port; the address is printed.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with_all = ["once", "format"])]
    pub listen: Option<SocketAddr>,
    /// The Prometheus exposition lists at most this many destinations (worst first) and
    /// adds up the rest in one series labelled destination="other", so that the series
    /// stay bounded on a host with thousands of destinations.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub max_destinations: u16,
}

/// Output formats of `portlab watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WatchFormat {
    /// Human-readable.
    Text,
    /// JSON.
    Json,
    /// Prometheus text exposition format 0.0.4.
    Prom,
}

/// What a user can get wrong, or lacks, before anything is read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A flag value that cannot work.
    #[error("invalid {flag} {given}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// As given.
        given: String,
        /// What to write instead.
        reason: String,
    },
    /// Something needs a capability this process does not have.
    #[error("{what}: permission denied; this needs {capability} (run as root, e.g. with sudo)")]
    Permission {
        /// What was attempted.
        what: String,
        /// The capability that is missing.
        capability: &'static str,
    },
    /// Any other failure to read the namespace.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// This OS has no implementation yet.
    #[error("portlab watch is Linux-only for now: it lists sockets with their TIME_WAIT timers through Linux sock_diag; on this OS use `portlab inspect` for the settings and counts")]
    LinuxOnly,
}

/// A shorter window replaces the chosen one when it holds far fewer sockets than the
/// chosen window's rate predicts (the client slowed down or stopped): at most
/// `expected - 3 sqrt(expected)`, and only when at least this many are expected (so that
/// even none is a 3-sigma event for a steady or Poisson client).
pub const RATE_DROP_MIN_EXPECTED: f64 = 9.0;

/// The TIME_WAIT ages of a set of sockets, as the rate needs them: how many are younger
/// than each window, and the oldest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ages {
    /// The windows the rate may be measured over, seconds: [`RATE_WINDOWS_S`] capped at the
    /// port hold.
    pub windows_s: [f64; 3],
    /// TIME_WAIT sockets younger than each window.
    pub young: [u64; 3],
    /// The age of the oldest TIME_WAIT socket, seconds (0 when none).
    pub oldest_s: f64,
}

impl Ages {
    /// No socket yet, windows capped at `hold_s`.
    pub fn new(hold_s: f64) -> Ages {
        Ages {
            windows_s: RATE_WINDOWS_S.map(|w| w.min(hold_s).max(0.001)),
            young: [0; 3],
            oldest_s: 0.0,
        }
    }

    /// Counts one TIME_WAIT socket that closed `age_s` ago.
    pub fn add(&mut self, age_s: f64) {
        for (w, n) in self.windows_s.iter().zip(self.young.iter_mut()) {
            *n += u64::from(age_s < *w);
        }
        self.oldest_s = self.oldest_s.max(age_s);
    }

    /// Closes per second over the recent past: see [`Ages::measure`].
    pub fn rate(&self) -> f64 {
        self.measure().0
    }

    /// The span the rate was measured over, seconds: the window, or the oldest socket's
    /// age when the client is younger than the window.
    pub fn rate_window_s(&self) -> f64 {
        self.measure().1
    }

    /// The rate and the span it was measured over. The shortest window with
    /// [`RATE_MIN_SOCKETS`] young sockets is used (else the longest), so a slow client is
    /// measured over longer; but a shorter window that holds far fewer sockets than that
    /// rate predicts (see [`RATE_DROP_MIN_EXPECTED`]) means the client slowed down or
    /// stopped, and then the shortest such window measures it: after a client stops, its
    /// rate reaches 0 once the shortest window (5 s, or the hold) has passed, not when
    /// its last TIME_WAIT socket expires.
    pub fn measure(&self) -> (f64, f64) {
        let i = (0..2)
            .find(|&i| self.young[i] >= RATE_MIN_SOCKETS)
            .unwrap_or(2);
        let rate = self.rate_over(i);
        for j in 0..i {
            let w = self.windows_s[j];
            if self.oldest_s < w {
                // The client is younger than this window: it holds every socket.
                break;
            }
            let expected = rate * w;
            if expected >= RATE_DROP_MIN_EXPECTED
                && self.young[j] as f64 <= expected - 3.0 * expected.sqrt()
            {
                return (self.rate_over(j), w);
            }
        }
        (rate, self.windows_s[i].min(self.oldest_s))
    }

    /// The rate over window `i`: its young sockets over it. While the oldest socket is
    /// younger than the window (the client started less than a window ago), the window
    /// starts at that oldest socket, which is then not counted: N sockets spread over N - 1
    /// gaps.
    fn rate_over(&self, i: usize) -> f64 {
        let (window, young) = (self.windows_s[i], self.young[i]);
        if self.oldest_s >= window {
            young as f64 / window
        } else if young >= 2 && self.oldest_s > 0.0 {
            (young - 1) as f64 / self.oldest_s
        } else {
            0.0
        }
    }
}

/// The client sockets toward one destination from one local address, in one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupCounts {
    /// The local address the sockets are bound to.
    pub local: IpAddr,
    /// The remote address:port.
    pub destination: SocketAddr,
    /// Sockets in TIME_WAIT.
    pub time_wait: u64,
    /// Sockets in ESTABLISHED.
    pub established: u64,
    /// Sockets in SYN_SENT.
    pub syn_sent: u64,
    /// The ports connect() cannot take toward it: sockets whose local port is inside the
    /// ephemeral range, ESTABLISHED, SYN_SENT, or in TIME_WAIT for less than the hold (a
    /// TIME_WAIT port older than the tcp_tw_reuse delay may be taken again).
    pub used: u64,
    /// The ports bind() cannot take: every socket whose local port is inside the range,
    /// whatever its TIME_WAIT age (bind() never takes a TIME_WAIT port).
    pub held: u64,
    /// The port hold toward it, seconds: 60, or the tcp_tw_reuse delay where reuse applies.
    pub hold_s: f64,
    /// The TIME_WAIT ages, windows capped at the hold.
    pub ages: Ages,
}

impl GroupCounts {
    /// Closes per second over the recent past, from the TIME_WAIT ages ([`Ages::measure`]).
    pub fn rate(&self) -> f64 {
        self.ages.rate()
    }

    /// The span the rate was measured over, seconds.
    pub fn rate_window_s(&self) -> f64 {
        self.ages.rate_window_s()
    }
}

/// Every client socket whose local port is inside the range, whatever its destination:
/// what bind() before connect() draws on, and the evidence that a client does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeCounts {
    /// Client sockets with a local port inside the range (each holds its port against
    /// bind(), whatever its state).
    pub sockets: u64,
    /// Of them, those at an odd offset from the range's first port: connect() takes ports
    /// at even offsets first (`__inet_hash_connect`), bind(0) at odd ones
    /// (`inet_csk_find_open_port`), each turning to the other parity only when its own
    /// is full.
    pub odd_offset: u64,
    /// Of them, those counted in a group of [`Snapshot::groups`] (all of them unless
    /// `--dst` or [`MAX_GROUPS`] left some out).
    pub grouped: u64,
    /// Their TIME_WAIT ages, windows up to 60 s (bind() never reuses a TIME_WAIT port).
    pub ages: Ages,
}

/// One look at a namespace: what a [`Source`] gives.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Wall-clock time of the sample, Unix seconds.
    pub unix_s: f64,
    /// Monotonic time of the sample, seconds (for counter rates).
    pub mono_s: f64,
    /// The namespace's settings as the model reads them (range, reserved, tcp_tw_reuse,
    /// its delay, timestamps already folded in).
    pub input: ModelInput,
    /// Listening ports inside the ephemeral range (not reserved): connect() skips them.
    pub listening_in_range: u32,
    /// The client sockets grouped by (local address, destination).
    pub groups: Vec<GroupCounts>,
    /// Client sockets toward destinations beyond [`MAX_GROUPS`].
    pub other_destinations: u64,
    /// TIME_WAIT sockets of the whole namespace by side: [client, server] (a server's are
    /// on a listening port; every destination, whatever --dst).
    pub time_wait_sides: [u64; 2],
    /// Distinct local ports inside the range held by client sockets, every destination.
    pub ports_in_use: u32,
    /// Every client socket with a local port inside the range.
    pub range: RangeCounts,
    /// Tcp ActiveOpens (raw counter), None when unreadable.
    pub active_opens: Option<u64>,
    /// The namespace's conntrack table, None where nf_conntrack is not loaded (or off
    /// Linux).
    pub conntrack: Option<conntrack::ConntrackReading>,
    /// How the sockets were listed.
    pub source: &'static str,
}

/// Something that samples a namespace: the kernel (Linux), or a script in tests.
pub trait Source {
    /// One sample.
    fn snapshot(&mut self) -> Result<Snapshot, WatchError>;

    /// Tcp ActiveOpens now, with the monotonic time of [`Snapshot::mono_s`], without
    /// listing any socket: the reading before a single sample. None when unreadable.
    fn active_opens(&mut self) -> Option<(f64, u64)> {
        None
    }
}

/// Whether tcp_tw_reuse lets connect() take these sockets' ports early: 1 always, 2 when
/// either end is loopback (the kernel's tcp_twsk_unique), 0 never; timestamps off is
/// already folded into `input.tw_reuse`.
pub fn reuse_applies(input: &ModelInput, local: IpAddr, remote: IpAddr) -> bool {
    match input.tw_reuse {
        TwReuse::Off => false,
        TwReuse::On => true,
        TwReuse::Loopback => local.is_loopback() || remote.is_loopback(),
    }
}

/// How long a closed connection's port stays unusable toward this destination: T = 60 s,
/// or the tcp_tw_reuse delay where reuse applies.
pub fn hold_s(input: &ModelInput, local: IpAddr, remote: IpAddr) -> f64 {
    if reuse_applies(input, local, remote) {
        input.tw_reuse_delay_s
    } else {
        input.time_wait_s
    }
}

/// A socket's (local address, remote address, remote port) as raw bytes: the group key,
/// compared without building addresses. v4-mapped IPv6 is folded to IPv4 first.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    local: [u8; 16],
    remote: [u8; 16],
    rport: [u8; 2],
    /// Address lengths (4 or 16), local and remote.
    lens: [u8; 2],
}

/// An address as 4 bytes when it is IPv4 or v4-mapped IPv6 (::ffff:a.b.c.d), else 16.
fn fold(addr: &[u8]) -> &[u8] {
    if addr.len() == 16 && addr[..10] == [0; 10] && addr[10..12] == [0xff, 0xff] {
        &addr[12..]
    } else {
        addr
    }
}

impl Key {
    fn new(laddr: &[u8], raddr: &[u8], rport: [u8; 2]) -> Key {
        let (l, r) = (fold(laddr), fold(raddr));
        let mut k = Key {
            local: [0; 16],
            remote: [0; 16],
            rport,
            lens: [l.len() as u8, r.len() as u8],
        };
        k.local[..l.len()].copy_from_slice(l);
        k.remote[..r.len()].copy_from_slice(r);
        k
    }

    fn local_ip(&self) -> IpAddr {
        endpoint(&self.local[..usize::from(self.lens[0])], [0, 0]).ip()
    }

    fn remote(&self) -> SocketAddr {
        endpoint(&self.remote[..usize::from(self.lens[1])], self.rport)
    }
}

/// No client socket yet in the range of `input`.
fn range_counts(input: &ModelInput) -> RangeCounts {
    RangeCounts {
        sockets: 0,
        odd_offset: 0,
        grouped: 0,
        ages: Ages::new(input.time_wait_s),
    }
}

/// Up to this many destinations are found by a linear scan (the usual case: a client talks
/// to a handful); beyond it a hash map takes over.
const SCAN_GROUPS: usize = 16;

/// Groups the sockets of one listing as they stream past. Listeners must come first (the
/// kernel's dump lists the listening hash first): a socket on a listening port is a
/// server's and belongs to no destination. Works on the raw bytes sock_diag gives and
/// allocates only when a destination is first seen; its tables are reused across samples.
pub struct Aggregator {
    input: ModelInput,
    filter: Option<Key>,
    listeners: PortSet,
    in_use: PortSet,
    keys: Vec<Key>,
    index: HashMap<Key, usize>,
    groups: Vec<GroupCounts>,
    other: u64,
    /// TIME_WAIT sockets by side: [client, server].
    tw_sides: [u64; 2],
    range: RangeCounts,
    /// The group the previous socket went to (consecutive sockets often share one).
    last: Option<usize>,
}

impl Aggregator {
    /// An empty aggregation for a namespace with these settings, keeping only `filter`'s
    /// destination when given.
    pub fn new(input: ModelInput, filter: Option<SocketAddr>) -> Aggregator {
        Aggregator {
            range: range_counts(&input),
            input,
            filter: filter.map(|f| {
                let mut b = [0u8; 16];
                Key::new(&[], ip_bytes(f.ip(), &mut b), f.port().to_be_bytes())
            }),
            listeners: PortSet::new(),
            in_use: PortSet::new(),
            keys: Vec::new(),
            index: HashMap::new(),
            groups: Vec::new(),
            other: 0,
            tw_sides: [0; 2],
            last: None,
        }
    }

    /// Starts over with new settings, keeping the allocations.
    pub fn reset(&mut self, input: ModelInput) {
        self.input = input;
        self.listeners.clear();
        self.in_use.clear();
        self.keys.clear();
        self.index.clear();
        self.groups.clear();
        self.other = 0;
        self.tw_sides = [0; 2];
        self.range = range_counts(&self.input);
        self.last = None;
    }

    /// Counts one socket given as addresses (tests, and any source that parsed them).
    pub fn add(&mut self, state: u8, local: SocketAddr, remote: SocketAddr, expires_ms: u32) {
        let (mut lb, mut rb) = ([0u8; 16], [0u8; 16]);
        let (l, r) = (
            ip_bytes(local.ip(), &mut lb),
            ip_bytes(remote.ip(), &mut rb),
        );
        self.add_raw(
            state,
            l,
            local.port().to_be_bytes(),
            r,
            remote.port().to_be_bytes(),
            expires_ms,
        );
    }

    /// The group of `key`, made when first seen; None past [`MAX_GROUPS`].
    fn slot(&mut self, key: &Key) -> Option<usize> {
        if let Some(i) = self.last.filter(|&i| self.keys[i] == *key) {
            return Some(i);
        }
        let found = if self.keys.len() <= SCAN_GROUPS {
            self.keys.iter().position(|k| k == key)
        } else {
            self.index.get(key).copied()
        };
        let i = match found {
            Some(i) => i,
            None if self.groups.len() < MAX_GROUPS => {
                let (local, remote) = (key.local_ip(), key.remote());
                let hold = hold_s(&self.input, local, remote.ip());
                self.groups.push(GroupCounts {
                    local,
                    destination: remote,
                    time_wait: 0,
                    established: 0,
                    syn_sent: 0,
                    used: 0,
                    held: 0,
                    hold_s: hold,
                    ages: Ages::new(hold),
                });
                self.keys.push(*key);
                if self.keys.len() == SCAN_GROUPS + 1 {
                    self.index
                        .extend(self.keys.iter().enumerate().map(|(i, k)| (*k, i)));
                } else if self.keys.len() > SCAN_GROUPS {
                    self.index.insert(*key, self.keys.len() - 1);
                }
                self.keys.len() - 1
            }
            None => return None,
        };
        self.last = Some(i);
        Some(i)
    }

    /// Counts one socket as sock_diag gives it: its TCP state, addresses of 4 or 16 bytes
    /// and ports in network order, and its timer (ms left; for TIME_WAIT, until it ends).
    pub fn add_raw(
        &mut self,
        state: u8,
        laddr: &[u8],
        lport: [u8; 2],
        raddr: &[u8],
        rport: [u8; 2],
        expires_ms: u32,
    ) {
        let port = u16::from_be_bytes(lport);
        if state == TCP_LISTEN {
            self.listeners.insert(port);
            return;
        }
        let server = self.listeners.contains(port);
        if state == TCP_TIME_WAIT {
            self.tw_sides[usize::from(server)] += 1;
        }
        if !matches!(state, TCP_TIME_WAIT | TCP_ESTABLISHED | TCP_SYN_SENT) || server {
            return;
        }
        let range = self
            .input
            .port_range
            .filter(|r| r.lo <= port && port <= r.hi);
        let in_range = range.is_some();
        let age = (state == TCP_TIME_WAIT)
            .then(|| (TIMEWAIT_LEN_S - f64::from(expires_ms) / 1000.0).max(0.0));
        if let Some(r) = range {
            // Every destination, filtered or not: a port bound before connect() is taken
            // for all of them.
            self.in_use.insert(port);
            self.range.sockets += 1;
            self.range.odd_offset += u64::from((port - r.lo) & 1);
            if let Some(age) = age {
                self.range.ages.add(age);
            }
        }
        let key = Key::new(laddr, raddr, rport);
        if self.filter.is_some_and(|f| {
            f.remote != key.remote || f.rport != key.rport || f.lens[1] != key.lens[1]
        }) {
            return;
        }
        let Some(slot) = self.slot(&key) else {
            self.other += 1;
            return;
        };
        let g = &mut self.groups[slot];
        let blocks = match age {
            Some(age) => {
                g.time_wait += 1;
                g.ages.add(age);
                age < g.hold_s
            }
            None if state == TCP_ESTABLISHED => {
                g.established += 1;
                true
            }
            None => {
                g.syn_sent += 1;
                true
            }
        };
        g.used += u64::from(in_range && blocks);
        g.held += u64::from(in_range);
        self.range.grouped += u64::from(in_range);
    }

    /// The sample, with the times and the counter given by the source.
    pub fn finish(
        &self,
        unix_s: f64,
        mono_s: f64,
        active_opens: Option<u64>,
        source: &'static str,
    ) -> Snapshot {
        let listening_in_range = self.input.port_range.map_or(0, |r| {
            // Reserved ports were already taken off P; a listener on one is not counted twice.
            let reserved = self.input.reserved;
            self.listeners
                .count_in(r)
                .min(r.len().saturating_sub(reserved))
        });
        Snapshot {
            unix_s,
            mono_s,
            input: self.input.clone(),
            listening_in_range,
            groups: self.groups.clone(),
            other_destinations: self.other,
            time_wait_sides: self.tw_sides,
            ports_in_use: self.input.port_range.map_or(0, |r| self.in_use.count_in(r)),
            range: self.range,
            active_opens,
            conntrack: None,
            source,
        }
    }
}

/// A destination's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The ports last at this rate.
    Ok,
    /// They run out (R x T > P), or the free ones last less than --warn-within.
    Warning,
    /// Every usable port is held: connect() fails now (EADDRNOTAVAIL), or bind(0) when the
    /// range is shared (EADDRINUSE).
    Exhausted,
}

impl State {
    /// The word used in every output.
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Exhausted => "exhausted",
        }
    }
}

/// One destination's figures and verdict (a JSON `destinations` entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationReport {
    /// The remote address:port, "IP:PORT".
    pub destination: String,
    /// The local address the sockets come from.
    pub local: String,
    /// Sockets in TIME_WAIT toward it.
    pub time_wait: u64,
    /// Sockets in ESTABLISHED toward it.
    pub established: u64,
    /// Sockets in SYN_SENT toward it.
    pub syn_sent: u64,
    /// Ports of the range connect() cannot take toward it: ESTABLISHED + SYN_SENT +
    /// TIME_WAIT younger than the hold (all of TIME_WAIT when tcp_tw_reuse does not apply),
    /// local port inside the range.
    pub used: u64,
    /// Connections per second that recently ended in TIME_WAIT here (from the timers).
    pub rate: f64,
    /// The window the rate is measured over, seconds.
    pub rate_window_s: f64,
    /// P: the range minus reserved ports minus listening ports inside the range.
    pub usable_ports: u64,
    /// T: how long a closed connection holds its port, seconds (60, or the tcp_tw_reuse
    /// delay where reuse applies).
    pub hold_s: f64,
    /// Whether tcp_tw_reuse shortens the hold toward this destination.
    pub tw_reuse_applies: bool,
    /// R x T: the ports this rate keeps busy in steady state.
    pub steady_ports: f64,
    /// (P - used) / R when R x T > P (the ports run out at this rate); null when never.
    pub eta_s: Option<f64>,
    /// (P - used) / R whatever the steady state: how long the free ports would last if
    /// none were freed; null at rate 0.
    pub headroom_s: Option<f64>,
    /// ok, warning or exhausted.
    pub state: State,
    /// The model's sentence for this rate, ports and hold.
    pub model: String,
}

/// The whole range as one pool: what a client that binds before connect() (bind(0) without
/// IP_BIND_ADDRESS_NO_PORT) draws on, every destination together, and whether the sockets
/// show such a client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WholeRange {
    /// Whether the sockets show a client that binds before connect(), so that every
    /// destination draws on this one range: then its state and ETA are every
    /// destination's. False for connect() clients: each destination has its own range.
    pub shared: bool,
    /// What the sockets show about how their ports were taken, in a sentence.
    pub evidence: String,
    /// Client sockets with a local port inside the range, every destination.
    pub sockets: u64,
    /// Distinct local ports of the range held by client sockets, every destination.
    pub ports_in_use: u64,
    /// Client sockets on a local port that another client socket holds too (sockets minus
    /// ports in use): connect() shares a port across destinations, bind() never does.
    pub shared_port_sockets: u64,
    /// Sockets at odd offsets from the range's first port beyond what connect() could
    /// have taken (it takes even offsets first, bind(0) odd ones).
    pub odd_offset_excess: u64,
    /// P (as per destination).
    pub usable_ports: u64,
    /// Connections per second that recently ended in TIME_WAIT, every destination (from
    /// the timers).
    pub rate: f64,
    /// The window that rate is measured over, seconds.
    pub rate_window_s: f64,
    /// How long a closed connection keeps its port from bind(): 60 s (tcp_tw_reuse only
    /// helps connect()).
    pub hold_s: f64,
    /// When shared: when the whole range is full, (P - ports in use) / rate when
    /// rate x hold > P, 0 when it is full now; null when never, or when not shared.
    pub eta_s: Option<f64>,
    /// When shared: the range's state (every destination's); null when not shared.
    pub state: Option<State>,
    /// When shared: the model's sentence for the whole range; null when not shared.
    pub model: Option<String>,
}

/// One evaluated sample: what every output format shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchReport {
    /// Unix time of the sample, seconds.
    pub time: f64,
    /// Which namespace: "this process's", "pid N", or the path.
    pub namespace: String,
    /// The ephemeral range, "LO-HI".
    pub port_range: Option<String>,
    /// Reserved ports inside it.
    pub reserved_ports: u32,
    /// Listening ports inside it.
    pub listening_ports_in_range: u32,
    /// net.ipv4.tcp_tw_reuse as the model takes it (0 when timestamps are off).
    pub tw_reuse: u8,
    /// net.ipv4.tcp_tw_reuse_delay, seconds.
    pub tw_reuse_delay_s: f64,
    /// Tcp ActiveOpens per second over the interval before the sample (every destination,
    /// including connections the server closed): the cross-check of the timer rates. Null
    /// only when the counter is unreadable, or in the first sample of a stream.
    pub active_opens_rate: Option<f64>,
    /// Tcp ActiveOpens as read with the sample (the raw counter, for Prometheus' rate());
    /// not in the JSON, which has the rate.
    #[serde(skip)]
    pub active_opens: Option<u64>,
    /// Worst first.
    pub destinations: Vec<DestinationReport>,
    /// Client sockets toward destinations not listed (beyond the bound).
    pub other_destinations: u64,
    /// TIME_WAIT sockets of the namespace on the client side (every destination, whatever
    /// --dst): a port of each is held.
    pub time_wait_client: u64,
    /// TIME_WAIT sockets of the namespace on the server side (on a listening port): they
    /// hold no ephemeral port.
    pub time_wait_server: u64,
    /// The whole range, and whether the destinations share it.
    pub whole_range: WholeRange,
    /// The namespace's conntrack table (absent where nf_conntrack is not loaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<conntrack::ConntrackReport>,
    /// The worst state: of the destinations, of the whole range when it is shared, and of
    /// the conntrack table.
    pub state: State,
    /// How the sockets were listed.
    pub source: String,
}

impl WatchReport {
    /// 0 when every destination is ok, 1 when one is in warning or exhausted.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.state != State::Ok)
    }
}

/// Sockets at odd offsets beyond what connect() could have taken before a sample counts as
/// evidence of bind before connect(): a few ports bound on purpose elsewhere on the host
/// do not make the range shared.
pub const BIND_MIN_ODD_PORTS: u64 = 8;

/// What one sample leaves for the next: the ActiveOpens reading, and when the sockets last
/// showed a client binding before connect().
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// (monotonic seconds, Tcp ActiveOpens) of the previous reading.
    pub opens: Option<(f64, u64)>,
    /// (monotonic seconds, the conntrack reading) of the previous sample.
    pub conntrack: Option<(f64, conntrack::ConntrackReading)>,
    /// Monotonic time of the last sample that showed bind before connect().
    pub bound_seen_s: Option<f64>,
}

impl History {
    /// Remembers this sample for the next.
    pub fn record(&mut self, s: &Snapshot) {
        self.opens = s.active_opens.map(|a| (s.mono_s, a));
        self.conntrack = s.conntrack.clone().map(|c| (s.mono_s, c));
        if binding(s, false).shared {
            self.bound_seen_s = Some(s.mono_s);
        }
    }

    /// Whether a sample less than one TIME_WAIT (60 s: the ports a bound client took are
    /// held that long) before `mono_s` showed bind before connect(). Once nearly every
    /// port is held both parities are full and one sample alone can no longer tell.
    fn bound_recently(&self, mono_s: f64) -> bool {
        self.bound_seen_s
            .is_some_and(|t| mono_s - t < TIMEWAIT_LEN_S)
    }
}

/// How the client sockets of one sample took their ports.
struct Binding {
    shared: bool,
    shared_port_sockets: u64,
    odd_offset_excess: u64,
    evidence: String,
}

/// Whether the sockets show a client that binds before connect(). connect() takes ports at
/// even offsets from the range's first port while those last toward that destination, and
/// shares a port across destinations; bind(0) takes odd offsets first and never shares a
/// port. So: more odd-offset ports than connect() could have taken, and no port held
/// twice, is bind before connect(); a port held twice is connect(). connect() turns to odd
/// offsets toward a destination only past its even half, so it can have taken at most
/// held - even of them toward each (local address, destination), and at most
/// sockets - even among the sockets no group counted (`--dst`).
/// `seen_recently`: an earlier sample showed it (it stays shared while no port is held
/// twice).
fn binding(s: &Snapshot, seen_recently: bool) -> Binding {
    let c = s.range;
    let twice = c.sockets.saturating_sub(u64::from(s.ports_in_use));
    let excess = s.input.port_range.map_or(0, |r| {
        let even = u64::from(r.len()).div_ceil(2);
        let grouped: u64 = s.groups.iter().map(|g| g.held.saturating_sub(even)).sum();
        let rest = c.sockets.saturating_sub(c.grouped).saturating_sub(even);
        c.odd_offset.saturating_sub(grouped + rest)
    });
    let now = twice == 0 && excess >= BIND_MIN_ODD_PORTS;
    let shared = now || (twice == 0 && seen_recently && c.sockets > 0);
    let evidence = if now {
        format!(
            "the client binds before connect(): {excess} of its {} ports sit at odd offsets from the range's first port, where bind(0) takes them and connect() does not, and no port is held twice, so every destination draws on one range",
            c.sockets
        )
    } else if shared {
        "the client bound its ports before connect() within the last 60 s and no port is held twice, so every destination still draws on one range".to_string()
    } else if twice > 0 {
        format!(
            "connect() chooses the ports: {twice} client sockets share a local port with another, which bind() never allows, so each destination has its own range"
        )
    } else if c.sockets == 0 {
        "no client socket holds a port of the range".to_string()
    } else {
        format!(
            "connect() chooses the ports ({} of {} at the even offsets from the range's first port it takes first), so each destination has its own range",
            c.sockets - c.odd_offset,
            c.sockets
        )
    };
    Binding {
        shared,
        shared_port_sockets: twice,
        odd_offset_excess: excess,
        evidence,
    }
}

/// The usable ports after listeners: P.
fn usable(s: &Snapshot) -> u64 {
    u64::from(s.input.ports.saturating_sub(s.listening_in_range))
}

/// exhausted: every usable port held; warning: the ports run out at this rate (R x T > P),
/// or the free ones would last less than `warn_within_s` (at most one hold: within a hold
/// ports are freed again) even if none were freed; ok otherwise.
fn state_of(
    used: u64,
    p: u64,
    rate: f64,
    hold_s: f64,
    runs_out: bool,
    warn_within_s: f64,
) -> State {
    let headroom = (rate > 0.0).then(|| p.saturating_sub(used) as f64 / rate);
    if used >= p {
        State::Exhausted
    } else if runs_out || headroom.is_some_and(|h| h <= warn_within_s.min(hold_s)) {
        State::Warning
    } else {
        State::Ok
    }
}

/// One verdict with its figures: a destination's, or the shared range's.
struct Verdict {
    hold_s: f64,
    reuse_applies: bool,
    eta_s: Option<f64>,
    headroom_s: Option<f64>,
    state: State,
    model: String,
}

/// The verdict for `rate` (measured over `window_s`) against `p` usable ports of which
/// `used` are held, under the model's rules for `input` (its hold, R x hold > P, the
/// error), with the sentence written from the same figures as the ETA and the state, so
/// that they never disagree.
fn verdict(
    input: &ModelInput,
    rate: f64,
    window_s: f64,
    p: u64,
    used: u64,
    warn_within_s: f64,
) -> Verdict {
    let model = predict(&ModelInput {
        rate: Some(rate),
        ports: u32::try_from(p).unwrap_or(u32::MAX),
        ..input.clone()
    });
    let (hold, runs_out) = (model.hold_s, model.exhausts && rate > 0.0);
    let free = p.saturating_sub(used);
    let eta_s = if used >= p {
        Some(0.0)
    } else {
        runs_out.then(|| free as f64 / rate)
    };
    let headroom_s = (rate > 0.0).then(|| free as f64 / rate);
    let state = state_of(used, p, rate, hold, runs_out, warn_within_s);
    let shared = input.bind == BindModel::WholeRange;
    let fails = format!(
        "{} fails with {}",
        if shared { "bind(0)" } else { "connect()" },
        model.exhaustion_error
    );
    let ports = if shared && input.destinations > 1 {
        format!("{p} usable ports, shared by every destination because the client binds before connect()")
    } else {
        format!("{p} usable ports")
    };
    let hold_phrase = crate::model::predict::hold_phrase(input, hold, model.reuse_applies);
    let sustainable = p as f64 / hold.max(f64::MIN_POSITIVE);
    let sentence = if used >= p {
        let mut t = format!(
            "Every one of the {ports} is held now ({used} in use), so {fails} until TIME_WAIT frees them"
        );
        if rate > 0.0 {
            let _ = write!(
                t,
                "; at {} conn/s each holding a port for {hold_phrase}, only {p} / {} s = {} conn/s succeed.",
                num(rate),
                num(hold),
                num(sustainable)
            );
        } else {
            let _ = write!(t, "; no connection closed in the last {} s.", num(window_s));
        }
        t
    } else if rate <= 0.0 {
        format!(
            "No connection closed in the last {} s; {used} of the {ports} are held.",
            num(window_s)
        )
    } else if let Some(eta) = eta_s {
        format!(
            "{} conn/s each holding a port for {hold_phrase} need {} ports, but there are only {ports}, so the {free} still free run out in {free} / {} conn/s = {} s, when {fails}. After that only {p} / {} s = {} conn/s succeed.",
            num(rate),
            num(rate * hold),
            num(rate),
            num(eta),
            num(hold),
            num(sustainable)
        )
    } else {
        let mut t = model.explanation;
        if state == State::Warning {
            let _ = write!(
                t,
                " But only {free} ports are free now: at {} conn/s they last {} s if none were freed.",
                num(rate),
                num(headroom_s.unwrap_or(0.0))
            );
        }
        t
    };
    Verdict {
        hold_s: hold,
        reuse_applies: model.reuse_applies,
        eta_s,
        headroom_s,
        state,
        model: sentence,
    }
}

/// One destination's row: its rate, the model's hold and whether it runs out, its ETA and
/// state against `p` usable ports; when the range is `shared`, the range's verdict (the
/// destination runs out when the range does) with bind()'s hold and the ports bind()
/// cannot take toward it.
fn destination(
    s: &Snapshot,
    g: &GroupCounts,
    p: u64,
    warn_within_s: f64,
    shared: Option<&Verdict>,
) -> DestinationReport {
    let rate = g.rate();
    let (used, v) = match shared {
        Some(v) => (
            g.held,
            Verdict {
                hold_s: v.hold_s,
                reuse_applies: false,
                eta_s: v.eta_s,
                headroom_s: v.headroom_s,
                state: v.state,
                model: v.model.clone(),
            },
        ),
        None => {
            let input = ModelInput {
                // tcp_tw_reuse = 2: the kernel checks either end for loopback.
                loopback: g.local.is_loopback() || g.destination.ip().is_loopback(),
                ..s.input.clone()
            };
            (
                g.used,
                verdict(&input, rate, g.rate_window_s(), p, g.used, warn_within_s),
            )
        }
    };
    DestinationReport {
        destination: g.destination.to_string(),
        local: g.local.to_string(),
        time_wait: g.time_wait,
        established: g.established,
        syn_sent: g.syn_sent,
        used,
        rate,
        rate_window_s: g.rate_window_s(),
        usable_ports: p,
        hold_s: v.hold_s,
        tw_reuse_applies: v.reuse_applies,
        steady_ports: rate * v.hold_s,
        eta_s: v.eta_s,
        headroom_s: v.headroom_s,
        state: v.state,
        model: v.model,
    }
}

/// Evaluates one sample: per destination its rate, P, T, ETA and state, worst first; the
/// whole range, and whether the destinations share it. `history`: what the samples before
/// left (the ActiveOpens reading, bind before connect() seen).
pub fn evaluate(
    s: &Snapshot,
    history: &History,
    warn_within_s: f64,
    namespace: &str,
) -> WatchReport {
    let p = usable(s);
    let bind = binding(s, history.bound_recently(s.mono_s));
    let in_use = u64::from(s.ports_in_use);
    let (range_rate, range_window) = s.range.ages.measure();
    let range = bind.shared.then(|| {
        let input = ModelInput {
            bind: BindModel::WholeRange,
            destinations: u32::try_from(s.groups.len()).unwrap_or(u32::MAX).max(1),
            ..s.input.clone()
        };
        verdict(&input, range_rate, range_window, p, in_use, warn_within_s)
    });
    let mut destinations: Vec<DestinationReport> = s
        .groups
        .iter()
        .map(|g| destination(s, g, p, warn_within_s, range.as_ref()))
        .collect();
    destinations.sort_by(|a, b| {
        b.state
            .cmp(&a.state)
            .then(
                a.eta_s
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.eta_s.unwrap_or(f64::INFINITY)),
            )
            .then(b.used.cmp(&a.used))
            .then(a.destination.cmp(&b.destination))
    });
    let active_opens_rate = history.opens.and_then(|(t0, a0)| {
        let dt = s.mono_s - t0;
        let d = s.active_opens?.checked_sub(a0)?;
        (dt > 0.0).then(|| d as f64 / dt)
    });
    let conntrack = s.conntrack.as_ref().map(|now| {
        let before = history.conntrack.as_ref().map(|(t, c)| (c, s.mono_s - t));
        conntrack::report(now, before, warn_within_s)
    });
    let state = destinations
        .iter()
        .map(|d| d.state)
        .chain(range.as_ref().map(|v| v.state))
        .chain(conntrack.as_ref().map(|c| c.state))
        .max()
        .unwrap_or(State::Ok);
    let whole_range = WholeRange {
        shared: bind.shared,
        evidence: bind.evidence,
        sockets: s.range.sockets,
        ports_in_use: in_use,
        shared_port_sockets: bind.shared_port_sockets,
        odd_offset_excess: bind.odd_offset_excess,
        usable_ports: p,
        rate: range_rate,
        rate_window_s: range_window,
        hold_s: s.input.time_wait_s,
        eta_s: range.as_ref().and_then(|v| v.eta_s),
        state: range.as_ref().map(|v| v.state),
        model: range.map(|v| v.model),
    };
    WatchReport {
        time: s.unix_s,
        namespace: namespace.to_string(),
        port_range: s.input.port_range.map(|r| r.to_string()),
        reserved_ports: s.input.reserved,
        listening_ports_in_range: s.listening_in_range,
        tw_reuse: s.input.tw_reuse.value(),
        tw_reuse_delay_s: s.input.tw_reuse_delay_s,
        active_opens_rate,
        active_opens: s.active_opens,
        state,
        destinations,
        other_destinations: s.other_destinations,
        time_wait_client: s.time_wait_sides[0],
        time_wait_server: s.time_wait_sides[1],
        whole_range,
        conntrack,
        source: s.source.to_string(),
    }
}

/// One namespace's sample with its labels (`--all-netns`): in JSON the report's fields and a
/// `labels` object.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceReport {
    /// What is known of the namespace.
    pub labels: netns::NsLabels,
    /// Its sample.
    #[serde(flatten)]
    pub report: WatchReport,
}

impl NamespaceReport {
    /// The order namespaces are shown in: those with destinations first, then the worst
    /// state, then the host's, then by inode.
    pub fn order(a: &NamespaceReport, b: &NamespaceReport) -> std::cmp::Ordering {
        a.report
            .destinations
            .is_empty()
            .cmp(&b.report.destinations.is_empty())
            .then(b.report.state.cmp(&a.report.state))
            .then(b.labels.host.cmp(&a.labels.host))
            .then(a.labels.inode.cmp(&b.labels.inode))
    }
}

/// Checks the flags that clap cannot (exit 2 before anything is read).
pub fn validate(args: &WatchArgs) -> Result<(), WatchError> {
    if args.interval.0 < std::time::Duration::from_millis(10) {
        return Err(WatchError::Flag {
            flag: "--interval",
            given: args.interval.to_string(),
            reason: "sampling more often than every 10ms only measures the sampler; write e.g. 100ms or 1s".into(),
        });
    }
    Ok(())
}

/// How many samples to take: --once is 1, --count N, otherwise until interrupted.
fn samples_wanted(args: &WatchArgs) -> Option<u64> {
    if args.once {
        Some(1)
    } else {
        args.count
    }
}

/// Samples `source` every interval and prints each evaluated sample until `--count`, or
/// until the reader goes away (`portlab watch | head`: nothing is wrong); returns the exit
/// code of the last one (0 all ok, 1 a destination in warning or exhausted).
pub fn watch_loop(
    source: &mut dyn Source,
    args: &WatchArgs,
    namespace: &str,
    out: &mut dyn Output,
) -> anyhow::Result<u8> {
    let terminal = out.is_terminal();
    let wanted = samples_wanted(args);
    let mut history = History::default();
    if wanted == Some(1) {
        // One sample has no counter delta of its own: read Tcp ActiveOpens one interval
        // before it (one /proc/net/snmp read, no socket listing), so that its rate is
        // over the interval before the sample, as in a stream.
        history.opens = source.active_opens();
        if history.opens.is_some() {
            std::thread::sleep(args.interval.0);
        }
    }
    let mut taken = 0u64;
    let start = std::time::Instant::now();
    loop {
        let snap = source.snapshot()?;
        let report = evaluate(&snap, &history, args.warn_within.0.as_secs_f64(), namespace);
        let code = report.exit_code();
        let text = render::render(
            &report,
            args.format,
            args.once || wanted == Some(1),
            terminal,
            usize::from(args.max_destinations),
        );
        out.write_all(text.as_bytes()).and_then(|()| out.flush())?;
        if out.closed() {
            return Ok(code);
        }
        history.record(&snap);
        taken += 1;
        if wanted.is_some_and(|n| taken >= n) {
            return Ok(code);
        }
        // Absolute schedule: sample k at start + k x interval, so the samples do not drift.
        let next = start + args.interval.0.mul_f64(taken as f64);
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Enters the namespace (on its own thread), samples it and prints each sample on `out`, or
/// serves them (`--listen`); the flags are [`validate`]d first by the command.
pub fn sample(args: &WatchArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    #[cfg(target_os = "linux")]
    {
        if args.all_netns {
            return allns::run(args, out);
        }
        linux::run(args, out)
    }
    #[cfg(not(target_os = "linux"))]
    {
        other::run(args, out)
    }
}

#[cfg(test)]
mod tests;
