//! Linux: the many-client lab's namespaces (`lab.clients = K`). The calling thread moves into
//! a new namespace, the server's, and stays there; K client namespaces are made beside it,
//! each with `lo` up and the lab's client sysctls, and each joined to the server namespace
//! by its own veth pair: `pl-s<k>` (server side) and `pl-client` (in client namespace k),
//! point-to-point /32 addresses 198.18.0.2 and 198.18.0.(10 + k). The server holds the same
//! address on every pair, so each client reaches it at 198.18.0.2 without a bridge or a
//! route of its own (the kernel adds the /32 route to each peer).

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command};

use super::linux::{
    add_default_route, add_peer_addr_and_up, create_veth_pair, in_ns, interface_up, make_nat,
    open_current_netns, read_settings, setns, unshare, unshare_net, write_all, NAT_SERVER_ADDR,
    VETH_SERVER_ADDR,
};
use super::{LabError, LabPlan};
use crate::plan::clients::client_addr;

/// The interface name in every client namespace (it exists only there).
const CLIENT_IF: &str = "pl-client";

/// The namespaces of a many-client lab, made by [`enter`].
#[derive(Debug)]
pub(crate) struct Many {
    server: OwnedFd,
    clients: Vec<OwnedFd>,
    /// The NAT between the clients and the server (`lab.nat_ports`).
    nat: Option<OwnedFd>,
}

/// What [`enter`] made: the namespaces, and what each holds.
pub(crate) struct Entered {
    pub(crate) ns: Many,
    pub(crate) mode: &'static str,
    pub(crate) server_settings: BTreeMap<String, String>,
    pub(crate) clients: Vec<(Ipv4Addr, BTreeMap<String, String>)>,
}

/// Makes the server namespace (the calling thread stays in it) and `plan.clients` client
/// namespaces joined to it. Call it before any thread exists, like [`super::enter`].
pub(crate) fn enter_many(plan: &LabPlan) -> Result<Entered, LabError> {
    let mode = unshare_net()?;
    let server = open_current_netns()?;
    interface_up("lo").map_err(|e| LabError::setup("bringing lo up in the server namespace", e))?;
    write_all(&plan.server_sysctls)?;
    // With a NAT, the clients' veth pairs end in the NAT's namespace, and the NAT reaches
    // the server over its own pair (198.18.1.1 -> 198.18.1.2).
    let nat = match plan.nat {
        Some(pool) => {
            let nat = make_nat(plan, pool, server.as_fd(), server.as_fd())?;
            add_peer_addr_and_up("pl-server", NAT_SERVER_ADDR, NAT_SERVER_ADDR, 30)?;
            Some(nat)
        }
        None => None,
    };
    let mut ns = Many {
        server,
        clients: Vec::new(),
        nat,
    };
    let mut clients = Vec::new();
    for k in 0..plan.clients {
        let addr = client_addr(k);
        unshare(libc::CLONE_NEWNET).map_err(|e| {
            LabError::setup(format!("unshare(CLONE_NEWNET) for client namespace {k}"), e)
        })?;
        let made = open_current_netns().and_then(|fd| {
            interface_up("lo").map_err(|e| {
                LabError::setup(format!("bringing lo up in client namespace {k}"), e)
            })?;
            write_all(&plan.sysctls)?;
            Ok((fd, read_settings()?))
        });
        back(&ns.server);
        let (fd, settings) = made?;
        // The pair is made on the server's side (the NAT's, with one) with its peer moved
        // into client namespace k.
        let pair = || {
            create_veth_pair(&format!("pl-s{k}"), CLIENT_IF, fd.as_fd())?;
            add_peer_addr_and_up(&format!("pl-s{k}"), VETH_SERVER_ADDR, addr, 32)
        };
        match in_nat_ns_many(&ns, pair)? {
            Some(made) => made?,
            None => pair()?,
        }
        setns(fd.as_fd())
            .map_err(|e| LabError::setup(format!("setns into client namespace {k}"), e))?;
        let mut up = add_peer_addr_and_up(CLIENT_IF, addr, VETH_SERVER_ADDR, 32);
        if up.is_ok() && ns.nat.is_some() {
            up = add_default_route(CLIENT_IF, VETH_SERVER_ADDR);
        }
        back(&ns.server);
        up?;
        ns.clients.push(fd);
        clients.push((addr, settings));
    }
    Ok(Entered {
        ns,
        mode,
        server_settings: read_settings()?,
        clients,
    })
}

/// Returns the calling thread to the server namespace. If that fails the thread would
/// silently go on in a client's namespace, so the process aborts instead.
fn back(server: &OwnedFd) {
    if let Err(e) = setns(server.as_fd()) {
        eprintln!("portlab: cannot return to the server network namespace: {e}");
        std::process::abort();
    }
}

/// Runs `f` in the NAT's namespace and returns to the server's; None without a NAT.
pub(crate) fn in_nat_ns_many<T>(ns: &Many, f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
    match &ns.nat {
        Some(nat) => in_ns(nat.as_fd(), ns.server.as_fd(), "NAT", f).map(Some),
        None => Ok(None),
    }
}

/// Starts `cmd` inside client namespace `k`: a child inherits the network namespace of the
/// thread that forks it, so this thread steps in for the spawn and back out.
pub(crate) fn spawn_in(ns: &Many, k: usize, cmd: &mut Command) -> io::Result<Child> {
    let fd = ns
        .clients
        .get(k)
        .ok_or_else(|| io::Error::other(format!("no client namespace {k}")))?;
    setns(fd.as_fd())?;
    let child = cmd.spawn();
    back(&ns.server);
    child
}
