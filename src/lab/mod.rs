//! The Linux network-namespace lab.
//!
//! A run with `isolate = true` enters a private network namespace before any thread exists
//! (as root: `CLONE_NEWNET`; otherwise `CLONE_NEWUSER | CLONE_NEWNET` with uid/gid maps), brings
//! `lo` up, writes the scenario's sysctls into that namespace and reads every one back. The
//! host's own sysctls and interfaces are never written.
//!
//! The flow is:
//!
//! 1. [`LabConfig`](crate::plan::lab::LabConfig): the `[lab]` table of a scenario with the
//!    `--lab-*` flags laid over it (one struct for both, like every scenario section);
//! 2. [`LabConfig::validate`](crate::plan::lab::LabConfig::validate) (pure) turns it into a
//!    [`LabPlan`]: the exact sysctls to write, the time scale, and refusals with a message
//!    saying what would work;
//! 3. [`enter`] (Linux) carries the plan out and returns what the kernel really holds
//!    ([`Applied`]); elsewhere it returns [`LabError::Unsupported`].
//!
//! [`read_settings`] reads the same sysctls in the current namespace without changing
//! anything (for `inspect` and for the model when there is no lab).

use std::collections::BTreeMap;

use serde::Serialize;

// The pure half (configuration, validation, emulation arithmetic) lives in plan::lab; lab/
// only enters namespaces and reads and writes sysctls, so lab imports plan and never the
// other way round.
use crate::plan::lab::{LabError, LabPlan, Sysctl, Topology};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "linux")]
mod clients;
#[cfg(target_os = "linux")]
use clients as many_os;
/// Moves the calling thread into the network namespace `fd` refers to (`portlab watch`).
#[cfg(target_os = "linux")]
pub(crate) use linux::setns;

/// With a NAT (`lab.nat_ports`): the address every connection is masqueraded to, on the
/// NAT's side toward the server (198.18.1.2).
pub const NAT_PUBLIC_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 1, 1);

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as os;
#[cfg(not(target_os = "linux"))]
use other as many_os;

#[cfg(all(test, target_os = "linux"))]
mod ns_tests;

/// Every sysctl the model cares about, in the order they are written and reported.
///
/// [`read_settings`] and [`Applied::settings`] report each of these that the kernel has,
/// whether the lab set it or not.
pub const MODEL_SYSCTLS: [&str; crate::plan::sysctl::REGISTRY.len()] = crate::plan::sysctl::NAMES;

/// What [`enter`] did: the mode, and the values the kernel really holds.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// "root" (CLONE_NEWNET), "user-namespace" (CLONE_NEWUSER | CLONE_NEWNET) or "host"
    /// (isolate = false: nothing entered, nothing written).
    pub mode: &'static str,
    /// "loopback" or "veth".
    pub topology: Topology,
    /// Effective values read back for every sysctl in [`MODEL_SYSCTLS`] this kernel has, in
    /// the (client's) namespace, set by the lab or not.
    pub settings: BTreeMap<String, String>,
    /// Effective values in the server namespace (veth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_settings: Option<BTreeMap<String, String>>,
    /// The client's address toward the server (veth only: 198.18.0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<std::net::IpAddr>,
    /// The address the server must listen on (veth: 198.18.0.2; loopback: 127.0.0.1).
    pub server_addr: std::net::IpAddr,
    /// The sysctls written, in order (name -> value as written).
    pub written: Vec<Sysctl>,
    /// Non-fatal notes from validation (carried into the report).
    pub warnings: Vec<String>,
    /// Namespace handles (Linux, isolate only). Not serialized.
    #[serde(skip)]
    pub(crate) ns: Option<os::Namespaces>,
}

/// Carries out a [`LabPlan`]: enters a private network namespace, brings `lo` up, writes the
/// sysctls and reads them back; with `isolate = false` only reads the current settings.
///
/// Call it first in `main`, before any thread (and so before the tokio runtime) exists:
/// the namespace is entered by the calling thread and inherited only by threads it spawns
/// later; without root the user namespace cannot be entered at all once threads exist.
pub fn enter(plan: &LabPlan) -> Result<Applied, LabError> {
    os::enter(plan)
}

/// Whether this process can create the lab's namespaces (root, or unprivileged user
/// namespaces), tried in a throwaway child: what the run would refuse, refused before it.
pub fn probe() -> Result<(), LabError> {
    os::probe()
}

/// [`crate::plan::check_host`], and for a plan with a lab, whether its namespaces can be
/// made here: a user without root or user namespaces is refused before anything runs, so
/// that a dry run refuses what the run would.
pub fn check_host(
    given: &crate::plan::Scenario,
    plan: &crate::plan::Plan,
) -> Result<(), crate::plan::PlanError> {
    crate::plan::check_host(given, plan)?;
    if plan.isolated() {
        probe().map_err(|e| crate::plan::PlanError::Invalid {
            key: "lab.isolate",
            flag: "--lab",
            message: e.to_string(),
        })?;
    }
    let lab = plan.lab.as_ref();
    for (wanted, key, flag, what) in [
        (
            lab.is_some_and(|l| l.conntrack),
            "lab.conntrack",
            "--lab-conntrack",
            "its tracking rule",
        ),
        (
            lab.is_some_and(|l| l.nat.is_some()),
            "lab.nat_ports",
            "--lab-nat-ports",
            "the NAT's masquerade",
        ),
    ] {
        if wanted && !on_path("nft") {
            return Err(crate::plan::PlanError::Invalid {
                key,
                flag,
                message: format!(
                    "needs the nft tool to add {what}, and it is not on PATH: install nftables \
                     (Debian: apt-get install nftables), or drop {key}"
                ),
            });
        }
    }
    Ok(())
}

/// Reads every sysctl of [`MODEL_SYSCTLS`] in the calling thread's network namespace. A key
/// missing from the map means this kernel does not have that setting (e.g.
/// tcp_tw_reuse_delay before Linux 6.14). Not on Linux: [`LabError::Unsupported`].
pub fn read_settings() -> Result<BTreeMap<String, String>, LabError> {
    os::read_settings()
}

impl Applied {
    /// Runs `f` with the calling thread inside the server namespace (veth topology), then
    /// returns to the client namespace, even if `f` panics. Sockets keep the namespace they
    /// were created in, so a listener bound here on [`Applied::server_addr`] serves from the
    /// server side. Without a server namespace (loopback, host) `f` simply runs.
    pub fn in_server_ns<T>(&self, f: impl FnOnce() -> T) -> Result<T, LabError> {
        match &self.ns {
            Some(ns) => os::in_server_ns(ns, f),
            None => Ok(f()),
        }
    }

    /// Runs `f` with the calling thread inside the NAT's namespace (`lab.nat_ports`), then
    /// returns to the client namespace; None without a NAT.
    pub fn in_nat_ns<T>(&self, f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
        match &self.ns {
            Some(ns) => os::in_nat_ns(ns, f),
            None => Ok(None),
        }
    }

    /// The server namespace's fd (veth only), e.g. for a sampler of the server side.
    #[cfg(target_os = "linux")]
    pub fn server_ns(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ns.as_ref().and_then(|ns| ns.server_fd())
    }
}

/// A many-client lab (`lab.clients = K`, see [`crate::plan::clients`]): the calling thread is
/// in the server's namespace, and K client namespaces stand beside it, each joined to it by a
/// veth pair.
pub struct ManyClients {
    ns: many_os::Many,
    /// "root" or "user-namespace", as [`Applied::mode`].
    pub mode: &'static str,
    /// The server namespace's effective sysctls.
    pub server_settings: BTreeMap<String, String>,
    /// Each client namespace's address and effective sysctls, client 0 first.
    pub clients: Vec<(std::net::Ipv4Addr, BTreeMap<String, String>)>,
    /// The one address every client reaches the server at (198.18.0.2).
    pub server_addr: std::net::IpAddr,
}

impl ManyClients {
    /// Makes the server namespace (the calling thread moves into it and stays) and the
    /// plan's client namespaces. Call it before any thread exists, like [`enter`].
    pub fn enter(plan: &LabPlan) -> Result<ManyClients, LabError> {
        let e = many_os::enter_many(plan)?;
        Ok(ManyClients {
            ns: e.ns,
            mode: e.mode,
            server_settings: e.server_settings,
            clients: e.clients,
            server_addr: std::net::IpAddr::V4(match plan.nat {
                Some(_) => std::net::Ipv4Addr::new(198, 18, 1, 2),
                None => std::net::Ipv4Addr::new(198, 18, 0, 2),
            }),
        })
    }

    /// Runs `f` with the calling thread in the NAT's namespace (`lab.nat_ports`), then
    /// returns to the server's; None without a NAT.
    pub fn in_nat_ns<T>(&self, f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
        many_os::in_nat_ns_many(&self.ns, f)
    }

    /// Starts `cmd` inside client namespace `k` (from 0).
    pub fn spawn_in(
        &self,
        k: usize,
        cmd: &mut std::process::Command,
    ) -> std::io::Result<std::process::Child> {
        many_os::spawn_in(&self.ns, k, cmd)
    }
}

/// Whether an executable named `name` is in a directory of PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}
