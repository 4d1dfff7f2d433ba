//! The verdict: the model's prediction against what was measured, check by check. This is
//! the one place where prediction and measurement meet.

use super::Summary;
use crate::collect::TimelineRow;
use crate::model::{Prediction, TimeWaitSide};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Default tolerance of every numeric check, percent.
pub const DEFAULT_TOLERANCE_PCT: f64 = 5.0;

/// One comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What is compared.
    pub name: String,
    /// What the model says (a number, a bool, or [lo, hi] for a range).
    pub expected: Value,
    /// What the run measured.
    pub measured: Value,
    /// |measured - expected| / expected, percent (null for yes/no checks).
    pub error_pct: Option<f64>,
    /// Allowed error, percent (null for yes/no checks).
    pub tolerance_pct: Option<f64>,
    /// Whether it holds.
    pub pass: bool,
    /// Why the check is shaped as it is, when that is not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// All checks; `pass` when every one passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every check passed.
    pub pass: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

fn numeric(name: &str, expected: f64, measured: f64, tol: f64, note: Option<String>) -> Check {
    let error_pct = if expected == 0.0 {
        if measured == 0.0 {
            0.0
        } else {
            100.0
        }
    } else {
        (measured - expected).abs() / expected.abs() * 100.0
    };
    Check {
        name: name.to_string(),
        expected: json!(expected),
        measured: json!(measured),
        error_pct: Some(error_pct),
        tolerance_pct: Some(tol),
        pass: error_pct <= tol,
        note,
    }
}

/// Compares `p` with the run in `s` (and its timeline). `tol` is the tolerance in percent.
pub fn judge(p: &Prediction, s: &Summary, timeline: &[TimelineRow], tol: f64) -> Verdict {
    let mut checks = Vec::new();
    let measured_first = s.exhaustion.first_s;
    // The model says when; a run that ends before that cannot show it.
    let expect_exhaustion = p.exhausts && p.first_error_s.is_some_and(|t| t < s.load_duration_s);
    if p.margin.is_some() || !p.exhausts {
        checks.push(Check {
            name: "exhaustion".into(),
            expected: json!(expect_exhaustion),
            measured: json!(measured_first.is_some()),
            error_pct: None,
            tolerance_pct: None,
            pass: expect_exhaustion == measured_first.is_some(),
            note: (p.exhausts && !expect_exhaustion)
                .then(|| "predicted, but after the end of the run".to_string()),
        });
    }
    if let (true, Some(expected), Some(measured)) =
        (expect_exhaustion, p.first_error_s, measured_first)
    {
        checks.push(numeric("first_error_s", expected, measured, tol, None));
    }
    if let Some(tw) = &s.timewait {
        // TIME_WAIT cannot exceed the connections made; with tcp_tw_reuse a reusable socket
        // may linger until taken, so the count lies between the two model figures.
        let made = s.connected as f64;
        let (lo, hi) = match (p.timewait_side, s.plan.client.pool.unwrap_or(0)) {
            // Pooled connections enter TIME_WAIT only when the pool closes at the end.
            (_, pool) if pool > 0 => (Some(0.0), Some(f64::from(pool))),
            (TimeWaitSide::Nobody, _) => (Some(0.0), Some(0.0)),
            (TimeWaitSide::Client, _) => (
                p.steady_timewait.map(|v| v.min(made)),
                p.steady_timewait_max
                    .or(p.steady_timewait)
                    .map(|v| v.min(made)),
            ),
            (TimeWaitSide::Server, _) => (None, None),
        };
        let pooled = s.plan.client.pool.unwrap_or(0) > 0;
        let measured = match p.timewait_side {
            TimeWaitSide::Nobody if !pooled => {
                tw.client_max.zip(tw.server_max).map(|(c, s)| c.max(s))
            }
            _ => tw.client_max,
        };
        if let (Some(lo), Some(hi), Some(m)) = (lo, hi, measured) {
            let m = m as f64;
            let mut c = if m < lo {
                numeric("timewait_max", lo, m, tol, None)
            } else if m > hi {
                numeric("timewait_max", hi, m, tol, None)
            } else {
                numeric("timewait_max", m, m, tol, None)
            };
            if lo != hi {
                c.expected = json!([lo, hi]);
                c.note = Some("between min(R x hold, P) and min(R x TIME_WAIT, P), capped by connections made".into());
            }
            checks.push(c);
        }
    }
    if let (true, Some(rate), Some(_)) = (expect_exhaustion, p.post_exhaustion_rate, measured_first)
    {
        // Ports first come free one hold after the run began; from then on each hold frees
        // P ports. Averaged over whole holds, successes per second = P / hold.
        let hold = p.hold_s;
        let start = hold.max(measured_first.unwrap_or(0.0));
        let end = s.load_duration_s;
        let holds = ((end - start) / hold).floor();
        if holds >= 2.0 {
            let stop = start + holds * hold;
            let completed: u64 = timeline
                .iter()
                .filter(|r| r.t_s > start + 0.5 && r.t_s <= stop + 0.5)
                .map(|r| r.completed)
                .sum();
            let measured = completed as f64 / (stop - start);
            let mut c = numeric("post_exhaustion_rate", rate, measured, tol, None);
            c.note = Some(format!(
                "successes per second over ({start:.1} s, {stop:.1} s]"
            ));
            checks.push(c);
        }
    }
    Verdict {
        pass: checks.iter().all(|c| c.pass),
        checks,
    }
}
