//! The exhaustion model: pure arithmetic from a workload and host settings to a prediction.
//!
//! A client that opens one connection per request and closes first keeps each local port
//! in TIME_WAIT for T seconds. With P usable ports and a rate R, it runs out of ports iff
//! R x T > P; the first error then comes at P / R and afterwards at most P / T connections
//! per second succeed (see `shared/tcp-facts.md`).
//!
//! - [`profile`]: OS profiles and their defaults, and [`ModelInput`], the one struct the
//!   model reads.
//! - [`host`]: the host's settings as read on each OS -> the [`ModelInput`] defaults.
//! - [`predict()`]: [`ModelInput`] -> [`Prediction`].
//! - [`inverse()`] / [`advise`]: what would make an unsustainable rate sustainable, and the
//!   registry / netsh / sysctl commands that apply it.
//!
//! Nothing here reads the host or a measurement: the caller passes the settings in.

pub mod clients;
pub mod conntrack;
pub mod from_plan;
pub mod host;
pub mod inverse;
pub mod nat;
pub mod predict;
pub mod profile;

#[cfg(test)]
mod tests;

pub use inverse::{advise, analyse, inverse, render_advice, Advice, Inverse};
pub use predict::{predict, tuples_reached, tuples_reached_sd, Prediction};
pub use profile::{BindModel, ModelInput, PortSpec, Profile, TimeWaitSide, TwReuse};

/// What a user can get wrong in the model's inputs. Every message names the flag (or the
/// value) and says what is accepted; callers map it to exit code 2.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A profile name that is not one of [`Profile::NAMES`].
    #[error("unknown profile '{given}'; accepted: {accepted}")]
    UnknownProfile {
        /// The name as given.
        given: String,
        /// The accepted names, comma separated.
        accepted: String,
    },
    /// A port range that does not parse or is empty (the message says which and how).
    #[error(transparent)]
    PortRange(#[from] crate::plan::values::ValueError),
    /// A value that parses but is out of range or inconsistent with another input.
    #[error("invalid {flag} {given}: {reason}")]
    Value {
        /// The flag (or setting) at fault, e.g. `--reserved`.
        flag: &'static str,
        /// The value as given.
        given: String,
        /// What is accepted instead.
        reason: String,
    },
    /// The `custom` profile has no defaults, so this input must be given.
    #[error("--profile custom has no defaults: give {flag} ({what})")]
    MissingForCustom {
        /// The flag to give.
        flag: &'static str,
        /// What it sets.
        what: &'static str,
    },
    /// A Linux-only knob given for a profile that has no such setting.
    #[error("{flag} is a Linux setting; profile {profile} has no such knob (use --profile linux or custom)")]
    NotForProfile {
        /// The flag given.
        flag: &'static str,
        /// The profile's name.
        profile: &'static str,
    },
}

/// Formats a figure for text output: at most two decimals, trailing zeros trimmed, three
/// significant digits below 1 (so 0.004 s does not print as 0).
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let s = if x != 0.0 && x.abs() < 1.0 {
        let decimals = (2 - x.abs().log10().floor() as i32).clamp(2, 9) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
