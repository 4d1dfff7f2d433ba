//! The README's first screen and its quick-start sample, what a newcomer reads first: the two
//! commands a newcomer types, no links out of the repository, and a sample output that still
//! has the shape of the current output.

use crate::common::*;
use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// A line with every number (digits with their separators) replaced by N and runs of blanks
/// by one space: what must stay when the measurements change.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.trim().chars() {
        if c.is_ascii_digit() || (in_number && matches!(c, '.' | ',')) {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn first_screen_gives_exactly_the_two_commands() {
    let text = readme();
    let first_block: Vec<&str> = text
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block")
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        first_block,
        ["cargo run --release -- run quickstart", "cargo test"]
    );
    // ... on the first screen: within the first 25 lines.
    let at = text
        .lines()
        .position(|l| l == "cargo test")
        .unwrap_or(usize::MAX);
    assert!(
        text.lines().take(25).any(|l| l.starts_with("cargo test")),
        "cargo test at line {at}"
    );
}

#[test]
fn no_link_leaves_the_repository() {
    let text = readme();
    for (i, line) in text.lines().enumerate() {
        assert!(
            !line.contains("../"),
            "README.md:{}: a path out of the repository: {line}",
            i + 1
        );
        for target in line.split("](").skip(1) {
            let target = target.split(')').next().unwrap_or("");
            assert!(
                !target.contains("://"),
                "README.md:{}: a link out of the repository: {target}",
                i + 1
            );
            if !target.starts_with('#') {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(target);
                assert!(
                    path.exists(),
                    "README.md:{}: {target} does not exist",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn quickstart_sample_has_the_current_output_shape() {
    let _turn = heavy();
    if !namespaces_available("quickstart_sample_has_the_current_output_shape") {
        return;
    }
    let text = readme();
    let sample: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("portlab run \"quickstart\""))
        .take_while(|l| !l.starts_with("```"))
        .map(shape)
        .collect();
    assert!(sample.len() > 10, "no quick-start sample in README.md");

    // Run as the README says, from a fresh directory (the default results path).
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(portlab())
        .args(["run", "quickstart"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let now: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(shape)
        .collect();
    assert_eq!(
        sample, now,
        "README.md's quick-start sample no longer has the output's shape: paste a real run"
    );
}
