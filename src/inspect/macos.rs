//! macOS: `sysctl` (port range, MSL, somaxconn), `netstat -an -p tcp`, RLIMIT_NOFILE.
//! Read only.

use super::{build, command_output as output, HostReport};

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
