//! The verdict: the model's prediction against what was measured, check by check. This is
//! the one place where prediction and measurement meet.

use super::summary::Summary;
use crate::collect::Completions;
use crate::model::{Prediction, TimeWaitSide};
use crate::plan::Expectations;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Default margin of the baseline checks, percent.
pub const DEFAULT_BASELINE_MARGIN_PCT: f64 = 10.0;

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
    /// Reported but not counted toward the verdict (`[expect] model = false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub advisory: bool,
}

impl Check {
    /// The expectation in a few characters: `<= 50` for an upper bound, `lo..hi` for a range.
    pub fn expected_text(&self) -> String {
        let v = compact(&self.expected);
        match self.note.as_deref() {
            Some(n) if n.starts_with("at most") => format!("<= {v}"),
            Some(n) if n.starts_with("at least") => format!(">= {v}"),
            _ => v,
        }
    }

    /// The measurement in a few characters.
    pub fn measured_text(&self) -> String {
        compact(&self.measured)
    }

    /// yes / NO, in brackets when the check does not count.
    pub fn status(&self) -> &'static str {
        match (self.pass, self.advisory) {
            (true, false) => "yes",
            (false, false) => "NO",
            (true, true) => "(yes)",
            (false, true) => "(no)",
        }
    }

    /// One sentence: which check, what was expected, what came, by how much.
    pub fn explain(&self) -> String {
        let by = match (self.error_pct, self.tolerance_pct) {
            (Some(e), Some(t)) => format!(": off by {e:.1}%, {t:.1}% allowed"),
            (Some(e), None) if e > 0.0 => format!(": off by {e:.1}%"),
            _ => String::new(),
        };
        // A bound's note is "at most" / "at least", with its reason after ": " if any.
        let why = match self.note.as_deref() {
            None | Some("at most") | Some("at least") => String::new(),
            Some(n) => match n.split_once(": ") {
                Some(("at most" | "at least", reason)) => format!(" ({reason})"),
                _ => format!(" ({n})"),
            },
        };
        format!(
            "{}: expected {}, measured {}{by}{why}",
            self.name,
            self.expected_text(),
            self.measured_text()
        )
    }
}

/// A JSON value in a few characters: numbers to 3 decimals, ranges as lo..hi.
pub fn compact(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| {
            if f.fract() == 0.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }),
        Value::Array(a) => a.iter().map(compact).collect::<Vec<_>>().join(".."),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// All checks; `pass` when every counted (not advisory) one passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every check passed.
    pub pass: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
    /// Why the run cannot be judged, when it cannot (a client that stalled or never
    /// connected): then `pass` is false and the exit code is 4, whatever the checks say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

pub(crate) fn numeric(
    name: &str,
    expected: f64,
    measured: f64,
    tol: f64,
    note: Option<String>,
) -> Check {
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
        advisory: false,
    }
}

/// `measured` against the range [`lo`, `hi`]: its error is from the nearer end (0 inside),
/// and `expected` is `[lo, hi]` (a number when they are equal).
pub(crate) fn in_range(name: &str, lo: f64, hi: f64, measured: f64, tol: f64) -> Check {
    let nearest = if measured < lo {
        lo
    } else if measured > hi {
        hi
    } else {
        measured
    };
    let mut c = numeric(name, nearest, measured, tol, None);
    if lo != hi {
        c.expected = json!([lo, hi]);
    }
    c
}

/// TIME_WAIT sockets an RST ended early in this run (`timewait_ended_early`), 0 when none.
fn ended_early(s: &Summary) -> u64 {
    s.timewait_ended_early.map_or(0, |e| e.count)
}

/// The note a check gets when it allowed for `n` TIME_WAIT sockets ended early.
fn ended_early_note(s: &Summary, what: &str) -> Option<String> {
    s.timewait_ended_early.map(|e| {
        format!(
            "{} TIME_WAIT socket(s) ended early by an RST ({}): {what}",
            e.count,
            e.counter.name()
        )
    })
}

/// A one-sided check: `measured` must stay at most (`Bound::Max`) or at least (`Bound::Min`)
/// `limit`; `error_pct` is how far past the limit it went (0 within it), relative to the limit.
fn bound(name: &str, limit: f64, measured: f64, b: Bound, tol: Option<f64>) -> Check {
    let excess = match b {
        Bound::Max => measured - limit,
        Bound::Min => limit - measured,
    };
    let error_pct = if excess <= 0.0 {
        0.0
    } else if limit == 0.0 {
        100.0
    } else {
        excess / limit.abs() * 100.0
    };
    Check {
        name: name.to_string(),
        expected: json!(limit),
        measured: json!(measured),
        error_pct: Some(error_pct),
        tolerance_pct: tol,
        pass: error_pct <= tol.unwrap_or(0.0),
        note: Some(
            match b {
                Bound::Max => "at most",
                Bound::Min => "at least",
            }
            .to_string(),
        ),
        advisory: false,
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Max,
    Min,
}

pub(crate) fn yes_no(name: &str, expected: bool, measured: bool, note: Option<String>) -> Check {
    Check {
        name: name.to_string(),
        expected: json!(expected),
        measured: json!(measured),
        error_pct: None,
        tolerance_pct: None,
        pass: expected == measured,
        note,
        advisory: false,
    }
}

/// The whole verdict of a run: the model's checks (advisory when `[expect] model = false`),
/// then the user's `[expect]` checks, then the baseline's.
pub fn assess(
    p: &Prediction,
    s: &Summary,
    completions: &Completions,
    expect: &Expectations,
    baseline: Option<(&Summary, f64)>,
) -> Verdict {
    let mut checks = judge(p, s, completions, expect).checks;
    if !expect.model {
        for c in &mut checks {
            c.advisory = true;
        }
    }
    // Not a model check: a run that did not make its load proves nothing either way.
    checks.push(delivery(s, expect));
    checks.extend(expectations(s, expect));
    checks.extend(margin_check(p, expect));
    if let Some((base, margin)) = baseline {
        checks.extend(against_baseline(s, base, margin));
    }
    Verdict {
        pass: checks.iter().all(|c| c.pass || c.advisory),
        checks,
        inconclusive: None,
    }
}

/// failed / attempts and completed / attempts (None without attempts).
fn rates(s: &Summary) -> Option<(f64, f64)> {
    (s.attempts > 0).then(|| {
        let n = s.attempts as f64;
        (s.failed as f64 / n, s.completed as f64 / n)
    })
}

/// The `[expect]` checks, named `expect.<key>`.
pub fn expectations(s: &Summary, e: &Expectations) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(want) = e.exhaustion {
        checks.push(yes_no(
            "expect.exhaustion",
            want,
            s.exhaustion.first_s.is_some(),
            None,
        ));
    }
    let no_attempts = |name: &str, limit: f64| Check {
        name: name.to_string(),
        expected: json!(limit),
        measured: Value::Null,
        error_pct: None,
        tolerance_pct: None,
        pass: false,
        note: Some("no connection was attempted".into()),
        advisory: false,
    };
    if let Some(max) = e.max_error_rate {
        checks.push(match rates(s) {
            Some((failed, _)) => bound("expect.max_error_rate", max, failed, Bound::Max, None),
            None => no_attempts("expect.max_error_rate", max),
        });
    }
    if let Some(min) = e.min_success_rate {
        checks.push(match rates(s) {
            Some((_, ok)) => bound("expect.min_success_rate", min, ok, Bound::Min, None),
            None => no_attempts("expect.min_success_rate", min),
        });
    }
    if let Some(max_ms) = e.max_connect_p99_ms {
        let l = &s.connect_latency_us;
        checks.push(if l.count == 0 {
            no_attempts("expect.max_connect_p99_ms", max_ms)
        } else {
            bound(
                "expect.max_connect_p99_ms",
                max_ms,
                l.p99 as f64 / 1000.0,
                Bound::Max,
                None,
            )
        });
    }
    for name in &e.errors {
        let count = s.errors.get(name).map_or(0, |e| e.count);
        checks.push(bound(
            &format!("expect.errors.{name}"),
            1.0,
            count as f64,
            Bound::Min,
            None,
        ));
    }
    checks
}

/// `[expect] min_margin`: the headroom P / (R x T), the inverse of the model's margin, must
/// reach the minimum. It narrows when the rate or the hold time rises, when the ports shrink,
/// and when a client stops reusing connections (its R becomes the request rate).
pub fn margin_check(p: &Prediction, e: &Expectations) -> Option<Check> {
    let min = e.min_margin?;
    let name = "expect.min_margin";
    let explained = |mut c: Check, why: String| {
        c.note = Some(why);
        c
    };
    Some(match p.margin {
        Some(m) if m > 0.0 => {
            let mut c = bound(name, min, 1.0 / m, Bound::Min, None);
            if !c.pass {
                c = explained(
                    c,
                    format!(
                        "at least: ports / (rate x hold), the load would hold {:.0} ports of {}",
                        m * p.ports_effective as f64,
                        p.ports_effective
                    ),
                );
            }
            c
        }
        Some(_) => explained(
            yes_no(name, true, true, None),
            "the load holds no port; any headroom".into(),
        ),
        None => Check {
            name: name.to_string(),
            expected: json!(min),
            measured: Value::Null,
            error_pct: None,
            tolerance_pct: None,
            pass: false,
            note: Some(if p.ports_effective == 0 {
                "no port is free at all".into()
            } else {
                "no rate, so no margin; give the load a rate".into()
            }),
            advisory: false,
        },
    })
}

/// The checks `extra` added to a verdict, which then passes only if they hold too.
pub fn add_checks(v: &mut Verdict, extra: Vec<Check>) {
    v.checks.extend(extra);
    v.pass = v.checks.iter().all(|c| c.pass || c.advisory);
}

/// `--baseline`: p99 connect latency may not rise, nor the success rate fall, by more than
/// `margin` percent of the baseline's.
pub fn against_baseline(s: &Summary, base: &Summary, margin: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    // Your own client's figures are not portlab's attempts and connect latencies (a pooled
    // client completes many requests per connection): its baseline check is its pooling.
    let own_client = s.client_exec.is_some() || base.client_exec.is_some();
    let (new, old) = (&s.connect_latency_us, &base.connect_latency_us);
    if new.count > 0 && old.count > 0 && !own_client {
        let mut c = bound(
            "baseline.connect_p99_us",
            old.p99 as f64,
            new.p99 as f64,
            Bound::Max,
            Some(margin),
        );
        c.note = Some(format!("baseline p99, at most {margin}% higher"));
        checks.push(c);
    }
    if let (Some((_, new)), Some((_, old)), false) = (rates(s), rates(base), own_client) {
        let mut c = bound("baseline.success_rate", old, new, Bound::Min, Some(margin));
        c.note = Some(format!("baseline success rate, at most {margin}% lower"));
        checks.push(c);
    }
    // Your own client (--client-exec): one that reused its connections must still do so.
    if let (Some(new), Some(old)) = (&s.client_exec, &base.client_exec) {
        if old.pooled {
            let per = |c: &super::client_exec::ClientExecSummary| match c.requests {
                Some(r) => format!("{} connections for {r} requests", c.connections),
                None => format!("{} connections", c.connections),
            };
            checks.push(yes_no(
                "baseline.client_pooled",
                true,
                new.pooled,
                (!new.pooled).then(|| {
                    format!(
                        "the client stopped reusing connections: {}, the baseline {}",
                        per(new),
                        per(old)
                    )
                }),
            ));
        }
    }
    checks
}

/// Resource failures that are neither port exhaustion nor the server's doing: the client's
/// process or kernel ran short (descriptors, file table, memory, buffers).
const RESOURCE_ERRORS: [&str; 4] = ["EMFILE", "ENFILE", "ENOMEM", "ENOBUFS"];

/// How late the load phase may end (its last start made late) before `delivery` counts it
/// against the rate, seconds.
const LATE_END_S: f64 = 0.025;

/// At most this share of attempts may fail for a resource (or an unexpected refusal).
const RESOURCE_SHARE: f64 = 0.001;

/// The `delivery` check: did the run make the load it planned? Starts per second made
/// against planned (within 1% unless `--tolerance delivery=PCT`, or 25 ms of the load's length
/// if more; a closed loop is judged by its own measured rate), no start dropped, none aborted by the drain, and resource failures
/// that are not port exhaustion (EMFILE, ENFILE, ENOMEM, ENOBUFS, and ECONNREFUSED unless the
/// scenario expects it) under 0.1% of attempts. A run that falls short says what fell short and
/// its likely bottleneck, in the check's note.
pub fn delivery(s: &Summary, expect: &Expectations) -> Check {
    use crate::plan::Rate;
    let scale = s
        .plan
        .lab
        .as_ref()
        .and_then(|l| l.time_scale)
        .unwrap_or(1.0);
    // A shard's plan holds the whole run's rate R; the shard itself makes R / N.
    let shards = s.plan.load.shard.map_or(1.0, |sh| f64::from(sh.count));
    let planned = match s.plan.load.rate {
        Some(Rate::PerSecond(r)) => r * scale / shards,
        // Closed loop: as fast as it goes, so its own rate is the plan.
        Some(Rate::Max) | None => s.achieved_rate,
    };
    // 1%, but never less than 25 ms of the load's length: the last start of a short run
    // made a few ms late on a busy machine (the pacer thread kept off the CPU) stretches the
    // load phase, and with it the rate's denominator, without any start going unmade.
    let tol = expect.tolerance.get("delivery").copied().unwrap_or(1.0);
    let tol = match s.load_duration_s {
        d if d > 0.0 => tol.max(LATE_END_S / d * 100.0),
        _ => tol,
    };
    let mut c = bound("delivery", planned, s.achieved_rate, Bound::Min, Some(tol));
    let eexhaustion = s.exhaustion.kind.as_deref();
    let resource: Vec<(&str, u64)> = s
        .errors
        .iter()
        .filter(|(name, _)| {
            let name = name.trim_start_matches("WSA");
            (RESOURCE_ERRORS.contains(&name) && Some(name) != eexhaustion)
                || (name == "ECONNREFUSED" && !expect.errors.iter().any(|e| e == "ECONNREFUSED"))
        })
        .map(|(name, e)| (name.as_str(), e.count))
        .collect();
    let resource_total: u64 = resource.iter().map(|(_, n)| n).sum();
    let resource_limit = (s.attempts as f64 * RESOURCE_SHARE).floor() as u64;
    let mut short = Vec::new();
    if !c.pass && !s.interrupted {
        short.push(format!(
            "delivered {} of {} starts/s",
            thousands(s.achieved_rate),
            thousands(planned)
        ));
    }
    if s.dropped > 0 {
        short.push(format!(
            "{} due starts dropped (--max-in-flight {} reached)",
            thousands(s.dropped as f64),
            s.plan.load.max_in_flight.unwrap_or(0)
        ));
    }
    if s.aborted > 0 {
        short.push(format!(
            "{} connections still in flight were aborted when --drain-timeout ran out",
            thousands(s.aborted as f64)
        ));
    }
    if resource_total > resource_limit {
        let list: Vec<String> = resource.iter().map(|(n, c)| format!("{n} {c}")).collect();
        short.push(format!(
            "{} of {} attempts failed for want of a resource ({}), more than the {} allowed (0.1%)",
            thousands(resource_total as f64),
            thousands(s.attempts as f64),
            list.join(", "),
            resource_limit
        ));
    }
    c.pass = c.pass && short.is_empty();
    c.note = Some(if short.is_empty() {
        format!(
            "starts/s made of planned; dropped 0, aborted 0, resource failures {resource_total}"
        )
    } else {
        format!(
            "{}; likely bottleneck: {}",
            short.join("; "),
            bottleneck(s, planned)
        )
    });
    c
}

/// 3575 -> "3,575" (rounded to a whole number).
fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Why a run fell short, in plain words, from its own figures: descriptors or memory first,
/// then whichever part of a connection's time kept too many in flight for --max-in-flight
/// (Little's law: in flight = rate x time per connection), then a client that could not keep
/// its schedule.
fn bottleneck(s: &Summary, planned: f64) -> String {
    let has = |n: &str| s.errors.get(n).is_some_and(|e| e.count > 0);
    if has("EMFILE") {
        return "the process ran out of file descriptors (EMFILE): raise its limit (ulimit -n, RLIMIT_NOFILE) above the connections in flight".into();
    }
    if has("ENFILE") {
        return "the system's file table is full (ENFILE): fs.file-max, or fewer connections in flight".into();
    }
    if has("ENOMEM") || has("ENOBUFS") {
        return "the kernel ran short of socket memory (ENOMEM / ENOBUFS)".into();
    }
    if has("ECONNREFUSED") {
        return "the target refused connections (ECONNREFUSED): is the server listening, and does it keep up?".into();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let connect = &s.connect_latency_actual_us;
    let exchange = &s.exchange_latency_us;
    let lag = &s.schedule_lag_us;
    let max_in_flight = s.plan.load.max_in_flight.unwrap_or(0);
    // Little's law on the run itself: with every slot busy, N slots carrying the achieved
    // rate were each held N / achieved seconds per connection; the planned rate needed
    // planned x that many in flight.
    let in_flight = if s.dropped > 0 && s.achieved_rate > 0.0 {
        let held_s = f64::from(max_in_flight) / s.achieved_rate;
        format!(
            " (each of the --max-in-flight {max_in_flight} slots was held {:.2} ms per connection, so {} starts/s needed about {} in flight)",
            held_s * 1000.0,
            thousands(planned),
            thousands((planned * held_s).ceil())
        )
    } else {
        String::new()
    };
    let overflows = s
        .kernel
        .as_ref()
        .and_then(|k| k.get("ListenOverflows"))
        .copied()
        .unwrap_or(0);
    if overflows > 0 && connect.p99 >= 900_000 {
        // A SYN dropped by a full accept queue is sent again after 1 s: connects of a second
        // or more are the server not accepting fast enough, not the port search.
        return format!(
            "connect() took {:.1} ms at p99: the server's accept queue overflowed {} times (ListenOverflows) and each dropped SYN waited 1 s to be sent again; the server, or this machine's CPU, did not keep up with the accepts{in_flight}",
            ms(connect.p99),
            thousands(overflows as f64)
        );
    }
    if exchange.count > 0 && exchange.p99 >= 1000 && exchange.p99 >= connect.p99 {
        return format!(
            "the server took {:.1} ms at p99 to answer (exchange): a slow server (an accept delay, a busy backend){in_flight}",
            ms(exchange.p99)
        );
    }
    // The connections' own time (connect and exchange, from their actual start) already
    // needs more slots than allowed: the limit, not the kernel or the server, is short.
    let own_s = (connect.mean + exchange.mean) / 1e6;
    if s.dropped > 0 && planned * own_s >= f64::from(max_in_flight) {
        return format!(
            "too few connections allowed in flight: at {:.3} ms per connection (connect and exchange) {} starts/s need about {} in flight, more than --max-in-flight {max_in_flight}: raise --max-in-flight",
            own_s * 1000.0,
            thousands(planned),
            thousands((planned * own_s).ceil())
        );
    }
    if connect.count > 0 && connect.p99 >= 1000 {
        let why = if s.nat.is_some() {
            "SYNs dropped and retransmitted (1 s, then 2 s more): the NAT had no port to map \
             them to, or the server's TIME_WAIT on a reused 4-tuple refused them"
        } else if s.conntrack.as_ref().is_some_and(|c| c.emulated.is_some()) {
            "SYNs the full (emulated) conntrack table dropped, retransmitted after 1 s"
        } else if s.exhaustion.first_s.is_some() || s.timewait.is_some() {
            "the port search over a nearly full range, or a server's full SYN queue"
        } else {
            "a server slow to complete handshakes (its SYN or accept queue)"
        };
        return format!(
            "connect() took {:.1} ms at p99 inside the kernel: {why}{in_flight}",
            ms(connect.p99)
        );
    }
    if s.dropped > 0 {
        return format!(
            "too few connections allowed in flight for the rate{in_flight}: raise --max-in-flight, or give the client more CPU"
        );
    }
    if s.aborted > 0 {
        return format!(
            "connections outlived --drain-timeout{in_flight}: raise it or the timeouts"
        );
    }
    format!(
        "the client could not keep its schedule (schedule lag p99 {:.1} ms): the machine's CPU, or fewer --threads than it needs",
        ms(lag.p99)
    )
}

/// The server's TIME_WAIT when it closes first (passive close), where portlab can see it
/// (its embedded server): one socket per distinct client 4-tuple used within T, so the most
/// at once is the distinct 4-tuples among the connections completed (the model's
/// [`crate::model::tuples_reached`]), at most the model's steady state.
fn server_timewait(p: &Prediction, s: &Summary, tol: f64) -> Option<Check> {
    let pooled = s.plan.client.pool.unwrap_or(0) > 0;
    if p.timewait_side != TimeWaitSide::Server || pooled || s.server.is_none() {
        return None;
    }
    let measured = s.timewait.as_ref()?.server_max? as f64;
    // Every connection of the run, in a run shorter than T; a longer run keeps only the last
    // T's, which the steady state (the model's, from R x T) bounds.
    let made = s.completed as f64;
    let expected = match p.client_tuples {
        Some(n) => crate::model::tuples_reached(n, made),
        None => made,
    }
    .min(p.steady_timewait?)
    .round();
    // The 4-tuples the server saw: when two threads connect at once, Linux's connect() may
    // step back onto a port freed a moment earlier (its offset is advanced without a lock),
    // so fewer than the model's; the SYN took over that 4-tuple's TIME_WAIT. The low end
    // is what the server saw (a lab run at 500/s beside six busy loops: 930 of 1,000).
    let seen = s
        .server
        .as_ref()
        .and_then(|v| v.distinct_peers)
        .map(|d| d as f64);
    // TIME_WAIT an earlier listener on the same port left is counted too (at most all of
    // it: some may expire during the run).
    let before = s
        .timewait
        .as_ref()
        .and_then(|t| t.server_start)
        .unwrap_or(0) as f64;
    let lo = seen.filter(|&d| d < expected).unwrap_or(expected);
    // Behind a NAT every new connection lands on a 4-tuple the server holds in TIME_WAIT
    // once the pool came round: while it is open (or stalled, its SYN refused and the
    // client's reset having ended that TIME_WAIT) the tuple is out of TIME_WAIT. At most
    // the connections in flight are (a lab run at 100/s through 50 ports: 47 of 50).
    let open = s.nat.as_ref().map_or(0.0, |n| n.in_flight_max as f64);
    let lo = (lo - open).max(0.0);
    let mut c = if lo < expected || before > 0.0 {
        in_range("timewait_max", lo, expected + before, measured, tol)
    } else {
        numeric("timewait_max", expected, measured, tol, None)
    };
    let why = "server side: the distinct client 4-tuples among the connections completed, at most the steady state; Linux's connect() steps through the ports of one parity";
    c.note = Some(match seen {
        Some(d) if d < expected => format!(
            "{why}, and reused a port {} time(s) more than that (threads connecting at once): the server saw {d:.0} distinct 4-tuples",
            expected - d
        ),
        _ => why.into(),
    });
    if open > 0.0 {
        let note = c.note.take().unwrap_or_default();
        c.note = Some(format!(
            "{note}; behind the NAT, less the {open:.0} connections in flight at most, each \
             holding its reused 4-tuple out of TIME_WAIT"
        ));
    }
    Some(c)
}

/// TIME_WAIT on the client's side (or on either, when nobody should hold it) against the
/// model's range: between what the hold keeps and what TIME_WAIT keeps, capped by the
/// connections made.
fn client_timewait(p: &Prediction, s: &Summary, t: f64) -> Option<Check> {
    let tw = s.timewait.as_ref()?;
    // TIME_WAIT cannot exceed the connections made; with tcp_tw_reuse a reusable socket
    // may linger until taken, so the count lies between the two model figures.
    let made = s.connected as f64;
    // Only a connection that completed surely ended with the client's FIN: one that
    // failed after connect (its handshake ACK dropped by a full accept queue, say) may
    // end with a reset and no TIME_WAIT. So the low bound counts completed ones.
    let closed = s.completed.min(s.connected) as f64;
    let (lo, hi) = match (p.timewait_side, s.plan.client.pool.unwrap_or(0)) {
        // Pooled connections enter TIME_WAIT only when the pool closes at the end.
        (_, pool) if pool > 0 => (Some(0.0), Some(f64::from(pool))),
        // None of this run's, but those there before it may still be (a host run whose
        // embedded server got a port an earlier run's server had, with that run's
        // TIME_WAIT toward it: 10 seen in a CI run of the whole suite).
        (TimeWaitSide::Nobody, _) => (
            Some(0.0),
            Some(tw.client_start.max(tw.server_start).unwrap_or(0) as f64),
        ),
        // Sockets already there when the run began are counted too (at most all of them,
        // at least none: an earlier run's TIME_WAIT may expire during this one).
        (TimeWaitSide::Client, _) => (
            p.steady_timewait.map(|v| v.min(closed)),
            p.steady_timewait_max
                .or(p.steady_timewait)
                .map(|v| v.min(made) + p.preexisting.unwrap_or(0) as f64),
        ),
        (TimeWaitSide::Server, _) => (None, None),
    };
    let pooled = s.plan.client.pool.unwrap_or(0) > 0;
    let measured = match p.timewait_side {
        TimeWaitSide::Nobody if !pooled => tw.client_max.zip(tw.server_max).map(|(c, s)| c.max(s)),
        _ => tw.client_max,
    };
    let (lo, hi, m) = (lo?, hi?, measured? as f64);
    // A TIME_WAIT socket an RST ended early is missing from the samples until its port is
    // taken again: the low end allows for each.
    let early = ended_early(s) as f64;
    let lo = (lo - early).max(0.0);
    let mut c = in_range("timewait_max", lo, hi, m, t);
    if lo != hi {
        c.note = Some(
            "between min(R x hold, P) and min(R x TIME_WAIT, P), capped by connections made".into(),
        );
    }
    if early > 0.0 && m < lo + early {
        c.note = ended_early_note(s, "the low end is lower by as many");
    }
    Some(c)
}

/// Successes per second after the ports ran out against the model's P / hold, over whole
/// holds from the first hold boundary after the first error (None when the run had fewer
/// than two such holds, or counted over another period).
/// The tracked conntrack table's live entries at the end against the model's: every
/// connection still within its hold (lifetime + the conntrack timeout of its last state)
/// holds one entry. 2% unless `[expect]` says otherwise.
fn conntrack_live(s: &Summary, tol: f64) -> Option<Check> {
    let c = s.conntrack.as_ref()?;
    let ([lo, hi], measured) = (c.model_live?, c.live_end?);
    let hold = c.hold_s.unwrap_or(0.0);
    let mut check = if lo == hi {
        numeric("conntrack_live", lo, measured as f64, tol, None)
    } else {
        in_range("conntrack_live", lo, hi, measured as f64, tol)
    };
    check.note = Some(format!(
        "entries alive at the end: the connections made within {hold:.0} s (the conntrack \
             hold) of it; nf_conntrack_count peaked at {} (expired entries count until the \
             kernel's collector removes them)",
        c.count_max
    ));
    Some(check)
}

/// The lab's emulated full conntrack table (`lab.conntrack_max`) against its model: the
/// connections it admitted (min(attempts, max) within one hold), and whether it dropped
/// any (when more connections came within the hold than it has room for).
fn conntrack_emulated(s: &Summary, tol: f64) -> Vec<Check> {
    let Some(e) = s.conntrack.as_ref().and_then(|c| c.emulated.as_ref()) else {
        return Vec::new();
    };
    let mut checks = Vec::new();
    if let (Some(model), Some(admitted)) = (e.model_admitted, e.admitted) {
        checks.push(numeric(
            "conntrack_admitted",
            model as f64,
            admitted as f64,
            tol,
            Some(format!(
                "new connections the emulated table of {} entries took: min(attempts, its size), \
                 none having expired within the run",
                e.max
            )),
        ));
    }
    if let (Some(model), Some(dropped)) = (e.model_admitted, e.dropped) {
        checks.push(yes_no(
            "conntrack_full",
            s.attempts > model,
            dropped > 0,
            Some(format!(
                "the emulated table dropped {dropped} SYNs of connections it had no room for"
            )),
        ));
    }
    checks
}

/// The tolerance of the checks of what the kernel counts exactly (the conntrack table, the
/// NAT's ports): 2% unless `[expect.tolerance]` names `conntrack_live`.
pub fn kernel_count_tolerance(expect: &Expectations) -> f64 {
    expect
        .tolerance
        .get("conntrack_live")
        .copied()
        .unwrap_or(2.0)
}

/// Behind a NAT with one connection per request: the share of attempts whose SYN may clash
/// with another's mapping and be refused (see [`nat`]).
const NAT_CLASH_SHARE: f64 = 0.01;

/// The lab's NAT against its model: the ports the server saw from it (min(connections,
/// pool): the pool is its capacity toward one destination), and whether it refused new
/// connections (only when more wanted a mapping at once than the pool has ports).
pub fn nat(s: &Summary, tol: f64) -> Vec<Check> {
    let Some(n) = &s.nat else {
        return Vec::new();
    };
    let mut checks = Vec::new();
    if let Some(used) = n.ports_used {
        let mut c = numeric(
            "nat_ports_used",
            n.model.ports_used as f64,
            used as f64,
            tol,
            None,
        );
        c.note = Some(format!(
            "the NAT's ports the server saw: min(connections, the pool's {} ports)",
            n.model.ports
        ));
        checks.push(c);
    }
    checks.push(match n.model.at_once {
        Some(at_once) => yes_no(
            "nat_refused",
            n.model.refused_at_once > 0,
            n.refused > 0,
            Some(format!(
                "{at_once} connections wanting a mapping at once, pool {}; the NAT refused {} \
                 SYNs (conntrack insert_failed)",
                n.model.ports, n.refused
            )),
        ),
        // One connection per request needs few mappings at once: the pool never runs out.
        // What remains are clashes: two SYNs handled at once on two CPUs that picked the
        // same port once the pool is reused (three clients at 30/s each through 50 ports:
        // 1 of 270), each retried after 1 s. At most 1% of the connections.
        None => {
            let mut c = bound(
                "nat_refused",
                (s.attempts as f64 * NAT_CLASH_SHARE).floor(),
                n.refused as f64,
                Bound::Max,
                None,
            );
            c.note = Some(format!(
                "one connection per request never fills the pool of {}; the NAT refused {} \
                 SYNs (conntrack insert_failed: clashes of SYNs handled at once), at most 1% \
                 of the attempts",
                n.model.ports, n.refused
            ));
            c
        }
    });
    checks
}

fn post_exhaustion_rate(
    p: &Prediction,
    s: &Summary,
    completions: &Completions,
    tol: f64,
) -> Option<Check> {
    let rate = p.post_exhaustion_rate?;
    let first = s.exhaustion.first_s?;
    // Ports first come free one hold after the run began; from then on each hold frees
    // P ports. Averaged over whole holds, successes per second = P / hold. The collector
    // counted successes by their own end time per hold (not per timeline interval, whose
    // edges need not fall on the window's), so the count is exact at any --interval.
    let hold = p.hold_s;
    let periods_match = hold > 0.0 && (completions.period_s - hold).abs() <= 1e-6 * hold;
    // The window starts on the first hold boundary at or after both one hold and the
    // first error (a period of the count), and covers whole holds up to the load's end.
    let from = ((first / hold).ceil() as usize).max(1);
    let start = from as f64 * hold;
    let holds = ((s.load_duration_s - start) / hold + 1e-9).floor();
    if !periods_match || holds < 2.0 {
        return None;
    }
    let to = from + holds as usize;
    let stop = to as f64 * hold;
    let completed = completions.between(from, to).unwrap_or(0);
    let measured = completed as f64 / (stop - start);
    // Each TIME_WAIT socket an RST ended early gave its port back for one more success.
    let early = ended_early(s) as f64;
    let hi = rate + early / (stop - start);
    let mut c = in_range("post_exhaustion_rate", rate, hi, measured, tol);
    c.note = Some(format!(
        "successes per second over ({start:.1} s, {stop:.1} s], counted by their own time"
    ));
    if measured > rate {
        if let Some(n) = ended_early_note(s, "as many more successes allowed") {
            c.note = Some(format!("{}; {n}", c.note.unwrap_or_default()));
        }
    }
    Some(c)
}

/// Compares `p` with the run in `s` (and its successes per hold): the model's checks alone,
/// each with its tolerance from `expect`.
pub fn judge(
    p: &Prediction,
    s: &Summary,
    completions: &Completions,
    expect: &Expectations,
) -> Verdict {
    let tol = |name: &str| expect.tolerance_for(name);
    let mut checks = Vec::new();
    let measured_first = s.exhaustion.first_s;
    // The model says when; a run that ends before that cannot show it. A pacer that fell
    // behind stretches the load past its planned length, but cannot use more ports than it
    // made attempts: exhaustion needs more attempts than port slots.
    let expect_exhaustion = p.exhausts
        && p.first_error_s.is_some_and(|t| t < s.load_duration_s)
        && s.attempts > p.ports_effective;
    if p.margin.is_some() || !p.exhausts {
        checks.push(yes_no(
            "exhaustion",
            expect_exhaustion,
            measured_first.is_some(),
            (p.exhausts && !expect_exhaustion)
                .then(|| "predicted, but after the end of the run".to_string()),
        ));
    }
    if let (true, Some(expected), Some(failed_at)) =
        (expect_exhaustion, p.first_error_s, measured_first)
    {
        // The model says which attempt finds no port (number P + 1, due at P / R). When
        // attempts were made late (a busy machine, connect() slowed by a nearly full
        // range), the error comes late by as much: the due time is what the model predicts.
        let (measured, note) = match s.exhaustion.due_s {
            Some(due) if (failed_at - due).abs() > 0.0005 => (
                due,
                Some(format!(
                    "when the first attempt that found no port was due; it failed at {failed_at:.3} s"
                )),
            ),
            Some(due) => (due, None),
            None => (failed_at, None),
        };
        // A TIME_WAIT socket an RST ended early before the ports ran out gave one more
        // attempt a port: the first that found none is up to that many attempts later, each
        // 1 / R = (P / R) / P apart.
        let early = ended_early(s);
        let ports = p.ports_effective.max(1) as f64;
        let latest = if early == 0 {
            expected
        } else {
            expected * (ports + early as f64) / ports
        };
        let mut c = in_range(
            "first_error_s",
            expected,
            latest,
            measured,
            tol("first_error_s"),
        );
        c.note = note;
        if measured > expected {
            if let Some(n) = ended_early_note(s, "as many more attempts found a port") {
                c.note = Some(match c.note {
                    Some(t) => format!("{t}; {n}"),
                    None => n,
                });
            }
        }
        checks.push(c);
    }
    checks.extend(client_timewait(p, s, tol("timewait_max")));
    if let Some(c) = server_timewait(p, s, tol("timewait_max")) {
        checks.push(c);
    }
    let ct_tol = kernel_count_tolerance(expect);
    checks.extend(conntrack_live(s, ct_tol));
    checks.extend(conntrack_emulated(s, ct_tol));
    checks.extend(nat(s, ct_tol));
    if expect_exhaustion {
        checks.extend(post_exhaustion_rate(
            p,
            s,
            completions,
            tol("post_exhaustion_rate"),
        ));
    }
    Verdict {
        pass: checks.iter().all(|c| c.pass),
        checks,
        inconclusive: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real lab run (quickstart: 300 ports at 100/s for 5 s, first error at 3.0 s).
    fn fixture() -> Summary {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/runs/before/summary.json"
        ))
        .expect("fixture summary")
    }

    /// The model for the fixture: 300 ports, 60 s, 100/s.
    fn model() -> Prediction {
        use crate::model::{ModelInput, PortSpec, Profile};
        let input = ModelInput {
            time_wait_s: 60.0,
            rate: Some(100.0),
            ..ModelInput::from_profile(Profile::Custom)
        }
        .with_ports(PortSpec::Count(300), 0)
        .unwrap();
        crate::model::predict(&input)
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).expect(name)
    }

    #[test]
    fn bounds_report_how_far_past_the_limit() {
        let c = bound("x", 0.05, 0.4, Bound::Max, None);
        assert!(!c.pass);
        assert!(
            (c.error_pct.unwrap() - 700.0).abs() < 1e-9,
            "0.4 is 700% past 0.05"
        );
        let c = bound("x", 0.5, 0.6, Bound::Min, None);
        assert_eq!((c.pass, c.error_pct), (true, Some(0.0)));
        let c = bound("x", 100.0, 109.0, Bound::Max, Some(10.0));
        assert!(c.pass, "9% over, 10% allowed");
        let c = bound("x", 100.0, 111.0, Bound::Max, Some(10.0));
        assert!(!c.pass, "11% over, 10% allowed");
    }

    #[test]
    fn expectations_check_the_run_not_the_model() {
        let s = fixture();
        // 200 of 500 failed (0.4), 300 completed (0.6), EADDRNOTAVAIL seen.
        let e = Expectations {
            exhaustion: Some(true),
            max_error_rate: Some(0.5),
            min_success_rate: Some(0.7),
            errors: vec!["EADDRNOTAVAIL".into(), "ECONNRESET".into()],
            ..Expectations::default()
        };
        let checks = expectations(&s, &e);
        assert!(find(&checks, "expect.exhaustion").pass);
        assert!(find(&checks, "expect.max_error_rate").pass);
        assert!(!find(&checks, "expect.min_success_rate").pass);
        assert!(find(&checks, "expect.errors.EADDRNOTAVAIL").pass);
        assert!(!find(&checks, "expect.errors.ECONNRESET").pass);
    }

    #[test]
    fn per_check_tolerance_and_advisory_model_checks() {
        let s = fixture();
        let p = model();
        let mut late = s.clone();
        late.exhaustion.first_s = Some(3.3); // 10% after the model's 3.0 s
        let strict = Expectations::default();
        let v = assess(&p, &late, &Completions::default(), &strict, None);
        assert!(!v.pass, "10% off with the default 5%");
        let mut loose = Expectations::default();
        loose.tolerance.insert("first_error_s".into(), 12.0);
        let v = assess(&p, &late, &Completions::default(), &loose, None);
        assert!(
            find(&v.checks, "first_error_s").pass,
            "12% allowed for this check"
        );
        // The same late error from an attempt that was itself made late: the attempt due
        // at 3.0 s is the one the model names, so the check holds and says why.
        let mut lagged = late.clone();
        lagged.exhaustion.due_s = Some(3.001);
        let v = assess(&p, &lagged, &Completions::default(), &strict, None);
        let c = find(&v.checks, "first_error_s");
        assert!(c.pass, "{c:?}");
        assert!(
            c.note.as_deref().unwrap().contains("failed at 3.300 s"),
            "{c:?}"
        );
        let advisory = Expectations {
            model: false,
            ..Expectations::default()
        };
        let v = assess(&p, &late, &Completions::default(), &advisory, None);
        assert!(
            v.pass,
            "a failed model check does not count when model = false"
        );
        assert!(find(&v.checks, "first_error_s").advisory);
    }

    #[test]
    fn min_margin_is_ports_over_what_the_load_holds() {
        // 300 ports, 100/s held 60 s: the load would hold 6000, a headroom of 0.05.
        let p = model();
        let e = |f| Expectations {
            min_margin: Some(f),
            ..Expectations::default()
        };
        let c = margin_check(&p, &e(0.04)).unwrap();
        assert!(c.pass, "{c:?}");
        assert!((c.measured.as_f64().unwrap() - 0.05).abs() < 1e-9, "{c:?}");
        let c = margin_check(&p, &e(2.0)).unwrap();
        assert!(!c.pass);
        assert_eq!(
            c.explain(),
            "expect.min_margin: expected >= 2, measured 0.050: off by 97.5% (ports / (rate x hold), the load would hold 6000 ports of 300)"
        );
        assert!(margin_check(&p, &Expectations::default()).is_none());
    }

    #[test]
    fn a_run_with_fewer_attempts_than_ports_is_not_expected_to_run_out() {
        let s = fixture();
        let p = model();
        let mut short = s.clone();
        short.attempts = 250; // fewer than the 300 ports, however long the run took
        short.exhaustion.first_s = None;
        let v = judge(
            &p,
            &short,
            &Completions::default(),
            &Expectations::default(),
        );
        assert!(find(&v.checks, "exhaustion").pass, "{:?}", v.checks);
    }

    #[test]
    fn delivery_needs_the_planned_rate_no_drops_no_aborts_and_few_resource_failures() {
        let s = fixture(); // 500 attempts at 100/s over 5 s, nothing dropped or aborted
        let e = Expectations::default();
        let c = delivery(&s, &e);
        assert!(c.pass, "{c:?}");
        assert_eq!(c.expected, json!(100.0));
        let v = assess(&model(), &s, &Completions::default(), &e, None);
        assert!(find(&v.checks, "delivery").pass);

        let mut slow = s.clone();
        slow.achieved_rate = 98.9; // 1.1% short
        let c = delivery(&slow, &e);
        assert!(!c.pass, "{c:?}");
        assert!(
            c.explain().contains("delivered 99 of 100 starts/s"),
            "{}",
            c.explain()
        );
        let mut loose = Expectations::default();
        loose.tolerance.insert("delivery".into(), 2.0);
        assert!(delivery(&slow, &loose).pass, "--tolerance delivery=2");

        let mut dropped = s.clone();
        dropped.dropped = 1;
        let c = delivery(&dropped, &e);
        assert!(
            !c.pass && c.explain().contains("1 due starts dropped"),
            "{c:?}"
        );
        let mut aborted = s.clone();
        aborted.aborted = 3;
        assert!(!delivery(&aborted, &e).pass);
        let v = assess(&model(), &aborted, &Completions::default(), &e, None);
        assert!(!v.pass, "a failed delivery fails the verdict");
        let advisory = Expectations {
            model: false,
            ..Expectations::default()
        };
        let v = assess(&model(), &aborted, &Completions::default(), &advisory, None);
        assert!(!v.pass, "model = false does not make delivery advisory");
    }

    #[test]
    fn delivery_counts_resource_failures_but_not_expected_refusals() {
        use crate::collect::ErrorStat;
        let s = fixture();
        let stat = |count| ErrorStat {
            count,
            phase: "socket".into(),
            first_s: 0.1,
            last_s: 0.2,
            by_phase: Default::default(),
        };
        let mut one = s.clone(); // 500 attempts: 0.1% allows none
        one.errors.insert("EMFILE".into(), stat(1));
        let c = delivery(&one, &Expectations::default());
        assert!(!c.pass, "{c:?}");
        assert!(c.explain().contains("EMFILE 1"), "{}", c.explain());
        assert!(c.explain().contains("ulimit -n"), "{}", c.explain());
        let mut refused = s.clone();
        refused.errors.insert("ECONNREFUSED".into(), stat(5));
        assert!(!delivery(&refused, &Expectations::default()).pass);
        let expected = Expectations {
            errors: vec!["ECONNREFUSED".into()],
            ..Expectations::default()
        };
        assert!(
            delivery(&refused, &expected).pass,
            "a refusal the scenario expects"
        );
        // A closed loop is judged by its own rate.
        let mut closed = s.clone();
        closed.plan.load.rate = Some(crate::plan::Rate::Max);
        closed.achieved_rate = 12_345.0;
        let c = delivery(&closed, &Expectations::default());
        assert!(c.pass && c.expected == json!(12_345.0), "{c:?}");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(3575.4), "3,575");
        assert_eq!(thousands(1_110_013.0), "1,110,013");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn client_timewait_is_judged_against_the_models_range() {
        // 300 ports, 60 s TIME_WAIT, client side: the range is [min(R x hold, completed),
        // min(R x T, made)], the fixture's 300 ports in both.
        let p = model();
        let with = |client_max: Option<u64>, pool: Option<u32>| {
            let mut s = fixture();
            s.timewait.as_mut().unwrap().client_max = client_max;
            s.plan.client.pool = pool;
            s
        };
        // (TIME_WAIT measured, pool, passes)
        let cases = [
            (Some(300), None, true),
            (Some(150), None, false),
            (Some(3), Some(4), true),
            (Some(5), Some(4), false),
        ];
        for (tw, pool, pass) in cases {
            let c = client_timewait(&p, &with(tw, pool), 5.0).expect("a check");
            assert_eq!(c.pass, pass, "{tw:?} {pool:?}: {c:?}");
        }
        assert!(client_timewait(&p, &with(None, None), 5.0).is_none());
        // Nobody holds TIME_WAIT (reset close): none of the run's, but up to those there
        // before it (an earlier run's toward the port the server got again).
        let mut reset = p.clone();
        reset.timewait_side = TimeWaitSide::Nobody;
        let judged = |before: Option<u64>, client_max: u64| {
            let mut s = with(Some(client_max), None);
            let tw = s.timewait.as_mut().unwrap();
            tw.server_max = Some(0);
            tw.client_start = before;
            client_timewait(&reset, &s, 5.0).expect("a check").pass
        };
        assert!(judged(None, 0));
        assert!(!judged(None, 10));
        assert!(judged(Some(10), 10));
        assert!(!judged(Some(10), 11));
        let mut unseen = fixture();
        unseen.timewait = None;
        assert!(client_timewait(&p, &unseen, 5.0).is_none());
    }

    #[test]
    fn server_timewait_allows_down_to_the_4_tuples_the_server_saw() {
        // Passive close, 1,000 connections in a run far shorter than T: the model expects
        // 1,000 server TIME_WAIT sockets. Where the server saw only 930 distinct client
        // 4-tuples (a SYN took over 70 TIME_WAITs), 930 passes and 929 does not; where it
        // saw 1,000, 930 fails.
        let mut p = model();
        p.timewait_side = TimeWaitSide::Server;
        p.client_tuples = None;
        p.steady_timewait = Some(6000.0);
        let judged = |distinct: Option<u64>, server_max: u64| {
            let mut s = fixture();
            s.completed = 1000;
            s.server = Some(crate::results::summary::ServerSummary {
                accepted: 1000,
                distinct_peers: distinct,
                ..crate::results::summary::ServerSummary::default()
            });
            s.timewait.as_mut().unwrap().server_max = Some(server_max);
            server_timewait(&p, &s, 0.0).expect("a check")
        };
        let c = judged(Some(930), 930);
        assert!(c.pass, "{c:?}");
        assert_eq!(c.expected, json!([930.0, 1000.0]));
        assert!(c.note.as_deref().unwrap().contains("930 distinct"), "{c:?}");
        assert!(!judged(Some(930), 929).pass);
        assert!(!judged(Some(930), 1001).pass);
        let c = judged(Some(1000), 930);
        assert!(!c.pass && c.expected == json!(1000.0), "{c:?}");
        assert!(!judged(None, 930).pass, "an older summary: the model alone");
        assert!(judged(None, 1000).pass);
        // 40 TIME_WAIT an earlier listener on the port left: up to 1,040 pass.
        let mut s = fixture();
        s.completed = 1000;
        s.server = Some(crate::results::summary::ServerSummary {
            distinct_peers: Some(1000),
            ..crate::results::summary::ServerSummary::default()
        });
        let tw = s.timewait.as_mut().unwrap();
        tw.server_start = Some(40);
        tw.server_max = Some(1040);
        assert!(server_timewait(&p, &s, 0.0).unwrap().pass);
        s.timewait.as_mut().unwrap().server_max = Some(1041);
        assert!(!server_timewait(&p, &s, 0.0).unwrap().pass);
    }

    #[test]
    fn post_exhaustion_rate_needs_two_whole_holds_counted_over_the_hold() {
        let p = model();
        let mut s = fixture();
        s.exhaustion.first_s = Some(3.0);
        let hold = p.hold_s;
        assert!(hold > 0.0 && p.post_exhaustion_rate.is_some(), "{p:?}");
        // Too short for two holds after the first boundary, or counted per another period.
        s.load_duration_s = 2.5 * hold;
        let counted = Completions::default();
        assert!(post_exhaustion_rate(&p, &s, &counted, 5.0).is_none());
        s.load_duration_s = 10.0 * hold;
        assert!(post_exhaustion_rate(&p, &s, &counted, 5.0).is_none());
        // P successes per hold is the model's P / hold; half as many fails.
        let per_hold = |n: u64| Completions {
            period_s: hold,
            counts: vec![n; 12],
        };
        let c = post_exhaustion_rate(&p, &s, &per_hold(300), 5.0).expect("a check");
        assert!(c.pass, "{c:?}");
        assert!(c
            .note
            .as_deref()
            .unwrap()
            .contains(&format!("{:.1} s", 10.0 * hold)));
        let c = post_exhaustion_rate(&p, &s, &per_hold(150), 5.0).expect("a check");
        assert!(!c.pass, "{c:?}");
    }

    #[test]
    fn time_wait_ended_early_by_an_rst_allows_exactly_that_many_more() {
        use crate::results::summary::{EarlyEndCounter, EndedEarly};
        // The fixture's 300 ports at 100/s: attempt 301 is due at 3.0 s. With 3 TIME_WAIT
        // sockets ended early, attempt 304 may be the first without a port, due at 3.03 s,
        // and the samples may miss up to 3 of the 300 TIME_WAIT sockets.
        let p = model();
        let judged = |early: u64, due: f64, client_max: u64| {
            let mut s = fixture();
            s.exhaustion.due_s = Some(due);
            s.exhaustion.first_s = Some(due);
            s.timewait.as_mut().unwrap().client_max = Some(client_max);
            s.timewait_ended_early = (early > 0).then_some(EndedEarly {
                count: early,
                counter: EarlyEndCounter::OutRsts,
            });
            let expect = Expectations {
                tolerance_pct: 0.0,
                ..Expectations::default()
            };
            judge(&p, &s, &Completions::default(), &expect)
        };
        let v = judged(3, 3.03, 297);
        let first = find(&v.checks, "first_error_s");
        assert!(first.pass, "{first:?}");
        let ends: Vec<f64> = serde_json::from_value(first.expected.clone()).unwrap();
        assert!(ends[0] == 3.0 && (ends[1] - 3.03).abs() < 1e-9, "{ends:?}");
        assert!(
            first
                .note
                .as_deref()
                .unwrap()
                .contains("3 TIME_WAIT socket(s) ended early by an RST (OutRsts - EstabResets)"),
            "{first:?}"
        );
        let tw = find(&v.checks, "timewait_max");
        assert!(tw.pass, "{tw:?}");
        assert_eq!(tw.expected, json!([297.0, 300.0]));
        // One attempt, or one socket, more than the RSTs explain fails; so does any without.
        let v = judged(3, 3.04, 296);
        assert!(!find(&v.checks, "first_error_s").pass);
        assert!(!find(&v.checks, "timewait_max").pass);
        let v = judged(0, 3.01, 299);
        assert!(!find(&v.checks, "first_error_s").pass);
        assert!(!find(&v.checks, "timewait_max").pass);
        assert!(find(&v.checks, "first_error_s").note.is_none());
    }

    #[test]
    fn post_exhaustion_rate_allows_one_success_per_time_wait_ended_early() {
        use crate::results::summary::{EarlyEndCounter, EndedEarly};
        let p = model();
        let hold = p.hold_s;
        let mut s = fixture();
        s.exhaustion.first_s = Some(3.0);
        s.load_duration_s = 3.0 * hold;
        // First boundary at one hold, two whole holds: (hold, 3 hold].
        let counts = |extra: u64| Completions {
            period_s: hold,
            counts: vec![300, 300, 300 + extra, 300],
        };
        let strict = |s: &Summary, extra| post_exhaustion_rate(&p, s, &counts(extra), 0.0).unwrap();
        assert!(
            !strict(&s, 4).pass,
            "4 more successes than P per hold, none explained"
        );
        s.timewait_ended_early = Some(EndedEarly {
            count: 4,
            counter: EarlyEndCounter::Vanished,
        });
        let c = strict(&s, 4);
        assert!(c.pass, "{c:?}");
        assert!(
            c.note
                .as_deref()
                .unwrap()
                .contains("(TW - TWRecycled - left)"),
            "{c:?}"
        );
        assert!(!strict(&s, 5).pass, "one more than explained");
    }
}
