//! summary.json: the whole run in one document, with stable key names.

use crate::collect::{ErrorStat, Exhaustion, Latency, Measured};
use crate::model::Prediction;
use crate::observe::watch::TimewaitSummary;
use crate::plan::Scenario;
/// Defined beside the code that starts and stops the command; part of the summary.
pub use crate::target::exec::ExecSummary;
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
    pub client_exec: Option<crate::report::client_exec::ClientExecSummary>,
    /// `--shard I/N`: which shard this run was, and when it began against `--start-at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardSummary>,
    /// `portlab merge`: each shard as it ran, the earliest exhaustion, the start spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<super::merge::MergeSummary>,
    /// Results files a write failed on during the run (a disk full for a moment), each with
    /// the time from which it lacks rows and the error: the run's results are incomplete
    /// (exit 3), and `portlab merge` refuses a timeline that does not add up. Absent when
    /// every write succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_files: Vec<String>,
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
        aborted: u64,
        server: Option<ServerSummary>,
    ) -> Summary {
        Summary {
            scenario: plan.name.clone().unwrap_or_default(),
            description: plan.description.clone(),
            portlab_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            duration_s,
            load_duration_s,
            interrupted,
            target,
            attempts: m.attempts,
            connected: m.connected,
            completed: m.completed,
            failed: m.failed,
            dropped: m.dropped,
            aborted,
            reconnects: m.reconnects,
            achieved_rate: if load_duration_s > 0.0 {
                m.attempts as f64 / load_duration_s
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
        }
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
