//! Linux, `watch --all-netns`: every network namespace of the host, found through
//! /proc/*/ns/net at each sample, each opened on a short-lived helper thread (a sock_diag
//! socket and the /proc/net files belong to the namespace of the thread that opens them)
//! and then sampled from the watch thread, in one pass per interval.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::exporter::Latest;
use super::linux::{settings, KernelSource};
use super::netns::{representatives, NsLabels};
use super::render::{self, SamplerStats};
use super::{evaluate, History, NamespaceReport, Source, WatchArgs, WatchError};
use crate::model::ModelInput;
use crate::say::Output;

/// Settings (sysctls) of the namespaces already open are read again this often.
const SETTINGS_EVERY: Duration = Duration::from_secs(30);

/// One namespace being watched.
struct Entry {
    labels: NsLabels,
    /// The namespace file, kept to enter it again for its settings.
    file: File,
    source: KernelSource,
    history: History,
}

/// The (pid, namespace inode) pairs of /proc: processes that exit meanwhile, and those
/// whose ns link cannot be read (another user's without CAP_SYS_PTRACE), are left out;
/// the latter counted.
fn scan() -> (Vec<(u32, u64)>, u64) {
    let mut out = Vec::new();
    let mut denied = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (out, 0);
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        match std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            Ok(m) => out.push((pid, m.ino())),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied += 1,
            Err(_) => {}
        }
    }
    (out, denied)
}

/// The host's namespace: pid 1's, or this process's when pid 1's cannot be read.
fn host_inode() -> Option<u64> {
    std::fs::metadata("/proc/1/ns/net")
        .or_else(|_| std::fs::metadata("/proc/thread-self/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// What is known of `pid`, read now.
fn labels(inode: u64, host: bool, pid: u32) -> NsLabels {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    NsLabels::new(inode, host, pid, &comm, cgroup.as_deref())
}

/// Every namespace being watched, and what the last scan could not reach.
struct All {
    entries: BTreeMap<u64, Entry>,
    filter: Option<std::net::SocketAddr>,
    /// A NAT's pool toward one destination (`--nat-ports`).
    nat_ports: Option<u32>,
    settings_read: Instant,
    /// Processes whose ns link could not be read, in the last scan.
    denied: u64,
    /// Namespaces that could not be entered (permission), in the last scan.
    refused: u64,
    warned: bool,
}

impl All {
    /// Lists /proc, drops the namespaces that are gone, opens the new ones (a process
    /// that exits between the listing and the opening is skipped: its namespace is found
    /// again through another process, or it is gone), and every [`SETTINGS_EVERY`] reads
    /// the settings of those already open.
    fn rescan(&mut self) {
        let (listing, denied) = scan();
        self.denied = denied;
        let reps = representatives(listing);
        let host = host_inode();
        // A namespace whose processes are gone: its socket alone would keep it alive.
        self.entries.retain(|ino, _| reps.contains_key(ino));
        let mut new: Vec<(u64, u32, File)> = Vec::new();
        for (&ino, &pid) in &reps {
            if let Some(e) = self.entries.get_mut(&ino) {
                if e.labels.pid != pid {
                    // Its representative exited: the next lowest pid stands for it.
                    e.labels = labels(ino, host == Some(ino), pid);
                }
                continue;
            }
            let Ok(file) = File::open(format!("/proc/{pid}/ns/net")) else {
                continue;
            };
            // The pid may have been reused between the listing and the opening.
            if file.metadata().map(|m| m.ino()).ok() != Some(ino) {
                continue;
            }
            new.push((ino, pid, file));
        }
        let refresh = self.settings_read.elapsed() >= SETTINGS_EVERY;
        if refresh {
            self.settings_read = Instant::now();
        }
        let old: Vec<(u64, &File)> = if refresh {
            self.entries.iter().map(|(i, e)| (*i, &e.file)).collect()
        } else {
            Vec::new()
        };
        let filter = self.filter;
        let nat_ports = self.nat_ports;
        let (opened, renewed) = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("portlab-netns".into())
                .spawn_scoped(scope, || enter_each(&new, &old, filter, nat_ports))
                .ok()
                .and_then(|t| t.join().ok())
                .unwrap_or_default()
        });
        for (ino, input) in renewed {
            if let Some(e) = self.entries.get_mut(&ino) {
                e.source.set_settings(input);
            }
        }
        self.refused = 0;
        for ((ino, pid, file), source) in new.into_iter().zip(opened) {
            match source {
                Ok(source) => {
                    self.entries.insert(
                        ino,
                        Entry {
                            labels: labels(ino, host == Some(ino), pid),
                            file,
                            source,
                            history: History::default(),
                        },
                    );
                }
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => self.refused += 1,
                Err(_) => {}
            }
        }
    }

    /// Says once on stderr what could not be watched, and why.
    fn warn(&mut self) {
        if self.warned || (self.denied == 0 && self.refused == 0) {
            return;
        }
        self.warned = true;
        eprintln!(
            "portlab watch --all-netns: watching {} namespaces; {} processes' /proc/PID/ns/net could not be read (another user's: needs CAP_SYS_PTRACE) and {} namespaces could not be entered (needs CAP_SYS_ADMIN)",
            self.entries.len(),
            self.denied,
            self.refused
        );
    }

    /// One pass: a sample of every namespace, evaluated, in the order shown. A namespace
    /// whose sample fails is dropped (found again at the next scan when it still exists);
    /// the failures are returned.
    fn sample(&mut self, warn_within_s: f64) -> (Vec<NamespaceReport>, u64) {
        let mut reports = Vec::with_capacity(self.entries.len());
        let mut failed = Vec::new();
        for (ino, e) in &mut self.entries {
            match e.source.snapshot() {
                Ok(snap) => {
                    let name = e.labels.describe();
                    let report = evaluate(&snap, &e.history, warn_within_s, &name);
                    e.history.record(&snap);
                    reports.push(NamespaceReport {
                        labels: e.labels.clone(),
                        report,
                    });
                }
                Err(err) => {
                    eprintln!(
                        "portlab watch: {}: {err}; dropped until the next scan",
                        e.labels.describe()
                    );
                    failed.push(*ino);
                }
            }
        }
        for ino in &failed {
            self.entries.remove(ino);
        }
        reports.sort_by(NamespaceReport::order);
        (reports, failed.len() as u64)
    }
}

/// On a thread of its own: enters each new namespace to open its source, and each of `old`
/// to read its settings. The thread ends in the last one entered: it is thrown away.
#[allow(clippy::type_complexity)]
fn enter_each(
    new: &[(u64, u32, File)],
    old: &[(u64, &File)],
    filter: Option<std::net::SocketAddr>,
    nat_ports: Option<u32>,
) -> (Vec<io::Result<KernelSource>>, Vec<(u64, ModelInput)>) {
    // This thread starts in portlab's own namespace: that one needs no setns (nor
    // CAP_SYS_ADMIN), so it is opened first.
    let own = std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino());
    let mut order: Vec<usize> = (0..new.len()).collect();
    order.sort_by_key(|&i| Some(new[i].0) != own);
    // Likewise the own namespace's settings, before the thread moves.
    let mut renewed: Vec<(u64, ModelInput)> = old
        .iter()
        .filter(|(ino, _)| Some(*ino) == own)
        .map(|(ino, _)| (*ino, settings()))
        .collect();
    let mut opened: Vec<Option<io::Result<KernelSource>>> = new.iter().map(|_| None).collect();
    for i in order {
        let (ino, _, file) = &new[i];
        opened[i] = Some((|| {
            if Some(*ino) != own {
                crate::lab::setns(file.as_fd())?;
            }
            KernelSource::new_portable(filter)
                .map(|k| k.with_nat_pool(nat_ports))
                .map_err(|e| match e {
                    WatchError::Io { source, .. } => source,
                    other => io::Error::other(other.to_string()),
                })
        })());
    }
    let opened = opened
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(io::Error::other("not opened"))))
        .collect();
    renewed.extend(
        old.iter()
            .filter(|(ino, _)| Some(*ino) != own)
            .filter_map(|(ino, file)| {
                crate::lab::setns(file.as_fd()).ok()?;
                Some((*ino, settings()))
            }),
    );
    (opened, renewed)
}

/// `watch --all-netns`: scans, then samples every namespace each interval, printing or
/// serving (`--listen`) each pass. Exit 2 when no namespace at all can be watched.
pub(super) fn run(args: &WatchArgs, out: &mut dyn Output) -> anyhow::Result<u8> {
    let mut all = All {
        entries: BTreeMap::new(),
        filter: args.dst,
        nat_ports: args.nat_ports,
        settings_read: Instant::now(),
        denied: 0,
        refused: 0,
        warned: false,
    };
    all.rescan();
    if all.entries.is_empty() {
        return Err(WatchError::Permission {
            what: format!(
                "--all-netns: no network namespace could be opened ({} processes' ns links unreadable, {} namespaces not entered)",
                all.denied, all.refused
            ),
            capability: "CAP_SYS_ADMIN and CAP_SYS_PTRACE",
        }
        .into());
    }
    all.warn();
    let exporter = match args.listen {
        Some(addr) => {
            let (latest, bound) = super::exporter::start(addr)?;
            writeln!(out, "portlab watch: serving http://{bound}/metrics")?;
            out.flush()?;
            Some(latest)
        }
        None => None,
    };
    let warn_within_s = args.warn_within.0.as_secs_f64();
    let wanted = if args.once { Some(1) } else { args.count };
    if wanted == Some(1) && exporter.is_none() {
        // As for one namespace: Tcp ActiveOpens one interval before the single sample.
        for e in all.entries.values_mut() {
            e.history.opens = e.source.active_opens();
        }
        std::thread::sleep(args.interval.0);
    }
    let terminal = out.is_terminal();
    let start = Instant::now();
    let mut stats = SamplerStats {
        all_netns: true,
        ..SamplerStats::default()
    };
    let mut taken = 0u64;
    let mut code = 0;
    loop {
        let began = Instant::now();
        if taken > 0 {
            all.rescan();
        }
        let (reports, failed) = all.sample(warn_within_s);
        code = reports
            .iter()
            .map(|r| r.report.exit_code())
            .max()
            .unwrap_or(code);
        let max = usize::from(args.max_destinations);
        match &exporter {
            Some(latest) => {
                stats.samples += 1;
                stats.errors += failed;
                stats.duration_s = began.elapsed().as_secs_f64();
                let text = render::prometheus_all(&reports, max)
                    + &render::sampler_families(&stats, reports.len());
                set(latest, text);
            }
            None => {
                let text =
                    render::render_all(&reports, args.format, wanted == Some(1), terminal, max);
                out.write_all(text.as_bytes()).and_then(|()| out.flush())?;
                if out.closed() {
                    return Ok(code);
                }
            }
        }
        taken += 1;
        if wanted.is_some_and(|n| taken >= n) {
            return Ok(code);
        }
        let next = start + args.interval.0.mul_f64(taken as f64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn set(latest: &Latest, text: String) {
    latest.set(text);
}
