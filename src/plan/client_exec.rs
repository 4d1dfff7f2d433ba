//! `client.exec` and its companions (`client.sample`, `client.stop_after`,
//! `client.failure_pattern`), resolved and validated: the pure half of the user's own
//! client. Running it is [`crate::client`]'s.

use super::{invalid, ClientSection, PlanError};
use std::time::Duration;

/// Default sampling interval of the client's namespace.
pub const DEFAULT_SAMPLE: Duration = Duration::from_millis(100);

/// `client.exec` and its companions, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientExec {
    /// The command line, run by `sh -c` (Unix) in the client's namespace.
    pub command: String,
    /// How often the client's namespace is sampled.
    pub sample: Duration,
    /// Stop the client this long after its first recognised failure (None: at the end of
    /// the run's duration, or when it exits).
    pub stop_after: Option<Duration>,
    /// The user's own failure regex, checked after the built-in signatures.
    pub failure_pattern: Option<String>,
}

impl ClientExec {
    /// The `[client]` keys of a client command; None without `client.exec`, an error when
    /// a companion key is set without it or a value is out of range.
    pub fn resolve(c: &ClientSection) -> Result<Option<ClientExec>, PlanError> {
        let Some(command) = &c.exec else {
            super::refuse_set(
                &[
                    (c.sample.is_some(), "client.sample", "--client-sample"),
                    (
                        c.stop_after.is_some(),
                        "client.stop_after",
                        "--client-stop-after",
                    ),
                    (
                        c.failure_pattern.is_some(),
                        "client.failure_pattern",
                        "--failure-pattern",
                    ),
                ],
                || {
                    "only applies to a client command: set client.exec (--client-exec) or drop it"
                        .to_string()
                },
            )?;
            return Ok(None);
        };
        if command.trim().is_empty() {
            return Err(invalid(
                "client.exec",
                "--client-exec",
                "is empty: write the command that runs your client, e.g. \"java Client.java\"",
            ));
        }
        let sample = c.sample.map_or(DEFAULT_SAMPLE, |s| s.0);
        if !(Duration::from_millis(10)..=Duration::from_secs(1)).contains(&sample) {
            return Err(invalid(
                "client.sample",
                "--client-sample",
                format!("{sample:?} is out of range: write 10ms to 1s (e.g. 100ms); the ports-full time is only as exact as one sample"),
            ));
        }
        if let Some(pattern) = &c.failure_pattern {
            regex::Regex::new(pattern).map_err(|e| {
                invalid(
                    "client.failure_pattern",
                    "--failure-pattern",
                    format!("is not a valid regular expression: {e}"),
                )
            })?;
        }
        Ok(Some(ClientExec {
            command: command.trim().to_string(),
            sample,
            stop_after: c.stop_after.map(|s| s.0),
            failure_pattern: c.failure_pattern.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Scenario;

    fn section(text: &str) -> Result<Option<ClientExec>, PlanError> {
        let s: Scenario = toml::from_str(text).unwrap();
        ClientExec::resolve(&s.client)
    }

    #[test]
    fn defaults_and_bad_values_name_their_key() {
        let x = section("[client]\nexec = \"java Client.java\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(x.sample, DEFAULT_SAMPLE);
        assert_eq!(x.stop_after, None);
        for (text, key) in [
            ("[client]\nexec = \" \"\n", "client.exec"),
            ("[client]\nexec = \"x\"\nsample = \"5s\"\n", "client.sample"),
            (
                "[client]\nexec = \"x\"\nfailure_pattern = \"(\"\n",
                "client.failure_pattern",
            ),
            ("[client]\nstop_after = \"1s\"\n", "client.stop_after"),
        ] {
            let e = section(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{text}: {e}");
        }
    }
}
