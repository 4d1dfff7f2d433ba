//! `[target]`: where connections go (the embedded server or an external one, and a command
//! serving it); resolved and checked here.

use super::bounds::{self, MAX_BACKLOG, MAX_WAIT};
use super::Span;
use super::{
    invalid, positive, span_or, CloseMode, EmbeddedServer, PayloadSection, PlanError, ServerClose,
    Target, TargetExec, DEFAULT_READY_TIMEOUT, MAX_DESTINATIONS,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

super::scenario::section! {
    /// `[target]`: where connections go, the embedded server (default) or an external one
    /// (flags under "Target").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct TargetSection in "target" {
        /// HOST:PORT of an external server instead of the embedded one [key: target.address].
        #[arg(long = "target", value_name = "HOST:PORT")]
        pub address: Option<String>,
        /// Embedded server address [key: target.listen; default 127.0.0.1:0].
        #[arg(long, value_name = "IP:PORT")]
        pub listen: Option<String>,
        /// Embedded server listen() backlog (capped by somaxconn) [key: target.backlog;
        /// default 4096].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub backlog: Option<u32>
            where v => bounds::range(v.filter(|n| *n > 0), 1, MAX_BACKLOG, ""),
        /// Embedded server pause before each accept(), to fill its backlog
        /// [key: target.accept_delay].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub accept_delay: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
        /// Embedded server close: first, after-client, reset [key: target.server_close;
        /// default follows --close].
        #[arg(long, value_name = "HOW")]
        pub server_close: Option<ServerClose>,
        /// Embedded server ports (destinations) the client round-robins over; connect()
        /// shares a local port across destinations, bind(0) does not
        /// [key: target.destinations; default 1].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub destinations: Option<u32>,
        /// A command serving --target (e.g. "nginx -c /tmp/x/nginx.conf"), started before the
        /// run (inside the lab when there is one) and stopped after it [key: target.exec].
        #[arg(long = "target-exec", value_name = "COMMAND")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exec: Option<String>,
        /// How long the --target-exec command may take to accept on --target
        /// [key: target.ready_timeout; default 10s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ready_timeout: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
    }
}

/// `[target]` with its defaults filled in; `p` is `[payload]` (a response is the embedded
/// server's), `close` the client's close mode (the server's default follows it).
pub(super) fn resolve(
    t: &TargetSection,
    p: &PayloadSection,
    close: CloseMode,
) -> Result<(Target, Option<TargetExec>), PlanError> {
    let external = &t.address;
    let target = match &external {
        Some(addr) => {
            super::refuse_set(
                &[
                    (t.listen.is_some(), "target.listen", "--listen"),
                    (t.backlog.is_some(), "target.backlog", "--backlog"),
                    (
                        t.accept_delay.is_some(),
                        "target.accept_delay",
                        "--accept-delay",
                    ),
                    (
                        t.server_close.is_some(),
                        "target.server_close",
                        "--server-close",
                    ),
                    (p.response.is_some(), "payload.response", "--response"),
                    (
                        t.destinations.is_some(),
                        "target.destinations",
                        "--destinations",
                    ),
                ],
                || {
                    format!(
                    "configures the embedded server, but target.address ({addr}) points at an external one; drop one of them"
                )
                },
            )?;
            Target::External(addr.clone())
        }
        None => {
            let listen = t.listen.as_deref().unwrap_or("127.0.0.1:0");
            let listen = listen.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "target.listen",
                    "--listen",
                    format!("'{listen}' is not IP:PORT; write e.g. 127.0.0.1:0"),
                )
            })?;
            let server_close = t.server_close.unwrap_or(match close {
                CloseMode::Passive => ServerClose::First,
                _ => ServerClose::AfterClient,
            });
            Target::Embedded(EmbeddedServer {
                listen,
                backlog: positive(t.backlog, 4096, "target.backlog", "--backlog")?,
                accept_delay: t.accept_delay.map_or(Duration::ZERO, |s| s.0),
                close: server_close,
                destinations: match t.destinations {
                    Some(n @ 1..=MAX_DESTINATIONS) => n,
                    None => 1,
                    Some(n) => {
                        return Err(invalid(
                            "target.destinations",
                            "--destinations",
                            format!("{n} is out of range: write 1 to {MAX_DESTINATIONS}"),
                        ))
                    }
                },
            })
        }
    };
    let exec = exec(t)?;
    Ok((target, exec))
}

/// `[target]` as plan.toml writes it: the embedded server's keys, or the external address
/// and its command. Taken apart field by field, so a key added is a compile error here until
/// it is written.
pub(super) fn written(t: &Target, exec: Option<&TargetExec>) -> TargetSection {
    let command = exec.map(|e| e.command.clone());
    let ready_timeout = exec.map(|e| Span(e.ready_timeout));
    match t {
        Target::External(address) => TargetSection {
            address: Some(address.clone()),
            listen: None,
            backlog: None,
            accept_delay: None,
            server_close: None,
            destinations: None,
            exec: command,
            ready_timeout,
        },
        Target::Embedded(EmbeddedServer {
            listen,
            backlog,
            accept_delay,
            close,
            destinations,
        }) => TargetSection {
            address: None,
            listen: Some(listen.to_string()),
            backlog: Some(*backlog),
            accept_delay: Some(Span(*accept_delay)),
            server_close: Some(*close),
            destinations: Some(*destinations),
            exec: command,
            ready_timeout,
        },
    }
}

/// `target.exec` and its ready timeout: a command serving target.address.
fn exec(t: &TargetSection) -> Result<Option<TargetExec>, PlanError> {
    let external = &t.address;
    Ok(match (&t.exec, external) {
        (Some(cmd), _) if cmd.trim().is_empty() => {
            return Err(invalid(
                "target.exec",
                "--target-exec",
                "is empty: write the command that starts the server, e.g. \"nginx -c /tmp/x/nginx.conf\"",
            ))
        }
        (Some(_), None) => {
            return Err(invalid(
                "target.exec",
                "--target-exec",
                "needs target.address (--target): the HOST:PORT the command serves, e.g. 127.0.0.1:8080",
            ))
        }
        (Some(cmd), Some(_)) => Some(TargetExec {
            command: cmd.trim().to_string(),
            ready_timeout: span_or(
                t.ready_timeout,
                DEFAULT_READY_TIMEOUT,
                "target.ready_timeout",
                "--ready-timeout",
            )?,
        }),
        (None, _) if t.ready_timeout.is_some() => {
            return Err(invalid(
                "target.ready_timeout",
                "--ready-timeout",
                "only applies to a server portlab starts: set target.exec (--target-exec) or drop it",
            ))
        }
        (None, _) => None,
    })
}
