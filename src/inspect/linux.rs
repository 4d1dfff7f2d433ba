//! Linux: the sysctls of this network namespace (/proc/sys), one socket sample
//! (sock_diag, or /proc/net/tcp), RLIMIT_NOFILE. Read only.

use std::net::SocketAddr;

use super::{build, HostReport};

pub(super) fn collect() -> anyhow::Result<HostReport> {
    let (settings, unread) = match crate::lab::read_settings() {
        Ok(s) => (s, None),
        Err(e) => (Default::default(), Some(e)),
    };
    // No target: only the namespace totals (and the top destinations) are used.
    let sample = crate::observe::Sampler::new(SocketAddr::from(([0, 0, 0, 0], 0))).sample();
    let mut report = build::linux_report(&settings, &sample, crate::sys::nofile_limit());
    report.conntrack = super::ConntrackRead::from_files(&|name| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}")).ok()
    });
    if let Some(e) = unread {
        report.notes.push(format!(
            "the sysctls could not be read ({e}): linux defaults shown"
        ));
    }
    Ok(report)
}
