//! Reading the files a user names (a scenario, `--baseline`, a results directory's
//! summary.json, timeline.csv and histograms.hlog, `watch --netns`): opened without blocking
//! (a FIFO's open waits for a writer; O_NONBLOCK returns at once), checked to be a regular
//! file with fstat on the open descriptor (not a FIFO, a device such as /dev/zero, a socket
//! or a directory), and read up to a size limit that the error names. Every read of a
//! user-given path goes through here, so that no file a user names can hang or exhaust a
//! subcommand.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

/// The most a scenario file (TOML) may hold: the catalog's are a few KiB.
pub const SCENARIO_LIMIT: u64 = 1 << 20;
/// The most a summary.json may hold: a suite's or a merge of many shards is tens of KiB.
pub const SUMMARY_LIMIT: u64 = 64 << 20;
/// The most a file read as it streams (timeline.csv, histograms.hlog) may hold: memory does
/// not grow with it, this only bounds the time spent on one (a day at 10 ms intervals is
/// about 2 GiB of histograms.hlog).
pub const STREAM_LIMIT: u64 = 16 << 30;
/// The most a timeline.csv read whole (report.html's charts) may hold: a day at 10 ms
/// intervals is about 600 MiB.
pub const TIMELINE_LIMIT: u64 = 1 << 30;
/// The longest line of a streamed file: a histograms.hlog line of the bounds portlab writes
/// holds at most a few KiB (every bucket of a 1 µs..1 h histogram set, compressed).
pub const LINE_LIMIT: usize = 1 << 20;

/// Shown sizes: "64 MiB".
fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// What `meta` is, in words, when it is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    if let Some(what) = crate::sys::special_file(&t) {
        return Some(what);
    }
    Some("not a regular file")
}

/// Opens `path` for reading without blocking on a FIFO (or a tty, or a device that waits).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    crate::sys::read_nonblocking().open(path)
}

/// The error of a refused read: callers name the file (their context says which file it
/// was and what it was for).
fn refused(_path: &Path, why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// Opens `path`, a regular file of at most `limit` bytes, for reading (as it streams). The
/// error says what it is instead, or the limit; the caller names the file.
pub fn open(path: &Path, limit: u64) -> io::Result<File> {
    let file = open_nonblocking(path).map_err(|e| refused(path, e.to_string()))?;
    let meta = file.metadata().map_err(|e| refused(path, e.to_string()))?;
    if let Some(what) = not_regular(&meta) {
        return Err(refused(
            path,
            format!("is {what}; portlab reads only regular files"),
        ));
    }
    if meta.len() > limit {
        return Err(refused(
            path,
            format!(
                "is {} bytes, more than the {} portlab reads of such a file",
                meta.len(),
                size(limit)
            ),
        ));
    }
    Ok(file)
}

/// Reads `path`, a regular file of at most `limit` bytes (checked again while reading: a
/// file that grows is cut off at the limit and refused).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open(path, limit)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(path, e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(refused(
            path,
            format!("grew past the {} portlab reads of such a file", size(limit)),
        ));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|e| {
        refused(
            path,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Opens a namespace file (`watch --netns`: /run/netns/NAME, /proc/PID/ns/net) without
/// blocking; anything but a regular file (an nsfs file stats as one) is refused.
pub fn open_namespace(path: &Path) -> io::Result<File> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if let Some(what) = not_regular(&meta) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a network namespace file"),
        ));
    }
    Ok(file)
}

/// Reads lines of at most [`LINE_LIMIT`] bytes from a streamed file (a longer one is an
/// error; the caller names the file and [`Lines::number`]), without holding more than one
/// line.
pub struct Lines<R> {
    reader: io::BufReader<R>,
    /// The number of the line last returned (1 for the first).
    pub number: u64,
}

impl<R: Read> Lines<R> {
    /// Lines of `r`.
    pub fn new(r: R) -> Lines<R> {
        Lines {
            reader: io::BufReader::new(r),
            number: 0,
        }
    }

    /// The next line into `line` (cleared first, with its end of line); false at the end.
    pub fn next_into(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
        use std::io::BufRead;
        line.clear();
        let n = (&mut self.reader)
            .take(LINE_LIMIT as u64 + 1)
            .read_until(b'\n', line)?;
        if n == 0 {
            return Ok(false);
        }
        self.number += 1;
        if line.len() > LINE_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a line longer than the {} portlab reads of one",
                    size(LINE_LIMIT as u64)
                ),
            ));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        std::fs::write(&p, vec![b' '; 2048]).unwrap();
        let e = read(&p, 1024).unwrap_err().to_string();
        assert!(e.contains("1 KiB"), "{e}");
        assert_eq!(read(&p, 4096).unwrap().len(), 2048);
    }

    #[test]
    fn a_directory_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 1024).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused_not_read_until_memory_runs_out() {
        let e = read(Path::new("/dev/zero"), SUMMARY_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = read(&p, 1024).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = open_namespace(&p).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_line_over_the_limit_is_refused_at_its_number() {
        let mut text = b"first\n".to_vec();
        text.extend(vec![b'x'; LINE_LIMIT + 10]);
        let mut lines = Lines::new(text.as_slice());
        let mut line = Vec::new();
        assert!(lines.next_into(&mut line).unwrap());
        let e = lines.next_into(&mut line).unwrap_err().to_string();
        assert!(e.contains("1 MiB") && lines.number == 2, "{e}");
    }
}
