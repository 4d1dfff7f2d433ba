//! What portlab says on stderr besides errors: warnings, notices and notes. `--quiet` turns
//! all of it off at once (errors, and on exit 1 the failed checks, still print), so that a CI
//! log or a script sees only what went wrong.

use std::sync::atomic::{AtomicBool, Ordering};

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
