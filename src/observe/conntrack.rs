//! Connection tracking as a namespace's kernel sees it: how many entries the table holds,
//! how many of them are still alive, in which TCP state and toward which destination, and
//! the table's own statistics (insert_failed, drop, early_drop).
//!
//! Two counts, because they differ: `nf_conntrack_count` is the number the kernel compares
//! with `nf_conntrack_max` before it allocates an entry, and it includes entries whose
//! timeout has passed but which the garbage collector (a worker that runs every 1 to 60 s,
//! adapting to the entries' timeouts) has not removed yet; a ctnetlink dump walks the table
//! and removes the expired entries it meets, so the entries it lists are the live ones.
//! Measured here: a namespace tracking 120 connections/s with a 3 s TIME_WAIT timeout
//! counted 1,204 entries after 10 s, about 360 of them alive.
//!
//! This file reads the bytes (portable, tested anywhere); `conntrack_linux.rs` reads the
//! kernel.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The conntrack statistics of a namespace, summed over its CPUs
/// (/proc/net/stat/nf_conntrack, or `conntrack -S`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtStats {
    /// `entries`: nf_conntrack_count (the same on every CPU's row).
    pub entries: u64,
    /// Every other column by its name (found, insert, insert_failed, drop, early_drop, ...),
    /// summed over the CPUs. The columns differ between kernels, so they are read by name.
    pub counters: BTreeMap<String, u64>,
}

impl CtStats {
    /// A counter by name, 0 when this kernel has no such column.
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// Parses /proc/net/stat/nf_conntrack: a header line of column names, then one row per CPU
/// of hexadecimal values. None when the header has no `entries` column or a row does not
/// parse.
pub fn parse_stat(text: &str) -> Option<CtStats> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    names.iter().position(|n| *n == "entries")?;
    let mut stats = CtStats::default();
    for row in lines {
        let values: Vec<&str> = row.split_whitespace().collect();
        if values.len() != names.len() {
            return None;
        }
        for (name, v) in names.iter().zip(values) {
            let v = u64::from_str_radix(v, 16).ok()?;
            if *name == "entries" {
                stats.entries = v;
            } else {
                *stats.counters.entry((*name).to_string()).or_default() += v;
            }
        }
    }
    Some(stats)
}

/// The TCP states of conntrack (include/uapi/linux/netfilter/nf_conntrack_tcp.h), which are
/// not the socket states: TIME_WAIT here lasts `nf_conntrack_tcp_timeout_time_wait` (120 s
/// by default) whichever side closed first.
pub const CT_TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// One entry of a ctnetlink dump: its original direction, its TCP state, and the reply
/// direction's destination (after a source NAT, the address and port the NAT chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEntry {
    /// Layer-4 protocol number (6 for TCP).
    pub proto: u8,
    /// The original direction's source and destination.
    pub orig_src: SocketAddr,
    pub orig_dst: SocketAddr,
    /// The reply direction's destination: equal to `orig_src` unless a NAT rewrote it.
    pub reply_dst: SocketAddr,
    /// The TCP conntrack state (an index of [`CT_TCP_STATES`]); None for other protocols.
    pub tcp_state: Option<u8>,
    /// Seconds left before the entry expires.
    pub timeout_s: Option<u32>,
}

impl CtEntry {
    /// Whether a source NAT rewrote this entry's source (address or port).
    pub fn source_nat(&self) -> bool {
        self.reply_dst != self.orig_src
    }

    /// Whether its TCP connection has closed (conntrack TIME_WAIT or CLOSE): a NAT hands
    /// such an entry's mapping to the next connection that needs it.
    pub fn closed(&self) -> bool {
        self.tcp_state
            .and_then(|s| CT_TCP_STATES.get(usize::from(s)))
            .is_some_and(|name| matches!(*name, "TIME_WAIT" | "CLOSE"))
    }
}

/// A source NAT's mappings toward one destination from one public address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatCount {
    /// Of connections not yet closed: each holds one of the NAT's ports.
    pub open: u64,
    /// Every mapping, closed connections' included.
    pub all: u64,
}

// Attribute numbers of include/uapi/linux/netfilter/nfnetlink_conntrack.h.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
/// The flag bits of nla_type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The attributes of a netlink payload, as (type, value) pairs.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let ty = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some((ty, value))
    })
}

fn find(data: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(data).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn ip(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

/// A tuple (CTA_TUPLE_ORIG or CTA_TUPLE_REPLY): protocol, source, destination.
fn tuple(data: &[u8]) -> Option<(u8, SocketAddr, SocketAddr)> {
    let ips = find(data, CTA_TUPLE_IP)?;
    let (src, dst) = match (find(ips, CTA_IP_V4_SRC), find(ips, CTA_IP_V4_DST)) {
        (Some(s), Some(d)) => (ip(s)?, ip(d)?),
        _ => (
            ip(find(ips, CTA_IP_V6_SRC)?)?,
            ip(find(ips, CTA_IP_V6_DST)?)?,
        ),
    };
    let l4 = find(data, CTA_TUPLE_PROTO)?;
    let proto = *find(l4, CTA_PROTO_NUM)?.first()?;
    let sport = find(l4, CTA_PROTO_SRC_PORT).and_then(be16).unwrap_or(0);
    let dport = find(l4, CTA_PROTO_DST_PORT).and_then(be16).unwrap_or(0);
    Some((
        proto,
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
    ))
}

/// Parses one ctnetlink entry message's payload (`struct nfgenmsg`, 4 bytes, then the
/// attributes). None when the tuples are missing or malformed.
pub fn parse_entry(payload: &[u8]) -> Option<CtEntry> {
    let body = payload.get(4..)?;
    let (proto, orig_src, orig_dst) = tuple(find(body, CTA_TUPLE_ORIG)?)?;
    let (_, _, reply_dst) = tuple(find(body, CTA_TUPLE_REPLY)?)?;
    let tcp_state = find(body, CTA_PROTOINFO)
        .and_then(|p| find(p, CTA_PROTOINFO_TCP))
        .and_then(|t| find(t, CTA_PROTOINFO_TCP_STATE))
        .and_then(|s| s.first().copied());
    Some(CtEntry {
        proto,
        orig_src,
        orig_dst,
        reply_dst,
        tcp_state,
        timeout_s: find(body, CTA_TIMEOUT).and_then(be32),
    })
}

/// The live entries of a dump, counted the way the reports need them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtTally {
    /// Every live entry.
    pub live: u64,
    /// TCP entries by conntrack state name.
    pub by_state: BTreeMap<&'static str, u64>,
    /// Entries by original destination.
    pub by_destination: BTreeMap<SocketAddr, u64>,
    /// Entries a source NAT rewrote, by (the address the NAT chose, destination): the
    /// mappings that share one NAT address's ports toward one destination.
    pub nat_by_destination: BTreeMap<(IpAddr, SocketAddr), NatCount>,
}

impl CtTally {
    /// Counts one entry.
    pub fn add(&mut self, e: &CtEntry) {
        self.live += 1;
        if let Some(name) = e.tcp_state.and_then(|s| CT_TCP_STATES.get(usize::from(s))) {
            *self.by_state.entry(name).or_default() += 1;
        }
        *self.by_destination.entry(e.orig_dst).or_default() += 1;
        self.add_nat(e);
    }

    /// Counts one entry's NAT mapping only, when a source NAT rewrote it (what `watch`
    /// needs of each entry of its dumps besides the TIME_WAIT ages).
    pub fn add_nat(&mut self, e: &CtEntry) {
        if e.source_nat() {
            let m = self
                .nat_by_destination
                .entry((e.reply_dst.ip(), e.orig_dst))
                .or_default();
            m.all += 1;
            m.open += u64::from(!e.closed());
        }
    }
}

/// A conntrack table a run samples (Linux: `conntrack_linux::CtSampler`; a script in tests).
pub trait ConntrackSource: Send {
    /// nf_conntrack_count now.
    fn count(&mut self) -> Option<u64>;
    /// What the run saw, with a dump of the live entries made now.
    fn summary(&mut self) -> ConntrackSummary;
}

/// The statistics a run reports (their changes over the run): entries found, inserted,
/// refused (insert_failed: a clash, e.g. a NAT's port already mapped), dropped (drop: a
/// packet dropped for it, e.g. a full table) and evicted early (early_drop).
pub const REPORTED_STATS: [&str; 5] = ["found", "insert", "insert_failed", "drop", "early_drop"];

/// summary.json's `conntrack`: the table of the namespace the lab tracked (the server's).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConntrackSummary {
    /// nf_conntrack_count, the most seen in one sample: what the kernel compares with
    /// nf_conntrack_max; expired entries count until the collector removes them.
    pub count_max: u64,
    /// nf_conntrack_count at the end, before the dump.
    pub count_end: Option<u64>,
    /// Live entries at the end (a ctnetlink dump, which also removes the expired ones).
    pub live_end: Option<u64>,
    /// The run's time of its last sample (the end of its drain), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_s: Option<f64>,
    /// How long after the run's last sample (the end of its drain) the live entries were
    /// dumped, seconds: the model counts the connections within one hold of that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_after_last_sample_s: Option<f64>,
    /// How long the dump took, seconds: entries expire while the kernel walks the table, so
    /// the live count lies between the model's figures at the dump's start and its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_dump_s: Option<f64>,
    /// The live entries at the end by conntrack TCP state.
    #[serde(default)]
    pub live_by_state: BTreeMap<String, u64>,
    /// Changes over the run of the [`REPORTED_STATS`].
    #[serde(default)]
    pub stats: BTreeMap<String, u64>,
    /// nf_conntrack_tcp_timeout_time_wait in that namespace, seconds.
    pub time_wait_s: Option<u64>,
    /// nf_conntrack_tcp_timeout_close, seconds.
    pub close_s: Option<u64>,
    /// nf_conntrack_max (the host's: a namespace cannot set it).
    pub max: Option<u64>,
    /// The model's live entries during the dump ([lowest, highest]): every connection the
    /// run made, when the dump ended within one hold (lifetime + the timeout of the state
    /// they closed in) of the run's start; None for a longer run (see
    /// [`ConntrackSummary::expected_live`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_live: Option<[f64; 2]>,
    /// The hold the model used, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<f64>,
    /// A source NAT's live mappings at the end by "public address -> destination" (the
    /// NAT's table, `lab.nat_ports`): empty where the namespace masquerades nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nat_mappings: BTreeMap<String, u64>,
    /// The lab's emulated full table (`lab.conntrack_max`), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated: Option<EmulatedTable>,
}

/// summary.json's `conntrack.emulated`: a conntrack table of `max` entries, emulated by an
/// nftables set in the tracked namespace because nf_conntrack_max is host-wide.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmulatedTable {
    /// Its size.
    pub max: u64,
    /// New connections it took (its `admitted` counter).
    pub admitted: Option<u64>,
    /// Packets of new connections it dropped for want of room (its `dropped` counter): each
    /// SYN, and again each retransmission.
    pub dropped: Option<u64>,
    /// The model's time of the first drop, seconds: max / R when R x the hold exceeds max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_from_s: Option<f64>,
    /// The model's admitted connections: min(attempts, max), in a run that ends within one
    /// hold of its start (no entry has expired to make room); None for a longer run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_admitted: Option<u64>,
}

impl EmulatedTable {
    /// One line for the text report.
    pub fn line(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let full = self.full_from_s.map_or(String::new(), |t| {
            format!("; the model fills it at {t:.2} s (max / R)")
        });
        format!(
            "conntrack table full (EMULATED: an nftables set of {} entries stands in for nf_conntrack_max, which a namespace cannot lower): admitted {} connections, dropped {} SYNs{full}",
            self.max,
            opt(self.admitted),
            opt(self.dropped)
        )
    }
}

/// The packets of counter `name` in `nft list` output ("counter NAME {" then
/// "packets N bytes M").
pub fn nft_counter(text: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| *l == format!("counter {name} {{"))?;
    let line = lines.next()?;
    let mut words = line.split_whitespace();
    (words.next()? == "packets").then_some(())?;
    words.next()?.parse().ok()
}

impl ConntrackSummary {
    /// One line for the text report: the live entries by state, the count's peak, the
    /// timeout, and the statistics that mean trouble when not 0.
    pub fn line(&self) -> String {
        let states: Vec<String> = self
            .live_by_state
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        format!(
            "conntrack: {} entries live at the end ({}), nf_conntrack_count peaked at {} of max {}; TIME_WAIT timeout {} s; insert_failed {}, drop {}, early_drop {}",
            opt(self.live_end),
            if states.is_empty() { "-".to_string() } else { states.join(", ") },
            self.count_max,
            opt(self.max),
            opt(self.time_wait_s),
            self.stats.get("insert_failed").copied().unwrap_or(0),
            self.stats.get("drop").copied().unwrap_or(0),
            self.stats.get("early_drop").copied().unwrap_or(0),
        )
    }

    /// The live entries expected when they were dumped, in a run whose last sample came
    /// `end_s` after its start (or at `last_sample_s` when known) and that made `connected`
    /// connections closing with a FIN (`reset`: with an RST), each open about `lifetime_s`:
    /// every one of them, when the dump ended within one hold (lifetime + the conntrack
    /// timeout of the state they closed in) of the run's start. None for a longer run: which
    /// entries are left then depends on when each connection was made, which a loaded
    /// machine moves (a lab run at 1,000/s beside other builds made 769 connections in its
    /// last second and 300 in its drain), and the run does not record that per connection.
    pub fn expected_live(
        &self,
        connected: u64,
        end_s: f64,
        lifetime_s: f64,
        reset: bool,
    ) -> Option<([f64; 2], f64)> {
        let timeout = if reset {
            self.close_s?
        } else {
            self.time_wait_s?
        } as f64;
        let hold = lifetime_s + timeout;
        let end = self.last_sample_s.unwrap_or(end_s)
            + self.live_after_last_sample_s.unwrap_or(0.0)
            + self.live_dump_s.unwrap_or(0.0);
        (end <= hold).then_some(([connected as f64; 2], hold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_and_the_model_of_a_run_shorter_than_the_hold() {
        let mut c = ConntrackSummary {
            count_max: 600,
            live_end: Some(598),
            live_by_state: [("TIME_WAIT".to_string(), 598)].into(),
            stats: [("insert_failed".to_string(), 2)].into(),
            time_wait_s: Some(120),
            close_s: Some(10),
            max: Some(262144),
            last_sample_s: Some(3.05),
            live_after_last_sample_s: Some(0.01),
            live_dump_s: Some(0.02),
            ..ConntrackSummary::default()
        };
        assert_eq!(
            c.line(),
            "conntrack: 598 entries live at the end (TIME_WAIT 598), nf_conntrack_count peaked at 600 of max 262144; TIME_WAIT timeout 120 s; insert_failed 2, drop 0, early_drop 0"
        );
        // 3.08 s from the start to the dump's end, within 120 s: every connection's entry.
        assert_eq!(
            c.expected_live(600, 3.0, 0.0, false),
            Some(([600.0; 2], 120.0))
        );
        // An RST close holds the entry for the CLOSE timeout: 10 s, still longer.
        assert_eq!(
            c.expected_live(600, 3.0, 0.0, true),
            Some(([600.0; 2], 10.0))
        );
        // A run that outlasts the hold: not modelled.
        c.time_wait_s = Some(2);
        assert_eq!(c.expected_live(600, 3.0, 0.0, false), None);
        c.time_wait_s = None;
        assert_eq!(
            c.expected_live(600, 3.0, 0.0, false),
            None,
            "timeout unknown"
        );
    }

    #[test]
    fn nft_counters_are_read_by_name() {
        // `nft list table inet portlab_ctmax` on this machine (nftables 1.1).
        let text = "table inet portlab_ctmax {\n\tcounter admitted {\n\t\tpackets 150 bytes 9000\n\t}\n\n\tcounter dropped {\n\t\tpackets 499 bytes 29940\n\t}\n}\n";
        assert_eq!(nft_counter(text, "admitted"), Some(150));
        assert_eq!(nft_counter(text, "dropped"), Some(499));
        assert_eq!(nft_counter(text, "other"), None);
        assert_eq!(nft_counter("counter x {\n}\n", "x"), None);
    }

    #[test]
    fn stat_rows_are_summed_by_column_name() {
        // This kernel's header (6.18); older kernels have `searched`, `delete_list`.
        let text = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
000001f4  00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000 0000009f 0000009f 00000000 00000000  00000000 00000000 00000000 00000000\n\
000001f4  00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000003 00000000  00000000 00000000 00000000 00000000\n";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.entries, 500);
        assert_eq!(s.get("found"), 3);
        assert_eq!(s.get("insert_failed"), 160);
        assert_eq!(s.get("drop"), 159);
        assert_eq!(s.get("early_drop"), 3);
        assert_eq!(s.get("no_such_column"), 0);
        assert!(
            parse_stat("found drop\n0 0\n").is_none(),
            "no entries column"
        );
        assert!(parse_stat("entries drop\n0\n").is_none(), "short row");
        assert!(parse_stat("entries drop\nzz 0\n").is_none(), "not hex");
    }

    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u16::try_from(4 + value.len()).unwrap().to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn nested(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(ty | 0x8000, &parts.concat())
    }

    fn tuple_attr(ty: u16, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        nested(
            ty,
            &[
                nested(
                    CTA_TUPLE_IP,
                    &[attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)],
                ),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[6]),
                        attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
                        attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    /// A TCP entry of a masquerading NAT, laid out as ctnetlink sends it.
    fn nat_entry(state: u8) -> Vec<u8> {
        let mut p = vec![libc_af_inet(), 0, 0, 0];
        p.extend(tuple_attr(
            CTA_TUPLE_ORIG,
            [10, 0, 0, 2],
            51000,
            [10, 1, 0, 2],
            80,
        ));
        p.extend(tuple_attr(
            CTA_TUPLE_REPLY,
            [10, 1, 0, 2],
            80,
            [10, 1, 0, 1],
            40007,
        ));
        p.extend(nested(
            CTA_PROTOINFO,
            &[nested(
                CTA_PROTOINFO_TCP,
                &[attr(CTA_PROTOINFO_TCP_STATE, &[state])],
            )],
        ));
        p.extend(attr(CTA_TIMEOUT, &117u32.to_be_bytes()));
        p
    }

    fn libc_af_inet() -> u8 {
        2
    }

    #[test]
    fn an_entry_gives_its_tuples_state_and_the_nat_s_choice() {
        let e = parse_entry(&nat_entry(7)).unwrap();
        assert_eq!(e.proto, 6);
        assert_eq!(e.orig_src, "10.0.0.2:51000".parse().unwrap());
        assert_eq!(e.orig_dst, "10.1.0.2:80".parse().unwrap());
        assert_eq!(e.reply_dst, "10.1.0.1:40007".parse().unwrap());
        assert_eq!(e.tcp_state, Some(7));
        assert_eq!(e.timeout_s, Some(117));
        assert!(e.source_nat());
        let mut t = CtTally::default();
        t.add(&e);
        t.add(&parse_entry(&nat_entry(3)).unwrap());
        assert_eq!(t.live, 2);
        assert_eq!(t.by_state["TIME_WAIT"], 1);
        assert_eq!(t.by_state["ESTABLISHED"], 1);
        let nat = ("10.1.0.1".parse().unwrap(), "10.1.0.2:80".parse().unwrap());
        // The TIME_WAIT one's mapping is free for the next connection; the other holds one.
        assert_eq!(t.nat_by_destination[&nat], NatCount { open: 1, all: 2 });
        // Cut anywhere, a message gives None or an entry, never a panic.
        let whole = nat_entry(7);
        for n in 0..whole.len() {
            let _ = parse_entry(&whole[..n]);
        }
        assert!(parse_entry(&whole[..8]).is_none());
    }
}
