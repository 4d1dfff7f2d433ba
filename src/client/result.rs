//! What a client run reports: summary.json's `client_exec`, the verdict's checks on the
//! measured rate, and the plain-words lines of the text report.

use crate::model::{Prediction, TimeWaitSide};
use crate::report::verdict::{numeric, yes_no, Check};
use serde::{Deserialize, Serialize};

/// summary.json `client_exec`. Times are seconds since the client's first connection
/// (`first_connection_s` places that after the command started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientExecSummary {
    /// The command line.
    pub command: String,
    /// Seconds from the command's start to its first connection (start-up: a JVM's ~0.4 s).
    pub first_connection_s: Option<f64>,
    /// Connections per second from the first connection until the ports were full (or its
    /// first failure, or the end): the model's R.
    pub measured_rate: Option<f64>,
    /// The rate the model is given: `measured_rate`, times `client_share` when both sides
    /// hold TIME_WAIT (only the connections the client closed first cost it a port).
    pub model_rate: Option<f64>,
    /// The rate it was asked for (PORTLAB_RATE), which it may not reach.
    pub requested_rate: Option<f64>,
    /// Who holds TIME_WAIT: client, server, mixed, none.
    pub close_side: String,
    /// The client's share of the TIME_WAIT sockets (null: none at all).
    pub client_share: Option<f64>,
    /// Most TIME_WAIT sockets toward the target at once (the client's side).
    pub tw_client_max: u64,
    /// Most TIME_WAIT sockets on the target's port at once (the server's side).
    pub tw_server_max: u64,
    /// Most ESTABLISHED connections toward the target at once.
    pub established_max: u64,
    /// Whether it reuses connections (far fewer connections than requests).
    pub pooled: bool,
    /// Connections it opened (ActiveOpens).
    pub connections: u64,
    /// Requests the embedded server answered (null with another server).
    pub requests: Option<u64>,
    /// Its first recognised failure.
    pub first_failure_s: Option<f64>,
    /// That failure's line, as printed.
    pub failure_line: Option<String>,
    /// The error name that line maps to (EADDRNOTAVAIL, ...).
    pub failure_kind: Option<String>,
    /// Which signature matched (java, python, go, node, dotnet, libpq, strerror, curl,
    /// failure_pattern).
    pub failure_signature: Option<String>,
    /// Recognised failure lines in all.
    pub failures: u64,
    /// When TIME_WAIT + ESTABLISHED toward the target first reached P (one sample late at most).
    pub ports_full_s: Option<f64>,
    /// P: the ports the client had toward the target.
    pub ports: u64,
    /// Where `exhaustion.first_s` comes from: failure_line, ports_full, or none.
    pub exhaustion_source: String,
    /// "exit 1", "signal 15", or "unknown".
    pub exit_status: String,
    /// How portlab stopped it: null (it exited by itself), SIGTERM or SIGKILL.
    pub stopped_by: Option<String>,
    /// Why the run ended: exited, duration, stop_after, interrupted.
    pub ended_by: String,
    /// Its output, one line each: seconds since the command started, stream, text.
    pub log: String,
    /// The samples, one row each (client-samples.csv).
    pub samples: String,
    /// The sampling interval, seconds.
    pub sample_s: f64,
}

/// The model's checks on a client run: exhaustion yes/no, the first failure and the
/// ports-full time against P / R_measured, and who holds TIME_WAIT (when the embedded
/// server decides it: `expected_side`).
pub fn checks(
    p: &Prediction,
    c: &ClientExecSummary,
    ran_s: f64,
    expected_side: Option<&str>,
    tol: impl Fn(&str) -> f64,
) -> Vec<Check> {
    let mut out = Vec::new();
    // A run shorter than P / R cannot show the exhaustion the model predicts. A client that
    // exits on its first failure ends at about P / R itself, so "shorter" allows the first
    // error's tolerance (CI: P / R = 4.14 s on a measured rate, the curl loop out at 4.08 s).
    let slack = 1.0 + tol("first_error_s") / 100.0;
    let due = p.first_error_s.filter(|&t| t <= ran_s * slack);
    let exhausted = c.first_failure_s.is_some() || c.ports_full_s.is_some();
    let note = match (p.exhausts, due) {
        (true, None) => Some(format!(
            "P / R = {} s is after the client's {ran_s:.2} s",
            p.first_error_s.map_or("-".into(), |t| format!("{t:.2}"))
        )),
        _ => None,
    };
    out.push(yes_no("exhaustion", due.is_some(), exhausted, note));
    if let Some(want) = due {
        let rate = c.model_rate.unwrap_or(0.0);
        let why = match (c.close_side.as_str(), c.client_share) {
            ("mixed", Some(share)) => format!(
                "{} / ({:.1} conn/s measured x {:.0}% closed first by the client)",
                c.ports,
                c.measured_rate.unwrap_or(0.0),
                share * 100.0
            ),
            _ => format!("{} / {rate:.1} conn/s measured", c.ports),
        };
        if let Some(t) = c.first_failure_s {
            out.push(numeric(
                "first_error_s",
                want,
                t,
                tol("first_error_s"),
                Some(why.clone()),
            ));
        }
        if let Some(t) = c.ports_full_s {
            out.push(numeric(
                "ports_full_s",
                want,
                t,
                tol("first_error_s"),
                Some(format!("{why}; sampled every {} s", c.sample_s)),
            ));
        }
    }
    // Only connections leave TIME_WAIT anywhere.
    if let Some(side) = expected_side.filter(|_| c.connections > 0) {
        out.push(Check {
            name: "timewait_side".into(),
            expected: serde_json::json!(side),
            measured: serde_json::json!(c.close_side),
            error_pct: None,
            tolerance_pct: None,
            pass: side == c.close_side,
            note: Some("the embedded server's close decides it".into()),
            advisory: false,
        });
    }
    out
}

/// The side the model is given: what was measured (mixed counts as the client's: its
/// share of TIME_WAIT still costs it ports).
pub fn model_side(close_side: &str) -> TimeWaitSide {
    match close_side {
        "server" => TimeWaitSide::Server,
        "none" => TimeWaitSide::Nobody,
        _ => TimeWaitSide::Client,
    }
}

/// How the client closed its connections, from where TIME_WAIT was.
fn closing(c: &ClientExecSummary) -> String {
    match (c.close_side.as_str(), c.client_share) {
        ("client", Some(s)) if s >= 1.0 => "closed first every time".to_string(),
        ("client", Some(s)) => format!(
            "closed first ({:.0}% of the TIME_WAIT on its side)",
            s * 100.0
        ),
        ("server", Some(s)) => format!(
            "the server closed first ({:.0}% of the TIME_WAIT on the server, which costs the client no port)",
            (1.0 - s) * 100.0
        ),
        ("mixed", Some(s)) => format!(
            "closed first about {:.0}% of the time ({:.0}% of the TIME_WAIT on its side)",
            s * 100.0,
            s * 100.0
        ),
        _ => "left no TIME_WAIT on either side".to_string(),
    }
}

/// Whether and when it ran out, against P / R; or why it did not. `rate` is the measured
/// rate as the text shows it.
fn outcome(c: &ClientExecSummary, rate: &str, predicted: Option<f64>) -> String {
    match (
        c.first_failure_s.or(c.ports_full_s),
        c.model_rate.or(c.measured_rate),
    ) {
        (Some(t), Some(r)) => {
            let pr = c.ports as f64 / r;
            let how = if (t - pr).abs() <= pr * 0.05 {
                "as"
            } else {
                "while"
            };
            format!(
                "  ran out after {t:.2} s {how} {} / {r:.1} = {pr:.2} s predicts{}",
                c.ports,
                if c.first_failure_s.is_none() {
                    " (the ports were seen full; it printed no failure portlab recognised)"
                } else {
                    ""
                }
            )
        }
        (Some(t), None) => format!("  ran out after {t:.2} s"),
        (None, _) => {
            let why = match (c.close_side.as_str(), c.pooled, predicted) {
                (_, true, _) => "it pools: a few connections carry every request".to_string(),
                ("mixed", _, t) => format!(
                    "the server closed first often enough that only {:.0}% of its connections held a port in TIME_WAIT; at {} conn/s that runs out after {}",
                    c.client_share.unwrap_or(0.0) * 100.0,
                    c.model_rate.map_or("-".into(), |r| format!("{r:.1}")),
                    t.map_or("never".into(), |t| format!("{t:.2} s, later than the run"))
                ),
                ("server", _, _) => {
                    "the server closes first, so its TIME_WAIT holds none of the client's ports"
                        .to_string()
                }
                ("none", _, _) => "no TIME_WAIT held its ports".to_string(),
                (_, _, Some(t)) => format!("the run ended before P / R = {t:.2} s"),
                _ => format!(
                    "{rate} conn/s x the hold stays within the {} ports",
                    c.ports
                ),
            };
            format!("  did not run out: {why}")
        }
    }
}

/// The text report's lines: what the client did, in plain words.
pub fn text_lines(c: &ClientExecSummary, predicted: Option<f64>) -> Vec<String> {
    let mut lines = vec![format!("your client: `{}`", c.command)];
    let rate = c
        .measured_rate
        .map_or("an unmeasured number of".to_string(), |r| format!("{r:.1}"));
    let closed = closing(c);
    let pooled = if c.pooled {
        "pooled its connections"
    } else {
        "did not pool"
    };
    let requests = c
        .requests
        .map(|r| format!(", {r} requests"))
        .unwrap_or_default();
    lines.push(if c.pooled {
        format!(
            "  opened {} connections in all ({rate}/s{requests}) and kept up to {} open: it {pooled}",
            c.connections, c.established_max
        )
    } else {
        format!(
            "  opened {rate} connections/s ({} in all{requests}), {closed}, {pooled}",
            c.connections
        )
    });
    lines.push(outcome(c, &rate, predicted));
    if let Some(t) = c.ports_full_s.filter(|_| c.first_failure_s.is_some()) {
        lines.push(format!(
            "  ports full (TIME_WAIT + ESTABLISHED = {}) at {t:.2} s",
            c.ports
        ));
    }
    if let (Some(line), Some(kind)) = (&c.failure_line, &c.failure_kind) {
        lines.push(format!("  its first failure ({kind}): `{}`", line.trim()));
    }
    lines.push(format!(
        "  TIME_WAIT at most: client {}, server {}",
        c.tw_client_max, c.tw_server_max
    ));
    let how = match c.ended_by.as_str() {
        "exited" => "it exited by itself".to_string(),
        "duration" => "stopped at --duration".to_string(),
        "stop_after" => "stopped --client-stop-after its first failure".to_string(),
        other => other.to_string(),
    };
    let with = c
        .stopped_by
        .as_deref()
        .map(|s| format!(" with {s}"))
        .unwrap_or_default();
    lines.push(format!("  ended: {how}{with}, {}", c.exit_status));
    lines.push(format!("  its output: {}", c.log));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{predict, ModelInput, PortSpec, Profile};

    fn prediction(ports: u32, rate: f64) -> Prediction {
        let input = ModelInput {
            time_wait_s: 60.0,
            rate: Some(rate),
            ..ModelInput::from_profile(Profile::Custom)
        }
        .with_ports(PortSpec::Count(ports), 0)
        .expect("valid ports");
        predict(&input)
    }

    fn client(first_failure_s: Option<f64>, rate: f64) -> ClientExecSummary {
        ClientExecSummary {
            first_failure_s,
            measured_rate: Some(rate),
            model_rate: Some(rate),
            close_side: "client".into(),
            ports: 200,
            sample_s: 0.1,
            ..Default::default()
        }
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).expect(name)
    }

    #[test]
    fn a_client_that_exits_on_its_failure_ends_near_p_over_r_and_still_counts() {
        // P / R = 200 / 48.3 = 4.14 s; the client failed at 4.0 s and was gone at 4.08 s.
        let p = prediction(200, 48.3);
        let checks = checks(&p, &client(Some(4.0), 48.3), 4.08, None, |_| 5.0);
        assert!(check(&checks, "exhaustion").pass, "{checks:#?}");
        assert!(check(&checks, "first_error_s").pass, "{checks:#?}");
    }

    #[test]
    fn a_run_well_short_of_p_over_r_expects_no_exhaustion() {
        let p = prediction(200, 48.3);
        let quiet = checks(&p, &client(None, 48.3), 3.0, None, |_| 5.0);
        assert!(check(&quiet, "exhaustion").pass, "{quiet:#?}");
        assert_eq!(
            check(&quiet, "exhaustion").expected,
            serde_json::json!(false)
        );
        // Failing that early is not what the model says.
        let early = checks(&p, &client(Some(2.0), 48.3), 3.0, None, |_| 5.0);
        assert!(!check(&early, "exhaustion").pass, "{early:#?}");
    }

    fn closed_by(side: &str, share: Option<f64>) -> ClientExecSummary {
        ClientExecSummary {
            close_side: side.into(),
            client_share: share,
            ports: 300,
            ..ClientExecSummary::default()
        }
    }

    #[test]
    fn closing_says_who_held_time_wait() {
        let cases = [
            ("client", Some(1.0), "closed first every time"),
            (
                "client",
                Some(0.9),
                "closed first (90% of the TIME_WAIT on its side)",
            ),
            (
                "mixed",
                Some(0.5),
                "closed first about 50% of the time (50% of the TIME_WAIT on its side)",
            ),
            ("none", None, "left no TIME_WAIT on either side"),
        ];
        for (side, share, want) in cases {
            assert_eq!(closing(&closed_by(side, share)), want);
        }
        assert!(
            closing(&closed_by("server", Some(0.25))).starts_with("the server closed first (75%")
        );
    }

    #[test]
    fn outcome_compares_the_run_out_with_p_over_r() {
        let ran_out = |first: Option<f64>, full: Option<f64>| ClientExecSummary {
            first_failure_s: first,
            ports_full_s: full,
            measured_rate: Some(100.0),
            ..closed_by("client", Some(1.0))
        };
        // 300 ports at 100/s: 3 s. Within 5% "as", otherwise "while".
        let line = outcome(&ran_out(Some(3.1), None), "100.0", None);
        assert_eq!(
            line,
            "  ran out after 3.10 s as 300 / 100.0 = 3.00 s predicts"
        );
        let line = outcome(&ran_out(Some(4.0), None), "100.0", None);
        assert!(line.contains("4.00 s while 300"), "{line}");
        let line = outcome(&ran_out(None, Some(3.0)), "100.0", None);
        assert!(
            line.ends_with("it printed no failure portlab recognised)"),
            "{line}"
        );
        let line = outcome(&ran_out(None, None), "100.0", Some(6.0));
        assert_eq!(
            line,
            "  did not run out: the run ended before P / R = 6.00 s"
        );
        let line = outcome(&closed_by("server", Some(0.0)), "-", None);
        assert!(line.contains("the server closes first"), "{line}");
    }
}
