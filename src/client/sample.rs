//! The client's namespace, sampled every `client.sample`: what its sockets toward the target
//! show, and what follows from them.
//!
//! A connect() that fails for want of a port sends no SYN, so no kernel counter sees it;
//! the moment the ports are full does show: TIME_WAIT + ESTABLISHED toward the destination
//! reaching P. ActiveOpens counts the connections the client opened, so its deltas give the
//! client's own rate, whatever rate it was asked for.

use serde::{Deserialize, Serialize};

/// One sample, seconds since the client command started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the command started (negative: the baseline before it).
    pub t_s: f64,
    /// Connections the client opened so far: Tcp ActiveOpens, raw, in the lab's namespace;
    /// on the host, where ActiveOpens counts every process, the embedded server's accepts.
    pub active_opens: Option<u64>,
    /// TIME_WAIT sockets toward the target (the client's side).
    pub tw_client: Option<u64>,
    /// TIME_WAIT sockets on the target's port (the server's side).
    pub tw_server: Option<u64>,
    /// ESTABLISHED sockets toward the target.
    pub established_client: Option<u64>,
    /// Requests the embedded server answered so far (None with an external target).
    pub requests: Option<u64>,
    /// Client-side sockets (TIME_WAIT or ESTABLISHED) toward every destination.
    #[serde(default)]
    pub all_held: Option<u64>,
    /// The distinct local ports among `all_held`.
    #[serde(default)]
    pub all_ports: Option<u64>,
    /// TCP segments in and out so far (InSegs + OutSegs, raw): traffic the client made on
    /// connections portlab cannot see into (a pool toward another server).
    #[serde(default)]
    pub segments: Option<u64>,
}

impl Point {
    /// Ports held toward the target: TIME_WAIT + ESTABLISHED.
    pub fn ports_used(&self) -> Option<u64> {
        Some(self.tw_client? + self.established_client?)
    }
}

/// What the samples show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// When the client's first connection was made, seconds since the command started
    /// (interpolated within its sample); None when it made none.
    pub first_connection_s: Option<f64>,
    /// Connections opened (ActiveOpens over the run).
    pub connections: u64,
    /// Requests the embedded server answered.
    pub requests: Option<u64>,
    /// Connections per second from the first connection to `rate_until_s` (the model's R).
    pub measured_rate: Option<f64>,
    /// Where the rate window ends: the ports-full sample, the first failure, or the last
    /// sample (seconds since the command started).
    pub rate_until_s: Option<f64>,
    /// When TIME_WAIT + ESTABLISHED toward the target reached P (seconds since the command
    /// started): within the interval before the first sample that saw it, by the rate before.
    pub ports_full_at: Option<f64>,
    /// The share of the client's connections that went on holding a port toward the target
    /// (TIME_WAIT or ESTABLISHED), at the sample halfway through the rate window: below 1
    /// when the server closes first now and then, or connections leave no TIME_WAIT at all
    /// (pgbench -C under load: 0.59). Measured at half the window so that P / (R x share)
    /// predicts the second half rather than restating it. None before 20 connections.
    pub port_share: Option<f64>,
    /// The lowest share of connections holding a port seen at any sample of the rate window
    /// (from 20 connections on): with `port_share`, how much the share drifted.
    pub port_share_min: Option<f64>,
    /// Most TIME_WAIT seen on the client's side and on the server's.
    pub tw_client_max: u64,
    /// See `tw_client_max`.
    pub tw_server_max: u64,
    /// Most ESTABLISHED toward the target at once.
    pub established_max: u64,
}

/// Analyses the samples (the first is the baseline, before the command started). `ports`
/// is P; `failure_at` the first recognised failure (seconds since the command started),
/// which ends the rate window when it comes before the ports were seen full.
pub fn analyse(points: &[Point], ports: u64, failure_at: Option<f64>) -> Analysis {
    let mut a = Analysis::default();
    let Some(base) = points.first() else {
        return a;
    };
    let opens0 = base.active_opens.unwrap_or(0);
    let opens = |p: &Point| p.active_opens.map_or(0, |v| v.saturating_sub(opens0));
    a.connections = points.last().map_or(0, opens);
    a.requests = points.last().and_then(|p| p.requests);
    for p in points {
        a.tw_client_max = a.tw_client_max.max(p.tw_client.unwrap_or(0));
        a.tw_server_max = a.tw_server_max.max(p.tw_server.unwrap_or(0));
        a.established_max = a.established_max.max(p.established_client.unwrap_or(0));
    }
    // Less one port: an odd-sized range loses one to the kernel's parity rounding.
    let full = ports.saturating_sub(1).max(1);
    // When the count crossed P, between the sample that saw it and the one before (at
    // 125 ports/s and a 0.1 s sample, the sample's time alone was 5.3% late on a 1.6 s run).
    a.ports_full_at = points
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, p)| p.ports_used().is_some_and(|u| u >= full))
        .map(|(i, _)| crossing(points, i, full));
    // The first sample that saw a connection.
    let Some(i) = points.iter().position(|p| opens(p) > 0) else {
        return a;
    };
    let until = match (a.ports_full_at, failure_at) {
        (Some(f), Some(e)) => f.min(e),
        (f, e) => f.or(e).unwrap_or(f64::INFINITY),
    };
    // The window ends at the last sample at or before `until` (the samples count opens).
    let end = points
        .iter()
        .rposition(|p| p.t_s <= until + 1e-9)
        .filter(|&j| j > i)
        .unwrap_or(points.len() - 1);
    let (first, last) = (&points[i], &points[end]);
    let before = &points[i.saturating_sub(1)];
    let in_first = opens(first) as f64;
    // The rate after the first sample, to place the first connection inside its interval.
    let later = if end > i {
        (opens(last) - opens(first)) as f64 / (last.t_s - first.t_s)
    } else {
        0.0
    };
    let start = if later > 0.0 {
        (first.t_s - in_first / later).clamp(before.t_s.max(0.0), first.t_s)
    } else {
        before.t_s.max(0.0)
    };
    a.first_connection_s = Some(start);
    if last.t_s > start {
        a.measured_rate = Some(opens(last) as f64 / (last.t_s - start));
        a.rate_until_s = Some(last.t_s);
    }
    let used_base = base.ports_used().unwrap_or(0);
    a.port_share_min = points[i..=end]
        .iter()
        .filter(|p| opens(p) >= 20)
        .filter_map(|p| {
            let used = p.ports_used()?.saturating_sub(used_base);
            Some((used as f64 / opens(p) as f64).min(1.0))
        })
        .reduce(f64::min);
    let half = start + (last.t_s - start) / 2.0;
    let used0 = base.ports_used().unwrap_or(0);
    a.port_share = points[i..=end]
        .iter()
        .rfind(|p| p.t_s <= half + 1e-9)
        .filter(|p| opens(p) >= 20)
        .and_then(|p| {
            let used = p.ports_used()?.saturating_sub(used0);
            Some((used as f64 / opens(p) as f64).min(1.0))
        });
    a
}

/// When the ports used reached `full`, `points[i]` being the first sample at or above it.
/// The count stops at P, so the sample that saw it full understates the slope: the crossing
/// is placed by the rate of the (up to five) intervals before, from the last sample below,
/// and kept between the two samples; without an earlier rising interval, the sample's time.
fn crossing(points: &[Point], i: usize, full: u64) -> f64 {
    let (before, after) = (&points[i - 1], &points[i]);
    let k = i.saturating_sub(6).max(1);
    let slope = match (points[k].ports_used(), before.ports_used()) {
        (Some(uk), Some(u0)) if k < i - 1 && u0 > uk && u0 < full => {
            (u0 - uk) as f64 / (before.t_s - points[k].t_s)
        }
        _ => return after.t_s,
    };
    let u0 = before.ports_used().unwrap_or(0);
    (before.t_s + (full - u0) as f64 / slope).clamp(before.t_s, after.t_s)
}

/// Who holds TIME_WAIT, from the most seen on each side at once: ("client" | "server" |
/// "mixed" | "none", the client's share).
pub fn close_side(tw_client: u64, tw_server: u64) -> (&'static str, Option<f64>) {
    let total = tw_client + tw_server;
    if total == 0 {
        return ("none", None);
    }
    let share = tw_client as f64 / total as f64;
    // Not all-or-nothing: a server that closes first still races the client's close now and
    // then (python3 -m http.server: 13 client TIME_WAIT against 91 on the server), and
    // the server's count is capped by the client ports it saw (a SYN takes a TIME_WAIT
    // 4-tuple over), so 80% decides.
    let side = if share >= 0.8 {
        "client"
    } else if share <= 0.2 {
        "server"
    } else {
        "mixed"
    };
    (side, Some(share))
}

/// Whether the client pools: far fewer connections than requests (when the server counted
/// them), or, without that count, connections that stay open: no more opened than twice the
/// most ever open at once.
pub fn pooled(connections: u64, requests: Option<u64>, established_max: u64) -> bool {
    match requests {
        Some(r) if r > 0 => r >= 2 * connections.max(1),
        _ => connections > 0 && established_max > 0 && connections <= 2 * established_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client at `rate` from `t0`, holding every port in TIME_WAIT, sampled every `dt`
    /// from -dt, with `ports` ports.
    fn churn(rate: f64, t0: f64, dt: f64, ports: u64, n: usize) -> Vec<Point> {
        (0..n)
            .map(|k| {
                let t = -dt + k as f64 * dt;
                let opened = ((t - t0).max(0.0) * rate).floor() as u64;
                let opened = opened.min(ports);
                Point {
                    t_s: t,
                    active_opens: Some(1000 + opened),
                    tw_client: Some(opened),
                    tw_server: Some(0),
                    established_client: Some(0),
                    requests: None,
                    all_held: Some(opened),
                    all_ports: Some(opened),
                    segments: None,
                }
            })
            .collect()
    }

    #[test]
    fn rate_start_and_ports_full_of_a_steady_client() {
        // 50/s from 0.43 s (a JVM's start-up), 200 ports: full at 0.43 + 4.0 s.
        let points = churn(50.0, 0.43, 0.05, 200, 120);
        let a = analyse(&points, 200, None);
        let rate = a.measured_rate.unwrap();
        assert!((rate - 50.0).abs() < 1.0, "{rate}");
        let start = a.first_connection_s.unwrap();
        assert!((start - 0.43).abs() < 0.03, "{start}");
        // 199 used (parity allowance) at 0.43 + 3.98 s, placed between two samples (within
        // one connection's time: the counts are whole).
        let full = a.ports_full_at.unwrap();
        assert!((full - 0.43 - 3.98).abs() < 0.021, "{full}");
        assert_eq!(a.connections, 200);
        assert_eq!(a.tw_client_max, 200);
    }

    #[test]
    fn ports_full_is_placed_inside_the_sample_interval_not_at_its_end() {
        // 125/s from 0.013 s, 200 ports, a 0.1 s sample: 199 used at 0.013 + 1.592 s, seen
        // by the sample at 1.7 s (6% late); the count stops at 200, so the slope comes from
        // the intervals before.
        let points = churn(125.0, 0.013, 0.1, 200, 40);
        let a = analyse(&points, 200, None);
        let full = a.ports_full_at.unwrap();
        assert!((full - 1.605).abs() < 0.01, "{full}");
        // One sample, no earlier interval: its own time.
        let two = [
            points[0],
            Point {
                t_s: 0.1,
                ..points[30]
            },
        ];
        assert_eq!(analyse(&two, 200, None).ports_full_at, Some(0.1));
    }

    #[test]
    fn port_share_is_the_share_of_connections_holding_a_port_at_half_the_window() {
        // Every connection holds a port: share 1.
        let all = churn(50.0, 0.0, 0.1, 200, 60);
        let share = analyse(&all, 200, None).port_share.unwrap();
        assert!(share > 0.98, "{share}");
        // Only 3 in 5 leave TIME_WAIT (the others end in RST): 0.6, from the first half.
        let some: Vec<Point> = all
            .iter()
            .map(|p| Point {
                tw_client: p.tw_client.map(|n| n * 3 / 5),
                ..*p
            })
            .collect();
        let share = analyse(&some, 200, None).port_share.unwrap();
        assert!((share - 0.6).abs() < 0.02, "{share}");
        // Too few connections to say.
        let few = churn(5.0, 0.0, 0.1, 200, 30);
        assert_eq!(analyse(&few, 200, None).port_share, None);
    }

    #[test]
    fn a_failure_before_the_ports_look_full_ends_the_rate_window() {
        let points = churn(50.0, 0.0, 0.1, 10_000, 60);
        let a = analyse(&points, 10_000, Some(2.0));
        assert_eq!(a.ports_full_at, None);
        assert!((a.rate_until_s.unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn no_connection_no_rate() {
        let points = churn(50.0, 100.0, 0.1, 200, 10);
        let a = analyse(&points, 200, None);
        assert_eq!((a.first_connection_s, a.measured_rate), (None, None));
        assert_eq!(a.connections, 0);
    }

    #[test]
    fn sides_and_pooling() {
        assert_eq!(close_side(200, 0), ("client", Some(1.0)));
        assert_eq!(close_side(0, 194).0, "server");
        assert_eq!(
            close_side(13, 91).0,
            "server",
            "http.server's occasional race"
        );
        assert_eq!(close_side(50, 50), ("mixed", Some(0.5)));
        assert_eq!(close_side(0, 0), ("none", None));
        assert!(pooled(2, Some(400), 2));
        assert!(!pooled(400, Some(400), 1));
        assert!(pooled(4, None, 4), "pgbench: 4 clients, 4 connections held");
        assert!(!pooled(3000, None, 4), "pgbench -C");
    }
}
