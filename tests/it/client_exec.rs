//! `--client-exec`: real clients nobody here wrote a line of portlab for, run by portlab in
//! the lab (200 ports, tcp_tw_reuse 0, ~50/s, each client pacing itself with PORTLAB_RATE):
//! the first failure within 5% of P / R_measured with its line recognised, and the cases
//! that never run out (a pool, a server that closes first, tcp_tw_reuse 2 on loopback, HTTP
//! requests that ask the embedded server to close: ApacheBench, PHP, Python's HTTP/1.0 and
//! urllib).
//!
//! A test whose tool is missing (java, node, curl, pgbench, PostgreSQL, ab, php) prints SKIPPED and passes,
//! except under CI=true, where it fails (.ci/run installs them).

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const LAB: [&str; 5] = ["--lab", "--lab-port-range", "40000-40199", "--rate", "50"];

fn available(test: &str, tool: &str, probe: &[&str]) -> bool {
    have(test, tool, Command::new(tool).args(probe))
}

/// A lab run of `client` with the extra flags; the summary.
fn client_run(dir: &Path, client: &str, extra: &[&str]) -> Value {
    let mut args: Vec<&str> = LAB.to_vec();
    args.extend(["--client-exec", client]);
    args.extend(extra);
    if !extra.contains(&"--lab-tw-reuse") {
        args.extend(["--lab-tw-reuse", "0"]);
    }
    let (out, v) = run_json(dir, &args);
    assert!(
        v["client_exec"].is_object(),
        "no client_exec; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The client ran out: its first failure is recognised as `kind`, and both it and the
/// ports-full sample come within 5% of P / R with R the rate portlab measured, times the
/// share of connections that held a port (seen at half the run: pgbench -C under load left
/// some with no TIME_WAIT on the client, 0.59 once; every other client here holds one per
/// connection).
fn assert_ran_out_as_predicted(v: &Value, kind: &str, line_has: &str) {
    let c = &v["client_exec"];
    let first = assert_out_within_the_models_range(c);
    assert_eq!(c["failure_kind"], kind, "{c:#}");
    assert!(
        c["failure_line"].as_str().unwrap().contains(line_has),
        "{c:#}"
    );
    assert_eq!(c["close_side"], "client", "{c:#}");
    assert_eq!(c["pooled"], false, "{c:#}");
    assert_eq!(v["exhaustion"]["first_s"].as_f64(), Some(first));
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
#[ignore = "needs a JDK (java); cargo test -- --include-ignored runs it"]
fn java_socket_per_request_throws_bindexception_at_ports_over_rate() {
    let _turn = heavy();
    let test = "java_socket_per_request";
    if !namespaces_available(test) || !available(test, "java", &["-version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = client_run(
        dir.path(),
        "java scenarios/clients/Client.java",
        &["--duration", "10s"],
    );
    assert_ran_out_as_predicted(
        &v,
        "EADDRNOTAVAIL",
        "java.net.BindException: Cannot assign requested address",
    );
    assert_eq!(
        v["client_exec"]["exit_status"], "exit 1",
        "uncaught: the JVM exits 1"
    );
}

#[test]
fn python_socket_loop_dies_with_errno_99() {
    let _turn = heavy();
    if !namespaces_available("python_socket_loop") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = client_run(
        dir.path(),
        "python3 scenarios/clients/socket_loop.py",
        &["--duration", "10s"],
    );
    assert_ran_out_as_predicted(&v, "EADDRNOTAVAIL", "[Errno 99]");
    // The embedded server answered each connection's line.
    let c = &v["client_exec"];
    assert_eq!(c["requests"], c["connections"], "{c:#}");
    let log = std::fs::read_to_string(dir.path().join("client-exec.log")).unwrap();
    assert!(log.contains("stderr OSError: [Errno 99]"), "{log}");
    // client-samples.csv: the rate per interval, about 50/s while it ran (the median of the
    // intervals that saw connections).
    let samples = std::fs::read_to_string(dir.path().join("client-samples.csv")).unwrap();
    assert!(
        samples
            .starts_with("t_s,active_opens,tw_client,tw_server,established_client,requests,rate\n"),
        "{samples}"
    );
    let mut rates: Vec<f64> = samples
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next()?.parse().ok())
        .filter(|&r: &f64| r > 0.0)
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    assert!(
        (40.0..60.0).contains(&median),
        "median rate {median}: {rates:?}"
    );
    // report.html draws the samples: the client's rate and its TIME_WAIT against the model.
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        page.contains("client connections /s (sampled)"),
        "no rate line"
    );
    assert!(page.contains("TIME_WAIT client") && page.contains("model min(R × t, P)"));
    assert!(page.contains("time since the client first connected (s)"));
}

#[test]
#[ignore = "needs Node.js (apt-get install nodejs); cargo test -- --include-ignored runs it"]
fn node_net_connect_per_request_fails_with_eaddrnotavail() {
    let _turn = heavy();
    let test = "node_net_loop";
    if !namespaces_available(test) || !available(test, "node", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = client_run(
        dir.path(),
        "node scenarios/clients/net_loop.js",
        &["--duration", "10s"],
    );
    assert_ran_out_as_predicted(&v, "EADDRNOTAVAIL", "connect EADDRNOTAVAIL 127.0.0.1:");
    assert_eq!(v["client_exec"]["failure_signature"], "node");
}

#[test]
fn a_curl_loop_is_measured_not_trusted() {
    let _turn = heavy();
    let test = "curl_loop";
    if !namespaces_available(test) || !available(test, "curl", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // PORTLAB_RATE says 50; the loop goes as fast as curl starts: 64/s on a quiet machine
    // (out at about 3 s), 11.7/s seen with a load of 14 on two cores (200 ports need 17 s).
    // The run ends when the loop does; the duration only bounds the worst case.
    let v = client_run(
        dir.path(),
        "sh scenarios/clients/curl_loop.sh",
        &["--duration", "40s"],
    );
    assert_ran_out_as_predicted(&v, "EADDRNOTAVAIL", "curl: (7)");
    let c = &v["client_exec"];
    assert_eq!(c["failure_signature"], "curl");
    assert_eq!(c["requested_rate"], 50.0);
}

#[test]
#[ignore = "needs a JDK (java); cargo test -- --include-ignored runs it"]
fn java_httpurlconnection_with_keep_alive_pools_and_never_runs_out() {
    let _turn = heavy();
    let test = "java_keep_alive";
    if !namespaces_available(test) || !available(test, "java", &["-version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 400 requests at 50/s: twice the 200 ports.
    let v = client_run(
        dir.path(),
        "COUNT=400 java scenarios/clients/Client.java http",
        &["--duration", "15s"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["pooled"], true, "{c:#}");
    assert_eq!(c["requests"], 400, "{c:#}");
    assert!(c["connections"].as_u64().unwrap() <= 4, "{c:#}");
    assert_eq!(c["first_failure_s"], Value::Null, "{c:#}");
    assert_eq!(c["ports_full_s"], Value::Null, "{c:#}");
    assert_eq!(c["exit_status"], "exit 0");
    assert_eq!(v["exhaustion"]["first_s"], Value::Null);
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
fn python_http_server_closes_first_so_the_client_never_runs_out() {
    let _turn = heavy();
    if !namespaces_available("http_server_closes_first") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let www = tempfile::tempdir().unwrap();
    let server = format!(
        "python3 -m http.server 18000 --bind 127.0.0.1 --directory {}",
        www.path().display()
    );
    // 300 requests at 50/s: past 200 / 50 = 4 s.
    let v = client_run(
        dir.path(),
        "COUNT=300 python3 scenarios/clients/urllib_loop.py",
        &[
            "--duration",
            "12s",
            "--target",
            "127.0.0.1:18000",
            "--target-exec",
            &server,
        ],
    );
    let c = &v["client_exec"];
    // http.server shuts its side down right after the reply while urllib closes once it has
    // read Content-Length bytes: the two closes race. Mostly the server wins (13 client
    // TIME_WAIT against 91 in a quiet run); on a busy machine the client's share grows (60
    // against 53 seen), never to the client alone.
    assert_ne!(c["close_side"], "client", "{c:#}");
    assert!(c["tw_server_max"].as_u64().unwrap() > 30, "{c:#}");
    assert_eq!(c["first_failure_s"], Value::Null, "{c:#}");
    assert_eq!(c["exit_status"], "exit 0", "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
    // The text report says why.
    let text = Command::new(portlab())
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let why = if c["close_side"] == "server" {
        "did not run out: the server closes first"
    } else {
        "did not run out: the server closed first often enough"
    };
    assert!(text.contains(why), "{text}");
}

#[test]
fn tw_reuse_2_on_loopback_never_runs_out() {
    let _turn = heavy();
    if !namespaces_available("tw_reuse_2") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = client_run(
        dir.path(),
        "python3 scenarios/clients/socket_loop.py",
        &["--duration", "6s", "--lab-tw-reuse", "2"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["first_failure_s"], Value::Null, "{c:#}");
    assert_eq!(c["ended_by"], "duration", "{c:#}");
    assert!(
        c["connections"].as_u64().unwrap() > 250,
        "more than the 200 ports: {c:#}"
    );
    assert_eq!(c["close_side"], "client");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

/// A throwaway PostgreSQL from Debian (scenarios/clients/postgres.sh: initdb in a temporary
/// directory, run as the user postgres when root), or None when it is not installed.
fn postgres_server(test: &str) -> Option<&'static str> {
    let probe =
        "command -v pgbench && { command -v initdb || ls /usr/lib/postgresql/*/bin/initdb; }";
    available(test, "sh", &["-c", probe]).then_some("sh scenarios/clients/postgres.sh 15432")
}

/// `pgbench -n FLAGS` paced at PORTLAB_RATE against a throwaway PostgreSQL that portlab
/// starts in the lab; the summary, or None (skipped).
fn pgbench_run(test: &str, flags: &str) -> Option<Value> {
    if !namespaces_available(test) {
        return None;
    }
    let server = postgres_server(test)?;
    let dir = tempfile::tempdir().unwrap();
    let client = format!(
        "pgbench -n {flags} -R $PORTLAB_RATE -f scenarios/clients/select1.sql -h $PORTLAB_TARGET_HOST -p $PORTLAB_TARGET_PORT -U postgres postgres"
    );
    let target = [
        "--duration",
        "12s",
        "--target",
        "127.0.0.1:15432",
        "--target-exec",
        server,
        "--ready-timeout",
        "30s",
    ];
    Some(client_run(dir.path(), &client, &target))
}

#[test]
#[ignore = "needs PostgreSQL and pgbench (apt-get install postgresql); cargo test -- --include-ignored runs it"]
fn pgbench_with_a_connection_per_transaction_runs_out() {
    let _turn = heavy();
    let Some(v) = pgbench_run("pgbench_no_pooling", "-C -T 20") else {
        return;
    };
    assert_ran_out_as_predicted(
        &v,
        "EADDRNOTAVAIL",
        "port 15432 failed: Cannot assign requested address",
    );
    assert_eq!(v["client_exec"]["failure_signature"], "libpq");
}

#[test]
#[ignore = "needs PostgreSQL and pgbench (apt-get install postgresql); cargo test -- --include-ignored runs it"]
fn plain_pgbench_holds_its_connections_and_never_runs_out() {
    let _turn = heavy();
    let Some(v) = pgbench_run("pgbench_pooling", "-c 4 -T 6") else {
        return;
    };
    let c = &v["client_exec"];
    assert_eq!(c["pooled"], true, "{c:#}");
    assert!(c["connections"].as_u64().unwrap() <= 6, "{c:#}");
    assert_eq!(c["first_failure_s"], Value::Null, "{c:#}");
    assert_eq!(c["exit_status"], "exit 0", "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

/// Runs `portlab run ARGS --out DIR`, which must refuse (exit 2); its stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(portlab())
        .arg("run")
        .args(args)
        .args(["-q", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_scenario_files_command_needs_allow_exec() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!("[client]\nexec = \"touch {}\"\n", marker.display()),
    )
    .unwrap();
    let err = refused(&dir.path().join("out"), &[file.to_str().unwrap()]);
    assert!(
        err.contains("client.exec") && err.contains("--allow-exec"),
        "{err}"
    );
    assert!(!marker.exists(), "the command must not run");
}

#[test]
fn a_bad_failure_pattern_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(
        dir.path(),
        &["--client-exec", "true", "--failure-pattern", "(oops"],
    );
    assert!(
        err.contains("client.failure_pattern (flag --failure-pattern)"),
        "{err}"
    );
}

#[test]
fn a_command_that_cannot_run_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(dir.path(), &["--client-exec", "no-such-client --fast"]);
    assert!(
        err.contains("could not be run (exit 127)") && err.contains("not found"),
        "{err}"
    );
}

/// Without a lab (the host's loopback): a client that prints a failure line and goes on is
/// stopped `--client-stop-after` later, and the user's own pattern is recognised.
#[test]
fn stop_after_the_first_failure_and_the_users_own_pattern() {
    let _turn = heavy();
    let dir = tempfile::tempdir().unwrap();
    let client =
        "echo starting; while true; do echo 'worker 3: E_NOPORT (pool empty)'; sleep 0.05; done";
    let (out, v) = run_json(
        dir.path(),
        &[
            "--client-exec",
            client,
            "--failure-pattern",
            "E_NOPORT",
            "--client-stop-after",
            "500ms",
            "--duration",
            "20s",
        ],
    );
    let c = &v["client_exec"];
    assert_eq!(c["ended_by"], "stop_after", "{c:#}");
    assert_eq!(c["stopped_by"], "SIGTERM", "{c:#}");
    assert_eq!(c["failure_kind"], "CLIENT_FAILURE", "{c:#}");
    assert_eq!(c["failure_signature"], "failure_pattern", "{c:#}");
    assert!(c["failures"].as_u64().unwrap() >= 5, "{c:#}");
    assert!(
        v["duration_s"].as_f64().unwrap() < 5.0,
        "stopped long before --duration: {}",
        v["duration_s"]
    );
    // A failure that the model (no connections, no rate) did not predict fails the verdict.
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["verdict"]["checks"][0]["name"], "exhaustion");
    assert_eq!(v["verdict"]["checks"][0]["measured"], true);
    let log = std::fs::read_to_string(dir.path().join("client-exec.log")).unwrap();
    assert!(
        log.lines().next().unwrap().ends_with("stdout starting"),
        "{log}"
    );
}

/// On the host (no lab) the kernel's ActiveOpens counts every process's connections: a
/// client that opens none must not be credited with another program's (this test's own
/// churn to a listener of its own, on loopback, while portlab runs). It once made the
/// scenarios suite test fail when other tests ran beside it.
#[test]
fn on_the_host_another_programs_connections_are_not_the_clients() {
    let _turn = heavy();
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut made = 0u32;
            // Bounded: at most 20,000 connections, about 10 s.
            while !stop.load(Ordering::Relaxed) && made < 20_000 {
                if TcpStream::connect(addr).is_ok() {
                    made += 1;
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            made
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let (out, v) = run_json(
        dir.path(),
        &["--client-exec", "sleep 1", "--duration", "5s"],
    );
    stop.store(true, Ordering::Relaxed);
    let made = churn.join().unwrap();
    assert!(made > 50, "the churn made only {made} connections");
    let c = &v["client_exec"];
    assert!(c.is_object(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c["connections"], 0, "{c:#}");
    assert_eq!(c["measured_rate"], Value::Null, "{c:#}");
}

// ---------------------------------------------------------------------------------------
// What a client does: bursts, ramps, late error lines, bind-before-connect across
// destinations, a server that closes first, tcp_tw_reuse 1, a stall, a slow start.
// Each client is tests/fixtures/clients/shapes.py in one of its modes (its docstring says
// how each behaves); each of these runs once got a wrong verdict, which is why it is here.
// ---------------------------------------------------------------------------------------

const SHAPES: &str = "python3 tests/fixtures/clients/shapes.py";

/// A lab run of shapes.py in `mode` with `env` before it; (exit code, summary).
fn shape_run(dir: &Path, mode: &str, env: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let command = format!("{env} {SHAPES} {mode}");
    // LAB's rate unless the test gives its own.
    let lab = if extra.contains(&"--rate") {
        &LAB[..3]
    } else {
        &LAB[..]
    };
    let mut args: Vec<&str> = lab.to_vec();
    args.extend(["--client-exec", &command]);
    args.extend(extra);
    if !extra.contains(&"--lab-tw-reuse") {
        args.extend(["--lab-tw-reuse", "0"]);
    }
    let (out, v) = run_json(dir, &args);
    assert!(
        v["client_exec"].is_object(),
        "no client_exec; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), v)
}

/// The accept times the embedded server saw are the client's connections: `n` of them.
fn connections(v: &Value) -> u64 {
    v["client_exec"]["connections"].as_u64().unwrap()
}

#[test]
fn a_bursty_client_runs_out_where_its_connections_reach_p() {
    let _turn = heavy();
    if !namespaces_available("bursty_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 40 every 0.5 s into 200 ports: the 200th connection is the 5th burst's last, at
    // 2.0 s after the first; the 201st fails at once. (Its average is 80/s: P / 80 = 2.5 s,
    // and over a window that ends after a burst, 99/s: 2.0 s by luck, not by the model.)
    let (code, v) = shape_run(
        dir.path(),
        "burst",
        "BURST=40 PERIOD=0.5",
        &["--duration", "6s"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["shape"], "bursty", "{c:#}");
    let model = c["model_first_error_s"].as_f64().expect("a model time");
    let first = c["exhausted_s"].as_f64().expect("it ran out");
    let err = (first - model).abs() / model;
    assert!(
        err <= 0.05,
        "ran out at {first:.3} s, the cumulative count reached P at {model:.3} s: {c:#}"
    );
    // The model's time is where the count reached P: 4 periods after the first burst (plus
    // the 5th burst's own 40 connections: 10-60 ms seen under load).
    assert!((model - 2.0).abs() < 0.15, "{c:#}");
    assert!(c["peak_rate"].as_f64().unwrap() > 200.0, "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_ramping_client_is_modelled_on_its_rate_at_the_end() {
    let _turn = heavy();
    if !namespaces_available("ramping_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 10/s for 2 s (20 connections), then 100/s: 200 ports full 1.8 s later, at 3.8 s.
    let (_, v) = shape_run(
        dir.path(),
        "ramp",
        "RATE1=10 RATE2=100 SWITCH=2",
        &["--duration", "6s"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["shape"], "ramping", "{c:#}");
    let current = c["current_rate"].as_f64().unwrap();
    assert!((current - 100.0).abs() < 10.0, "{c:#}");
    let model = c["model_first_error_s"].as_f64().unwrap();
    let first = c["exhausted_s"].as_f64().unwrap();
    assert!(
        (first - model).abs() / model <= 0.05,
        "{first} against {model}: {c:#}"
    );
    // What it needs is R x T at the end rate (6,000 ports), not at its average.
    let need = v["prediction"]["steady_timewait"].as_f64().unwrap();
    let margin = v["prediction"]["margin"].as_f64().unwrap();
    assert!(
        margin > 25.0,
        "100/s x 60 s over 200 ports is 30: {margin} ({need})"
    );
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
fn a_failure_printed_at_exit_is_dated_by_the_kernel() {
    let _turn = heavy();
    if !namespaces_available("late_failure_line") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 100/s for 5 s into 200 ports: full at 2 s; the errors are printed at exit (5 s).
    let (_, v) = shape_run(dir.path(), "late", "LIMIT=5", &["--rate", "100"]);
    let c = &v["client_exec"];
    // Dated by the kernel near P / R (2 s when the client keeps its 100/s; a busy machine
    // slows it), not at the line's 5 s.
    let at = c["exhausted_s"].as_f64().expect("it ran out");
    let model = c["model_first_error_s"].as_f64().expect("a model time");
    assert!(
        (at - model).abs() / model <= 0.05,
        "dated at {at}, the model {model}: {c:#}"
    );
    assert!(at < 3.5, "dated at {at}, not at exit: {c:#}");
    assert_ne!(c["exhaustion_source"], "failure_line", "{c:#}");
    assert!(c["failure_line_late_s"].as_f64().unwrap() > 2.0, "{c:#}");
    assert_eq!(c["failure_kind"], "EADDRNOTAVAIL", "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
fn bind_before_connect_shares_one_range_between_destinations() {
    let _turn = heavy();
    if !namespaces_available("bind_two_destinations") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 100/s over two destinations, each port from one range of 200: out at 2 s, not at
    // 200 / 50 = 4 s.
    let (_, v) = shape_run(
        dir.path(),
        "bind2",
        "",
        &["--rate", "100", "--destinations", "2", "--duration", "6s"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["shared_range"], true, "{c:#}");
    // P / R with R every destination's rate together (2.0 s at 100/s).
    let first = c["exhausted_s"].as_f64().expect("it ran out");
    let rate = c["measured_rate"].as_f64().unwrap();
    let p_over_r = 200.0 / rate;
    assert!(
        (first - p_over_r).abs() / p_over_r <= 0.05,
        "{first} against 200 / {rate:.1}: {c:#}"
    );
    assert!(rate > 80.0, "both destinations' rate, not one's: {c:#}");
    assert_eq!(c["failure_kind"], "EADDRINUSE", "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
    assert!(connections(&v) >= 195, "{c:#}");
}

#[test]
fn plain_connect_to_two_destinations_runs_out_per_destination_and_says_why() {
    let _turn = heavy();
    if !namespaces_available("plain_two_destinations") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 100/s over two destinations, 50/s each, 200 ports each: out at 4 s.
    let (_, v) = shape_run(
        dir.path(),
        "plain2",
        "",
        &["--rate", "100", "--destinations", "2", "--duration", "8s"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["shared_range"], false, "{c:#}");
    // P / R with R the target's half of the rate (4.0 s at 50/s).
    let first = c["exhausted_s"].as_f64().expect("it ran out");
    let rate = c["measured_rate"].as_f64().unwrap();
    let p_over_r = 200.0 / rate;
    assert!(
        (first - p_over_r).abs() / p_over_r <= 0.05,
        "{first} against 200 / {rate:.1}: {c:#}"
    );
    assert!(
        rate < 60.0,
        "the target's rate, not both destinations': {c:#}"
    );
    let (target, all) = (
        c["target_connections"].as_u64().unwrap(),
        c["all_connections"].as_u64().unwrap(),
    );
    assert!(target * 2 >= all - 2 && target * 2 <= all + 2, "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
    let text = Command::new(portlab())
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("2 destinations:"), "{text}");
}

#[test]
fn a_server_that_closes_first_holds_the_time_wait_the_model_says() {
    let _turn = heavy();
    if !namespaces_available("server_closes_first") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 50/s for 4 s, the server closing first: no client port held; the server's TIME_WAIT is
    // the distinct 4-tuples of 200 connections over 100 even ports (about 82).
    let (_, v) = shape_run(
        dir.path(),
        "readfirst",
        "",
        &["--duration", "4s", "--server-close", "first"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["close_side"], "server", "{c:#}");
    assert_eq!(c["exhausted_s"], Value::Null, "{c:#}");
    let measured = c["measured_rate"].as_f64().unwrap();
    let model = c["model_rate"].as_f64().unwrap();
    assert!(
        (model - measured).abs() < 1e-9,
        "the full rate, not a port share: {c:#}"
    );
    let checks = v["verdict"]["checks"].as_array().unwrap();
    let tw = checks
        .iter()
        .find(|k| k["name"] == "timewait_server_max")
        .unwrap_or_else(|| panic!("no server TIME_WAIT check: {checks:#?}"));
    assert_eq!(tw["pass"], true, "{tw:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
fn tw_reuse_1_is_not_exhaustion_when_every_port_sits_in_time_wait() {
    let _turn = heavy();
    if !namespaces_available("tw_reuse_1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 100/s over 200 ports with tcp_tw_reuse 1 (1 s delay): 200/s sustainable, so it never
    // fails, though every port is in TIME_WAIT from 2 s on.
    let (_, v) = shape_run(
        dir.path(),
        "steady",
        "",
        &["--rate", "100", "--duration", "5s", "--lab-tw-reuse", "1"],
    );
    let c = &v["client_exec"];
    assert_eq!(c["tw_reuse_applies"], true, "{c:#}");
    assert_eq!(c["exhausted_s"], Value::Null, "{c:#}");
    assert_eq!(v["exhaustion"]["first_s"], Value::Null, "{c:#}");
    let measured = c["measured_rate"].as_f64().unwrap();
    assert!(
        (c["model_rate"].as_f64().unwrap() - measured).abs() < 1e-9,
        "no port share with reuse: {c:#}"
    );
    assert!((measured - 100.0).abs() < 5.0, "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

#[test]
fn a_client_that_stalls_is_inconclusive_not_a_pass() {
    let _turn = heavy();
    if !namespaces_available("stalled_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, v) = shape_run(dir.path(), "stall", "LIMIT=30", &["--duration", "5s"]);
    assert_eq!(code, Some(4), "inconclusive exits 4: {:#}", v["verdict"]);
    assert_eq!(v["verdict"]["pass"], false);
    let why = v["verdict"]["inconclusive"].as_str().expect("a reason");
    assert!(why.contains("stalled"), "{why}");
    let [at, len] = [0, 1].map(|i| v["client_exec"]["stalled"][i].as_f64().unwrap());
    // From its one connection (after Python's start-up: 0.05 s idle, 0.54 s seen under
    // load) to the end of the run.
    let end = v["duration_s"].as_f64().unwrap();
    assert!(at < 2.0 && (at + len - end).abs() < 0.2, "{at} {len} {end}");
    // Its saved results say the same later: report exits 4 and names why.
    let again = Command::new(portlab())
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(4));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("verdict: INCONCLUSIVE"), "{text}");
    assert!(text.contains("STALLED"), "{text}");
}

#[test]
fn a_slow_starting_client_is_timed_from_its_first_accepted_connection() {
    let _turn = heavy();
    if !namespaces_available("slow_start") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = shape_run(dir.path(), "slowstart", "START=0.8", &["--duration", "7s"]);
    let c = &v["client_exec"];
    // Python's own start-up comes first (0.05 s idle, 0.4 s seen under load), then 0.8 s:
    // the first accept comes just after the client printed `first connection`, which the
    // log stamps in seconds since the command started.
    let start = c["first_connection_s"].as_f64().unwrap();
    let log = std::fs::read_to_string(c["log"].as_str().unwrap()).unwrap();
    let said: f64 = log
        .lines()
        .find(|l| l.ends_with("first connection"))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `first connection` line: {log}"));
    assert!(start >= 0.8, "{c:#}");
    assert!(
        (start - said).abs() < 0.05,
        "first accept at {start:.3} s, the client said {said:.3} s: {c:#}"
    );
    assert_eq!(c["rate_source"], "server_accepts", "{c:#}");
    // The header's rate is its attempts over its duration.
    let rate = v["achieved_rate"].as_f64().unwrap();
    let per = v["attempts"].as_f64().unwrap() / v["load_duration_s"].as_f64().unwrap();
    assert!((rate - per).abs() < 1e-6, "{rate} vs {per}");
    assert_ran_out_as_predicted(&v, "EADDRNOTAVAIL", "[Errno 99]");
}

#[test]
fn a_fast_client_is_measured_at_its_own_rate_though_it_fills_the_ports_between_two_samples() {
    let _turn = heavy();
    if !namespaces_available("fast_client") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // As fast as Python goes (2,000-10,000/s here): 200 ports in 20-100 ms, before or
    // about the first 0.1 s sample. The client times itself; portlab's rate comes from the
    // server's accepts, not from samples that saw 200 connections in one interval.
    let (_, v) = shape_run(dir.path(), "fast", "", &["--duration", "5s"]);
    let c = &v["client_exec"];
    let log = std::fs::read_to_string(c["log"].as_str().unwrap()).unwrap();
    let own: Vec<f64> = log
        .lines()
        .find_map(|l| {
            let rest = l.split("made ").nth(1)?;
            let mut w = rest.split(' ');
            let n: f64 = w.next()?.parse().ok()?;
            let s: f64 = w.nth(2)?.parse().ok()?;
            Some(vec![n, s])
        })
        .unwrap_or_else(|| panic!("the client did not say its rate: {log}"));
    // n connections over n - 1 intervals, as portlab's slope counts them.
    let own_rate = (own[0] - 1.0) / own[1];
    let measured = c["measured_rate"].as_f64().unwrap();
    assert!(
        (measured - own_rate).abs() / own_rate < 0.10,
        "portlab {measured:.0}/s, the client's own {own_rate:.0}/s: {c:#}"
    );
    assert_eq!(c["rate_source"], "server_accepts", "{c:#}");
    // It ran out at P / R: dated by the accept that filled the ports, or by the failure
    // line when that came within the precise slack after it (`timing::line_slack`: 2% and
    // 5 ms; the next attempt and a Python traceback: 2.7 ms and 7 ms seen, 7% and 6% of a
    // 0.04-0.09 s run). So: 5% below P / R, 5% and that slack above it.
    let p_over_r = c["ports"].as_f64().unwrap() / measured;
    let at = c["exhausted_s"].as_f64().unwrap();
    let slack = portlab::client::timing::line_slack(p_over_r, 0.1, true);
    assert!(
        at > 0.95 * p_over_r && at < 1.05 * p_over_r + slack,
        "out at {at:.4} s, P / R = {p_over_r:.4} s: {c:#}"
    );
    assert_eq!(c["failure_kind"], "EADDRNOTAVAIL", "{c:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
}

// ------------------------------------------------------------------------------------------
// HTTP/1.0 and `Connection: close`. The embedded server speaks HTTP/1.1 as
// RFC 9112 says: when a request asks for the close (HTTP/1.0 without keep-alive, or
// `Connection: close`) it closes first after its response, as nginx does, so a client that
// reads its response up to the server's close (ApacheBench, PHP) runs at its own pace
// (before: it waited for a close that never came, 0.12 requests/s, and the verdict said
// PASS), and TIME_WAIT lands on the server: the client never runs out, however many
// connections it opens, and the verdict expects the server's side.
// ------------------------------------------------------------------------------------------

/// The client made `requests` requests, each on a connection of its own that the server
/// closed first because the request asked for it, at `rate` requests/s or more: TIME_WAIT
/// on the server only, no exhaustion over more connections than the 200 ports, and a
/// verdict that expected the server's side and passed. The text report says why.
fn assert_server_closed_on_request(dir: &Path, v: &Value, requests: u64, rate: f64) {
    let c = &v["client_exec"];
    assert_eq!(c["requests"], requests, "{c:#}");
    // The lab's namespace holds the client alone: its ActiveOpens are its connections.
    assert_eq!(
        c["connections"], requests,
        "one connection per request: {c:#}"
    );
    assert!(
        requests > c["ports"].as_u64().unwrap(),
        "more than P: {c:#}"
    );
    let measured = c["measured_rate"].as_f64().expect("a measured rate");
    assert!(
        measured >= rate,
        "{measured:.1}/s against {rate}/s at least: {c:#}"
    );
    assert_eq!(c["pooled"], false, "{c:#}");
    assert_eq!(v["server"]["accepted"], requests, "{:#}", v["server"]);
    assert_eq!(
        v["server"]["closed_on_request"], requests,
        "{:#}",
        v["server"]
    );
    assert_eq!(c["close_side"], "server", "{c:#}");
    assert_eq!(c["tw_client_max"], 0, "{c:#}");
    assert!(c["tw_server_max"].as_u64().unwrap() > 0, "{c:#}");
    assert_eq!(c["first_failure_s"], Value::Null, "{c:#}");
    assert_eq!(c["ports_full_s"], Value::Null, "{c:#}");
    assert_eq!(v["exhaustion"]["first_s"], Value::Null);
    assert_eq!(c["ended_by"], "exited", "{c:#}");
    assert_eq!(c["exit_status"], "exit 0", "{c:#}");
    let checks = v["verdict"]["checks"].as_array().unwrap();
    let side = checks
        .iter()
        .find(|ch| ch["name"] == "timewait_side")
        .unwrap_or_else(|| panic!("no timewait_side check: {checks:#?}"));
    assert_eq!(side["expected"], "server", "{side:#}");
    assert_eq!(v["verdict"]["pass"], true, "{:#}", v["verdict"]);
    let text = Command::new(portlab())
        .arg("report")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let said = format!("the client asked the server to close (HTTP/1.0 or Connection: close) on {requests} of {requests} connections: TIME_WAIT lands on the server, as with nginx");
    assert!(text.contains(&said), "{text}");
}

#[test]
fn apachebench_speaks_http_1_0_and_runs_at_its_own_pace() {
    let _turn = heavy();
    let test = "apachebench_http_1_0";
    if !namespaces_available(test) || !available(test, "ab", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // ab reads each response up to the server's close, and goes as fast as that allows:
    // 1,054-2,908/s seen (debug build, 2 cores; the low end at load average 10-12 with a
    // release build beside), so 100/s is a floor far from both that and the 1 request it
    // made before, waiting for its first response's close until --duration stopped it.
    let v = client_run(
        dir.path(),
        "ab -n 300 -c 1 http://$PORTLAB_TARGET/",
        &["--duration", "20s"],
    );
    assert_server_closed_on_request(dir.path(), &v, 300, 100.0);
    let log = std::fs::read_to_string(dir.path().join("client-exec.log")).unwrap();
    assert!(log.contains("Complete requests:      300"), "{log}");
    assert!(log.contains("Failed requests:        0"), "{log}");
}

#[test]
fn php_file_get_contents_speaks_http_1_0_and_runs_at_its_own_pace() {
    let _turn = heavy();
    let test = "php_file_get_contents";
    if !namespaces_available(test) || !available(test, "php", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 300 requests at PORTLAB_RATE 50: 6 s, past 200 / 50 = 4 s if the client held the
    // ports. Paced on an absolute schedule: 49.1-49.8/s measured, also at load average
    // 10-12 with a release build beside (45/s allows 10%). Before: 1 request, then the
    // wait for a close that never came.
    let v = client_run(
        dir.path(),
        "COUNT=300 php scenarios/clients/file_get_contents.php",
        &["--duration", "15s"],
    );
    assert_server_closed_on_request(dir.path(), &v, 300, 45.0);
}

#[test]
fn python_http_client_speaking_http_1_0_gets_the_servers_close() {
    let _turn = heavy();
    if !namespaces_available("python_http_1_0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // http.client stops reading at Content-Length and closes at once: it would close first
    // if the server's FIN did not come with the response (before: it ran out of ports at
    // about 200 / 50 = 4 s, the client holding every TIME_WAIT). Paced: 48.4-49.1/s measured,
    // the low end under load (load average 10-12, a release build beside).
    let v = client_run(
        dir.path(),
        "COUNT=300 python3 scenarios/clients/http10_loop.py",
        &["--duration", "15s"],
    );
    assert_server_closed_on_request(dir.path(), &v, 300, 45.0);
}

/// Python's urllib sends `Connection: close` (on HTTP/1.1) and closes as soon as it has read
/// Content-Length bytes. This test once expected it to run out at P / R like a raw socket
/// loop (`python_urllib_over_http_runs_out_too`), because the embedded server ignored the
/// header and waited for urllib's close. Now the server closes first, as the request asks
/// and as nginx does, with its FIN in the response's segment: urllib never runs out, and
/// TIME_WAIT is the server's (48.8-49.7/s measured, also under load). Debian's nginx
/// (tests/it/nginx.rs's configuration, started with --target-exec), the same loop at 50/s in
/// this lab, also closed first: 69-82 TIME_WAIT on the server against 13-37 on the client
/// in four runs (close_side server or mixed: its FIN follows the response in a segment of
/// its own and loses the race to urllib's close now and then); ab and PHP against it: 0 on
/// the client, 97 on the server, as against the embedded server.
#[test]
fn python_urllib_sends_connection_close_so_the_server_closes_first() {
    let _turn = heavy();
    if !namespaces_available("python_urllib") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = client_run(
        dir.path(),
        "COUNT=300 python3 scenarios/clients/urllib_loop.py",
        &["--duration", "15s"],
    );
    assert_server_closed_on_request(dir.path(), &v, 300, 45.0);
}
