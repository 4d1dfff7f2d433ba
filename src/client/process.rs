//! The client command: started through the shell with the target in its environment, its
//! output read line by line as it comes (each line timestamped on arrival), stopped with
//! SIGTERM then SIGKILL (its whole process group: a shell loop's children too), and killed
//! with portlab, whatever it forked (PR_SET_PDEATHSIG and a PID namespace on Linux:
//! [`crate::sys::contain_with_parent`]).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the client has after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// One line of the client's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// When it was read.
    pub at: Instant,
    /// "stdout" or "stderr".
    pub stream: &'static str,
    /// The text, without its line end (invalid UTF-8 replaced).
    pub text: String,
}

/// A running client command.
pub struct ClientProcess {
    child: Option<Child>,
    /// When it was started.
    pub started: Instant,
    /// Its output lines, as they come; disconnected once both pipes closed.
    pub lines: mpsc::Receiver<Line>,
}

/// The environment the client gets: where the target is, and the rate asked for.
/// `targets` are every destination of the embedded server, the target first
/// (`PORTLAB_TARGETS`, comma-separated).
pub fn environment(
    target: SocketAddr,
    targets: &[SocketAddr],
    rate: Option<f64>,
) -> Vec<(&'static str, String)> {
    let all: Vec<String> = std::iter::once(target)
        .chain(targets.iter().copied().filter(|t| *t != target))
        .map(|t| t.to_string())
        .collect();
    let mut env = vec![
        ("PORTLAB_TARGET", target.to_string()),
        ("PORTLAB_TARGETS", all.join(",")),
        ("PORTLAB_TARGET_HOST", target.ip().to_string()),
        ("PORTLAB_TARGET_PORT", target.port().to_string()),
    ];
    if let Some(r) = rate {
        env.push(("PORTLAB_RATE", format!("{r}")));
    }
    env
}

impl ClientProcess {
    /// Starts `command` through the shell (from the calling thread: in a lab it runs in the
    /// lab's namespace).
    pub fn start(command: &str, env: &[(&'static str, String)]) -> std::io::Result<ClientProcess> {
        let mut cmd = shell(command);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        os::own_group_and_die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            read_lines(out, "stdout", tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            read_lines(err, "stderr", tx);
        }
        Ok(ClientProcess {
            child: Some(child),
            started,
            lines,
        })
    }

    /// Its exit status, once it has exited by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Stops it if it still runs (SIGTERM to its process group, SIGKILL after
    /// [`STOP_GRACE`]) and says how it ended: (exit status, stopped by portlab with).
    pub fn stop(&mut self) -> (Option<ExitStatus>, Option<&'static str>) {
        let Some(mut child) = self.child.take() else {
            return (None, None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            // Its children (a shell loop's) may live on: end the group too.
            os::kill_group(child.id(), false);
            return (Some(status), None);
        }
        os::kill_group(child.id(), true);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                os::kill_group(child.id(), false);
                return (Some(status), Some(os::TERM));
            }
            // No event says "this child exited" without a thread of its own: poll, bounded.
            std::thread::sleep(Duration::from_millis(10));
        }
        os::kill_group(child.id(), false);
        let _ = child.kill();
        (child.wait().ok(), Some(os::KILL))
    }
}

impl Drop for ClientProcess {
    /// A run that fails after the client started must not leave it running.
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

fn read_lines(pipe: impl Read + Send + 'static, stream: &'static str, tx: mpsc::Sender<Line>) {
    let spawned = std::thread::Builder::new()
        .name(format!("portlab-client-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if tx.send(Line { at, stream, text }).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        crate::say::warning!(
            "the client's {stream} cannot be read ({e}); its failure lines will be missed"
        );
    }
}

/// "exit 1", "signal 15 (SIGTERM)".
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), os::signal_of(status)) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(command);
    c
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

#[cfg(unix)]
mod os {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, ExitStatus};

    pub const TERM: &str = "SIGTERM";
    pub const KILL: &str = "SIGKILL";

    /// Its own process group (so a stop reaches a shell loop's children), SIGKILL when
    /// portlab's thread that started it dies, and on Linux a PID namespace of its own, so
    /// that nothing it forks (a pipeline, a daemon that left the group) outlives portlab.
    pub fn own_group_and_die_with_parent(cmd: &mut Command) {
        crate::sys::contain_with_parent(cmd);
    }

    /// SIGTERM (or SIGKILL) to the group led by `pid`.
    pub fn kill_group(pid: u32, term: bool) {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            let sig = if term { libc::SIGTERM } else { libc::SIGKILL };
            // SAFETY: a plain syscall on a group this process created; ESRCH is harmless.
            unsafe {
                libc::kill(-pid, sig);
            }
        }
    }

    pub fn signal_of(s: &ExitStatus) -> Option<i32> {
        s.signal()
    }
}

#[cfg(not(unix))]
mod os {
    use std::process::{Command, ExitStatus};

    pub const TERM: &str = "kill";
    pub const KILL: &str = "kill";

    pub fn own_group_and_die_with_parent(_cmd: &mut Command) {}

    pub fn kill_group(_pid: u32, _term: bool) {}

    pub fn signal_of(_s: &ExitStatus) -> Option<i32> {
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn lines_come_with_their_stream_and_the_target_is_in_the_environment() {
        let target: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let mut p = ClientProcess::start(
            "echo to=$PORTLAB_TARGET port=$PORTLAB_TARGET_PORT rate=$PORTLAB_RATE; echo oops >&2; exit 3",
            &environment(target, &[], Some(50.0)),
        )
        .unwrap();
        let lines: Vec<Line> = p.lines.iter().collect();
        let text: Vec<(&str, &str)> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert!(
            text.contains(&("stdout", "to=127.0.0.1:4321 port=4321 rate=50")),
            "{text:?}"
        );
        assert!(text.contains(&("stderr", "oops")), "{text:?}");
        // Its pipes closing is not its exit: wait for that, or stop() may race it and TERM it.
        p.child.as_mut().map(|c| c.wait());
        let (status, by) = p.stop();
        assert_eq!(status.and_then(|s| s.code()), Some(3));
        assert_eq!(by, None);
    }

    #[test]
    fn a_shell_loop_is_stopped_with_its_children() {
        let mut p = ClientProcess::start("while true; do sleep 5; done", &[]).unwrap();
        let t = Instant::now();
        let (status, by) = p.stop();
        assert_eq!(by, Some("SIGTERM"));
        assert_eq!(status.and_then(|s| os::signal_of(&s)), Some(libc::SIGTERM));
        assert!(t.elapsed() < STOP_GRACE, "{:?}", t.elapsed());
        // Both pipes closed: the sleep (holding them) is gone too.
        assert!(p.lines.recv_timeout(Duration::from_secs(2)).is_err());
    }
}
