//! `client.local_port_range` (`--local-port-range LO-HI`): a per-socket IP_LOCAL_PORT_RANGE
//! (Linux 6.3+) confines the client to LO..HI: with the client closing first, ten ports run
//! out after ten connections, as the model predicts from the same range.

use crate::common::*;

fn kernel_has_it(test: &str) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let ok = matches!((it.next(), it.next()), (Some(a), Some(b)) if (a, b) >= (6, 3));
    let reason = format!(
        "kernel {} has no IP_LOCAL_PORT_RANGE (Linux 6.3+)",
        release.trim()
    );
    can_run(test, ok, &reason)
}

#[cfg(target_os = "linux")]
#[test]
fn ten_ports_run_out_after_ten_connections() {
    if !kernel_has_it("ten_ports_run_out_after_ten_connections") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Ports near the top of the default range, away from other tests' traffic; each one
    // then sits in TIME_WAIT for 60 s on the client.
    let (out, s) = run_json(
        &dir.path().join("r"),
        &[
            "--local-port-range",
            "60910-60919",
            "--rate",
            "200",
            "--count",
            "40",
            "--close",
            "active",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    let completed = n(&s, "completed");
    // At most the 10 ports of the range, plus one per TIME_WAIT socket an RST ended early
    // (common::ended_early), each of which sends one RST. On the host, OutRsts also counts
    // everyone else's resets: an upper bound, so only more successes than RSTs fail this.
    let extra = completed.saturating_sub(10);
    let resets = s["kernel"]["OutRsts"].as_u64().unwrap_or(0);
    assert!(
        extra <= resets,
        "at most the 10 ports of the range: {completed}, OutRsts {resets}\n{err}"
    );
    assert!(
        s["errors"]["EADDRNOTAVAIL"]["count"].as_u64().unwrap_or(0) >= 30 - extra,
        "the rest fail for want of a port: {:#}",
        s["errors"]
    );
    assert_eq!(
        s["prediction"]["ports_effective"], 10,
        "the model sees the same 10 ports"
    );
}

#[test]
fn refused_with_portlab_binding_its_own_range() {
    let out = std::process::Command::new(portlab())
        .args([
            "run",
            "--dry-run",
            "--local-port-range",
            "40000-40009",
            "--bind",
            "range=40000-40009",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client.local_port_range") && err.contains("--local-port-range"),
        "{err}"
    );
}
