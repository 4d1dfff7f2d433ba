//! What a `--client-exec` run reports: summary.json's `client_exec` (its text lines are the
//! text report's, `report::text::client_exec`). The verdict's checks on the measured rate are
//! `client::result`'s.

use serde::{Deserialize, Serialize};

/// summary.json `client_exec`. Times are seconds since the client's first connection
/// (`first_connection_s` places that after the command started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientExecSummary {
    /// The command line.
    pub command: String,
    /// Seconds from the command's start to its first connection (start-up: a JVM's ~0.4 s).
    pub first_connection_s: Option<f64>,
    /// Connections per second from the first connection until the ports were full (or its
    /// first failure, or the end): the model's R.
    pub measured_rate: Option<f64>,
    /// The rate the model is given: `measured_rate` times `port_share` when that is below
    /// 0.95, else times `client_share` when both sides hold TIME_WAIT (only the connections
    /// that leave the client holding a port cost it one).
    pub model_rate: Option<f64>,
    /// The rate it was asked for (PORTLAB_RATE), which it may not reach.
    pub requested_rate: Option<f64>,
    /// The share of its connections that went on holding a port (TIME_WAIT or ESTABLISHED)
    /// halfway through the rate window; below 1 when some end in RST or the server closes
    /// first. Absent in summaries written before it, and before 20 connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_share: Option<f64>,
    /// The lowest such share seen at any sample of the window: the share drifts with load
    /// (pgbench -C: 0.56 at half the window, 0.68 or 0.48 by the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_share_min: Option<f64>,
    /// Who holds TIME_WAIT: client, server, mixed, none.
    pub close_side: String,
    /// The client's share of the TIME_WAIT sockets (null: none at all).
    pub client_share: Option<f64>,
    /// Most TIME_WAIT sockets toward the target at once (the client's side).
    pub tw_client_max: u64,
    /// Most TIME_WAIT sockets on the target's port at once (the server's side).
    pub tw_server_max: u64,
    /// Most ESTABLISHED connections toward the target at once.
    pub established_max: u64,
    /// Whether it reuses connections (far fewer connections than requests).
    pub pooled: bool,
    /// Connections it opened (ActiveOpens).
    pub connections: u64,
    /// Requests the embedded server answered (null with another server).
    pub requests: Option<u64>,
    /// Its first recognised failure.
    pub first_failure_s: Option<f64>,
    /// That failure's line, as printed.
    pub failure_line: Option<String>,
    /// The error name that line maps to (EADDRNOTAVAIL, ...).
    pub failure_kind: Option<String>,
    /// Which signature matched (java, python, go, node, dotnet, libpq, strerror, curl,
    /// failure_pattern).
    pub failure_signature: Option<String>,
    /// Recognised failure lines in all.
    pub failures: u64,
    /// When TIME_WAIT + ESTABLISHED toward the target first reached P (one sample late at most).
    pub ports_full_s: Option<f64>,
    /// P: the ports the client had toward the target.
    pub ports: u64,
    /// Where `exhaustion.first_s` comes from: failure_line, ports_full, or none.
    pub exhaustion_source: String,
    /// "exit 1", "signal 15", or "unknown".
    pub exit_status: String,
    /// How portlab stopped it: null (it exited by itself), SIGTERM or SIGKILL.
    pub stopped_by: Option<String>,
    /// Why the run ended: exited, duration, stop_after, interrupted.
    pub ended_by: String,
    /// Its output, one line each: seconds since the command started, stream, text.
    pub log: String,
    /// The samples, one row each (client-samples.csv).
    pub samples: String,
    /// The sampling interval, seconds.
    pub sample_s: f64,
    /// When the ports ran out, seconds since the first connection, from the witness
    /// `exhaustion_source` names (the failure line, unless it came late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted_s: Option<f64>,
    /// How much later than `exhausted_s` the failure line came (printed in a final summary,
    /// or late): the line said what failed, the kernel when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_line_late_s: Option<f64>,
    /// When the model says the first failure comes, seconds since the first connection:
    /// P / R for a steady client, where its connections reach P for one that bursts or ramps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_first_error_s: Option<f64>,
    /// Where the rate comes from: server_accepts (the embedded server's accept times) or
    /// samples (ActiveOpens every `sample_s`).
    #[serde(default)]
    pub rate_source: String,
    /// The rate's window, seconds since the command started: the first connection and the
    /// last one before the ports ran out (or the last of all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_window_s: Option<[f64; 2]>,
    /// Connections in that window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_connections: Option<u64>,
    /// steady, bursty or ramping (unknown below 10 connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// Its average pace: the least-squares slope of its cumulative connections over the
    /// window (a burst's phase at the window's end does not move it, as it moves
    /// `measured_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_rate: Option<f64>,
    /// The most connections in any 0.1 s, per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rate: Option<f64>,
    /// The rate over the last third of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_rate: Option<f64>,
    /// The embedded server's destinations (ports) the client could reach.
    #[serde(default)]
    pub destinations: u32,
    /// With several destinations and plain connect(): its connections toward the target
    /// (whose P is its own) and toward all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_connections: Option<u64>,
    /// See `target_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_connections: Option<u64>,
    /// Its sockets toward different destinations never shared a local port while they
    /// filled the range: it binds port 0 before connect(), so every destination draws on
    /// one range of P ports, and the model adds their rates.
    #[serde(default)]
    pub shared_range: bool,
    /// tcp_tw_reuse lets connect() take a TIME_WAIT port toward this destination: a full
    /// count is not exhaustion, and fewer held ports than connections is reuse.
    #[serde(default)]
    pub tw_reuse_applies: bool,
    /// [from, seconds]: the client made no connection and no request for that long while it
    /// ran and before its ports ran out: the run is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<[f64; 2]>,
}
