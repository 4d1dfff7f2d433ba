//! When a client ran out, from which witness, and over which window its rate is measured.
//!
//! Three witnesses can date the exhaustion, and they disagree for a reason each time:
//! - the client's failure line says *what* failed, and usually when; but a load generator
//!   may print its errors only in a final summary (`[300] Get ...: connect: cannot assign
//!   requested address`, printed at exit), and a line is stamped when portlab read it;
//! - the samples see TIME_WAIT + ESTABLISHED toward the destination reach P (every
//!   `client.sample`; not exhaustion where tcp_tw_reuse lets connect() take a TIME_WAIT port);
//! - the embedded server sees the connections stop: its last accept before a gap.
//!
//! The line is taken unless it came later than the kernel's view by more than two samples
//! and 5%; then the kernel's time is used and the report says so. The rate is measured
//! from the first connection to the last one before that moment, from the server's accept
//! times where there are some (else from the samples), so that it does not include the
//! client's start-up, its idle tail, or the moment it ran out.

use super::activity::{self, Activity};
use super::sample::Point;

/// Which witness dated the exhaustion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client's first failure line.
    FailureLine,
    /// The samples: the ports were seen full.
    PortsFull,
    /// The embedded server: its last accept before the connections stopped.
    ServerAccepts,
    /// Nothing ran out.
    None,
}

impl Source {
    /// summary.json's `exhaustion_source`.
    pub fn name(self) -> &'static str {
        match self {
            Source::FailureLine => "failure_line",
            Source::PortsFull => "ports_full",
            Source::ServerAccepts => "server_accepts",
            Source::None => "none",
        }
    }
}

/// What the witnesses say, seconds since the command started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Witnesses {
    /// The first failure line that counts, and whether it is a late summary line.
    pub line: Option<(f64, bool)>,
    /// When the samples saw the ports full (None where a full count is not exhaustion).
    pub ports_full: Option<f64>,
    /// Whether `ports_full` was placed at the server's accept that filled the ports (to the
    /// clock's resolution), not only between two samples.
    pub full_precise: bool,
    /// The embedded server's last accept before the connections stopped.
    pub accepts_stopped: Option<f64>,
    /// The sampling interval, seconds.
    pub sample_s: f64,
}

/// The exhaustion's time and witness; and, when the line came later than the kernel's
/// view, by how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// When the ports ran out (None: they did not).
    pub at: Option<f64>,
    /// Who said so.
    pub source: Source,
    /// The failure line came this much later than `at` (a late or summary line).
    pub line_late_by: Option<f64>,
}

/// How much later than the kernel's view a line may come and still date the exhaustion:
/// two samples (the samples' own resolution) and 5%; or, when the kernel's time is the
/// accept that filled the ports, 2% and 5 ms (a client's next attempt comes one interval
/// later, and printing a Python traceback took 7 ms: 7% of a fast client's 0.09 s).
pub fn line_slack(kernel_at: f64, sample_s: f64, precise: bool) -> f64 {
    if precise {
        (0.02 * kernel_at).max(0.005)
    } else {
        (2.0 * sample_s).max(0.05 * kernel_at)
    }
}

/// Dates the exhaustion (see the module's doc).
pub fn decide(w: &Witnesses) -> Decision {
    let kernel = match (w.ports_full, w.accepts_stopped) {
        (Some(f), _) => Some((f, Source::PortsFull)),
        (None, Some(s)) => Some((s, Source::ServerAccepts)),
        _ => None,
    };
    match (w.line, kernel) {
        (Some((t, late)), Some((k, source)))
            if late
                || t > k + line_slack(
                    k,
                    w.sample_s,
                    w.full_precise && source == Source::PortsFull,
                ) =>
        {
            Decision {
                at: Some(k),
                source,
                line_late_by: Some(t - k),
            }
        }
        (Some((t, _)), _) => Decision {
            at: Some(t),
            source: Source::FailureLine,
            line_late_by: None,
        },
        // No line: the samples alone show exhaustion (a server that stopped accepting
        // proves nothing without a failure).
        (None, Some((k, Source::PortsFull))) => Decision {
            at: Some(k),
            source: Source::PortsFull,
            line_late_by: None,
        },
        _ => Decision {
            at: None,
            source: Source::None,
            line_late_by: None,
        },
    }
}

/// Places the moment the ports were full, `full_at` (from the samples), at the server's
/// resolution: the samples bracket it (full at one, not at the one before), and the
/// connection that filled the ports is the last one accepted within that bracket, since
/// none is accepted once they are full. Unchanged when no accept falls in the bracket (the
/// ports filled another way).
pub fn refine_full(points: &[Point], full_at: f64, accepts: &[f64]) -> f64 {
    let Some(k) = points.iter().position(|p| p.t_s >= full_at - 1e-9) else {
        return full_at;
    };
    let before = points[..k].last().map_or(f64::NEG_INFINITY, |p| p.t_s);
    let until = points[k].t_s;
    let i = accepts.partition_point(|&t| t <= until + 1e-9);
    match i.checked_sub(1).map(|j| accepts[j]) {
        Some(t) if t > before => t,
        _ => full_at,
    }
}

/// The connections of the rate window: from the first to the last one at or before `until`.
pub fn window(times: &[f64], until: Option<f64>) -> &[f64] {
    match until {
        Some(u) => &times[..times.partition_point(|&t| t <= u + 1e-6)],
        None => times,
    }
}

/// The activity of the window, when there were connections.
pub fn activity_until(times: &[f64], until: Option<f64>) -> Option<Activity> {
    activity::describe(window(times, until))
}

/// The share of connections still holding a port toward the destination at the sample
/// halfway through the window (first to `end`), counted against the server's accepts up
/// to that sample: below 1 when connections leave no TIME_WAIT (pgbench -C: 0.59). None
/// before 20 connections.
pub fn port_share(points: &[Point], accepts: &[f64], first: f64, end: f64) -> Option<f64> {
    let half = first + (end - first) / 2.0;
    let used0 = points.first().and_then(Point::ports_used).unwrap_or(0);
    let p = points
        .iter()
        .rfind(|p| p.t_s <= half + 1e-9 && p.t_s > first)?;
    let made = accepts.partition_point(|&t| t <= p.t_s);
    if made < 20 {
        return None;
    }
    let used = p.ports_used()?.saturating_sub(used0);
    Some((used as f64 / made as f64).min(1.0))
}

/// Whether the client took its ports from one range for every destination (bind(0) before
/// connect(), no IP_BIND_ADDRESS_NO_PORT): at the sample holding the most client sockets,
/// other destinations hold at least a fifth of them, together they fill at least half of
/// the `ports`, and no local port serves two destinations. With plain connect(), the
/// kernel gives a port already used toward one destination to another as soon as its
/// search meets it, so at that fill some ports are shared.
pub fn shared_range(points: &[Point], ports: u64) -> bool {
    let Some(p) = points
        .iter()
        .filter(|p| p.all_held.is_some())
        .max_by_key(|p| p.all_held.unwrap_or(0))
    else {
        return false;
    };
    let (Some(held), Some(distinct), Some(target)) = (p.all_held, p.all_ports, p.ports_used())
    else {
        return false;
    };
    let others = held.saturating_sub(target);
    held == distinct && others * 5 >= held && held * 2 >= ports && others > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: Option<(f64, bool)>, full: Option<f64>, stopped: Option<f64>) -> Witnesses {
        Witnesses {
            line,
            ports_full: full,
            accepts_stopped: stopped,
            sample_s: 0.1,
            full_precise: false,
        }
    }

    #[test]
    fn a_line_in_time_dates_the_exhaustion() {
        let d = decide(&w(Some((2.01, false)), Some(1.99), Some(1.99)));
        assert_eq!((d.at, d.source), (Some(2.01), Source::FailureLine));
        // Earlier than the samples (they are a sample late at most): still the line.
        let d = decide(&w(Some((1.9, false)), Some(2.05), None));
        assert_eq!(d.at, Some(1.9));
    }

    #[test]
    fn a_line_printed_at_exit_is_what_failed_not_when() {
        // A load generator printed its errors in its final summary at 4.995 s; the ports
        // were full at 1.989 s.
        let d = decide(&w(Some((4.995, false)), Some(1.989), Some(1.985)));
        assert_eq!((d.at, d.source), (Some(1.989), Source::PortsFull));
        assert!((d.line_late_by.unwrap() - 3.006).abs() < 1e-9);
        // Without a full sample (tcp_tw_reuse, say): the server's last accept.
        let d = decide(&w(Some((4.995, false)), None, Some(1.985)));
        assert_eq!((d.at, d.source), (Some(1.985), Source::ServerAccepts));
        // A summary line is late by definition, even when close.
        let d = decide(&w(Some((2.05, true)), Some(1.99), None));
        assert_eq!(d.source, Source::PortsFull);
        // Late, but nothing else dates it: the line.
        let d = decide(&w(Some((4.995, true)), None, None));
        assert_eq!((d.at, d.source), (Some(4.995), Source::FailureLine));
    }

    #[test]
    fn a_precise_full_time_leaves_less_room_to_a_line() {
        // A fast client filled 200 ports at 0.0915 s; its traceback was read at 0.099 s.
        let mut fast = w(Some((0.099, false)), Some(0.0915), None);
        assert_eq!(
            decide(&fast).source,
            Source::FailureLine,
            "two samples of room"
        );
        fast.full_precise = true;
        let d = decide(&fast);
        assert_eq!((d.at, d.source), (Some(0.0915), Source::PortsFull));
        // A steady 50/s client: its line 40 ms after the 200th accept at 4.0 s stays.
        let steady = Witnesses {
            full_precise: true,
            ..w(Some((4.04, false)), Some(4.0), None)
        };
        assert_eq!(decide(&steady).source, Source::FailureLine);
    }

    #[test]
    fn no_line_no_full_sample_no_exhaustion() {
        let d = decide(&w(None, None, Some(1.0)));
        assert_eq!((d.at, d.source), (None, Source::None));
        let d = decide(&w(None, Some(3.0), None));
        assert_eq!((d.at, d.source), (Some(3.0), Source::PortsFull));
    }

    fn point(t: f64, used: u64, held: u64, distinct: u64) -> Point {
        Point {
            t_s: t,
            tw_client: Some(used),
            established_client: Some(0),
            all_held: Some(held),
            all_ports: Some(distinct),
            ..Point::default()
        }
    }

    #[test]
    fn one_range_for_all_destinations_is_seen_in_distinct_ports() {
        // bind(0) before connect toward two destinations, 200 ports: 100 + 100 sockets on
        // 200 distinct ports.
        let bound = [point(0.0, 0, 0, 0), point(2.0, 100, 200, 200)];
        assert!(shared_range(&bound, 200));
        // Plain connect(): ports served both destinations.
        let plain = [point(0.0, 0, 0, 0), point(2.0, 100, 200, 141)];
        assert!(!shared_range(&plain, 200));
        // One destination only: nothing to say.
        let one = [point(0.0, 0, 0, 0), point(2.0, 200, 200, 200)];
        assert!(!shared_range(&one, 200));
        // Too little of the range used to tell.
        let few = [point(0.0, 0, 0, 0), point(2.0, 20, 40, 40)];
        assert!(!shared_range(&few, 200));
    }

    #[test]
    fn port_share_counts_against_the_servers_accepts() {
        // 100 accepted by 1.0 s, 60 holding a port (the rest ended without TIME_WAIT).
        let accepts: Vec<f64> = (0..200).map(|i| i as f64 * 0.01).collect();
        let points = [
            point(0.0, 0, 0, 0),
            point(0.995, 60, 60, 60),
            point(2.0, 120, 120, 120),
        ];
        let share = port_share(&points, &accepts, 0.0, 2.0).unwrap();
        assert!((share - 0.6).abs() < 0.01, "{share}");
    }

    #[test]
    fn ports_full_is_placed_at_the_last_accept_the_samples_bracket() {
        // Full seen at 2.1 s (not at 2.0): the 200th connection came at 2.009 s.
        let points = [
            point(0.0, 0, 0, 0),
            point(2.0, 160, 160, 160),
            point(2.1, 200, 200, 200),
        ];
        let accepts: Vec<f64> = (0..200)
            .map(|i| 0.5 * (i / 40) as f64 + 0.009 * ((i % 40) as f64 / 39.0))
            .collect();
        let full = refine_full(&points, 2.06, &accepts);
        assert!((full - 2.009).abs() < 1e-9, "{full}");
        // No accept in the bracket: the samples' own estimate.
        assert_eq!(refine_full(&points, 2.06, &accepts[..160]), 2.06);
    }

    #[test]
    fn the_window_ends_at_the_last_connection_before_the_exhaustion() {
        let t = [0.1, 0.2, 0.3, 0.4];
        assert_eq!(window(&t, Some(0.25)), &[0.1, 0.2]);
        assert_eq!(window(&t, None).len(), 4);
    }
}
