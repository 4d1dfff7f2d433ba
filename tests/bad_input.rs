//! Bad input is refused before any traffic, with exit code 2 and a message naming the key
//! or flag and what is accepted.

mod common;
use common::*;
use std::process::Command;

fn refused(args: &[&str], file: Option<&str>, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(portlab());
    cmd.arg("run");
    if let Some(text) = file {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg(path);
    }
    let out = cmd
        .args(args)
        .args(["-q", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {file:?}: {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?} {file:?}: {err:?} lacks {needle:?}"
        );
    }
    assert!(
        !dir.path().join("out").join("timeline.csv").exists(),
        "no traffic"
    );
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
