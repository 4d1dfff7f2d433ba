//! `portlab scenarios [show NAME]`: the built-in catalog listed, or one of its files
//! printed to copy and edit. The catalog itself is [`crate::catalog`].

use crate::catalog::{entries, get, names};
use crate::say::Output;
use anyhow::anyhow;

/// `portlab scenarios [show NAME]`
#[derive(Debug, clap::Args)]
pub struct ScenariosArgs {
    /// `show NAME` prints that scenario's file (to copy and edit); without it, the list.
    #[command(subcommand)]
    pub action: Option<ScenariosAction>,
}

/// What `portlab scenarios` does.
#[derive(Debug, clap::Subcommand)]
pub enum ScenariosAction {
    /// Print a built-in scenario's file, comments included: `portlab scenarios show
    /// quickstart > my.toml`, edit, then `portlab run my.toml`.
    Show {
        /// The scenario's name (see `portlab scenarios`).
        name: String,
    },
}

/// Lists the catalog, or prints one file. Returns the exit code (0).
pub fn run(args: &ScenariosArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    match &args.action {
        None => {
            let width = entries().map(|e| e.name.len()).max().unwrap_or(0);
            for e in entries() {
                writeln!(out, "{:width$}  {}", e.name, e.description())?;
            }
            writeln!(
                out,
                "\nRun one: portlab run NAME (a file of that name, if any, wins). \
                 Copy one: portlab scenarios show NAME > my.toml"
            )?;
        }
        Some(ScenariosAction::Show { name }) => {
            let entry = get(name).ok_or_else(|| {
                anyhow!(
                    "no built-in scenario is called '{name}'; choose one of: {}",
                    names()
                )
            })?;
            out.write_all(entry.text.as_bytes())?;
        }
    }
    Ok(0)
}
