//! Descriptor limits where there is no RLIMIT_NOFILE (Windows: sockets are handles with no
//! per-process soft limit to raise).

/// Nothing to raise; None means "no limit known".
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// Timer slack is a Linux notion: nothing to do.
pub fn precise_sleep() {}

/// A non-blocking connect() that has begun and not finished (WSAEWOULDBLOCK on Windows).
pub fn connect_in_progress(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
}

/// No signal handler here: Ctrl-C reaches the run through tokio's ctrl_c, and ends a suite
/// with its children.
pub fn catch_stop_signals() {}

/// Nothing to block without Unix signals.
pub fn block_stop_signals() {}

/// Nothing to release without Unix signals.
pub fn release_stop_signals() {}

/// Always 0: see [`catch_stop_signals`].
pub fn stop_signals() -> u32 {
    0
}

/// Resolves once this process has received `n` Ctrl-C in all: 1 stops the load, 2 also
/// ends the drain.
pub async fn signalled(n: u32) {
    for _ in 0..n {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// No RLIMIT_NOFILE here: None.
pub fn nofile_limit() -> Option<super::NofileLimit> {
    None
}

/// Ownership cannot be checked the same way here: never trusted, so callers make a fresh
/// directory instead of reusing one.
pub fn private_to_me(_meta: &std::fs::Metadata) -> bool {
    false
}

/// No directory lock here: always Ok(None).
pub fn lock_directory(_path: &std::path::Path) -> Result<Option<std::fs::File>, super::LockError> {
    Ok(None)
}

/// Options that open a file for reading (a Windows open does not wait on a pipe's writer).
pub fn read_nonblocking() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    options
}

/// No FIFO or device nodes here: the caller's "not a regular file" covers the rest.
pub fn special_file(_t: &std::fs::FileType) -> Option<&'static str> {
    None
}
