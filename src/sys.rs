//! Small OS-specific helpers, one file per OS.

#[cfg(unix)]
#[path = "sys/unix.rs"]
mod os;
#[cfg(not(unix))]
#[path = "sys/other.rs"]
mod os;

pub use os::{catch_interrupt, raise_nofile_limit};
