//! Signals and children (no measurement lost): a SIGINT or SIGTERM at any moment leaves a valid
//! summary.json whose counts are the timeline's; a second signal ends the drain at once; a
//! `--target-exec` server dies with portlab, `kill -9` included.
#![cfg(unix)]

use crate::common::*;
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
    let _turn = light();
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
    let _turn = light();
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
    let _turn = light();
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
    // Nothing listens there any more. portlab's child is the init of the command's PID
    // namespace; the kernel kills the server inside once that init is gone, a moment later,
    // so this waits for the listener to close. A connect may still succeed on its own: when
    // the kernel picks the target's port as the source port (it is in the ephemeral range),
    // the socket connects to itself (TCP simultaneous open); that is no listener.
    wait_for("nothing to listen on the target any more", || {
        std::net::TcpStream::connect(&target)
            .ok()
            .filter(|s| s.local_addr().ok() != s.peer_addr().ok())
            .is_none()
    });
}

/// Processes whose command line contains `marker`, with their network namespace.
#[cfg(target_os = "linux")]
fn processes_with(marker: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
            // portlab's own argv holds the marker too: only the commands' processes count.
            if !argv.contains(marker) || argv.contains("portlab") || proc_state(pid) == Some('Z') {
                return None;
            }
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            Some((pid, ns.display().to_string()))
        })
        .collect()
}

/// Processes (any) in the network namespace `ns` ("net:[N]").
#[cfg(target_os = "linux")]
fn processes_in_netns(ns: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (link.display().to_string() == ns && proc_state(pid) != Some('Z')).then_some(pid)
        })
        .collect()
}

/// Starts a lab run with `args`, waits until `count` processes carry `marker`, `kill -9`s
/// portlab, and asserts that within 5 s none of them is left, nor any process of the lab's
/// network namespace. `kill -9` gives portlab no chance to stop anything: only the kernel
/// can end them (PR_SET_PDEATHSIG, and the PID namespace whose init dies).
#[cfg(target_os = "linux")]
fn kill_9_leaves_nothing(test: &str, marker: &str, count: usize, args: &[&str]) {
    let _turn = heavy();
    if !namespaces_available(test) {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    let mut all = vec!["--lab", "--rate", "10", "--duration", "60s"];
    all.extend(args);
    let child = spawn(&dir, &all);
    // A failed wait must not leave portlab running.
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Guard(child);
    wait_for(&format!("{count} processes with {marker}"), || {
        processes_with(marker).len() >= count
    });
    let before = processes_with(marker);
    // The lab's network namespaces: those of the commands that are not this test's.
    let host_ns = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string();
    let mut lab_ns: Vec<String> = before.iter().map(|(_, ns)| ns.clone()).collect();
    lab_ns.retain(|ns| *ns != host_ns);
    lab_ns.dedup();
    assert!(
        !lab_ns.is_empty(),
        "{test}: the commands ran outside the lab: {before:?}"
    );
    signal(&child.0, libc::SIGKILL);
    child.0.wait().unwrap();
    // The kernel's SIGKILLs land within milliseconds (a few ms seen); 5 s is for a machine
    // under load.
    let began = Instant::now();
    loop {
        let left = processes_with(marker);
        let in_lab_ns: Vec<u32> = lab_ns
            .iter()
            .flat_map(|ns| processes_in_netns(ns))
            .collect();
        if left.is_empty() && in_lab_ns.is_empty() {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{test}: 5 s after kill -9 of portlab, still running: {left:?} (before: {before:?}); \
             in the lab's namespace: {in_lab_ns:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_portlab_ends_a_client_shells_children() {
    kill_9_leaves_nothing(
        "kill_9_client_shell",
        "30.123",
        2,
        &["--client-exec", "sleep 30.123; true"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_portlab_ends_a_client_pipeline() {
    kill_9_leaves_nothing(
        "kill_9_client_pipeline",
        "30.124",
        2,
        &["--client-exec", "sleep 30.124 | cat; : 30.124"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_portlab_ends_a_client_daemon_that_double_forks_and_leaves_the_group() {
    // setsid: a new session and process group, which a group kill does not reach; the
    // inner sh forks the sleep and exits, so the sleep is orphaned (a daemon's double fork).
    kill_9_leaves_nothing(
        "kill_9_client_daemon",
        "30.125",
        3,
        &[
            "--client-exec",
            "setsid sh -c 'sleep 30.125 &'; sleep 30.1251",
        ],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn kill_9_of_portlab_ends_a_forking_target_and_its_daemon() {
    let test = "kill_9_target_daemon";
    if !have(test, "python3", Command::new("python3").arg("--version")) {
        return;
    }
    // A server that first starts a daemon of its own (setsid, orphaned), then serves.
    // The marker is in both processes' argv: the daemon's, and the server's (its directory).
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www-30.126");
    std::fs::create_dir(&www).unwrap();
    let script = tmp.path().join("server.sh");
    std::fs::write(
        &script,
        format!(
            "setsid sh -c 'sleep 30.126 &'\n\
             exec python3 -m http.server 18123 --bind 127.0.0.1 --directory {}\n",
            www.display()
        ),
    )
    .unwrap();
    let server = format!("sh {}", script.display());
    kill_9_leaves_nothing(
        test,
        "30.126",
        2,
        &["--target", "127.0.0.1:18123", "--target-exec", &server],
    );
}

/// A SIGINT or SIGTERM that reaches portlab before its first instruction (sent while the
/// kernel execs it or the loader relocates it: the first ~1.5 ms, longer on a busy machine)
/// never kills the run: portlab blocks both signals from its first instruction (a
/// constructor, before main) and releases them once its handler is in place, so the signal
/// is counted: exit 130 with a summary.json. The moment is made exact here by raising the
/// signal in the child just before exec with the signal blocked, which leaves it pending
/// exactly as one that lands during the exec would be once the block is in place.
#[test]
fn a_signal_pending_at_exec_ends_the_run_with_a_summary() {
    let _turn = light();
    use std::os::unix::process::CommandExt;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("run");
        let mut cmd = Command::new(portlab());
        cmd.args(["run", "--rate", "100", "--duration", "30s"])
            .args(["-q", "--format", "json", "--out"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec, only sigprocmask, getpid and kill (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::kill(libc::getpid(), sig);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("starting portlab");
        let status = wait_exit(&mut child, Duration::from_secs(20));
        let err = stderr_of(&mut child);
        assert_eq!(status.code(), Some(130), "signal {sig}: {status:?} {err}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s["interrupted"], true, "{s:#}");
    }
}

/// Other commands keep the default: a SIGINT pending at exec ends `portlab watch` by the
/// signal (released, not swallowed by the early block). `watch` runs until stopped.
#[test]
fn a_signal_pending_at_exec_still_ends_a_command_that_does_not_catch_it() {
    let _turn = light();
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(portlab());
    cmd.arg("watch").stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), libc::SIGINT);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("starting portlab");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

/// `--start-at` 60 s ahead, Ctrl-C while waiting: a summary saying so (no attempts,
/// interrupted), exit 130, not exit 2 with nothing.
#[test]
fn ctrl_c_while_waiting_for_start_at_writes_an_interrupted_summary() {
    let _turn = light();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let mut child = spawn(
        &dir,
        &[
            "--rate",
            "30",
            "--duration",
            "3s",
            "--start-at",
            &at.to_string(),
        ],
    );
    // timeline.csv is created just before the wait begins.
    wait_for("timeline.csv", || dir.join("timeline.csv").exists());
    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true, "{s:#}");
    assert_eq!(n(&s, "attempts"), 0, "{s:#}");
}

/// `--lab-clients 3`: Ctrl-C while the clients wait for their common start (about 2.5 s):
/// a summary saying so (no attempts, interrupted), exit 130.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_while_lab_clients_wait_for_their_start_writes_an_interrupted_summary() {
    let _turn = heavy();
    if !namespaces_available("ctrl_c_lab_clients_start") {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("run");
    let mut child = spawn(
        &dir,
        &[
            "--lab",
            "--lab-clients",
            "3",
            "--rate",
            "30",
            "--duration",
            "3s",
        ],
    );
    // Each client's log is created as it is started, 2.3 s before the common start.
    wait_for("the third client's log", || {
        dir.join("client-2.log").exists()
    });
    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
            .unwrap_or_else(|e| panic!("no summary.json ({e}): {err}"));
    assert_eq!(s["interrupted"], true, "{s:#}");
    assert_eq!(n(&s, "attempts"), 0, "{s:#}");
}
