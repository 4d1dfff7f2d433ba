//! Linux sampler: NETLINK_SOCK_DIAG dump (fallback /proc/net/tcp{,6}) and /proc/net counters.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;

use super::parse::{parse_proc_net_tcp_line, parse_sockstat_tw, parse_table};
use super::tally::{Tally, TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT};
use super::{Counter, KernelSample, SocketSource, TcpCounters};
use crate::sys::netlink::{
    ack_result, align4, MsgBuilder, NlSocket, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_DUMP,
    NLM_F_REQUEST,
};

/// nlmsg_type of an inet_diag request and its answers (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// Opened once, read every sample: the files and the netlink socket stay bound to the
/// namespace of the thread that made the sampler.
pub(crate) struct Sampler {
    target: SocketAddr,
    diag: Option<SocketLister>,
    counters: CounterFiles,
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

/// `struct inet_diag_req` (linux/inet_diag.h), the legacy request, 60 bytes: u8 family,
/// u8 src_len, u8 dst_len, u8 ext, inet_diag_sockid (48 bytes, zero = no filter),
/// u32 states, u32 dbs. Sent as TCPDIAG_GETSOCK, the kernel runs it as a v2 dump with
/// family AF_UNSPEC (inet_diag_dump_compat): IPv4 and IPv6 in ONE walk of the established
/// hash instead of two, which is most of the cost with 100,000 TIME_WAIT sockets.
fn inet_diag_req_legacy(states: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    b[52..56].copy_from_slice(&states.to_ne_bytes());
    b
}

/// One socket of a sock_diag dump, borrowed from the datagram (nothing is allocated).
pub(crate) struct DiagSocket<'a> {
    /// TCP state (include/net/tcp_states.h).
    pub state: u8,
    /// Local address: 4 bytes (IPv4) or 16 (IPv6), network order.
    pub laddr: &'a [u8],
    /// Local port, network order.
    pub lport: [u8; 2],
    /// Remote address, as `laddr`.
    pub raddr: &'a [u8],
    /// Remote port, network order.
    pub rport: [u8; 2],
    /// idiag_expires: milliseconds until the socket's timer fires (for TIME_WAIT: until the
    /// socket ends; it entered TIME_WAIT TCP_TIMEWAIT_LEN = 60 s before that).
    pub expires_ms: u32,
}

/// Reads one `struct inet_diag_msg` (linux/inet_diag.h, 72 bytes): u8 family, u8 state,
/// u8 timer, u8 retrans, inet_diag_sockid (be16 sport, be16 dport, be32 src[4],
/// be32 dst[4], u32 if, u32 cookie[2]), u32 expires, u32 rqueue, u32 wqueue, u32 uid,
/// u32 inode. Addresses are in network order, IPv4 in the first 4 bytes. None for a
/// message too short or of another family.
pub(crate) fn parse_diag_msg(p: &[u8]) -> Option<DiagSocket<'_>> {
    if p.len() < 56 {
        return None;
    }
    let len = match i32::from(p[0]) {
        libc::AF_INET => 4,
        libc::AF_INET6 => 16,
        _ => return None,
    };
    Some(DiagSocket {
        state: p[1],
        laddr: &p[8..8 + len],
        lport: [p[4], p[5]],
        raddr: &p[24..24 + len],
        rport: [p[6], p[7]],
        expires_ms: u32::from_ne_bytes([p[52], p[53], p[54], p[55]]),
    })
}

/// Feeds one `struct inet_diag_msg` to the tally. Returns false for a message too short or
/// of another family.
fn tally_diag_msg(p: &[u8], tally: &mut Tally) -> bool {
    match parse_diag_msg(p) {
        Some(s) => {
            tally.add_raw(s.state, s.laddr, s.lport, s.raddr, s.rport);
            true
        }
        None => false,
    }
}

/// How the sockets are listed; the first that works is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DiagMode {
    /// One legacy TCPDIAG_GETSOCK dump covering both families.
    Combined,
    /// One SOCK_DIAG_BY_FAMILY (inet_diag_req_v2) dump per family.
    PerFamily,
}

impl Sampler {
    pub(crate) fn new(target: SocketAddr) -> Sampler {
        Sampler {
            target,
            diag: SocketLister::open().ok(),
            counters: CounterFiles::open(),
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
        self.counters.read(&mut out.counters, &mut self.buf);

        let mut sink = TallySink(Tally::new(self.target));
        let mut dumped = false;
        if let Some(lister) = &mut self.diag {
            let states = (1u32 << TCP_LISTEN) | (1u32 << TCP_ESTABLISHED) | (1u32 << TCP_TIME_WAIT);
            dumped = lister.list(states, &mut sink).is_ok();
        }
        if dumped {
            out.source = Some(SocketSource::SockDiag);
            sink.0.finish(&mut out);
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

/// nlmsg_type of the legacy request, and of its answers (linux/inet_diag.h).
const TCPDIAG_GETSOCK: u16 = 18;

/// Where a dump's socket messages go.
pub(crate) trait DiagSink {
    /// Forget what was received: the dump starts again.
    fn restart(&mut self);
    /// One raw `struct inet_diag_msg`.
    fn socket(&mut self, msg: &[u8]);
}

/// The run's sampler counts into a [`Tally`].
struct TallySink(Tally);

impl DiagSink for TallySink {
    fn restart(&mut self) {
        self.0 = Tally::new(self.0.target());
    }
    fn socket(&mut self, msg: &[u8]) {
        tally_diag_msg(msg, &mut self.0);
    }
}

/// A NETLINK_SOCK_DIAG socket that lists TCP sockets, bound to the network namespace of the
/// thread that opened it. Used by the run's [`Sampler`] and by `portlab watch`.
pub(crate) struct SocketLister {
    nl: NlSocket,
    mode: DiagMode,
}

impl SocketLister {
    /// Opens the netlink socket (in the calling thread's network namespace), without
    /// CAP_NET_ADMIN's view: each TIME_WAIT socket then comes as 88 bytes instead of 96
    /// (no INET_DIAG_MARK attribute, which portlab never reads), which cut the kernel's
    /// time per dump (benches/README.md, "A cheaper sample").
    pub(crate) fn open() -> io::Result<SocketLister> {
        Ok(SocketLister {
            nl: NlSocket::open_without_net_admin(libc::NETLINK_SOCK_DIAG)?,
            mode: DiagMode::Combined,
        })
    }

    /// Opens the netlink socket with whatever capabilities the thread has (the lister as
    /// it was before [`SocketLister::open`] left CAP_NET_ADMIN out; the bench compares them).
    pub(crate) fn open_privileged() -> io::Result<SocketLister> {
        Ok(SocketLister {
            nl: NlSocket::open(libc::NETLINK_SOCK_DIAG)?,
            mode: DiagMode::Combined,
        })
    }

    /// Lists the sockets in `states` (a bit per TCP state), handing every raw
    /// `struct inet_diag_msg` to `sink` as it arrives (read it with [`parse_diag_msg`]). The
    /// kernel walks the listening hash before the established hash, so listeners come first.
    /// When the one combined dump is refused, the sink is told to start over and the dump is
    /// made again per family (and stays so); an error means neither worked.
    pub(crate) fn list<S: DiagSink + ?Sized>(
        &mut self,
        states: u32,
        sink: &mut S,
    ) -> io::Result<()> {
        let first = dump(&mut self.nl, self.mode, states, sink);
        if first.is_err() && self.mode == DiagMode::Combined {
            // A kernel without the legacy request: one dump per family from now on.
            self.mode = DiagMode::PerFamily;
            sink.restart();
            return dump(&mut self.nl, self.mode, states, sink);
        }
        first
    }
}

/// /proc/net/snmp and /proc/net/netstat of the namespace of the thread that opened them.
pub(crate) struct CounterFiles {
    snmp: Option<File>,
    netstat: Option<File>,
}

impl CounterFiles {
    pub(crate) fn open() -> CounterFiles {
        CounterFiles {
            snmp: open("snmp"),
            netstat: open("netstat"),
        }
    }

    /// Rereads both files into `out` (what cannot be read stays None); `buf` is scratch.
    pub(crate) fn read(&mut self, out: &mut TcpCounters, buf: &mut Vec<u8>) {
        if let Some(text) = reread(&mut self.snmp, buf) {
            parse_table(text, "Tcp", |name, v| {
                if let Some(c) = counter(name, "Tcp") {
                    out.set(c, Some(v));
                }
            });
        }
        if let Some(text) = reread(&mut self.netstat, buf) {
            parse_table(text, "TcpExt", |name, v| {
                if let Some(c) = counter(name, "TcpExt") {
                    out.set(c, Some(v));
                }
            });
        }
    }
}

/// Lists the sockets in `states`, handing each message's payload to `sink`.
fn dump<S: DiagSink + ?Sized>(
    nl: &mut NlSocket,
    mode: DiagMode,
    states: u32,
    sink: &mut S,
) -> io::Result<()> {
    match mode {
        DiagMode::Combined => {
            let seq = nl.next_seq();
            let msg = MsgBuilder::new(TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, seq)
                .raw(&inet_diag_req_legacy(states))
                .finish();
            nl.send(&msg)?;
            drain(nl, seq, TCPDIAG_GETSOCK, sink)
        }
        DiagMode::PerFamily => {
            for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                let seq = nl.next_seq();
                let msg = MsgBuilder::new(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq)
                    .raw(&inet_diag_req_v2(family, states))
                    .finish();
                nl.send(&msg)?;
                drain(nl, seq, SOCK_DIAG_BY_FAMILY, sink)?;
            }
            Ok(())
        }
    }
}

/// Receives a dump to its NLMSG_DONE, handing each socket message to `sink`. Walks the
/// datagram by hand (header fields read in place) since this loop runs once per socket.
fn drain<S: DiagSink + ?Sized>(
    nl: &mut NlSocket,
    seq: u32,
    reply: u16,
    sink: &mut S,
) -> io::Result<()> {
    loop {
        let mut data = nl.recv()?;
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if len < NLMSG_HDRLEN || len > data.len() {
                return Err(io::Error::other("sock_diag: malformed message length"));
            }
            let ty = u16::from_ne_bytes([data[4], data[5]]);
            let msg_seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
            let payload = &data[NLMSG_HDRLEN..len];
            data = &data[align4(len).min(data.len())..];
            if msg_seq != seq {
                continue; // left over from an earlier, abandoned dump
            }
            if ty == reply {
                sink.socket(payload);
            } else if ty == NLMSG_DONE {
                return Ok(());
            } else if ty == NLMSG_ERROR {
                ack_result(payload)?;
                return Err(io::Error::other("sock_diag: unexpected acknowledgement"));
            }
        }
    }
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
        let mut t = Tally::new("127.0.0.2:8080".parse().unwrap());
        assert!(tally_diag_msg(&p, &mut t));
        assert!(!tally_diag_msg(&p[..39], &mut t));
        // An IPv6 socket holding a v4-mapped address counts toward an IPv4 target.
        let mut q = [0u8; 72];
        q[0] = libc::AF_INET6 as u8;
        q[1] = TCP_TIME_WAIT;
        q[6..8].copy_from_slice(&8080u16.to_be_bytes());
        q[24..40].copy_from_slice(
            &"::ffff:127.0.0.2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert!(tally_diag_msg(&q, &mut t));
        q[0] = 99;
        assert!(!tally_diag_msg(&q, &mut t));
        let mut s = KernelSample::default();
        t.finish(&mut s);
        assert_eq!((s.tw_total, s.tw_client), (Some(2), Some(2)));
    }

    #[test]
    fn legacy_request_layout() {
        let r = inet_diag_req_legacy(1 << TCP_TIME_WAIT);
        assert_eq!(r[0], 0, "family AF_UNSPEC: both");
        assert_eq!(u32::from_ne_bytes([r[52], r[53], r[54], r[55]]), 64);
    }

    #[test]
    fn request_layout() {
        let r = inet_diag_req_v2(libc::AF_INET6 as u8, 1 << TCP_TIME_WAIT);
        assert_eq!(r[0], libc::AF_INET6 as u8);
        assert_eq!(r[1], 6);
        assert_eq!(u32::from_ne_bytes([r[4], r[5], r[6], r[7]]), 64);
    }

    /// One listed socket: (state, local address, local port, remote address, remote port).
    type Listed = (u8, Vec<u8>, [u8; 2], Vec<u8>, [u8; 2]);

    /// What a dump gave for the sockets of one port: the sockets and each message's
    /// (state, length).
    #[derive(Default)]
    struct OnPort(u16, Vec<Listed>, Vec<(u8, usize)>);

    impl DiagSink for OnPort {
        fn restart(&mut self) {
            self.1.clear();
            self.2.clear();
        }
        fn socket(&mut self, msg: &[u8]) {
            if let Some(s) = parse_diag_msg(msg) {
                let port = self.0.to_be_bytes();
                if s.lport == port || s.rport == port {
                    let entry = (
                        s.state,
                        s.laddr.to_vec(),
                        s.lport,
                        s.raddr.to_vec(),
                        s.rport,
                    );
                    self.1.push(entry);
                    self.2.push((s.state, msg.len()));
                }
            }
        }
    }

    /// The lister that leaves CAP_NET_ADMIN out lists the same sockets, each with the same
    /// fields, as one opened with the thread's capabilities; when the thread has
    /// CAP_NET_ADMIN, only the privileged one's TIME_WAIT messages carry the mark (longer
    /// than the 72-byte inet_diag_msg). Loopback sockets of this test on a port of its own:
    /// a listener, an established pair and a client TIME_WAIT.
    #[test]
    fn without_net_admin_the_same_sockets_are_listed() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let port = listener.local_addr().expect("its address").port();
        let _idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _idle_server = listener.accept().expect("accept");
        let closing = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        drop(closing); // the client closes first: TIME_WAIT is its, once the server closes
        let mut buf = [0u8; 8];
        while server.read(&mut buf).expect("read to EOF") > 0 {}
        drop(server);
        let mut plain = SocketLister::open().expect("sock_diag");
        let mut privileged = SocketLister::open_privileged().expect("sock_diag");
        let states = (1u32 << TCP_LISTEN) | (1u32 << TCP_ESTABLISHED) | (1u32 << TCP_TIME_WAIT);
        let list = |l: &mut SocketLister| {
            let mut got = OnPort(port, Vec::new(), Vec::new());
            l.list(states, &mut got).expect("a dump");
            got.1.sort();
            got
        };
        let (a, b) = (list(&mut plain), list(&mut privileged));
        assert_eq!(a.1, b.1, "the same sockets, field for field");
        assert_eq!(
            a.1.len(),
            4,
            "listener, established pair, TIME_WAIT: {:?}",
            a.1
        );
        assert!(a.1.iter().any(|s| s.0 == TCP_TIME_WAIT), "{:?}", a.1);
        let tw_len = |o: &OnPort| o.2.iter().find(|s| s.0 == TCP_TIME_WAIT).map(|s| s.1);
        assert_eq!(tw_len(&a), Some(72), "no attribute without CAP_NET_ADMIN");
        let mut data = [0u32; 6];
        let mut header = [0x2008_0522u32, 0];
        // SAFETY: capget(2) writes the arrays given, of the sizes it expects.
        let ok =
            unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) } == 0;
        if ok && data[0] & (1 << 12) != 0 {
            assert!(
                tw_len(&b) > Some(72),
                "the mark with CAP_NET_ADMIN: {:?}",
                b.2
            );
        }
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

    /// The per-family request and the /proc fallback work too (on the test's own namespace,
    /// which may be busy, so only their presence and source are checked).
    #[test]
    fn per_family_and_proc_fallbacks_work() {
        let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut per_family = Sampler::new(target);
        if let Some(l) = per_family.diag.as_mut() {
            l.mode = DiagMode::PerFamily;
        }
        let s = per_family.sample();
        assert_eq!(s.source, Some(SocketSource::SockDiag));
        assert!(s.tw_total.is_some() && s.tw_client.is_some());
        let mut proc_only = Sampler::new(target);
        proc_only.diag = None;
        let s = proc_only.sample();
        assert_eq!(s.source, Some(SocketSource::ProcNetTcp));
        assert!(s.tw_total.is_some() && s.established.is_some());
    }
}
