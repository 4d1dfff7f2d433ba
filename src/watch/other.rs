//! Not Linux: `portlab watch` says it is Linux-only for now (exit 2). Windows' and macOS'
//! `netstat -an` give counts but no TIME_WAIT timers; `portlab inspect` shows those.

use super::{WatchArgs, WatchError};

pub(super) fn run(_args: &WatchArgs, _out: &mut dyn crate::say::Output) -> anyhow::Result<u8> {
    Err(WatchError::LinuxOnly.into())
}
