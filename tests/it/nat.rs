//! A NAT in the lab (`--lab-nat-ports LO-HI`): a namespace between the client(s) and the
//! server masquerades every connection to 198.18.1.1 with a port from its pool. When more
//! connections want a mapping at once than the pool has ports, the NAT drops their SYNs: the
//! client sees stalled connects, never EADDRNOTAVAIL, and the NAT's own conntrack statistics
//! count the refusals. Churn alone does not exhaust it (this kernel's NAT hands a closed
//! connection's mapping out again). The host is never touched: its nftables ruleset holds no
//! table of portlab's after any of these runs.

use crate::common::*;
use crate::conntrack::host_tables;
use serde_json::Value;
use std::process::Command;

/// `portlab run --lab --lab-nat-ports POOL ARGS`, which must pass; None (skip) when no
/// namespace can be had outside CI, or nft is missing outside CI.
fn through_nat(test: &str, pool: &str, args: &[&str]) -> Option<Value> {
    if !namespaces_available(test) || !have(test, "nft", Command::new("nft").arg("--version")) {
        return None;
    }
    let before = host_tables();
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--lab-nat-ports", pool];
    all.extend_from_slice(args);
    let out = lab_run(Command::new(portlab()), &all, dir.path());
    let s = parse_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
    assert_eq!(host_tables(), before, "the host's nftables ruleset changed");
    assert_eq!(s["nat"]["public_address"], "198.18.1.1", "{:#}", s["nat"]);
    assert!(
        s["target"].as_str().unwrap().starts_with("198.18.1.2:"),
        "the server sits behind the NAT: {}",
        s["target"]
    );
    // The client never runs out of its own ports: whatever failed, it was not that.
    assert_no_port_exhaustion(&s);
    Some(s)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn more_connections_at_once_than_nat_ports_stall_instead_of_failing_with_eaddrnotavail() {
    // 60 persistent connections through a pool of 40 ports: 40 are mapped, the NAT drops
    // the SYNs of the other 20 (at least once each, and again at each retransmission) until
    // the pool's connections close at the end of the run.
    let Some(s) = through_nat(
        "nat_pool_60_through_40",
        "41000-41039",
        &[
            "--pool",
            "60",
            "--payload",
            "tcp",
            "--rate",
            "120",
            "--duration",
            "2s",
        ],
    ) else {
        return;
    };
    let n = &s["nat"];
    assert_eq!(u(&n["model"]["ports"]), 40);
    assert_eq!(u(&n["model"]["at_once"]), 60);
    assert_eq!(u(&n["model"]["refused_at_once"]), 20);
    assert_eq!(u(&n["ports_used"]), 40, "{n:#}");
    assert!(
        u(&n["refused"]) >= 20,
        "each unmapped SYN is refused: {n:#}"
    );
    assert_eq!(
        u(&s["conntrack"]["stats"]["insert_failed"]),
        u(&n["refused"]),
        "the NAT's own statistics"
    );
    assert!(
        n["slowest_connect_s"].as_f64().unwrap() >= 1.0,
        "an unmapped connection waits at least one SYN retransmission: {n:#}"
    );
    // The NAT never holds more than its pool toward one destination.
    assert!(
        u(&s["conntrack"]["count_max"]) <= 40,
        "{:#}",
        s["conntrack"]
    );
    let checks = s["verdict"]["checks"].as_array().unwrap();
    for name in ["nat_ports_used", "nat_refused"] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == name && c["pass"] == true),
            "{name}: {:#}",
            s["verdict"]
        );
    }
}

#[test]
fn churn_through_a_small_pool_reuses_its_ports_whichever_side_closes() {
    // 400 connections at 200/s through 50 ports, the client closing first: the NAT hands
    // out each closed connection's mapping again, so nothing is refused and nothing fails.
    let Some(s) = through_nat(
        "nat_churn_active",
        "42000-42049",
        &["--rate", "200", "--duration", "2s", "--close", "active"],
    ) else {
        return;
    };
    let n = &s["nat"];
    // Only a clash (two SYNs handled at once on two CPUs picking the same port) is refused,
    // and retried after 1 s: at most 1% (the verdict's bound), none failed.
    assert!(u(&n["refused"]) <= 4, "{n:#}");
    assert_eq!(u(&s["failed"]), 0);
    assert_eq!(u(&n["ports_used"]), 50, "{n:#}");
    assert_eq!(n["model"]["reuse_from_s"].as_f64(), Some(0.25));
    assert_eq!(n["model"]["server_timewait_collisions"], false);

    // The server closing first keeps TIME_WAIT on the NAT's 4-tuples: one per pool port, and
    // from pool / R on every new connection lands on one of them. The server takes such a
    // SYN over when its timestamp is newer (RFC 6191), so a connect may stall for a SYN
    // retransmission, but never before the pool came round.
    let Some(s) = through_nat(
        "nat_churn_passive",
        "42000-42049",
        // A refused SYN is retransmitted after 1 s, then 2 s more: the drain outlasts the
        // connect timeout, so a connection stalled twice ends (as TIMEOUT at worst) instead
        // of being abandoned.
        &[
            "--rate",
            "100",
            "--duration",
            "3s",
            "--close",
            "passive",
            "--drain-timeout",
            "7s",
        ],
    ) else {
        return;
    };
    let n = &s["nat"];
    assert!(u(&n["refused"]) <= 3, "{n:#}");
    assert_eq!(u(&n["ports_used"]), 50, "{n:#}");
    assert_eq!(n["model"]["server_timewait_collisions"], true);
    let reuse = n["model"]["reuse_from_s"].as_f64().unwrap();
    assert_eq!(reuse, 0.5);
    // One server TIME_WAIT per NAT port, less those a new connection holds open at the
    // sample (it took its 4-tuple's TIME_WAIT over): 100/s, each connection open a few ms.
    let tw = u(&s["timewait"]["server_max"]);
    assert!(
        (45..=50).contains(&tw),
        "server TIME_WAIT {tw}, at most one per NAT port: {:#}",
        s["timewait"]
    );
    if let Some(first) = n["first_stall_s"].as_f64() {
        // The interval ending at `first` held a connect of 1 s or more, which began at
        // least 1 s before that end: after the reuse began.
        assert!(
            first >= reuse + 1.0,
            "stalled before the pool came round: {n:#}"
        );
    }
}

#[test]
fn pods_behind_one_node_share_its_nat_pool() {
    // Three client namespaces (pods) with 20 persistent connections each behind a NAT of 50
    // ports: every pod has its own 28,232 ports, yet 10 connections get no mapping.
    let Some(s) = through_nat(
        "nat_three_pods",
        "43000-43049",
        &[
            "--lab-clients",
            "3",
            "--pool",
            "20",
            "--payload",
            "tcp",
            "--rate",
            "90",
            "--duration",
            "2s",
        ],
    ) else {
        return;
    };
    let n = &s["nat"];
    assert_eq!(u(&n["model"]["at_once"]), 60);
    assert_eq!(u(&n["model"]["refused_at_once"]), 10);
    assert_eq!(u(&n["ports_used"]), 50, "{n:#}");
    assert!(u(&n["refused"]) >= 10, "{n:#}");
    let checks = s["verdict"]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "nat_refused" && c["pass"] == true),
        "{:#}",
        s["verdict"]
    );

    // The same pods churning, the server closing first: the server's TIME_WAIT is the NAT's
    // 4-tuples, at most its 50 ports, not the 270 connections the pods made.
    let Some(s) = through_nat(
        "nat_three_pods_passive",
        "43000-43049",
        &[
            "--lab-clients",
            "3",
            "--rate",
            "90",
            "--duration",
            "3s",
            "--close",
            "passive",
            "--drain-timeout",
            "7s",
        ],
    ) else {
        return;
    };
    let tw = u(&s["lab"]["clients"]["server_timewait_max"]);
    assert!(tw <= 50, "server TIME_WAIT {tw}: {:#}", s["lab"]["clients"]);
    assert_eq!(u(&s["nat"]["ports_used"]), 50, "{:#}", s["nat"]);
}

#[test]
fn a_nat_pool_is_refused_before_any_traffic_when_it_cannot_be() {
    refused_before_traffic(&[
        (
            &["--lab", "--lab-nat-ports", "5000-4000"][..],
            "lab.nat_ports",
        ),
        (
            &[
                "--lab",
                "--lab-nat-ports",
                "40000-40099",
                "--lab-topology",
                "loopback",
            ][..],
            "topology",
        ),
        (&["--lab-nat-ports", "40000-40099"][..], "nat_ports"),
        (
            &["--lab", "--lab-nat-ports", "40000-40099", "--lab-conntrack"][..],
            "lab.conntrack",
        ),
    ]);
}
