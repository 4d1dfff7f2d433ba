//! macOS: `sysctl` (port range, MSL, somaxconn), `netstat -an -p tcp`, RLIMIT_NOFILE.
//! Read only.

use std::process::Command;

use super::{build, HostReport};

/// The command's stdout (sysctl prints the names it knows even when one is unknown), or
/// None when it could not be started.
fn output(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

pub(super) fn collect() -> anyhow::Result<HostReport> {
    let sysctl = output(
        "sysctl",
        &[
            "net.inet.ip.portrange.first",
            "net.inet.ip.portrange.last",
            "net.inet.tcp.msl",
            "kern.ipc.somaxconn",
        ],
    );
    let netstat = output("netstat", &["-an", "-p", "tcp"]);
    Ok(build::macos_report(
        sysctl.as_deref(),
        netstat.as_deref(),
        crate::sys::nofile_limit(),
    ))
}
