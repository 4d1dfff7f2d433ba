//! Messages: each cause of an error printed once, and a reader that went away
//! (`portlab ... | head`) is no error for any subcommand.

use crate::common::*;
use std::process::Command;

#[test]
fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = Command::new(portlab())
        .arg("run")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let cause = std::io::Error::from_raw_os_error(libc_enoent()).to_string();
    assert_eq!(err.matches(&cause).count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// ENOENT as this OS numbers it.
fn libc_enoent() -> i32 {
    std::fs::File::open("/nonexistent/portlab")
        .unwrap_err()
        .raw_os_error()
        .unwrap()
}

/// Runs portlab ARGS with stdout a pipe nobody reads (its read end closed before the start),
/// so the first write fails with EPIPE.
#[cfg(unix)]
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two descriptors we pass.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned from here on.
    let (reader, writer) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    Command::new(portlab())
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_is_no_error_for_any_subcommand() {
    let _turn = light();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let run_dir = run_dir.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (
            vec![
                "run", "--rate", "50", "--count", "5", "-q", "--out", run_dir,
            ],
            0,
        ),
        (vec!["report", run_dir], 0),
        (vec!["report", run_dir, run_dir, "--format", "markdown"], 0),
        (
            vec!["predict", "--profile", "windows-2003", "--rate", "30"],
            0,
        ),
        (vec!["inspect"], 0),
    ];
    for (args, code) in cases {
        let out = with_closed_stdout(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
