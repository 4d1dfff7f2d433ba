//! `--format junit`: the output of a passing and a failing run (and of `report` and `suite`)
//! validated against the JUnit schema Jenkins follows (tests/fixtures/junit/junit.xsd) with
//! xmlschema, and read back with junitparser, both from PyPI (.ci/run installs them).

use crate::common::{self, portlab};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const XSD: &str = "tests/fixtures/junit/junit.xsd";

/// True when python3 has xmlschema and junitparser; SKIPPED otherwise (a failure under CI).
fn validators(test: &str) -> bool {
    common::have(
        test,
        "python3 with xmlschema and junitparser (pip install xmlschema junitparser)",
        Command::new("python3").args(["-c", "import xmlschema, junitparser"]),
    )
}

/// Validates `xml` and returns what junitparser read: one object per test suite.
fn parse(dir: &Path, xml: &[u8]) -> Vec<Value> {
    let file = dir.join("out.junit.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("python3")
        .arg("tests/py/junit_check.py")
        .arg(XSD)
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "not valid JUnit XML: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(xml)
    );
    serde_json::from_slice(&out.stdout).expect("checker JSON")
}

fn run_junit(dir: &Path, args: &[&str]) -> Output {
    let mut args = args.to_vec();
    args.extend(["-q", "--format", "junit"]);
    common::run_out(dir, &args)
}

fn case<'a>(suite: &'a Value, name: &str) -> &'a Value {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no test case {name}: {suite}"))
}

#[test]
#[ignore = "needs PyPI xmlschema and junitparser; cargo test -- --include-ignored runs it"]
fn a_passing_and_a_failing_run_are_valid_junit() {
    if !validators("a_passing_and_a_failing_run_are_valid_junit") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 40 loopback connections: no exhaustion; the model's checks advisory (<skipped>).
    let base = common::LOOPBACK_40;
    let mut pass = base.to_vec();
    pass.extend(["--expect-exhaustion", "false", "--min-success-rate", "0.9"]);
    let out = run_junit(&tmp.path().join("pass"), &pass);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let suites = parse(tmp.path(), &out.stdout);
    assert_eq!(suites.len(), 1);
    let s = &suites[0];
    assert_eq!(s["failures"], 0, "{s}");
    assert!(s["tests"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(case(s, "expect.exhaustion")["result"], "passed");
    assert_eq!(case(s, "expect.min_success_rate")["result"], "passed");
    let model = case(s, "exhaustion")["result"].as_str().unwrap();
    assert!(model.starts_with("skipped: advisory"), "{model}");
    assert_eq!(s["properties"]["attempts"], "40", "{s}");
    let dir = std::fs::canonicalize(tmp.path().join("pass")).unwrap();
    let attach = format!("[[ATTACHMENT|{}]]", dir.display());
    assert!(
        s["system_out"].as_str().unwrap().contains(&attach),
        "{s} lacks {attach}"
    );

    // The same run expecting exhaustion fails that check and only that one.
    let mut fail = base.to_vec();
    fail.extend(["--expect-exhaustion", "true", "--min-success-rate", "0.9"]);
    let out = run_junit(&tmp.path().join("fail"), &fail);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let suites = parse(tmp.path(), &out.stdout);
    let s = &suites[0];
    assert_eq!(s["failures"], 1, "{s}");
    assert_eq!(
        case(s, "expect.exhaustion")["result"],
        "failure: expect.exhaustion: expected true, measured false"
    );
    assert_eq!(case(s, "expect.min_success_rate")["result"], "passed");
    // Exit 1 names the failed check on stderr, even with JUnit on stdout.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expect.exhaustion: expected true, measured false"),
        "stderr: {err}"
    );

    // `portlab report --format junit` of both: two suites, the failure kept, exit 1.
    let out = Command::new(portlab())
        .arg("report")
        .arg(tmp.path().join("pass"))
        .arg(tmp.path().join("fail"))
        .args(["--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let suites = parse(tmp.path(), &out.stdout);
    assert_eq!(suites.len(), 2);
    assert_eq!(
        (&suites[0]["failures"], &suites[1]["failures"]),
        (&0.into(), &1.into())
    );
}

#[test]
#[ignore = "needs PyPI xmlschema and junitparser; cargo test -- --include-ignored runs it"]
fn a_saved_runs_model_checks_with_their_sentences() {
    if !validators("a_saved_runs_model_checks_with_their_sentences") {
        return;
    }
    // A real lab run: the model's checks and [expect] exhaustion = false, which failed.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(portlab())
        .args(["report", "tests/fixtures/runs/before", "--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let suites = parse(tmp.path(), &out.stdout);
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/runs/before/summary.json").unwrap(),
    )
    .unwrap();
    let checks = summary["verdict"]["checks"].as_array().unwrap();
    let s = &suites[0];
    assert_eq!(s["tests"].as_u64(), Some(checks.len() as u64), "{s}");
    for c in checks {
        let got = &case(s, c["name"].as_str().unwrap())["result"];
        if c["pass"] == true {
            assert_eq!(got, "passed", "{c}");
        } else {
            let r = got.as_str().unwrap();
            assert!(
                r.starts_with("failure: ") && r.contains("expected"),
                "{c}: {r}"
            );
        }
    }
    assert!(
        case(s, "first_error_s")["classname"]
            == format!("portlab.{}", summary["scenario"].as_str().unwrap())
    );
}

#[test]
#[ignore = "needs PyPI xmlschema and junitparser; cargo test -- --include-ignored runs it"]
fn a_suite_is_one_test_suite_per_scenario() {
    let _turn = common::light();
    if !validators("a_suite_is_one_test_suite_per_scenario") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    // 40 loopback connections: the first expects no exhaustion (holds), the second expects
    // it (fails).
    for (name, want) in [("a-holds", false), ("b-fails", true)] {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\n[load]\nrate = 200\ncount = 40\n[client]\nclose = \"reset\"\n[expect]\nexhaustion = {want}\nmodel = false\n"
            ),
        )
        .unwrap();
    }
    let out = Command::new(portlab())
        .arg("suite")
        .arg(&dir)
        .args(["-q", "--format", "junit", "--out"])
        .arg(tmp.path().join("results"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let suites = parse(tmp.path(), &out.stdout);
    let names: Vec<&str> = suites.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-holds", "b-fails"]);
    assert_eq!(case(&suites[0], "expect.exhaustion")["result"], "passed");
    assert_eq!(
        case(&suites[1], "expect.exhaustion")["result"],
        "failure: expect.exhaustion: expected true, measured false"
    );
    // The same document is kept in the suite's directory.
    let kept = std::fs::read(tmp.path().join("results/suite.junit.xml")).unwrap();
    assert_eq!(parse(tmp.path(), &kept), suites);
}
