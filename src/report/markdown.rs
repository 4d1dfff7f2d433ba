//! Markdown tables that fit a pull-request comment.

use super::document::{cell, Document};
use super::{change, secs, Renderer, Run, Summary};
use crate::results::compare::Comparison;
use crate::results::suite::Report as SuiteReport;
use std::io::{self, Write};

/// `--format markdown`.
pub struct Markdown;

impl Renderer for Markdown {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        summary(run.summary, out)
    }

    fn runs(&self, _: &[Run], table: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        comparison(table, out)
    }

    /// `| key | value |` rows of its flattened fields.
    fn document(&self, doc: &Document, out: &mut dyn Write) -> io::Result<()> {
        let rows = doc.rows()?;
        writeln!(out, "| key | value |\n|---|---|")?;
        for (k, v) in rows {
            writeln!(out, "| {} | {} |", cell(&k), cell(&v))?;
        }
        Ok(())
    }

    fn suite(&self, suite: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        self::suite(suite, out)
    }
}

/// One run's tables.
fn summary(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
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

/// A Markdown table: a column per run, and a change column after each later run.
fn comparison(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
    write!(out, "| figure |")?;
    for (i, run) in c.runs.iter().enumerate() {
        write!(out, " `{run}` |")?;
        if i > 0 {
            write!(out, " change |")?;
        }
    }
    write!(out, "\n|---|")?;
    for i in 0..c.runs.len() {
        write!(out, "---:|{}", if i > 0 { "---:|" } else { "" })?;
    }
    writeln!(out)?;
    for r in &c.rows {
        let unit = if r.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.unit)
        };
        write!(out, "| {}{unit} |", r.metric)?;
        for (i, v) in r.values.iter().enumerate() {
            write!(out, " {} |", v.as_deref().unwrap_or("-"))?;
            if i > 0 {
                write!(out, " {} |", change(r.change_pct[i]))?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The suite's table as Markdown (suite.md).
fn suite(r: &SuiteReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "### portlab suite: `{}`\n", r.scenarios_dir)?;
    writeln!(out, "| scenario | model | measured | verdict |")?;
    writeln!(out, "|---|---|---|---|")?;
    for row in &r.scenarios {
        let verdict = if row.problems.is_empty() {
            row.verdict.as_str().to_string()
        } else {
            format!("{} ({})", row.verdict.as_str(), row.problems.join("; "))
        };
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            row.scenario,
            suite_cell(&row.predicted),
            suite_cell(&row.measured),
            suite_cell(&verdict)
        )?;
    }
    writeln!(
        out,
        "\n{} in {:.1} s; results in `{}`",
        r.tally(),
        r.wall_s,
        r.results
    )
}

/// A suite's markdown cell: pipes escaped.
fn suite_cell(s: &str) -> String {
    s.replace('|', "\\|")
}
