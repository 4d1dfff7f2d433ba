//! One row per interval, appended to timeline.csv and flushed as the run goes.

use super::ErrCode;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::Path;

/// What happened in one interval.
///
/// Its counts are not a [`Counts`](super::Counts): they are timeline.csv's columns, one
/// interval's, under names of their own (`errors` where a run says `failed`), with the
/// gauge `in_flight` among them and no column for aborted or reconnects. A `Counts` inside
/// would need `#[serde(flatten)]`, with which csv must guess each field's type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// End of the interval, seconds since the start.
    pub t_s: f64,
    /// Starts begun in the interval.
    pub attempts: u64,
    /// Connections established.
    pub connected: u64,
    /// Attempts that ended without error.
    pub completed: u64,
    /// Starts dropped because max in flight was reached.
    pub dropped: u64,
    /// Attempts that ended with an error.
    pub errors: u64,
    /// Errors by OS name, e.g. "EADDRNOTAVAIL=12 ECONNRESET=1".
    pub errors_by_kind: String,
    /// In flight at the end of the interval.
    pub in_flight: u64,
    /// Median connect latency from the scheduled start, µs.
    pub connect_p50_us: Option<u64>,
    /// 99th percentile connect latency from the scheduled start, µs.
    pub connect_p99_us: Option<u64>,
    /// Slowest connect in the interval from the scheduled start, µs (absent in timelines
    /// written before the column existed).
    #[serde(default)]
    pub connect_max_us: Option<u64>,
    /// Kernel observations for the interval (name -> value), empty when not observed.
    #[serde(skip)]
    pub kernel: Vec<(&'static str, Option<f64>)>,
}

impl TimelineRow {
    /// Adds `row`'s counts and in-flight connections into this row, saturating (a saved
    /// timeline.csv may hold any u64): one interval of several runs, as `portlab merge`
    /// adds them.
    pub(crate) fn add_counts(&mut self, row: &TimelineRow) {
        // Destructured without `..`, so that a new column is either added here or named as
        // not added: the time and the percentiles are the merged interval's own, the merge
        // adds the kinds kind by kind, and kernel observations are each host's.
        let TimelineRow {
            t_s: _,
            attempts,
            connected,
            completed,
            dropped,
            errors,
            errors_by_kind: _,
            in_flight,
            connect_p50_us: _,
            connect_p99_us: _,
            connect_max_us: _,
            kernel: _,
        } = row;
        self.attempts = self.attempts.saturating_add(*attempts);
        self.connected = self.connected.saturating_add(*connected);
        self.completed = self.completed.saturating_add(*completed);
        self.dropped = self.dropped.saturating_add(*dropped);
        self.errors = self.errors.saturating_add(*errors);
        self.in_flight = self.in_flight.saturating_add(*in_flight);
    }
}

/// Errors by kind within one interval, in order of first appearance. Counted as numbers
/// on the hot path; turned into the `errors_by_kind` text once, when the interval closes.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindCounts(Vec<(ErrCode, u64)>);

impl KindCounts {
    /// Counts one error of `code` (allocates only when a new kind appears).
    pub(crate) fn add(&mut self, code: ErrCode) {
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.0.push((code, 1)),
        }
    }

    /// "TIMEOUT=2 EARLY_EOF=1", and empties the counts for the next interval.
    pub(crate) fn take_text(&mut self) -> String {
        let text = self
            .0
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.0.clear();
        text
    }
}

/// Appends rows to timeline.csv, flushing each so a crash keeps every closed interval.
pub struct TimelineWriter {
    out: csv::Writer<File>,
    header_written: bool,
}

const COLUMNS: [&str; 11] = [
    "t_s",
    "attempts",
    "connected",
    "completed",
    "dropped",
    "errors",
    "errors_by_kind",
    "in_flight",
    "connect_p50_us",
    "connect_p99_us",
    "connect_max_us",
];

impl TimelineWriter {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> io::Result<TimelineWriter> {
        Ok(TimelineWriter::new(File::create(path)?))
    }

    /// Writes into `file`, already created (the results directory creates its files).
    pub fn new(file: File) -> TimelineWriter {
        TimelineWriter {
            out: csv::Writer::from_writer(file),
            header_written: false,
        }
    }

    /// Appends one row (and the header before the first), then flushes.
    pub fn append(&mut self, row: &TimelineRow) -> io::Result<()> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        if !self.header_written {
            let mut header: Vec<&str> = COLUMNS.to_vec();
            header.extend(row.kernel.iter().map(|(name, _)| *name));
            self.out.write_record(&header)?;
            self.header_written = true;
        }
        let mut rec = vec![
            format!("{:.3}", row.t_s),
            row.attempts.to_string(),
            row.connected.to_string(),
            row.completed.to_string(),
            row.dropped.to_string(),
            row.errors.to_string(),
            row.errors_by_kind.clone(),
            row.in_flight.to_string(),
            opt(row.connect_p50_us),
            opt(row.connect_p99_us),
            opt(row.connect_max_us),
        ];
        rec.extend(
            row.kernel
                .iter()
                .map(|(_, v)| v.map(|v| v.to_string()).unwrap_or_default()),
        );
        self.out.write_record(&rec)?;
        self.out.flush()
    }
}

/// Reads a timeline.csv back (for `portlab report`).
pub fn read(path: &Path) -> Result<Vec<TimelineRow>, csv::Error> {
    let mut rows = Vec::new();
    let mut r = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    for rec in r.deserialize::<TimelineRow>() {
        rows.push(rec?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_accumulate_in_order_of_first_appearance() {
        let mut kinds = KindCounts::default();
        for code in [ErrCode::TIMEOUT, ErrCode::EARLY_EOF, ErrCode::TIMEOUT] {
            kinds.add(code);
        }
        assert_eq!(kinds.take_text(), "TIMEOUT=2 EARLY_EOF=1");
        assert_eq!(
            kinds.take_text(),
            "",
            "taking the text starts the next interval afresh"
        );
    }

    #[test]
    fn written_rows_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.csv");
        let mut w = TimelineWriter::create(&path).unwrap();
        let row = TimelineRow {
            t_s: 1.0,
            attempts: 100,
            connected: 90,
            completed: 90,
            errors: 10,
            errors_by_kind: "TIMEOUT=10".into(),
            connect_p50_us: Some(80),
            connect_max_us: Some(900),
            ..TimelineRow::default()
        };
        w.append(&row).unwrap();
        // Flushed after each row: readable while the writer is still open.
        assert_eq!(read(&path).unwrap(), vec![row]);
    }
}
