//! `[target] exec`: a server command (nginx, the user's own binary) that portlab starts before
//! the run, waits for until it accepts on the target address, and stops afterwards.
//!
//! The command runs from the calling thread, so in a lab it starts inside the lab's network
//! namespace (the server's, with the veth topology) and serves only there. Its stdout and
//! stderr go to `target-exec.log` in the results directory; a command that exits early or
//! never accepts is a set-up error quoting the end of that log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[cfg(unix)]
#[path = "exec_unix.rs"]
mod os;

#[cfg(not(unix))]
#[path = "exec_other.rs"]
mod os;

/// The server command portlab started (`[target] exec`) and how it ended.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecSummary {
    /// The command line as given.
    pub command: String,
    /// The address it served.
    pub address: String,
    /// Its stdout and stderr.
    pub log: String,
    /// How portlab stopped it: SIGTERM, SIGKILL (after the grace period), or it had exited.
    pub stopped_by: String,
    /// "exit 0", "signal 15 (SIGTERM)", or "unknown".
    pub exit_status: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did (Unix).
    pub signal: Option<i32>,
}

/// How long a stopped command may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bytes of the command's log quoted in an error.
const LOG_TAIL: u64 = 2000;

/// Why an `exec` target could not be started: each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The log file or the process could not be created.
    #[error("target.exec (--target-exec) `{command}` cannot be started: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command from a file, without `--allow-exec`.
    #[error("{key} in {file} would run `{command}` as this user; portlab runs a command from a file only with --allow-exec (read it first), or when given as a flag ({flag})")]
    NotAllowed {
        /// The flag that gives the same command on the command line.
        flag: &'static str,
        /// The scenario file.
        file: String,
        /// The key holding the command.
        key: String,
        /// The command line.
        command: String,
    },
    /// The address does not resolve.
    #[error("target.address (--target) '{address}' cannot be resolved for target.exec: {reason}; write IP:PORT, e.g. 127.0.0.1:8080")]
    Address {
        /// As written.
        address: String,
        /// Why.
        reason: String,
    },
    /// The command ended before it accepted a connection.
    #[error("target.exec (--target-exec) `{command}` exited ({status}) before accepting on {address}; fix the command or its configuration. Its output ends:\n{tail}")]
    ExitedEarly {
        /// The command line.
        command: String,
        /// The address waited for.
        address: String,
        /// How it ended.
        status: String,
        /// The end of its log.
        tail: String,
    },
    /// The command ran but never accepted within the timeout.
    #[error("target.exec (--target-exec) `{command}` did not accept on {address} within {timeout:?}; make it listen on target.address (--target) or raise target.ready_timeout (--ready-timeout). Its output ends:\n{tail}")]
    NotReady {
        /// The command line.
        command: String,
        /// The address waited for.
        address: String,
        /// The bound.
        timeout: Duration,
        /// The end of its log.
        tail: String,
    },
}

/// Consent for a command from a file: `key` (e.g. "target.exec") of the scenario file
/// `file` holds `command`, which portlab would run as this user (root under sudo). It runs
/// only with `--allow-exec`; a command given as a flag is its own consent (`from_flag`).
/// The same rule holds for every command portlab runs (servers and client commands).
pub fn consent(
    file: &Path,
    key: &str,
    command: Option<&str>,
    from_flag: bool,
    allow_exec: bool,
) -> Result<(), ExecError> {
    match command {
        Some(command) if !from_flag && !allow_exec => Err(ExecError::NotAllowed {
            flag: if key.starts_with("client.") {
                "--client-exec"
            } else {
                "--target-exec"
            },
            file: file.display().to_string(),
            key: key.to_string(),
            command: command.to_string(),
        }),
        _ => Ok(()),
    }
}

/// [`consent`] for every command a scenario file can name (`[target] exec`, `[client] exec`):
/// `file` is the scenario file as read from `path`, `flags` the command line as a scenario.
pub fn consent_scenario(
    path: &Path,
    file: &crate::plan::Scenario,
    flags: &crate::plan::Scenario,
    allow_exec: bool,
) -> Result<(), ExecError> {
    for (key, command, flag) in [
        ("target.exec", &file.target.exec, &flags.target.exec),
        ("client.exec", &file.client.exec, &flags.client.exec),
    ] {
        consent(path, key, command.as_deref(), flag.is_some(), allow_exec)?;
    }
    Ok(())
}

/// A running server command.
pub struct ExecTarget {
    child: Option<Child>,
    command: String,
    address: String,
    log: PathBuf,
}

impl ExecTarget {
    /// Starts `command` through the shell, its output going to `out`, the file at `log`.
    pub fn start(
        command: &str,
        address: &str,
        out: File,
        log: &Path,
    ) -> Result<ExecTarget, ExecError> {
        let spawn_err = |source| ExecError::Spawn {
            command: command.to_string(),
            source,
        };
        let err = out.try_clone().map_err(spawn_err)?;
        let child = os::shell(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(spawn_err)?;
        Ok(ExecTarget {
            child: Some(child),
            command: command.to_string(),
            address: address.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// Waits (at most `timeout`) until the address accepts a connection; fails at once if
    /// the command exits first. The probe connection is closed with RST, so it leaves no
    /// TIME_WAIT behind to skew the run.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<SocketAddr, ExecError> {
        let addr = self
            .address
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
            .map_err(|reason| ExecError::Address {
                address: self.address.clone(),
                reason,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            // Ctrl-C while waiting: the run starts and stops at once, writing its results.
            if crate::sys::stop_signals() > 0 {
                return Ok(addr);
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(ExecError::ExitedEarly {
                        command: self.command.clone(),
                        address: self.address.clone(),
                        status: describe(&status),
                        tail: log_tail(&self.log),
                    });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ExecError::NotReady {
                    command: self.command.clone(),
                    address: self.address.clone(),
                    timeout,
                    tail: log_tail(&self.log),
                });
            }
            let attempt = (deadline - now).min(Duration::from_millis(200));
            match TcpStream::connect_timeout(&addr, attempt) {
                Ok(stream) => {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    return Ok(addr);
                }
                // Nothing signals "now listening": poll, bounded by the deadline.
                Err(_) => std::thread::sleep(Duration::from_millis(20).min(deadline - now)),
            }
        }
    }

    /// Stops the command (SIGTERM, then SIGKILL after [`STOP_GRACE`]; a plain kill where
    /// there are no signals) and says how it ended.
    pub fn stop(mut self) -> ExecSummary {
        let Some(mut child) = self.child.take() else {
            return self.summary(None, "not running");
        };
        if let Ok(Some(status)) = child.try_wait() {
            return self.summary(Some(status), "exited by itself before the end of the run");
        }
        if !os::terminate(&child) {
            let _ = child.kill();
            let status = child.wait().ok();
            return self.summary(status, "killed");
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        // The waiting thread reaps the child; until then its pid cannot be reused, so the
        // SIGKILL below can only reach it.
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(STOP_GRACE) {
            Ok(status) => self.summary(status.ok(), os::TERM_NAME),
            Err(_) => {
                os::kill(pid);
                let status = rx.recv().ok().and_then(Result::ok);
                self.summary(status, os::KILL_NAME)
            }
        }
    }

    fn summary(&self, status: Option<ExitStatus>, stopped_by: &str) -> ExecSummary {
        ExecSummary {
            command: self.command.clone(),
            address: self.address.clone(),
            log: self.log.display().to_string(),
            stopped_by: stopped_by.to_string(),
            exit_status: status.map_or_else(|| "unknown".to_string(), |s| describe(&s)),
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| os::signal_of(&s)),
        }
    }
}

impl Drop for ExecTarget {
    /// A run that fails after the command started must not leave it running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// "exit 0", "signal 15 (SIGTERM)".
fn describe(status: &ExitStatus) -> String {
    match (status.code(), os::signal_of(status)) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}{}", os::signal_name(sig)),
        (None, None) => status.to_string(),
    }
}

/// The last [`LOG_TAIL`] bytes of the command's output, or a note that there was none.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(t) if !t.trim().is_empty() => t.trim_end().to_string(),
        Ok(_) => format!("(no output; log {})", path.display()),
        Err(e) => format!("(log {} unreadable: {e})", path.display()),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_command_from_a_file_needs_allow_exec() {
        let file = Path::new("x.toml");
        let e = consent(file, "target.exec", Some("nginx"), false, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("target.exec") && e.contains("x.toml") && e.contains("`nginx`"),
            "{e}"
        );
        assert!(e.contains("--allow-exec"), "{e}");
        assert!(consent(file, "target.exec", Some("nginx"), false, true).is_ok());
        assert!(consent(file, "target.exec", Some("nginx"), true, false).is_ok());
        assert!(consent(file, "target.exec", None, false, false).is_ok());
    }

    #[test]
    fn a_command_that_exits_early_is_reported_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = ExecTarget::start(
            "echo 'nginx: [emerg] bad config' >&2; exit 3",
            "127.0.0.1:9",
            File::create(dir.path().join("log")).unwrap(),
            &dir.path().join("log"),
        )
        .unwrap();
        let e = t
            .wait_ready(Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit 3") && e.contains("bad config"), "{e}");
    }

    #[test]
    fn a_command_that_never_listens_times_out_and_is_stopped_by_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // A free port nobody listens on: bind, note it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut t = ExecTarget::start(
            "sleep 30",
            &format!("127.0.0.1:{port}"),
            File::create(dir.path().join("log")).unwrap(),
            &dir.path().join("log"),
        )
        .unwrap();
        let e = t
            .wait_ready(Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did not accept") && e.contains("ready_timeout"),
            "{e}"
        );
        let s = t.stop();
        assert_eq!(s.stopped_by, "SIGTERM");
        assert_eq!(s.signal, Some(15), "{s:?}");
    }
}
