//! The built-in catalog, used as a newcomer would: from a directory that is
//! not a checkout (a fresh temporary directory as the working directory).

use crate::common::*;
use std::path::Path;
use std::process::Command;

/// `portlab ARGS` with `cwd` as its working directory.
fn portlab_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(portlab())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running portlab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn scenarios_lists_every_file_with_its_story() {
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["scenarios"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let line = list
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("{name} not listed:\n{list}"));
            assert!(line.len() > name.len() + 20, "no story for {name}: {line}");
        }
    }
}

#[test]
fn show_prints_the_file_byte_for_byte() {
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["scenarios", "show", "quickstart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let file =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml"))
            .unwrap();
    assert_eq!(out.stdout, file);

    let out = portlab_in(cwd.path(), &["scenarios", "show", "quikstart"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("quikstart") && err.contains("quickstart"),
        "{err}"
    );
}

#[test]
fn an_unknown_name_is_refused_with_the_names() {
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["run", "quikstart"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("quikstart"), "{err}");
    assert!(
        err.contains("quickstart") && err.contains("rst-close"),
        "{err}"
    );
    assert!(!cwd.path().join("results").exists(), "nothing may run");
}

#[test]
fn a_file_that_exists_wins_over_the_catalog() {
    let cwd = tempfile::tempdir().unwrap();
    // A file called "quickstart" that is not TOML: if it is read, parsing it fails and says so.
    std::fs::write(cwd.path().join("quickstart"), "not = [toml").unwrap();
    let out = portlab_in(cwd.path(), &["run", "quickstart"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("quickstart"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_command_that_needs_a_client_file_gets_a_copy() {
    // No --allow-exec: refused before anything runs, and the refusal quotes the command,
    // whose client path now points at an unpacked copy, not at ./scenarios/clients.
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["run", "java-bindexception"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("Client.java"), "{err}");
    assert!(!err.contains(" scenarios/clients/"), "{err}");
}

#[test]
fn quickstart_runs_from_any_directory_and_says_where_it_wrote() {
    let _turn = heavy();
    if !namespaces_available("quickstart_runs_from_any_directory") {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["run", "quickstart", "-q"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .unwrap_or_else(|| panic!("no results line:\n{stdout}"));
    let dir = cwd.path().join(line.trim_end_matches('/'));
    assert!(dir.join("summary.json").is_file(), "{}", dir.display());
    assert!(line.starts_with("results/quickstart-"), "{line}");
}

#[test]
fn suite_without_a_scenarios_directory_takes_the_catalog() {
    // The catalog names commands (java-bindexception): without --allow-exec the suite skips
    // them, naming the command that runs each; the dry run shows it without running anything,
    // proof that it read the built-in files.
    let cwd = tempfile::tempdir().unwrap();
    let out = portlab_in(cwd.path(), &["suite", "--dry-run"]);
    let err = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        stdout.contains("java-bindexception === SKIPPED")
            && stdout.contains("portlab run java-bindexception --allow-exec"),
        "{stdout}"
    );
    assert!(
        err.contains("skipped") && err.contains("--allow-exec"),
        "{err}"
    );
    assert!(!cwd.path().join("results").exists(), "nothing may run");
}
