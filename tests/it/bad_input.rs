//! Bad input is refused before any traffic, with exit code 2 and a message naming the key
//! or flag and what is accepted.

use crate::common::*;
use std::process::Command;

fn refused(args: &[&str], file: Option<&str>, needles: &[&str]) {
    let (dir, _) = refused_with(args, file.map(str::as_bytes), needles);
    assert!(
        !dir.path().join("out").join("timeline.csv").exists(),
        "no traffic"
    );
}

/// Runs `portlab run [bad.toml] ARGS -q --out DIR/out` and checks exit 2, no panic and every
/// needle in stderr; returns the temporary directory and stderr.
fn refused_with(
    args: &[&str],
    file: Option<&[u8]>,
    needles: &[&str],
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(portlab());
    cmd.arg("run");
    if let Some(bytes) = file {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, bytes).unwrap();
        cmd.arg(path);
    }
    let out = cmd
        .args(args)
        .args(["-q", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    }
    (dir, err)
}

#[test]
fn unknown_key_in_a_scenario_file() {
    refused(
        &[],
        Some("[load]\nrate = 10\nduraton = \"5s\"\n"),
        &["unknown field", "duraton", "bad.toml"],
    );
}

#[test]
fn scenario_file_that_is_not_toml() {
    refused(&[], Some("rate = = 3"), &["bad.toml"]);
}

#[test]
fn missing_scenario_file() {
    refused(
        &["/nonexistent/scenario.toml"],
        None,
        &["cannot read scenario file", "/nonexistent/scenario.toml"],
    );
}

#[test]
fn zero_rate_flag() {
    refused(&["--rate", "0"], None, &["--rate", "positive"]);
}

#[test]
fn zero_rate_in_a_file() {
    refused(&[], Some("[load]\nrate = 0\n"), &["rate", "positive"]);
}

#[test]
fn client_threads_out_of_bounds() {
    refused(&["--threads", "0"], None, &["--threads", "at least 1"]);
    refused(
        &[],
        Some("[load]\nthreads = 100000\n"),
        &["load.threads", "at most 256"],
    );
}

#[test]
fn empty_port_range() {
    refused(&["--bind", "range=2000-1000"], None, &["--bind", "LO-HI"]);
}

#[test]
fn pooling_with_a_server_that_closes_first() {
    refused(
        &["--pool", "4", "--payload", "http", "--close", "passive"],
        None,
        &["client.close", "--close", "pooling"],
    );
}

#[test]
fn close_mode_that_does_not_exist() {
    refused(&["--close", "graceful"], None, &["active, passive, reset"]);
}

#[test]
fn listen_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &["--listen", &addr],
        None,
        &["cannot listen", &addr, "--listen"],
    );
}

#[test]
fn results_directory_that_cannot_be_created() {
    let out = Command::new(portlab())
        .args(["run", "-q", "--out", "/proc/portlab-cannot-write-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
}

// Inputs that once crashed or misbehaved: each refused before any traffic, exit 2, the
// message naming the key (or flag) and the accepted range, and no results directory left
// behind.

/// As `refused`, and no results directory at all.
fn refused_before_anything(args: &[&str], file: Option<&[u8]>, needles: &[&str]) {
    let (dir, _) = refused_with(args, file, needles);
    let out_dir = dir.path().join("out");
    assert!(
        !out_dir.exists(),
        "{args:?}: a results directory was created"
    );
}

#[test]
fn duration_1e300_is_refused_not_a_panic() {
    refused_before_anything(
        &["--duration", "1e300", "--count", "1"],
        None,
        &["--duration", "1e300", "at most"],
    );
    refused_before_anything(
        &[],
        Some(b"[load]\nduration = 1e300\ncount = 1\n"),
        &["duration", "at most"],
    );
    refused_before_anything(
        &["--duration", "30d"],
        None,
        &["load.duration", "--duration", "at most 7days"],
    );
}

#[test]
fn rate_1e_minus_300_is_refused_not_a_panic() {
    refused_before_anything(
        &["--rate", "1e-300", "--count", "2"],
        None,
        &[
            "load.rate",
            "--rate",
            "1e-300",
            "accepted 0.001 to 10000000",
        ],
    );
}

#[test]
fn rate_5e_minus_324_is_refused_not_a_pacer_panic() {
    refused_before_anything(
        &["--rate", "5e-324", "--duration", "1s"],
        None,
        &["load.rate", "--rate", "accepted 0.001"],
    );
}

#[test]
fn interval_1e19_is_refused_not_an_instant_overflow() {
    refused_before_anything(
        &["--interval", "1e19", "--duration", "1s", "--rate", "10"],
        None,
        &["--interval", "at most"],
    );
    refused_before_anything(
        &["--interval", "2h", "--duration", "1s"],
        None,
        &["load.interval", "--interval", "at most 1h"],
    );
}

#[test]
fn max_in_flight_concurrency_and_pool_4294967295_are_refused_not_an_abort() {
    for args in [
        &["--max-in-flight", "4294967295"][..],
        &["--concurrency", "4294967295", "--rate", "max"],
        &["--pool", "4294967295", "--payload", "tcp"],
    ] {
        refused_before_anything(args, None, &[args[0], "4294967295", "accepted", "1048576"]);
    }
}

#[test]
fn lab_max_tw_buckets_9007199254740992_is_refused_by_name() {
    refused_before_anything(
        &[],
        Some(b"[lab]\nisolate = true\nmax_tw_buckets = 9007199254740992\n"),
        &["lab.max_tw_buckets", "--lab-max-tw-buckets", "0-2147483647"],
    );
}

#[test]
fn source_that_is_not_local_is_refused_before_traffic() {
    refused_before_anything(
        &["--source", "10.255.255.1"],
        None,
        &[
            "client.source",
            "--source",
            "10.255.255.1",
            "not an address of this host",
        ],
    );
}

#[test]
fn destinations_8_from_port_65535_say_which_range_overflowed() {
    refused_before_anything(
        &["--destinations", "8", "--listen", "127.0.0.1:65535"],
        None,
        &["target.destinations", "--listen", "65535", "65542", "65528"],
    );
}

#[test]
fn negative_accept_delay_reaches_the_keys_validation() {
    refused_before_anything(
        &["--accept-delay", "-1s"],
        None,
        &["--accept-delay", "'-1s' is negative"],
    );
}

#[test]
fn non_utf8_file_names_the_byte_offset() {
    refused_before_anything(
        &[],
        Some(b"[load]\nrate = 10\n# caf\xe9\n"),
        &["bad.toml", "not UTF-8", "0xe9", "byte offset 22"],
    );
}

#[test]
fn lab_time_wait_as_a_bare_number_is_seconds() {
    // "240" reaches the lab's own arithmetic (240 s / 1 = 240000 ms is past the kernel's
    // 60000 ms), which it could not before (a bare number was not a duration there).
    refused_before_anything(
        &[],
        Some(b"[lab]\nisolate = true\ntime_wait = \"240\"\n"),
        &[
            "lab.time_scale",
            "time_wait 4m",
            "raise time_scale to at least 4",
        ],
    );
}

#[test]
fn report_on_a_summary_holding_1e300_does_not_panic() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/runs/before/summary.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn huge(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => *v = serde_json::json!(1e300),
            serde_json::Value::Array(a) => a.iter_mut().for_each(huge),
            serde_json::Value::Object(o) => o.values_mut().for_each(huge),
            _ => {}
        }
    }
    huge(&mut v);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summary.json"), v.to_string()).unwrap();
    for format in ["text", "json", "csv", "markdown"] {
        let out = Command::new(portlab())
            .args(["report", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Floats of 1e300 are valid JSON numbers: the report renders them (exit 0 or 1).
        assert!(
            matches!(out.status.code(), Some(0..=1)) && !err.contains("panicked"),
            "{format}: exit {:?}: {err}",
            out.status.code()
        );
    }
}

/// `-1` given to any flag that takes a value is either accepted or refused naming that
/// flag, never "unexpected argument '-1'" (which names none): every value-taking flag of
/// `predict`, `inspect` and `run --dry-run` (nothing is sent), read from the CLI definition.
#[test]
fn a_negative_number_for_any_flag_is_refused_naming_the_flag() {
    use clap::CommandFactory;
    let cli = portlab::cmd::cli::Cli::command();
    let mut unnamed = Vec::new();
    for (sub, extra) in [
        ("predict", &[][..]),
        ("inspect", &[][..]),
        ("run", &["--dry-run"][..]),
    ] {
        let cmd = cli.find_subcommand(sub).expect(sub);
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if !arg.get_action().takes_values() {
                continue;
            }
            let flag = format!("--{long}");
            let out = std::process::Command::new(portlab())
                .arg(sub)
                .args(extra)
                .args([&flag, "-1"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // A --lab-* flag without --lab is refused naming its key (lab.port_range).
            let key = long
                .strip_prefix("lab-")
                .map(|k| format!("lab.{}", k.replace('-', "_")));
            let named = err.contains(&flag) || key.is_some_and(|k| err.contains(&k));
            if !out.status.success() && !named {
                unnamed.push(format!(
                    "{sub} {flag} -1: {}",
                    err.lines().next().unwrap_or("")
                ));
            }
        }
    }
    assert!(unnamed.is_empty(), "{unnamed:#?}");
}
