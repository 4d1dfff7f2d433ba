//! Counting sockets as they stream past (from a sock_diag dump or /proc/net/tcp), without
//! allocating per socket: fixed-size tables only.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::net::{IpAddr, SocketAddr};

use super::{DestinationCount, KernelSample, TOP_DESTINATIONS};

/// TCP states (include/net/tcp_states.h).
pub(crate) const TCP_ESTABLISHED: u8 = 1;
pub(crate) const TCP_SYN_SENT: u8 = 2;
pub(crate) const TCP_TIME_WAIT: u8 = 6;
pub(crate) const TCP_LISTEN: u8 = 10;

/// Distinct destinations counted exactly per sample; beyond that they go to "other".
const DEST_SLOTS: usize = 64;
/// Listening ports remembered per sample (to tell server-side TIME_WAIT from client-side).
const LISTEN_SLOTS: usize = 64;

/// The running counts of one sample.
pub(crate) struct Tally {
    target: SocketAddr,
    /// The target port in network byte order, and its address as the kernel would show it
    /// in an AF_INET socket (4 bytes, when the target is IPv4) and in an AF_INET6 socket
    /// (16 bytes: v4-mapped for an IPv4 target): compared as raw bytes on the hot path.
    port_be: [u8; 2],
    ip4: Option<[u8; 4]>,
    ip6: [u8; 16],
    tw_total: u64,
    tw_client: u64,
    tw_server: u64,
    established: u64,
    established_client: u64,
    listeners: [u16; LISTEN_SLOTS],
    n_listeners: usize,
    /// Counts of destinations other than the target (the target's is `tw_client`),
    /// Space-Saving style: exact while at most DEST_SLOTS destinations are seen; beyond
    /// that a newcomer takes the smallest entry's slot and count + 1, so every destination
    /// seen more than total / DEST_SLOTS times is kept, its count an upper bound, and the
    /// counts still add up to the total.
    dests: [(SocketAddr, u64); DEST_SLOTS],
    n_dests: usize,
    dests_exact: bool,
    /// The raw remote (address bytes, port, address length) last counted and its slot in
    /// `dests`: consecutive sockets toward one destination skip building an address.
    last: Option<([u8; 19], usize)>,
    /// Client-side sockets (TIME_WAIT or ESTABLISHED, local port not a listener) toward any
    /// destination, and the distinct local ports among them (a bit per port): equal counts
    /// with many sockets toward several destinations mean no port served two destinations,
    /// as when a client binds port 0 before connect() (one range for all destinations).
    client_held: u64,
    client_ports: u64,
    port_bits: super::port_set::PortSet,
}

/// v4-mapped IPv6 (::ffff:a.b.c.d, a dual-stack socket's view of IPv4) as plain IPv4.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// An address as raw bytes: 4 for IPv4, 16 for IPv6 (network order).
pub(crate) fn ip_bytes(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
    }
}

pub(crate) fn endpoint(addr: &[u8], port_be: [u8; 2]) -> SocketAddr {
    let ip = match <[u8; 4]>::try_from(addr) {
        Ok(v4) => IpAddr::from(v4),
        Err(_) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&addr[..16]);
            IpAddr::from(o)
        }
    };
    canonical(SocketAddr::new(ip, u16::from_be_bytes(port_be)))
}

impl Tally {
    pub(crate) fn new(target: SocketAddr) -> Tally {
        let target = canonical(target);
        let (ip4, ip6) = match target.ip() {
            IpAddr::V4(v4) => (Some(v4.octets()), v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => (None, v6.octets()),
        };
        Tally {
            target,
            port_be: target.port().to_be_bytes(),
            ip4,
            ip6,
            tw_total: 0,
            tw_client: 0,
            tw_server: 0,
            established: 0,
            established_client: 0,
            listeners: [0; LISTEN_SLOTS],
            n_listeners: 0,
            dests: [(SocketAddr::from(([0, 0, 0, 0], 0)), 0); DEST_SLOTS],
            n_dests: 0,
            dests_exact: true,
            last: None,
            client_held: 0,
            client_ports: 0,
            port_bits: super::port_set::PortSet::new(),
        }
    }

    /// The target the sides are split by.
    pub(crate) fn target(&self) -> SocketAddr {
        self.target
    }

    fn is_target_ip(&self, addr: &[u8]) -> bool {
        match addr.len() {
            4 => self.ip4.is_some_and(|t| t == addr),
            _ => self.ip6 == addr,
        }
    }

    /// Notes a client-side socket's local port.
    fn held(&mut self, lport: [u8; 2]) {
        self.client_held += 1;
        if self.port_bits.insert(u16::from_be_bytes(lport)) {
            self.client_ports += 1;
        }
    }

    fn on_listener(&self, lport: [u8; 2]) -> bool {
        self.listeners[..self.n_listeners].contains(&u16::from_be_bytes(lport))
    }

    /// Counts one socket given as parsed addresses (the /proc/net/tcp path and tests).
    pub(crate) fn add(&mut self, state: u8, local: SocketAddr, remote: SocketAddr) {
        let (mut lb, mut rb) = ([0u8; 16], [0u8; 16]);
        let l = ip_bytes(local.ip(), &mut lb);
        let r = ip_bytes(remote.ip(), &mut rb);
        self.add_raw(
            state,
            l,
            local.port().to_be_bytes(),
            r,
            remote.port().to_be_bytes(),
        );
    }

    /// Counts one socket given as raw bytes, as sock_diag delivers it: addresses of 4 (IPv4)
    /// or 16 (IPv6) bytes and ports in network order. The common cases (a TIME_WAIT toward
    /// the target, on the target) are byte compares; only other destinations build an
    /// address. Listeners must come before the TIME_WAIT sockets on their ports to keep
    /// those out of the destination table (both the kernel's dump and /proc/net/tcp list the
    /// listening hash first).
    pub(crate) fn add_raw(
        &mut self,
        state: u8,
        laddr: &[u8],
        lport: [u8; 2],
        raddr: &[u8],
        rport: [u8; 2],
    ) {
        match state {
            TCP_TIME_WAIT => {
                self.tw_total += 1;
                if rport == self.port_be && self.is_target_ip(raddr) {
                    self.tw_client += 1;
                    self.held(lport);
                } else if lport == self.port_be
                    && (self.is_target_ip(laddr) || laddr.iter().all(|&b| b == 0))
                {
                    self.tw_server += 1;
                } else if !self.on_listener(lport) {
                    self.held(lport);
                    let mut key = [0u8; 19];
                    key[..raddr.len()].copy_from_slice(raddr);
                    key[16..18].copy_from_slice(&rport);
                    key[18] = raddr.len() as u8;
                    match self.last {
                        Some((k, slot)) if k == key => self.dests[slot].1 += 1,
                        _ => {
                            let slot = self.count_destination(endpoint(raddr, rport));
                            self.last = Some((key, slot));
                        }
                    }
                }
            }
            TCP_ESTABLISHED => {
                self.established += 1;
                if rport == self.port_be && self.is_target_ip(raddr) {
                    self.established_client += 1;
                }
                if !self.on_listener(lport) && lport != self.port_be {
                    self.held(lport);
                }
            }
            TCP_LISTEN
                if self.n_listeners < LISTEN_SLOTS
                    && !self.listeners[..self.n_listeners].contains(&u16::from_be_bytes(lport)) =>
            {
                self.listeners[self.n_listeners] = u16::from_be_bytes(lport);
                self.n_listeners += 1;
            }
            _ => {}
        }
    }

    /// Counts one socket toward `remote` and returns the slot that holds it.
    fn count_destination(&mut self, remote: SocketAddr) -> usize {
        // Usually a handful of destinations: a linear scan, port compared first, is cheapest.
        if let Some(i) = self.dests[..self.n_dests]
            .iter()
            .position(|e| e.0.port() == remote.port() && e.0 == remote)
        {
            self.dests[i].1 += 1;
            return i;
        }
        if self.n_dests < DEST_SLOTS {
            self.dests[self.n_dests] = (remote, 1);
            self.n_dests += 1;
            return self.n_dests - 1;
        }
        self.dests_exact = false;
        let mut min = 0;
        for i in 1..DEST_SLOTS {
            if self.dests[i].1 < self.dests[min].1 {
                min = i;
            }
        }
        self.dests[min] = (remote, self.dests[min].1 + 1);
        min
    }

    /// Writes the socket figures into a sample.
    pub(crate) fn finish(&self, out: &mut KernelSample) {
        out.tw_total = Some(self.tw_total);
        out.tw_client = Some(self.tw_client);
        out.tw_server = Some(self.tw_server);
        out.established = Some(self.established);
        out.established_client = Some(self.established_client);
        out.client_held = Some(self.client_held);
        out.client_ports = Some(self.client_ports);
        let target = (self.tw_client > 0).then_some((self.target, self.tw_client));
        let mut top: Vec<DestinationCount> = self.dests[..self.n_dests]
            .iter()
            .copied()
            .chain(target)
            .map(|(destination, time_wait)| DestinationCount {
                destination,
                time_wait,
            })
            .collect();
        top.sort_by(|a, b| {
            b.time_wait
                .cmp(&a.time_wait)
                .then(a.destination.cmp(&b.destination))
        });
        let listed: u64 = top.iter().take(TOP_DESTINATIONS).map(|d| d.time_wait).sum();
        let all: u64 = top.iter().map(|d| d.time_wait).sum();
        top.truncate(TOP_DESTINATIONS);
        out.tw_by_destination = Some(top);
        out.tw_other_destinations = Some(all - listed);
        out.tw_destinations_exact = Some(self.dests_exact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn splits_sides_and_destinations() {
        let mut t = Tally::new(a("127.0.0.1:8080"));
        // Listeners first, as the kernel lists them.
        t.add(TCP_LISTEN, a("0.0.0.0:8080"), a("0.0.0.0:0"));
        t.add(TCP_LISTEN, a("[::]:22"), a("[::]:0"));
        // Client side: three toward the target, one of them through a dual-stack socket.
        t.add(TCP_TIME_WAIT, a("127.0.0.1:40000"), a("127.0.0.1:8080"));
        t.add(TCP_TIME_WAIT, a("127.0.0.1:40001"), a("127.0.0.1:8080"));
        t.add(
            TCP_TIME_WAIT,
            a("[::ffff:127.0.0.1]:40002"),
            a("[::ffff:127.0.0.1]:8080"),
        );
        // Another destination.
        t.add(TCP_TIME_WAIT, a("127.0.0.1:40003"), a("127.0.0.2:9000"));
        // Server side on the target port (closed first by the server).
        t.add(TCP_TIME_WAIT, a("127.0.0.1:8080"), a("127.0.0.1:50000"));
        // Server side on another listening port: not a destination, not the target.
        t.add(TCP_TIME_WAIT, a("[::1]:22"), a("[::1]:50001"));
        t.add(TCP_ESTABLISHED, a("127.0.0.1:40005"), a("127.0.0.1:8080"));
        t.add(TCP_ESTABLISHED, a("127.0.0.1:8080"), a("127.0.0.1:40005"));
        let mut s = KernelSample::default();
        t.finish(&mut s);
        assert_eq!(s.tw_total, Some(6));
        assert_eq!(s.tw_client, Some(3));
        assert_eq!(s.tw_server, Some(1));
        assert_eq!(s.established, Some(2));
        assert_eq!(s.established_client, Some(1));
        assert_eq!(
            s.tw_by_destination,
            Some(vec![
                DestinationCount {
                    destination: a("127.0.0.1:8080"),
                    time_wait: 3
                },
                DestinationCount {
                    destination: a("127.0.0.2:9000"),
                    time_wait: 1
                },
            ])
        );
        assert_eq!(s.tw_other_destinations, Some(0));
        assert_eq!(s.tw_destinations_exact, Some(true));
        // Client side: 40000-40003 in TIME_WAIT and 40005 ESTABLISHED, each its own port.
        assert_eq!((s.client_held, s.client_ports), (Some(5), Some(5)));
    }

    #[test]
    fn a_local_port_toward_two_destinations_is_counted_once() {
        let mut t = Tally::new(a("127.0.0.1:8080"));
        t.add(TCP_LISTEN, a("0.0.0.0:8080"), a("0.0.0.0:0"));
        t.add(TCP_LISTEN, a("0.0.0.0:8081"), a("0.0.0.0:0"));
        // connect() reused 40000 toward the second destination (a different 4-tuple).
        t.add(TCP_TIME_WAIT, a("127.0.0.1:40000"), a("127.0.0.1:8080"));
        t.add(TCP_TIME_WAIT, a("127.0.0.1:40000"), a("127.0.0.1:8081"));
        t.add(TCP_ESTABLISHED, a("127.0.0.1:40002"), a("127.0.0.1:8081"));
        // The servers' own sides are not the client's.
        t.add(TCP_ESTABLISHED, a("127.0.0.1:8081"), a("127.0.0.1:40002"));
        t.add(TCP_TIME_WAIT, a("127.0.0.1:8081"), a("127.0.0.1:40009"));
        let mut s = KernelSample::default();
        t.finish(&mut s);
        assert_eq!((s.client_held, s.client_ports), (Some(3), Some(2)));
    }

    #[test]
    fn destinations_stay_bounded() {
        let mut t = Tally::new(a("10.0.0.1:80"));
        // 1000 distinct destinations, one of them heavy.
        for i in 0..1000u32 {
            let port = 1000 + i as u16;
            t.add(
                TCP_TIME_WAIT,
                a("127.0.0.1:40000"),
                SocketAddr::new(a("127.0.0.9:0").ip(), port),
            );
        }
        for _ in 0..50 {
            t.add(TCP_TIME_WAIT, a("127.0.0.1:40001"), a("127.0.0.9:80"));
        }
        let mut s = KernelSample::default();
        t.finish(&mut s);
        let top = s.tw_by_destination.expect("listed");
        assert_eq!(top.len(), TOP_DESTINATIONS);
        // The heavy destination arrived after the table filled and is still on top, its
        // count an upper bound (50 + the smallest count it displaced).
        assert_eq!(top[0].destination, a("127.0.0.9:80"));
        assert!(top[0].time_wait >= 50, "{top:?}");
        assert_eq!(s.tw_destinations_exact, Some(false));
        let listed: u64 = top.iter().map(|d| d.time_wait).sum();
        assert_eq!(listed + s.tw_other_destinations.expect("other"), 1050);
    }
}
