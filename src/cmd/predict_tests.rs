//! The `predict` command: its flags (parse errors, flags over the profile) and its output,
//! with the model they feed.

use clap::Parser;

use super::*;
use crate::model::{BindModel, ModelInput, Profile, TimeWaitSide, TwReuse};
use crate::plan::values::{parse_duration_s, parse_rate};
use crate::plan::PortRange;

// ---- parsing and errors ----

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    args: PredictArgs,
}

fn args(line: &[&str]) -> Result<PredictArgs, clap::Error> {
    let argv = std::iter::once("predict").chain(line.iter().copied());
    Cli::try_parse_from(argv).map(|c| c.args)
}

fn build(line: &[&str]) -> Result<ModelInput, String> {
    let a = args(line).map_err(|e| e.to_string())?;
    input_from_args(&a).map_err(|e| e.to_string())
}

#[test]
fn profile_parse_error_lists_the_names() {
    let e = "windows-3000".parse::<Profile>().expect_err("unknown");
    let msg = e.to_string();
    assert!(msg.contains("windows-3000"));
    assert!(msg.contains(Profile::NAMES), "{msg}");
    let e = args(&["--profile", "solaris"])
        .expect_err("unknown")
        .to_string();
    assert!(e.contains("--profile") && e.contains("windows-2003"), "{e}");
}

#[test]
fn value_parse_errors() {
    for bad in ["5000-1025", "abc", "0-10", "1025-70000", "1025"] {
        let e = bad.parse::<PortRange>().expect_err(bad).to_string();
        assert!(e.contains(bad) && e.contains("LO-HI"), "{e}");
    }
    for bad in ["0", "-3", "fast", "30/h", "inf"] {
        assert!(parse_rate(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_rate("1800/min"), Ok(30.0));
    assert_eq!(parse_rate("30/s"), Ok(30.0));
    assert_eq!(parse_duration_s("4m"), Ok(240.0));
    assert_eq!(parse_duration_s("250ms"), Ok(0.25));
    assert_eq!(parse_duration_s("30"), Ok(30.0));
    assert!(parse_duration_s("forever").is_err());
    assert!(parse_duration_s("0s").is_err());
}

#[test]
fn flag_errors_name_the_flag() {
    #[rustfmt::skip]
    let rows: [(&[&str], &str); 10] = [
        // (flags, text the error must contain)
        (&["--rate", "0"], "--rate"),
        (&["--port-range", "5000-1025"], "--port-range"),
        (&["--ports", "10", "--port-range", "1-10"], "--port-range"),
        (&["--close", "linger0"], "active, passive, reset"),
        (&["--destinations", "0"], "--destinations"),
        (&["--profile", "windows-2003", "--reserved", "3976"], "--reserved"),
        (&["--profile", "custom", "--rate", "10"], "--ports or --port-range"),
        (&["--profile", "custom", "--ports", "100"], "--time-wait"),
        (&["--profile", "windows-2008", "--tw-reuse", "1"], "--tw-reuse is a Linux setting"),
        (&["--tw-reuse-delay", "1000"], "--tw-reuse-delay"),
    ];
    for (line, want) in rows {
        let e = build(line).expect_err(&format!("{line:?} must fail"));
        assert!(e.contains(want), "{line:?}: {e}");
    }
    assert!(build(&["--loopback", "--remote"]).is_err());
}

#[test]
fn flags_override_the_profile() {
    let i = build(&[
        "--profile",
        "windows-2003",
        "--rate",
        "30",
        "--time-wait",
        "30s",
        "--port-range",
        "1025-9000",
        "--reserved",
        "25",
        "--close",
        "passive",
        "--pool",
        "0",
        "--bind",
        "any-port",
        "--destinations",
        "3",
        "--sources",
        "2",
        "--loopback",
        "--preexisting",
        "7",
    ])
    .expect("valid");
    assert_eq!(i.ports, 7951);
    assert_eq!(i.time_wait_s, 30.0);
    assert_eq!(i.timewait_side, TimeWaitSide::Server);
    assert_eq!(i.bind, BindModel::WholeRange);
    assert_eq!((i.destinations, i.sources, i.preexisting), (3, 2, 7));
    assert!(i.loopback);
    let c = build(&[
        "--profile",
        "custom",
        "--ports",
        "200",
        "--time-wait",
        "60",
        "--tw-reuse",
        "1",
        "--tw-reuse-delay",
        "4s",
    ])
    .expect("valid");
    assert_eq!(
        (c.ports, c.tw_reuse, c.tw_reuse_delay_s),
        (200, TwReuse::On, 4.0)
    );
}

// ---- the predict command ----

fn run(line: &[&str]) -> String {
    let a = args(line).expect("valid flags");
    let mut out = Vec::new();
    super::run(&a, &mut out).expect("runs");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn predict_text_windows_2003_at_30() {
    let text = run(&["--profile", "windows-2003", "--rate", "30"]);
    println!("{text}");
    for want in [
        "after 132.53 s (WSAENOBUFS)",
        "16.57 conn/s",
        "3976 sockets on the client",
        "1.81",
        "needs 7200 ports in the range, or a TIME_WAIT of at most 132.53 s",
        "/v MaxUserPort /t REG_DWORD /d 8224 /f",
        "/v TcpTimedWaitDelay /t REG_DWORD /d 132 /f",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
}

#[test]
fn predict_text_without_exhaustion_has_no_advice() {
    let text = run(&[
        "--profile",
        "windows-2003",
        "--rate",
        "30",
        "--close",
        "passive",
    ]);
    assert!(text.contains("first error        never"), "{text}");
    assert!(text.contains("7200 sockets on the server"), "{text}");
    assert!(!text.contains("To sustain"));
}

#[test]
fn predict_a_nat_says_what_it_refuses_and_which_limit_comes_first() {
    // A cloud NAT with 64 ports per VM, holding each 120 s after the close, at 2/s: it runs
    // out at 32 s, the VM's own 28,232 ports never.
    let text = run(&["--rate", "2", "--nat-ports", "64", "--nat-hold", "120s"]);
    assert!(
        text.contains("runs out at 64 / 2.0 per second = 32.0 s"),
        "{text}"
    );
    assert!(
        text.contains("first limit: the NAT (32.0 s), before the client's own ports (never)"),
        "{text}"
    );
    // Three pods with pools of 20 behind 50 ports: 10 refused at once.
    let json = run(&[
        "--rate",
        "5",
        "--pool",
        "20",
        "--nat-ports",
        "50",
        "--nat-clients",
        "3",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["nat"]["at_once"], 60);
    assert_eq!(v["nat"]["refused_at_once"], 10);
    // Linux's NAT under churn: reuse from pool / R, collisions only when the server closes.
    let json = run(&[
        "--rate",
        "50",
        "--close",
        "passive",
        "--nat-ports",
        "100",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["nat"]["reuse_from_s"], 2.0);
    assert_eq!(v["nat"]["server_timewait_collisions"], true);
    // The NAT's flags need --nat-ports; --lifetime needs a table or a NAT to hold.
    assert!(args(&["--nat-clients", "3"]).is_err());
    assert!(args(&["--nat-hold", "120s"]).is_err());
    let a = args(&["--lifetime", "1s"]).expect("parses");
    let input = input_from_args(&a).expect("input");
    let e = nat_prediction(&a, &input).expect_err("refused");
    assert!(e.to_string().contains("--nat-ports"), "{e}");
}

#[test]
fn predict_json_has_input_prediction_and_advice() {
    let json = run(&[
        "--profile",
        "windows-2003",
        "--rate",
        "30",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let p = &v["prediction"];
    assert_eq!(p["exhausts"], true);
    assert!((p["first_error_s"].as_f64().unwrap_or(0.0) - 132.533).abs() < 0.001);
    assert_eq!(p["timewait_side"], "client");
    assert_eq!(p["exhaustion_error"], "WSAENOBUFS");
    for key in [
        "sustainable_rate",
        "steady_timewait",
        "post_exhaustion_rate",
        "margin",
        "explanation",
    ] {
        assert!(!p[key].is_null(), "{key}");
    }
    assert_eq!(v["input"]["profile"], "windows-2003");
    assert_eq!(v["input"]["port_range"], "1025-5000");
    assert_eq!(v["input"]["tw_reuse"], 0);
    assert_eq!(v["inverse"]["ports_needed"], 7200);
    assert!(v["advice"].as_array().is_some_and(|a| !a.is_empty()));
}
