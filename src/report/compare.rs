//! Several saved runs side by side (`portlab report A B ...`): one row per figure, one column
//! per run, and each run's change from the first, so a before/after pair of a sysctl or
//! registry change reads as one table.

use super::{Format, Summary};
use serde::Serialize;
use std::io::{self, Write};

/// One figure across the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What it is, e.g. `exhaustion.first_s`.
    pub metric: String,
    /// Unit, empty for counts and words.
    pub unit: &'static str,
    /// Each run's value as shown (None: the run has no such figure).
    pub values: Vec<Option<String>>,
    /// Each run's change from the first run, percent (numeric figures only; None for the
    /// first run and where either side is missing or zero).
    pub change_pct: Vec<Option<f64>>,
}

/// The table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Each run's label (its directory name).
    pub runs: Vec<String>,
    /// The figures, in a fixed order.
    pub rows: Vec<Row>,
}

/// A figure of one run: text to show and, when numeric, the number behind it.
type Cell = Option<(String, Option<f64>)>;

fn num(v: f64, decimals: usize) -> Cell {
    Some((format!("{v:.decimals$}"), Some(v)))
}

fn count(v: u64) -> Cell {
    Some((v.to_string(), Some(v as f64)))
}

fn word(v: impl Into<String>) -> Cell {
    Some((v.into(), None))
}

/// A lab setting of the run (sysctl name), when the run was in the lab.
fn setting(s: &Summary, name: &str) -> Option<String> {
    s.lab.as_ref()?.settings.get(name).cloned()
}

/// The figures every comparison shows, as (metric, unit, how to read it from a summary).
/// Over 100 lines because it is a table, one entry per figure: adding a figure is adding
/// one entry here and nowhere else.
#[allow(clippy::type_complexity)]
fn figures() -> Vec<(&'static str, &'static str, Box<dyn Fn(&Summary) -> Cell>)> {
    let ratio = |part: fn(&Summary) -> u64| {
        move |s: &Summary| (s.attempts > 0).then(|| part(s) as f64 / s.attempts as f64)
    };
    vec![
        ("scenario", "", Box::new(|s| word(s.scenario.clone()))),
        ("plan", "", Box::new(|s| word(s.plan_line()))),
        ("started_at", "", Box::new(|s| word(s.started_at.clone()))),
        (
            "load_duration",
            "s",
            Box::new(|s| num(s.load_duration_s, 3)),
        ),
        ("attempts", "", Box::new(|s| count(s.attempts))),
        ("completed", "", Box::new(|s| count(s.completed))),
        ("failed", "", Box::new(|s| count(s.failed))),
        (
            "achieved_rate",
            "1/s",
            Box::new(|s| num(s.achieved_rate, 1)),
        ),
        (
            "success_rate",
            "",
            Box::new(move |s| ratio(|s| s.completed)(s).and_then(|r| num(r, 4))),
        ),
        (
            "error_rate",
            "",
            Box::new(move |s| ratio(|s| s.failed)(s).and_then(|r| num(r, 4))),
        ),
        (
            "exhaustion.first",
            "s",
            Box::new(|s| s.exhaustion.first_s.and_then(|t| num(t, 3))),
        ),
        (
            "exhaustion.kind",
            "",
            Box::new(|s| s.exhaustion.kind.clone().map(|k| (k, None))),
        ),
        (
            "modelled.first_error",
            "s",
            Box::new(|s| {
                s.modelled
                    .as_ref()
                    .and_then(|m| m.first_error_s)
                    .and_then(|t| num(t, 3))
            }),
        ),
        (
            "prediction.first_error",
            "s",
            Box::new(|s| s.prediction.as_ref()?.first_error_s.and_then(|t| num(t, 3))),
        ),
        (
            "prediction.sustainable_rate",
            "1/s",
            Box::new(|s| {
                s.prediction
                    .as_ref()?
                    .sustainable_rate
                    .and_then(|t| num(t, 2))
            }),
        ),
        (
            "timewait.client_max",
            "",
            Box::new(|s| {
                s.timewait
                    .as_ref()
                    .and_then(|t| t.client_max)
                    .and_then(count)
            }),
        ),
        (
            "timewait.server_max",
            "",
            Box::new(|s| {
                s.timewait
                    .as_ref()
                    .and_then(|t| t.server_max)
                    .and_then(count)
            }),
        ),
        (
            "connect_latency.p50",
            "us",
            Box::new(|s| {
                (s.connect_latency_us.count > 0).then(|| count(s.connect_latency_us.p50))?
            }),
        ),
        (
            "connect_latency.p99",
            "us",
            Box::new(|s| {
                (s.connect_latency_us.count > 0).then(|| count(s.connect_latency_us.p99))?
            }),
        ),
        (
            "segments_per_request",
            "",
            Box::new(|s| s.segments_per_request.and_then(|v| num(v, 2))),
        ),
        (
            "verdict",
            "",
            Box::new(|s| {
                s.verdict
                    .as_ref()
                    .map(|v| (if v.pass { "PASS" } else { "FAIL" }.to_string(), None))
            }),
        ),
    ]
}

/// Lab settings worth a row: the ones that differ between runs (what changed), and the knobs
/// the sysctl registry marks `compared` (the port range, tcp_tw_reuse) whenever any run has
/// them.
fn always_compared(name: &str) -> bool {
    crate::plan::sysctl::by_name(name).is_some_and(|k| k.compared)
}

/// Builds the table for `runs` (label, summary).
pub fn compare(runs: &[(String, Summary)]) -> Comparison {
    let mut rows = Vec::new();
    let mut push = |metric: String, unit, cells: Vec<Cell>| {
        if cells.iter().all(Option::is_none) {
            return;
        }
        let first = cells.first().cloned().flatten().and_then(|(_, n)| n);
        let change_pct = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| match (i, first, c.as_ref().and_then(|(_, n)| *n)) {
                    (0, _, _) => None,
                    (_, Some(a), Some(b)) if a != 0.0 => Some((b - a) / a.abs() * 100.0),
                    _ => None,
                },
            )
            .collect();
        rows.push(Row {
            metric,
            unit,
            values: cells.into_iter().map(|c| c.map(|(t, _)| t)).collect(),
            change_pct,
        });
    };
    for (metric, unit, read) in figures() {
        push(
            metric.to_string(),
            unit,
            runs.iter().map(|(_, s)| read(s)).collect(),
        );
    }
    let mut names: Vec<String> = runs
        .iter()
        .filter_map(|(_, s)| s.lab.as_ref())
        .flat_map(|l| l.settings.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let values: Vec<Option<String>> = runs.iter().map(|(_, s)| setting(s, &name)).collect();
        let differs = values.windows(2).any(|w| w[0] != w[1]);
        if differs || always_compared(&name) {
            let cells = values
                .into_iter()
                .map(|v| v.map(|t| (t.clone(), t.trim().parse::<f64>().ok())))
                .collect();
            push(format!("setting {name}"), "", cells);
        }
    }
    Comparison {
        runs: runs.iter().map(|(label, _)| label.clone()).collect(),
        rows,
    }
}

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
