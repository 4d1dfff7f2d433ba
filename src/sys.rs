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
    catch_stop_signals, connect_in_progress, nofile_limit, precise_sleep, private_to_me,
    raise_nofile_limit, read_nonblocking, signalled, special_file, stop_signals,
};
#[cfg(unix)]
pub use os::{die_with_parent, signal_group};

/// RLIMIT_NOFILE as it stands: the most descriptors (sockets included) this process may
/// hold. `None` in a field means unlimited (RLIM_INFINITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NofileLimit {
    /// The soft limit, the one in force.
    pub soft: Option<u64>,
    /// The hard limit, up to which the soft one may be raised without privileges.
    pub hard: Option<u64>,
}
