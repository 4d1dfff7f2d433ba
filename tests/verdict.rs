//! The verdict's exit codes: a run the model explains exits 0, one it does not exits 1 and
//! says which check failed and by how much.

mod common;
use common::*;
use std::process::Command;

fn run_range(dir: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    // portlab binds ports 21000..21049 itself (below Linux's ephemeral range): 50 ports at
    // 100/s, 30 starts: the model says the range lasts 0.5 s, so no exhaustion in 0.3 s.
    let out = Command::new(portlab())
        .args([
            "run",
            "--rate",
            "100",
            "--count",
            "30",
            "--bind",
            "range=21000-21049",
            "-q",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    (out, summary)
}

#[test]
fn rerunning_a_port_range_still_in_time_wait_fails_the_verdict_with_exit_1() {
    // First run: 30 connections on ports 21000..21029, each left in TIME_WAIT (60 s).
    let first = tempfile::tempdir().unwrap();
    let (out, s) = run_range(first.path());
    assert_eq!(out.status.code(), Some(0), "{s:#}");
    assert_eq!(s["verdict"]["pass"], true);
    // Second run at once: it binds 21000 first again, still in TIME_WAIT, so EADDRINUSE comes
    // at once, where the model (which does not know about the earlier run) says never.
    let second = tempfile::tempdir().unwrap();
    let (out, s) = run_range(second.path());
    assert_eq!(out.status.code(), Some(1), "{s:#}");
    assert_eq!(s["verdict"]["pass"], false);
    let failed: Vec<&str> = s["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"exhaustion"), "{failed:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verdict: FAIL") && stdout.contains("NO"),
        "{stdout}"
    );
}

#[test]
fn summary_carries_prediction_and_verdict_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        dir.path(),
        &["--rate", "200", "--count", "100", "--close", "reset"],
    );
    assert!(out.status.success());
    for key in [
        "exhausts",
        "first_error_s",
        "sustainable_rate",
        "steady_timewait",
        "timewait_side",
        "post_exhaustion_rate",
        "margin",
        "explanation",
    ] {
        assert!(s["prediction"].get(key).is_some(), "prediction lacks {key}");
    }
    assert_eq!(s["prediction"]["timewait_side"], "none");
    for c in s["verdict"]["checks"].as_array().unwrap() {
        for key in [
            "name",
            "expected",
            "measured",
            "error_pct",
            "tolerance_pct",
            "pass",
        ] {
            assert!(c.get(key).is_some(), "check lacks {key}: {c}");
        }
    }
}
