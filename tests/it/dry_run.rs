//! `portlab run --dry-run` and `portlab suite --dry-run`: validate, show the plan and the
//! prediction, send nothing, write nothing.

use crate::common::*;
use std::path::Path;
use std::process::Command;

fn manifest(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn run_dry_run_prints_the_plan_and_prediction_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(portlab())
        .args(["run", "--dry-run"])
        .arg(manifest("scenarios/quickstart.toml"))
        .args(["--rate", "50/s", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_exit(&out, 0);
    // The whole output is a scenario: the plan as TOML, the prediction as comments.
    let plan: toml::Value = toml::from_str(&text).expect("dry run output is TOML");
    assert_eq!(plan["name"].as_str(), Some("quickstart"));
    assert_eq!(
        plan["load"]["rate"].as_str(),
        Some("50"),
        "the flag overlays the file"
    );
    assert!(
        text.contains("# Prediction") && text.contains("first error"),
        "{text}"
    );
    assert!(!out_dir.exists(), "--dry-run created {}", out_dir.display());
}

#[test]
fn run_dry_run_sends_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let out = Command::new(portlab())
        .args([
            "run",
            "--dry-run",
            "--target",
            &addr,
            "--count",
            "20",
            "--rate",
            "1000",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["target"]["address"], addr.as_str());
    assert!(v["model"]["prediction"].is_object(), "{v:#}");
    // The process has exited: any connection it made would be in the accept queue.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the dry run connected: {other:?}"),
    }
}

#[test]
fn run_dry_run_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(portlab())
        .args(["run", "--dry-run", "--max-in-flight", "4294967295", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("load.max_in_flight"));
    assert!(!out_dir.exists());
}

#[test]
fn suite_dry_run_checks_every_file() {
    let out = Command::new(portlab())
        .args(["suite", "--dry-run"])
        .arg(manifest("scenarios"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let files = std::fs::read_dir(manifest("scenarios"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("# === ").count(), files, "one plan per file");

    // One bad file among good ones: exit 2, the bad one named, the good ones still shown.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "[load]\nrate = 10\ncount = 5\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "[load]\nrate = 1e-300\n").unwrap();
    std::fs::write(dir.path().join("c.toml"), "[load]\nrate = 20\ncount = 5\n").unwrap();
    let out = Command::new(portlab())
        .args(["suite", "--dry-run"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("b.toml") && err.contains("load.rate"), "{err}");
    assert!(text.contains("a.toml") && text.contains("c.toml"), "{text}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "nothing written"
    );
}

/// `suite --dry-run DIR` refuses what the run refuses (a target address without a port, not
/// an address, empty) and skips what `suite DIR` skips (a command without --allow-exec),
/// saying the same as `suite DIR` does: never "all valid" for a directory the suite refuses.
#[test]
fn suite_dry_run_refuses_and_skips_what_the_suite_does() {
    for (address, why) in [("", "''"), ("1.5", "'1.5'"), ("127.0.0.1", "'127.0.0.1'")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            format!("[load]\nrate = 10\ncount = 5\n[target]\naddress = \"{address}\"\n"),
        )
        .unwrap();
        for dry in [true, false] {
            let out = Command::new(portlab())
                .arg("suite")
                .args(dry.then_some("--dry-run"))
                .arg(dir.path())
                .arg("--out")
                .arg(dir.path().join("out"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "dry {dry}, {address:?}: {err}");
            assert!(
                err.contains("--target") && err.contains(why),
                "dry {dry}, {address:?}: {err}"
            );
        }
    }
    // client.exec without --allow-exec: skipped by both, with the command that runs it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[load]\nrate = 10\ncount = 5\n[client]\nexec = \"true\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.toml"), "[load]\nrate = 10\ncount = 5\n").unwrap();
    let dry = Command::new(portlab())
        .args(["suite", "--dry-run"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&dry.stderr);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{err}");
    assert!(
        err.contains("1 of 1 scenario files valid, 1 skipped"),
        "{err}"
    );
    assert!(
        stdout.contains("a.toml === SKIPPED: client.exec runs `true`")
            && stdout.contains("a.toml --allow-exec"),
        "{stdout}"
    );
}

/// The refusal of a file's client.exec names the flag that gives it (--client-exec).
#[test]
fn a_files_client_exec_refusal_names_client_exec() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "[load]\nrate = 10\ncount = 5\n[client]\nexec = \"true\"\n",
    )
    .unwrap();
    let out = Command::new(portlab())
        .args(["run", "--dry-run"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--client-exec") && !err.contains("--target-exec"),
        "{err}"
    );
}

/// A user who can create no namespace (not root, no user namespaces) is refused by
/// `run --dry-run --lab` and `suite --dry-run` as the run refuses them (exit 2, naming
/// --lab), not told the plan is valid. Made here without touching the host: inside a user
/// namespace of its own (util-linux `unshare -U -r`) whose user.max_user_namespaces is set to
/// 0 (that limit belongs to the namespace), with every capability dropped (`setpriv`).
#[cfg(target_os = "linux")]
#[test]
fn dry_run_refuses_a_lab_this_user_cannot_create() {
    let test = "dry_run_refuses_a_lab";
    if !have(
        test,
        "unshare",
        Command::new("unshare").args(["-U", "-r", "true"]),
    ) || !have(test, "setpriv", Command::new("setpriv").arg("--version"))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[load]\nrate = 10\ncount = 5\n[lab]\nisolate = true\n",
    )
    .unwrap();
    let exe = portlab();
    for args in [
        "run --dry-run --lab --rate 10 --count 5".to_string(),
        format!("suite --dry-run {}", dir.path().display()),
    ] {
        let out = Command::new("unshare")
            .args(["-U", "-r", "sh", "-c"])
            .arg(format!(
                "echo 0 > /proc/sys/user/max_user_namespaces && \
                 exec setpriv --bounding-set=-all --inh-caps=-all -- {} {args}",
                exe.display()
            ))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args}: {err}");
        assert!(
            err.contains("--lab") && err.contains("user namespaces"),
            "{args}: {err}"
        );
    }
}
