//! Markdown tables that fit a pull-request comment.

use super::{secs, Reporter, Summary};
use std::io::{self, Write};

/// `--format markdown`.
pub struct Markdown;

impl Reporter for Markdown {
    fn render(&self, s: &Summary, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "### portlab: `{}`\n", s.scenario)?;
        if let Some(d) = &s.description {
            writeln!(out, "{}\n", d.trim())?;
        }
        writeln!(out, "{}; target `{}`\n", s.plan_line(), s.target)?;
        writeln!(
            out,
            "| attempts | connected | completed | failed | dropped | achieved rate | exhaustion |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---|")?;
        let exhaustion = match (&s.exhaustion.first_s, &s.exhaustion.kind) {
            (Some(t), Some(k)) => format!("{k} at {}", secs(*t)),
            _ => "none".to_string(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1}/s | {} |\n",
            s.attempts, s.connected, s.completed, s.failed, s.dropped, s.achieved_rate, exhaustion
        )?;
        if !s.errors.is_empty() {
            writeln!(
                out,
                "| error | phase | count | first | last |\n|---|---|---:|---:|---:|"
            )?;
            for (name, e) in &s.errors {
                writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} |",
                    e.phase,
                    e.count,
                    secs(e.first_s),
                    secs(e.last_s)
                )?;
            }
            writeln!(out)?;
        }
        writeln!(out, "| latency (µs) | mean | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|")?;
        for (label, l) in s.latency_rows() {
            if l.count > 0 {
                writeln!(
                    out,
                    "| {label} | {:.0} | {} | {} | {} | {} | {} |",
                    l.mean, l.p50, l.p90, l.p99, l.p999, l.max
                )?;
            }
        }
        if let Some(p) = &s.prediction {
            writeln!(out, "\n**Model:** {}", p.explanation)?;
        }
        if let Some(v) = &s.verdict {
            writeln!(
                out,
                "\n**Verdict: {}**\n\n| check | expected | measured | error | allowed | pass |\n|---|---:|---:|---:|---:|:---:|",
                if v.pass { "PASS" } else { "FAIL" }
            )?;
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}%"));
            for c in &v.checks {
                writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} |",
                    c.name,
                    c.expected_text().replace('<', "&lt;").replace('>', "&gt;"),
                    c.measured_text(),
                    pct(c.error_pct),
                    pct(c.tolerance_pct),
                    match (c.pass, c.advisory) {
                        (true, false) => "✅",
                        (false, false) => "❌",
                        (true, true) => "(✅)",
                        (false, true) => "(❌)",
                    }
                )?;
            }
        }
        Ok(())
    }
}
