//! Linux: enter the namespace to watch on a thread of its own, and sample it with the
//! observer's sock_diag lister and counter files.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{Aggregator, Snapshot, Source, WatchArgs, WatchError};
use crate::model::host::host_input;
use crate::model::{ModelInput, TwReuse};
use crate::observe::tally::{TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT, TCP_TIME_WAIT};
use crate::observe::{parse_diag_msg, Counter, CounterFiles, DiagSink, SocketLister, TcpCounters};
use crate::say::Output;

/// The namespace's settings as the model reads them: the sysctls of the calling thread's
/// network namespace (/proc/sys resolves net.* by the reading thread's namespace), with
/// tcp_tw_reuse taken as 0 when timestamps are off (reuse needs them).
pub(super) fn settings() -> ModelInput {
    let settings = crate::lab::read_settings().unwrap_or_default();
    let mut input = host_input(&settings);
    if settings
        .get("net.ipv4.tcp_timestamps")
        .is_some_and(|v| v.trim() == "0")
    {
        input.tw_reuse = TwReuse::Off;
        input.timestamps = false;
    }
    input
}

/// How often the namespace's sysctls are reread, seconds of the sample clock: nine /proc/sys
/// files (ip_local_port_range, tcp_tw_reuse, ...), about 0.25 ms of CPU, which change when
/// an operator writes them, not every sample. At the default interval (1 s) every sample
/// rereads them; at 10 ms, one in a hundred.
pub const SETTINGS_EVERY_S: f64 = 1.0;

/// Samples the network namespace of the thread that made it (sock_diag, /proc/net/snmp,
/// /proc/sys), reusing its buffers and tables from one sample to the next.
pub struct KernelSource {
    lister: SocketLister,
    counters: CounterFiles,
    buf: Vec<u8>,
    agg: Aggregator,
    clock: Instant,
    /// The settings as read where the source was opened, for a source sampled from
    /// another namespace's thread (`--all-netns`: /proc/sys answers for the reader's
    /// namespace); None: reread them where sampled, every [`SETTINGS_EVERY_S`].
    fixed: Option<ModelInput>,
    /// The settings last read and when (sample clock, seconds).
    settings: ModelInput,
    settings_read_s: f64,
    settings_every_s: f64,
    /// The namespace's conntrack table and a ctnetlink socket to dump it, None where
    /// nf_conntrack is not loaded.
    conntrack: Option<(
        crate::observe::conntrack_linux::CtTable,
        Option<crate::observe::conntrack_linux::CtLister>,
    )>,
    /// The last dump's TIME_WAIT ages, NAT mappings and when it was made (sample clock,
    /// seconds).
    conntrack_ages: Option<(f64, super::Ages, Vec<super::conntrack::NatMappings>)>,
    /// A NAT's pool toward one destination (`--nat-ports`).
    nat_pool: u64,
}

/// How often the conntrack table is dumped for its TIME_WAIT ages, seconds of the sample
/// clock: a dump costs the kernel about 2 us per entry (100 samples of a namespace holding
/// 28,309 entries: 67.6 ms of system time each against 11.4 ms without the dump), and the
/// rate it gives is measured over 5 s or more anyway. Between dumps the last one's rate
/// stands.
pub const CONNTRACK_DUMP_EVERY_S: f64 = 5.0;

struct Sink<'a>(&'a mut Aggregator, ModelInput);

impl DiagSink for Sink<'_> {
    fn restart(&mut self) {
        self.0.reset(self.1.clone());
    }
    fn socket(&mut self, msg: &[u8]) {
        if let Some(s) = parse_diag_msg(msg) {
            self.0
                .add_raw(s.state, s.laddr, s.lport, s.raddr, s.rport, s.expires_ms);
        }
    }
}

impl KernelSource {
    /// Opens the netlink socket and /proc files in the calling thread's namespace.
    pub fn new(filter: Option<std::net::SocketAddr>) -> Result<KernelSource, WatchError> {
        let lister = SocketLister::open().map_err(|e| WatchError::Io {
            what: "opening a NETLINK_SOCK_DIAG socket".into(),
            source: e,
        })?;
        let input = settings();
        Ok(KernelSource {
            lister,
            counters: CounterFiles::open(),
            buf: Vec::with_capacity(16 * 1024),
            agg: Aggregator::new(input.clone(), filter),
            clock: Instant::now(),
            settings: input,
            settings_read_s: 0.0,
            settings_every_s: SETTINGS_EVERY_S,
            fixed: None,
            conntrack: crate::observe::conntrack_linux::CtTable::open()
                .ok()
                .map(|t| (t, crate::observe::conntrack_linux::CtLister::open().ok())),
            conntrack_ages: None,
            nat_pool: super::conntrack::DEFAULT_NAT_POOL,
        })
    }

    /// The NAT's pool its mappings are judged against (`--nat-ports`).
    pub fn with_nat_pool(mut self, ports: Option<u32>) -> KernelSource {
        if let Some(p) = ports {
            self.nat_pool = u64::from(p);
        }
        self
    }

    /// As [`KernelSource::new`], to be sampled from any thread: the namespace's settings
    /// are read now and kept (renewed with [`KernelSource::set_settings`]).
    pub fn new_portable(filter: Option<std::net::SocketAddr>) -> Result<KernelSource, WatchError> {
        let mut s = KernelSource::new(filter)?;
        s.fixed = Some(s.settings.clone());
        Ok(s)
    }

    /// The settings to use from now on (read in the source's namespace).
    pub fn set_settings(&mut self, input: ModelInput) {
        self.fixed = Some(input);
    }

    /// Rereads the sysctls at most every `secs` of the sample clock (0: every sample, as
    /// before [`SETTINGS_EVERY_S`]).
    #[doc(hidden)]
    pub fn set_settings_every(&mut self, secs: f64) {
        self.settings_every_s = secs;
    }

    /// Samples as before the sample was made cheaper: sysctls reread every sample and the
    /// sock_diag socket opened with CAP_NET_ADMIN's view (a mark attribute on every
    /// socket). For the bench, which times both side by side on the same sockets.
    #[doc(hidden)]
    pub fn sample_as_before(&mut self) -> Result<(), WatchError> {
        self.settings_every_s = 0.0;
        self.lister = SocketLister::open_privileged().map_err(|e| WatchError::Io {
            what: "opening a NETLINK_SOCK_DIAG socket".into(),
            source: e,
        })?;
        Ok(())
    }

    /// The namespace's settings, reread when the last read is `settings_every_s` old.
    fn settings_at(&mut self, mono_s: f64) -> ModelInput {
        if mono_s - self.settings_read_s >= self.settings_every_s {
            self.settings = settings();
            self.settings_read_s = mono_s;
        }
        self.settings.clone()
    }
}

impl Source for KernelSource {
    fn active_opens(&mut self) -> Option<(f64, u64)> {
        let mono_s = self.clock.elapsed().as_secs_f64();
        let mut counters = TcpCounters::default();
        self.counters.read(&mut counters, &mut self.buf);
        counters.get(Counter::ActiveOpens).map(|a| (mono_s, a))
    }

    fn snapshot(&mut self) -> Result<Snapshot, WatchError> {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mono_s = self.clock.elapsed().as_secs_f64();
        let input = match &self.fixed {
            Some(fixed) => fixed.clone(),
            None => self.settings_at(mono_s),
        };
        self.agg.reset(input.clone());
        let states = (1u32 << TCP_LISTEN)
            | (1u32 << TCP_SYN_SENT)
            | (1u32 << TCP_ESTABLISHED)
            | (1u32 << TCP_TIME_WAIT);
        self.lister
            .list(states, &mut Sink(&mut self.agg, input))
            .map_err(|e| WatchError::Io {
                what: "listing sockets through sock_diag".into(),
                source: e,
            })?;
        let mut counters = TcpCounters::default();
        self.counters.read(&mut counters, &mut self.buf);
        let mut snapshot = self.agg.finish(
            unix_s,
            mono_s,
            counters.get(Counter::ActiveOpens),
            "netlink sock_diag",
        );
        let recent = self
            .conntrack_ages
            .clone()
            .filter(|(at, _, _)| mono_s - at < CONNTRACK_DUMP_EVERY_S);
        let nat_pool = self.nat_pool;
        snapshot.conntrack = self.conntrack.as_mut().and_then(|(table, lister)| {
            let lister = lister.as_mut().filter(|_| recent.is_none());
            let mut reading = conntrack_reading(table, lister, nat_pool)?;
            match (&reading.closed, recent) {
                (Some(ages), _) => self.conntrack_ages = Some((mono_s, *ages, reading.nat.clone())),
                (None, Some((_, ages, nat))) if reading.count > 0 => {
                    reading.closed = Some(ages);
                    reading.nat = nat;
                }
                _ => {}
            }
            Some(reading)
        });
        Ok(snapshot)
    }
}

/// The table's count and statistics, and, when it holds entries, the ages of its TIME_WAIT
/// entries from a dump (the dump walks every entry: skipped while the table is empty).
fn conntrack_reading(
    table: &mut crate::observe::conntrack_linux::CtTable,
    lister: Option<&mut crate::observe::conntrack_linux::CtLister>,
    nat_pool: u64,
) -> Option<super::conntrack::ConntrackReading> {
    let stats = table.read()?;
    let hold_s = table.time_wait_s? as f64;
    let time_wait = crate::observe::conntrack::CT_TCP_STATES
        .iter()
        .position(|s| *s == "TIME_WAIT");
    let mut tally = crate::observe::conntrack::CtTally::default();
    let closed = lister.filter(|_| stats.entries > 0).and_then(|l| {
        let mut ages = super::Ages::new(hold_s);
        l.each(|e| {
            if let (Some(state), Some(left)) = (e.tcp_state, e.timeout_s) {
                if Some(usize::from(state)) == time_wait {
                    ages.add(super::conntrack::age_s(hold_s, left));
                }
            }
            tally.add_nat(e);
        })
        .ok()?;
        Some(ages)
    });
    Some(super::conntrack::ConntrackReading {
        count: stats.entries,
        max: table.max?,
        time_wait_s: hold_s,
        refused: ["drop", "early_drop", "insert_failed"]
            .iter()
            .map(|k| stats.get(k))
            .sum(),
        closed,
        nat: tally
            .nat_by_destination
            .into_iter()
            .map(
                |((public, destination), count)| super::conntrack::NatMappings {
                    public,
                    destination,
                    count,
                },
            )
            .collect(),
        nat_pool,
    })
}

/// Opens the namespace file of --pid or --netns, saying what is missing when it fails.
fn open_namespace(args: &WatchArgs) -> Result<Option<(File, String)>, WatchError> {
    let (path, flag, label) = match (&args.pid, &args.netns) {
        (Some(pid), _) => (
            Path::new("/proc").join(pid.to_string()).join("ns/net"),
            format!("--pid {pid}"),
            format!("pid {pid}"),
        ),
        (None, Some(p)) => (
            p.clone(),
            format!("--netns {}", p.display()),
            p.display().to_string(),
        ),
        (None, None) => return Ok(None),
    };
    match crate::input::open_namespace(&path) {
        Ok(f) => Ok(Some((f, label))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(WatchError::Flag {
            flag: if args.pid.is_some() {
                "--pid"
            } else {
                "--netns"
            },
            given: flag
                .split_once(' ')
                .map_or(flag.clone(), |x| x.1.to_string()),
            reason: if args.pid.is_some() {
                "no such process; give the pid of a running process (e.g. from pgrep)".into()
            } else {
                "no such file; give a namespace file such as /run/netns/NAME or /proc/PID/ns/net"
                    .into()
            },
        }),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(WatchError::Permission {
            what: format!("{flag}: reading {}", path.display()),
            capability: "CAP_SYS_PTRACE, or the process's own user",
        }),
        Err(e) => Err(WatchError::Io {
            what: format!("{flag}: opening {}", path.display()),
            source: e,
        }),
    }
}

/// Enters the namespace (if any) on a thread of its own, so the main thread's namespace
/// never changes, and runs the watch loop there.
pub(super) fn run(args: &WatchArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    let ns = open_namespace(args)?;
    // The exporter's socket is bound here, in portlab's own namespace, before the watch
    // thread enters the one it watches: Prometheus reaches it where portlab runs.
    let exporter = match args.listen {
        Some(addr) => {
            let (latest, bound) = super::exporter::start(addr)?;
            writeln!(out, "portlab watch: serving http://{bound}/metrics")?;
            out.flush()?;
            Some(latest)
        }
        None => None,
    };
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("portlab-watch".into())
            .spawn_scoped(scope, move || -> anyhow::Result<u8> {
                let label = match &ns {
                    Some((file, label)) => {
                        crate::lab::setns(file.as_fd()).map_err(|e| {
                            match e.raw_os_error() {
                        Some(libc::EPERM) => WatchError::Permission {
                            what: format!("entering the network namespace of {label}"),
                            capability: "CAP_SYS_ADMIN",
                        },
                        Some(libc::EINVAL) => WatchError::Flag {
                            flag: if args.pid.is_some() {
                                "--pid"
                            } else {
                                "--netns"
                            },
                            given: label.clone(),
                            reason:
                                "not a network namespace; give /run/netns/NAME or /proc/PID/ns/net"
                                    .into(),
                        },
                        _ => WatchError::Io {
                            what: format!("entering the network namespace of {label}"),
                            source: e,
                        },
                    }
                        })?;
                        format!("the network namespace of {label}")
                    }
                    None => "this process's network namespace".to_string(),
                };
                let mut source = KernelSource::new(args.dst)?.with_nat_pool(args.nat_ports);
                if let Some(latest) = &exporter {
                    return super::exporter::export_loop(&mut source, args, &label, latest);
                }
                super::watch_loop(&mut source, args, &label, out)
            })?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the watch thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Source;

    /// The sysctls are reread once `settings_every_s` has passed, not every sample: a value
    /// planted in the cache stays while it is fresh and is replaced by the namespace's own
    /// once it is stale. Pure logic on the sample clock given, no waiting.
    #[test]
    fn settings_are_cached_between_rereads() {
        let mut source = KernelSource::new(None).expect("a NETLINK_SOCK_DIAG socket");
        let real = source.settings.reserved;
        source.settings.reserved = real + 12_345;
        source.settings_read_s = 10.0;
        assert_eq!(
            source.settings_at(10.5).reserved,
            real + 12_345,
            "fresh: cached"
        );
        assert_eq!(source.settings_at(11.0).reserved, real, "1 s old: reread");
        source.settings.reserved = real + 1;
        source.set_settings_every(0.0);
        assert_eq!(
            source.settings_at(11.0).reserved,
            real,
            "every 0 s: every sample"
        );
        // A whole sample carries the settings it used.
        source.set_settings_every(SETTINGS_EVERY_S);
        source.settings.reserved = real + 7;
        source.settings_read_s = source.clock.elapsed().as_secs_f64() + 100.0;
        let snap = source.snapshot().expect("a sample of this namespace");
        assert_eq!(snap.input.reserved, real + 7);
    }
}
