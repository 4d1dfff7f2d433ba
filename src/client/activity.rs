//! The client's connections as the embedded server saw them: one accept time each, at the
//! clock's resolution rather than the samples'. From them come the activity window (first
//! to last connection, so neither a slow start nor an idle tail dilutes the rate), the
//! average, peak and current rates, the shape (steady, bursty, ramping), when the
//! cumulative count reached a number of ports, and gaps (a stall, or the moment the
//! connections stopped because the ports ran out).
//!
//! Pure: times are seconds since the command started, sorted.

use serde::{Deserialize, Serialize};

/// How the connections came over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// At one pace: the cumulative count stays near a straight line.
    #[default]
    Steady,
    /// In bursts: the count jumps and pauses around its average line.
    Bursty,
    /// Faster (or slower) as it went: the last third's rate differs from the first's.
    Ramping,
    /// Too few connections to say.
    Unknown,
}

impl Shape {
    /// The word the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Bursty => "bursty",
            Shape::Ramping => "ramping",
            Shape::Unknown => "unknown",
        }
    }
}

/// The connections of a window, described.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Activity {
    /// The first connection, seconds since the command started.
    pub first_s: f64,
    /// The last connection of the window.
    pub last_s: f64,
    /// Connections in the window.
    pub count: u64,
    /// The rate over the window as the client would count it: (n - 1) / (last - first).
    /// Ending at the exhaustion, P over it is when the ports filled, whatever the shape (a
    /// fast client on a busy machine pauses now and then, which tilts a fitted line:
    /// 3,697/s fitted against its own 3,276/s).
    pub span_rate: Option<f64>,
    /// The average pace: the least-squares slope of the cumulative count, which the phase of
    /// a burst at the window's end does not move much (40 every 0.5 s: 80/s, where the span
    /// rate says 99.5/s after 5 bursts).
    pub mean_rate: Option<f64>,
    /// The most connections in any [`PEAK_WINDOW_S`], per second.
    pub peak_rate: Option<f64>,
    /// The rate over the last third of the window (at least [`MIN_FOR_RATE`] connections):
    /// what a ramping client runs at now.
    pub current_rate: Option<f64>,
    /// Steady, bursty or ramping.
    pub shape: Shape,
}

/// Connections needed before a rate or a shape is given.
pub const MIN_FOR_RATE: usize = 10;
/// The window of the peak rate, seconds.
pub const PEAK_WINDOW_S: f64 = 0.1;

/// The least-squares slope of the cumulative count (1, 2, ... n) against `times`.
fn slope(times: &[f64]) -> Option<f64> {
    let n = times.len();
    if n < 2 {
        return None;
    }
    let mean_t = times.iter().sum::<f64>() / n as f64;
    let mean_k = (n as f64 + 1.0) / 2.0;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &t) in times.iter().enumerate() {
        let dt = t - mean_t;
        num += dt * ((i + 1) as f64 - mean_k);
        den += dt * dt;
    }
    (den > 0.0)
        .then(|| num / den)
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// Describes the connections at `times` (sorted).
pub fn describe(times: &[f64]) -> Option<Activity> {
    let (&first_s, &last_s) = (times.first()?, times.last()?);
    let n = times.len();
    let mut a = Activity {
        first_s,
        last_s,
        count: n as u64,
        shape: Shape::Unknown,
        ..Activity::default()
    };
    if n < MIN_FOR_RATE || last_s <= first_s {
        return Some(a);
    }
    let mean = slope(times);
    a.mean_rate = mean;
    // The most in any PEAK_WINDOW_S (two pointers).
    let mut most = 0usize;
    let mut lo = 0usize;
    for hi in 0..n {
        while times[hi] - times[lo] >= PEAK_WINDOW_S {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    a.peak_rate = Some(most as f64 / PEAK_WINDOW_S);
    let span = last_s - first_s;
    let third = |from: f64, to: f64| -> Vec<f64> {
        times
            .iter()
            .copied()
            .filter(|&t| t >= from && t <= to)
            .collect()
    };
    let tail = third(last_s - span / 3.0, last_s);
    let tail = if tail.len() >= MIN_FOR_RATE {
        tail
    } else {
        times[n - MIN_FOR_RATE..].to_vec()
    };
    a.current_rate = slope(&tail);
    a.shape = shape(times, mean, a.current_rate);
    a.span_rate = Some((n - 1) as f64 / (last_s - first_s));
    Some(a)
}

/// Steady when the cumulative count stays within max(3, 4%) of its least-squares line;
/// otherwise ramping when the last third's rate differs from the first third's by more
/// than 40%, else bursty.
fn shape(times: &[f64], mean: Option<f64>, current: Option<f64>) -> Shape {
    let (Some(rate), n) = (mean, times.len()) else {
        return Shape::Unknown;
    };
    let mean_t = times.iter().sum::<f64>() / n as f64;
    let mean_k = (n as f64 + 1.0) / 2.0;
    let worst = times
        .iter()
        .enumerate()
        .map(|(i, &t)| ((i + 1) as f64 - (mean_k + rate * (t - mean_t))).abs())
        .fold(0.0, f64::max);
    if worst <= (0.04 * n as f64).max(3.0) {
        return Shape::Steady;
    }
    let span = times[n - 1] - times[0];
    let head: Vec<f64> = times
        .iter()
        .copied()
        .take_while(|&t| t <= times[0] + span / 3.0)
        .collect();
    let early = (head.len() >= MIN_FOR_RATE).then(|| slope(&head)).flatten();
    match (early, current) {
        (Some(e), Some(c)) if (c / e - 1.0).abs() > 0.4 && ramp_is_monotone(times) => {
            Shape::Ramping
        }
        _ => Shape::Bursty,
    }
}

/// Whether the rate changes one way: the middle third's rate lies between the first's and
/// the last's (a burst pattern gives thirds that go up and down at random).
fn ramp_is_monotone(times: &[f64]) -> bool {
    let (t0, t1) = (times[0], times[times.len() - 1]);
    let span = t1 - t0;
    let count = |from: f64, to: f64| times.iter().filter(|&&t| t >= from && t < to).count();
    let a = count(t0, t0 + span / 3.0);
    let b = count(t0 + span / 3.0, t0 + 2.0 * span / 3.0);
    let c = count(t0 + 2.0 * span / 3.0, t1 + 1e-9);
    (a <= b && b <= c) || (a >= b && b >= c)
}

/// When the cumulative count reached `n` (the time of the n-th connection), if it did.
pub fn nth(times: &[f64], n: u64) -> Option<f64> {
    let i = usize::try_from(n).ok()?.checked_sub(1)?;
    times.get(i).copied()
}

/// The last connection before the connections stopped: the start of the first gap after
/// `from` that is at least `min_gap` long and at least ten times the typical spacing of
/// the connections before it (their median), and that runs to `until` or to a much slower
/// pace (fewer than a fifth of the earlier rate for the rest). None when no gap is found.
pub fn stopped_at(times: &[f64], from: f64, min_gap: f64, until: f64) -> Option<f64> {
    let start = times.partition_point(|&t| t < from);
    let mut spacing: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let median = |v: &mut [f64]| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let m = v.len() / 2;
        *v.select_nth_unstable_by(m, f64::total_cmp).1
    };
    let typical = median(&mut spacing[..]);
    let gap_needed = min_gap.max(10.0 * typical);
    let n = times.len();
    for i in start..n {
        let next = times.get(i + 1).copied().unwrap_or(until);
        if next - times[i] < gap_needed {
            continue;
        }
        // What follows the gap: nothing, or a trickle (post-exhaustion recycling).
        let rest = n - i - 1;
        let rest_span = (until - times[i]).max(1e-9);
        // The pace up to the end of the gap (a burst's own pace would be far too high).
        let before_rate = ((i + 1) as f64) / (next - times[0]).max(1e-9);
        if rest == 0 || (rest as f64 / rest_span) < before_rate / 5.0 {
            return Some(times[i]);
        }
    }
    None
}

/// The longest stretch without any connection or request while the client ran: (start,
/// length) in seconds, counting the stretch from the last event to `alive_until`, and from
/// `begin` to the first event. `events` sorted.
pub fn longest_quiet(events: &[f64], begin: f64, alive_until: f64) -> (f64, f64) {
    let mut best = (begin, 0.0);
    let mut prev = begin;
    for &t in events.iter().chain(std::iter::once(&alive_until)) {
        if t - prev > best.1 {
            best = (prev, t - prev);
        }
        prev = prev.max(t);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` connections at `rate` from `t0`.
    fn steady(rate: f64, t0: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| t0 + i as f64 / rate).collect()
    }

    #[test]
    fn a_steady_client_is_steady_at_its_rate() {
        let t = steady(50.0, 0.43, 200);
        let a = describe(&t).unwrap();
        assert_eq!(a.shape, Shape::Steady);
        assert!((a.mean_rate.unwrap() - 50.0).abs() < 0.01);
        assert!((a.span_rate.unwrap() - 50.0).abs() < 1e-9);
        assert!((a.current_rate.unwrap() - 50.0).abs() < 0.01);
        assert_eq!(a.first_s, 0.43);
        assert_eq!(a.count, 200);
    }

    #[test]
    fn a_bursty_client_is_bursty_at_its_true_average() {
        // 40 every 0.5 s (80/s on average), 5 bursts, each over 10 ms.
        let t: Vec<f64> = (0..5)
            .flat_map(|b| (0..40).map(move |i| b as f64 * 0.5 + i as f64 * 0.00025))
            .collect();
        let a = describe(&t).unwrap();
        assert_eq!(a.shape, Shape::Bursty);
        let mean = a.mean_rate.unwrap();
        // (n - 1) / (last - first) says 199 / 2.01 = 99/s.
        assert!((mean - 80.0).abs() < 8.0, "{mean}");
        assert!((a.span_rate.unwrap() - 99.0).abs() < 1.0);
        assert!(a.peak_rate.unwrap() >= 400.0);
        // The cumulative count reaches 120 in the third burst.
        assert!((nth(&t, 120).unwrap() - 1.0).abs() < 0.011);
    }

    #[test]
    fn a_ramping_client_is_ramping_and_its_current_rate_is_the_end_rate() {
        // 10/s for 2 s, then 100/s for 2 s.
        let mut t = steady(10.0, 0.0, 20);
        t.extend(steady(100.0, 2.0, 200));
        let a = describe(&t).unwrap();
        assert_eq!(a.shape, Shape::Ramping, "{a:?}");
        assert!((a.current_rate.unwrap() - 100.0).abs() < 1.0, "{a:?}");
        assert!(a.mean_rate.unwrap() < 80.0);
    }

    #[test]
    fn too_few_connections_say_nothing_of_rate() {
        let a = describe(&[0.1, 0.2, 0.3]).unwrap();
        assert_eq!((a.mean_rate, a.shape), (None, Shape::Unknown));
        assert!(describe(&[]).is_none());
    }

    #[test]
    fn the_connections_stop_where_a_long_gap_starts() {
        // 100/s until 2.0 s, then nothing until 5 s: stopped at the last one.
        let t = steady(100.0, 0.0, 201);
        assert_eq!(stopped_at(&t, 0.0, 0.3, 5.0), Some(2.0));
        // Then a trickle at 2/s (post-exhaustion recycling) is still stopped.
        let mut trickle = t.clone();
        trickle.extend([3.0, 3.5, 4.0, 4.5]);
        assert_eq!(stopped_at(&trickle, 0.0, 0.3, 5.0), Some(2.0));
        // Bursts every 0.5 s resume at the same pace: never stopped.
        let bursts: Vec<f64> = (0..8)
            .flat_map(|b| (0..40).map(move |i| b as f64 * 0.5 + i as f64 * 0.001))
            .collect();
        assert_eq!(stopped_at(&bursts, 0.0, 0.3, 3.6), None);
        // Running to the end: no gap.
        assert_eq!(stopped_at(&t, 0.0, 0.3, 2.005), None);
    }

    #[test]
    fn the_longest_quiet_stretch_counts_the_start_and_the_end() {
        // ab against a server that never closes: one request at 0.05 s, then 9.95 s quiet.
        assert_eq!(longest_quiet(&[0.05], 0.0, 10.0), (0.05, 9.95));
        // A client that never connected: the whole run.
        assert_eq!(longest_quiet(&[], 0.0, 3.0), (0.0, 3.0));
        let (at, len) = longest_quiet(&[0.1, 0.2, 2.7, 2.8], 0.0, 3.0);
        assert!((at - 0.2).abs() < 1e-9 && (len - 2.5).abs() < 1e-9);
    }
}
