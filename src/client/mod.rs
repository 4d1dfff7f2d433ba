//! `--client-exec CMD` (`client.exec`): the user's own client in the lab.
//!
//! portlab sends no traffic of its own: it sets the lab up, starts the target (the embedded
//! server, which tells raw TCP from HTTP by the first bytes, or `--target-exec`), runs CMD
//! through the shell in the client's namespace, and watches: the namespace's sockets toward
//! the target every `client.sample` (sock_diag), and the client's output line by line for
//! the failure it prints when the ports run out. The model then runs on the measured rate.
//!
//! - [`signatures`]: the failure lines of real clients, mapped to OS error names.
//! - [`activity`]: the client's connections as the embedded server timed them (window,
//!   average, peak and current rate, steady / bursty / ramping, gaps).
//! - [`timing`]: which witness dates the exhaustion (the failure line, the samples, the
//!   server's accepts) and the rate's window.
//! - [`sample`]: the samples and what they show (rate, who holds TIME_WAIT, pooling, when
//!   the ports were full).
//! - [`process`]: the child process: environment, output reader, stop.
//! - [`run`]: one run, from the command's start to the verdict.
//! - [`result`]: the verdict's checks on the measured rate (summary.json's `client_exec`
//!   and its text lines are `results::client_exec`).
//!
//! The resolved `client.exec` keys ([`ClientExec`]) are defined in `plan::client_exec`.

pub mod activity;
pub mod process;
pub mod result;
pub mod run;
pub mod sample;
pub mod signatures;
pub mod timing;

use crate::plan::client_exec::ClientExec;

#[cfg(test)]
mod tests {
    use crate::plan::Scenario;

    #[test]
    fn a_files_command_needs_allow_exec_a_flags_does_not() {
        let consent = |file: &Scenario, flags: &Scenario, allow| {
            crate::server::exec::consent_scenario(
                std::path::Path::new("s.toml"),
                file,
                flags,
                allow,
            )
        };
        let file: Scenario = toml::from_str("[client]\nexec = \"rm -rf /\"\n").unwrap();
        let none = Scenario::default();
        let e = consent(&file, &none, false).unwrap_err().to_string();
        assert!(e.contains("--allow-exec") && e.contains("rm -rf /"), "{e}");
        assert!(consent(&file, &none, true).is_ok());
        let mut flag = Scenario::default();
        flag.client.exec = Some("python3 c.py".into());
        assert!(consent(&none, &flag, false).is_ok());
        assert!(
            consent(&file, &flag, false).is_ok(),
            "the flag replaces the file's"
        );
    }
}
