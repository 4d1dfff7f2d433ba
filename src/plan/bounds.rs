//! The accepted range of every numeric, duration, rate and count key, checked before anything
//! else so that no value a user types can overflow an allocation, a `Duration` or an `Instant`
//! later. Each refusal names the key, its flag and the range.
//!
//! The bounds themselves are written beside their keys, in each section's file
//! (`where v => bounds::range(...)` after the field, see `scenario::section!`); this file holds
//! the limits and the helpers that word the refusals. Lower bounds that carry their own
//! wording (a count of 0, an interval under 10ms, 1 to 8 destinations) stay where the key is
//! resolved; these are the maxima and the limits that only exist to keep arithmetic finite.

use super::{PlanError, Scenario, Span};
use std::time::Duration;

/// Slowest open-loop rate: one start every ~17 minutes. Below it the schedule's arithmetic
/// (i / R) leaves every sensible duration and `1e-300` would overflow it.
pub const MIN_RATE: f64 = 0.001;
/// Fastest open-loop rate (after a lab's time scale): far above what one host can start.
pub const MAX_RATE: f64 = 10_000_000.0;
/// Most starts one run may issue.
pub const MAX_COUNT: u64 = 1_000_000_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// Longest timeout, pause or interval.
pub const MAX_WAIT: Duration = Duration::from_secs(3_600);
/// Most workers, connections in flight or pooled connections: Linux's default fs.nr_open,
/// the most descriptors any process can hold (each needs one, and a task of its own).
pub const MAX_WORKERS: u32 = 1 << 20;
/// Largest listen() backlog: the argument is a C int (the kernel then caps it at somaxconn).
pub const MAX_BACKLOG: u32 = i32::MAX as u32;
/// Largest payload (send, response, expected reply): each worker holds a buffer this size.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Longest request path, bytes.
pub const MAX_PATH: usize = 8 << 10;
/// Longest SO_LINGER, seconds (close() may block this long).
pub const MAX_LINGER_S: u32 = 3_600;
/// Largest tolerance or baseline margin, percent.
pub const MAX_PCT: f64 = 10_000.0;

/// The unit of the keys bounded by [`MAX_WORKERS`].
pub const DESCRIPTORS: &str = " (each needs a descriptor)";

/// A bounded value as a message shows it (floats in exponent form when extreme).
pub trait Shown: PartialOrd + Copy {
    /// The value as the message writes it.
    fn show(self) -> String;
}

macro_rules! shown_int {
    ($($t:ty),+) => { $(impl Shown for $t { fn show(self) -> String { self.to_string() } })+ };
}
shown_int!(u32, u64, usize);

impl Shown for f64 {
    fn show(self) -> String {
        super::values::shown(self)
    }
}

/// `v`, when given, within `lo..=hi` (`unit` follows the range in the message).
pub fn range<T: Shown>(v: Option<T>, lo: T, hi: T, unit: &str) -> Result<(), String> {
    match v {
        Some(v) if v < lo || v > hi => Err(format!(
            "{} is out of range: accepted {} to {}{unit}",
            v.show(),
            lo.show(),
            hi.show()
        )),
        _ => Ok(()),
    }
}

/// A duration, when given, of at most `hi`.
pub fn at_most(v: Option<Span>, hi: Duration) -> Result<(), String> {
    match v {
        Some(Span(d)) if d > hi => Err(format!(
            "{} is out of range: accepted at most {}",
            humantime::format_duration(d),
            humantime::format_duration(hi)
        )),
        _ => Ok(()),
    }
}

/// A payload's length, when given, of at most [`MAX_PAYLOAD`].
pub fn bytes(len: Option<usize>) -> Result<(), String> {
    range(len, 0, MAX_PAYLOAD, " bytes")
}

/// Checks every bounded key of `s`, section by section; the first out of range is refused.
/// Each bound is written beside its key in its section's file (`where v => ...`).
pub fn check(s: &Scenario) -> Result<(), PlanError> {
    s.load.check_bounds()?;
    s.client.check_bounds()?;
    s.payload.check_bounds()?;
    s.target.check_bounds()?;
    s.expect.check_bounds()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(toml_text: &str, needles: &[&str]) {
        let s: Scenario = toml::from_str(toml_text).unwrap();
        let msg = check(&s).expect_err(toml_text).to_string();
        for n in needles {
            assert!(msg.contains(n), "{toml_text:?}: {msg:?} lacks {n:?}");
        }
    }

    #[test]
    fn every_bounded_key_names_key_flag_and_range() {
        refused(
            "[load]\nrate = 1e-300",
            &["load.rate", "--rate", "0.001 to 10000000"],
        );
        refused("[load]\nrate = 5e-324", &["load.rate", "accepted"]);
        refused("[load]\nrate = 1e8", &["load.rate", "10000000"]);
        refused(
            "[load]\ncount = 10000000000",
            &["load.count", "--count", "1000000000"],
        );
        refused(
            "[load]\nduration = \"30d\"",
            &["load.duration", "--duration", "7days"],
        );
        refused(
            "[load]\nmax_in_flight = 4294967295",
            &["load.max_in_flight", "--max-in-flight", "1048576"],
        );
        refused(
            "[load]\nconcurrency = 4294967295",
            &["load.concurrency", "--concurrency"],
        );
        refused("[client]\npool = 4294967295", &["client.pool", "--pool"]);
        refused(
            "[load]\ninterval = \"2h\"",
            &["load.interval", "--interval", "1h"],
        );
        refused(
            "[target]\naccept_delay = \"1d\"",
            &["target.accept_delay", "--accept-delay"],
        );
        refused(
            "[target]\nbacklog = 4294967295",
            &["target.backlog", "--backlog", "2147483647"],
        );
        refused(
            "[client]\nclose = \"linger=4000000000\"",
            &["client.close", "3600"],
        );
        refused(
            "[payload]\nexpect = 1e18",
            &["payload.expect", "--expect", "bytes"],
        );
        refused(
            "[expect]\ntolerance_pct = 1e300",
            &["expect.tolerance_pct", "--tolerance"],
        );
        refused(
            "[expect]\nmax_connect_p99_ms = 1e300",
            &["expect.max_connect_p99_ms"],
        );
        // The bounds themselves are accepted.
        let ok = "[load]\nrate = 0.001\ncount = 1000000000\nduration = \"7days\"\nmax_in_flight = 1048576\ninterval = \"1h\"";
        check(&toml::from_str(ok).unwrap()).unwrap();
    }
}
