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

pub(crate) fn probe() -> Result<(), LabError> {
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

pub(crate) fn in_nat_ns<T>(ns: &Namespaces, _f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
    match *ns {}
}

/// Uninhabited: no many-client lab can exist on this OS.
#[derive(Debug)]
pub(crate) enum Many {}

/// What a many-client lab's entry made (never, here).
pub(crate) struct Entered {
    pub(crate) ns: Many,
    pub(crate) mode: &'static str,
    pub(crate) server_settings: BTreeMap<String, String>,
    pub(crate) clients: Vec<(std::net::Ipv4Addr, BTreeMap<String, String>)>,
}

pub(crate) fn enter_many(_plan: &LabPlan) -> Result<Entered, LabError> {
    Err(LabError::Unsupported {
        os: std::env::consts::OS,
    })
}

pub(crate) fn in_nat_ns_many<T>(ns: &Many, _f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
    match *ns {}
}

pub(crate) fn spawn_in(
    ns: &Many,
    _k: usize,
    _cmd: &mut std::process::Command,
) -> std::io::Result<std::process::Child> {
    match *ns {}
}
