//! Who holds TIME_WAIT, per close mode, and the exhaustion the issue names: each run in a
//! private network namespace with a narrow port range and tcp_tw_reuse = 0, so the count of
//! TIME_WAIT sockets on each side can be read afterwards from that namespace alone.

use crate::common::*;

/// The embedded server listens outside the client's port range, so its own port costs the
/// client nothing (a listening port is skipped by connect()'s port search).
const SERVER: &str = "127.0.0.1:9000";
const SERVER_PORT: u16 = 9000;

fn narrow(range: &str) -> Vec<(&'static str, String)> {
    vec![
        ("net/ipv4/ip_local_port_range", range.replace('-', " ")),
        ("net/ipv4/tcp_tw_reuse", "0".into()),
    ]
}

fn run(range: &str, args: &[&str]) -> Option<(tempfile::TempDir, serde_json::Value)> {
    if !namespaces_available("close_modes") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let owned = narrow(range);
    let sysctls: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["--listen", SERVER];
    all.extend_from_slice(args);
    let (out, summary) = run_in_netns(dir.path(), &sysctls, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((dir, summary))
}

/// Asserts the TIME_WAIT counts in the namespace after the run: `made` on the side that
/// closes first, none on the other.
///
/// The holding side may be short by at most 1% of `made`: in about 1 run of 30 (measured
/// with every close mode, on a quiet machine too) one connection is not in TIME_WAIT at the
/// end. Either the client is still in FIN_WAIT2 with the server in LAST_ACK and no
/// retransmission yet (RetransSegs 0), or its TIME_WAIT was ended by an RST (OutRsts 1).
/// Both fit a packet that arrived while the kernel swapped the closing socket for its
/// TIME_WAIT socket and found neither; portlab sees the same count in its own samples.
fn assert_time_wait(d: &tempfile::TempDir, client_side: bool, made: u64) {
    let (client, server) = time_wait_sides(d.path(), SERVER_PORT);
    let (holder, other) = if client_side {
        (client, server)
    } else {
        (server, client)
    };
    let side = if client_side { "client" } else { "server" };
    assert_eq!(
        other, 0,
        "no TIME_WAIT on the other side ({client}, {server})"
    );
    assert!(
        holder <= made && holder >= made - made.div_ceil(100),
        "{side} TIME_WAIT {holder} of {made}"
    );
}

#[test]
fn active_close_exhausts_at_ports_over_rate() {
    // 300 ports at 150/s: the first EADDRNOTAVAIL is due at 300 / 150 = 2.0 s.
    let Some((_d, s)) = run(
        "40000-40299",
        &["--rate", "150", "--duration", "4s", "--close", "active"],
    ) else {
        return;
    };
    assert_eq!(s["exhaustion"]["kind"], "EADDRNOTAVAIL", "{s:#}");
    assert_eq!(s["exhaustion"]["phase"], "connect");
    // The 301st attempt finds no port, due at 300 / 150 = 2.0 s (one attempt later per
    // TIME_WAIT socket an RST ended early: common::ended_early).
    assert_first_error_due(&s, 300, 150.0, 0.0);
    assert_close("attempts", n(&s, "attempts") as f64, 150.0 * 4.0, 1.0);
    // Every port was used once and then held: exactly 300 connections succeeded, plus one
    // per port an RST freed (OutRsts).
    assert_ports_used_once(&s, 300, "active close");
}

#[test]
fn active_close_at_another_rate_and_range() {
    // 500 ports at 400/s: first error at 1.25 s.
    let Some((_d, s)) = run("50000-50499", &["--rate", "400", "--duration", "2500ms"]) else {
        return;
    };
    assert_first_error_due(&s, 500, 400.0, 0.0);
    assert_close("attempts", n(&s, "attempts") as f64, 400.0 * 2.5, 1.0);
}

#[test]
fn active_close_leaves_time_wait_on_the_client() {
    let Some((d, s)) = run(
        "40000-40999",
        &["--rate", "200", "--count", "300", "--close", "active"],
    ) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_time_wait(&d, true, 300);
}

#[test]
fn linger_close_still_leaves_time_wait_on_the_client() {
    let Some((d, s)) = run(
        "40000-40999",
        &["--rate", "200", "--count", "200", "--close", "linger=2"],
    ) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_time_wait(&d, true, 200);
}

/// 300 passive-close connections, each from its own port (portlab binds 31000..31299 in
/// order; the kernel's own choice may repeat a 4-tuple), so each leaves exactly one
/// TIME_WAIT, all of them on the server's side; `load` says how they are made.
fn passive_from_300_ports(load: &[&str]) -> Option<(tempfile::TempDir, serde_json::Value)> {
    let mut args = load.to_vec();
    args.extend(["--count", "300", "--close", "passive"]);
    args.extend(["--bind", "range=31000-31299"]);
    run("40000-40999", &args)
}

#[test]
fn passive_close_leaves_time_wait_on_the_server() {
    let Some((d, s)) = passive_from_300_ports(&["--rate", "300"]) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_time_wait(&d, false, 300);
}

#[test]
fn passive_close_over_http_at_full_speed_leaves_time_wait_on_the_server() {
    // HTTP at the closed loop's full speed: the client closes only after the server's FIN
    // (read as EOF, or known from the readiness that came with the response), so the server
    // holds every TIME_WAIT and the client none. (That the FIN is not assumed before it
    // comes is the unit test `the_servers_fin_is_known_only_once_it_came`: here the embedded
    // server closes right after its reply, so a client closing early would rarely lose.)
    let load = ["--rate", "max", "--concurrency", "16", "--payload", "http"];
    let Some((d, s)) = passive_from_300_ports(&load) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_eq!(s["http_status"]["200"], 300, "{s:#}");
    assert_time_wait(&d, false, 300);
}

#[test]
fn passive_close_never_exhausts_the_client() {
    // 800 connections through 300 ports: more connections than ports, and still no error,
    // because the client holds no TIME_WAIT. (The server's TIME_WAIT count stays below 800:
    // a new SYN on a 4-tuple the server holds in TIME_WAIT takes that TIME_WAIT over.)
    let Some((d, s)) = run(
        "40000-40299",
        &["--rate", "400", "--duration", "2s", "--close", "passive"],
    ) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_eq!(n(&s, "completed"), 800);
    assert!(s["exhaustion"]["first_s"].is_null());
    let (client, server) = time_wait_sides(d.path(), SERVER_PORT);
    assert_eq!(client, 0);
    assert!(server > 0 && server <= 300, "server TIME_WAIT {server}");
}

#[test]
fn reset_close_leaves_no_time_wait_anywhere() {
    let Some((d, s)) = run(
        "40000-40299",
        &["--rate", "400", "--duration", "2s", "--close", "reset"],
    ) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_eq!(n(&s, "completed"), 800);
    assert_eq!(time_wait_sides(d.path(), SERVER_PORT), (0, 0));
}

#[test]
fn pooled_connections_never_exhaust_a_tiny_range() {
    // 20 ports, 2000 requests over 4 persistent connections.
    let Some((d, s)) = run(
        "40000-40019",
        &[
            "--rate",
            "400",
            "--duration",
            "5s",
            "--pool",
            "4",
            "--payload",
            "tcp",
        ],
    ) else {
        return;
    };
    assert_eq!(n(&s, "failed"), 0, "{s:#}");
    assert_eq!(n(&s, "completed"), 2000);
    assert_eq!(n(&s, "connected"), 4, "4 connections carried everything");
    // The pool is closed actively at the end: 4 TIME_WAIT on the client, no more.
    assert_eq!(time_wait_sides(d.path(), SERVER_PORT), (4, 0));
}

#[test]
fn bind_any_port_fails_at_bind_with_eaddrinuse() {
    // bind(0) before connect: a port in TIME_WAIT is a bind conflict, so the error moves from
    // connect() (EADDRNOTAVAIL) to bind() (EADDRINUSE), at the same P / R.
    let Some((_d, s)) = run(
        "40000-40199",
        &["--rate", "200", "--duration", "2s", "--bind", "any-port"],
    ) else {
        return;
    };
    assert_eq!(s["exhaustion"]["kind"], "EADDRINUSE", "{s:#}");
    assert_eq!(s["exhaustion"]["phase"], "bind");
    assert_first_error_due(&s, 200, 200.0, 0.0);
}

#[test]
fn bind_no_port_defers_the_port_to_connect() {
    let Some((_d, s)) = run(
        "40000-40199",
        &[
            "--rate",
            "200",
            "--duration",
            "2s",
            "--bind",
            "no-port",
            "--source",
            "127.0.0.1",
        ],
    ) else {
        return;
    };
    assert_eq!(s["exhaustion"]["kind"], "EADDRNOTAVAIL", "{s:#}");
    assert_eq!(s["exhaustion"]["phase"], "connect");
    assert_first_error_due(&s, 200, 200.0, 0.0);
}

#[test]
fn bind_range_wraps_into_its_own_time_wait() {
    // portlab binds 31000..31099 itself (outside the kernel's range): at 100/s the range wraps
    // at 1.0 s, and the first reused port is still in TIME_WAIT: EADDRINUSE at bind, as on
    // Windows with MaxUserPort.
    let Some((_d, s)) = run(
        "40000-40999",
        &[
            "--rate",
            "100",
            "--duration",
            "2s",
            "--bind",
            "range=31000-31099",
        ],
    ) else {
        return;
    };
    assert_eq!(s["exhaustion"]["kind"], "EADDRINUSE", "{s:#}");
    assert_eq!(s["exhaustion"]["phase"], "bind");
    // The range wraps at attempt 101, due at 1.0 s, a port later per port an RST freed.
    assert_first_error_due(&s, 100, 100.0, 0.0);
    assert_ports_used_once(&s, 100, "bind range");
}
