//! `portlab inspect`: the host's settings as the kernel reports them, and the model for a
//! rate checked by hand inside a private network namespace (the host is never changed).

use crate::common::{self, namespaces_available, portlab};
use serde_json::Value;
use std::process::{Command, Output};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn host_range() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = text.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Runs `portlab inspect ARGS` in a new network namespace whose sysctls are `sysctls`
/// (written there only).
fn inspect_in_netns(sysctls: &[(&str, &str)], args: &[&str]) -> Output {
    let mut script = String::from("set -e; ");
    for (name, value) in sysctls {
        script.push_str(&format!("echo '{value}' > /proc/sys/{name}; "));
    }
    script.push_str("exec \"$0\" inspect \"$@\"");
    // As root a plain network namespace; otherwise inside a user namespace.
    let root = Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let unshare: &[&str] = if root { &["-n"] } else { &["-r", "-n"] };
    Command::new("unshare")
        .args(unshare)
        .args(["sh", "-c", &script])
        .arg(portlab())
        .args(args)
        .output()
        .expect("running unshare")
}

#[cfg(target_os = "linux")]
#[test]
fn json_reports_this_namespaces_port_range_and_counts() {
    let (lo, hi) = host_range();
    let out = Command::new(portlab())
        .args(["inspect", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(v["os"], "linux");
    assert_eq!(v["ports"]["first"].as_u64(), Some(lo), "{v:#}");
    assert_eq!(v["ports"]["last"].as_u64(), Some(hi), "{v:#}");
    assert_eq!(v["ports"]["range"], format!("{lo}-{hi}"));
    assert_eq!(v["time_wait"]["seconds"].as_f64(), Some(60.0));
    assert!(v["sockets"]["time_wait"].is_u64(), "{v:#}");
    assert!(v["sockets"]["established"].is_u64(), "{v:#}");
    assert!(v["nofile"].is_object(), "{v:#}");
    let names: Vec<&str> = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for want in [
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_tw_reuse_delay",
        "net.ipv4.tcp_max_tw_buckets",
        "net.ipv4.tcp_timestamps",
        "net.ipv4.tcp_fin_timeout",
        "net.core.somaxconn",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // No rate: capacity only, no warning.
    assert!(v["model"]["input"]["rate"].is_null());
    assert!(v["model"]["warning"].is_null());
}

#[cfg(target_os = "linux")]
#[test]
fn text_names_fin_timeout_as_not_shortening_time_wait() {
    let out = Command::new(portlab()).arg("inspect").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let fin = text
        .lines()
        .find(|l| l.contains("net.ipv4.tcp_fin_timeout"))
        .unwrap_or_else(|| panic!("no fin_timeout line in\n{text}"));
    assert!(fin.contains("does NOT shorten TIME_WAIT"), "{fin}");
    for needle in ["RLIMIT_NOFILE", "TIME_WAIT ", "ESTABLISHED ", "sustainable"] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
}

#[test]
fn rate_models_a_private_namespace_by_hand() {
    if !namespaces_available("rate_models_a_private_namespace_by_hand") {
        return;
    }
    let before = host_range();
    let range = [("net/ipv4/ip_local_port_range", "40000 40999")];

    // 1000 ports, TIME_WAIT 60 s, 100/s: 6000 needed > 1000 -> first error at 1000 / 100 = 10 s.
    let out = inspect_in_netns(&range, &["--rate", "100", "--format", "json"]);
    let v = json(&out);
    assert_eq!(v["ports"]["usable"].as_u64(), Some(1000), "{v:#}");
    let p = &v["model"]["prediction"];
    assert_eq!(p["exhausts"], true, "{v:#}");
    assert_eq!(p["first_error_s"].as_f64(), Some(10.0), "{v:#}");
    assert_eq!(p["margin"].as_f64(), Some(6.0), "{v:#}");
    let w = v["model"]["warning"].as_str().expect("a warning");
    assert!(
        w.starts_with("WARNING") && w.contains("6000 ports needed"),
        "{w}"
    );
    // The inverse advice of `portlab predict` comes along: 6000 ports or a 10 s hold.
    assert_eq!(v["model"]["inverse"]["ports_needed"].as_u64(), Some(6000));
    assert!(!v["model"]["advice"].as_array().unwrap().is_empty());

    // 10/s: 600 needed <= 1000 -> no warning; sustainable 1000 / 60 = 16.67/s, steady 600.
    let out = inspect_in_netns(&range, &["--rate", "10", "--format", "json"]);
    let v = json(&out);
    let p = &v["model"]["prediction"];
    assert_eq!(p["exhausts"], false, "{v:#}");
    assert!(v["model"]["warning"].is_null(), "{v:#}");
    let sustainable = p["sustainable_rate"].as_f64().unwrap();
    assert!((sustainable - 1000.0 / 60.0).abs() < 1e-9, "{sustainable}");
    assert_eq!(p["steady_timewait"].as_f64(), Some(600.0));

    // The text says it plainly.
    let out = inspect_in_netns(&range, &["--rate", "100"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("WARNING: 100 conn/s x 60 s TIME_WAIT = 6000 ports needed, more than the 1000 usable: the first EADDRNOTAVAIL comes after 1000 / 100 conn/s = 10 s, then at most 16.67 conn/s succeed."), "{text}");
    assert!(text.contains("first error        after 10 s"), "{text}");
    let out = inspect_in_netns(&range, &["--rate", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("WARNING"), "{text}");
    assert!(text.contains("16.67 conn/s"), "{text}");

    assert_eq!(host_range(), before, "the host's range must not change");
}

#[test]
fn reserved_ports_reuse_delay_and_flags_shape_the_model() {
    if !namespaces_available("reserved_ports_reuse_delay_and_flags_shape_the_model") {
        return;
    }
    // 40000-40999 with 40000-40099 reserved: 900 usable; tcp_tw_reuse 1 after 2 s.
    let sysctls = [
        ("net/ipv4/ip_local_port_range", "40000 40999"),
        ("net/ipv4/ip_local_reserved_ports", "40000-40099"),
        ("net/ipv4/tcp_tw_reuse", "1"),
        ("net/ipv4/tcp_tw_reuse_delay", "2000"),
    ];
    // 600/s x 2 s = 1200 > 900 -> first error at 900 / 600 = 1.5 s; 450/s after.
    let v = json(&inspect_in_netns(
        &sysctls,
        &["--rate", "600", "--format", "json"],
    ));
    assert_eq!(v["ports"]["reserved"].as_u64(), Some(100), "{v:#}");
    assert_eq!(v["ports"]["usable"].as_u64(), Some(900), "{v:#}");
    let p = &v["model"]["prediction"];
    assert_eq!(p["hold_s"].as_f64(), Some(2.0), "{v:#}");
    assert_eq!(p["first_error_s"].as_f64(), Some(1.5), "{v:#}");
    assert_eq!(p["post_exhaustion_rate"].as_f64(), Some(450.0), "{v:#}");
    assert!(v["model"]["warning"]
        .as_str()
        .unwrap()
        .contains("tcp_tw_reuse delay"));

    // Spread over 2 destinations: 1800 port slots, 1200 needed -> fine.
    let v = json(&inspect_in_netns(
        &sysctls,
        &["--rate", "600", "--destinations", "2", "--format", "json"],
    ));
    assert!(v["model"]["warning"].is_null(), "{v:#}");
    assert_eq!(
        v["model"]["prediction"]["ports_effective"].as_u64(),
        Some(1800)
    );

    // The server closing first: the client keeps no TIME_WAIT, nothing runs out.
    let v = json(&inspect_in_netns(
        &sysctls,
        &["--rate", "100000", "--close", "passive", "--format", "json"],
    ));
    assert_eq!(v["model"]["prediction"]["exhausts"], false, "{v:#}");
    assert!(v["model"]["warning"].is_null());

    // A pool of 8 holds 8 ports and no TIME_WAIT; a pool of 901 needs more than 900.
    let v = json(&inspect_in_netns(
        &sysctls,
        &["--rate", "100000", "--pool", "8", "--format", "json"],
    ));
    assert_eq!(v["model"]["prediction"]["exhausts"], false, "{v:#}");
    let v = json(&inspect_in_netns(
        &sysctls,
        &["--rate", "100", "--pool", "901", "--format", "json"],
    ));
    assert!(
        v["model"]["warning"]
            .as_str()
            .unwrap()
            .contains("pool of 901"),
        "{v:#}"
    );

    // tcp_tw_reuse = 2 (loopback only): a remote target holds 60 s, --loopback 2 s.
    let loopback_only = [
        ("net/ipv4/ip_local_port_range", "40000 40999"),
        ("net/ipv4/tcp_tw_reuse", "2"),
        ("net/ipv4/tcp_tw_reuse_delay", "2000"),
    ];
    let remote = json(&inspect_in_netns(
        &loopback_only,
        &["--rate", "100", "--format", "json"],
    ));
    assert_eq!(remote["model"]["prediction"]["hold_s"].as_f64(), Some(60.0));
    let lo = json(&inspect_in_netns(
        &loopback_only,
        &["--rate", "100", "--loopback", "--format", "json"],
    ));
    assert_eq!(lo["model"]["prediction"]["hold_s"].as_f64(), Some(2.0));
    assert!(lo["model"]["warning"].is_null());
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for args in [
        &["--rate", "0"][..],
        &["--rate", "abc"],
        &["--rate", "-5"],
        &["--destinations", "0"],
        &["--close", "sometimes"],
        &["--format", "xml"],
    ] {
        let out = Command::new(portlab())
            .arg("inspect")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[0]),
            "{args:?}: {err:?} does not name {}",
            args[0]
        );
        assert!(out.stdout.is_empty(), "{args:?}: printed something");
    }
}

/// The conntrack table: `predict --conntrack-max` gives when it fills and which limit comes
/// first, by the arithmetic; `inspect` in a fresh namespace reads its own count (0: nothing
/// tracked yet) against the host's max.
#[test]
fn conntrack_fills_at_room_over_rate_and_inspect_reads_the_table() {
    let _turn = common::heavy();
    let out = Command::new(portlab())
        .args([
            "predict",
            "--rate",
            "500",
            "--conntrack-max",
            "20000",
            "--conntrack-count",
            "2000",
            "--close",
            "passive",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let v = json(&out);
    let ct = &v["conntrack"];
    // 500/s x 120 s = 60,000 entries > 18,000 left: full after 18,000 / 500 = 36 s; the
    // server closing first, the ports never run out, so the table is the first limit.
    assert_eq!(ct["entries_needed"], 60_000.0, "{ct:#}");
    assert_eq!(ct["full_s"], 36.0, "{ct:#}");
    assert_eq!(ct["first_limit"], "conntrack", "{ct:#}");
    let bad = Command::new(portlab())
        .args(["predict", "--conntrack-max", "10", "--lifetime", "-1s"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--lifetime"));
    if !namespaces_available("inspect_conntrack") {
        return;
    }
    let v = json(&inspect_in_netns(
        &[],
        &["--rate", "100", "--format", "json"],
    ));
    let c = &v["conntrack"];
    if std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        assert_eq!(c["applicable"], true, "{c:#}");
        assert_eq!(c["count"], 0, "a new namespace tracks nothing: {c:#}");
        let max = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").unwrap();
        assert_eq!(c["max"].as_u64(), max.trim().parse().ok(), "{c:#}");
        assert_eq!(v["model"]["conntrack"]["entries_needed"], 12_000.0);
    } else {
        assert_eq!(c["applicable"], false, "{c:#}");
    }
}
