//! Small OS-specific helpers, one file per OS.

#[cfg(unix)]
#[path = "sys/unix.rs"]
mod os;
#[cfg(not(unix))]
#[path = "sys/other.rs"]
mod os;

/// A minimal synchronous netlink client (rtnetlink for the lab, sock_diag for observe).
#[cfg(target_os = "linux")]
pub(crate) mod netlink;

pub use os::{
    block_stop_signals, catch_stop_signals, connect_in_progress, lock_directory, nofile_limit,
    precise_sleep, private_to_me, raise_nofile_limit, read_nonblocking, release_stop_signals,
    signalled, special_file, stop_signals,
};
#[cfg(unix)]
pub use os::{contain_with_parent, die_with_parent, signal_group};

/// RLIMIT_NOFILE as it stands: the most descriptors (sockets included) this process may
/// hold. `None` in a field means unlimited (RLIM_INFINITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NofileLimit {
    /// The soft limit, the one in force.
    pub soft: Option<u64>,
    /// The hard limit, up to which the soft one may be raised without privileges.
    pub hard: Option<u64>,
}

/// Why [`lock_directory`] did not take the lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it: its pid, when the system says.
    Busy(Option<u32>),
    /// The directory could not be opened (a symlink: ELOOP) or locked.
    Io(std::io::Error),
}
