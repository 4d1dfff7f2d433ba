//! The exit codes a pipeline sees, each produced for real (docs/reference/exit-codes.md):
//! 0 passed, 1 a check failed (every failed check named on stderr, whatever stdout holds),
//! 2 bad input before any traffic; 130 (interrupted) is asserted in tests/it/lifecycle.rs. And
//! `--quiet`: stderr holds nothing for a passing run, and only the failed checks for a
//! failing one.

use crate::common::{self, portlab, run_out as run, LOOPBACK_40 as SMALL};
use std::process::Command;

#[test]
fn zero_when_every_check_holds_and_quiet_stays_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = SMALL.to_vec();
    args.extend(["--expect-exhaustion", "false", "-q"]);
    let out = run(&tmp.path().join("r"), &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "-q: no progress, no notes"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: PASS"));
}

#[test]
fn one_names_every_failed_check_on_stderr_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    for format in ["text", "json", "csv", "markdown", "junit"] {
        let mut args = SMALL.to_vec();
        // Two checks that cannot hold on 40 loopback connections, one that does.
        args.extend([
            "--expect-exhaustion",
            "true",
            "--expect-error",
            "ECONNRESET",
            "--min-success-rate",
            "0.5",
            "-q",
            "--format",
            format,
        ]);
        let out = run(&tmp.path().join(format), &args);
        assert_eq!(out.status.code(), Some(1), "{format}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "{format}: a heading and the two checks:\n{err}"
        );
        assert!(lines[0].contains("FAILED 2 of"), "{format}: {err}");
        assert_eq!(
            lines[1].trim(),
            "expect.exhaustion: expected true, measured false",
            "{format}"
        );
        assert!(
            lines[2]
                .trim()
                .starts_with("expect.errors.ECONNRESET: expected >= 1, measured 0"),
            "{format}: {err}"
        );
    }
}

#[test]
fn two_for_bad_input_before_any_traffic() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--min-margin", "0"),
        ("--min-success-rate", "1.5"),
        ("--max-connect-p99-ms", "0"),
    ] {
        let dir = tmp.path().join(flag.trim_start_matches('-'));
        let mut args = SMALL.to_vec();
        args.extend([flag, value, "-q"]);
        let out = run(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(flag), "{err}");
        assert!(!dir.join("summary.json").exists(), "nothing ran");
    }
    // A suite with one bad file: refused before any scenario runs, nothing written.
    let scenarios = tmp.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(scenarios.join("bad.toml"), "[load]\nrate = 0\n").unwrap();
    let out = Command::new(portlab())
        .arg("suite")
        .arg(&scenarios)
        .arg("--out")
        .arg(tmp.path().join("suite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
    assert!(!tmp.path().join("suite").exists());
    // `report` of something that is not a run.
    let out = Command::new(portlab())
        .args(["report", "--format", "junit"])
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `--quiet` prints nothing but errors: a warning the run would print (a server listening
/// beyond loopback) shows without it and not with it.
#[test]
fn quiet_silences_warnings_too() {
    let tmp = tempfile::tempdir().unwrap();
    for (quiet, dir) in [(false, "loud"), (true, "quiet")] {
        let mut args = SMALL.to_vec();
        args.extend(["--listen", "0.0.0.0:0"]);
        if quiet {
            args.push("-q");
        }
        let out = run(&tmp.path().join(dir), &args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("warning: the embedded server listens on 0.0.0.0"),
            !quiet,
            "quiet {quiet}: {err}"
        );
        if quiet {
            assert_eq!(err, "", "-q: errors only");
        }
    }
}

/// A stdout that fails once the run is over (`> /dev/full`) loses nothing the run measured:
/// exit 3, not 2 (which says nothing was sent), the files intact, and the error names stdout.
#[cfg(target_os = "linux")]
#[test]
fn three_when_stdout_fails_after_a_complete_run_with_the_files_intact() {
    let _turn = common::light();
    for format in ["text", "json"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = Command::new(portlab())
            .arg("run")
            .args(SMALL)
            .args(["-q", "--format", format, "--out"])
            .arg(&dir)
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{format}: {err}");
        assert!(
            err.contains("stdout") && err.contains("No space left"),
            "{format}: {err}"
        );
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        assert!(s["attempts"].as_u64().unwrap() > 0, "{s:#}");
        assert!(dir.join("timeline.csv").exists());
    }
}
