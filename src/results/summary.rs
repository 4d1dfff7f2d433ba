//! summary.json: the whole run in one document, with stable key names.

use crate::collect::{Counts, ErrorStat, Exhaustion, Latency, Measured};
use crate::model::Prediction;
use crate::observe::kernel_timeline::TimewaitSummary;
use crate::plan::Scenario;
use crate::server::exec::ExecSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the embedded server counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// Its address.
    pub address: String,
    /// Connections accepted.
    pub accepted: u64,
    /// accept() failures.
    pub accept_errors: u64,
    /// Connections that ended in an error on the server's side.
    pub connection_errors: u64,
    /// Connections the server closed first because the HTTP request asked for it
    /// (`Connection: close`, or HTTP/1.0 without keep-alive) while it would otherwise have
    /// waited for the client's close (`after-client`): their TIME_WAIT is the server's.
    /// 0 in summaries written before it.
    #[serde(default)]
    pub closed_on_request: u64,
    /// The distinct client (address, port) pairs among the connections accepted: the
    /// 4-tuples a server that closes first holds TIME_WAIT (and conntrack an entry) for.
    /// Fewer than `accepted` when the client's connect() reused a port (a 388-port range,
    /// or two threads connecting at once). Absent in summaries written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_peers: Option<u64>,
}

/// summary.json's `nat`: a NAT between the clients and the server (`lab.nat_ports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatSummary {
    /// The pool, "LO-HI".
    pub pool: String,
    /// The address every connection was masqueraded to.
    pub public_address: String,
    /// What the model says (see [`crate::model::nat`]).
    pub model: crate::model::nat::NatOutlook,
    /// SYNs the NAT could not map (its conntrack insert_failed over the run): each SYN of a
    /// connection it had no port for, and again each retransmission; it dropped them.
    pub refused: u64,
    /// Packets the NAT's conntrack dropped (its `drop` statistic).
    pub dropped: u64,
    /// The NAT's ports the server saw (distinct peers of the embedded server).
    pub ports_used: Option<u64>,
    /// The end of the first interval in which a connect took 1 s or more (a SYN
    /// retransmitted), seconds since the start; None when none did, or when the run has no
    /// timeline of its own (a merged many-client run).
    pub first_stall_s: Option<f64>,
    /// The slowest connect, seconds: 1 s or more means a SYN was retransmitted.
    pub slowest_connect_s: f64,
    /// The most connections in flight at an interval's end (0 without a timeline): with
    /// the server closing first, each holds a 4-tuple out of the server's TIME_WAIT (its
    /// SYN took that TIME_WAIT over, or a refused SYN's reset ended it).
    #[serde(default)]
    pub in_flight_max: u64,
}

impl NatSummary {
    /// One line for the text report.
    pub fn line(&self) -> String {
        let used = self.ports_used.map_or("-".to_string(), |u| u.to_string());
        let stall = match (self.slowest_connect_s >= 1.0, self.first_stall_s) {
            (false, _) => format!(
                "no connect stalled (the slowest took {:.3} s)",
                self.slowest_connect_s
            ),
            (true, Some(t)) => format!(
                "connects stalled for SYN retransmissions, up to {:.2} s, the first by {t:.1} s",
                self.slowest_connect_s
            ),
            (true, None) => format!(
                "connects stalled for SYN retransmissions, up to {:.2} s",
                self.slowest_connect_s
            ),
        };
        format!(
            "NAT: {} ports ({}) at {}, {used} used; it refused {} SYNs (conntrack insert_failed) and dropped {} packets; {stall}",
            self.model.ports, self.pool, self.public_address, self.refused, self.dropped
        )
    }

    /// The NAT's mappings at the end, one line each ("public -> destination: n"), from its
    /// conntrack table's dump.
    pub fn mappings_line(mappings: &BTreeMap<String, u64>) -> Option<String> {
        (!mappings.is_empty()).then(|| {
            let each: Vec<String> = mappings.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            format!("NAT mappings at the end: {}", each.join(", "))
        })
    }
}

/// One run. Times are seconds (`_s`), latencies microseconds (`_us`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// What it reproduces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// portlab's version.
    pub portlab_version: String,
    /// When the first start was due, UTC (RFC 3339).
    pub started_at: String,
    /// From the first start to the end of the drain, seconds.
    pub duration_s: f64,
    /// While starts were issued, seconds (the denominator of `achieved_rate`).
    pub load_duration_s: f64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Where connections went (resolved address).
    pub target: String,
    // attempts to reconnects are one `Counts` (`counts`, `set_counts`), kept as fields of
    // their own, each a top-level key, for the reason `Counts`'s doc comment gives.
    /// Starts begun.
    pub attempts: u64,
    /// Connections established.
    pub connected: u64,
    /// Attempts that ended without error.
    pub completed: u64,
    /// Attempts that ended with an error.
    pub failed: u64,
    /// Due starts never made because max in flight was reached.
    pub dropped: u64,
    /// In flight when the drain timeout ran out, abandoned.
    pub aborted: u64,
    /// Pooled connections replaced after breaking.
    pub reconnects: u64,
    /// Attempts per second over `load_duration_s`.
    pub achieved_rate: f64,
    /// Errors by OS name.
    pub errors: BTreeMap<String, ErrorStat>,
    /// The first "no local port left" error.
    pub exhaustion: Exhaustion,
    /// HTTP statuses by code (http payload).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_status: BTreeMap<String, u64>,
    /// connect() latency from the scheduled start (coordinated-omission corrected), µs.
    pub connect_latency_us: Latency,
    /// connect() latency from the actual start, µs.
    pub connect_latency_actual_us: Latency,
    /// Exchange latency after connect, µs.
    pub exchange_latency_us: Latency,
    /// Whole request from the scheduled start to the reply, µs.
    pub request_latency_us: Latency,
    /// Lateness of each start against its schedule, µs.
    pub schedule_lag_us: Latency,
    /// The embedded server's counters (absent with an external target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSummary>,
    /// The resolved plan (every key set).
    pub plan: Scenario,
    /// TIME_WAIT on each side (where the kernel could be observed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timewait: Option<TimewaitSummary>,
    /// Kernel TCP counter changes over the run, by their /proc/net/snmp and netstat names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<BTreeMap<String, u64>>,
    /// TIME_WAIT sockets an RST ended before their time, each giving its port back early
    /// (absent when none was seen, or when the kernel figures cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timewait_ended_early: Option<EndedEarly>,
    /// The conntrack table the lab tracked (`lab.conntrack`): counts, statistics, live
    /// entries at the end and the model's figure for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<crate::observe::conntrack::ConntrackSummary>,
    /// The lab's NAT (`lab.nat_ports`): its pool, the model's outlook and what the NAT's
    /// own conntrack statistics and the clients' connects showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatSummary>,
    /// (InSegs + OutSegs) / completed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_per_request: Option<f64>,
    /// Which figures are this run's alone and which include other traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<String>,
    /// The lab: mode, topology, effective settings read back, time scale.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_keys"
    )]
    pub lab: Option<LabSummary>,
    /// What the model predicted for this plan and these settings.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted_keys"
    )]
    pub prediction: Option<Prediction>,
    /// The prediction against the measurement, check by check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<super::verdict::Verdict>,
    /// Times and rates in modelled seconds, for a time-scaled lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelled: Option<Modelled>,
    /// The server command portlab started and stopped (`[target] exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_exec: Option<ExecSummary>,
    /// The user's own client (`--client-exec`): what it did and what the samples showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_exec: Option<super::client_exec::ClientExecSummary>,
    /// `--shard I/N`: which shard this run was, and when it began against `--start-at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardSummary>,
    /// `portlab merge`: each shard as it ran, the earliest exhaustion, the start spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeSummary>,
    /// Results files a write failed on during the run (a disk full for a moment), each with
    /// the time from which it lacks rows and the error: the run's results are incomplete
    /// (exit 3), and `portlab merge` refuses a timeline that does not add up. Absent when
    /// every write succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_files: Vec<String>,
}

/// TIME_WAIT sockets ended early (`timewait_ended_early` in summary.json).
///
/// Linux ends a TIME_WAIT socket before its 60 s only when an RST arrives in its window and
/// `tcp_rfc1337` is 0, the default ("TIME_WAIT assassination", RFC 1337;
/// tcp_minisocks.c, `tcp_timewait_state_process`). Under load a segment the server sent
/// before its FIN can arrive after it: the TIME_WAIT socket answers it with an ACK, the server,
/// already closed, answers that with an RST, and the RST ends the TIME_WAIT. Its port is free
/// again, so one more connection than the port range holds can succeed.
///
/// No kernel counter counts exactly these: TcpExt TWKilled counts sockets scheduled with a
/// short timeout, not killed ones (inet_timewait_sock.c). Two counts bound them from above: the
/// RSTs the namespace sent other than those that aborted a connection (Tcp OutRsts less Tcp
/// EstabResets: an abort of an ESTABLISHED or CLOSE_WAIT socket resets a peer that is not in
/// TIME_WAIT, such as a client in FIN_WAIT2 whose connection a server never accepted) and the
/// TIME_WAIT sockets that vanished (TcpExt TW entered, less TWRecycled reused, less those still
/// there at the end).
/// The smaller is reported; in a private namespace and a run shorter than 60 s, both are
/// exact when the run's own traffic sends no other RST (measured: connected = ports + OutRsts
/// in every loaded lab run that had them, tests/it/shards.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedEarly {
    /// TIME_WAIT sockets ended early.
    pub count: u64,
    /// Which count it is (the smaller of the two).
    pub counter: EarlyEndCounter,
}

/// The two counts that bound the TIME_WAIT sockets ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EarlyEndCounter {
    /// Tcp OutRsts - EstabResets: the RSTs the namespace sent, less its aborts.
    #[serde(rename = "OutRsts - EstabResets", alias = "OutRsts")]
    OutRsts,
    /// TcpExt TW - TWRecycled - TIME_WAIT sockets left at the end: the ones that vanished.
    #[serde(rename = "TW - TWRecycled - left")]
    Vanished,
}

impl EarlyEndCounter {
    /// As in summary.json.
    pub const fn name(self) -> &'static str {
        match self {
            EarlyEndCounter::OutRsts => "OutRsts - EstabResets",
            EarlyEndCounter::Vanished => "TW - TWRecycled - left",
        }
    }
}

impl EndedEarly {
    /// Linux's fixed TIME_WAIT (TCP_TIMEWAIT_LEN), seconds: a socket that entered TIME_WAIT
    /// in a shorter run can only have left it early (reused, or killed).
    pub const TIME_WAIT_S: f64 = 60.0;

    /// From a private namespace's counter changes over a run of `duration_s` and the
    /// TIME_WAIT sockets left at its end (both sides). `resets_here` is false when the peer
    /// sits in another namespace (the lab's veth topology), whose RSTs these counters do not
    /// count: then only the sockets that vanished tell. None when a figure is missing, the
    /// run was long enough for TIME_WAIT to end on its own, or none ended early.
    pub fn from_kernel(
        kernel: &BTreeMap<String, u64>,
        left_at_end: u64,
        duration_s: f64,
        resets_here: bool,
    ) -> Option<EndedEarly> {
        if duration_s >= Self::TIME_WAIT_S {
            return None;
        }
        let vanished = kernel
            .get("TW")?
            .saturating_sub(*kernel.get("TWRecycled")?)
            .saturating_sub(left_at_end);
        let resets = if resets_here {
            let aborts = kernel.get("EstabResets").copied().unwrap_or(0);
            kernel.get("OutRsts")?.saturating_sub(aborts)
        } else {
            u64::MAX
        };
        let (count, counter) = if vanished < resets {
            (vanished, EarlyEndCounter::Vanished)
        } else {
            (resets, EarlyEndCounter::OutRsts)
        };
        (count > 0).then_some(EndedEarly { count, counter })
    }

    /// One line for the reports.
    pub fn line(&self) -> String {
        let (n, s) = (self.count, plural(self.count));
        format!(
            "{n} TIME_WAIT socket{s} ended early by an RST ({} = {n}; tcp_rfc1337 = 0): \
             {n} port{s} came free, so up to {n} more connection{s} than the ports hold could succeed",
            self.counter.name()
        )
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What the lab was, as the run found it (`lab` in summary.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSummary {
    /// How the namespace was had: "root" or "user" (an unprivileged user namespace).
    pub mode: String,
    /// "loopback" (one namespace) or "veth" (client and server namespaces).
    pub topology: String,
    /// The client namespace's effective sysctls, read back after writing.
    pub settings: BTreeMap<String, String>,
    /// The server namespace's, with the veth topology.
    pub server_settings: Option<BTreeMap<String, String>>,
    /// What portlab wrote, in order.
    pub written: Vec<WrittenSysctl>,
    /// Modelled seconds per lab second.
    pub time_scale: f64,
    /// The TIME_WAIT the lab emulated (time_wait / time_scale), seconds.
    pub emulated_time_wait_s: Option<f64>,
    /// What the lab could not do as asked.
    pub warnings: Vec<String>,
    /// Why the lab wrote tcp_tw_reuse = 0 when the scenario left it unset (as toward another
    /// host); absent when the scenario set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tw_reuse_note: Option<String>,
    /// A many-client lab (`lab.clients = K`): each client, the server's TIME_WAIT and its
    /// kernel memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<super::lab_clients::ClientsSummary>,
}

/// One sysctl the lab wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenSysctl {
    /// e.g. "net.ipv4.ip_local_port_range".
    pub name: String,
    /// e.g. "40000 40299", as written to /proc/sys.
    pub value: String,
}

/// Writes a section with its keys in alphabetical order, as summary.json always had them
/// (they were once built as JSON maps, which sort): byte-compatible with earlier files.
pub(crate) fn sorted_keys<T: Serialize, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde_json::to_value(v)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

/// A time-scaled lab's figures in modelled time (lab seconds x time scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modelled {
    /// Modelled seconds per lab second.
    pub time_scale: f64,
    /// Achieved rate in modelled time (lab rate / time scale), per second.
    pub rate: f64,
    /// Load duration in modelled seconds.
    pub duration_s: f64,
    /// First exhaustion error in modelled seconds.
    pub first_error_s: Option<f64>,
}

impl Summary {
    /// The summary of a finished (or interrupted) run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        plan: Scenario,
        started_at: String,
        target: String,
        m: &Measured,
        duration_s: f64,
        load_duration_s: f64,
        interrupted: bool,
        server: Option<ServerSummary>,
    ) -> Summary {
        let mut s = Summary {
            scenario: plan.name.clone().unwrap_or_default(),
            description: plan.description.clone(),
            portlab_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            duration_s,
            load_duration_s,
            interrupted,
            target,
            // Set from `m.counts` below, by the one mapping `set_counts` holds.
            attempts: 0,
            connected: 0,
            completed: 0,
            failed: 0,
            dropped: 0,
            aborted: 0,
            reconnects: 0,
            achieved_rate: if load_duration_s > 0.0 {
                m.counts.attempts as f64 / load_duration_s
            } else {
                0.0
            },
            errors: m.errors.clone(),
            exhaustion: m.exhaustion.clone(),
            http_status: m.http_status.clone(),
            connect_latency_us: m.connect_latency,
            connect_latency_actual_us: m.connect_latency_actual,
            exchange_latency_us: m.exchange_latency,
            request_latency_us: m.request_latency,
            schedule_lag_us: m.schedule_lag,
            server,
            plan,
            timewait: None,
            kernel: None,
            timewait_ended_early: None,
            conntrack: None,
            nat: None,
            segments_per_request: None,
            observation: None,
            lab: None,
            prediction: None,
            verdict: None,
            modelled: None,
            target_exec: None,
            client_exec: None,
            shard: None,
            merge: None,
            incomplete_files: Vec::new(),
        };
        s.set_counts(m.counts);
        s
    }

    /// The run's counters.
    pub fn counts(&self) -> Counts {
        Counts {
            attempts: self.attempts,
            connected: self.connected,
            completed: self.completed,
            failed: self.failed,
            dropped: self.dropped,
            aborted: self.aborted,
            reconnects: self.reconnects,
        }
    }

    /// Sets the run's counters.
    pub fn set_counts(&mut self, c: Counts) {
        // Destructured without `..`: a counter added to [`Counts`] must get its field here.
        let Counts {
            attempts,
            connected,
            completed,
            failed,
            dropped,
            aborted,
            reconnects,
        } = c;
        (self.attempts, self.connected, self.completed, self.failed) =
            (attempts, connected, completed, failed);
        (self.dropped, self.aborted, self.reconnects) = (dropped, aborted, reconnects);
    }

    /// The latency rows every format shows, with their labels.
    pub fn latency_rows(&self) -> [(&'static str, &Latency); 5] {
        [
            ("connect (from schedule)", &self.connect_latency_us),
            ("connect (from start)", &self.connect_latency_actual_us),
            ("exchange", &self.exchange_latency_us),
            ("request (from schedule)", &self.request_latency_us),
            ("schedule lag", &self.schedule_lag_us),
        ]
    }

    /// "lab: tcp_tw_reuse 0, ..." for a lab run: the value the lab used and why.
    pub fn lab_tw_reuse_line(&self) -> Option<String> {
        let lab = self.lab.as_ref()?;
        let value = lab.settings.get(crate::plan::sysctl::TW_REUSE.name)?;
        Some(match &lab.tw_reuse_note {
            Some(_) => format!(
                "lab: tcp_tw_reuse {value}, the lab's default: as toward another host (the \
                 kernel's 2 exempts loopback); tw_reuse = 2 in [lab] for that"
            ),
            None => format!("lab: tcp_tw_reuse {value}, as the scenario sets it"),
        })
    }

    /// "rate 200/s, close active, bind auto, payload none, pool 0" from the plan.
    pub fn plan_line(&self) -> String {
        let p = &self.plan;
        let or = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "rate {}, close {}, bind {}, payload {}, pool {}",
            or(p.load.rate.map(|r| r.to_string())),
            or(p.client.close.map(|c| c.to_string())),
            or(p.client.bind.map(|b| b.to_string())),
            or(p.payload.kind.map(|k| k.to_string())),
            p.client.pool.unwrap_or(0)
        )
    }
}

/// `merge` in a merged summary.json: each shard as it ran, and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeSummary {
    /// Each input, in the order given.
    pub shards: Vec<MergedShard>,
    /// The earliest first exhaustion, seconds since the merged `started_at`; null when no
    /// shard ran out of ports.
    pub earliest_exhaustion_s: Option<f64>,
    /// Which input that was (its directory).
    pub earliest_exhaustion_dir: Option<String>,
    /// The spread of the shards' actual starts (latest `started_at` minus earliest), seconds:
    /// how far apart their clocks and schedules began.
    pub start_spread_s: f64,
    /// Every shard's verdict passed (a shard without a verdict does not count against it).
    pub pass: bool,
}

/// One merged input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Its results directory.
    pub dir: String,
    /// `shard.index`/`shard.count`, when it was run with --shard.
    pub shard: Option<String>,
    /// Its `started_at`.
    pub started_at: String,
    /// Its start after the earliest one, seconds.
    pub offset_s: f64,
    /// Its actual start against the `--start-at` it was given, seconds (its clock's skew
    /// plus its lateness); null without --start-at.
    pub skew_s: Option<f64>,
    /// Its attempts: the one count each shard's line shows (all of them, summed, are the
    /// merged summary's own), so not a whole [`Counts`].
    pub attempts: u64,
    /// Its first exhaustion, seconds since its own start.
    pub first_exhaustion_s: Option<f64>,
    /// What its model predicted for the first error (its own ports at its own rate R / N).
    pub predicted_first_error_s: Option<f64>,
    /// Its verdict (null when it had none).
    pub pass: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(out_rsts: u64, tw: u64, recycled: u64) -> BTreeMap<String, u64> {
        [("OutRsts", out_rsts), ("TW", tw), ("TWRecycled", recycled)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn counts_are_top_level_keys_each_its_own_in_order() {
        let counts = Counts {
            attempts: 1,
            connected: 2,
            completed: 3,
            failed: 4,
            dropped: 5,
            aborted: 6,
            reconnects: 7,
        };
        let m = Measured {
            counts,
            ..Measured::empty()
        };
        let s = Summary::new(
            Scenario::default(),
            String::new(),
            String::new(),
            &m,
            1.0,
            1.0,
            false,
            None,
        );
        assert_eq!(s.counts(), counts);
        let json = serde_json::to_string(&s).unwrap();
        let keys = [
            "attempts",
            "connected",
            "completed",
            "failed",
            "dropped",
            "aborted",
            "reconnects",
        ];
        let at: Vec<usize> = keys
            .iter()
            .zip(1..)
            .map(|(k, n)| {
                let kv = format!("\"{k}\":{n},");
                json.find(&kv).unwrap_or_else(|| panic!("{kv} in {json}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "in order: {json}");
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back.counts(), counts);
    }

    #[test]
    fn time_wait_ended_early_is_the_smaller_of_the_rsts_and_the_sockets_that_vanished() {
        // A loaded lab shard (measured): 102 entered TIME_WAIT, 100 left, 2 RSTs sent.
        let e = EndedEarly::from_kernel(&kernel(2, 102, 0), 100, 3.1, true).unwrap();
        assert_eq!((e.count, e.counter), (2, EarlyEndCounter::OutRsts));
        // More RSTs than sockets gone (resets of other connections): the sockets bound it.
        let e = EndedEarly::from_kernel(&kernel(9, 102, 0), 100, 3.1, true).unwrap();
        assert_eq!((e.count, e.counter), (2, EarlyEndCounter::Vanished));
        // Reused ones (tcp_tw_reuse) are not ended early.
        let e = EndedEarly::from_kernel(&kernel(9, 150, 40), 100, 3.1, true).unwrap();
        assert_eq!(e.count, 9);
        assert!(EndedEarly::from_kernel(&kernel(9, 140, 40), 100, 3.1, true).is_none());
        // RSTs that aborted connections (a listener closed with clients in FIN_WAIT2 in its
        // queue: 6,935 RSTs, 6,935 EstabResets, as many FIN_WAIT2 mini-sockets gone) ended
        // no TIME_WAIT.
        let mut aborted = kernel(6935, 28232, 0);
        aborted.insert("EstabResets".into(), 6935);
        assert!(EndedEarly::from_kernel(&aborted, 21297, 3.1, true).is_none());
        aborted.insert("EstabResets".into(), 6930);
        let e = EndedEarly::from_kernel(&aborted, 21297, 3.1, true).unwrap();
        assert_eq!((e.count, e.counter), (5, EarlyEndCounter::OutRsts));
        // Over veth the RSTs are the other namespace's: only the sockets that vanished tell.
        let e = EndedEarly::from_kernel(&kernel(0, 103, 0), 100, 3.1, false).unwrap();
        assert_eq!((e.count, e.counter), (3, EarlyEndCounter::Vanished));
        // Nothing ended early, a run long enough for TIME_WAIT to end on its own, a figure
        // missing: nothing said.
        assert!(EndedEarly::from_kernel(&kernel(0, 102, 0), 100, 3.1, true).is_none());
        assert!(EndedEarly::from_kernel(&kernel(2, 102, 0), 100, 60.0, true).is_none());
        let mut partial = kernel(2, 102, 0);
        partial.remove("TWRecycled");
        assert!(EndedEarly::from_kernel(&partial, 100, 3.1, true).is_none());
    }

    #[test]
    fn the_line_says_how_many_which_counter_and_what_it_did() {
        let one = EndedEarly {
            count: 1,
            counter: EarlyEndCounter::OutRsts,
        };
        assert_eq!(
            one.line(),
            "1 TIME_WAIT socket ended early by an RST (OutRsts - EstabResets = 1; tcp_rfc1337 = 0): 1 port came free, so up to 1 more connection than the ports hold could succeed"
        );
        let json = serde_json::to_value(EndedEarly {
            count: 2,
            counter: EarlyEndCounter::Vanished,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"count": 2, "counter": "TW - TWRecycled - left"})
        );
    }
}
