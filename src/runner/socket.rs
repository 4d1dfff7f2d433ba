//! Client socket set-up with socket2: options, then bind as the plan's bind mode says.
//!
//! Each step reports its own phase, so EMFILE at socket(), EADDRINUSE at bind() and
//! EADDRNOTAVAIL at connect() are told apart.

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
    /// IP_LOCAL_PORT_RANGE as the kernel takes it: (hi << 16) | lo.
    local_port_range: Option<u32>,
    sources: Vec<IpAddr>,
    /// Round robin over `sources`, and over the ports of a `range` bind.
    next: AtomicU64,
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
            local_port_range: client
                .local_port_range
                .map(|r| (u32::from(r.hi) << 16) | u32::from(r.lo)),
            sources: client.sources.clone(),
            next: AtomicU64::new(0),
        }
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

    /// A new non-blocking, unconnected socket, options set and bound as the plan says.
    pub fn open(&self) -> Result<std::net::TcpStream, Failure> {
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
        if let Some(range) = self.local_port_range {
            opt(os::local_port_range(&socket, range))?;
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

    /// IP_LOCAL_PORT_RANGE (Linux 6.3+; libc has no constant for it yet): the ports this
    /// socket may be given, `(hi << 16) | lo`, within ip_local_port_range.
    pub fn local_port_range(socket: &Socket, range: u32) -> std::io::Result<()> {
        const IP_LOCAL_PORT_RANGE: libc::c_int = 51;
        // SAFETY: a valid fd owned by `socket`, a u32 option value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_LOCAL_PORT_RANGE,
                (&range as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
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

    /// Only Linux has IP_LOCAL_PORT_RANGE; the plan refuses `local_port_range` elsewhere.
    pub fn local_port_range(_socket: &Socket, _range: u32) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}
