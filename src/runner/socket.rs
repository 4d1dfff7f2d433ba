//! Client socket set-up with socket2: options, then bind as the plan's bind mode says.
//!
//! Each step reports its own phase, so EMFILE at socket(), EADDRINUSE at bind() and
//! EADDRNOTAVAIL at connect() are told apart.

use super::slices::{self, Slices};
use crate::collect::{Failure, Phase};
use crate::plan::{BindMode, Client, CloseMode};
use socket2::{Domain, Protocol, SockAddr, Socket};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Everything needed to open client sockets toward the target(s); shared by all workers.
#[derive(Debug)]
pub struct SocketFactory {
    /// Destinations, used round robin (one, unless the plan asks for several).
    targets: Vec<SocketAddr>,
    /// Round robin over `targets` (untouched with a single destination).
    next_target: AtomicU64,
    reuse_addr: bool,
    nodelay: bool,
    linger: Option<Duration>,
    bind: BindMode,
    /// The user's own per-socket port range (client.local_port_range: IP_LOCAL_PORT_RANGE).
    local_port_range: Option<(u16, u16)>,
    sources: Vec<IpAddr>,
    /// Round robin over `sources`, and over the ports of a `range` bind.
    next: AtomicU64,
    /// Per-socket port slices (IP_LOCAL_PORT_RANGE) when connect() picks the port from a
    /// large range; None: the kernel's global search ([`slices`] says why and when).
    slices: Option<Slices>,
    /// Why slices were wanted but could not be had (the kernel lacks the option).
    slices_unavailable: Option<String>,
}

impl SocketFactory {
    /// A factory for the client settings of a plan, toward `targets` (at least one, all of
    /// one address family), taken in turn.
    pub fn new(client: &Client, targets: &[SocketAddr]) -> SocketFactory {
        assert!(!targets.is_empty(), "a SocketFactory needs a destination");
        let linger = match client.close {
            CloseMode::Reset => Some(Duration::ZERO),
            CloseMode::Linger(n) => Some(Duration::from_secs(u64::from(n))),
            CloseMode::Active | CloseMode::Passive => None,
        };
        SocketFactory {
            targets: targets.to_vec(),
            next_target: AtomicU64::new(0),
            reuse_addr: client.reuse_addr,
            nodelay: client.nodelay,
            linger,
            bind: client.bind,
            local_port_range: client.local_port_range.map(|r| (r.lo, r.hi)),
            sources: client.sources.clone(),
            next: AtomicU64::new(0),
            slices: None,
            slices_unavailable: None,
        }
        .with_port_slices(matches!(
            client.close,
            CloseMode::Active | CloseMode::Linger(_)
        ))
    }

    /// Decides on port slices (see [`slices`]): the client holds its ports after close
    /// (`client_holds`: active close or linger; otherwise a port is free again as soon as its
    /// connection ends, the search finds one at once, and the allocator's own choice of ports
    /// decides how many 4-tuples the server's TIME_WAIT holds), connect() picks the port (bind
    /// auto or no-port, at most one source address), one destination, a range of at least
    /// [`slices::MIN_PORTS`] ports with none reserved, slices not turned off
    /// (PORTLAB_PORT_SLICES), and a kernel that takes IP_LOCAL_PORT_RANGE.
    fn with_port_slices(mut self, client_holds: bool) -> SocketFactory {
        let size = match slices::wanted_size(std::env::var(slices::ENV).ok().as_deref()) {
            Ok(Some(size)) => size,
            // Off, or a bad value (refused by the engine before any traffic).
            _ => return self,
        };
        let connect_picks = matches!(self.bind, BindMode::Auto | BindMode::NoPort);
        // A range of the user's own (client.local_port_range) is the socket's one range.
        if self.local_port_range.is_some()
            || !client_holds
            || !connect_picks
            || self.sources.len() > 1
            || self.targets.len() != 1
        {
            return self;
        }
        let Some((lo, hi)) = os::usable_range() else {
            return self;
        };
        if u32::from(hi) - u32::from(lo) + 1 < slices::MIN_PORTS {
            return self;
        }
        match os::probe_local_port_range(Domain::for_address(self.targets[0]), (lo, hi)) {
            Ok(()) => self.slices = Slices::cover(lo, hi, size),
            Err(e) => {
                self.slices_unavailable = Some(format!(
                    "IP_LOCAL_PORT_RANGE is not available here ({e}; it needs Linux 6.3+): connect() searches the whole {lo}-{hi} range for each port, which slows down as the range fills, so a large range may exhaust later than P / R"
                ))
            }
        }
        self
    }

    /// How many port slices each socket's connect() searches in turn; None: the global search.
    pub fn port_slices(&self) -> Option<usize> {
        self.slices.as_ref().map(Slices::len)
    }

    /// Set when slices were wanted but the kernel lacks IP_LOCAL_PORT_RANGE: a warning.
    pub fn slices_unavailable(&self) -> Option<&str> {
        self.slices_unavailable.as_deref()
    }

    /// The destination of the next connection: the only one, or the next in turn.
    pub fn target(&self) -> SocketAddr {
        match self.targets.len() {
            1 => self.targets[0],
            n => {
                let i = self.next_target.fetch_add(1, Ordering::Relaxed) % n as u64;
                self.targets[i as usize]
            }
        }
    }

    /// A new non-blocking, unconnected socket for attempt `seq` (counting from 1), options
    /// set and bound as the plan says; with port slices, narrowed to the attempt's slice.
    pub fn open(&self, seq: u64) -> Result<std::net::TcpStream, Failure> {
        let domain = Domain::for_address(self.targets[0]);
        let socket = Socket::new(domain, os::STREAM, Some(Protocol::TCP))
            .map_err(|e| Failure::new(Phase::Socket, &e))?;
        let opt = |r: std::io::Result<()>| r.map_err(|e| Failure::new(Phase::Socket, &e));
        if !os::NONBLOCKING_AT_CREATION {
            opt(socket.set_nonblocking(true))?;
        }
        if self.reuse_addr {
            opt(socket.set_reuse_address(true))?;
        }
        if self.nodelay {
            opt(socket.set_tcp_nodelay(true))?;
        }
        if let Some(l) = self.linger {
            opt(socket.set_linger(Some(l)))?;
        }
        // The user's own range (client.local_port_range), or this attempt's slice: both are
        // IP_LOCAL_PORT_RANGE, so one excludes the other (see with_port_slices).
        if let Some(range) = self.local_port_range {
            opt(os::set_local_port_range(&socket, range))?;
        } else if let Some(s) = &self.slices {
            opt(os::set_local_port_range(&socket, s.for_attempt(seq)))?;
        }
        let turn = if self.sources.len() > 1 || matches!(self.bind, BindMode::Range(..)) {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let source = match self.sources.len() {
            0 => None,
            n => Some(self.sources[(turn % n as u64) as usize]),
        };
        let unspecified = || match self.targets[0] {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let bind_to = match self.bind {
            // connect() picks the port; with a source address, defer the port to connect()
            // where the OS allows it, so ports stay shared across destinations.
            BindMode::Auto => source.map(|ip| {
                if cfg!(target_os = "linux") {
                    let _ = os::bind_address_no_port(&socket);
                }
                SocketAddr::new(ip, 0)
            }),
            BindMode::AnyPort => Some(SocketAddr::new(source.unwrap_or_else(unspecified), 0)),
            BindMode::NoPort => {
                opt(os::bind_address_no_port(&socket))?;
                Some(SocketAddr::new(source.unwrap_or_else(unspecified), 0))
            }
            BindMode::Range(lo, hi) => {
                let span = u64::from(hi - lo) + 1;
                let port = lo + (turn % span) as u16;
                Some(SocketAddr::new(source.unwrap_or_else(unspecified), port))
            }
        };
        if let Some(addr) = bind_to {
            socket
                .bind(&SockAddr::from(addr))
                .map_err(|e| Failure::new(Phase::Bind, &e))?;
        }
        Ok(socket.into())
    }
}

#[cfg(target_os = "linux")]
mod os {
    use socket2::{Socket, Type};
    use std::os::fd::AsRawFd;

    /// SOCK_STREAM | SOCK_NONBLOCK: one socket() call instead of socket() and two fcntl().
    pub const STREAM: Type = Type::STREAM.nonblocking();
    /// Whether [`STREAM`] already makes the socket non-blocking.
    pub const NONBLOCKING_AT_CREATION: bool = true;

    pub use super::os_slices::*;

    /// IP_BIND_ADDRESS_NO_PORT: bind(ip, 0) reserves no port; connect() picks it per 4-tuple.
    /// socket2 has no setter for it, so this is the one raw setsockopt.
    pub fn bind_address_no_port(socket: &Socket) -> std::io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: a valid fd owned by `socket`, a c_int option value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(target_os = "linux")]
mod os_slices {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsRawFd;

    /// IP_LOCAL_PORT_RANGE (include/uapi/linux/in.h; the libc crate does not name it yet).
    const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

    /// This namespace's ip_local_port_range, when no port of it is reserved
    /// (ip_local_reserved_ports): the kernel skips reserved ports, so slices holding some
    /// would be smaller than the others and fill first.
    pub fn usable_range() -> Option<(u16, u16)> {
        let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"));
        let range = read("ip_local_port_range").ok()?;
        let mut it = range
            .split_whitespace()
            .filter_map(|p| p.parse::<u16>().ok());
        let (lo, hi) = (it.next()?, it.next()?);
        let range = crate::plan::PortRange::new(lo, hi).ok()?;
        let reserved = read("ip_local_reserved_ports").unwrap_or_default();
        let reserved = crate::plan::PortRange::parse_list(reserved.trim()).ok()?;
        reserved
            .iter()
            .all(|r| r.overlap(range) == 0)
            .then_some((lo, hi))
    }

    /// Narrows connect()'s port search for this socket to `lo..=hi`.
    pub fn set_local_port_range(socket: &Socket, (lo, hi): (u16, u16)) -> std::io::Result<()> {
        let value: u32 = (u32::from(hi) << 16) | u32::from(lo);
        // SAFETY: a valid fd owned by `socket`, a u32 option value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_LOCAL_PORT_RANGE,
                (&value as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Whether this kernel takes IP_LOCAL_PORT_RANGE, on a throwaway socket of `domain`.
    pub fn probe_local_port_range(domain: Domain, range: (u16, u16)) -> std::io::Result<()> {
        let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        set_local_port_range(&socket, range)
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use socket2::{Socket, Type};

    /// A plain stream socket, made non-blocking after creation.
    pub const STREAM: Type = Type::STREAM;
    /// See the Linux version.
    pub const NONBLOCKING_AT_CREATION: bool = false;

    /// Only Linux has IP_BIND_ADDRESS_NO_PORT; the plan refuses `no-port` elsewhere.
    pub fn bind_address_no_port(_socket: &Socket) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    /// Port slices are Linux's (IP_LOCAL_PORT_RANGE): elsewhere connect() keeps the OS's
    /// own search, so there is no range to slice.
    pub fn usable_range() -> Option<(u16, u16)> {
        None
    }

    /// Never called (no usable range); see the Linux version.
    pub fn set_local_port_range(_socket: &Socket, _range: (u16, u16)) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    /// See the Linux version.
    pub fn probe_local_port_range(
        _domain: socket2::Domain,
        _range: (u16, u16),
    ) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}
