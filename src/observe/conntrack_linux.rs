//! Linux: the conntrack table of the calling thread's network namespace.
//!
//! Counts and the table's size come from /proc (`nf_conntrack_count` and `_max` under
//! /proc/sys/net/netfilter, which resolve by the reading thread's namespace; the statistics
//! from /proc/thread-self/net/stat/nf_conntrack); the live entries from a ctnetlink dump on
//! a NETLINK_NETFILTER socket opened in that namespace (the wire format is read by hand as
//! for sock_diag, see `sys::netlink`).

use std::io;

use super::conntrack::{parse_entry, parse_stat, CtStats, CtTally};
use crate::sys::netlink::{
    ack_result, align4, MsgBuilder, NlSocket, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_DUMP,
    NLM_F_REQUEST,
};

/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET: the dump request.
const CT_GET: u16 = (1 << 8) | 1;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW: each entry of the answer.
const CT_NEW: u16 = 1 << 8;

/// A sysctl of this thread's namespace under /proc/sys/net/netfilter, as a number.
fn netfilter_sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// nf_conntrack_count and nf_conntrack_max of this thread's namespace (the max is the
/// host's: it cannot be set inside a namespace). None where conntrack is not loaded.
pub fn count_and_max() -> Option<(u64, u64)> {
    Some((
        netfilter_sysctl("nf_conntrack_count")?,
        netfilter_sysctl("nf_conntrack_max")?,
    ))
}

/// The conntrack statistics of this thread's namespace.
pub fn stats() -> Option<CtStats> {
    parse_stat(&std::fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack").ok()?)
}

/// A NETLINK_NETFILTER socket bound to the namespace of the thread that opened it, to list
/// its conntrack entries.
pub struct CtLister {
    nl: NlSocket,
}

impl CtLister {
    /// Opens the socket in the calling thread's namespace.
    pub fn open() -> io::Result<CtLister> {
        Ok(CtLister {
            nl: NlSocket::open(libc::NETLINK_NETFILTER)?,
        })
    }

    /// Dumps the table (both families) and counts its live entries. The dump also removes
    /// the expired entries it meets, so `nf_conntrack_count` read right after it counts
    /// only live ones.
    pub fn tally(&mut self) -> io::Result<CtTally> {
        let seq = self.nl.next_seq();
        // struct nfgenmsg: family AF_UNSPEC (every family), version NFNETLINK_V0, res_id 0.
        let msg = MsgBuilder::new(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq)
            .raw(&[0, 0, 0, 0])
            .finish();
        self.nl.send(&msg)?;
        let mut tally = CtTally::default();
        loop {
            let mut data = self.nl.recv()?;
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(io::Error::other("ctnetlink: malformed message length"));
                }
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let msg_seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                let payload = &data[NLMSG_HDRLEN..len];
                data = &data[align4(len).min(data.len())..];
                if msg_seq != seq {
                    continue;
                }
                match ty {
                    CT_NEW => {
                        if let Some(e) = parse_entry(payload) {
                            tally.add(&e);
                        }
                    }
                    NLMSG_DONE => return Ok(tally),
                    NLMSG_ERROR => {
                        ack_result(payload)?;
                        return Err(io::Error::other("ctnetlink: unexpected acknowledgement"));
                    }
                    _ => {}
                }
            }
        }
    }
}
