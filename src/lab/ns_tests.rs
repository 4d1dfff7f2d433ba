//! Namespace tests. Each runs its lab in a child process (this test binary re-run on one
//! ignored "child" test with an environment variable set), so the test process itself never
//! changes namespace; the parent reads the host's sysctls before and after and checks the
//! child's report.
//!
//! The child test runs on a libtest thread, and only root (CAP_SYS_ADMIN) may give one
//! thread of a multi-threaded process a new network namespace: without root the child is
//! started as root of a user namespace (`unshare --user --map-root-user`). The lab's own
//! unprivileged path (CLONE_NEWUSER | CLONE_NEWNET) needs a single-threaded process and is
//! tested through the `labprobe` example. When no namespace can be had the tests skip with
//! a reason, except under CI=true, where that is a failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::{enter, read_settings};
use crate::observe::Sampler;
use crate::plan::lab::{LabConfig, ServerSideConfig};

const CHILD_ENV: &str = "PORTLAB_LAB_TEST_CHILD";

/// Runs `name` (an ignored test of this module) in a child process with CHILD_ENV=mode and
/// returns the JSON it printed on its "PROBE " line, or None when the test must skip.
fn run_child(name: &str, mode: &str) -> Option<serde_json::Value> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let exe = std::env::current_exe().expect("test binary path");
    let test_args = [
        format!("lab::ns_tests::{name}"),
        "--exact".into(),
        "--ignored".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ];
    // Root runs the child directly. Otherwise the child runs as root of its own user
    // namespace (util-linux `unshare --user --map-root-user`), where one thread may take a
    // network namespace of its own just the same.
    let mut cmd = if root {
        Command::new(&exe)
    } else {
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-root-user"]).arg(&exe);
        c
    };
    let out = match cmd.args(&test_args).env(CHILD_ENV, mode).output() {
        Ok(out) => out,
        Err(e) => {
            let why = format!("cannot start the child ({e}); needs root or util-linux unshare");
            assert!(!ci, "CI=true: {why}");
            eprintln!("SKIP {name}: {why}");
            return None;
        }
    };
    if !root && !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") {
            let why = format!("not root and no user namespace: {}", stderr.trim());
            assert!(!ci, "CI=true: {why}");
            eprintln!("SKIP {name}: {why}");
            return None;
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {name} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        // libtest prints "test name ... " without a newline before the test's own output.
        .find_map(|l| l.split_once("PROBE ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("child {name} printed no PROBE line:\n{stdout}\n{stderr}"));
    Some(serde_json::from_str(line).expect("child JSON"))
}

/// Prints the child's findings for the parent.
fn report(v: serde_json::Value) {
    println!("PROBE {v}");
}

/// Client closes first, server closes after reading EOF: the client's port goes to
/// TIME_WAIT (deterministically, as tcp-facts.md requires).
fn active_close_once(listener: &TcpListener, target: SocketAddr) -> std::io::Result<SocketAddr> {
    let client = TcpStream::connect(target)?;
    let local = client.local_addr()?;
    let (mut server, _) = listener.accept()?;
    drop(client);
    let mut buf = [0u8; 16];
    server.set_read_timeout(Some(Duration::from_secs(5)))?;
    while server.read(&mut buf)? > 0 {}
    drop(server);
    Ok(local)
}

#[test]
fn enter_applies_port_range_brings_lo_up_and_leaves_host_alone() {
    let host_before = read_settings().expect("host settings");
    let Some(v) = run_child("child_loopback", "loopback") else {
        return;
    };
    let host_after = read_settings().expect("host settings");
    assert_eq!(host_before, host_after, "the host's sysctls changed");
    assert!(
        host_before.contains_key("net.ipv4.ip_local_port_range"),
        "{host_before:?}"
    );

    let s = &v["applied"]["settings"];
    // "root" also inside `unshare --user --map-root-user` (the child is root there).
    assert_eq!(v["applied"]["mode"], "root");
    assert_eq!(s["net.ipv4.ip_local_port_range"], "40000 40019");
    assert_eq!(s["net.ipv4.ip_local_reserved_ports"], "40010");
    assert_eq!(s["net.ipv4.tcp_tw_reuse"], "0");
    assert_eq!(s["net.core.somaxconn"], "77");
    // Values the lab did not set are still reported (read back from the namespace).
    assert!(s["net.ipv4.tcp_fin_timeout"].is_string(), "{s}");
    // lo is up: connections worked, from the configured range, never the reserved port.
    let ports: Vec<u64> = v["local_ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p.as_u64())
        .collect();
    assert_eq!(ports.len(), 19, "{v}");
    assert!(ports
        .iter()
        .all(|p| (40000..=40019).contains(p) && *p != 40010));
    // The 20th connection finds no port: 19 usable ports, all in TIME_WAIT, reuse off.
    assert_eq!(v["exhausted_errno"], libc::EADDRNOTAVAIL);
    // The sampler, made inside the namespace, sees exactly those 19 on the client side.
    assert_eq!(v["sample"]["tw_client"], 19);
    assert_eq!(v["sample"]["tw_server"], 0);
    assert_eq!(v["sample"]["tw_sockstat"], 19);
    assert_eq!(v["sample"]["source"], "sock_diag");
    assert_eq!(v["delta"]["ActiveOpens"], 19);
    assert_eq!(v["delta"]["PassiveOpens"], 19);
    assert_eq!(
        v["missing_error"],
        "this kernel has no net.ipv4.tcp_no_such_setting (drop that key from [lab])"
    );
}

#[test]
#[ignore = "runs only as the child of enter_applies_port_range_brings_lo_up_and_leaves_host_alone"]
fn child_loopback() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("loopback") {
        return;
    }
    let plan = LabConfig {
        isolate: true,
        port_range: Some("40000-40019".into()),
        reserved_ports: Some("40010".into()),
        tw_reuse: Some(0),
        somaxconn: Some(77),
        ..LabConfig::default()
    }
    .validate()
    .expect("valid plan");
    let applied = enter(&plan).expect("enter");
    // A fixed port outside the range: bind(0) would take one of the 19 ports.
    let listener = TcpListener::bind("127.0.0.1:39999").expect("bind on lo");
    let target = listener.local_addr().expect("addr");
    let mut sampler = Sampler::new(target);
    let before = sampler.sample();
    let mut ports = Vec::new();
    let mut errno = None;
    for _ in 0..20 {
        match active_close_once(&listener, target) {
            Ok(local) => ports.push(local.port()),
            Err(e) => {
                errno = e.raw_os_error();
                break;
            }
        }
    }
    let after = sampler.sample();
    // A sysctl this kernel lacks is an error naming it, never skipped (written inside the
    // namespace, though the open fails before anything is written anyway).
    const NO_SUCH: crate::plan::sysctl::Knob = crate::plan::sysctl::Knob {
        name: "net.ipv4.tcp_no_such_setting",
        ..crate::plan::sysctl::FIN_TIMEOUT
    };
    let missing = super::linux::write_sysctl(&super::Sysctl {
        knob: &NO_SUCH,
        value: "1".into(),
        server: false,
    })
    .expect_err("no such sysctl")
    .to_string();
    report(serde_json::json!({
        "missing_error": missing,
        "applied": applied,
        "local_ports": ports,
        "exhausted_errno": errno,
        "sample": after,
        "delta": after.delta(&before),
    }));
}

/// veth: two namespaces, the server's own somaxconn, a listener made in the server
/// namespace; and tcp_tw_reuse = 2 (loopback only) does not help over veth while it does on
/// loopback: the difference the topology exists to show.
#[test]
fn veth_topology_connects_across_namespaces_and_reuse_2_only_helps_loopback() {
    let host_before = read_settings().expect("host settings");
    let Some(veth) = run_child("child_reuse2", "veth") else {
        return;
    };
    let Some(lo) = run_child("child_reuse2", "loopback") else {
        return;
    };
    assert_eq!(host_before, read_settings().expect("host settings"));

    assert_eq!(veth["applied"]["topology"], "veth");
    assert_eq!(veth["applied"]["server_addr"], "198.18.0.2");
    assert_eq!(veth["applied"]["client_addr"], "198.18.0.1");
    assert_eq!(
        veth["applied"]["server_settings"]["net.core.somaxconn"],
        "33"
    );
    assert_eq!(veth["applied"]["settings"]["net.ipv4.tcp_tw_reuse"], "2");
    assert_eq!(veth["peer_seen_by_server"], "198.18.0.1");
    // 10 ports, 25 connections 20 ms apart, reuse delay 1 ms: over veth the 11th fails...
    assert_eq!(veth["ok"], 10, "{veth}");
    assert_eq!(veth["exhausted_errno"], libc::EADDRNOTAVAIL);
    // ... its client TIME_WAIT is in the client namespace, the server's namespace has none
    // (the client closed first).
    assert_eq!(veth["client_sample"]["tw_client"], 10);
    assert_eq!(veth["server_sample"]["tw_total"], 0);
    // ... and on loopback every connection reuses a TIME_WAIT port.
    assert_eq!(lo["ok"], 25, "{lo}");
    assert!(
        lo["delta"]["TWRecycled"].as_u64().unwrap_or(0) >= 15,
        "{lo}"
    );
}

#[test]
#[ignore = "runs only as the child of veth_topology_connects_across_namespaces_and_reuse_2_only_helps_loopback"]
fn child_reuse2() {
    let topology = match std::env::var(CHILD_ENV).as_deref() {
        Ok("veth") => "veth",
        Ok("loopback") => "loopback",
        _ => return,
    };
    let plan = LabConfig {
        isolate: true,
        port_range: Some("40000-40009".into()),
        tw_reuse: Some(2),
        tw_reuse_delay_ms: Some(1),
        topology: Some(topology.into()),
        server: ServerSideConfig {
            somaxconn: (topology == "veth").then_some(33),
            ..ServerSideConfig::default()
        },
        ..LabConfig::default()
    }
    .validate()
    .expect("valid plan");
    let applied = enter(&plan).expect("enter");
    // A fixed port outside the client's range (on loopback bind(0) would take one of the 10).
    let listener = applied
        .in_server_ns(|| TcpListener::bind((applied.server_addr, 39999)))
        .expect("setns")
        .expect("bind in the server namespace");
    let target = listener.local_addr().expect("addr");
    let server_sampler = applied
        .in_server_ns(|| Sampler::new(target))
        .expect("setns");
    let mut server_sampler = server_sampler;
    let mut client_sampler = Sampler::new(target);
    let before = client_sampler.sample();

    // One exchange first, to see the client's address from the server side.
    let mut c = TcpStream::connect(target).expect("first connect");
    let (mut s, peer) = listener.accept().expect("accept");
    c.write_all(b"x").expect("write");
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("read");
    drop(c);
    while s.read(&mut b).unwrap_or(0) > 0 {}
    drop(s);

    let mut ok = 1;
    let mut errno = None;
    for _ in 1..25 {
        std::thread::sleep(Duration::from_millis(20));
        match active_close_once(&listener, target) {
            Ok(_) => ok += 1,
            Err(e) => {
                errno = e.raw_os_error();
                break;
            }
        }
    }
    let client_sample = client_sampler.sample();
    report(serde_json::json!({
        "applied": applied,
        "peer_seen_by_server": peer.ip().to_string(),
        "ok": ok,
        "exhausted_errno": errno,
        "client_sample": client_sample,
        "server_sample": server_sampler.sample(),
        "delta": client_sample.delta(&before),
    }));
}

/// The unprivileged path (CLONE_NEWUSER | CLONE_NEWNET) needs a single-threaded process:
/// the labprobe example, run as user nobody. `cargo test` builds examples; a bare
/// `cargo test --lib` does not, and then this test skips, saying so.
#[test]
fn user_namespace_path_via_labprobe_example() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let exe = std::env::current_exe().expect("test binary path");
    let probe = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("labprobe"));
    let Some(probe) = probe.filter(|p| p.exists()) else {
        eprintln!(
            "SKIP user_namespace_path_via_labprobe_example: examples/labprobe is not built \
             (run `cargo test` or `cargo build --example labprobe`)"
        );
        return;
    };
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let config = "isolate = true\nport_range = \"41000-41049\"\ntw_reuse = 0\n";
    let mut cmd = if root {
        // Drop to nobody so the user-namespace path is the one taken.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(&probe);
        c
    } else {
        Command::new(&probe)
    };
    let out = match cmd.arg(config).output() {
        Ok(o) => o,
        Err(e) => {
            assert!(!ci, "CI=true: cannot run labprobe via setpriv: {e}");
            eprintln!("SKIP user_namespace_path_via_labprobe_example: setpriv: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Unprivileged user namespaces may be disabled on this machine.
        let denied = stderr.contains("Operation not permitted") || stderr.contains("No space");
        assert!(
            denied && !ci,
            "labprobe failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        eprintln!("SKIP user_namespace_path_via_labprobe_example: {stderr}");
        return;
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("labprobe JSON");
    assert_eq!(v["applied"]["mode"], "user-namespace", "{v}");
    assert_eq!(
        v["applied"]["settings"]["net.ipv4.ip_local_port_range"],
        "41000 41049"
    );
    let port = v["local_port"].as_u64().expect("port");
    assert!((41000..=41049).contains(&port), "{v}");
}
