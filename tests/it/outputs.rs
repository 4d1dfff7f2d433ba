//! Disks and outputs: a full disk loses no summary, `--out` follows no symlink
//! and reuses no non-empty directory, a set-up failure leaves nothing behind, and `report`
//! renders what it can read.

use crate::common::*;
use std::process::Command;

fn only(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A 16 KiB tmpfs fills up during the run: the timeline stops, summary.json cannot be
/// written, so the summary goes to stdout and the exit code is 3 (ran, results incomplete).
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_puts_the_summary_on_stdout_and_exits_3() {
    let _turn = light();
    let mountable = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !can_run(
        "a_full_disk_puts_the_summary_on_stdout_and_exits_3",
        mountable,
        "cannot mount a tmpfs in a private mount namespace (needs root and unshare)",
    ) {
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let m = mnt.path().display();
    // The mount exists only in unshare's namespace: the listing is taken there too.
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs {m} && {exe} run --rate 500 --duration 3s \
         --interval 10ms -q --format json --out {m}/run; rc=$?; ls -a {m}/run >&2; exit $rc",
        exe = portlab().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("summary.json cannot be written") && stderr.contains("on stdout"),
        "{stderr}"
    );
    let s = parse_summary(&out);
    assert!(n(&s, "attempts") > 0, "the summary on stdout is complete");
    assert!(
        !stderr.lines().any(|l| l.ends_with(".tmp")),
        "no temporary file left: {stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l == "summary.json"),
        "no torn summary.json: {stderr}"
    );
}

/// An unreachable target is a set-up failure (exit 2): nothing is left behind, neither a
/// directory portlab made nor a file in one the user gave.
#[test]
fn a_set_up_failure_leaves_nothing_behind() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let parent = tempfile::tempdir().unwrap();
    let fresh = parent.path().join("fresh");
    let given = parent.path().join("given");
    std::fs::create_dir(&given).unwrap();
    for dir in [&fresh, &given] {
        let out = Command::new(portlab())
            .args(["run", "--target", &target, "--count", "5", "-q", "--out"])
            .arg(dir)
            .output()
            .unwrap();
        assert_exit(&out, 2);
    }
    assert!(!fresh.exists(), "the directory portlab made is gone");
    assert!(only(&given).is_empty(), "the given directory is left empty");
}

/// `--out` with files in it is refused (exit 2) before any traffic; with --force portlab
/// replaces its own files and never writes through a symlink planted in their place.
#[cfg(unix)]
#[test]
fn out_refuses_a_non_empty_directory_and_never_follows_symlinks() {
    let _turn = light();
    let parent = tempfile::tempdir().unwrap();
    let victim = parent.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let out_dir = parent.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for name in ["plan.toml", "summary.json", "timeline.csv"] {
        std::os::unix::fs::symlink(&victim, out_dir.join(name)).unwrap();
    }
    let args = ["--rate", "50", "--count", "10"];
    let refused = Command::new(portlab())
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let mut with_force: Vec<&str> = args.to_vec();
    with_force.push("--force");
    let (out, s) = run_json(&out_dir, &with_force);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(n(&s, "attempts"), 10);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for name in ["plan.toml", "summary.json", "timeline.csv"] {
        assert!(
            !out_dir.join(name).is_symlink(),
            "{name} is a file of its own"
        );
    }
}

/// `portlab report A BAD B`: BAD is named on stderr, A and B are compared, exit 2.
#[test]
fn report_names_an_unreadable_directory_and_renders_the_rest() {
    let parent = tempfile::tempdir().unwrap();
    let a = parent.path().join("a");
    let b = parent.path().join("b");
    // This test is about `report`, not the runs' delivery check (5 starts in 80 ms).
    for d in [&a, &b] {
        run_json_ok(d, &["--rate", "50", "--count", "5"]);
    }
    let bad = parent.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let out = Command::new(portlab())
        .arg("report")
        .args([&a, &bad, &b])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&*bad.display().to_string()), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for the bad one: {stderr}"
    );
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["a", "b", "change"],
        "a comparison of a and b: {stdout}"
    );
}

/// `--out` that is a symlink to a directory, with --force: refused (exit 2, naming the link),
/// the directory it points to untouched.
#[cfg(unix)]
#[test]
fn out_that_is_a_symlink_to_a_directory_is_refused_even_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("summary.json"), "precious").unwrap();
    let link = tmp.path().join("out");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = Command::new(portlab())
        .args([
            "run", "--rate", "50", "--count", "5", "-q", "--force", "--out",
        ])
        .arg(&link)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("symbolic link") && err.contains("--out"),
        "{err}"
    );
    assert_eq!(only(&victim), ["summary.json"]);
    assert_eq!(
        std::fs::read_to_string(victim.join("summary.json")).unwrap(),
        "precious"
    );
}

/// Two runs with the same `--out --force` at once: the second is refused (exit 2, naming
/// the first's pid) and sends nothing; the first's files are its own.
#[cfg(target_os = "linux")]
#[test]
fn a_second_run_on_the_same_out_at_once_is_refused_naming_the_first() {
    let _turn = light();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut first = Command::new(portlab())
        .args([
            "run",
            "--rate",
            "50",
            "--duration",
            "30s",
            "-q",
            "--force",
            "--out",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The timeline is created once the directory is locked and set up.
    let began = std::time::Instant::now();
    while !dir.join("timeline.csv").exists() {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(20),
            "no timeline"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = Command::new(portlab())
        .args([
            "run", "--rate", "50", "--count", "5", "-q", "--force", "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let status = first.wait().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("in use") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    assert_eq!(status.code(), Some(130));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true, "the first run's summary: {s:#}");
}
