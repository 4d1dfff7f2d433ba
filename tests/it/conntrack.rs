//! Connection tracking in the lab (`--lab-conntrack`): the namespace's conntrack table keeps
//! one entry per connection for its lifetime plus the conntrack timeout of the state it
//! closed in, whichever side closed; the run records the table's count, statistics and live
//! entries, and the verdict checks the live entries against the model. The host is never
//! touched: its nftables ruleset holds no table of portlab's after any of these runs.

use crate::common::*;
use serde_json::Value;
use std::process::Command;

/// The host's nftables tables, as `nft list tables` prints them.
pub(crate) fn host_tables() -> String {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft runs (.ci/run installs nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `portlab run --lab --lab-conntrack ARGS`, which must pass; None (skip) when no
/// namespace can be had outside CI, or nft is missing outside CI.
fn tracked(test: &str, args: &[&str]) -> Option<Value> {
    if !namespaces_available(test) || !have(test, "nft", Command::new("nft").arg("--version")) {
        return None;
    }
    let before = host_tables();
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--lab-conntrack", "--lab-port-range", "20000-59999"];
    all.extend_from_slice(args);
    let out = lab_run(Command::new(portlab()), &all, dir.path());
    let s = parse_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
    assert_eq!(host_tables(), before, "the host's nftables ruleset changed");
    let timeline = std::fs::read_to_string(dir.path().join("timeline.csv")).unwrap();
    let last = timeline.lines().last().unwrap().to_string();
    let header = timeline.lines().next().unwrap().to_string();
    assert_eq!(
        header.split(',').next_back(),
        Some("conntrack_count"),
        "{header}"
    );
    let mut s = s;
    s["last_row_conntrack"] = last
        .split(',')
        .next_back()
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(Value::Null, Value::from);
    Some(s)
}

fn conntrack_check(s: &Value) -> &Value {
    s["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "conntrack_live")
        .unwrap_or_else(|| panic!("no conntrack_live check: {:#}", s["verdict"]))
}

#[test]
fn every_connection_keeps_one_entry_whichever_side_closes_first() {
    // Runs far shorter than conntrack's 120 s TIME_WAIT hold: every connection's entry is
    // still there at the end, in TIME_WAIT whichever side closed first, so the live
    // entries equal the connections exactly, in one namespace (loopback) or in the
    // server's (veth).
    for (rate, close, topology) in [
        ("50", "active", "loopback"),
        ("500", "passive", "loopback"),
        ("1500", "active", "veth"),
    ] {
        let test = format!("conntrack_{rate}_{close}_{topology}");
        let Some(s) = tracked(
            &test,
            &[
                "--rate",
                rate,
                "--duration",
                "2s",
                "--close",
                close,
                "--lab-topology",
                topology,
                "--max-in-flight",
                "4096",
            ],
        ) else {
            return;
        };
        let ct = &s["conntrack"];
        let connected = n(&s, "connected");
        // One entry per 4-tuple: a SYN that reuses one (two threads connecting at once can
        // step Linux's connect() back onto a port just freed: 930 of 1,000 beside six busy
        // loops) takes over its entry, as it takes over the server's TIME_WAIT.
        let tuples = s["server"]["distinct_peers"]
            .as_u64()
            .unwrap_or_else(|| panic!("{test}: no distinct_peers: {:#}", s["server"]));
        assert!(
            tuples <= connected && tuples * 100 >= connected * 90,
            "{test}: {tuples}"
        );
        assert_eq!(ct["live_end"], tuples, "{test}: {ct:#}");
        assert_eq!(ct["count_max"], tuples, "{test}: nothing expired: {ct:#}");
        assert_eq!(s["last_row_conntrack"], tuples as f64, "{test}");
        assert_eq!(ct["time_wait_s"], 120, "{test}: the kernel's default");
        // Every TIME_WAIT socket, whichever side holds it, has its entry in TIME_WAIT.
        let tw = ct["live_by_state"]["TIME_WAIT"].as_u64().unwrap_or(0);
        let sockets = n(&s["timewait"], "client_end") + n(&s["timewait"], "server_end");
        assert_eq!(tw, sockets, "{test}: {ct:#} {:#}", s["timewait"]);
        for stat in ["insert_failed", "drop", "early_drop"] {
            assert_eq!(ct["stats"][stat], 0, "{test}: {stat}: {ct:#}");
        }
        let c = conntrack_check(&s);
        assert_eq!(c["pass"], true, "{test}: {c:#}");
        let want = if tuples < connected {
            serde_json::json!([tuples as f64, connected as f64])
        } else {
            serde_json::json!(connected as f64)
        };
        assert_eq!(c["expected"], want, "{test}: {c:#}");
    }
}

#[test]
fn expired_entries_count_until_the_dump_removes_them() {
    // A 1 s conntrack TIME_WAIT in a 3 s run at 200/s: nf_conntrack_count keeps the
    // expired entries until the kernel's collector (every 1-60 s) or a dump removes them,
    // so it peaks near every connection made, while the dump at the end finds only those
    // of about the last second. The model checks nothing it cannot know (which entries are
    // left depends on when each connection was made).
    let Some(s) = tracked(
        "conntrack_expired",
        &[
            "--rate",
            "200",
            "--duration",
            "3s",
            "--lab-conntrack-time-wait",
            "1",
        ],
    ) else {
        return;
    };
    let ct = &s["conntrack"];
    let connected = n(&s, "connected");
    assert_eq!(ct["time_wait_s"], 1, "{ct:#}");
    let live = ct["live_end"].as_u64().unwrap();
    let counted = ct["count_max"].as_u64().unwrap();
    assert!(live < connected / 2, "live {live} of {connected}: {ct:#}");
    assert!(counted > live, "the count kept expired entries: {ct:#}");
    assert!(ct["model_live"].is_null(), "{ct:#}");
    assert!(
        s["verdict"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "conntrack_live"),
        "{:#}",
        s["verdict"]
    );
}

#[test]
fn conntrack_needs_the_lab_and_the_nft_tool_before_any_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(portlab())
        .args(["run", "--lab-conntrack", "--rate", "10", "--duration", "1s"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lab.conntrack") || err.contains("conntrack"),
        "{err}"
    );
    if !namespaces_available("conntrack_without_nft") {
        return;
    }
    // No nft on PATH: refused with what to install, before any traffic (no summary).
    let out = Command::new(portlab())
        .args([
            "run",
            "--lab",
            "--lab-conntrack",
            "--rate",
            "10",
            "--duration",
            "1s",
        ])
        .arg("--out")
        .arg(dir.path().join("run"))
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nftables"), "{err}");
    assert!(!dir.path().join("run").join("summary.json").exists());
}

#[test]
fn an_emulated_full_table_drops_new_connections_from_max_over_r() {
    // nf_conntrack_max is host-wide and stays as it is; an nftables set of M entries stands
    // in for the table. At R per second it fills at M / R; every later SYN is dropped (the
    // client retransmits it after 1 s, then fails it at its connect timeout), and a run
    // shorter than the 120 s hold admits exactly M.
    let host_max = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok();
    for (max, rate, close, topology) in [
        ("120", "300", "active", "loopback"),
        ("90", "150", "passive", "veth"),
    ] {
        let test = format!("conntrack_full_{max}_{rate}_{close}_{topology}");
        let Some(s) = tracked(
            &test,
            &[
                "--lab-conntrack-max",
                max,
                "--rate",
                rate,
                "--duration",
                "1500ms",
                "--connect-timeout",
                "1200ms",
                "--close",
                close,
                "--lab-topology",
                topology,
            ],
        ) else {
            return;
        };
        let (max, rate): (u64, f64) = (max.parse().unwrap(), rate.parse().unwrap());
        let e = &s["conntrack"]["emulated"];
        let attempts = n(&s, "attempts");
        assert_eq!(e["max"], max, "{test}: {e:#}");
        assert_eq!(e["admitted"], max, "{test}: {e:#}");
        assert_eq!(e["model_admitted"], max, "{test}: {e:#}");
        assert_eq!(n(&s, "connected"), max, "{test}");
        assert_eq!(s["server"]["accepted"], max, "{test}: {:#}", s["server"]);
        // Each refused connection: its SYN, and its retransmission 1 s later, before the
        // 1.2 s timeout.
        let refused = attempts - max;
        assert_eq!(
            s["errors"]["TIMEOUT"]["count"], refused,
            "{test}: {:#}",
            s["errors"]
        );
        assert!(
            n(e, "dropped") >= 2 * refused,
            "{test}: {e:#}, {refused} refused"
        );
        // The first refused connection was due at M / R: it failed 1.2 s later (its timer
        // fires a few ms late on a busy machine, as the run's schedule lag says).
        let full = e["full_from_s"].as_f64().unwrap();
        assert!((full - max as f64 / rate).abs() < 1e-9, "{test}: {e:#}");
        let started = s["errors"]["TIMEOUT"]["first_s"].as_f64().unwrap() - 1.2;
        let lag = s["schedule_lag_us"]["max"].as_f64().unwrap() / 1e6;
        assert!(
            started >= full - 1.0 / rate && started <= full + 0.05 + lag,
            "{test}: first refused attempt started at {started:.3} s, the model fills at {full:.3} s"
        );
        let checks = s["verdict"]["checks"].as_array().unwrap();
        for name in ["conntrack_admitted", "conntrack_full"] {
            assert!(
                checks
                    .iter()
                    .any(|c| c["name"] == name && c["pass"] == true),
                "{test}: {name}: {:#}",
                s["verdict"]
            );
        }
        // The real table is the host's and was not touched.
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok(),
            host_max,
            "{test}"
        );
    }
}

#[test]
fn an_emulated_table_is_refused_before_any_traffic_when_it_cannot_be() {
    refused_before_traffic(&[
        (
            &["--lab", "--lab-conntrack", "--lab-conntrack-max", "0"][..],
            "conntrack_max",
        ),
        (
            &["--lab", "--lab-conntrack-max", "100"][..],
            "lab.conntrack",
        ),
        (&["--lab-conntrack-max", "100"][..], "conntrack_max"),
    ]);
}
