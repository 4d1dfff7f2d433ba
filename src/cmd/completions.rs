//! `portlab completions SHELL`: the shell completion script of the command-line definition.

use crate::cmd::cli::Cli;
use crate::say::Output;
use anyhow::Context;

/// `portlab completions SHELL`
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell`. Returns the exit code (0).
pub fn run(args: &CompletionsArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "portlab", &mut buf);
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .context("writing the completion script")?;
    Ok(0)
}
