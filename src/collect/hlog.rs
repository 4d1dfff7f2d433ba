//! histograms.hlog: every interval's latency histograms in the HdrHistogram interval-log
//! format (V2, deflate-compressed, base64; one line per histogram, tagged with its name), the
//! format HdrHistogram's own tools (HistogramLogProcessor, HdrHistogramVisualizer) read.
//! Histograms add exactly, so the hlogs of several shards merge into the histogram of all
//! their samples (`portlab merge`), which percentiles in summaries cannot.
//!
//! The hdrhistogram crate writes and reads the format (its `serialization` feature); only the
//! base64 of a line is decoded here, with the base64 crate it already uses.

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

/// The histograms of one interval (or of a whole run), by the tag each has in the log.
#[derive(Debug, Clone)]
pub struct Set {
    /// connect(), from the scheduled start (coordinated-omission corrected), µs.
    pub connect: Histogram<u64>,
    /// connect(), from the actual start, µs.
    pub connect_actual: Histogram<u64>,
    /// The exchange after connect, µs.
    pub exchange: Histogram<u64>,
    /// The whole request, from the scheduled start to the reply, µs.
    pub request: Histogram<u64>,
    /// How late each start was against its schedule, µs.
    pub schedule_lag: Histogram<u64>,
}

/// The tags, in the order every interval writes them.
pub const TAGS: [&str; 5] = [
    "connect",
    "connect_actual",
    "exchange",
    "request",
    "schedule_lag",
];

impl Set {
    /// Four empty histograms made by `new`.
    pub fn new(new: impl Fn() -> Histogram<u64>) -> Set {
        Set {
            connect: new(),
            connect_actual: new(),
            exchange: new(),
            request: new(),
            schedule_lag: new(),
        }
    }

    /// The histogram tagged `tag`.
    pub fn get_mut(&mut self, tag: &str) -> Option<&mut Histogram<u64>> {
        match tag {
            "connect" => Some(&mut self.connect),
            "connect_actual" => Some(&mut self.connect_actual),
            "exchange" => Some(&mut self.exchange),
            "request" => Some(&mut self.request),
            "schedule_lag" => Some(&mut self.schedule_lag),
            _ => None,
        }
    }

    /// (tag, histogram) in [`TAGS`] order.
    pub fn each(&self) -> [(&'static str, &Histogram<u64>); 5] {
        [
            ("connect", &self.connect),
            ("connect_actual", &self.connect_actual),
            ("exchange", &self.exchange),
            ("request", &self.request),
            ("schedule_lag", &self.schedule_lag),
        ]
    }

    /// Adds `other`'s counts into these (values out of range are clamped: the bounds are
    /// the same constants on both sides in a run).
    pub fn add(&mut self, other: &Set) {
        for tag in TAGS {
            let (mine, theirs) = (
                self.get_mut(tag).expect("a known tag"),
                other.get(tag).expect("a known tag"),
            );
            mine.add(theirs)
                .expect("the histograms of one run share their constant bounds");
        }
    }

    /// The histogram tagged `tag`.
    pub fn get(&self, tag: &str) -> Option<&Histogram<u64>> {
        self.each()
            .into_iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, h)| h)
    }

    /// Empties all four.
    pub fn reset(&mut self) {
        self.connect.reset();
        self.connect_actual.reset();
        self.exchange.reset();
        self.request.reset();
        self.schedule_lag.reset();
    }
}

/// Appends intervals to histograms.hlog, one write per interval (a crash keeps every closed
/// interval, like timeline.csv).
pub struct HlogWriter {
    file: File,
    serializer: V2DeflateSerializer,
}

impl HlogWriter {
    /// Writes the header into `file`: StartTime and BaseTime are `start` (the run's t0), so
    /// an interval's timestamp is seconds since t0 and its absolute time is BaseTime plus it.
    pub fn new(mut file: File, start: SystemTime) -> io::Result<HlogWriter> {
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("portlab histograms.hlog: values in microseconds; tags connect, connect_actual, exchange, request, schedule_lag")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut file, &mut serializer)?;
        Ok(HlogWriter { file, serializer })
    }

    /// Appends one interval, from `start` to `end` since t0.
    pub fn append(&mut self, start: Duration, end: Duration, set: &Set) -> io::Result<()> {
        let mut buf = Vec::new();
        {
            let mut w =
                IntervalLogWriterBuilder::new().begin_log_with(&mut buf, &mut self.serializer)?;
            for (tag, h) in set.each() {
                w.write_histogram(h, start, end.saturating_sub(start), Tag::new(tag))
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
            }
        }
        self.file.write_all(&buf)
    }
}

/// One run's histograms.hlog, read back.
#[derive(Debug, Clone)]
pub struct Hlog {
    /// BaseTime, seconds since the Unix epoch (None when the log has none).
    pub base_time_s: Option<f64>,
    /// Each interval: (start, duration) in seconds since BaseTime, and its histograms.
    pub intervals: Vec<(f64, f64, Set)>,
}

/// Reads an hlog's text. `new` makes the empty histograms a set starts from; a histogram
/// whose bounds or precision differ from the one `new` makes is refused (its counts would
/// not add exactly).
pub fn read(text: &[u8], new: &dyn Fn() -> Histogram<u64>) -> Result<Hlog, String> {
    use base64::Engine as _;
    let reference = new();
    let mut base_time_s = None;
    let mut intervals: Vec<(f64, f64, Set)> = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(text) {
        match entry.map_err(|e| format!("not an HdrHistogram interval log ({e:?})"))? {
            LogEntry::BaseTime(t) => base_time_s = Some(t.as_secs_f64()),
            LogEntry::StartTime(t) => {
                base_time_s.get_or_insert(t.as_secs_f64());
            }
            LogEntry::Interval(ih) => {
                let tag = ih.tag().map(|t| t.as_str()).unwrap_or("");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(ih.encoded_histogram())
                    .map_err(|e| format!("histogram {tag:?}: bad base64 ({e})"))?;
                let h: Histogram<u64> = deserializer
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| format!("histogram {tag:?}: cannot be decoded ({e:?})"))?;
                if (h.low(), h.high(), h.sigfig())
                    != (reference.low(), reference.high(), reference.sigfig())
                {
                    return Err(format!(
                        "histogram {tag:?} has bounds {}..{} with {} significant figures, \
                         not {}..{} with {}: histograms with other bounds do not add exactly",
                        h.low(),
                        h.high(),
                        h.sigfig(),
                        reference.low(),
                        reference.high(),
                        reference.sigfig()
                    ));
                }
                let (start, len) = (
                    ih.start_timestamp().as_secs_f64(),
                    ih.duration().as_secs_f64(),
                );
                let idx = match intervals
                    .iter()
                    .position(|(s, ..)| (*s - start).abs() < 1e-6)
                {
                    Some(i) => i,
                    None => {
                        intervals.push((start, len, Set::new(new)));
                        intervals.len() - 1
                    }
                };
                let set = &mut intervals[idx].2;
                let Some(slot) = set.get_mut(tag) else {
                    return Err(format!(
                        "unknown histogram tag {tag:?} (expected one of {})",
                        TAGS.join(", ")
                    ));
                };
                slot.add(&h)
                    .map_err(|e| format!("histogram {tag:?}: {e:?}"))?;
            }
        }
    }
    Ok(Hlog {
        base_time_s,
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
    }

    #[test]
    fn intervals_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.hlog");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = HlogWriter::new(File::create(&path).unwrap(), start).unwrap();
        let mut a = Set::new(new);
        for v in [10, 200, 3_000, 40_000] {
            a.connect.record(v).unwrap();
            a.schedule_lag.record(v / 10).unwrap();
        }
        let mut b = Set::new(new);
        b.request.record_n(777, 5).unwrap();
        w.append(Duration::ZERO, Duration::from_secs(1), &a)
            .unwrap();
        w.append(Duration::from_secs(1), Duration::from_secs(2), &b)
            .unwrap();
        let log = read(&std::fs::read(&path).unwrap(), &new).unwrap();
        assert_eq!(log.base_time_s, Some(1_700_000_000.0));
        assert_eq!(log.intervals.len(), 2);
        assert_eq!((log.intervals[1].0, log.intervals[1].1), (1.0, 1.0));
        assert_eq!(log.intervals[0].2.connect, a.connect);
        assert_eq!(log.intervals[0].2.schedule_lag, a.schedule_lag);
        assert_eq!(log.intervals[1].2.request.len(), 5);
        let other = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        let err = read(&std::fs::read(&path).unwrap(), &other).unwrap_err();
        assert!(err.contains("significant figures"), "{err}");
    }
}
