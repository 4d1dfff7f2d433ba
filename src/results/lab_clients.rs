//! `lab.clients` in summary.json: a many-client lab (`--lab-clients K`) client by client,
//! the server namespace's TIME_WAIT against the model's sum over the clients, and what that
//! TIME_WAIT cost the server in kernel memory.

use serde::{Deserialize, Serialize};

use crate::observe::slab::SlabSummary;

/// `lab.clients`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientsSummary {
    /// K, the client namespaces.
    pub count: u32,
    /// The one address:port every client reached the server at.
    pub server_address: String,
    /// Each client namespace, client 0 first.
    pub clients: Vec<ClientLine>,
    /// Most TIME_WAIT sockets on the server's port seen in the server namespace in one sample.
    pub server_timewait_max: Option<u64>,
    /// The server namespace's TIME_WAIT after the run.
    pub server_timewait_end: Option<u64>,
    /// The model's server TIME_WAIT: the sum over clients of min(R_k x T, the distinct
    /// 4-tuples it reached) (model/clients.rs); 0 when the clients close first.
    pub model_server_timewait: f64,
    /// The server's TIME_WAIT at its most in kernel memory: server_timewait_max x the
    /// tw_sock_TCP object size (null when slabinfo could not be read).
    pub server_timewait_bytes: Option<u64>,
    /// The tw_sock_TCP slab over the run (host-wide: every namespace's TIME_WAIT, the
    /// clients' too), or why it could not be read.
    pub tw_slab: SlabSummary,
    /// Clients whose results are missing (the process failed before writing them), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
}

/// One client namespace.
///
/// Its three counters are copied from the client's summary.json for the client's line; they
/// are not a [`Counts`](crate::collect::Counts), which would add the other four to
/// `lab.clients.clients` or need `#[serde(flatten)]` (see `Counts`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientLine {
    /// k, from 0 (its shard k/K).
    pub index: u32,
    /// Its address (198.18.0.(10 + k)).
    pub address: String,
    /// Its ip_local_port_range, as its namespace holds it.
    pub port_range: Option<String>,
    /// P: the ports it may use toward the one server address:port (its own model's).
    pub ports: Option<u64>,
    /// The distinct 4-tuples it reaches toward the server when the server closes first
    /// (Linux's connect() cycles through the floor(P / 2) ports of one parity).
    pub tuples: Option<f64>,
    /// Its results directory.
    pub dir: String,
    /// How its process ended (exit code, or the signal).
    pub ended: String,
    /// Its attempts, connections and failures.
    pub attempts: u64,
    /// Connections it made.
    pub connected: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Its first port exhaustion, seconds since its own start.
    pub first_exhaustion_s: Option<f64>,
    /// Its model's first error: its P at its own rate R / K.
    pub predicted_first_error_s: Option<f64>,
    /// Most TIME_WAIT sockets toward the server in its namespace.
    pub timewait_max: Option<u64>,
    /// Its share of the model's server TIME_WAIT.
    pub model_server_timewait: f64,
}
