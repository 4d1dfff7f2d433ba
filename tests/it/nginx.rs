//! Against a real server nobody here wrote: nginx from Debian's packages, started by portlab
//! itself (`[target] exec`) inside the lab's namespace, with a configuration this test
//! writes to a temporary directory. HTTP payload, one connection per request.
//!
//! - The client closing first (HTTP/1.1 keep-alive, portlab closes after the reply): the
//!   first EADDRNOTAVAIL at ports / rate, within 5%.
//! - The server closing first (`--close passive` sends `Connection: close`, so nginx closes
//!   after its reply): no client exhaustion, TIME_WAIT on the server.
//!
//! Without nginx the tests print SKIPPED and pass, except under CI=true, where they fail
//! (.ci/run installs nginx-light).

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// nginx's port inside the lab's private namespace (nothing else listens there).
const PORT: u16 = 18080;
/// 300 client ports at 100 requests/s: 3 s to exhaustion with the client closing first.
const RANGE: &str = "40000-40299";
const RATE: f64 = 100.0;

fn nginx_available(test: &str) -> bool {
    have(
        test,
        "nginx (apt-get install nginx-light)",
        Command::new("nginx").arg("-v"),
    )
}

/// A foreground nginx (no daemon, no master: SIGTERM stops the one process) answering
/// `200 ok` on 127.0.0.1:PORT, every path it writes inside `dir`.
fn write_config(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    let conf = format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_timeout 65;
    server {{
        listen 127.0.0.1:{PORT};
        location / {{ return 200 \"ok\\n\"; }}
    }}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Runs `portlab run SCENARIO ARGS` and returns (exit code, summary).
fn run(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out_dir = dir.join("results");
    let out = Command::new(portlab())
        .arg("run")
        .args(args)
        .args(["-q", "--format", "json", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let s = parse_summary(&out);
    (out.status.code(), s)
}

fn assert_stopped_cleanly(s: &Value, conf: &Path) {
    let x = &s["target_exec"];
    assert!(
        x["command"]
            .as_str()
            .unwrap()
            .contains(conf.to_str().unwrap()),
        "{x:#}"
    );
    assert_eq!(x["stopped_by"], "SIGTERM", "{x:#}");
    assert_eq!(x["exit_code"], 0, "nginx exits 0 on SIGTERM: {x:#}");
}

#[test]
#[ignore = "needs nginx (apt-get install nginx-light); cargo test -- --include-ignored runs it"]
fn nginx_client_closing_first_exhausts_at_ports_over_rate() {
    let _turn = heavy();
    if !nginx_available("nginx_client_closing_first") || !namespaces_available("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    // The scenario file form: [target] exec + address.
    let scenario = dir.path().join("nginx.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"nginx-active\"\n\
             [load]\nrate = {RATE}\nduration = \"4s\"\n\
             [client]\nclose = \"active\"\n\
             [payload]\nkind = \"http\"\n\
             [target]\naddress = \"127.0.0.1:{PORT}\"\nexec = \"nginx -c {} -p {}\"\nready_timeout = \"10s\"\n\
             [lab]\nisolate = true\nport_range = \"{RANGE}\"\ntw_reuse = 0\n",
            conf.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    // A command from a file needs consent.
    let (code, s) = run(dir.path(), &[scenario.to_str().unwrap(), "--allow-exec"]);
    assert_eq!(code, Some(0), "verdict {:#}", s["verdict"]);
    assert_eq!(
        s["exhaustion"]["kind"], "EADDRNOTAVAIL",
        "{:#}",
        s["exhaustion"]
    );
    // Attempt 301 finds no port, due at 300 / RATE (one later per TIME_WAIT socket an RST
    // ended early: common::ended_early); each of those ports served one more request.
    assert_first_error_due(&s, 300, RATE, 0.0);
    assert_eq!(
        s["http_status"]["200"],
        300 + resets(&s),
        "{:#}",
        s["http_status"]
    );
    assert_eq!(s["timewait"]["client_max"], 300);
    assert_eq!(s["timewait"]["server_max"], 0, "nginx waited for our FIN");
    assert!(
        s.get("server").is_none(),
        "no embedded server: nginx answered"
    );
    assert_stopped_cleanly(&s, &conf);
    let log = std::fs::read_to_string(dir.path().join("results/target-exec.log")).unwrap();
    assert!(log.contains("SIGTERM"), "{log}");
}

#[test]
#[ignore = "needs nginx (apt-get install nginx-light); cargo test -- --include-ignored runs it"]
fn nginx_server_closing_first_never_exhausts_the_client() {
    let _turn = heavy();
    if !nginx_available("nginx_server_closing_first") || !namespaces_available("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path());
    let exec = format!("nginx -c {} -p {}", conf.display(), dir.path().display());
    let target = format!("127.0.0.1:{PORT}");
    // The flag form; --close passive sends Connection: close, so nginx closes first.
    let (code, s) = run(
        dir.path(),
        &[
            "--lab",
            "--lab-port-range",
            RANGE,
            "--lab-tw-reuse",
            "0",
            "--rate",
            "100",
            "--duration",
            "4s",
            "--payload",
            "http",
            "--close",
            "passive",
            "--target",
            &target,
            "--target-exec",
            &exec,
        ],
    );
    assert_eq!(code, Some(0), "verdict {:#}", s["verdict"]);
    assert_eq!(n(&s, "failed"), 0, "{:#}", s["errors"]);
    assert!(s["exhaustion"]["first_s"].is_null());
    assert_eq!(n(&s, "completed"), 400, "more requests than client ports");
    assert_eq!(s["timewait"]["client_max"], 0);
    // The server holds TIME_WAIT; with 300 client ports (150 of one parity, which connect()
    // keeps cycling through while they are free) a reused 4-tuple takes its socket over.
    let server_tw = f(&s["timewait"]["server_max"]);
    assert!(server_tw >= 100.0, "server TIME_WAIT {server_tw}");
    assert_stopped_cleanly(&s, &conf);
}

#[test]
#[ignore = "needs nginx (apt-get install nginx-light); cargo test -- --include-ignored runs it"]
fn nginx_that_cannot_start_is_a_setup_error_quoting_its_output() {
    if !nginx_available("nginx_cannot_start") || !namespaces_available("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.conf");
    let exec = format!("nginx -c {}", missing.display());
    let out = Command::new(portlab())
        .args([
            "run",
            "--lab",
            "--target",
            "127.0.0.1:18080",
            "--target-exec",
        ])
        .arg(&exec)
        .args(["-q", "--out"])
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exited (exit 1) before accepting") && err.contains("missing.conf"),
        "{err}"
    );
}
