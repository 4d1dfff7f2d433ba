//! Unix: the command runs as `sh -c 'exec COMMAND'` (the shell replaces itself, so signals
//! reach the server), in a process group and (Linux) a PID namespace of its own that die with
//! portlab, whatever it forks ([`crate::sys::contain_with_parent`]), stopped with SIGTERM then SIGKILL sent to that group.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};

/// How a graceful stop is named in the summary.
pub const TERM_NAME: &str = "SIGTERM";
/// How a forced stop is named in the summary.
pub const KILL_NAME: &str = "SIGKILL";

pub fn shell(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("exec {command}"));
    crate::sys::contain_with_parent(&mut c);
    c
}

/// Sends SIGTERM to the command's process group; true when the signal was delivered.
pub fn terminate(child: &Child) -> bool {
    crate::sys::signal_group(child.id(), libc::SIGTERM)
}

/// Sends SIGKILL to the command's process group.
pub fn kill(pid: u32) {
    crate::sys::signal_group(pid, libc::SIGKILL);
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
