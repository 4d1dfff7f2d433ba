//! Counting sockets as they stream past (from a sock_diag dump or /proc/net/tcp), without
//! allocating per socket: fixed-size tables only.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::net::{IpAddr, SocketAddr};

use super::{DestinationCount, KernelSample, TOP_DESTINATIONS};

/// TCP states (include/net/tcp_states.h).
pub(crate) const TCP_ESTABLISHED: u8 = 1;
pub(crate) const TCP_TIME_WAIT: u8 = 6;
pub(crate) const TCP_LISTEN: u8 = 10;

/// Distinct destinations counted exactly per sample; beyond that they go to "other".
const DEST_SLOTS: usize = 64;
/// Listening ports remembered per sample (to tell server-side TIME_WAIT from client-side).
const LISTEN_SLOTS: usize = 64;

/// The running counts of one sample.
pub(crate) struct Tally {
    target: SocketAddr,
    tw_total: u64,
    tw_client: u64,
    tw_server: u64,
    established: u64,
    established_client: u64,
    listeners: [u16; LISTEN_SLOTS],
    n_listeners: usize,
    /// Destination counts, Space-Saving style: exact while at most DEST_SLOTS destinations
    /// are seen; beyond that a newcomer takes the smallest entry's slot and count + 1, so
    /// every destination seen more than total / DEST_SLOTS times is kept, its count an upper
    /// bound, and the counts still add up to the total.
    dests: [(SocketAddr, u64); DEST_SLOTS],
    n_dests: usize,
    dests_exact: bool,
}

/// v4-mapped IPv6 (::ffff:a.b.c.d, a dual-stack socket's view of IPv4) as plain IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

impl Tally {
    pub(crate) fn new(target: SocketAddr) -> Tally {
        Tally {
            target: canonical(target),
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
        }
    }

    /// Counts one socket. Listeners must come before the TIME_WAIT sockets on their ports to
    /// keep those out of the destination table (both the kernel's dump and /proc/net/tcp list
    /// the listening hash first).
    pub(crate) fn add(&mut self, state: u8, local: SocketAddr, remote: SocketAddr) {
        let local = canonical(local);
        let remote = canonical(remote);
        match state {
            TCP_TIME_WAIT => {
                self.tw_total += 1;
                if remote == self.target {
                    self.tw_client += 1;
                }
                let on_target = local.port() == self.target.port()
                    && (local.ip() == self.target.ip() || local.ip().is_unspecified());
                if on_target {
                    self.tw_server += 1;
                } else if !self.listeners[..self.n_listeners].contains(&local.port()) {
                    self.count_destination(remote);
                }
            }
            TCP_ESTABLISHED => {
                self.established += 1;
                if remote == self.target {
                    self.established_client += 1;
                }
            }
            TCP_LISTEN
                if self.n_listeners < LISTEN_SLOTS
                    && !self.listeners[..self.n_listeners].contains(&local.port()) =>
            {
                self.listeners[self.n_listeners] = local.port();
                self.n_listeners += 1;
            }
            _ => {}
        }
    }

    fn count_destination(&mut self, remote: SocketAddr) {
        // Usually one or two destinations: a linear scan, port compared first, is cheapest.
        let used = &mut self.dests[..self.n_dests];
        if let Some(e) = used
            .iter_mut()
            .find(|e| e.0.port() == remote.port() && e.0 == remote)
        {
            e.1 += 1;
            return;
        }
        if self.n_dests < DEST_SLOTS {
            self.dests[self.n_dests] = (remote, 1);
            self.n_dests += 1;
            return;
        }
        self.dests_exact = false;
        if let Some(min) = self.dests.iter_mut().min_by_key(|e| e.1) {
            *min = (remote, min.1 + 1);
        }
    }

    /// Writes the socket figures into a sample.
    pub(crate) fn finish(&self, out: &mut KernelSample) {
        out.tw_total = Some(self.tw_total);
        out.tw_client = Some(self.tw_client);
        out.tw_server = Some(self.tw_server);
        out.established = Some(self.established);
        out.established_client = Some(self.established_client);
        let mut top: Vec<DestinationCount> = self.dests[..self.n_dests]
            .iter()
            .map(|&(destination, time_wait)| DestinationCount {
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
