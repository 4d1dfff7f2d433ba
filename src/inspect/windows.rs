//! Windows: `netsh int ipv4 show dynamicport tcp` and `show excludedportrange`, `reg query` of the Tcpip parameters
//! (MaxUserPort, TcpTimedWaitDelay) and `netstat -an`. Read only.

use super::{build, command_output as output, HostReport};

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
