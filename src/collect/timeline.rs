//! One row per interval, appended to timeline.csv and flushed as the run goes.

use super::ErrCode;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::Path;

/// What happened in one interval.
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
    /// Kernel observations for the interval (name -> value), empty when not observed.
    #[serde(skip)]
    pub kernel: Vec<(&'static str, Option<f64>)>,
}

impl TimelineRow {
    /// Adds one error of `code` to `errors_by_kind`, keeping the text form (a handful of
    /// kinds per interval, so rewriting the short string is cheaper than a map).
    pub(crate) fn count_kind(&mut self, code: ErrCode) {
        let name = code.name();
        let mut out = String::with_capacity(self.errors_by_kind.len() + 16);
        let mut found = false;
        for part in self.errors_by_kind.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            match part.split_once('=') {
                Some((k, n)) if k == name => {
                    found = true;
                    let n: u64 = n.parse().unwrap_or(0);
                    out.push_str(&format!("{k}={}", n + 1));
                }
                _ => out.push_str(part),
            }
        }
        if !found {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{name}=1"));
        }
        self.errors_by_kind = out;
    }
}

/// Appends rows to timeline.csv, flushing each so a crash keeps every closed interval.
pub struct TimelineWriter {
    out: csv::Writer<File>,
    header_written: bool,
}

const COLUMNS: [&str; 10] = [
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
];

impl TimelineWriter {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> io::Result<TimelineWriter> {
        Ok(TimelineWriter {
            out: csv::Writer::from_writer(File::create(path)?),
            header_written: false,
        })
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
        let mut row = TimelineRow::default();
        for code in [ErrCode::TIMEOUT, ErrCode::EARLY_EOF, ErrCode::TIMEOUT] {
            row.count_kind(code);
        }
        assert_eq!(row.errors_by_kind, "TIMEOUT=2 EARLY_EOF=1");
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
            ..TimelineRow::default()
        };
        w.append(&row).unwrap();
        // Flushed after each row: readable while the writer is still open.
        assert_eq!(read(&path).unwrap(), vec![row]);
    }
}
