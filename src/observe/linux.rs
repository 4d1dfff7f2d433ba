//! Linux sampler: NETLINK_SOCK_DIAG dump (fallback /proc/net/tcp{,6}) and /proc/net counters.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::parse::{parse_proc_net_tcp_line, parse_sockstat_tw, parse_table};
use super::tally::{Tally, TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT};
use super::{Counter, KernelSample, SocketSource, TcpCounters};
use crate::lab::netlink::{
    ack_result, messages, MsgBuilder, NlSocket, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST,
};

/// nlmsg_type of an inet_diag request and its answers (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// Opened once, read every sample: the files and the netlink socket stay bound to the
/// namespace of the thread that made the sampler.
pub(crate) struct Sampler {
    target: SocketAddr,
    diag: Option<NlSocket>,
    snmp: Option<File>,
    netstat: Option<File>,
    sockstat: Option<File>,
    tcp: Option<File>,
    tcp6: Option<File>,
    buf: Vec<u8>,
}

fn open(name: &str) -> Option<File> {
    // thread-self, not self: a network namespace belongs to a thread, and /proc/self/net
    // shows the main thread's even when this thread is elsewhere (Applied::in_server_ns).
    File::open(format!("/proc/thread-self/net/{name}")).ok()
}

/// Rereads a /proc seq file from the start into `buf`.
fn reread<'a>(file: &mut Option<File>, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    let f = file.as_mut()?;
    buf.clear();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_to_end(buf).ok()?;
    std::str::from_utf8(buf).ok()
}

/// `struct inet_diag_req_v2` (linux/inet_diag.h), 56 bytes: u8 family, u8 protocol,
/// u8 ext, u8 pad, u32 states, then `struct inet_diag_sockid` (48 bytes: be16 sport,
/// be16 dport, be32 src[4], be32 dst[4], u32 if, u32 cookie[2]) left zero = no filter.
fn inet_diag_req_v2(family: u8, states: u32) -> [u8; 56] {
    let mut b = [0u8; 56];
    b[0] = family;
    b[1] = libc::IPPROTO_TCP as u8;
    b[4..8].copy_from_slice(&states.to_ne_bytes());
    b
}

/// Reads state and endpoints from a `struct inet_diag_msg` (linux/inet_diag.h): u8 family,
/// u8 state, u8 timer, u8 retrans, then inet_diag_sockid as above (addresses in network
/// order, IPv4 in the first 4 bytes), then fields not needed here.
fn parse_diag_msg(p: &[u8]) -> Option<(u8, SocketAddr, SocketAddr)> {
    if p.len() < 40 {
        return None;
    }
    let state = p[1];
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let ip = |b: &[u8]| -> Option<IpAddr> {
        match i32::from(p[0]) {
            libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            libc::AF_INET6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[..16]);
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => None,
        }
    };
    Some((
        state,
        SocketAddr::new(ip(&p[8..24])?, sport),
        SocketAddr::new(ip(&p[24..40])?, dport),
    ))
}

impl Sampler {
    pub(crate) fn new(target: SocketAddr) -> Sampler {
        Sampler {
            target,
            diag: NlSocket::open(libc::NETLINK_SOCK_DIAG).ok(),
            snmp: open("snmp"),
            netstat: open("netstat"),
            sockstat: open("sockstat"),
            tcp: open("tcp"),
            tcp6: open("tcp6"),
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    pub(crate) fn target(&self) -> SocketAddr {
        self.target
    }

    pub(crate) fn sample(&mut self) -> KernelSample {
        let mut out = KernelSample {
            tw_sockstat: reread(&mut self.sockstat, &mut self.buf).and_then(parse_sockstat_tw),
            ..KernelSample::default()
        };
        self.counters(&mut out.counters);

        let mut tally = Tally::new(self.target);
        let dumped = match &mut self.diag {
            Some(nl) => dump(nl, &mut tally).is_ok(),
            None => false,
        };
        if dumped {
            out.source = Some(SocketSource::SockDiag);
            tally.finish(&mut out);
        } else {
            // Netlink failed (or was never available): fall back for good, from a clean tally.
            self.diag = None;
            let mut tally = Tally::new(self.target);
            if self.proc_tcp(&mut tally) {
                out.source = Some(SocketSource::ProcNetTcp);
                tally.finish(&mut out);
            }
        }
        out
    }

    fn counters(&mut self, out: &mut TcpCounters) {
        if let Some(text) = reread(&mut self.snmp, &mut self.buf) {
            parse_table(text, "Tcp", |name, v| {
                if let Some(c) = counter(name, "Tcp") {
                    out.set(c, Some(v));
                }
            });
        }
        if let Some(text) = reread(&mut self.netstat, &mut self.buf) {
            parse_table(text, "TcpExt", |name, v| {
                if let Some(c) = counter(name, "TcpExt") {
                    out.set(c, Some(v));
                }
            });
        }
    }

    /// The slow path: every line of /proc/net/tcp and tcp6. False if neither could be read.
    fn proc_tcp(&mut self, tally: &mut Tally) -> bool {
        let mut any = false;
        for file in [&mut self.tcp, &mut self.tcp6] {
            if let Some(text) = reread(file, &mut self.buf) {
                any = true;
                for e in text.lines().filter_map(parse_proc_net_tcp_line) {
                    tally.add(e.state, e.local, e.remote);
                }
            }
        }
        any
    }
}

fn counter(name: &str, section: &str) -> Option<Counter> {
    Counter::ALL
        .iter()
        .copied()
        .find(|c| c.section() == section && c.name() == name)
}

/// One inet_diag dump per address family of the sockets in LISTEN, ESTABLISHED and
/// TIME_WAIT, counted as they arrive. The kernel walks the listening hash before the
/// established hash, so listeners are known before the TIME_WAIT sockets on their ports.
fn dump(nl: &mut NlSocket, tally: &mut Tally) -> io::Result<()> {
    let states = (1u32 << TCP_LISTEN) | (1u32 << TCP_ESTABLISHED) | (1u32 << TCP_TIME_WAIT);
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let seq = nl.next_seq();
        let msg = MsgBuilder::new(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq)
            .raw(&inet_diag_req_v2(family, states))
            .finish();
        nl.send(&msg)?;
        'family: loop {
            let data = nl.recv()?;
            for m in messages(data) {
                let m = m?;
                if m.seq != seq {
                    continue; // left over from an earlier, abandoned dump
                }
                match m.ty {
                    NLMSG_DONE => break 'family,
                    NLMSG_ERROR => {
                        ack_result(m.payload)?;
                        return Err(io::Error::other("sock_diag: unexpected acknowledgement"));
                    }
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some((state, local, remote)) = parse_diag_msg(m.payload) {
                            tally.add(state, local, remote);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diag_msg_layout() {
        let mut p = [0u8; 72];
        p[0] = libc::AF_INET as u8;
        p[1] = TCP_TIME_WAIT;
        p[4..6].copy_from_slice(&40000u16.to_be_bytes());
        p[6..8].copy_from_slice(&8080u16.to_be_bytes());
        p[8..12].copy_from_slice(&[127, 0, 0, 1]);
        p[24..28].copy_from_slice(&[127, 0, 0, 2]);
        let (state, local, remote) = parse_diag_msg(&p).expect("parses");
        assert_eq!(state, TCP_TIME_WAIT);
        assert_eq!(local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(remote, "127.0.0.2:8080".parse().unwrap());
        assert!(parse_diag_msg(&p[..39]).is_none());
        p[0] = 99;
        assert!(parse_diag_msg(&p).is_none());
    }

    #[test]
    fn request_layout() {
        let r = inet_diag_req_v2(libc::AF_INET6 as u8, 1 << TCP_TIME_WAIT);
        assert_eq!(r[0], libc::AF_INET6 as u8);
        assert_eq!(r[1], 6);
        assert_eq!(u32::from_ne_bytes([r[4], r[5], r[6], r[7]]), 64);
    }

    /// Reads the test process's own namespace: whatever is there, the sample must have
    /// every figure, from sock_diag, and sockstat must agree with the listing's TIME_WAIT
    /// count when nothing is changing (it may not be quiet: only compare loosely).
    #[test]
    fn samples_this_namespace() {
        let mut s = super::super::Sampler::new("127.0.0.1:9".parse().unwrap());
        let a = s.sample();
        assert_eq!(a.source, Some(SocketSource::SockDiag), "{a:?}");
        assert!(a.tw_total.is_some() && a.tw_sockstat.is_some());
        assert!(a.counters.get(Counter::InSegs).is_some());
        assert!(a.counters.get(Counter::TimeWaitOverflow).is_some());
        let b = s.sample();
        let d = b.delta(&a);
        assert!(d.get(Counter::ActiveOpens).is_some());
    }
}
