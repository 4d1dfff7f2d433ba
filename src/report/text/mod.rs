//! The human summary printed at the end of a run.

mod client_exec;
mod lab_clients;

use super::document::Document;
use super::{change, secs, Renderer, Run, Summary};
use crate::results::compare::{Comparison, Row};
use crate::results::suite::Report as SuiteReport;
use std::io::{self, Write};
use std::path::Path;

/// `--format text` (the default).
pub struct Text;

impl Renderer for Text {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        let s = run.summary;
        headline(s, out)?;
        errors(s, out)?;
        latency(s, out)?;
        verdict(s, out)?;
        servers(s, out)
    }

    fn made(&self, run: &Run, results: &Path, out: &mut dyn Write) -> io::Result<()> {
        self.run(run, out)?;
        writeln!(out, "\nresults: {}/", results.display())
    }

    fn merged(&self, run: &Run, results: &Path, out: &mut dyn Write) -> io::Result<()> {
        self.run(run, out)?;
        match &run.summary.merge {
            Some(m) => {
                shards(m, out)?;
                writeln!(out, "\nresults: {}/", results.display())
            }
            None => Ok(()),
        }
    }

    fn runs(&self, _: &[Run], table: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        comparison(table, out)
    }

    fn document(&self, doc: &Document, out: &mut dyn Write) -> io::Result<()> {
        out.write_all((doc.text)().as_bytes())
    }

    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        self::suite(suite, out)
    }
}

/// Each shard of a merged run on a line, and what they add up to (`portlab merge`).
fn shards(m: &crate::results::summary::MergeSummary, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "\nshards:")?;
    for sh in &m.shards {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}s"));
        writeln!(
            out,
            "  {} ({}): {} attempts, starts +{:.3}s, skew {}, first exhaustion {} (model {}), verdict {}",
            sh.shard.as_deref().unwrap_or("-"),
            sh.dir,
            sh.attempts,
            sh.offset_s,
            opt(sh.skew_s),
            opt(sh.first_exhaustion_s),
            opt(sh.predicted_first_error_s),
            sh.pass.map_or("-", |p| if p { "pass" } else { "FAIL" }),
        )?;
    }
    writeln!(
        out,
        "earliest exhaustion: {}; start spread {:.3}s; overall {}",
        m.earliest_exhaustion_s.map_or("none".into(), |t| format!(
            "{t:.3}s ({})",
            m.earliest_exhaustion_dir.as_deref().unwrap_or("-")
        )),
        m.start_spread_s,
        if m.pass { "pass" } else { "FAIL" }
    )
}

/// What ran, the counts, whether the ports ran out (or why else it failed), TIME_WAIT.
fn headline(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "portlab run {:?}: {} attempts in {} ({:.1}/s){}",
        s.scenario,
        s.attempts,
        secs(s.load_duration_s),
        s.achieved_rate,
        if s.interrupted { ", INTERRUPTED" } else { "" }
    )?;
    match &s.client_exec {
        // Your own client: portlab's close, bind, payload and pool did not apply.
        Some(c) => writeln!(
            out,
            "  target {}; the client is your command (PORTLAB_RATE {})",
            s.target,
            c.requested_rate.map_or("unset".into(), |r| r.to_string())
        )?,
        None => writeln!(out, "  target {}; {}", s.target, s.plan_line())?,
    }
    if let Some(line) = s.lab_tw_reuse_line() {
        writeln!(out, "  {line}")?;
    }
    writeln!(
        out,
        "  connected {}   completed {}   failed {}   dropped {}   aborted {}",
        s.connected, s.completed, s.failed, s.dropped, s.aborted
    )?;
    if s.reconnects > 0 {
        writeln!(out, "  pooled connections replaced {}", s.reconnects)?;
    }
    match (&s.exhaustion.first_s, &s.exhaustion.kind) {
        (Some(t), Some(kind)) => writeln!(
            out,
            "  PORT EXHAUSTION: first {kind} at {} ({})",
            secs(*t),
            s.exhaustion.phase.as_deref().unwrap_or("-")
        )?,
        _ if s.failed > 0 => {
            // Failures that are not "no local port left": say so, so that a full listen
            // backlog or a dead server is not mistaken for port exhaustion.
            let kinds: Vec<String> = s
                .errors
                .iter()
                .map(|(k, e)| {
                    let phases: Vec<String> =
                        e.by_phase.iter().map(|(p, n)| format!("{p} {n}")).collect();
                    format!("{k} x{} ({})", e.count, phases.join(", "))
                })
                .collect();
            writeln!(
                out,
                "  no port exhaustion: the {} failures are {}, not a lack of local ports",
                s.failed,
                kinds.join(", ")
            )?;
            if let Some(n) = s
                .kernel
                .as_ref()
                .and_then(|k| k.get("ListenOverflows"))
                .filter(|&&n| n > 0)
            {
                writeln!(
                        out,
                        "  the server's accept queue overflowed {n} times (ListenOverflows): its listen backlog is full"
                    )?;
            }
        }
        _ => writeln!(out, "  no port exhaustion")?,
    }
    // What the client saw as stalls and timeouts, where a middle box refused the SYNs.
    if let Some(n) = s.nat.as_ref().filter(|n| n.refused > 0) {
        writeln!(
            out,
            "  the NAT ran out of ports: it refused {} SYNs (its conntrack insert_failed), its {} ports toward the server all held, and dropped them, so the clients saw stalled connects (the slowest {:.2} s) and TIMEOUTs, not EADDRNOTAVAIL",
            n.refused, n.model.ports, n.slowest_connect_s
        )?;
    }
    if let Some((e, dropped)) = s
        .conntrack
        .as_ref()
        .and_then(|c| c.emulated.as_ref())
        .and_then(|e| Some((e, e.dropped.filter(|&d| d > 0)?)))
    {
        writeln!(
            out,
            "  the conntrack table was full (emulated, {} entries): it dropped {dropped} SYNs, so connects stalled and timed out while the ports were fine",
            e.max
        )?;
    }
    if let Some(m) = &s.modelled {
        writeln!(
            out,
            "  time scale {}: {:.2}/s and {} in modelled time{}",
            m.time_scale,
            m.rate,
            secs(m.duration_s),
            m.first_error_s
                .map(|t| format!(", first error at {} modelled", secs(t)))
                .unwrap_or_default()
        )?;
    }
    if let Some(tw) = &s.timewait {
        let v = |x: Option<u64>| x.map_or("-".to_string(), |x| x.to_string());
        writeln!(
            out,
            "  TIME_WAIT max: client {}, server {} (at the end: {}, {})",
            v(tw.client_max),
            v(tw.server_max),
            v(tw.client_end),
            v(tw.server_end)
        )?;
    }
    if let Some(e) = &s.timewait_ended_early {
        writeln!(out, "  {}", e.line())?;
    }
    if let Some(c) = &s.conntrack {
        writeln!(out, "  {}", c.line())?;
        if let Some(e) = &c.emulated {
            writeln!(out, "  {}", e.line())?;
        }
    }
    if let Some(n) = &s.nat {
        writeln!(out, "  {}", n.line())?;
        if let Some(m) = s
            .conntrack
            .as_ref()
            .and_then(|c| crate::results::summary::NatSummary::mappings_line(&c.nat_mappings))
        {
            writeln!(out, "  {m}")?;
        }
        writeln!(out, "  {}", n.model.sentence())?;
    }
    Ok(())
}

/// Errors by kind, and HTTP statuses.
fn errors(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    if !s.errors.is_empty() {
        writeln!(
            out,
            "\nerrors\n  {:<16} {:<9} {:>9} {:>12} {:>12}",
            "kind", "phase", "count", "first", "last"
        )?;
        for (name, e) in &s.errors {
            writeln!(
                out,
                "  {:<16} {:<9} {:>9} {:>12} {:>12}",
                name,
                e.phase,
                e.count,
                secs(e.first_s),
                secs(e.last_s)
            )?;
        }
    }
    if let Some(c) = &s.client_exec {
        let predicted = s.prediction.as_ref().and_then(|p| p.first_error_s);
        writeln!(out)?;
        let mut lines = client_exec::text_lines(c, predicted);
        // After what it did: why TIME_WAIT is where it is.
        if let Some(asked) = s.server.as_ref().and_then(client_exec::asked_to_close) {
            lines.insert(2.min(lines.len()), asked);
        }
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    if !s.http_status.is_empty() {
        let statuses: Vec<String> = s
            .http_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(out, "\nhttp status  {}", statuses.join(", "))?;
    }
    Ok(())
}

/// The latency table, and the model's explanation.
fn latency(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    // A client command's run measures no latency: no empty table.
    if s.latency_rows().iter().any(|(_, l)| l.count > 0) {
        writeln!(
            out,
            "\nlatency (us)              {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "mean", "p50", "p90", "p99", "p99.9", "max"
        )?;
    }
    for (label, l) in s.latency_rows() {
        if l.count == 0 {
            continue;
        }
        writeln!(
            out,
            "  {label:<23} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>9}",
            l.mean, l.p50, l.p90, l.p99, l.p999, l.max
        )?;
    }
    if let Some(p) = &s.prediction {
        writeln!(out, "\nmodel: {}", p.explanation)?;
    }
    Ok(())
}

/// The verdict, check by check, and why each failed one failed.
fn verdict(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    if let Some(v) = &s.verdict {
        let width = v
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            out,
            "verdict: {}\n  {:<width$} {:>16} {:>16} {:>8} {:>8} {:>6}",
            match (&v.inconclusive, v.pass) {
                (Some(why), _) => format!("INCONCLUSIVE ({why})"),
                (None, true) => "PASS".to_string(),
                (None, false) => "FAIL".to_string(),
            },
            "check",
            "expected",
            "measured",
            "error",
            "allowed",
            "pass"
        )?;
        for c in &v.checks {
            writeln!(
                out,
                "  {:<width$} {:>16} {:>16} {:>8} {:>8} {:>6}",
                c.name,
                c.expected_text(),
                c.measured_text(),
                pct(c.error_pct),
                pct(c.tolerance_pct),
                c.status()
            )?;
        }
        for c in v.checks.iter().filter(|c| !c.pass && !c.advisory) {
            writeln!(out, "  FAILED {}", c.explain())?;
        }
    }
    Ok(())
}

/// The server command and the embedded server.
fn servers(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    if let Some(x) = &s.target_exec {
        writeln!(
            out,
            "\nserver command `{}` on {}: stopped by {}, {} (output: {})",
            x.command, x.address, x.stopped_by, x.exit_status, x.log
        )?;
    }
    if let Some(srv) = &s.server {
        writeln!(
            out,
            "\nembedded server {}: accepted {}, accept errors {}, connection errors {}{}",
            srv.address,
            srv.accepted,
            srv.accept_errors,
            srv.connection_errors,
            if srv.closed_on_request > 0 {
                format!(", closed first on request {}", srv.closed_on_request)
            } else {
                String::new()
            }
        )?;
    }
    if let Some(c) = s.lab.as_ref().and_then(|l| l.clients.as_ref()) {
        lab_clients::render_text(c, out)?;
    }
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.1}%"))
}

/// Aligned columns; the plan line, too long for a column, gets a line per run.
fn comparison(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
    let label = |r: &Row| {
        if r.unit.is_empty() {
            r.metric.clone()
        } else {
            format!("{} ({})", r.metric, r.unit)
        }
    };
    let first = c.rows.iter().map(|r| label(r).len()).max().unwrap_or(6);
    // Long free text (the plan line) would stretch every column: it gets a line each.
    let wide = |r: &Row| r.metric == "plan";
    let width: Vec<usize> = (0..c.runs.len())
        .map(|i| {
            c.rows
                .iter()
                .filter(|r| !wide(r))
                .filter_map(|r| r.values[i].as_ref().map(String::len))
                .chain([c.runs[i].len()])
                .max()
                .unwrap_or(1)
        })
        .collect();
    write!(out, "{:<first$}", "")?;
    for (i, run) in c.runs.iter().enumerate() {
        write!(out, "  {run:>w$}", w = width[i])?;
        if i > 0 {
            write!(out, " {:>8}", "change")?;
        }
    }
    writeln!(out)?;
    for r in &c.rows {
        if wide(r) {
            for (run, v) in c.runs.iter().zip(&r.values) {
                writeln!(
                    out,
                    "{:<first$}  {run}: {}",
                    label(r),
                    v.as_deref().unwrap_or("-")
                )?;
            }
            continue;
        }
        write!(out, "{:<first$}", label(r))?;
        for (i, v) in r.values.iter().enumerate() {
            write!(out, "  {:>w$}", v.as_deref().unwrap_or("-"), w = width[i])?;
            if i > 0 {
                write!(out, " {:>8}", change(r.change_pct[i]))?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The table as plain text for a terminal.
fn suite(r: &SuiteReport, out: &mut dyn Write) -> std::io::Result<()> {
    let w = r
        .scenarios
        .iter()
        .map(|x| x.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let wp = r
        .scenarios
        .iter()
        .map(|x| x.predicted.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<w$}  {:<7}  {:<wp$}  measured",
        "scenario", "verdict", "model"
    )?;
    for row in &r.scenarios {
        writeln!(
            out,
            "{:<w$}  {:<7}  {:<wp$}  {}",
            row.scenario,
            row.verdict.as_str(),
            row.predicted,
            row.measured
        )?;
        for p in &row.problems {
            writeln!(out, "{:<w$}    ! {p}", "")?;
        }
    }
    writeln!(
        out,
        "\n{} in {:.1} s; table in {}/suite.md and suite.json",
        r.tally(),
        r.wall_s,
        r.results
    )
}
