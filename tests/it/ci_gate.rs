//! The client-regression gate of docs/ci.md, with a real pair of clients: the
//! same Java program (scenarios/clients/Client.java, HttpURLConnection) with the JDK's
//! keep-alive passes examples/ci/gate.toml, and with -Dhttp.keepAlive=false it fails, the
//! message on stderr naming why: the baseline's pooling (the headroom, [expect] min_margin,
//! holds: that client sends `Connection: close`, so the server closes first and holds the
//! TIME_WAIT). Also: the exit codes a pipeline sees (0, 1, 2) for the same gate.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

const GATE: &str = "examples/ci/gate.toml";

fn gate(dir: &Path, client: &str, extra: &[&str]) -> Output {
    Command::new(portlab())
        .args(["run", GATE, "--allow-exec", "--client-exec", client])
        .args(extra)
        .args(["-q", "--format", "json", "--out"])
        .arg(dir)
        .output()
        .expect("running portlab")
}

fn java(test: &str) -> bool {
    have(test, "java", Command::new("java").arg("-version"))
}

fn failed_checks(s: &serde_json::Value) -> Vec<String> {
    s["verdict"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false && c["advisory"] != true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs a JDK (java); cargo test -- --include-ignored runs it"]
fn keep_alive_passes_the_gate_and_a_connection_per_request_fails_it() {
    let _turn = heavy();
    let test = "client_gate";
    if !namespaces_available(test) || !java(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let out = gate(
        &good,
        "COUNT=200 java scenarios/clients/Client.java http",
        &[],
    );
    let s = parse_summary(&out);
    assert_eq!(out.status.code(), Some(0), "{:#}", s["verdict"]);
    assert_eq!(s["client_exec"]["pooled"], true);
    assert!(
        s["verdict"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "expect.min_margin" && c["pass"] == true),
        "{:#}",
        s["verdict"]
    );

    // The same client with keep-alive off, against the good run as the baseline.
    let baseline = good.join("summary.json");
    let out = gate(
        &tmp.path().join("bad"),
        "COUNT=200 java -Dhttp.keepAlive=false scenarios/clients/Client.java http",
        &["--baseline", baseline.to_str().unwrap()],
    );
    let s = parse_summary(&out);
    assert_eq!(out.status.code(), Some(1), "{:#}", s["verdict"]);
    assert_eq!(s["client_exec"]["pooled"], false);
    // Without keep-alive the JDK sends `Connection: close`, so the embedded server closes
    // first, as nginx would (RFC 9112 9.6): TIME_WAIT is the server's and the headroom
    // holds (`expect.min_margin` passes). The baseline's pooling check is what catches the
    // regression.
    assert_eq!(s["client_exec"]["close_side"], "server");
    assert_eq!(s["server"]["closed_on_request"], 200, "{:#}", s["server"]);
    let failed = failed_checks(&s);
    assert_eq!(failed, ["baseline.client_pooled"], "{:#}", s["verdict"]);
    // stderr says which, in words, though stdout is JSON and -q was given.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("baseline.client_pooled: expected true, measured false")
            && err.contains("stopped reusing connections"),
        "stderr: {err}"
    );

    // Bad input to the gate is exit 2 before anything runs, naming the flag.
    let out = gate(
        &tmp.path().join("bad-input"),
        "COUNT=200 java scenarios/clients/Client.java http",
        &["--min-margin", "0"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--min-margin"), "{err}");
    assert!(!tmp.path().join("bad-input").join("summary.json").exists());
}
