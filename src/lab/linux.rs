//! Linux: entering the namespace(s), bringing interfaces up, writing and reading sysctls.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Applied, LabError, LabPlan};
use crate::plan::lab::{Sysctl, Topology};
use crate::plan::sysctl::{Knob, REGISTRY};
use crate::sys::netlink::{
    MsgBuilder, NlSocket, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};

/// Client side of the veth pair (RFC 2544 benchmarking range 198.18.0.0/15).
pub const VETH_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Server side of the veth pair.
pub const VETH_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Both addresses sit in one /30.
const VETH_PREFIX: u8 = 30;
/// With a NAT (`lab.nat_ports`): the NAT's address toward the server, the one every
/// connection is masqueraded to (its "public" address).
pub use super::NAT_PUBLIC_ADDR;
/// With a NAT: the server, on the NAT's far side.
pub const NAT_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// With a NAT: its interface toward the server (the masquerade's output interface).
pub(super) const NAT_OUT_IF: &str = "pl-nat-out";
/// Interface names inside the lab namespaces (they exist only there).
const VETH_CLIENT_IF: &str = "pl-client";
const VETH_SERVER_IF: &str = "pl-server";

/// The network namespaces the process owns after [`enter`]: the client's (where the process
/// lives) and, for veth, the server's.
#[derive(Debug)]
pub(crate) struct Namespaces {
    client: OwnedFd,
    server: Option<OwnedFd>,
    /// The NAT's namespace, between the two (`lab.nat_ports`).
    nat: Option<OwnedFd>,
}

impl Namespaces {
    pub(crate) fn server_fd(&self) -> Option<BorrowedFd<'_>> {
        self.server.as_ref().map(|f| f.as_fd())
    }
}

pub(crate) fn enter(plan: &LabPlan) -> Result<Applied, LabError> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if !plan.isolate {
        return Ok(Applied {
            mode: "host",
            topology: plan.topology,
            settings: read_settings()?,
            server_settings: None,
            client_addr: None,
            server_addr: loopback,
            written: Vec::new(),
            warnings: plan.warnings.clone(),
            ns: None,
        });
    }

    let mode = unshare_net()?;
    let client = open_current_netns()?;

    // veth: create the server namespace first (a second unshare), set it up, come back.
    let server = if plan.topology == Topology::Veth {
        unshare(libc::CLONE_NEWNET)
            .map_err(|e| LabError::setup("unshare(CLONE_NEWNET) for the server namespace", e))?;
        let server = open_current_netns()?;
        let set_up = interface_up("lo")
            .map_err(|e| LabError::setup("bringing lo up in the server namespace", e))
            .and_then(|()| write_all(&plan.server_sysctls))
            .and_then(|()| track_connections(plan, "prerouting"));
        setns(client.as_fd())
            .map_err(|e| LabError::setup("setns back into the client namespace", e))?;
        set_up?;
        Some(server)
    } else {
        None
    };

    interface_up("lo").map_err(|e| LabError::setup("bringing lo up (SIOCSIFFLAGS)", e))?;
    write_all(&plan.sysctls)?;
    if plan.topology == Topology::Loopback {
        track_connections(plan, "output")?;
    }

    let nat = match (plan.nat, &server) {
        (Some(pool), Some(server)) => Some(make_nat(plan, pool, server.as_fd(), client.as_fd())?),
        _ => None,
    };
    let ns = Namespaces {
        client,
        server,
        nat,
    };
    let (client_addr, server_addr, server_settings) = match &ns.server {
        None => (None, loopback, None),
        Some(server) => {
            let server_ip = match &ns.nat {
                // client 198.18.0.1/30 -> NAT 198.18.0.2/30 | NAT 198.18.1.1/30 -> server
                // 198.18.1.2/30: the client's pair ends in the NAT, which routes on.
                Some(nat) => {
                    create_veth_pair(VETH_CLIENT_IF, NAT_IN_IF, nat.as_fd())?;
                    add_addr_and_up(VETH_CLIENT_IF, VETH_CLIENT_ADDR)?;
                    add_default_route(VETH_CLIENT_IF, VETH_SERVER_ADDR)?;
                    in_nat_ns(&ns, || add_addr_and_up(NAT_IN_IF, VETH_SERVER_ADDR))?.transpose()?;
                    NAT_SERVER_ADDR
                }
                None => {
                    create_veth(server.as_fd())?;
                    add_addr_and_up(VETH_CLIENT_IF, VETH_CLIENT_ADDR)?;
                    VETH_SERVER_ADDR
                }
            };
            let server_settings = in_server_ns(&ns, || -> Result<_, LabError> {
                add_addr_and_up(VETH_SERVER_IF, server_ip)?;
                read_settings()
            })??;
            (
                Some(IpAddr::V4(VETH_CLIENT_ADDR)),
                IpAddr::V4(server_ip),
                Some(server_settings),
            )
        }
    };

    let mut written = plan.sysctls.clone();
    written.extend(plan.server_sysctls.iter().cloned());
    Ok(Applied {
        mode,
        topology: plan.topology,
        settings: read_settings()?,
        server_settings,
        client_addr,
        server_addr,
        written,
        warnings: plan.warnings.clone(),
        ns: Some(ns),
    })
}

/// The NAT side's interface toward the client (single-client lab).
const NAT_IN_IF: &str = "pl-nat-in";

/// Makes the NAT namespace (`lab.nat_ports`) and returns to `back_to`: `lo` up, forwarding
/// on, conntrack's TIME_WAIT timeout as the lab sets it, the masquerade table, and its
/// veth pair toward the server namespace (198.18.1.1/30 on this side; the server's side is
/// moved into `server` and addressed there by the caller).
pub(super) fn make_nat(
    plan: &LabPlan,
    pool: crate::plan::lab::PortRange,
    server: BorrowedFd<'_>,
    back_to: BorrowedFd<'_>,
) -> Result<OwnedFd, LabError> {
    conntrack_loaded("lab.nat_ports")?;
    nat_loaded()?;
    unshare(libc::CLONE_NEWNET)
        .map_err(|e| LabError::setup("unshare(CLONE_NEWNET) for the NAT namespace", e))?;
    let made = open_current_netns().and_then(|nat| {
        interface_up("lo")
            .map_err(|e| LabError::setup("bringing lo up in the NAT namespace", e))?;
        write_proc("/proc/sys/net/ipv4/ip_forward", "1")?;
        // The NAT's entries are held as the lab says conntrack holds them.
        let held: Vec<Sysctl> = plan
            .sysctls
            .iter()
            .filter(|s| s.knob.name == crate::plan::sysctl::CONNTRACK_TIME_WAIT.name)
            .cloned()
            .collect();
        write_all(&held)?;
        nft(&nat_table(pool), "adding the NAT's masquerade table")?;
        create_veth_pair(NAT_OUT_IF, VETH_SERVER_IF, server)?;
        add_addr_and_up(NAT_OUT_IF, NAT_PUBLIC_ADDR)?;
        Ok(nat)
    });
    setns(back_to).map_err(|e| LabError::setup("setns back from the NAT namespace", e))?;
    made
}

/// The NAT's nftables table: every TCP connection leaving toward the server is masqueraded
/// to the NAT's address with a source port from `pool`, as a Kubernetes node's
/// KUBE-POSTROUTING masquerade or a cloud NAT's SNAT does. The kernel picks the port
/// (nf_nat_l4proto_unique_tuple) and, when every port of the pool is taken toward that
/// destination, refuses the connection's conntrack entry and drops its SYN.
pub(super) fn nat_table(pool: crate::plan::lab::PortRange) -> String {
    format!(
        "table ip portlab_nat {{\n  chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{NAT_OUT_IF}\" meta l4proto tcp masquerade to :{}-{}\n  }}\n}}\n",
        pool.lo, pool.hi
    )
}

/// Whether this process could enter a lab, tried as [`unshare_net`] does but in a child
/// (fork), so that nothing changes here: for the checks before a run and for dry runs,
/// which must refuse what the run would.
pub(super) fn probe() -> Result<(), LabError> {
    // SAFETY: the child is single-threaded and calls only unshare and _exit (reading errno
    // allocates nothing); the parent waits for it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            if libc::unshare(libc::CLONE_NEWNET) == 0
                || libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0
            {
                libc::_exit(0);
            }
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(1);
            libc::_exit(errno.clamp(1, 255));
        }
    }
    if pid < 0 {
        return Err(LabError::setup(
            "fork (to try the lab)",
            io::Error::last_os_error(),
        ));
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(LabError::setup("waitpid (trying the lab)", e));
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, errno) => Err(LabError::setup(
            "unshare(CLONE_NEWUSER | CLONE_NEWNET) (not root, so the lab needs unprivileged \
             user namespaces: check kernel.unprivileged_userns_clone / \
             user.max_user_namespaces, or run as root)",
            io::Error::from_raw_os_error(errno),
        )),
        _ => Err(LabError::setup(
            "trying the lab",
            io::Error::other(format!("the probe ended with wait status {status}")),
        )),
    }
}

/// Enters a new network namespace: as root (or with CAP_SYS_ADMIN) directly; otherwise in a
/// new user namespace too, mapping the caller's uid/gid to 0 inside it.
pub(super) fn unshare_net() -> Result<&'static str, LabError> {
    match unshare(libc::CLONE_NEWNET) {
        Ok(()) => return Ok("root"),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(LabError::setup("unshare(CLONE_NEWNET)", e)),
    }
    let threads = thread_count();
    if threads > 1 {
        return Err(LabError::Threads { threads });
    }
    // SAFETY: getuid/getgid take no arguments and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET).map_err(|e| {
        LabError::setup(
            "unshare(CLONE_NEWUSER | CLONE_NEWNET) (not root, so the lab needs unprivileged \
             user namespaces: check kernel.unprivileged_userns_clone / \
             user.max_user_namespaces, or run as root)",
            e,
        )
    })?;
    // An unprivileged process must deny setgroups before it may write gid_map.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    Ok("user-namespace")
}

pub(super) fn write_proc(path: &str, value: &str) -> Result<(), LabError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| LabError::setup(format!("writing {value:?} to {path}"), e))
}

/// Threads in this process (the "Threads:" line of /proc/self/status); 0 if unreadable,
/// which lets the kernel's own check decide.
fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

pub(super) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare() takes flags only; it changes this thread's namespaces.
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fd is a live namespace descriptor borrowed for the call; CLONE_NEWNET makes the
    // kernel check it is a network namespace. Only the calling thread moves.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's network namespace as an fd (thread-self: namespaces are per thread).
pub(super) fn open_current_netns() -> Result<OwnedFd, LabError> {
    fs::File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| LabError::setup("opening /proc/thread-self/ns/net", e))
}

/// Runs `f` in the server namespace and returns to the client namespace afterwards, also
/// when `f` panics.
pub(crate) fn in_server_ns<T>(ns: &Namespaces, f: impl FnOnce() -> T) -> Result<T, LabError> {
    match &ns.server {
        Some(server) => in_ns(server.as_fd(), ns.client.as_fd(), "server", f),
        None => Ok(f()),
    }
}

/// Runs `f` in the NAT's namespace and returns to the client namespace; None without one.
pub(crate) fn in_nat_ns<T>(ns: &Namespaces, f: impl FnOnce() -> T) -> Result<Option<T>, LabError> {
    match &ns.nat {
        Some(nat) => in_ns(nat.as_fd(), ns.client.as_fd(), "NAT", f).map(Some),
        None => Ok(None),
    }
}

/// Runs `f` with the calling thread in namespace `inside` (named `what` in errors), then moves
/// it back to `home`, also when `f` panics.
pub(super) fn in_ns<T>(
    inside: BorrowedFd<'_>,
    home: BorrowedFd<'_>,
    what: &str,
    f: impl FnOnce() -> T,
) -> Result<T, LabError> {
    /// Moves the thread back on drop. If that fails the thread would silently keep running
    /// in the wrong namespace, so the process aborts instead.
    struct Back<'a>(BorrowedFd<'a>);
    impl Drop for Back<'_> {
        fn drop(&mut self) {
            if let Err(e) = setns(self.0) {
                eprintln!("portlab: cannot return to the lab's home network namespace: {e}");
                std::process::abort();
            }
        }
    }
    setns(inside).map_err(|e| LabError::setup(format!("setns into the {what} namespace"), e))?;
    let _back = Back(home);
    Ok(f())
}

/// Sets IFF_UP on an interface of the calling thread's namespace with the classic
/// SIOCGIFFLAGS / SIOCSIFFLAGS ioctls on a throwaway datagram socket.
pub(super) fn interface_up(name: &str) -> io::Result<()> {
    // SAFETY: socket() takes no pointers; the result is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, zero flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::other(format!(
            "interface name {name:?} too long"
        )));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq with a NUL-terminated name that outlives the call;
    // SIOCGIFFLAGS fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just wrote ifru_flags, the union member read and written here.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads the name and flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes every sysctl in order, reading each back.
/// The netfilter table that makes conntrack keep an entry for every connection of the
/// calling thread's namespace: conntrack tracks a namespace only once a rule there uses it,
/// and any `ct` expression registers its hooks for the whole namespace. The chain only
/// counts new connections; it accepts everything.
const TRACKING_TABLE: &str = "table inet portlab {
  chain track { type filter hook output priority -150; policy accept; ct state new counter; }
}
";

/// With `plan.conntrack`, makes conntrack track the calling thread's namespace (see
/// [`TRACKING_TABLE`]) through Debian's `nft` tool, run as a child, which inherits this
/// thread's namespace; with `plan.conntrack_max`, adds the full-table emulation
/// ([`emulated_table`]) at `hook`, where the client's SYN first meets this namespace's
/// conntrack (output on loopback, prerouting in the server's namespace). Refused, before
/// any traffic, where the nf_conntrack module is not loaded: `nft` would make the kernel
/// load it, a change to the host.
fn track_connections(plan: &LabPlan, hook: &str) -> Result<(), LabError> {
    if !plan.conntrack {
        return Ok(());
    }
    conntrack_loaded("lab.conntrack")?;
    nft(TRACKING_TABLE, "adding the conntrack table with nft")?;
    let Some(max) = plan.conntrack_max else {
        return Ok(());
    };
    let timeout = |name: &str| {
        fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                LabError::setup(
                    format!("reading {name} for the emulated table"),
                    io::Error::other("unreadable"),
                )
            })
    };
    let table = emulated_table(
        max,
        hook,
        timeout("nf_conntrack_tcp_timeout_time_wait")?,
        timeout("nf_conntrack_tcp_timeout_close")?,
    );
    nft(
        &table,
        "adding the emulated conntrack table (lab.conntrack_max) with nft",
    )
}

/// The nftables table that emulates a conntrack table of `max` entries: a set of at most
/// `max` connections (by their original 4-tuple), each element kept until `time_wait_s`
/// after the connection's last packet (`close_s` after a reset), as conntrack keeps the
/// entry of a connection closed with a FIN (RST); a new connection that finds the set full
/// is dropped, as the kernel drops the packet of a connection it has no room for. Why a set:
/// nf_conntrack_max is host-wide (a namespace cannot lower it), and `ct count` counts open
/// connections only (nf_conncount drops those in TIME_WAIT or CLOSE), so it cannot stand in
/// for a table that fills with closed connections' entries. Named counters count the
/// admitted and the dropped.
pub(super) fn emulated_table(max: u64, hook: &str, time_wait_s: u64, close_s: u64) -> String {
    let key = "ct original ip saddr . ct original proto-src . ct original ip daddr . ct original proto-dst";
    format!(
        "table inet portlab_ctmax {{
  counter admitted {{ }}
  counter dropped {{ }}
  set entries {{
    type ipv4_addr . inet_service . ipv4_addr . inet_service
    size {max}
    flags dynamic,timeout
    timeout {time_wait_s}s
  }}
  chain admit {{
    type filter hook {hook} priority -150; policy accept;
    meta nfproto ipv4 meta l4proto tcp ct state new add @entries {{ {key} }} counter name \"admitted\" accept
    meta nfproto ipv4 meta l4proto tcp ct state new counter name \"dropped\" drop
    meta nfproto ipv4 meta l4proto tcp tcp flags & rst == rst update @entries {{ {key} timeout {close_s}s }} accept
    meta nfproto ipv4 meta l4proto tcp update @entries {{ {key} }}
  }}
}}
"
    )
}

/// Refuses `key` (which needs conntrack) where the nf_conntrack module is not loaded: `nft`
/// would make the kernel load it, a change to the host.
fn conntrack_loaded(key: &str) -> Result<(), LabError> {
    if std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        return Ok(());
    }
    Err(LabError::Conflict(format!(
        "{key}: the nf_conntrack module is not loaded on this host, and loading it would \
         change the host (portlab never does): run `modprobe nf_conntrack` yourself, or drop \
         {key}"
    )))
}

/// Refuses `lab.nat_ports` where NAT is a kernel module not loaded yet: the masquerade rule
/// would make the kernel load nf_nat, a change to the host. Built in (no module file), or
/// loaded (/sys/module/nf_nat), it goes on.
fn nat_loaded() -> Result<(), LabError> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}/kernel/net/netfilter", release.trim());
    let modular = fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("nf_nat.ko"))
    });
    if !modular || std::path::Path::new("/sys/module/nf_nat").exists() {
        return Ok(());
    }
    Err(LabError::Conflict(
        "lab.nat_ports: the nf_nat module is not loaded on this host, and the masquerade rule \
         would load it, a change to the host (portlab never makes one): run `modprobe nf_nat \
         nft_masq` yourself, or drop lab.nat_ports"
            .into(),
    ))
}

/// Runs Debian's `nft -f -` in the calling thread's namespace (a child inherits it) with
/// `ruleset` on its standard input.
/// Why the tool and not netlink here: an nftables ruleset is a batch of several netlink
/// messages (table, chain, rule with its expressions) whose encoding `nft` owns and keeps
/// current; portlab writes one fixed table once per lab.
fn nft(ruleset: &str, what: &str) -> Result<(), LabError> {
    let child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LabError::Conflict(
                "the lab's conntrack and NAT tables need the nft tool: install nftables \
                 (Debian: apt-get install nftables), or drop lab.conntrack and lab.nat_ports"
                    .into(),
            ))
        }
        Err(e) => return Err(LabError::setup("starting nft", e)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset.as_bytes())
            .map_err(|e| LabError::setup(format!("{what}: writing to nft"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::setup("waiting for nft", e))?;
    if !out.status.success() {
        return Err(LabError::setup(
            what.to_string(),
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    Ok(())
}

pub(super) fn write_all(sysctls: &[Sysctl]) -> Result<(), LabError> {
    for s in sysctls {
        write_sysctl(s)?;
    }
    Ok(())
}

/// Writes one sysctl in the calling thread's namespace and checks the kernel holds it.
pub(super) fn write_sysctl(s: &Sysctl) -> Result<(), LabError> {
    let k = s.knob;
    let path = k.path();
    let missing = || LabError::SysctlMissing {
        name: k.name,
        hint: k.missing,
    };
    // No create: a sysctl that does not exist must fail, never become a file.
    let mut f = match fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(LabError::setup(
                format!("opening {path} to set {} = {}", k.name, s.value),
                e,
            ))
        }
    };
    // An empty value (reserved_ports = "") must still be a write, so always add a newline.
    f.write_all(format!("{}\n", s.value).as_bytes())
        .map_err(|e| {
            LabError::setup(
                format!(
                    "writing {} = {:?} (the kernel refused the value)",
                    k.name, s.value
                ),
                e,
            )
        })?;
    drop(f);
    let got = read_sysctl(k)?.ok_or_else(missing)?;
    if !k.holds(&s.value, &got) {
        return Err(LabError::SysctlMismatch {
            name: k.name,
            wanted: s.value.clone(),
            got,
        });
    }
    Ok(())
}

/// Reads one sysctl with its whitespace normalized ("32768\t60999" -> "32768 60999");
/// Ok(None) when this kernel does not have it.
fn read_sysctl(k: &Knob) -> Result<Option<String>, LabError> {
    match fs::read_to_string(k.path()) {
        Ok(v) => Ok(Some(v.split_whitespace().collect::<Vec<_>>().join(" "))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LabError::setup(format!("reading {}", k.name), e)),
    }
}

pub(crate) fn read_settings() -> Result<BTreeMap<String, String>, LabError> {
    let mut out = BTreeMap::new();
    // MODEL_SYSCTLS, in registry order.
    for k in REGISTRY {
        if let Some(v) = read_sysctl(k)? {
            out.insert(k.name.to_string(), v);
        }
    }
    Ok(out)
}

// rtnetlink constants and layouts (linux/rtnetlink.h, linux/if_link.h, linux/veth.h,
// linux/if_addr.h). See sys/netlink.rs for why they are written by hand.
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const RTM_NEWROUTE: u16 = 24;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const IFA_LOCAL: u16 = 2;

/// `struct ifinfomsg`: u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change.
fn ifinfomsg(index: i32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// `struct ifaddrmsg`: u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index.
fn ifaddrmsg(prefix: u8, index: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = libc::AF_INET as u8;
    b[1] = prefix;
    // flags 0, scope 0 = RT_SCOPE_UNIVERSE
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// `struct rtmsg` for a unicast route in the main table: u8 family, dst_len, src_len, tos,
/// table, protocol, scope, type; u32 flags.
fn rtmsg(dst_len: u8) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = libc::AF_INET as u8;
    b[1] = dst_len;
    b[4] = libc::RT_TABLE_MAIN;
    b[5] = libc::RTPROT_BOOT;
    b[6] = libc::RT_SCOPE_UNIVERSE;
    b[7] = libc::RTN_UNICAST;
    b
}

/// The index of interface `ifname`, an rtnetlink socket and the request's sequence number:
/// what every address and route request starts with (`what` names it in errors).
fn route_socket(ifname: &str, what: &str) -> Result<(u32, NlSocket, u32), LabError> {
    let name =
        CString::new(ifname).map_err(|e| LabError::setup(what.to_string(), io::Error::other(e)))?;
    // SAFETY: name is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(LabError::setup(
            what.to_string(),
            io::Error::last_os_error(),
        ));
    }
    let mut nl =
        NlSocket::open(libc::NETLINK_ROUTE).map_err(|e| LabError::setup(what.to_string(), e))?;
    let seq = nl.next_seq();
    Ok((index, nl, seq))
}

/// Adds a default route via `gateway` on `ifname` in the calling thread's namespace: the
/// client's way to the server behind the NAT.
pub(super) fn add_default_route(ifname: &str, gateway: Ipv4Addr) -> Result<(), LabError> {
    let what = format!("adding a default route via {gateway} on {ifname} (rtnetlink RTM_NEWROUTE)");
    let (index, mut nl, seq) = route_socket(ifname, &what)?;
    let msg = MsgBuilder::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .raw(&rtmsg(0))
    .attr(RTA_GATEWAY, &gateway.octets())
    .attr(RTA_OIF, &index.to_ne_bytes())
    .finish();
    nl.request_ack(&msg, seq)
        .map_err(|e| LabError::setup(what, e))
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Creates the veth pair in the calling thread's namespace, its peer moved at creation into
/// the namespace behind `peer_ns` (IFLA_NET_NS_FD inside VETH_INFO_PEER).
fn create_veth(peer_ns: BorrowedFd<'_>) -> Result<(), LabError> {
    create_veth_pair(VETH_CLIENT_IF, VETH_SERVER_IF, peer_ns)
}

/// Creates veth `name` in the calling thread's namespace with its peer `peer_name` moved at
/// creation into the namespace behind `peer_ns`.
pub(super) fn create_veth_pair(
    name: &str,
    peer_name: &str,
    peer_ns: BorrowedFd<'_>,
) -> Result<(), LabError> {
    let err = |e| {
        LabError::setup(
            format!("creating the veth pair {name}/{peer_name} (rtnetlink RTM_NEWLINK)"),
            e,
        )
    };
    let mut nl = NlSocket::open(libc::NETLINK_ROUTE).map_err(err)?;
    let seq = nl.next_seq();
    let fd = peer_ns.as_raw_fd() as u32;
    let msg = MsgBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .raw(&ifinfomsg(0))
    .attr(IFLA_IFNAME, &cstr(name))
    .begin_nest(IFLA_LINKINFO)
    .attr(IFLA_INFO_KIND, b"veth")
    .begin_nest(IFLA_INFO_DATA)
    .begin_nest(VETH_INFO_PEER)
    // The peer is described by its own ifinfomsg followed by its attributes.
    .raw(&ifinfomsg(0))
    .attr(IFLA_IFNAME, &cstr(peer_name))
    .attr(IFLA_NET_NS_FD, &fd.to_ne_bytes())
    .finish();
    nl.request_ack(&msg, seq).map_err(err)
}

/// Adds `addr`/30 to an interface of the calling thread's namespace and brings it up.
fn add_addr_and_up(ifname: &str, addr: Ipv4Addr) -> Result<(), LabError> {
    add_peer_addr_and_up(ifname, addr, addr, VETH_PREFIX)
}

/// Adds `local` to an interface of the calling thread's namespace, with `peer`/`prefix` as
/// its other end (IFA_ADDRESS: a point-to-point address when it differs from `local`, whose
/// route to `peer` the kernel adds), and brings the interface up.
pub(super) fn add_peer_addr_and_up(
    ifname: &str,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    prefix: u8,
) -> Result<(), LabError> {
    let what = if local == peer {
        format!("adding {local}/{prefix} to {ifname} (rtnetlink RTM_NEWADDR)")
    } else {
        format!("adding {local} peer {peer}/{prefix} to {ifname} (rtnetlink RTM_NEWADDR)")
    };
    let (index, mut nl, seq) = route_socket(ifname, &what)?;
    let msg = MsgBuilder::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .raw(&ifaddrmsg(prefix, index))
    .attr(IFA_LOCAL, &local.octets())
    .attr(IFA_ADDRESS, &peer.octets())
    .finish();
    nl.request_ack(&msg, seq)
        .map_err(|e| LabError::setup(what, e))?;
    interface_up(ifname).map_err(|e| LabError::setup(format!("bringing {ifname} up"), e))
}
