//! Not Linux: there are no network namespaces, so the lab refuses clearly and nothing is read.

use std::collections::BTreeMap;

use super::{Applied, LabError, LabPlan};

/// Uninhabited: no namespace can exist on this OS.
#[derive(Debug)]
pub(crate) enum Namespaces {}

pub(crate) fn enter(_plan: &LabPlan) -> Result<Applied, LabError> {
    Err(LabError::Unsupported {
        os: std::env::consts::OS,
    })
}

pub(crate) fn read_settings() -> Result<BTreeMap<String, String>, LabError> {
    Err(LabError::Unsupported {
        os: std::env::consts::OS,
    })
}

pub(crate) fn in_server_ns<T>(ns: &Namespaces, _f: impl FnOnce() -> T) -> Result<T, LabError> {
    match *ns {}
}
