//! A run's life: its results directory, Ctrl-C, and external targets.

use crate::common::*;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_run_writes_plan_timeline_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        dir.path(),
        &["--rate", "100", "--duration", "2s", "--name", "files"],
    );
    assert!(out.status.success());
    for key in [
        "scenario",
        "started_at",
        "duration_s",
        "attempts",
        "connected",
        "completed",
        "dropped",
        "achieved_rate",
        "errors",
        "exhaustion",
        "connect_latency_us",
        "exchange_latency_us",
        "schedule_lag_us",
        "plan",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}");
    }
    for key in ["mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(s["connect_latency_us"].get(key).is_some());
    }
    assert_eq!(s["scenario"], "files");
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(on_disk, s, "stdout JSON and summary.json agree");
    let timeline = std::fs::read_to_string(dir.path().join("timeline.csv")).unwrap();
    assert!(timeline
        .starts_with("t_s,attempts,connected,completed,dropped,errors,errors_by_kind,in_flight"));
    // One row per second: at 1 s, then the last one at the end of the drain: after the
    // last start, due at 1.99 s (200 starts 10 ms apart from 0), so 1.998 s is a valid end
    // (2 runs in 14 ended there), and before 3 s. A loaded machine may see the 2 s boundary
    // before the drain's end, and write the row at 2.000 and then the end's own, shorter one.
    let t: Vec<f64> = timeline
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(t[0], 1.0, "{timeline}");
    match t.as_slice() {
        [_, end] => assert!((1.99..3.0).contains(end), "{timeline}"),
        [_, two, end] => assert!(*two == 2.0 && (2.0..3.0).contains(end), "{timeline}"),
        _ => panic!("header + one row per second: {timeline}"),
    }
    // plan.toml re-runs the same plan.
    let plan = std::fs::read_to_string(dir.path().join("plan.toml")).unwrap();
    assert!(plan.contains("rate = \"100\""), "{plan}");
    let again = tempfile::tempdir().unwrap();
    let (out, s2) = run_json(
        again.path(),
        &[dir.path().join("plan.toml").to_str().unwrap()],
    );
    assert!(out.status.success());
    assert_eq!(s2["plan"], s["plan"]);
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_everything_measured_and_exits_130() {
    let _turn = light();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(portlab())
        .args([
            "run",
            "--rate",
            "200",
            "--duration",
            "60s",
            "--interval",
            "200ms",
            "-q",
            "--format",
            "json",
            "--out",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the run to be under way: the timeline's first rows are on disk.
    let timeline = dir.path().join("timeline.csv");
    let began = Instant::now();
    while std::fs::read_to_string(&timeline).map_or(0, |t| t.lines().count()) < 4 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["interrupted"], true);
    assert!(n(&s, "attempts") > 0 && n(&s, "attempts") < 200 * 60);
    assert_eq!(
        n(&s, "completed"),
        n(&s, "attempts"),
        "in-flight connections were drained"
    );
    assert!(dir.path().join("summary.json").exists());
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "stopped promptly"
    );
}

#[test]
fn external_target_gets_the_load() {
    // A plain std listener that reads until EOF, then closes: the client closes first.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        // The probe connection plus 100 runs.
        for stream in listener.incoming().take(101) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 64];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        dir.path(),
        &["--target", &addr, "--rate", "200", "--count", "100"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(n(&s, "completed"), 100);
    assert_eq!(s["target"], addr);
    assert!(
        s.get("server").is_none(),
        "no embedded server with an external target"
    );
    server.join().unwrap();
}

#[test]
fn unreachable_target_is_exit_2_before_any_traffic() {
    // Bind then drop a listener: nothing listens on that port now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(portlab())
        .args([
            "run",
            "--target",
            &format!("127.0.0.1:{port}"),
            "-q",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not reachable") && err.contains("ECONNREFUSED") && err.contains("--target"),
        "{err}"
    );
    assert!(!dir.path().join("timeline.csv").exists(), "no run started");
}
