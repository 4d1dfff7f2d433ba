//! `portlab watch`: per destination on a live namespace, the ports used, the rate and when
//! they run out, printed every interval (or served to Prometheus with `--listen`).
//! Sampling and rendering are [`crate::watch`]'s.

use crate::say::Output;
use crate::watch::{self, WatchArgs};

/// Checks the flags, then samples until `--count`/`--once`, a signal, or the reader going
/// away. Returns the exit code of the last sample: 0 all ok, 1 a destination in warning or
/// exhausted.
pub fn run(args: &WatchArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    watch::validate(args)?;
    watch::sample(args, out)
}
