//! `[client]`: how each connection is opened and closed; resolved and checked here.

use super::bounds::{self, DESCRIPTORS, MAX_LINGER_S, MAX_WORKERS};
use super::{invalid, BindMode, Client, CloseMode, PlanError};
use super::{PortRange, Span};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

super::scenario::section! {
    /// `[client]`: how each connection is opened and closed (flags under "Client").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ClientSection in "client" {
        /// Who closes: active (client first: client TIME_WAIT), passive (server first: server
        /// TIME_WAIT), reset (SO_LINGER 0: RST, no TIME_WAIT), linger=N [key: client.close;
        /// default active].
        #[arg(long, value_name = "MODE")]
        pub close: Option<CloseMode>
            where v => match v {
                Some(CloseMode::Linger(n)) => {
                    bounds::range(Some(*n), 0, MAX_LINGER_S, " seconds of linger")
                }
                _ => Ok(()),
            },
        /// N persistent connections carry all requests; 0 = one connection per request
        /// [key: client.pool; default 0].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub pool: Option<u32>
            where v => bounds::range(v.filter(|n| *n > 0), 0, MAX_WORKERS, DESCRIPTORS),
        /// SO_REUSEADDR on client sockets [key: client.reuse_addr].
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub reuse_addr: Option<bool>,
        /// TCP_NODELAY on client sockets [key: client.nodelay].
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        pub nodelay: Option<bool>,
        /// Local address(es), round robin; repeat or comma-separate [key: client.source].
        #[arg(long, value_delimiter = ',', value_name = "IP")]
        pub source: Option<Vec<String>>,
        /// Port choice: auto (connect() picks, shared across destinations), any-port (bind(0)
        /// first: exclusive across destinations), no-port (IP_BIND_ADDRESS_NO_PORT, Linux),
        /// range=LO-HI (portlab binds LO..HI in order, like MaxUserPort) [key: client.bind;
        /// default auto].
        #[arg(long, value_name = "MODE")]
        pub bind: Option<BindMode>,
        /// Ports this client's sockets may be given, LO-HI: a per-socket IP_LOCAL_PORT_RANGE
        /// (Linux 6.3+) within the system's ip_local_port_range, for connect() and bind(0); not
        /// with --bind range= [key: client.local_port_range].
        #[arg(long, value_name = "LO-HI")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub local_port_range: Option<PortRange>,
        /// Your own client instead of portlab's: a command run by `sh -c` in the client's
        /// namespace with PORTLAB_TARGET=host:port, PORTLAB_TARGET_HOST, PORTLAB_TARGET_PORT
        /// and PORTLAB_RATE set; portlab sends nothing itself, samples the sockets and reads
        /// the client's output for its failure (src/client) [key: client.exec].
        #[arg(id = "client_exec", long = "client-exec", value_name = "COMMAND")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exec: Option<String>,
        /// How often the client's namespace is sampled with --client-exec
        /// [key: client.sample; default 100ms].
        #[arg(long = "client-sample", allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sample: Option<Span>,
        /// Stop the --client-exec client this long after its first recognised failure
        /// (SIGTERM, then SIGKILL) [key: client.stop_after; default: at --duration or when it
        /// exits].
        #[arg(long = "client-stop-after", allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stop_after: Option<Span>,
        /// A regular expression for your client's own failure line, besides the built-in
        /// Java, Python, Go, Node, .NET, libpq and curl signatures
        /// [key: client.failure_pattern].
        #[arg(long = "failure-pattern", value_name = "REGEX")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub failure_pattern: Option<String>,
    }
}

/// `[client]` with its defaults filled in.
pub(super) fn resolve(c: &ClientSection) -> Result<Client, PlanError> {
    let pool = c.pool.unwrap_or(0);
    let close = c.close.unwrap_or(CloseMode::Active);
    let sources = c
        .source
        .iter()
        .flatten()
        .map(|text| {
            text.trim().parse::<IpAddr>().map_err(|_| {
                invalid(
                    "client.source",
                    "--source",
                    format!("'{text}' is not an IP address; write e.g. 127.0.0.2"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bind = c.bind.unwrap_or(BindMode::Auto);
    if bind == BindMode::NoPort && !cfg!(target_os = "linux") {
        return Err(invalid(
            "client.bind",
            "--bind",
            "no-port uses IP_BIND_ADDRESS_NO_PORT, which only Linux has; use auto or any-port",
        ));
    }
    if let Some(r) = c.local_port_range {
        if !cfg!(target_os = "linux") {
            return Err(invalid("client.local_port_range", "--local-port-range", format!(
                "{r}: a per-socket port range is IP_LOCAL_PORT_RANGE, which only Linux (6.3+) has; drop it"
            )));
        }
        if matches!(bind, BindMode::Range(..)) {
            return Err(invalid("client.local_port_range", "--local-port-range", format!(
                "{r} limits the ports the kernel picks, but bind = {bind} has portlab pick them: drop one of the two"
            )));
        }
    }
    Ok(Client {
        close,
        pool,
        reuse_addr: c.reuse_addr.unwrap_or(false),
        nodelay: c.nodelay.unwrap_or(false),
        sources,
        bind,
        local_port_range: c.local_port_range,
    })
}

/// `[client]` as plan.toml writes it, every default filled in, `exec` its command keys.
/// Both structs are taken apart field by field, so a key added to either is a compile error
/// here until it is written.
pub(super) fn written(c: &Client, exec: Option<&super::client_exec::ClientExec>) -> ClientSection {
    let Client {
        close,
        pool,
        reuse_addr,
        nodelay,
        sources,
        bind,
        local_port_range,
    } = c;
    ClientSection {
        close: Some(*close),
        pool: Some(*pool),
        reuse_addr: Some(*reuse_addr),
        nodelay: Some(*nodelay),
        source: Some(sources.iter().map(|a| a.to_string()).collect()),
        bind: Some(*bind),
        local_port_range: *local_port_range,
        exec: exec.map(|x| x.command.clone()),
        sample: exec.map(|x| Span(x.sample)),
        stop_after: exec.and_then(|x| x.stop_after.map(Span)),
        failure_pattern: exec.and_then(|x| x.failure_pattern.clone()),
    }
}
