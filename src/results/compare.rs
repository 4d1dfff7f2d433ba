//! Several saved runs side by side (`portlab report A B ...`): one row per figure, one column
//! per run, and each run's change from the first, so a before/after pair of a sysctl or
//! registry change reads as one table. Its renderings are `report::comparison`'s.

use super::summary::Summary;
use serde::Serialize;

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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
