//! Not Unix (Windows): the command runs as `cmd /C COMMAND` and is stopped with a plain
//! kill (TerminateProcess); there are no signals to ask it nicely.

use std::process::{Child, Command, ExitStatus};

/// Unused: there is no graceful stop here.
pub const TERM_NAME: &str = "terminate";
/// How a forced stop is named in the summary.
pub const KILL_NAME: &str = "kill";

pub fn shell(command: &str) -> Command {
    let mut c = Command::new("cmd");
    c.arg("/C").arg(command);
    c
}

/// No signals: the caller kills the child instead.
pub fn terminate(_child: &Child) -> bool {
    false
}

pub fn kill(_pid: u32) {}

pub fn signal_of(_status: &ExitStatus) -> Option<i32> {
    None
}

pub fn signal_name(_sig: i32) -> &'static str {
    ""
}
