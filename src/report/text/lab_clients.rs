//! The text report's lines for a many-client lab (summary.json's `lab.clients`,
//! `results::lab_clients`).

use crate::results::lab_clients::ClientsSummary;
use std::io::{self, Write};

/// The text report's lines for a many-client lab.
pub fn render_text(c: &ClientsSummary, out: &mut dyn Write) -> io::Result<()> {
    let opt_s = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}s"));
    let opt_n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    writeln!(
        out,
        "\n{} client namespaces, one server at {}:",
        c.count, c.server_address
    )?;
    for l in &c.clients {
        writeln!(
            out,
            "  client {} {} ports {} (P {}{}): {} attempts, {} connected, {} failed, first exhaustion {} (model {}), TIME_WAIT max {}, {}",
            l.index,
            l.address,
            l.port_range.as_deref().unwrap_or("-"),
            opt_n(l.ports),
            l.tuples
                .map_or(String::new(), |t| format!(", {t:.0} tuples toward the server")),
            l.attempts,
            l.connected,
            l.failed,
            opt_s(l.first_exhaustion_s),
            opt_s(l.predicted_first_error_s),
            opt_n(l.timewait_max),
            l.ended
        )?;
    }
    writeln!(
        out,
        "  server TIME_WAIT max {} (model: the sum over clients {:.0})",
        opt_n(c.server_timewait_max),
        c.model_server_timewait
    )?;
    match (&c.tw_slab.bytes, &c.tw_slab.unavailable) {
        (Some(bytes), _) => writeln!(
            out,
            "  kernel memory for the server's TIME_WAIT: {} B ({} sockets x {} B, {}); the slab grew by {} B at most ({} objects, host-wide)",
            c.server_timewait_bytes.unwrap_or(0),
            c.server_timewait_max.unwrap_or(0),
            c.tw_slab.objsize.unwrap_or(0),
            c.tw_slab.cache,
            bytes,
            c.tw_slab
                .active_max
                .unwrap_or(0)
                .saturating_sub(c.tw_slab.active_before.unwrap_or(0)),
        )?,
        (None, why) => writeln!(
            out,
            "  kernel memory for TIME_WAIT: not measured: {}",
            why.as_deref().unwrap_or("unknown")
        )?,
    }
    for l in &c.lost {
        writeln!(out, "  LOST: {l}")?;
    }
    Ok(())
}
