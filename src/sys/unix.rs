//! RLIMIT_NOFILE, SIGINT / SIGTERM and child processes on Unix.

use std::sync::atomic::{AtomicU32, Ordering};

use super::NofileLimit;

#[cfg(target_os = "linux")]
#[path = "pidns_linux.rs"]
mod pidns;

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

/// How many SIGINT / SIGTERM this process has received since [`catch_stop_signals`].
static STOP_SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // Async-signal-safe: one atomic add.
    STOP_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// From now on SIGINT (Ctrl-C) and SIGTERM are counted ([`stop_signals`]) instead of ending
/// the process, so a run stopped at any moment still writes what it measured, and a parent
/// (`portlab suite`) outlives its child runs' Ctrl-C. Called first thing, before anything is
/// written; calling it again changes nothing. A caught signal is reset to the default in
/// children at exec, so they handle their own. tokio's signal streams, registered later,
/// chain to this handler (it runs first), so a waker sees the count already raised.
pub fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only adds to a static atomic;
        // sigemptyset and sigaction get pointers to structs we own.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn stop_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread: one that comes waits, pending, until
/// [`release_stop_signals`]. The binary calls this before `main` (Linux) or first thing in
/// it, so that no signal finds portlab before it has chosen what the signal does.
pub fn block_stop_signals() {
    let set = stop_signal_set();
    // SAFETY: pthread_sigmask reads a set we own.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Unblocks what [`block_stop_signals`] blocked: a signal that came meanwhile is delivered
/// now, to the handler of [`catch_stop_signals`] if it was installed, else with its default
/// action. Must run before any child process or thread starts (both inherit the mask).
pub fn release_stop_signals() {
    let set = stop_signal_set();
    // SAFETY: pthread_sigmask reads a set we own.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// SIGINT and SIGTERM received since [`catch_stop_signals`].
pub fn stop_signals() -> u32 {
    STOP_SIGNALS.load(Ordering::SeqCst)
}

/// Resolves once this process has received `n` stop signals in all (SIGINT or SIGTERM,
/// counted from [`catch_stop_signals`], which `run` installs first): 1 stops the load, 2 also
/// ends the drain.
pub async fn signalled(n: u32) {
    use tokio::signal::unix::{signal, SignalKind};
    // The streams exist before the count is read: a signal after the read wakes them.
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    while stop_signals() < n {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// Makes a child command die with portlab: it starts in a process group of its own (so
/// [`signal_group`] reaches whatever it forks, and a terminal's Ctrl-C reaches only portlab,
/// which then stops it in order), and on Linux gets SIGKILL when portlab's thread that
/// started it ends, `kill -9` of portlab included (PR_SET_PDEATHSIG). Used for every command
/// portlab starts (`target.exec`, and client commands).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    with_parent(cmd, false);
}

/// [`die_with_parent`], and on Linux the command also runs in a PID namespace of its own
/// (see `pidns_linux.rs`), so that everything it forks dies with portlab, daemons that left
/// its process group included. For the user's commands (`target.exec`, `client.exec`).
pub fn contain_with_parent(cmd: &mut std::process::Command) {
    with_parent(cmd, true);
}

#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn with_parent(cmd: &mut std::process::Command, namespace: bool) {
    use std::os::unix::process::CommandExt;
    #[cfg(target_os = "linux")]
    // SAFETY: getpid is async-signal-safe; it runs before fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (setpgid, prctl, getppid, _exit) with plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // portlab died between fork and prctl: the signal will never come.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                if namespace {
                    pidns::enter()?;
                }
            }
            Ok(())
        });
    }
}

/// Sends `sig` to the process group a [`die_with_parent`] child leads (the child and what
/// it forked), or to the child alone when that group is gone; true when delivered.
pub fn signal_group(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a negated pid (a process group) or a pid, and a valid signal.
    unsafe { libc::kill(-pid, sig) == 0 || libc::kill(pid, sig) == 0 }
}

/// True when `meta` is this user's own and nobody else may write to it (not group- or
/// other-writable): safe to run files from, even under a shared temporary directory.
pub fn private_to_me(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid takes no arguments and cannot fail.
    meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o022 == 0
}

/// Takes an exclusive, non-blocking flock(2) on the directory `path`, opened without
/// following a symlink (O_NOFOLLOW: a link there is an error, ELOOP). `Ok(Some(file))` holds
/// the lock until the file is dropped (or the process ends, `kill -9` included: the kernel
/// releases it); `Err(Busy(pid))` when another process holds it, with its pid when the system
/// says (Linux: /proc/locks).
pub fn lock_directory(path: &std::path::Path) -> Result<Option<std::fs::File>, super::LockError> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(super::LockError::Io)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(dir));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(super::LockError::Busy(lock_holder(&dir)));
    }
    Err(super::LockError::Io(e))
}

/// The pid holding a flock on `file`, from /proc/locks ("1: FLOCK ADVISORY WRITE PID
/// MAJ:MIN:INODE 0 EOF", major and minor in hex).
#[cfg(target_os = "linux")]
fn lock_holder(file: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1:" FLOCK ADVISORY WRITE PID DEV..; a waiter's line has "->" after the number.
        let f: Vec<&str> = f.into_iter().filter(|w| *w != "->").collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(not(target_os = "linux"))]
fn lock_holder(_file: &std::fs::File) -> Option<u32> {
    None
}

/// Options that open a file for reading without blocking: O_NONBLOCK (a FIFO's open would
/// wait for a writer, ignoring SIGINT and SIGTERM) and O_NOCTTY (a terminal never becomes
/// ours).
pub fn read_nonblocking() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    options
}

/// What a special file is, in words: a FIFO, a device, a socket; None for the others.
pub fn special_file(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    }
}
