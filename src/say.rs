//! What portlab says: a command's document goes to an [`Output`] (stdout); on stderr,
//! besides errors, warnings, notices and notes. `--quiet` turns the stderr lines off at once
//! (errors, and on exit 1 the failed checks, still print), so that a CI log or a script sees
//! only what went wrong.

use std::sync::atomic::{AtomicBool, Ordering};

/// Where a command writes its document: stdout (main.rs), or a buffer in tests. A reader
/// that went away (`portlab watch | head`) is no error: main.rs's stdout drops what is
/// written from then on and says so through [`Output::closed`], so that a command that
/// writes until stopped (watch) ends, and every other goes on to its own exit code.
pub trait Output: std::io::Write + Send {
    /// True once the reader went away: what is written is dropped.
    fn closed(&self) -> bool {
        false
    }
    /// True when a terminal reads it.
    fn is_terminal(&self) -> bool {
        false
    }
}

impl Output for Vec<u8> {}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: from now on, warnings, notices and notes are not printed.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` is on.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// One line on stderr, `label: ...`, unless `--quiet`.
pub fn line(label: &str, what: std::fmt::Arguments) {
    if !quiet() {
        eprintln!("{label}: {what}");
    }
}

/// `warning: ...` on stderr unless `--quiet`: something the run could not do as asked, or a
/// figure it may have skewed.
macro_rules! warning {
    ($($arg:tt)*) => { $crate::say::line("warning", format_args!($($arg)*)) };
}

/// `notice: ...` on stderr unless `--quiet`: something the user should know about where the
/// traffic goes.
macro_rules! notice {
    ($($arg:tt)*) => { $crate::say::line("notice", format_args!($($arg)*)) };
}

/// `portlab: ...` on stderr unless `--quiet`: what portlab is doing (a command it starts).
macro_rules! note {
    ($($arg:tt)*) => { $crate::say::line("portlab", format_args!($($arg)*)) };
}

pub(crate) use {note, notice, warning};
