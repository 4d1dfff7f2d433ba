//! `portlab report`: snapshots of every format for one saved run and for two side by side
//! (tests/fixtures/runs/before and after are real lab runs: quickstart with 300 ports, and
//! with 1000 ports and --baseline before), exit codes, and the [expect] / --baseline checks
//! of a live run.

use crate::common::{self, portlab, run_json};
use std::process::{Command, Output};

const BEFORE: &str = "tests/fixtures/runs/before";
const AFTER: &str = "tests/fixtures/runs/after";

fn report(args: &[&str]) -> Output {
    Command::new(portlab())
        .arg("report")
        .args(args)
        .output()
        .expect("running portlab report")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 report")
}

#[test]
fn one_run_in_every_format() {
    for format in ["text", "json", "csv", "markdown"] {
        let out = report(&[BEFORE, "--format", format]);
        // The fixture's verdict failed ([expect] exhaustion = false, and it ran out).
        assert_eq!(out.status.code(), Some(1), "{format}: {out:?}");
        insta::assert_snapshot!(format!("before_{format}"), stdout(&out));
    }
}

#[test]
fn two_runs_side_by_side_in_every_format() {
    for format in ["text", "json", "csv", "markdown"] {
        let out = report(&[BEFORE, AFTER, "--format", format]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: a comparison only shows"
        );
        insta::assert_snapshot!(format!("compare_{format}"), stdout(&out));
    }
}

#[test]
fn comparison_shows_the_setting_that_changed_and_its_effect() {
    let out = report(&[BEFORE, &format!("{AFTER}/summary.json"), "--format", "json"]);
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["runs"], serde_json::json!(["before", "after"]));
    let row = |metric: &str| {
        c["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == metric)
            .unwrap_or_else(|| panic!("no row {metric}: {c}"))
            .clone()
    };
    let range = row("setting net.ipv4.ip_local_port_range");
    assert_eq!(
        range["values"],
        serde_json::json!(["40000 40299", "40000 40999"])
    );
    let predicted = row("prediction.first_error");
    assert_eq!(predicted["values"], serde_json::json!(["3.000", "10.000"]));
    let change = predicted["change_pct"][1].as_f64().unwrap();
    assert!(
        (change - 233.333).abs() < 0.01,
        "3 s -> 10 s is +233%: {change}"
    );
}

#[test]
fn unreadable_input_is_exit_2_naming_the_path() {
    let out = report(&["tests/fixtures/no-such-run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-run") && err.contains("results directory"),
        "{err}"
    );
    let out = report(&["Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a portlab summary.json"));
}

fn check<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {}", summary["verdict"]))
}

#[test]
fn a_failed_expectation_exits_1_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("expects.toml");
    // 20 connections cannot use up the host's thousands of ports.
    std::fs::write(
        &scenario,
        "[load]\nrate = 100\ncount = 20\n[client]\nclose = \"reset\"\n[expect]\nexhaustion = true\nmin_success_rate = 0.9\n",
    )
    .unwrap();
    let (out, s) = run_json(&tmp.path().join("run"), &[scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let c = check(&s, "expect.exhaustion");
    assert_eq!(
        (c["expected"].as_bool(), c["pass"].as_bool()),
        (Some(true), Some(false))
    );
    let ok = check(&s, "expect.min_success_rate");
    assert_eq!(ok["pass"], true, "the other expectation held");
    // The same run with the expectation flipped on the command line passes.
    let (out, s) = run_json(
        &tmp.path().join("run2"),
        &[scenario.to_str().unwrap(), "--expect-exhaustion", "false"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", s["verdict"]);
}

#[test]
fn a_baseline_regression_exits_1() {
    let _turn = common::light();
    let tmp = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        &tmp.path().join("now"),
        &["--rate", "200", "--count", "40", "--close", "reset"],
    );
    assert_eq!(out.status.code(), Some(0));
    // A baseline no real run can match: p99 connect of 0 µs and every attempt a success.
    let mut better = s.clone();
    better["connect_latency_us"]["p99"] = 0.into();
    let better_path = tmp.path().join("better.json");
    std::fs::write(&better_path, better.to_string()).unwrap();
    // And one any run beats: a p99 of 100 s.
    let mut worse = s.clone();
    worse["connect_latency_us"]["p99"] = 100_000_000u64.into();
    let worse_path = tmp.path().join("worse.json");
    std::fs::write(&worse_path, worse.to_string()).unwrap();

    let args = [
        "--rate",
        "200",
        "--count",
        "40",
        "--close",
        "reset",
        "--baseline",
    ];
    let mut a = args.to_vec();
    a.push(better_path.to_str().unwrap());
    let (out, s) = run_json(&tmp.path().join("r1"), &a);
    assert_eq!(out.status.code(), Some(1), "{}", s["verdict"]);
    assert_eq!(check(&s, "baseline.connect_p99_us")["pass"], false);

    let mut a = args.to_vec();
    a.push(worse_path.to_str().unwrap());
    let (out, s) = run_json(&tmp.path().join("r2"), &a);
    assert_eq!(out.status.code(), Some(0), "{}", s["verdict"]);
    assert_eq!(check(&s, "baseline.connect_p99_us")["pass"], true);
    assert_eq!(check(&s, "baseline.success_rate")["tolerance_pct"], 10.0);

    // A baseline that cannot be read stops the run before any traffic.
    let out = Command::new(portlab())
        .args([
            "run",
            "--count",
            "5",
            "-q",
            "--baseline",
            "nope.json",
            "--out",
        ])
        .arg(tmp.path().join("r3"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--baseline"));
    assert!(!tmp.path().join("r3").join("summary.json").exists());
}
