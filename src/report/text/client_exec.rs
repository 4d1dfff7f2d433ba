//! The text report's plain-words lines for a `--client-exec` run (summary.json's
//! `client_exec`, `results::client_exec`).

use crate::results::client_exec::ClientExecSummary;

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

/// Whether and when it ran out, against the model; or why it did not. `rate` is the
/// measured rate as the text shows it.
fn outcome(c: &ClientExecSummary, rate: &str, predicted: Option<f64>) -> String {
    let ran_out = c.exhausted_s.or(c.first_failure_s).or(c.ports_full_s);
    let unsteady = matches!(c.shape.as_deref(), Some("bursty" | "ramping"));
    match (ran_out, c.model_rate.or(c.measured_rate)) {
        (Some(t), Some(r)) if c.model_first_error_s.is_some() || c.exhausted_s.is_none() => {
            let pr = c.model_first_error_s.unwrap_or(c.ports as f64 / r);
            let how = if (t - pr).abs() <= pr * 0.05 {
                "as"
            } else {
                "while"
            };
            let model = if unsteady {
                format!(
                    "the model (its connections reaching {} ports) says {pr:.2} s",
                    c.ports
                )
            } else {
                format!("{} / {r:.1} = {pr:.2} s predicts", c.ports)
            };
            format!(
                "  ran out after {t:.2} s {how} {model}{}",
                if c.first_failure_s.is_none() {
                    " (the ports were seen full; it printed no failure portlab recognised)"
                } else {
                    ""
                }
            )
        }
        (Some(t), _) => format!(
            "  ran out after {t:.2} s, where the model on the measured rate said it would not ({})",
            match predicted {
                Some(p) => format!("first error at {p:.2} s, after the run"),
                None => "no exhaustion".to_string(),
            }
        ),
        (None, _) => {
            let why = match (c.close_side.as_str(), c.pooled, predicted) {
                (_, true, _) => "it pools: a few connections carry every request".to_string(),
                _ if c.tw_reuse_applies => "tcp_tw_reuse lets connect() take a TIME_WAIT port toward this destination, so its ports recycle".to_string(),
                ("mixed", _, t) => format!(
                    "the server closed first often enough that only {:.0}% of its connections held a port in TIME_WAIT; at {} conn/s that runs out after {}",
                    // The share the model's rate was given (port_share or client_share).
                    match (c.model_rate, c.measured_rate) {
                        (Some(m), Some(r)) if r > 0.0 => m / r,
                        _ => c.client_share.unwrap_or(0.0),
                    } * 100.0,
                    c.model_rate.map_or("-".into(), |r| format!("{r:.1}")),
                    t.map_or("never".into(), |t| format!("{t:.2} s, later than the run"))
                ),
                ("server", _, _) => {
                    "the server closes first, so its TIME_WAIT holds none of the client's ports"
                        .to_string()
                }
                ("none", _, _) => "no TIME_WAIT held its ports".to_string(),
                (_, _, Some(t)) => format!("the run ended before the model's first error at {t:.2} s"),
                _ => format!(
                    "{rate} conn/s x the hold stays within the {} ports",
                    c.ports
                ),
            };
            format!("  did not run out: {why}")
        }
    }
}

/// How the rate was measured: its window and witness, and the shape of the load.
fn rate_line(c: &ClientExecSummary) -> Option<String> {
    let [from, to] = c.rate_window_s?;
    let mean = c.measured_rate?;
    let mut line = format!(
        "  rate: {mean:.1} conn/s over {} connections, {from:.3} to {to:.3} s after it started (first to last before it ran out, timed by {})",
        c.rate_connections.unwrap_or(0),
        if c.rate_source == "server_accepts" {
            "the embedded server's accepts"
        } else {
            "the samples"
        }
    );
    if let (Some(shape), Some(avg), Some(peak), Some(cur)) =
        (&c.shape, c.average_rate, c.peak_rate, c.current_rate)
    {
        line.push_str(&format!(
            "; {shape}: {avg:.1}/s on average (fitted), {peak:.0}/s at its peak (0.1 s), {cur:.1}/s at the end"
        ));
    }
    Some(line)
}

/// The destinations, when there are several: one range shared or one each.
fn destinations_line(c: &ClientExecSummary) -> Option<String> {
    if c.shared_range {
        return Some(format!(
            "  one range for every destination: its sockets toward different destinations never shared a local port (it binds before connect()), so all its connections draw on the same {} ports",
            c.ports
        ));
    }
    let (Some(target), Some(all)) = (c.target_connections, c.all_connections) else {
        return None;
    };
    Some(format!(
        "  {} destinations: {target} of its {all} connections went to the target; with plain connect() each destination has {} ports of its own, so the target's share of its rate is what runs them out",
        c.destinations, c.ports
    ))
}

/// The line that says the embedded server closed first because the client's HTTP requests
/// asked for it (None when none did).
pub fn asked_to_close(server: &crate::results::summary::ServerSummary) -> Option<String> {
    let (n, m) = (server.closed_on_request, server.accepted);
    let whose = if 2 * n > m {
        "TIME_WAIT"
    } else {
        "their TIME_WAIT"
    };
    (n > 0).then(|| {
        format!(
            "  the client asked the server to close (HTTP/1.0 or Connection: close) on {n} of {m} connections: {whose} lands on the server, as with nginx"
        )
    })
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
        match (c.target_connections, c.all_connections, c.measured_rate) {
            // Several destinations: the rate is the target's, the count everyone's.
            (Some(target), Some(all), Some(r)) if target > 0 => format!(
                "  opened {:.1} connections/s in all ({all}{requests}), {rate}/s of them ({target}) toward the target, {closed}, {pooled}",
                r * all as f64 / target as f64
            ),
            _ => format!(
                "  opened {rate} connections/s ({} in all{requests}), {closed}, {pooled}",
                c.connections
            ),
        }
    });
    lines.extend(rate_line(c));
    lines.extend(destinations_line(c));
    lines.push(outcome(c, &rate, predicted));
    if let (Some(late), Some(t)) = (c.failure_line_late_s, c.exhausted_s) {
        lines.push(format!(
            "  its failure line came {late:.2} s after the ports ran out at {t:.2} s (a summary printed at exit, or late output): the line says what failed, the {} say when",
            if c.exhaustion_source == "server_accepts" {
                "embedded server's accepts"
            } else {
                "samples"
            }
        ));
    }
    if c.tw_reuse_applies && c.exhausted_s.is_none() && c.tw_client_max >= c.ports.saturating_sub(1)
    {
        lines.push(
            "  every port was in TIME_WAIT at times, but tcp_tw_reuse lets connect() take one: not exhaustion"
                .to_string(),
        );
    }
    if let Some([at, len]) = c.stalled {
        lines.push(format!(
            "  STALLED: no connection and no request for {len:.1} s from {at:.2} s while it still ran (inconclusive)"
        ));
    }
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
    fn a_server_closed_on_request_is_said() {
        let served = |accepted, closed_on_request| crate::results::summary::ServerSummary {
            accepted,
            closed_on_request,
            ..Default::default()
        };
        assert_eq!(asked_to_close(&served(300, 0)), None);
        assert_eq!(
            asked_to_close(&served(300, 300)).as_deref(),
            Some("  the client asked the server to close (HTTP/1.0 or Connection: close) on 300 of 300 connections: TIME_WAIT lands on the server, as with nginx")
        );
        let some = asked_to_close(&served(300, 12)).unwrap();
        assert!(
            some.ends_with(
                "on 12 of 300 connections: their TIME_WAIT lands on the server, as with nginx"
            ),
            "{some}"
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
            "  did not run out: the run ended before the model's first error at 6.00 s"
        );
        let line = outcome(&closed_by("server", Some(0.0)), "-", None);
        assert!(line.contains("the server closes first"), "{line}");
    }
}
