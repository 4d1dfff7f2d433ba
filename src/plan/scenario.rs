//! The scenario file: TOML, every key optional, unknown keys refused. Flags are turned into a
//! `Scenario` too (see `cli`), and `overlay` puts them on top of the file's, so a key and its
//! flag can never mean two different things.

use super::values::{BindMode, Bytes, CloseMode, Expect, PayloadKind, Rate, ServerClose, Span};
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
    pub lab: Option<crate::lab::LabConfig>,
    /// What the run must show for CI: each key becomes a check of the verdict.
    #[serde(default, skip_serializing_if = "is_default")]
    pub expect: ExpectSection,
}

/// `[load]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// `--rate`: starts per second (open loop) or "max" (closed loop).
    pub rate: Option<Rate>,
    /// `--concurrency`: workers of the closed loop (rate = "max").
    pub concurrency: Option<u32>,
    /// `--threads`: client threads, each running its share of the workers (default: one per
    /// core).
    pub threads: Option<u32>,
    /// `--duration`: how long starts are issued.
    pub duration: Option<Span>,
    /// `--count`: total starts.
    pub count: Option<u64>,
    /// `--max-in-flight`: a start due while this many are in flight is dropped and counted.
    pub max_in_flight: Option<u32>,
    /// `--connect-timeout`: a connect() still pending after this fails as TIMEOUT.
    pub connect_timeout: Option<Span>,
    /// `--exchange-timeout`: the exchange after connect must finish within this.
    pub exchange_timeout: Option<Span>,
    /// `--drain-timeout`: after the last start (or Ctrl-C), how long in-flight ones may finish.
    pub drain_timeout: Option<Span>,
    /// `--interval`: timeline and progress granularity.
    pub interval: Option<Span>,
}

/// `[client]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// `--close`: active, passive, reset, linger=N.
    pub close: Option<CloseMode>,
    /// `--pool`: persistent connections carrying all requests (0 = one per request).
    pub pool: Option<u32>,
    /// `--reuse-addr`: SO_REUSEADDR on client sockets.
    pub reuse_addr: Option<bool>,
    /// `--nodelay`: TCP_NODELAY on client sockets.
    pub nodelay: Option<bool>,
    /// `--source`: local addresses used round robin.
    pub source: Option<Vec<String>>,
    /// `--bind`: auto, any-port, no-port, range=LO-HI.
    pub bind: Option<BindMode>,
    /// `--client-exec`: the user's own client command, run instead of portlab's (src/client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// `--client-sample`: how often the client's namespace is sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Span>,
    /// `--client-stop-after`: stop the client this long after its first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<Span>,
    /// `--failure-pattern`: a regex for the client's own failure line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_pattern: Option<String>,
}

/// `[payload]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadSection {
    /// `--payload`: none, tcp, http.
    pub kind: Option<PayloadKind>,
    /// `--send`: bytes the client sends (tcp).
    pub send: Option<Bytes>,
    /// `--expect`: bytes the client reads back, or eof (tcp).
    pub expect: Option<Expect>,
    /// `--response`: bytes the embedded server replies with (tcp).
    pub response: Option<Bytes>,
    /// `--path`: request path (http).
    pub path: Option<String>,
}

/// `[target]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// `--target`: HOST:PORT of an external server; absent = the embedded server.
    pub address: Option<String>,
    /// `--listen`: the embedded server's address.
    pub listen: Option<String>,
    /// `--backlog`: the embedded server's listen() backlog.
    pub backlog: Option<u32>,
    /// `--accept-delay`: the embedded server waits this long before each accept().
    pub accept_delay: Option<Span>,
    /// `--server-close`: first, after-client, reset (default follows client.close).
    pub server_close: Option<ServerClose>,
    /// `--destinations`: the embedded server listens on this many ports and the client spreads
    /// its connections over them round robin (connect() shares a local port across
    /// destinations, bind(0) does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<u32>,
    /// `--target-exec`: a command that serves `address` (e.g. nginx), started by portlab
    /// (inside the lab when there is one) before the run and stopped after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// `--ready-timeout`: how long the `exec` command may take to accept on `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<Span>,
}

/// `[expect]`: the user's own expectations. Each key set becomes a verdict check named
/// `expect.<key>`; a failed one makes the run exit 1.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSection {
    /// `--expect-exhaustion`: the run must (true) or must not (false) run out of ports.
    pub exhaustion: Option<bool>,
    /// `--max-error-rate`: failed / attempts, at most (0..1).
    pub max_error_rate: Option<f64>,
    /// `--max-connect-p99-ms`: p99 connect latency, at most, in milliseconds.
    pub max_connect_p99_ms: Option<f64>,
    /// `--min-success-rate`: completed / attempts, at least (0..1).
    pub min_success_rate: Option<f64>,
    /// `--expect-error`: error kinds (summary.errors keys) that must each appear.
    pub errors: Option<Vec<String>>,
    /// `--min-margin`: the ports must cover at least F times what the load holds,
    /// P / (R x T) >= F (the model's `margin` R x T / P at most 1 / F), e.g. 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_margin: Option<f64>,
    /// `--model-checks`: whether the model's checks count toward the verdict (default true;
    /// false still reports them).
    pub model: Option<bool>,
    /// `--tolerance PCT`: tolerance of every model check, percent (default 5).
    pub tolerance_pct: Option<f64>,
    /// `--tolerance NAME=PCT`: tolerance of one model check, by its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<std::collections::BTreeMap<String, f64>>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `a.or(b)` field by field: the overlay's value wins where it has one.
macro_rules! overlay_fields {
    ($base:expr, $top:expr, $($f:ident),+) => {
        $( if $top.$f.is_some() { $base.$f = $top.$f; } )+
    };
}

impl Scenario {
    /// Puts `top` (usually the flags) over `self` (usually the file).
    pub fn overlay(mut self, top: Scenario) -> Scenario {
        overlay_fields!(self, top, name, description, lab);
        let (l, t) = (&mut self.load, top.load);
        overlay_fields!(
            l,
            t,
            rate,
            concurrency,
            threads,
            duration,
            count,
            max_in_flight,
            connect_timeout,
            exchange_timeout,
            drain_timeout,
            interval
        );
        let (c, t) = (&mut self.client, top.client);
        overlay_fields!(c, t, close, pool, reuse_addr, nodelay, source, bind);
        overlay_fields!(c, t, exec, sample, stop_after, failure_pattern);
        let (p, t) = (&mut self.payload, top.payload);
        overlay_fields!(p, t, kind, send, expect, response, path);
        let (g, t) = (&mut self.target, top.target);
        overlay_fields!(
            g,
            t,
            address,
            listen,
            backlog,
            accept_delay,
            server_close,
            destinations,
            exec,
            ready_timeout
        );
        let (e, t) = (&mut self.expect, top.expect);
        overlay_fields!(
            e,
            t,
            exhaustion,
            max_error_rate,
            max_connect_p99_ms,
            min_success_rate,
            min_margin,
            errors,
            model,
            tolerance_pct
        );
        // Per-check tolerances merge by name: a flag replaces the file's value for its check.
        if let Some(top) = t.tolerance {
            e.tolerance.get_or_insert_with(Default::default).extend(top);
        }
        self
    }
}
