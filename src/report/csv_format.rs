//! CSV: one metric per row (metric,value,unit), easy to diff or load into a sheet.

use super::document::Document;
use super::{Renderer, Run, Summary};
use crate::results::compare::Comparison;
use crate::results::suite::Report as SuiteReport;
use std::io::{self, Write};

/// `--format csv`.
pub struct Csv;

/// The rows, in order: (metric, value, unit).
fn rows(s: &Summary) -> Vec<(String, String, &'static str)> {
    let mut rows = vec![
        ("scenario".into(), s.scenario.clone(), ""),
        ("duration".into(), format!("{:.3}", s.duration_s), "s"),
        ("attempts".into(), s.attempts.to_string(), "connections"),
        ("connected".into(), s.connected.to_string(), "connections"),
        ("completed".into(), s.completed.to_string(), "connections"),
        ("failed".into(), s.failed.to_string(), "connections"),
        ("dropped".into(), s.dropped.to_string(), "starts"),
        (
            "achieved_rate".into(),
            format!("{:.3}", s.achieved_rate),
            "1/s",
        ),
        (
            "exhaustion_first".into(),
            s.exhaustion
                .first_s
                .map(|v| format!("{v:.6}"))
                .unwrap_or_default(),
            "s",
        ),
        (
            "exhaustion_kind".into(),
            s.exhaustion.kind.clone().unwrap_or_default(),
            "",
        ),
    ];
    for (name, e) in &s.errors {
        rows.push((format!("errors.{name}"), e.count.to_string(), "errors"));
        rows.push((
            format!("errors.{name}.first"),
            format!("{:.6}", e.first_s),
            "s",
        ));
    }
    for (label, l) in [
        ("connect_latency", &s.connect_latency_us),
        ("connect_latency_actual", &s.connect_latency_actual_us),
        ("exchange_latency", &s.exchange_latency_us),
        ("request_latency", &s.request_latency_us),
        ("schedule_lag", &s.schedule_lag_us),
    ] {
        rows.push((format!("{label}.p50"), l.p50.to_string(), "us"));
        rows.push((format!("{label}.p99"), l.p99.to_string(), "us"));
        rows.push((format!("{label}.max"), l.max.to_string(), "us"));
    }
    if let Some(p) = &s.prediction {
        use serde_json::json;
        for (key, v, unit) in [
            ("exhausts", json!(p.exhausts), ""),
            ("first_error_s", json!(p.first_error_s), "s"),
            ("sustainable_rate", json!(p.sustainable_rate), "1/s"),
            ("steady_timewait", json!(p.steady_timewait), "sockets"),
            ("timewait_side", json!(p.timewait_side), ""),
            ("post_exhaustion_rate", json!(p.post_exhaustion_rate), "1/s"),
            ("margin", json!(p.margin), ""),
        ] {
            if !v.is_null() {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                rows.push((format!("prediction.{key}"), text, unit));
            }
        }
    }
    if let Some(v) = &s.verdict {
        rows.push(("verdict.pass".into(), v.pass.to_string(), ""));
        for c in &v.checks {
            let n = &c.name;
            rows.push((format!("check.{n}.pass"), c.pass.to_string(), ""));
            rows.push((format!("check.{n}.expected"), c.expected.to_string(), ""));
            rows.push((format!("check.{n}.measured"), c.measured.to_string(), ""));
            if let Some(e) = c.error_pct {
                rows.push((format!("check.{n}.error_pct"), format!("{e:.3}"), "%"));
            }
            if c.advisory {
                rows.push((format!("check.{n}.advisory"), "true".into(), ""));
            }
        }
    }
    rows
}

impl Renderer for Csv {
    fn run(&self, run: &Run, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["metric", "value", "unit"])?;
        for (metric, value, unit) in rows(run.summary) {
            w.write_record([metric.as_str(), value.as_str(), unit])?;
        }
        w.flush()
    }

    fn runs(&self, _: &[Run], table: &Comparison, out: &mut dyn Write) -> io::Result<()> {
        comparison(table, out)
    }

    /// `key,value` rows of its flattened fields.
    fn document(&self, doc: &Document, out: &mut dyn Write) -> io::Result<()> {
        let rows = doc.rows()?;
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["key", "value"])?;
        for (k, v) in rows {
            w.write_record([k, v])?;
        }
        w.flush()
    }

    /// One row per scenario.
    fn suite(&self, r: &SuiteReport, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "scenario",
            "verdict",
            "exit_code",
            "wall_s",
            "predicted",
            "measured",
            "problems",
        ])?;
        for row in &r.scenarios {
            w.write_record([
                row.scenario.as_str(),
                row.verdict.as_str(),
                &row.exit_code.map_or(String::new(), |c| c.to_string()),
                &format!("{:.1}", row.wall_s),
                &row.predicted,
                &row.measured,
                &row.problems.join("; "),
            ])?;
        }
        w.flush()
    }
}

/// One record per figure: metric, unit, each run's value, each later run's change.
fn comparison(c: &Comparison, out: &mut dyn Write) -> io::Result<()> {
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
