//! A run's counters as one value: what the collector measured, what summary.json holds,
//! and what `portlab merge` adds up over shards.

use std::ops::{Add, AddAssign};

/// How many attempts a run made and how they went. Adding two is adding the runs (shards
/// on their own hosts, or the clients of a many-client lab): every counter saturates
/// rather than wraps, since a saved summary.json may hold any u64.
///
/// summary.json writes these as top-level keys of its own, so
/// [`Summary`](crate::results::summary::Summary) keeps them as flat fields and converts
/// with `counts` / `set_counts`: a `#[serde(flatten)]` field would make serde buffer the
/// whole document before reading it, and a malformed file's error would lose its line and
/// column. A timeline row counts one interval with columns of its own (`errors`, the gauge
/// `in_flight`, no `aborted` or `reconnects`), so it is not a `Counts` either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Starts begun.
    pub attempts: u64,
    /// Connections established.
    pub connected: u64,
    /// Attempts that ended without error.
    pub completed: u64,
    /// Attempts that ended with an error.
    pub failed: u64,
    /// Due starts never made because max in flight was reached.
    pub dropped: u64,
    /// In flight when the drain timeout ran out, abandoned. The collector cannot tell
    /// those from connections still going: the runner counts them when it gives up.
    pub aborted: u64,
    /// Pooled connections replaced after breaking.
    pub reconnects: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, x: Counts) {
        // Destructured without `..`: a counter added to the struct must be added here too.
        let Counts {
            attempts,
            connected,
            completed,
            failed,
            dropped,
            aborted,
            reconnects,
        } = x;
        self.attempts = self.attempts.saturating_add(attempts);
        self.connected = self.connected.saturating_add(connected);
        self.completed = self.completed.saturating_add(completed);
        self.failed = self.failed.saturating_add(failed);
        self.dropped = self.dropped.saturating_add(dropped);
        self.aborted = self.aborted.saturating_add(aborted);
        self.reconnects = self.reconnects.saturating_add(reconnects);
    }
}

impl Add for Counts {
    type Output = Counts;

    fn add(mut self, x: Counts) -> Counts {
        self += x;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_counter_by_counter_and_saturate() {
        let a = Counts {
            attempts: 10,
            connected: 9,
            completed: 8,
            failed: 2,
            dropped: 1,
            aborted: 0,
            reconnects: 3,
        };
        let b = Counts {
            attempts: u64::MAX,
            aborted: 4,
            ..Counts::default()
        };
        let total = a + b;
        assert_eq!(
            total,
            Counts {
                attempts: u64::MAX,
                aborted: 4,
                ..a
            }
        );
        let mut sum = Counts::default();
        sum += a;
        sum += b;
        assert_eq!(sum, total);
    }
}
