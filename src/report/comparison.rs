//! A comparison of saved runs (`results::compare`) in each format.

use super::Format;
use crate::results::compare::{Comparison, Row};
use std::io::{self, Write};

fn change(c: Option<f64>) -> String {
    c.map_or(String::new(), |c| format!("{c:+.1}%"))
}

/// Writes the table in `format` (the comparison's [`super::Render`]).
pub fn render(c: &Comparison, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        // JUnit holds verdicts, not a comparison: `portlab report --format junit` writes one
        // test suite per run (junit::render_suite) and never comes here.
        Format::Junit => Err(io::Error::other(
            "a comparison has no JUnit form; junit::render_suite renders the runs",
        )),
        Format::Json => {
            let text = serde_json::to_string_pretty(c).map_err(io::Error::other)?;
            writeln!(out, "{text}")
        }
        Format::Csv => render_csv(c, out),
        Format::Markdown => render_markdown(c, out),
        // The page overlays the runs' timelines, which a comparison table does not hold.
        Format::Html => Err(io::Error::other(
            "an html comparison is drawn from the runs' directories: \
             portlab report DIR DIR... --format html",
        )),
        Format::Text => render_text(c, out),
    }
}

/// One record per figure: metric, unit, each run's value, each later run's change.
fn render_csv(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["metric".to_string(), "unit".to_string()];
    header.extend(c.runs.iter().cloned());
    header.extend(c.runs.iter().skip(1).map(|r| format!("{r} change %")));
    w.write_record(&header)?;
    for r in &c.rows {
        let mut rec = vec![r.metric.clone(), r.unit.to_string()];
        rec.extend(r.values.iter().map(|v| v.clone().unwrap_or_default()));
        rec.extend(
            r.change_pct
                .iter()
                .skip(1)
                .map(|v| v.map_or(String::new(), |v| format!("{v:.3}"))),
        );
        w.write_record(&rec)?;
    }
    w.flush()
}

/// A Markdown table: a column per run, and a change column after each later run.
fn render_markdown(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
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

/// Aligned columns; the plan line, too long for a column, gets a line per run.
fn render_text(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
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
