//! Signals and children (issue 12): a SIGINT or SIGTERM at any moment leaves a valid
//! summary.json whose counts are the timeline's; a second signal ends the drain at once; a
//! `--target-exec` server dies with portlab, `kill -9` included.
#![cfg(unix)]

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(portlab())
        .arg("run")
        .args(args)
        .args(["-q", "--format", "json", "--out"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting portlab")
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Waits until `cond` holds (the event a test synchronises on), at most 20 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let began = Instant::now();
    while !cond() {
        assert!(began.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The sum of one timeline.csv column.
fn timeline_sum(dir: &Path, column: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join("timeline.csv")).expect("timeline.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let i = header
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    lines
        .map(|l| l.split(',').nth(i).unwrap().parse::<u64>().unwrap())
        .sum()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if began.elapsed() > within {
            let _ = child.kill();
            panic!("portlab did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut s);
    s
}

/// A signal 0, 1, 5, 10, 50 and 200 ms after the results directory appears (the earliest
/// moment a test can see; the handlers are installed before it exists) leaves exit 130 and a
/// summary.json whose counts equal the timeline's.
#[test]
fn signal_sweep_always_leaves_a_summary_equal_to_the_timeline() {
    let delays = [0u64, 1, 5, 10, 50, 200];
    for (i, delay) in delays.iter().enumerate() {
        let sig = if i % 2 == 0 {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("run");
        let mut child = spawn(
            &dir,
            &["--rate", "500", "--duration", "30s", "--interval", "20ms"],
        );
        wait_for("the results directory", || dir.exists());
        std::thread::sleep(Duration::from_millis(*delay));
        signal(&child, sig);
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let err = stderr_of(&mut child);
        assert_eq!(
            status.code(),
            Some(130),
            "signal {sig} at {delay} ms: {err}"
        );
        let text = std::fs::read_to_string(dir.join("summary.json"))
            .unwrap_or_else(|e| panic!("signal at {delay} ms: no summary.json ({e}): {err}"));
        let s: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(s["interrupted"], true, "at {delay} ms");
        for (key, column) in [
            ("attempts", "attempts"),
            ("connected", "connected"),
            ("completed", "completed"),
            ("dropped", "dropped"),
            ("failed", "errors"),
        ] {
            assert_eq!(
                n(&s, key),
                timeline_sum(&dir, column),
                "signal at {delay} ms: summary {key} != timeline {column}"
            );
        }
    }
}

/// A second Ctrl-C during a 60 s drain ends it at once, and everything is still written.
#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    // Each connection waits for 1000 bytes of a 3-byte reply from a server that closes
    // after the client, so every one stays in flight until the 60 s exchange timeout.
    let mut child = spawn(
        &dir,
        &[
            "--rate",
            "50",
            "--duration",
            "60s",
            "--payload",
            "tcp",
            "--expect",
            "1000",
            "--server-close",
            "after-client",
            "--exchange-timeout",
            "60s",
            "--drain-timeout",
            "60s",
            "--interval",
            "100ms",
        ],
    );
    let timeline = dir.join("timeline.csv");
    wait_for("two timeline rows", || {
        std::fs::read_to_string(&timeline).is_ok_and(|t| t.lines().count() >= 3)
    });
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining after the first signal"
    );
    signal(&child, libc::SIGINT);
    let second = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let err = stderr_of(&mut child);
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "the drain ran on for {:?} after the second signal",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(n(&s, "aborted") > 0, "connections were abandoned: {s:#}");
    assert_eq!(n(&s, "attempts"), timeline_sum(&dir, "attempts"));
}

/// The state letter of a process in /proc, None when it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) S ...: the state follows the last ')'.
    stat.rsplit(')').next()?.trim().chars().next()
}

/// `kill -9` of portlab kills the --target-exec server it started (PR_SET_PDEATHSIG).
#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_portlab_kills_the_target_exec_server() {
    let python = Command::new("python3").arg("--version").output();
    if !can_run(
        "kill_9_of_portlab_kills_the_target_exec_server",
        python.is_ok_and(|o| o.status.success()),
        "python3 is not installed (the test's server)",
    ) {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    let target = format!("127.0.0.1:{port}");
    let server = format!("python3 -m http.server {port} --bind 127.0.0.1");
    let mut child = spawn(
        &dir,
        &[
            "--target",
            &target,
            "--target-exec",
            &server,
            "--rate",
            "10",
            "--duration",
            "60s",
            "--interval",
            "100ms",
        ],
    );
    // Traffic flows once the timeline has a row: the server is up by then.
    let timeline = dir.join("timeline.csv");
    wait_for("a timeline row", || {
        std::fs::read_to_string(&timeline).is_ok_and(|t| t.lines().count() >= 2)
    });
    // Children of every thread (a task's file lists only the ones that thread forked).
    let children: String = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .collect::<Vec<_>>()
        .join(" ");
    let server_pid: u32 = children
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("portlab has no child process"))
        .parse()
        .unwrap();
    assert!(
        matches!(proc_state(server_pid), Some(s) if s != 'Z'),
        "the server runs"
    );
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    wait_for("the server to die with portlab", || {
        matches!(proc_state(server_pid), None | Some('Z'))
    });
    // Nothing listens there any more. A connect may still succeed on its own: when the
    // kernel picks the target's port as the source port (it is in the ephemeral range), the
    // socket connects to itself (TCP simultaneous open); that is no listener.
    let listener = std::net::TcpStream::connect(&target)
        .ok()
        .filter(|s| s.local_addr().ok() != s.peer_addr().ok());
    assert!(listener.is_none(), "nothing listens on {target} any more");
}
