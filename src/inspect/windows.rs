//! Windows: `netsh int ipv4 show dynamicport tcp` and `show excludedportrange`, `reg query` of the Tcpip parameters
//! (MaxUserPort, TcpTimedWaitDelay) and `netstat -an`. Read only.

use std::process::Command;

use super::{build, HostReport};

/// The command's stdout (whatever its exit status: reg exits 1 for an absent value), or
/// None when it could not be started.
fn output(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub(super) fn collect() -> anyhow::Result<HostReport> {
    let netsh = output("netsh", &["int", "ipv4", "show", "dynamicport", "tcp"]);
    let excluded = output(
        "netsh",
        &["int", "ipv4", "show", "excludedportrange", "protocol=tcp"],
    );
    let reg = output("reg", &["query", build::TCPIP_PARAMETERS]);
    let netstat = output("netstat", &["-an"]);
    Ok(build::windows_report(
        netsh.as_deref(),
        excluded.as_deref(),
        reg.as_deref(),
        netstat.as_deref(),
    ))
}
