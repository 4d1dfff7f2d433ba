//! Issue 14: the instrument at full scale and a verdict that never passes a run that did not
//! deliver its load. Lab runs (private network namespace); they skip without one, except
//! under CI=true.

mod common;
use common::*;
use serde_json::Value;
use std::process::{Command, Output};

/// `portlab run --lab ARGS` (JSON on stdout); None (skip) when no namespace can be had.
fn lab(test: &str, args: &[&str]) -> Option<(Output, Value)> {
    lab_with_nofile(test, None, args)
}

/// As [`lab`], with RLIMIT_NOFILE lowered to `nofile` first (sh's ulimit -n) when given.
fn lab_with_nofile(test: &str, nofile: Option<u32>, args: &[&str]) -> Option<(Output, Value)> {
    if !namespaces_available(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec \"$0\" \"$@\""))
        .arg(portlab())
        .args(["run", "--lab"])
        .args(args)
        .args(["-q", "--format", "json", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let s = parse_summary(&out);
    Some((out, s))
}

/// The run's delivery check failed, and the verdict with it (exit 1); returns its note.
fn delivery_failed(out: &Output, s: &Value) -> String {
    let c = check(s, "delivery").unwrap_or_else(|| panic!("no delivery check in {s:#}"));
    assert_eq!(c["pass"], false, "{c}");
    assert_eq!(s["verdict"]["pass"], false);
    assert_eq!(out.status.code(), Some(1), "{c}");
    c["note"].as_str().unwrap().to_string()
}

fn check<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["verdict"]["checks"]
        .as_array()
        .expect("verdict checks")
        .iter()
        .find(|c| c["name"] == name)
}

/// The run: 300 ports, tcp_tw_reuse 1 with a 2.5 s delay, 240/s for 8 s. Two bursts
/// of 300 successes fall in (2.5 s, 7.5 s]: 120/s. At 1 s intervals the old verdict summed
/// whole intervals (3, 7] and measured 96.4/s; the successes are now counted by their own time.
fn post_exhaustion_rate_at(interval: &str) {
    let test = format!("post_exhaustion_rate_at_{interval}");
    let Some((out, s)) = lab(
        &test,
        &[
            "--lab-port-range",
            "50000-50299",
            "--lab-tw-reuse",
            "1",
            "--lab-tw-reuse-delay",
            "2500",
            "--rate",
            "240",
            "--duration",
            "8s",
            "--close",
            "active",
            "--interval",
            interval,
        ],
    ) else {
        return;
    };
    let c = check(&s, "post_exhaustion_rate").unwrap_or_else(|| panic!("no check in {s:#}"));
    assert_eq!(c["expected"], 120.0, "{c}");
    assert_eq!(c["pass"], true, "{c}");
    assert!(
        c["note"].as_str().unwrap().contains("(2.5 s, 7.5 s]"),
        "{c}"
    );
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
}

#[test]
fn post_exhaustion_rate_is_exact_at_one_second_intervals() {
    post_exhaustion_rate_at("1s");
}

#[test]
fn post_exhaustion_rate_is_exact_at_quarter_second_intervals() {
    post_exhaustion_rate_at("250ms");
}

#[test]
fn a_slow_server_fails_delivery_and_says_so() {
    // 5 ms before each accept: 200 accepts/s against 2,000 starts/s. In-flight connections
    // pile up to --max-in-flight, starts are dropped, the drain gives up on the rest.
    let Some((out, s)) = lab(
        "a_slow_server_fails_delivery",
        &[
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--payload",
            "tcp",
            "--accept-delay",
            "5ms",
            "--max-in-flight",
            "500",
            "--drain-timeout",
            "500ms",
        ],
    ) else {
        return;
    };
    let note = delivery_failed(&out, &s);
    assert!(
        note.contains("dropped") && note.contains("aborted"),
        "{note}"
    );
    assert!(note.contains("slow server"), "{note}");
}

#[test]
fn one_slot_in_flight_at_a_high_rate_fails_delivery() {
    let Some((out, s)) = lab(
        "one_slot_in_flight_fails_delivery",
        &[
            "--rate",
            "50000",
            "--duration",
            "1s",
            "--max-in-flight",
            "1",
        ],
    ) else {
        return;
    };
    assert!(s["dropped"].as_u64().unwrap() > 0, "{s:#}");
    let note = delivery_failed(&out, &s);
    assert!(note.contains("of 50,000 starts/s"), "{note}");
    assert!(note.contains("raise --max-in-flight"), "{note}");
}

#[test]
fn a_low_descriptor_limit_fails_delivery() {
    // 64 descriptors for up to 200 connections in flight, each with the server's end too.
    let Some((out, s)) = lab_with_nofile(
        "a_low_descriptor_limit_fails_delivery",
        Some(64),
        &[
            "--rate",
            "5000",
            "--duration",
            "1s",
            "--payload",
            "tcp",
            "--accept-delay",
            "1ms",
            "--max-in-flight",
            "200",
        ],
    ) else {
        return;
    };
    assert!(
        s["errors"]["EMFILE"]["count"].as_u64().unwrap() > 0,
        "{s:#}"
    );
    let note = delivery_failed(&out, &s);
    assert!(
        note.contains("EMFILE") && note.contains("ulimit -n"),
        "{note}"
    );
}

#[test]
fn a_run_that_made_its_load_passes_delivery() {
    let Some((out, s)) = lab(
        "a_run_that_made_its_load_passes_delivery",
        &["--rate", "1000", "--duration", "1s"],
    ) else {
        return;
    };
    let c = check(&s, "delivery").expect("delivery check");
    assert_eq!(c["pass"], true, "{c}");
    assert_eq!(c["expected"], 1000.0, "{c}");
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
}

#[test]
fn a_closed_loop_that_exhausts_is_judged_on_its_measured_rate() {
    // The run: 1,000 ports, no reuse, as fast as it goes. The model takes the rate
    // the ports were taken at (attempts before the first error / its time) and predicts
    // the exhaustion it measured.
    let Some((out, s)) = lab(
        "a_closed_loop_that_exhausts_is_judged_on_its_measured_rate",
        &[
            "--lab-port-range",
            "40000-40999",
            "--lab-tw-reuse",
            "0",
            "--rate",
            "max",
            "--duration",
            "2s",
        ],
    ) else {
        return;
    };
    let p = &s["prediction"];
    assert_eq!(p["exhausts"], true, "{p:#}");
    assert!(
        p["explanation"]
            .as_str()
            .unwrap()
            .starts_with("Closed loop"),
        "{p:#}"
    );
    let attempt = s["exhaustion"]["attempt"]
        .as_u64()
        .expect("exhaustion.attempt");
    assert!((1001..=1000 + 64).contains(&attempt), "{attempt}");
    let c = check(&s, "first_error_s").expect("first_error_s check");
    assert_eq!(c["pass"], true, "{c}");
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
}
