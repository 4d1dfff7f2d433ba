//! The pacer: when is start number i due, and what to do about it now.
//!
//! Open loop on an absolute schedule: start i is due at t0 + i / R, never relative to the
//! previous start, so a late start never shifts the ones after it (no drift). A start found
//! late is made at once and its lag recorded; latency is measured from its due time.

use std::time::Duration;

/// What the pacer thread should do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Nothing is due yet: sleep this long at most, then ask again.
    Wait(Duration),
    /// Start number `started` now; it was due at `due` (since t0), `lag` ago.
    Start {
        /// Due time since t0.
        due: Duration,
        /// How late it is (zero when on time).
        lag: Duration,
    },
    /// The schedule is over (count or duration reached).
    Done,
}

/// A schedule of starts. A trait so other shapes (ramps, steps) can be added beside the
/// constant rate and tested the same way.
pub trait Pacer: Send {
    /// Given the time since t0 and how many starts were made so far, what to do.
    fn decide(&self, elapsed: Duration, started: u64) -> Decision;
}

/// R starts per second, for at most `duration` and at most `count` starts.
#[derive(Debug, Clone, Copy)]
pub struct ConstantRate {
    /// Starts per second.
    pub rate: f64,
    /// No start is due at or after this.
    pub duration: Option<Duration>,
    /// At most this many starts.
    pub count: Option<u64>,
    /// When start 0 is due after t0 (a shard's I / R, so that N shards interleave; zero
    /// otherwise).
    pub offset: Duration,
}

impl ConstantRate {
    /// Due time of start i: offset + i / R after t0.
    pub fn due(&self, i: u64) -> Duration {
        self.offset + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// The length of the whole schedule: the duration, or count / R, whichever is shorter.
    pub fn window(&self) -> Duration {
        let by_count = self.count.map(|c| self.due(c));
        match (self.duration, by_count) {
            (Some(d), Some(c)) => d.min(c),
            (Some(d), None) => d,
            (None, Some(c)) => c,
            (None, None) => Duration::ZERO,
        }
    }
}

impl Pacer for ConstantRate {
    fn decide(&self, elapsed: Duration, started: u64) -> Decision {
        if self.count.is_some_and(|c| started >= c) {
            return Decision::Done;
        }
        let due = self.due(started);
        if self.duration.is_some_and(|d| due >= d) {
            return Decision::Done;
        }
        if due > elapsed {
            Decision::Wait(due - elapsed)
        } else {
            Decision::Start {
                due,
                lag: elapsed - due,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn an_offset_shifts_every_start_and_keeps_the_duration_bound() {
        let p = ConstantRate {
            rate: 100.0,
            duration: Some(MS(1000)),
            count: None,
            offset: MS(3),
        };
        assert_eq!(p.decide(MS(0), 0), Decision::Wait(MS(3)));
        assert_eq!(p.due(2), MS(23));
        // start 99 is due at 993 ms, inside the duration; start 100 at 1003 ms is not
        assert!(matches!(p.decide(MS(2000), 99), Decision::Start { .. }));
        assert_eq!(p.decide(MS(2000), 100), Decision::Done);
    }

    #[test]
    fn constant_rate_table() {
        let p = ConstantRate {
            rate: 100.0,
            duration: Some(MS(1000)),
            count: None,
            offset: Duration::ZERO,
        };
        // (elapsed ms, started so far, expected decision)
        let cases = [
            // start 0 is due at t0: on time at t0
            (
                0,
                0,
                Decision::Start {
                    due: MS(0),
                    lag: MS(0),
                },
            ),
            // start 1 is due at 10 ms: 10 ms before it, wait the whole gap
            (0, 1, Decision::Wait(MS(10))),
            // start 1 at 4 ms: wait the remaining 6 ms
            (4, 1, Decision::Wait(MS(6))),
            // start 1 at exactly 10 ms: on time
            (
                10,
                1,
                Decision::Start {
                    due: MS(10),
                    lag: MS(0),
                },
            ),
            // start 1 found at 25 ms: start at once, 15 ms late, due time unchanged (no drift)
            (
                25,
                1,
                Decision::Start {
                    due: MS(10),
                    lag: MS(15),
                },
            ),
            // start 2 right after the late start 1: still due at 20 ms, so 5 ms late
            (
                25,
                2,
                Decision::Start {
                    due: MS(20),
                    lag: MS(5),
                },
            ),
            // start 99 is due at 990 ms, inside the 1 s duration
            (500, 99, Decision::Wait(MS(490))),
            // start 100 would be due at 1000 ms = the duration: the schedule is over
            (500, 100, Decision::Done),
        ];
        for (elapsed, started, want) in cases {
            assert_eq!(
                p.decide(MS(elapsed), started),
                want,
                "elapsed {elapsed} ms, started {started}"
            );
        }
    }

    #[test]
    fn count_bounds_the_schedule() {
        let p = ConstantRate {
            rate: 1000.0,
            duration: None,
            count: Some(3),
            offset: Duration::ZERO,
        };
        // (elapsed ms, started, expected)
        let cases = [
            (0, 2, Decision::Wait(MS(2))), // third start due at 2 ms
            (
                2,
                2,
                Decision::Start {
                    due: MS(2),
                    lag: MS(0),
                },
            ), // made on time
            (2, 3, Decision::Done),        // count reached
        ];
        for (elapsed, started, want) in cases {
            assert_eq!(p.decide(MS(elapsed), started), want);
        }
    }

    #[test]
    fn long_schedules_do_not_drift() {
        // One million starts at 30,000/s: the last is due at 33.333300 s exactly,
        // however many starts came before it.
        let p = ConstantRate {
            rate: 30_000.0,
            duration: None,
            count: None,
            offset: Duration::ZERO,
        };
        let due = p.due(999_999).as_nanos() as f64 / 1e9;
        assert!((due - 999_999.0 / 30_000.0).abs() < 1e-9, "{due}");
    }
}
