//! Unix: the command runs as `sh -c 'exec COMMAND'` (the shell replaces itself, so signals
//! reach the server), stopped with SIGTERM then SIGKILL.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};

/// How a graceful stop is named in the summary.
pub const TERM_NAME: &str = "SIGTERM";
/// How a forced stop is named in the summary.
pub const KILL_NAME: &str = "SIGKILL";

pub fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("exec {command}"));
    c
}

/// Sends SIGTERM; true when the signal was delivered.
pub fn terminate(child: &Child) -> bool {
    signal(child.id(), libc::SIGTERM)
}

/// Sends SIGKILL.
pub fn kill(pid: u32) {
    signal(pid, libc::SIGKILL);
}

fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with the pid of our own unreaped child and a valid signal number.
    unsafe { libc::kill(pid, sig) == 0 }
}

pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    status.signal()
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        _ => "",
    }
}
