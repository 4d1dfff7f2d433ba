//! `portlab completions SHELL` and `portlab man`: what an installed binary offers its shell
//! and `man`.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(portlab()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "portlab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd` with `input` on its stdin; its output.
fn piped(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the command");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

const SUBCOMMANDS: [&str; 7] = [
    "run",
    "predict",
    "inspect",
    "report",
    "suite",
    "completions",
    "man",
];

#[test]
fn bash_completion_parses_and_completes_run_flags() {
    let script = stdout_of(&["completions", "bash"]);
    assert!(script.contains("--client-exec"), "no --client-exec");
    assert!(script.contains("--lab-port-range"), "no --lab-port-range");
    let out = piped(Command::new("bash").arg("-n"), &script);
    assert!(
        out.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
    let out = Command::new(portlab())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn man_page_has_a_page_per_subcommand_and_renders() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH portlab 1"), "no .TH");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!(".TH portlab-{sub} 1")),
            "no page for {sub}"
        );
    }
    assert!(
        page.contains("client\\-exec"),
        "run's flags are not documented"
    );
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("SKIPPED rendering with man -l: man is not installed");
        return;
    }
    let out = piped(
        Command::new("man")
            .args(["-l", "-"])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"),
        &page,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("NAME") && text.contains("portlab-run"),
        "{text}"
    );
}
