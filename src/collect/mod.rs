//! The collector: one thread that owns every histogram and counter.
//!
//! Workers hand it one small `Copy` [`Outcome`] per connection (or pooled request) through a
//! bounded, preallocated channel, so the hot path neither allocates nor takes a lock. Every
//! interval it closes a [`TimelineRow`], hands it to the sink (timeline.csv, progress), and
//! at the end it returns the [`Measured`] totals.

mod counts;
mod errors;
pub mod hlog;
pub mod timeline;

pub use counts::Counts;
pub use errors::{is_descriptor_limit, ErrCode, Failure, Phase};
use timeline::TimelineRow;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// What one connection (or one pooled request) did. Times are microseconds since the run's t0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// When it was due (open loop); equal to `started_us` in a closed loop.
    pub scheduled_us: u64,
    /// When the worker actually began it.
    pub started_us: u64,
    /// connect() duration from the actual start; None if no connection was opened for it
    /// (failed before connecting, or a pooled request on an open connection).
    pub connect_us: Option<u32>,
    /// Exchange duration from connected (or from the start of a pooled request) to the
    /// reply read; None when the exchange failed or there was none.
    pub exchange_us: Option<u32>,
    /// When it ended (closed, or failed).
    pub ended_us: u64,
    /// Which attempt this was: attempts begun before it, plus one.
    pub seq: u64,
    /// The error, if it failed.
    pub failure: Option<Failure>,
    /// HTTP status of the reply (0: not HTTP or no reply).
    pub status: u16,
    /// This request opened a new connection (always, without pooling).
    pub opened: bool,
    /// This request replaced a broken pooled connection.
    pub reconnect: bool,
}

/// Counters shared by the pacer, the workers and the collector (atomics, no locks).
#[derive(Debug, Default)]
pub struct Shared {
    /// Starts the workers began (attempts).
    pub started: AtomicU64,
    /// Starts that were due while `max_in_flight` were in flight, and so never made.
    pub dropped: AtomicU64,
    /// Handed to a worker and not finished yet (queued or running).
    pub in_flight: AtomicI64,
}

/// A latency distribution as reported, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Number of values recorded.
    pub count: u64,
    /// Mean, µs.
    pub mean: f64,
    /// Median, µs.
    pub p50: u64,
    /// 90th percentile, µs.
    pub p90: u64,
    /// 99th percentile, µs.
    pub p99: u64,
    /// 99.9th percentile, µs.
    pub p999: u64,
    /// Largest, µs.
    pub max: u64,
}

impl Latency {
    /// The summary figures of `h`.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One OS error's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorStat {
    /// How many times.
    pub count: u64,
    /// The phase it first came in.
    pub phase: String,
    /// First time, seconds since the start.
    pub first_s: f64,
    /// Last time, seconds since the start.
    pub last_s: f64,
    /// Counts per phase (one entry unless the same error came in several phases).
    pub by_phase: BTreeMap<String, u64>,
}

/// The first "no local port left" error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exhaustion {
    /// Seconds since the start; null when the ports never ran out.
    pub first_s: Option<f64>,
    /// The OS error name (EADDRNOTAVAIL, EADDRINUSE, WSAENOBUFS, ...); null when none.
    pub kind: Option<String>,
    /// The phase it came in (bind or connect); null when none.
    pub phase: Option<String>,
    /// When the attempt that got that error was due (open loop; its start time in a closed
    /// loop). It differs from `first_s` by the time the attempt waited to be made (schedule
    /// lag) and the time connect() took: the model predicts which attempt finds no port,
    /// so the verdict compares this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_s: Option<f64>,
    /// Which attempt that was, counting from 1 in the order attempts began: how many
    /// attempts had begun when the ports ran out. A closed loop's model rate is
    /// `attempt / due_s`, the rate the ports were being taken at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
}

/// Successes counted by their own end time in consecutive periods of one port hold since
/// t0: `counts[k]` holds those that ended in (k x period, (k + 1) x period]. The timeline's
/// intervals cannot give a rate over a window that does not fall on their edges (a hold of
/// 2.5 s against 1 s intervals); these counts are exact whatever the interval, and stay one
/// number per hold however long the run (memory does not grow with the rate or interval).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completions {
    /// Length of one period, seconds (0: not counted).
    pub period_s: f64,
    /// Successes per period, from t0.
    pub counts: Vec<u64>,
}

impl Completions {
    /// Successes that ended in (`from` x period, `to` x period] (periods after the last
    /// success hold none); None when no periods were counted.
    pub fn between(&self, from: usize, to: usize) -> Option<u64> {
        (self.period_s > 0.0 && from <= to)
            .then(|| self.counts.iter().skip(from).take(to - from).sum::<u64>())
    }
}

/// Everything the collector measured, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Attempts and how they went; `aborted` is 0 from the collector (see [`Counts`]).
    pub counts: Counts,
    /// Errors by OS name.
    pub errors: BTreeMap<String, ErrorStat>,
    /// The first exhaustion error.
    pub exhaustion: Exhaustion,
    /// HTTP statuses by code.
    pub http_status: BTreeMap<String, u64>,
    /// connect(), from the scheduled start (coordinated-omission corrected).
    pub connect_latency: Latency,
    /// connect(), from the actual start.
    pub connect_latency_actual: Latency,
    /// The exchange after connect.
    pub exchange_latency: Latency,
    /// Whole request, from the scheduled start to the reply.
    pub request_latency: Latency,
    /// How late each start was against its schedule.
    pub schedule_lag: Latency,
    /// Every interval, in order.
    pub timeline: Vec<TimelineRow>,
    /// Successes by their end time, per port hold (see [`Collector::count_completions_per`]).
    pub completions: Completions,
}

impl Measured {
    /// Nothing measured: no attempt, no latency, no error (a run stopped before its load,
    /// or the base a client command's figures are filled into).
    pub fn empty() -> Measured {
        Measured {
            counts: Counts::default(),
            errors: Default::default(),
            exhaustion: Exhaustion::default(),
            http_status: Default::default(),
            connect_latency: Latency::default(),
            connect_latency_actual: Latency::default(),
            exchange_latency: Latency::default(),
            request_latency: Latency::default(),
            schedule_lag: Latency::default(),
            timeline: Vec::new(),
            completions: Default::default(),
        }
    }
}

/// Where closed intervals go as the run goes (timeline.csv, progress display).
pub trait Sink: Send {
    /// Adds observations of its own (kernel counts) to an interval's row before it is kept.
    fn observe(&mut self, _row: &mut TimelineRow) {}
    /// Called with each interval's histograms (from `start` to `end` since t0) just before
    /// the interval closes (histograms.hlog).
    fn histograms(&mut self, _start: Duration, _end: Duration, _set: &hlog::Set) {}
    /// Called once per closed interval, in order, and once more for the last partial one.
    fn interval(&mut self, row: &TimelineRow);
}

/// Highest latency a histogram keeps exactly: one hour in µs (larger values are clamped).
const MAX_US: u64 = 3_600_000_000;

/// An empty latency histogram with the bounds every run uses (µs, 1 to one hour, 3
/// significant figures); `portlab merge` refuses histograms with others.
pub fn histogram() -> Histogram<u64> {
    // Bounds and precision are constants, so this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

struct ErrorEntry {
    code: ErrCode,
    phase: Phase,
    count: u64,
    first_us: u64,
    last_us: u64,
}

/// The collector's state; `collect` drives it on its own thread.
pub struct Collector {
    t0: Instant,
    interval: Duration,
    /// connect, connect_actual, exchange, request and schedule lag of the intervals closed so far.
    total: hlog::Set,
    /// The same of the current interval (histograms.hlog, the timeline's p50/p99): added to
    /// `total` and reset when the interval closes, so each value is recorded once.
    now: hlog::Set,
    /// When the current interval began, µs since t0.
    now_start_us: u64,
    /// A handful of kinds in practice; a linear scan beats hashing here and allocates only
    /// when a new kind appears.
    errors: Vec<ErrorEntry>,
    /// (when, when due, error, phase, attempt) of the first exhaustion error.
    exhaustion: Option<(u64, u64, ErrCode, Phase, u64)>,
    statuses: BTreeMap<u16, u64>,
    /// Connections, successes, failures and reconnects so far. Attempts and drops are
    /// counted in [`Shared`] by the pacer and the workers, aborted ones by the runner.
    counts: Counts,
    current: TimelineRow,
    /// The current interval's errors by kind (rendered into its row when it closes).
    kinds: timeline::KindCounts,
    last_started: u64,
    last_dropped: u64,
    timeline: Vec<TimelineRow>,
    /// Length of a [`Completions`] period in µs; 0 when not counted.
    period_us: u64,
    completions: Vec<u64>,
}

impl Collector {
    /// A collector for a run that started at `t0`, closing intervals of `interval`.
    pub fn new(t0: Instant, interval: Duration) -> Collector {
        Collector {
            t0,
            interval,
            total: hlog::Set::new(histogram),
            now: hlog::Set::new(histogram),
            now_start_us: 0,
            errors: Vec::new(),
            exhaustion: None,
            statuses: BTreeMap::new(),
            counts: Counts::default(),
            current: TimelineRow::default(),
            kinds: timeline::KindCounts::default(),
            last_started: 0,
            last_dropped: 0,
            timeline: Vec::new(),
            period_us: 0,
            completions: Vec::new(),
        }
    }

    /// Also counts successes by their own end time in periods of `period` since t0 (the
    /// port hold, so the verdict can count the successes of whole holds exactly). A zero
    /// period counts nothing.
    pub fn count_completions_per(mut self, period: Duration) -> Collector {
        self.period_us = period.as_micros().min(u128::from(u64::MAX)) as u64;
        self
    }

    /// Counts one outcome.
    pub fn record(&mut self, o: &Outcome) {
        let lag = o.started_us.saturating_sub(o.scheduled_us);
        self.now.schedule_lag.saturating_record(lag);
        if let Some(c) = o.connect_us {
            let c = u64::from(c);
            self.now.connect.saturating_record(lag + c);
            self.now.connect_actual.saturating_record(c);
        }
        if o.opened && o.connect_us.is_some() {
            self.counts.connected += 1;
            self.current.connected += 1;
        }
        if o.reconnect {
            self.counts.reconnects += 1;
        }
        if let Some(x) = o.exchange_us {
            self.now.exchange.saturating_record(u64::from(x));
        }
        if o.status != 0 {
            *self.statuses.entry(o.status).or_insert(0) += 1;
        }
        match o.failure {
            None => {
                self.counts.completed += 1;
                self.current.completed += 1;
                // (k x period, (k + 1) x period]: a success exactly on an edge belongs to
                // the period it closes. A zero period counts nothing.
                if let Some(k) = o.ended_us.saturating_sub(1).checked_div(self.period_us) {
                    let k = k as usize;
                    if self.completions.len() <= k {
                        self.completions.resize(k + 1, 0);
                    }
                    self.completions[k] += 1;
                }
                self.now
                    .request
                    .saturating_record(o.ended_us.saturating_sub(o.scheduled_us));
            }
            Some(f) => {
                self.counts.failed += 1;
                self.current.errors += 1;
                self.count_error(f, o);
            }
        }
    }

    fn count_error(&mut self, f: Failure, o: &Outcome) {
        let at_us = o.ended_us;
        match self
            .errors
            .iter_mut()
            .find(|e| e.code == f.code && e.phase == f.phase)
        {
            Some(e) => {
                e.count += 1;
                e.first_us = e.first_us.min(at_us);
                e.last_us = e.last_us.max(at_us);
            }
            None => self.errors.push(ErrorEntry {
                code: f.code,
                phase: f.phase,
                count: 1,
                first_us: at_us,
                last_us: at_us,
            }),
        }
        self.kinds.add(f.code);
        if f.code.is_exhaustion(f.phase) && self.exhaustion.is_none_or(|(t, ..)| at_us < t) {
            self.exhaustion = Some((at_us, o.scheduled_us, f.code, f.phase, o.seq));
        }
    }

    /// Closes the interval ending at `end_s`, lets the sink add its observations, keeps the
    /// row and hands it to the sink.
    fn close_with(&mut self, end_s: f64, shared: &Shared, sink: &mut dyn Sink) {
        let start = Duration::from_micros(self.now_start_us);
        sink.histograms(start, Duration::from_secs_f64(end_s).max(start), &self.now);
        let mut row = self.take_interval(end_s, shared);
        sink.observe(&mut row);
        self.timeline.push(row);
        sink.interval(self.timeline.last().expect("just pushed"));
    }

    /// Closes the interval ending at `end` (seconds since t0) and returns its row.
    pub fn close_interval(&mut self, end_s: f64, shared: &Shared) -> &TimelineRow {
        let row = self.take_interval(end_s, shared);
        self.timeline.push(row);
        self.timeline.last().expect("just pushed")
    }

    fn take_interval(&mut self, end_s: f64, shared: &Shared) -> TimelineRow {
        let started = shared.started.load(Ordering::Relaxed);
        let dropped = shared.dropped.load(Ordering::Relaxed);
        let mut row = std::mem::take(&mut self.current);
        row.t_s = end_s;
        row.errors_by_kind = self.kinds.take_text();
        row.attempts = started - self.last_started;
        row.dropped = dropped - self.last_dropped;
        row.in_flight = shared.in_flight.load(Ordering::Relaxed).max(0) as u64;
        if !self.now.connect.is_empty() {
            row.connect_p50_us = Some(self.now.connect.value_at_quantile(0.5));
            row.connect_p99_us = Some(self.now.connect.value_at_quantile(0.99));
            row.connect_max_us = Some(self.now.connect.max());
        }
        self.total.add(&self.now);
        self.now.reset();
        self.now_start_us = (end_s * 1e6).round() as u64;
        self.last_started = started;
        self.last_dropped = dropped;
        row
    }

    /// Totals so far (used at the end, and by tests).
    pub fn measured(&self, shared: &Shared) -> Measured {
        // The closed intervals and the current one (empty after the last close).
        let mut all = self.total.clone();
        all.add(&self.now);
        let us = |v: u64| v as f64 / 1e6;
        let mut errors: BTreeMap<String, ErrorStat> = BTreeMap::new();
        let mut entries: Vec<&ErrorEntry> = self.errors.iter().collect();
        entries.sort_by_key(|e| e.first_us);
        for e in entries {
            let stat = errors
                .entry(e.code.name().into_owned())
                .or_insert_with(|| ErrorStat {
                    count: 0,
                    phase: e.phase.as_str().to_string(),
                    first_s: us(e.first_us),
                    last_s: us(e.last_us),
                    by_phase: BTreeMap::new(),
                });
            stat.count += e.count;
            stat.last_s = stat.last_s.max(us(e.last_us));
            *stat
                .by_phase
                .entry(e.phase.as_str().to_string())
                .or_insert(0) += e.count;
        }
        let exhaustion = match self.exhaustion {
            Some((t, due, code, phase, seq)) => Exhaustion {
                first_s: Some(us(t)),
                kind: Some(code.name().into_owned()),
                phase: Some(phase.as_str().to_string()),
                due_s: Some(us(due)),
                attempt: Some(seq),
            },
            None => Exhaustion::default(),
        };
        Measured {
            counts: Counts {
                attempts: shared.started.load(Ordering::Relaxed),
                dropped: shared.dropped.load(Ordering::Relaxed),
                ..self.counts
            },
            errors,
            exhaustion,
            http_status: self
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            connect_latency: Latency::of(&all.connect),
            connect_latency_actual: Latency::of(&all.connect_actual),
            exchange_latency: Latency::of(&all.exchange),
            request_latency: Latency::of(&all.request),
            schedule_lag: Latency::of(&all.schedule_lag),
            timeline: self.timeline.clone(),
            completions: Completions {
                period_s: Duration::from_micros(self.period_us).as_secs_f64(),
                counts: self.completions.clone(),
            },
        }
    }

    /// Runs the collector until every sender is gone: records outcomes, closes an interval
    /// every `interval` (aligned to t0, so rows never drift), and a last partial one at the end.
    ///
    /// It polls: drain what is queued, then sleep one [`TICK`]. It never blocks on the
    /// channel, so a worker's send never finds a sleeping receiver to wake; waking it per
    /// outcome (a futex wake and two context switches per connection) cost about 15% of the
    /// CPU at the maximum rate. The channel holds far more than a tick's outcomes, so nothing
    /// waits; if it ever fills, senders block until the next drain (back-pressure, no loss).
    pub fn collect(
        mut self,
        rx: Receiver<Outcome>,
        shared: &Shared,
        sink: &mut dyn Sink,
    ) -> Measured {
        let mut next = 1u32;
        loop {
            let mut disconnected = false;
            let mut drained = 0;
            // Bounded, so the clock is looked at even if senders never let up.
            while drained < MAX_DRAIN {
                match rx.try_recv() {
                    Ok(o) => {
                        self.record(&o);
                        drained += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if disconnected {
                let end = self.t0.elapsed().as_secs_f64();
                self.close_with(end, shared, sink);
                return self.measured(shared);
            }
            let deadline = self.t0 + self.interval * next;
            let now = Instant::now();
            if now >= deadline {
                let end = (self.interval * next).as_secs_f64();
                self.close_with(end, shared, sink);
                next += 1;
                continue;
            }
            // A full drain means a burst (or a collector that was kept off the CPU): go on
            // draining at once, so that no sender waits a whole tick on a full channel.
            if drained < MAX_DRAIN {
                std::thread::sleep(TICK.min(deadline - now));
            }
        }
    }
}

/// How long the collector sleeps between drains of the outcome channel.
pub const TICK: Duration = Duration::from_millis(10);

/// Most outcomes recorded in one drain before the clock is looked at again; a drain that
/// reaches it is followed by another without sleeping.
const MAX_DRAIN: usize = 4 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(at_us: u64, failure: Option<Failure>) -> Outcome {
        Outcome {
            scheduled_us: at_us,
            started_us: at_us + 10,
            connect_us: failure.is_none().then_some(100),
            exchange_us: None,
            ended_us: at_us + 200,
            seq: 0,
            failure,
            status: 0,
            opened: true,
            reconnect: false,
        }
    }

    #[cfg(unix)]
    #[test]
    fn first_exhaustion_is_the_earliest_port_error_not_the_first_error() {
        let mut c = Collector::new(Instant::now(), Duration::from_secs(1));
        let refused = Failure {
            code: ErrCode(libc::ECONNREFUSED),
            phase: Phase::Connect,
        };
        let no_port = Failure {
            code: ErrCode(libc::EADDRNOTAVAIL),
            phase: Phase::Connect,
        };
        c.record(&outcome(1_000, Some(refused)));
        c.record(&outcome(2_500_000, Some(no_port)));
        c.record(&outcome(2_000_000, Some(no_port))); // arrives late, happened earlier
        c.record(&outcome(3_000_000, None));
        let m = c.measured(&Shared::default());
        assert_eq!(m.exhaustion.kind.as_deref(), Some("EADDRNOTAVAIL"));
        assert_eq!(m.exhaustion.first_s, Some(2.0002));
        let e = &m.errors["EADDRNOTAVAIL"];
        assert_eq!((e.count, e.phase.as_str()), (2, "connect"));
        assert_eq!((e.first_s, e.last_s), (2.0002, 2.5002));
        assert_eq!(m.errors["ECONNREFUSED"].count, 1);
        assert_eq!(
            (m.counts.failed, m.counts.completed, m.counts.connected),
            (3, 1, 1)
        );
    }

    #[test]
    fn latency_from_schedule_includes_the_lag() {
        let mut c = Collector::new(Instant::now(), Duration::from_secs(1));
        let mut o = outcome(0, None);
        o.started_us = 5_000; // began 5 ms late
        o.connect_us = Some(1_000);
        c.record(&o);
        let m = c.measured(&Shared::default());
        assert_eq!(m.connect_latency_actual.max, 1_000);
        // 6 ms within the histogram's 3 significant digits
        assert!(
            (5_995..=6_005).contains(&m.connect_latency.max),
            "{:?}",
            m.connect_latency
        );
        assert!((4_995..=5_005).contains(&m.schedule_lag.max));
    }

    #[test]
    fn successes_are_counted_by_their_own_time_per_hold_whatever_the_interval() {
        // Hold 2.5 s against 1 s intervals: the periods do not fall on interval edges.
        let mut c = Collector::new(Instant::now(), Duration::from_secs(1))
            .count_completions_per(Duration::from_millis(2500));
        let ended = |t_us: u64| {
            let mut o = outcome(0, None);
            o.ended_us = t_us;
            o
        };
        for t in [
            1_000_000, 2_500_000, 2_500_001, 4_999_999, 5_000_000, 7_400_000,
        ] {
            c.record(&ended(t));
        }
        let mut failed = ended(3_000_000);
        failed.failure = Some(Failure {
            code: ErrCode(99),
            phase: Phase::Connect,
        });
        c.record(&failed); // not a success
        let m = c.measured(&Shared::default());
        assert_eq!(m.completions.period_s, 2.5);
        assert_eq!(
            m.completions.counts,
            vec![2, 3, 1],
            "edges close their period"
        );
        assert_eq!(m.completions.between(1, 3), Some(4));
        assert_eq!(
            m.completions.between(1, 9),
            Some(4),
            "past the end: none more"
        );
        let plain = Collector::new(Instant::now(), Duration::from_secs(1));
        assert_eq!(
            plain.measured(&Shared::default()).completions.between(0, 1),
            None
        );
    }

    #[test]
    fn intervals_count_starts_from_the_shared_counters() {
        let shared = Shared::default();
        let mut c = Collector::new(Instant::now(), Duration::from_secs(1));
        shared.started.store(7, Ordering::Relaxed);
        c.record(&outcome(0, None));
        assert_eq!(c.close_interval(1.0, &shared).attempts, 7);
        shared.started.store(10, Ordering::Relaxed);
        shared.dropped.store(2, Ordering::Relaxed);
        let row = c.close_interval(2.0, &shared).clone();
        assert_eq!((row.attempts, row.dropped, row.completed), (3, 2, 0));
        assert_eq!(c.measured(&shared).timeline.len(), 2);
    }
}
