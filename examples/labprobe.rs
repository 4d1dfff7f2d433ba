//! Enters a lab from a single-threaded process and proves it works: the way `portlab run`
//! uses `lab::enter` (first thing in main), and the only way the unprivileged
//! user-namespace path can be exercised.
//!
//! Usage: labprobe '<the [lab] table as TOML>'
//!   e.g. labprobe 'isolate = true
//!                  port_range = "41000-41049"'
//! Prints one JSON object: what enter() applied and the local port of one loopback
//! connection made inside the namespace. Exit code 2 with the error chain on failure.

use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use anyhow::Context;
use portlab::lab;
use portlab::plan::lab::LabConfig;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labprobe: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let toml_text = std::env::args()
        .nth(1)
        .context("usage: labprobe '<[lab] table as TOML>'")?;
    let config: LabConfig = toml::from_str(&toml_text).context("parsing the [lab] table")?;
    let plan = config.validate()?;
    // Before any thread exists, as portlab's main does.
    let applied = lab::enter(&plan).context("entering the lab")?;
    let listener = applied
        .in_server_ns(|| TcpListener::bind((applied.server_addr, 0)))?
        .context("binding a listener")?;
    let target = listener.local_addr()?;
    let client = TcpStream::connect(target).context("connecting inside the lab")?;
    let local = client.local_addr()?;
    let json = serde_json::json!({ "applied": applied, "local_port": local.port() });
    println!("{json}");
    Ok(())
}
