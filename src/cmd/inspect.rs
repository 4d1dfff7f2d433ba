//! `portlab inspect`: this host's port settings and socket counts, and with a rate the model
//! of that workload here. Reading the host is [`crate::inspect`]'s; nothing is changed.

use crate::inspect::{self, InspectArgs};
use crate::say::Output;
use anyhow::Context;

/// Reads the host, models the flags' workload, prints both. Returns the exit code (0).
pub fn run(args: &InspectArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    let host = inspect::collect()?;
    let model = inspect::model_of(&host, args)?;
    inspect::write(&host, &model, args.format, out).context("writing the inspection")?;
    Ok(0)
}
