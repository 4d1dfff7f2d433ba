//! `portlab man`: the manual pages (roff) of the command-line definition.

use crate::cmd::cli::Cli;
use crate::say::Output;
use anyhow::Context;

/// `portlab man` (no flags of its own).
#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// Prints portlab(1) followed by a page per subcommand (portlab-run(1), ...). Returns the
/// exit code (0).
pub fn run(_args: &ManArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("portlab-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(name);
        clap_mangen::Man::new(page).render(&mut buf)?;
    }
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .context("writing the manual page")?;
    Ok(0)
}
