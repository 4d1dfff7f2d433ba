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
