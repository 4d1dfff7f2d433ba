//! `[client]`: how each connection is opened and closed; resolved and checked here.

use super::{invalid, BindMode, Client, ClientSection, CloseMode, PlanError};
use std::net::IpAddr;

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
