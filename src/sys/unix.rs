//! RLIMIT_NOFILE and SIGINT on Unix.

use std::sync::atomic::{AtomicBool, Ordering};

use super::NofileLimit;

/// Reads the soft and hard RLIMIT_NOFILE without changing them; None when they cannot be
/// read.
pub fn nofile_limit() -> Option<NofileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    // rlim_t is u64 on Linux and macOS, but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v as u64);
    Some(NofileLimit {
        soft: finite(lim.rlim_cur),
        hard: finite(lim.rlim_max),
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force
/// (None when it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited".
    let target = if cfg!(target_os = "macos") {
        lim.rlim_max.min(10_240)
    } else {
        lim.rlim_max
    };
    if lim.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from a struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    // rlim_t is u64 on Linux and macOS, but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

/// Makes this thread's sleeps end on time: Linux lets a sleep overrun by the thread's timer
/// slack (50 µs by default) to batch wake-ups; the pacer wants its starts at 1/R intervals, so
/// it asks for 1 ns. Elsewhere (and if refused) sleeps keep their default precision.
pub fn precise_sleep() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// A non-blocking connect() that has begun and not finished (EINPROGRESS).
pub fn connect_in_progress(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == std::io::ErrorKind::WouldBlock
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// From now on SIGINT (Ctrl-C) sets the returned flag instead of ending the process, so a
/// parent (`portlab suite`) outlives its child runs' Ctrl-C and writes what it has. A caught
/// signal is reset to the default in children at exec, so they handle Ctrl-C themselves.
pub fn catch_interrupt() -> &'static AtomicBool {
    // SAFETY: installs a handler that only stores to a static atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    &INTERRUPTED
}

/// True when `meta` is this user's own and nobody else may write to it (not group- or
/// other-writable): safe to run files from, even under a shared temporary directory.
pub fn private_to_me(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid takes no arguments and cannot fail.
    meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o022 == 0
}
