//! Consent and exposure: a command from a file runs only with --allow-exec and is
//! printed before it runs; a server beyond loopback is warned about and measured right; a
//! target off this machine gets a notice.

use crate::common::*;
use std::process::Command;

fn scenario_with_exec(dir: &std::path::Path, command: &str) -> std::path::PathBuf {
    let file = dir.join("exec.toml");
    std::fs::write(
        &file,
        format!(
            "[load]\nrate = 10\ncount = 5\n[target]\naddress = \"127.0.0.1:9\"\nexec = \"{command}\"\nready_timeout = \"2s\"\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_command_from_a_file_runs_only_with_allow_exec() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let file = scenario_with_exec(tmp.path(), &format!("touch {}", marker.display()));
    let out_dir = tmp.path().join("out");
    let refused = Command::new(portlab())
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--allow-exec") && err.contains("target.exec") && err.contains("touch"),
        "{err}"
    );
    assert!(!marker.exists(), "the command did not run");
    assert!(!out_dir.exists(), "nothing was created");

    // The suite skips the same file, naming the command that runs it, and runs nothing.
    let suite_out = tmp.path().join("suite");
    let skipped = Command::new(portlab())
        .arg("suite")
        .arg(tmp.path())
        .arg("--out")
        .arg(&suite_out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&skipped.stderr);
    let stdout = String::from_utf8_lossy(&skipped.stdout);
    assert_eq!(skipped.status.code(), Some(0), "{err}");
    assert!(
        stdout.contains("SKIPPED") && stdout.contains("--allow-exec") && stdout.contains("touch"),
        "{stdout}"
    );
    assert!(!marker.exists(), "the command did not run");

    // With consent it runs, printed first; it exits at once without serving: exit 2.
    let allowed = Command::new(portlab())
        .arg("run")
        .arg(&file)
        .arg("--allow-exec")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(marker.exists(), "the command ran: {err}");
    assert!(
        err.contains(&format!(
            "starting target.exec: `touch {}`",
            marker.display()
        )),
        "{err}"
    );
    assert_eq!(allowed.status.code(), Some(2), "{err}");
}

#[test]
fn a_server_on_every_interface_is_warned_about_and_its_time_wait_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, s) = run_json(
        tmp.path(),
        &["--listen", "0.0.0.0:0", "--rate", "100", "--count", "50"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the embedded server listens on 0.0.0.0:")
            && !err.contains("0.0.0.0:0,"),
        "names the port it got: {err}"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            s["timewait"]["client_max"].as_u64(),
            Some(50),
            "every active close counted: {s:#}"
        );
    }
}

#[test]
fn a_target_off_this_machine_gets_a_notice() {
    if !namespaces_available("a_target_off_this_machine_gets_a_notice") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // TEST-NET-1 (RFC 5737): never a local address; the probe fails, exit 2, after the notice.
    // In a network namespace of the test's own (lo up, no route out), so no packet leaves.
    let script = format!(
        "ip link set lo up && exec {} run --target 192.0.2.1:9 --connect-timeout 200ms \
         --count 1 --out {}",
        portlab().display(),
        tmp.path().join("out").display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("notice: target 192.0.2.1:9") && l.contains("leaves")),
        "{err}"
    );
    // Loopback gets none.
    let tmp2 = tempfile::tempdir().unwrap();
    let (out, _) = run_json(tmp2.path(), &["--rate", "10", "--count", "2"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("notice:"));
}
