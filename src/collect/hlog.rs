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

/// Reads a whole hlog's text into memory (a short log; `portlab merge` streams with
/// [`Reader`] instead). `new` makes the empty histograms a set starts from; a histogram
/// whose bounds or precision differ from the one `new` makes is refused (its counts would
/// not add exactly).
pub fn read(text: &[u8], new: &dyn Fn() -> Histogram<u64>) -> Result<Hlog, String> {
    let mut reader = Reader::new(text, new());
    let mut intervals: Vec<(f64, f64, Set)> = Vec::new();
    while let Some(e) = reader.next_entry()? {
        let idx = match intervals
            .iter()
            .position(|(s, ..)| (*s - e.start_s).abs() < 1e-6)
        {
            Some(i) => i,
            None => {
                intervals.push((e.start_s, e.len_s, Set::new(new)));
                intervals.len() - 1
            }
        };
        let slot = intervals[idx].2.get_mut(e.tag).expect("a checked tag");
        slot.add(&e.histogram)
            .map_err(|err| format!("histogram {:?}: {err:?}", e.tag))?;
    }
    Ok(Hlog {
        base_time_s: reader.base_time_s,
        intervals,
    })
}

/// One histogram of an hlog: its interval and tag.
#[derive(Debug)]
pub struct Entry {
    /// Start of its interval, seconds since BaseTime.
    pub start_s: f64,
    /// Length of its interval, seconds.
    pub len_s: f64,
    /// Its tag, one of [`TAGS`].
    pub tag: &'static str,
    /// Its counts.
    pub histogram: Histogram<u64>,
}

/// Reads an hlog one line at a time (memory: one line and one histogram, whatever the
/// log's length). Every histogram's header is checked against the reference histogram's
/// bounds before it is decoded: a header claiming another range (whose decoding would
/// allocate what it claims) is refused, as is a histogram of other bounds, which would not
/// add exactly.
pub struct Reader<R> {
    lines: crate::input::Lines<R>,
    line: Vec<u8>,
    reference: Histogram<u64>,
    deserializer: Deserializer,
    /// BaseTime (or StartTime when the log has no BaseTime), seconds since the Unix epoch,
    /// once its line has been read.
    pub base_time_s: Option<f64>,
}

/// The V2 cookies of HdrHistogram's encoding (plain and deflate-compressed).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

impl<R: std::io::Read> Reader<R> {
    /// Reads `r`; histograms must have `reference`'s bounds and precision.
    pub fn new(r: R, reference: Histogram<u64>) -> Reader<R> {
        Reader {
            lines: crate::input::Lines::new(r),
            line: Vec::new(),
            reference,
            deserializer: Deserializer::new(),
            base_time_s: None,
        }
    }

    /// The number of the line last read (for messages).
    pub fn line_number(&self) -> u64 {
        self.lines.number
    }

    /// The next histogram, None at the end of the log. Errors say what is wrong, not where:
    /// the caller names the file and [`Reader::line_number`].
    pub fn next_entry(&mut self) -> Result<Option<Entry>, String> {
        use base64::Engine as _;
        loop {
            if !self
                .lines
                .next_into(&mut self.line)
                .map_err(|e| e.to_string())?
            {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') {
                self.line.push(b'\n');
            }
            let entry = match IntervalLogIterator::new(&self.line).next() {
                None => continue,
                Some(e) => e.map_err(|e| format!("not an HdrHistogram interval log ({e:?})"))?,
            };
            let ih = match entry {
                LogEntry::BaseTime(t) => {
                    self.base_time_s = Some(t.as_secs_f64());
                    continue;
                }
                LogEntry::StartTime(t) => {
                    self.base_time_s.get_or_insert(t.as_secs_f64());
                    continue;
                }
                LogEntry::Interval(ih) => ih,
            };
            let given = ih.tag().map(|t| t.as_str()).unwrap_or("");
            let Some(tag) = TAGS.iter().copied().find(|t| *t == given) else {
                return Err(format!(
                    "unknown histogram tag {given:?} (expected one of {})",
                    TAGS.join(", ")
                ));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(ih.encoded_histogram())
                .map_err(|e| format!("histogram {tag:?}: bad base64 ({e})"))?;
            self.check_header(tag, &bytes)?;
            let histogram: Histogram<u64> = self
                .deserializer
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| format!("histogram {tag:?}: cannot be decoded ({e:?})"))?;
            self.check_bounds(tag, &histogram)?;
            return Ok(Some(Entry {
                start_s: ih.start_timestamp().as_secs_f64(),
                len_s: ih.duration().as_secs_f64(),
                tag,
                histogram,
            }));
        }
    }

    fn check_bounds(&self, tag: &str, h: &Histogram<u64>) -> Result<(), String> {
        self.check_claim(tag, h.low(), h.high(), u32::from(h.sigfig()))
    }

    fn check_claim(&self, tag: &str, low: u64, high: u64, sigfig: u32) -> Result<(), String> {
        let r = &self.reference;
        if (low, high, sigfig) == (r.low(), r.high(), u32::from(r.sigfig())) {
            return Ok(());
        }
        Err(format!(
            "histogram {tag:?} has bounds {low}..{high} with {sigfig} significant figures, \
             not {}..{} with {}: histograms with other bounds do not add exactly",
            r.low(),
            r.high(),
            r.sigfig()
        ))
    }

    /// The encoded header's claims (bounds, precision, payload length) before anything is
    /// allocated for them: the decoder would otherwise make a histogram of whatever range
    /// the header claims and a buffer of whatever length.
    fn check_header(&self, tag: &str, bytes: &[u8]) -> Result<(), String> {
        use std::io::Read as _;
        let bad = |what: &str| format!("histogram {tag:?}: {what}");
        let u32_at = |b: &[u8], i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let u64_at = |b: &[u8], i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        // The plain header: cookie, payload length, normalizing offset, significant figures,
        // lowest, highest (then the ratio and the payload).
        let mut header = [0u8; 40];
        match u32_at(bytes, 0) {
            Some(V2_COOKIE) => {
                let n = bytes.len().min(40);
                header[..n].copy_from_slice(&bytes[..n]);
            }
            Some(V2_COMPRESSED_COOKIE) => {
                let mut z = flate2::read::ZlibDecoder::new(bytes.get(8..).unwrap_or_default());
                let mut n = 0;
                while n < header.len() {
                    match z.read(&mut header[n..]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
            }
            _ => return Err(bad("not a V2 HdrHistogram encoding")),
        }
        let (Some(payload), Some(sigfig), Some(low), Some(high)) = (
            u32_at(&header, 4),
            u32_at(&header, 12),
            u64_at(&header, 16),
            u64_at(&header, 24),
        ) else {
            return Err(bad("truncated header"));
        };
        self.check_claim(tag, low, high, sigfig)?;
        // Each count is a varint of at most 9 bytes.
        let most = self.reference.distinct_values() as u64 * 9;
        if u64::from(payload) > most {
            return Err(bad(&format!(
                "its header claims {payload} bytes of counts, more than the {most} a histogram of these bounds can hold"
            )));
        }
        Ok(())
    }
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
