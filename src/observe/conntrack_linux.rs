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
        let mut tally = CtTally::default();
        self.each(|e| tally.add(e))?;
        Ok(tally)
    }

    /// Dumps the table (both families), giving each live entry to `f`.
    pub fn each(&mut self, mut f: impl FnMut(&super::conntrack::CtEntry)) -> io::Result<()> {
        let seq = self.nl.next_seq();
        // struct nfgenmsg: family AF_UNSPEC (every family), version NFNETLINK_V0, res_id 0.
        let msg = MsgBuilder::new(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq)
            .raw(&[0, 0, 0, 0])
            .finish();
        self.nl.send(&msg)?;
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
                            f(&e);
                        }
                    }
                    NLMSG_DONE => return Ok(()),
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

/// One namespace's conntrack statistics file, kept open: bound to the namespace it was
/// opened in (as a netlink socket is), so that it can be reread from any thread.
pub struct CtTable {
    stat: std::fs::File,
    /// nf_conntrack_tcp_timeout_time_wait where it was opened, seconds.
    pub time_wait_s: Option<u64>,
    /// nf_conntrack_tcp_timeout_close, seconds.
    pub close_s: Option<u64>,
    /// nf_conntrack_max (host-wide).
    pub max: Option<u64>,
}

impl CtTable {
    /// Opens the calling thread's namespace's table; fails where nf_conntrack is not loaded.
    pub fn open() -> io::Result<CtTable> {
        Ok(CtTable {
            stat: std::fs::File::open("/proc/thread-self/net/stat/nf_conntrack")?,
            time_wait_s: netfilter_sysctl("nf_conntrack_tcp_timeout_time_wait"),
            close_s: netfilter_sysctl("nf_conntrack_tcp_timeout_close"),
            max: netfilter_sysctl("nf_conntrack_max"),
        })
    }

    /// The count and statistics now.
    pub fn read(&mut self) -> Option<CtStats> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        self.stat.seek(SeekFrom::Start(0)).ok()?;
        self.stat.read_to_string(&mut text).ok()?;
        parse_stat(&text)
    }
}

/// The conntrack table of one namespace over a run: its statistics file reread every
/// interval, and a dump of the live entries at the end.
pub struct CtSampler {
    table: CtTable,
    lister: CtLister,
    baseline: Option<CtStats>,
    last: Option<CtStats>,
    count_max: u64,
    /// When `count` last ran: the run's last timeline sample, at the end of its drain.
    counted_at: Option<std::time::Instant>,
    /// The namespace it was opened in and the emulated table's size, when the lab emulates
    /// a full table there (`lab.conntrack_max`): its counters are read with `nft` in that
    /// namespace at the end.
    emulated: Option<(std::os::fd::OwnedFd, u64)>,
}

impl CtSampler {
    /// Opens the calling thread's namespace's table (call it inside the namespace).
    pub fn open() -> io::Result<CtSampler> {
        let mut s = CtSampler {
            table: CtTable::open()?,
            lister: CtLister::open()?,
            baseline: None,
            last: None,
            count_max: 0,
            counted_at: None,
            emulated: None,
        };
        s.baseline = s.read();
        Ok(s)
    }

    fn read(&mut self) -> Option<CtStats> {
        self.table.read()
    }

    /// Notes that the calling thread's namespace (call it there, as [`CtSampler::open`])
    /// holds the lab's emulated table of `max` entries.
    pub fn emulating(mut self, max: Option<u64>) -> io::Result<CtSampler> {
        if let Some(max) = max {
            let ns = std::fs::File::open("/proc/thread-self/ns/net")?;
            self.emulated = Some((ns.into(), max));
        }
        Ok(self)
    }
}

/// The emulated table's counters (admitted, dropped), read with `nft list table inet
/// portlab_ctmax` run in namespace `ns`: the child enters it before exec.
fn emulated_counters(ns: &std::os::fd::OwnedFd) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let fd = ns.as_raw_fd();
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["list", "table", "inet", "portlab_ctmax"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec the child only calls setns(2), which is
    // async-signal-safe, on a descriptor it inherited.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some((
        super::conntrack::nft_counter(&text, "admitted")?,
        super::conntrack::nft_counter(&text, "dropped")?,
    ))
}

impl super::conntrack::ConntrackSource for CtSampler {
    /// nf_conntrack_count now (expired entries included until the collector runs).
    fn count(&mut self) -> Option<u64> {
        let now = self.read()?;
        self.count_max = self.count_max.max(now.entries);
        let n = now.entries;
        self.last = Some(now);
        self.counted_at = Some(std::time::Instant::now());
        Some(n)
    }

    /// What the run saw: the counts, the statistics' changes, and the live entries of a
    /// dump made now.
    fn summary(&mut self) -> super::conntrack::ConntrackSummary {
        let last_sample = self.counted_at;
        let counted_end = self.count();
        let dumped = std::time::Instant::now();
        let live = self.lister.tally().ok();
        let dump_s = dumped.elapsed().as_secs_f64();
        let changes = match (&self.baseline, &self.last) {
            (Some(b), Some(l)) => l
                .counters
                .iter()
                .filter(|(k, _)| super::conntrack::REPORTED_STATS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k))))
                .collect(),
            _ => Default::default(),
        };
        super::conntrack::ConntrackSummary {
            count_max: self.count_max,
            count_end: counted_end,
            live_end: live.as_ref().map(|t| t.live),
            nat_mappings: live
                .as_ref()
                .map(|t| {
                    t.nat_by_destination
                        .iter()
                        .map(|((public, dst), n)| (format!("{public} -> {dst}"), n.all))
                        .collect()
                })
                .unwrap_or_default(),
            live_by_state: live
                .map(|t| {
                    t.by_state
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                })
                .unwrap_or_default(),
            stats: changes,
            time_wait_s: self.table.time_wait_s,
            close_s: self.table.close_s,
            max: self.table.max,
            live_after_last_sample_s: last_sample.map(|t| dumped.duration_since(t).as_secs_f64()),
            live_dump_s: Some(dump_s),
            last_sample_s: None,
            model_live: None,
            hold_s: None,
            emulated: self.emulated.as_ref().map(|(ns, max)| {
                let counted = emulated_counters(ns);
                super::conntrack::EmulatedTable {
                    max: *max,
                    admitted: counted.map(|c| c.0),
                    dropped: counted.map(|c| c.1),
                    full_from_s: None,
                    model_admitted: None,
                }
            }),
        }
    }
}
