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
    add_peer_addr_and_up, create_veth_pair, interface_up, open_current_netns, read_settings, setns,
    unshare, unshare_net, write_all, VETH_SERVER_ADDR,
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
    let mut ns = Many {
        server,
        clients: Vec::new(),
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
        // The pair is made here (server side) with its peer moved into client namespace k.
        create_veth_pair(&format!("pl-s{k}"), CLIENT_IF, fd.as_fd())?;
        add_peer_addr_and_up(&format!("pl-s{k}"), VETH_SERVER_ADDR, addr, 32)?;
        setns(fd.as_fd())
            .map_err(|e| LabError::setup(format!("setns into client namespace {k}"), e))?;
        let up = add_peer_addr_and_up(CLIENT_IF, addr, VETH_SERVER_ADDR, 32);
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
