//! Each payload against the embedded server, on loopback at a few hundred per second: every
//! request must complete, and HTTP statuses must be counted from the parsed response.

use crate::common::*;

fn ok_run(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(dir.path(), args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(n(&s, "failed"), 0, "no client errors expected: {s:#}");
    assert_eq!(n(&s, "completed"), n(&s, "attempts"));
    s
}

#[test]
fn tcp_payload_reads_the_expected_reply() {
    let s = ok_run(&[
        "--rate",
        "300",
        "--count",
        "300",
        "--payload",
        "tcp",
        "--send",
        "hex:00010203",
        "--response",
        "pong!",
        "--expect",
        "5",
    ]);
    assert_eq!(n(&s, "attempts"), 300);
    assert!(s["exchange_latency_us"]["count"].as_u64().unwrap() == 300);
}

#[test]
fn tcp_payload_with_passive_close_reads_to_eof() {
    ok_run(&[
        "--rate",
        "300",
        "--count",
        "300",
        "--payload",
        "tcp",
        "--close",
        "passive",
        "--expect",
        "eof",
    ]);
}

#[test]
fn http_one_connection_per_request_counts_statuses() {
    let s = ok_run(&[
        "--rate",
        "300",
        "--count",
        "300",
        "--payload",
        "http",
        "--path",
        "/health",
    ]);
    assert_eq!(s["http_status"]["200"], 300);
    assert_eq!(n(&s, "connected"), 300);
}

#[test]
fn http_keep_alive_pool_reuses_its_connections() {
    let s = ok_run(&[
        "--rate",
        "400",
        "--count",
        "800",
        "--payload",
        "http",
        "--pool",
        "4",
    ]);
    assert_eq!(s["http_status"]["200"], 800);
    assert_eq!(n(&s, "connected"), 4);
    assert_eq!(n(&s, "reconnects"), 0);
}

#[test]
fn reset_close_at_a_few_hundred_per_second_has_no_errors() {
    ok_run(&["--rate", "400", "--duration", "2s", "--close", "reset"]);
}

#[test]
fn closed_loop_runs_as_fast_as_it_can_within_its_count() {
    // On the default threads, on one, and on more threads than workers (capped).
    for threads in [None, Some("1"), Some("8")] {
        let mut args = vec!["--rate", "max", "--concurrency", "4", "--count", "2000"];
        args.extend(["--close", "reset"]);
        if let Some(t) = threads {
            args.extend(["--threads", t]);
        }
        let s = ok_run(&args);
        assert_eq!(n(&s, "attempts"), 2000, "--threads {threads:?}");
        assert_eq!(n(&s, "completed"), 2000, "--threads {threads:?}");
    }
}

#[test]
fn max_in_flight_drops_due_starts_instead_of_queueing_them() {
    // The server waits 50 ms before each accept. The kernel completes handshakes in the
    // backlog by itself, but the reply to a tcp payload waits for accept(): with at most 2 in
    // flight, most of the 200 due starts find no room and are dropped.
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        dir.path(),
        &[
            "--rate",
            "200",
            "--count",
            "200",
            "--max-in-flight",
            "2",
            "--accept-delay",
            "50ms",
            "--payload",
            "tcp",
        ],
    );
    let (attempts, dropped) = (n(&s, "attempts"), n(&s, "dropped"));
    assert_eq!(
        attempts + dropped,
        200,
        "every due start is either made or dropped"
    );
    assert!(dropped > 100, "dropped {dropped}");
    // A run that dropped its starts did not deliver its load: the verdict fails (exit 1).
    let delivery = s["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "delivery")
        .expect("delivery check");
    assert_eq!(delivery["pass"], false, "{delivery}");
    assert_eq!(out.status.code(), Some(1));
}

/// Each connection's local address, as the server sees it (its peer), takes the sources in
/// turn: 127.0.0.2, 127.0.0.3, 127.0.0.2, ...
#[test]
fn source_addresses_are_used_round_robin() {
    // 127.0.0.2 and 127.0.0.3 are loopback addresses on Linux without any set-up.
    if !cfg!(target_os = "linux") {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    // The test's own server records every peer in accept order (one at a time: the run's
    // 20/s leaves each connection done before the next begins).
    let server = std::thread::spawn(move || {
        let mut peers = Vec::new();
        // The probe portlab makes before the run, then the run's 20 connections.
        for _ in 0..21 {
            let (stream, peer) = listener.accept().unwrap();
            peers.push(peer.ip().to_string());
            drop(stream);
        }
        peers
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        dir.path(),
        &[
            "--target",
            &target,
            "--rate",
            "20",
            "--count",
            "20",
            "--source",
            "127.0.0.2,127.0.0.3",
            // This server closes as soon as it accepts: who holds TIME_WAIT is a race,
            // and not what this test is about.
            "--model-checks",
            "false",
        ],
    );
    assert!(out.status.success(), "{:#}", s["verdict"]);
    assert_eq!(n(&s, "completed"), 20);
    let peers = server.join().unwrap();
    let run: Vec<&str> = peers[1..].iter().map(String::as_str).collect();
    let expected: Vec<&str> = (0..20)
        .map(|i| if i % 2 == 0 { "127.0.0.2" } else { "127.0.0.3" })
        .collect();
    assert_eq!(
        run, expected,
        "the sources in turn, connection by connection"
    );
}
