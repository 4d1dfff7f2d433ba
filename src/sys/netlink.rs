//! A minimal, synchronous netlink client on a raw libc socket.
//!
//! Why no crate: portlab needs four requests (create a veth pair, add an address, and an
//! inet_diag dump in `observe`), all synchronous and done once or once per interval. The
//! netlink crates are either async (rtnetlink, on tokio + futures) or large generic
//! message frameworks (netlink-packet-*: several crates and a lot of code for messages we do
//! not send). The wire format needed here is small and stable (it is kernel ABI), so it is
//! written by hand: every header is serialized field by field with `to_ne_bytes`, following
//! the uapi header it comes from, so there are no `repr(C)` transmutes and the only `unsafe`
//! is the system calls themselves.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct nlmsghdr` (linux/netlink.h): u32 len, u16 type, u16 flags, u32 seq, u32 pid.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// nlmsg_type of the end of a multipart dump (linux/netlink.h).
pub(crate) const NLMSG_DONE: u16 = 3;
/// nlmsg_type of an error or acknowledgement (linux/netlink.h).
pub(crate) const NLMSG_ERROR: u16 = 2;
/// nlmsg_flags (linux/netlink.h).
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_DUMP: u16 = 0x100 | 0x200; // NLM_F_ROOT | NLM_F_MATCH
/// Marks an attribute that contains attributes (linux/netlink.h).
const NLA_F_NESTED: u16 = 1 << 15;

/// Netlink messages and attributes are padded to 4 bytes (NLMSG_ALIGN / NLA_ALIGN).
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The size of one kernel dump datagram: the kernel caps a dump skb at 32 KiB, so a larger
/// buffer would never be filled.
const RECV_BUF: usize = 32 * 1024;

/// A netlink socket of one protocol (NETLINK_ROUTE, NETLINK_SOCK_DIAG), bound to the network
/// namespace of the thread that opened it, for the socket's whole life.
pub(crate) struct NlSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// Whether requests name the kernel's address (sendto) or go unaddressed (send,
    /// which an unconnected netlink socket also delivers to the kernel).
    addressed: bool,
}

/// One message as read from a datagram.
pub(crate) struct NlMsg<'a> {
    pub ty: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl NlSocket {
    pub(crate) fn open(protocol: libc::c_int) -> io::Result<NlSocket> {
        // SAFETY: socket() takes no pointers; the returned fd is checked before use and owned
        // by OwnedFd from here on (closed exactly once, on drop).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(NlSocket {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
            addressed: true,
        })
    }

    /// Opens a socket the kernel does not count as CAP_NET_ADMIN's, even when the calling
    /// thread has it: CAP_NET_ADMIN is dropped from the thread's effective set for the
    /// socket() call and put back right after (it stays permitted; capset(2) acts on the
    /// calling thread only). The kernel takes the capability of a dump's requester from the
    /// credentials the socket was opened with (netlink_net_capable -> file_ns_capable), so
    /// a sock_diag dump on this socket leaves out what only CAP_NET_ADMIN may read: for
    /// every TCP socket, an INET_DIAG_MARK attribute (8 bytes) that portlab never reads.
    /// Listed sockets and the `struct inet_diag_msg` of each are the same. Without the
    /// capability, or where capget(2) fails, this is [`NlSocket::open`].
    pub(crate) fn open_without_net_admin(protocol: libc::c_int) -> io::Result<NlSocket> {
        const CAP_NET_ADMIN: u32 = 12;
        // struct __user_cap_header_struct { u32 version; int pid } (pid 0: this thread) and
        // two struct __user_cap_data_struct { u32 effective, permitted, inheritable }.
        let mut header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3
        let mut data = [0u32; 6];
        // SAFETY: header and data are live arrays of the sizes capget(2) reads and writes.
        let got =
            unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) };
        if got != 0 || data[0] & (1 << CAP_NET_ADMIN) == 0 {
            return NlSocket::open(protocol);
        }
        let effective = data[0];
        data[0] = effective & !(1 << CAP_NET_ADMIN);
        // SAFETY: as above; capset(2) only reads them.
        if unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) } != 0 {
            return NlSocket::open(protocol);
        }
        // Requests on it are sent without an address: one sent to an explicit address
        // (NETLINK_SKB_DST) is judged by the sender's capabilities alone, not the socket's.
        let socket = NlSocket::open(protocol).map(|s| NlSocket {
            addressed: false,
            ..s
        });
        data[0] = effective;
        // SAFETY: as above. Raising a capability that is still permitted cannot fail for
        // lack of privilege; should it fail anyway, say so rather than go on without it.
        if unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        socket
    }

    /// The next sequence number, for a request about to be built.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one complete message to the kernel (port id 0).
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        // sockaddr_nl with nl_pid = 0 addresses the kernel; zeroed() gives nl_groups = 0.
        // SAFETY: sockaddr_nl is plain old data, valid when zeroed.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let (to, to_len) = if self.addressed {
            (
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        } else {
            (std::ptr::null(), 0)
        };
        // SAFETY: msg and addr are valid for the lengths given for the duration of the call
        // (a null address with length 0 is sendto's "no address").
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                to,
                to_len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != msg.len() {
            return Err(io::Error::other("netlink: short send"));
        }
        Ok(())
    }

    /// Receives one datagram into the socket's buffer and returns it.
    pub(crate) fn recv(&mut self) -> io::Result<&[u8]> {
        loop {
            // SAFETY: buf is a live, writable allocation of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(&self.buf[..n as usize]);
        }
    }

    /// Sends a request built with NLM_F_ACK and waits for its acknowledgement; a negative
    /// error code from the kernel becomes the matching io::Error.
    pub(crate) fn request_ack(&mut self, msg: &[u8], seq: u32) -> io::Result<()> {
        self.send(msg)?;
        loop {
            let data = self.recv()?;
            for m in messages(data) {
                let m = m?;
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    return ack_result(m.payload);
                }
            }
        }
    }
}

/// `struct nlmsgerr` starts with an i32 error: 0 is an ACK, negative an errno.
pub(crate) fn ack_result(payload: &[u8]) -> io::Result<()> {
    let code = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| io::Error::other("netlink: truncated error message"))?;
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-code))
    }
}

/// Iterates over the messages of one datagram without copying.
pub(crate) fn messages(mut data: &[u8]) -> impl Iterator<Item = io::Result<NlMsg<'_>>> {
    std::iter::from_fn(move || {
        if data.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            data = &[];
            return Some(Err(io::Error::other("netlink: malformed message length")));
        }
        let msg = NlMsg {
            ty: u16::from_ne_bytes([data[4], data[5]]),
            seq: u32::from_ne_bytes([data[8], data[9], data[10], data[11]]),
            payload: &data[NLMSG_HDRLEN..len],
        };
        data = &data[align4(len).min(data.len())..];
        Some(Ok(msg))
    })
}

/// Builds one netlink message: header, fixed family header, attributes (possibly nested).
pub(crate) struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// Starts a message; the length field is filled in by [`MsgBuilder::finish`].
    pub(crate) fn new(ty: u16, flags: u16, seq: u32) -> MsgBuilder {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: 0, the kernel fills it
        MsgBuilder {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw bytes (a family header), padded to 4.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len());
        self.buf.resize(n, 0);
    }

    /// Appends one attribute (`struct nlattr`: u16 len, u16 type, payload, padding).
    pub(crate) fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// Opens a nested attribute; close it with [`MsgBuilder::end_nest`].
    pub(crate) fn begin_nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute, patching its length.
    pub(crate) fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message with its length set.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_lays_out_header_and_nested_attrs() {
        let msg = MsgBuilder::new(16, NLM_F_REQUEST, 7)
            .raw(&[1, 2, 3]) // padded to 4
            .begin_nest(18)
            .attr(1, b"veth") // 4 + 4
            .end_nest()
            .finish();
        assert_eq!(msg.len(), 16 + 4 + 4 + 8);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().unwrap()), 16);
        assert_eq!(u32::from_ne_bytes(msg[8..12].try_into().unwrap()), 7);
        assert_eq!(&msg[16..20], &[1, 2, 3, 0]);
        // nest: len 12, type 18 | NESTED
        assert_eq!(u16::from_ne_bytes(msg[20..22].try_into().unwrap()), 12);
        assert_eq!(
            u16::from_ne_bytes(msg[22..24].try_into().unwrap()),
            18 | NLA_F_NESTED
        );
        assert_eq!(&msg[28..32], b"veth");
    }

    #[test]
    fn messages_split_a_datagram_and_reject_bad_lengths() {
        let a = MsgBuilder::new(NLMSG_DONE, 0, 1).raw(&[9; 5]).finish();
        let b = MsgBuilder::new(NLMSG_ERROR, 0, 2)
            .raw(&0i32.to_ne_bytes())
            .finish();
        let mut data = a.clone();
        data.extend_from_slice(&b);
        let got: Vec<_> = messages(&data).collect::<io::Result<_>>().expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].ty, got[0].seq, got[0].payload.len()),
            (NLMSG_DONE, 1, 8)
        );
        assert!(ack_result(got[1].payload).is_ok());
        let mut bad = a;
        bad[0] = 200;
        assert!(messages(&bad).next().expect("one item").is_err());
        assert_eq!(
            ack_result(&(-libc::EEXIST).to_ne_bytes())
                .expect_err("error")
                .raw_os_error(),
            Some(libc::EEXIST)
        );
    }
}
