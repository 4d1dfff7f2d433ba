//! One run, end to end: results directory, target, collector thread, runner, summary.
//!
//! Everything that can fail because of the user's input or the machine's set-up fails here
//! before the first connection, as an error (exit 2). Once traffic starts, nothing measured
//! is lost: the timeline is flushed every interval and summary.json is written at the end,
//! after Ctrl-C too.

use crate::collect::timeline::TimelineRow;
use crate::collect::timeline::TimelineWriter;
use crate::collect::{Collector, Counts, Measured, Shared, Sink};
use crate::lab;
use crate::model;
use crate::observe::kernel_timeline::KernelTimeline;
use crate::observe::Sampler;
use crate::plan::{Plan, Target};
use crate::results::assemble::{assemble, Facts, Observed, Watcher};
use crate::results::assemble::{lab_summary, server_summary};
use crate::results::dir::ResultsDir;
use crate::results::summary::{ServerSummary, Summary};
use crate::runner::{self, threads, threads::Threads};
use crate::server;
use crate::server::exec::ExecTarget;
use crate::server::Server;
use crate::sys::signalled;
use anyhow::{anyhow, Context, Result};

#[cfg(target_os = "linux")]
mod clients;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How a run should present itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory (None: results/<name>-<UTC time>/).
    pub out: Option<PathBuf>,
    /// `--force`: a non-empty `out` may be used; portlab's own files in it are replaced.
    pub force: bool,
    /// Progress display.
    pub progress: Progress,
    /// `--baseline`: an earlier run's summary, and the margin in percent its p99 connect
    /// latency and success rate may worsen by.
    pub baseline: Option<(Box<Summary>, f64)>,
    /// This process is client k of a many-client lab (`--in-lab-client`): it already stands
    /// in its lab client namespace, whose sysctls are set, so it enters and writes nothing.
    pub in_lab_client: bool,
}

/// Whether to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A live bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// A bar on a terminal, one line per interval elsewhere.
    Always,
    /// Nothing.
    Never,
}

/// What `run` produced.
#[derive(Debug)]
pub struct RunResult {
    /// The summary as written to summary.json.
    pub summary: Summary,
    /// Where the results are.
    pub dir: PathBuf,
    /// Why summary.json could not be written (a full or read-only disk): the caller prints
    /// the summary on stdout instead, and the run's results are incomplete (exit 3).
    pub unsaved: Option<String>,
    /// Why the run's results are incomplete although it ran (a worker panicked: its
    /// outcomes are missing); exit 3.
    pub failed: Option<String>,
}

impl RunResult {
    /// The summary as summary.json holds it (and as stdout gets it when it could not be
    /// written).
    pub fn summary_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(&self.summary).context("serialising summary.json")? + "\n")
    }
}

/// Runs a plan: sets everything up (errors here mean nothing was sent, and what the run had
/// created in its results directory is taken back), drives the load and writes
/// results/<run>/. Printing is the caller's.
pub fn run(plan: Plan, opts: &RunOptions) -> Result<RunResult> {
    let name = plan.name.clone();
    in_results_dir(&name, opts, |dir, started| {
        set_up_and_run(plan, opts, dir, started)
    })
}

/// Prepares the results directory and runs `f` in it; `f` sets `started` when the load
/// begins. An error before that means nothing was sent: what the run created is taken back.
fn in_results_dir(
    name: &str,
    opts: &RunOptions,
    f: impl FnOnce(&ResultsDir, &std::cell::Cell<bool>) -> Result<Finished>,
) -> Result<RunResult> {
    // Before anything is written: a signal from here on stops the run, which still writes
    // everything (main installs it earlier still; this covers library callers).
    crate::sys::catch_stop_signals();
    // A bad PORTLAB_PORT_SLICES is bad input: refused before anything is set up.
    crate::runner::slices::wanted_size(std::env::var(crate::runner::slices::ENV).ok().as_deref())
        .map_err(|e| anyhow!(e))?;
    let dir = ResultsDir::prepare(name, opts.out.as_deref(), opts.force)?;
    let started = std::cell::Cell::new(false);
    match f(&dir, &started) {
        Err(e) if !started.get() => {
            dir.discard();
            Err(e)
        }
        Err(e) => Err(e.context(format!(
            "the run stopped; what was measured is in {}",
            dir.path().display()
        ))),
        Ok((summary, unsaved, failed)) => Ok(RunResult {
            summary,
            dir: dir.path().to_path_buf(),
            unsaved,
            failed,
        }),
    }
}

/// Writes plan.toml, the resolved plan (every default filled in), and returns it.
fn write_plan(plan: &Plan, dir: &ResultsDir) -> Result<crate::plan::Scenario> {
    let scenario = plan.scenario.clone();
    let plan_toml = toml::to_string(&scenario).context("serialising the resolved plan")?;
    let plan_path = dir.path().join("plan.toml");
    dir.create("plan.toml")
        .and_then(|mut f| std::io::Write::write_all(&mut f, plan_toml.as_bytes()))
        .with_context(|| format!("writing {}", plan_path.display()))?;
    Ok(scenario)
}

/// Runs a many-client lab (`lab.clients = K` > 1, see [`crate::plan::clients`]): K client
/// namespaces, each a `portlab run --shard k/K` of its own, against the embedded server in
/// the server namespace, merged into one results directory with `lab.clients` in its
/// summary. Linux only.
pub fn run_many(plan: Plan, opts: &RunOptions) -> Result<RunResult> {
    #[cfg(target_os = "linux")]
    return clients::run(plan, opts);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (plan, opts);
        Err(crate::plan::lab::LabError::Unsupported {
            os: std::env::consts::OS,
        }
        .into())
    }
}

/// What a run that went ahead left: its summary, why summary.json could not be written,
/// why the results are incomplete.
type Finished = (Summary, Option<String>, Option<String>);

/// The set-up (lab, listeners, server command) and the run; `started` turns true when the
/// load begins, from which point an error no longer means "nothing was sent".
fn set_up_and_run(
    plan: Plan,
    opts: &RunOptions,
    dir: &ResultsDir,
    started: &std::cell::Cell<bool>,
) -> Result<Finished> {
    let scenario = write_plan(&plan, dir)?;

    // The lab comes first: a namespace is entered by this thread and inherited only by the
    // threads it starts afterwards (the runtime, the pacer, the collector). A client of a
    // many-client lab already stands in its namespace.
    let applied = match &plan.lab {
        Some(lab) if lab.isolate && !opts.in_lab_client => {
            Some(lab::enter(lab).context("setting up the lab")?)
        }
        _ => None,
    };
    if let Some(a) = &applied {
        for w in &a.warnings {
            crate::say::warning!("lab: {w}");
        }
    }
    // The settings the model works from: the lab's, read back, or this namespace's own.
    let settings = match &applied {
        Some(a) => a.settings.clone(),
        None => lab::read_settings().unwrap_or_default(),
    };
    let listeners = bind_listeners(&plan, applied.as_ref())?;
    let exec = start_exec(&plan, dir, applied.as_ref())?;
    warn_of_descriptor_limit(&plan);

    // The traffic (client workers, embedded server) runs on the threads; this runtime only
    // steers the run.
    let threads = Threads::start(threads::count(plan.load.threads, plan.workers()))
        .context("starting the client threads")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let ran = runtime.block_on(drive(
        &plan,
        scenario,
        dir,
        opts,
        applied.as_ref(),
        Traffic {
            listeners,
            exec,
            threads: &threads,
            started,
        },
        &settings,
    ));
    // Connections abandoned at the drain timeout must not hold the process open.
    threads.shutdown();
    runtime.shutdown_timeout(Duration::from_millis(100));
    ran
}

/// The embedded server's sockets (one per destination), in the server's namespace when
/// there is one; a server beyond loopback (outside a lab) is warned about.
fn bind_listeners(
    plan: &Plan,
    applied: Option<&lab::Applied>,
) -> Result<Vec<std::net::TcpListener>> {
    let Target::Embedded(cfg) = &plan.target else {
        return Ok(Vec::new());
    };
    let mut listeners = Vec::new();
    for i in 0..cfg.destinations {
        let addr = listen_addr(plan, cfg.listen, applied, i);
        let bound = match applied {
            Some(a) => a.in_server_ns(|| server::bind(addr, cfg.backlog))?,
            None => server::bind(addr, cfg.backlog),
        };
        let listener = bound.map_err(|e| {
            anyhow!(
                "the embedded server cannot listen on {addr}: {e}; change target.listen (--listen)"
            )
        })?;
        if i == 0 && applied.is_none() && !addr.ip().is_loopback() {
            let at = listener.local_addr().unwrap_or(addr);
            crate::say::warning!(
                "the embedded server listens on {at}, beyond loopback: other machines can connect to it during the run; --listen 127.0.0.1:0 keeps it on this machine"
            );
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Starts the server command (`target.exec`), printed first, and waits until it accepts.
/// It starts from this thread, so it inherits the lab's namespace (the server's with veth)
/// and serves where the client can reach it.
fn start_exec(
    plan: &Plan,
    dir: &ResultsDir,
    applied: Option<&lab::Applied>,
) -> Result<Option<ExecTarget>> {
    let (Some(x), Target::External(address)) = (&plan.exec, &plan.target) else {
        return Ok(None);
    };
    let log =
        dir.create("target-exec.log")
            .map_err(|source| crate::server::exec::ExecError::Spawn {
                command: x.command.clone(),
                source,
            })?;
    crate::say::note!("starting target.exec: `{}`", x.command);
    let path = dir.path().join("target-exec.log");
    let start = || ExecTarget::start(&x.command, address, log, &path);
    let mut running = match applied {
        Some(a) => a.in_server_ns(start)??,
        None => start()?,
    };
    running.wait_ready(x.ready_timeout)?;
    Ok(Some(running))
}

/// Raises the descriptor limit as far as allowed, and warns when the run may need more.
fn warn_of_descriptor_limit(plan: &Plan) {
    let Some(limit) = crate::sys::raise_nofile_limit() else {
        return;
    };
    let need = plan.descriptors_needed();
    if need > limit {
        crate::say::warning!(
            "this run may hold {need} file descriptors but RLIMIT_NOFILE is {limit}; \
             EMFILE errors would be the limit, not the ports (raise it with ulimit -n, or lower \
             --max-in-flight / --concurrency)"
        );
    }
}

/// The address of the embedded server's listener number `i` (one per destination): as
/// planned (a fixed port plus `i`), except in a lab, where port 0 becomes a port outside
/// the lab's ephemeral range (a listening port inside it would cost the client one port)
/// and a loopback address becomes the lab's server address (198.18.0.2 with veth).
fn listen_addr(
    plan: &Plan,
    listen: SocketAddr,
    applied: Option<&lab::Applied>,
    i: u32,
) -> SocketAddr {
    let i = u16::try_from(i).unwrap_or(u16::MAX);
    let fixed = |port: u16| if port == 0 { 0 } else { port.saturating_add(i) };
    let (Some(a), Some(lab)) = (applied, &plan.lab) else {
        return SocketAddr::new(listen.ip(), fixed(listen.port()));
    };
    lab_listen_addr(listen, a.server_addr, lab.port_range, i)
}

/// [`listen_addr`] in a lab whose server is at `server_ip` and whose clients' ephemeral
/// range is `range`.
pub(crate) fn lab_listen_addr(
    listen: SocketAddr,
    server_ip: std::net::IpAddr,
    range: Option<crate::plan::PortRange>,
    i: u16,
) -> SocketAddr {
    let fixed = |port: u16| if port == 0 { 0 } else { port.saturating_add(i) };
    let ip = if listen.ip().is_loopback() || listen.ip().is_unspecified() {
        server_ip
    } else {
        listen.ip()
    };
    let port = match (listen.port(), range) {
        (0, Some(r)) if r.lo > 1025 + i => r.lo - 1 - i,
        (0, Some(r)) if r.hi < u16::MAX - i => r.hi + 1 + i,
        (port, _) => fixed(port),
    };
    SocketAddr::new(ip, port)
}

/// The address a client uses to reach a listener: an unspecified IP becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// True when `ip` is an address of this machine (it can be bound), so traffic to it stays
/// here.
fn is_local(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || crate::plan::host::bind_probe(ip).is_ok()
}

/// What carries the run, set up before the runtime: the embedded server's listeners (one per
/// destination) or the server command portlab started, and the threads the traffic runs on.
struct Traffic<'a> {
    listeners: Vec<std::net::TcpListener>,
    exec: Option<ExecTarget>,
    threads: &'a Threads,
    /// Turns true when the load begins.
    started: &'a std::cell::Cell<bool>,
}

/// The run once everything is set up: the targets, then either the user's client program
/// (`--client-exec`) or portlab's own load, and summary.json.
async fn drive(
    plan: &Plan,
    scenario: crate::plan::Scenario,
    dir: &ResultsDir,
    opts: &RunOptions,
    applied: Option<&lab::Applied>,
    Traffic {
        listeners,
        exec,
        threads,
        started,
    }: Traffic<'_>,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<Finished> {
    // Target first: a bad address fails before anything else happens.
    let (servers, targets, host) = start_targets(plan, listeners, threads).await?;
    // --client-exec: the user's program is the client; portlab only watches (src/client).
    if let Some(cx) = &plan.client_exec {
        started.set(true);
        let setup = crate::client::run::Setup {
            plan,
            cx,
            scenario,
            dir,
            applied,
            servers,
            targets: &targets,
            exec,
            settings,
        };
        let summary = crate::client::run::drive(setup, signalled(1)).await?;
        return Ok(save(dir, with_baseline(summary, opts), None));
    }
    let kernel = kernel_timeline(&targets, applied)?
        .map(|k| k.with_conntrack(conntrack_sampler(plan, applied)));
    let writer = TimelineWriter::new(
        dir.create("timeline.csv")
            .with_context(|| format!("creating {}", dir.path().join("timeline.csv").display()))?,
    );
    let late = wait_for_start_at(plan).await?;
    let recorder = Recorder::start(plan, dir, opts, kernel, writer, targets[0], settings)?;
    started.set(true);
    let ended = load(plan, threads, &targets, &host, recorder, servers, exec).await?;
    // A write that failed at any time leaves the results incomplete: exit 3, and the summary
    // names the files.
    let lost = ended.lost.clone();
    let failed = ended.end.failed.clone().or_else(|| {
        (!lost.is_empty()).then(|| format!("results not written in full: {}", lost.join("; ")))
    });
    let facts = ended.facts(plan, scenario, targets[0], applied);
    let baseline = opts.baseline.as_ref().map(|(b, m)| (&**b, *m));
    let mut summary = assemble(plan, facts, settings, baseline);
    summary.shard = shard_summary(plan, late);
    summary.incomplete_files = lost;
    Ok(save(dir, summary, failed))
}

/// A client-exec run's summary with `--baseline`'s checks added to its verdict.
fn with_baseline(mut summary: Summary, opts: &RunOptions) -> Summary {
    if let Some((base, margin)) = &opts.baseline {
        let extra = crate::results::verdict::against_baseline(&summary, base, *margin);
        if let Some(v) = summary.verdict.as_mut() {
            crate::results::verdict::add_checks(v, extra);
        }
    }
    summary
}

/// `--start-at`: waits until every shard begins at the same instant (a countdown on stderr
/// meanwhile) and returns how late this one began; None without `--start-at`, or when a
/// signal ended the wait: the run then starts and stops at once, writing a summary that says
/// so (no attempts, interrupted, exit 130), as a run interrupted at any other moment does.
async fn wait_for_start_at(plan: &Plan) -> Result<Option<Duration>> {
    let Some(at) = plan.load.start_at else {
        return Ok(None);
    };
    let Some(late) = crate::shard::wait_until(at.0, signalled(1)).await else {
        crate::say::note!("interrupted while waiting for --start-at; nothing was sent");
        return Ok(None);
    };
    if late >= Duration::from_millis(10) {
        eprintln!(
            "warning: this run began {:.3}s late against --start-at {at}",
            late.as_secs_f64()
        );
    }
    Ok(Some(late))
}

/// summary.json's `shard` for a sharded run (`--shard`).
fn shard_summary(plan: &Plan, late: Option<Duration>) -> Option<crate::shard::ShardSummary> {
    plan.load.shard.map(|s| crate::shard::ShardSummary {
        index: s.index,
        count: s.count,
        start_at: plan.load.start_at.map(|a| a.rfc3339()),
        late_s: late.map(|l| l.as_secs_f64()),
        total_rate: s.total_rate,
        total_count: s.total_count,
    })
}

/// The collector thread, recording from t0 on, and the ends the load sends its outcomes
/// into.
struct Recorder {
    started_at: String,
    t0: Instant,
    shared: Arc<Shared>,
    tx: std::sync::mpsc::SyncSender<crate::collect::Outcome>,
    /// The collector: what it measured, the kernel timeline, and the results files a write
    /// failed on.
    thread: std::thread::JoinHandle<(
        crate::collect::Measured,
        Option<KernelTimeline>,
        Vec<String>,
    )>,
}

impl Recorder {
    /// Starts the clock (t0), histograms.hlog and the collector thread, which writes the
    /// timeline, shows progress and samples the kernel every interval.
    fn start(
        plan: &Plan,
        dir: &ResultsDir,
        opts: &RunOptions,
        kernel: Option<KernelTimeline>,
        writer: TimelineWriter,
        target: SocketAddr,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<Recorder> {
        let start_wall = SystemTime::now();
        let started_at = humantime::format_rfc3339_millis(start_wall).to_string();
        let hlog_path = dir.path().join("histograms.hlog");
        let hlog = crate::collect::hlog::HlogWriter::new(
            dir.create("histograms.hlog")
                .with_context(|| format!("creating {}", hlog_path.display()))?,
            start_wall,
        )
        .with_context(|| format!("writing {}", hlog_path.display()))?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::sync_channel(64 * 1024);
        let t0 = Instant::now();
        // The port hold the model will judge the post-exhaustion rate over: the collector
        // counts successes per hold by their own time, so that rate is exact whatever the
        // interval.
        let hold = model::predict(&model::from_plan::input_for(plan, settings, target)).hold_s;
        let collector = Collector::new(t0, plan.load.interval)
            .count_completions_per(Duration::try_from_secs_f64(hold).unwrap_or_default());
        let progress = progress_bar(plan, opts.progress);
        let collector_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("portlab-collector".into())
            .spawn(move || {
                let mut sink = RunSink {
                    writer: Some(writer),
                    hlog: Some(hlog),
                    progress,
                    kernel,
                    lost: Vec::new(),
                };
                let m = collector.collect(rx, &collector_shared, &mut sink);
                if let Some(p) = &sink.progress {
                    p.bar.finish_and_clear();
                }
                (m, sink.kernel, sink.lost)
            })
            .context("starting the collector thread")?;
        Ok(Recorder {
            started_at,
            t0,
            shared,
            tx,
            thread,
        })
    }
}

/// What the load left once the servers stopped and the collector finished.
struct Ended {
    started_at: String,
    end: runner::RunEnd,
    duration_s: f64,
    server: Option<ServerSummary>,
    exec: Option<crate::server::exec::ExecSummary>,
    measured: crate::collect::Measured,
    kernel: Option<KernelTimeline>,
    /// The results files a write failed on (see `Summary::incomplete_files`).
    lost: Vec<String>,
}

/// Runs the load until its bounds or a signal, then stops the servers (the embedded one
/// closes its side, the server command ends) and waits for the collector's last sample.
async fn load(
    plan: &Plan,
    threads: &Threads,
    targets: &[SocketAddr],
    host: &str,
    recorder: Recorder,
    servers: Vec<Server>,
    exec: Option<ExecTarget>,
) -> Result<Ended> {
    let Recorder {
        started_at,
        t0,
        shared,
        tx,
        thread,
    } = recorder;
    // The collector takes its last sample when every sender is gone: this one is held until
    // the embedded server has closed its side too.
    let hold_collector = tx.clone();
    let outlet = runner::Outlet { t0, shared, tx };
    let end = runner::run(
        plan,
        threads,
        targets,
        host,
        outlet,
        signalled(1),
        signalled(2),
    )
    .await;
    let duration_s = t0.elapsed().as_secs_f64();
    let server = server_summary(
        &server::stop_servers(servers, plan.load.drain_timeout).await,
        targets,
    );
    let exec = exec.map(ExecTarget::stop);
    drop(hold_collector);
    let (measured, kernel, lost) = thread
        .join()
        .map_err(|_| anyhow!("the collector thread panicked"))?;
    Ok(Ended {
        started_at,
        end,
        duration_s,
        server,
        exec,
        measured,
        kernel,
        lost,
    })
}

impl Ended {
    /// What [`assemble`] takes.
    fn facts(
        self,
        plan: &Plan,
        scenario: crate::plan::Scenario,
        target: SocketAddr,
        applied: Option<&lab::Applied>,
    ) -> Facts {
        Facts {
            scenario,
            started_at: self.started_at,
            target,
            // The collector cannot tell an abandoned connection from one still going: the
            // runner counted those it gave up on at the drain timeout.
            measured: Measured {
                counts: Counts {
                    aborted: self.end.aborted,
                    ..self.measured.counts
                },
                ..self.measured
            },
            duration_s: self.duration_s,
            load_duration_s: self.end.load_elapsed.as_secs_f64(),
            achieved_rate: None,
            interrupted: self.end.interrupted,
            server: self.server,
            exec: self.exec,
            observed: self.kernel.map(|mut w| Observed {
                timewait: w.timewait().clone(),
                kernel: w.kernel_deltas(),
                preexisting: w.preexisting(),
                by: Watcher::Run,
                conntrack: w.conntrack(),
            }),
            lab: applied
                .zip(plan.lab.as_ref())
                .map(|(a, lab)| lab_summary(a, lab)),
        }
    }
}

/// Writes summary.json atomically; when it cannot be written, says why (the caller prints
/// the summary on stdout instead).
fn save(dir: &ResultsDir, summary: Summary, failed: Option<String>) -> Finished {
    let unsaved = serde_json::to_string_pretty(&summary)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            dir.write_atomic("summary.json", (json + "\n").as_bytes())
                .map_err(|e| e.to_string())
        })
        .err()
        .map(|e| {
            format!(
                "summary.json cannot be written to {} ({e})",
                dir.path().display()
            )
        });
    crate::report::html::write_report_or_warn(dir, &summary);
    (summary, unsaved, failed)
}

/// The embedded servers on their listeners, or the external target resolved and probed:
/// (servers, addresses to connect to, the Host header's value).
async fn start_targets(
    plan: &Plan,
    listeners: Vec<std::net::TcpListener>,
    threads: &Threads,
) -> Result<(Vec<Server>, Vec<SocketAddr>, String)> {
    match &plan.target {
        Target::Embedded(cfg) => {
            let mut servers = Vec::with_capacity(listeners.len());
            for listener in listeners {
                servers.push(
                    Server::start(plan, cfg, listener, threads.handles())
                        .context("starting the embedded server")?,
                );
            }
            // A server on every interface (0.0.0.0, ::) is reached over loopback: the
            // client's sockets then name 127.0.0.1 (::1) as their peer, which is what the
            // kernel sampler filters TIME_WAIT by.
            let targets: Vec<SocketAddr> = servers.iter().map(|s| reachable(s.addr)).collect();
            let Some(&first) = targets.first() else {
                return Err(anyhow!("internal: no listener for the embedded server"));
            };
            Ok((servers, targets, first.to_string()))
        }
        Target::External(address) => {
            let addr = resolve_and_probe(address, plan).await?;
            Ok((Vec::new(), vec![addr], address.clone()))
        }
    }
}

/// The kernel sampler (Linux): toward every target, and in the server's namespace too with
/// the veth topology.
fn kernel_timeline(
    targets: &[SocketAddr],
    applied: Option<&lab::Applied>,
) -> Result<Option<KernelTimeline>> {
    let (true, [target, others @ ..]) = (cfg!(target_os = "linux"), targets) else {
        return Ok(None);
    };
    let server = match applied {
        Some(a) if a.topology == crate::plan::lab::Topology::Veth => {
            Some(Box::new(a.in_server_ns(|| Sampler::new(*target))?)
                as Box<dyn crate::observe::Sample>)
        }
        _ => None,
    };
    Ok(Some(
        KernelTimeline::start(Box::new(Sampler::new(*target)), server).also_toward(others),
    ))
}

/// The table the lab tracks: the NAT's (`lab.nat_ports`), or the server's namespace's
/// (`lab.conntrack`), opened there. None without either; a table that cannot be read is said once and the run goes on.
fn conntrack_sampler(
    plan: &Plan,
    applied: Option<&lab::Applied>,
) -> Option<Box<dyn crate::observe::conntrack::ConntrackSource>> {
    #[cfg(target_os = "linux")]
    {
        use crate::observe::conntrack_linux::CtSampler;
        let (Some(a), Some(lab)) = (applied, plan.lab.as_ref()) else {
            return None;
        };
        let opened = match (lab.nat.is_some(), lab.conntrack, a.topology) {
            (true, _, _) => a.in_nat_ns(CtSampler::open).ok().flatten()?,
            (false, false, _) => return None,
            (false, true, crate::plan::lab::Topology::Veth) => a
                .in_server_ns(|| CtSampler::open()?.emulating(lab.conntrack_max))
                .ok()?,
            (false, true, crate::plan::lab::Topology::Loopback) => {
                CtSampler::open().and_then(|s| s.emulating(lab.conntrack_max))
            }
        };
        match opened {
            Ok(s) => Some(Box::new(s)),
            Err(e) => {
                crate::say::warning!(
                    "the conntrack table cannot be read ({e}): the run goes on without it"
                );
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (plan, applied);
        None
    }
}

/// Resolves an external HOST:PORT and makes one probe connection, so an unreachable
/// target is a setup error (exit 2) and not a run full of ECONNREFUSED.
async fn resolve_and_probe(address: &str, plan: &Plan) -> Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(address).await.map_err(|e| {
        anyhow!("target.address (--target) '{address}' cannot be resolved: {e}; write HOST:PORT, e.g. 127.0.0.1:8080")
    })?;
    let want_v6 = plan.client.sources.first().map(|ip| ip.is_ipv6());
    let addr = addrs
        .find(|a| want_v6.is_none_or(|v6| a.is_ipv6() == v6))
        .ok_or_else(|| anyhow!("target.address (--target) '{address}' has no address of the source addresses' family"))?;
    if !plan.isolated() && !is_local(addr.ip()) {
        crate::say::notice!(
            "target {address} ({addr}) is not on this machine: the traffic leaves it"
        );
    }
    if crate::sys::stop_signals() > 0 {
        // Interrupted during set-up: the run stops at once and needs no reachable target.
        return Ok(addr);
    }
    let probe = async {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let stream = socket.connect(addr).await?;
        // RST on close: the probe must not leave a TIME_WAIT behind to skew the run.
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
        Ok::<_, std::io::Error>(stream)
    };
    match tokio::time::timeout(plan.load.connect_timeout, probe).await {
        Ok(Ok(_stream)) => Ok(addr),
        Ok(Err(e)) => Err(anyhow!(
            "target {address} ({addr}) is not reachable: {} ({e}); start the server or fix target.address (--target)",
            crate::collect::ErrCode::of(&e)
        )),
        Err(_) => Err(anyhow!(
            "target {address} ({addr}) did not accept a connection within {:?}; start the server, fix target.address (--target) or raise --connect-timeout",
            plan.load.connect_timeout
        )),
    }
}

struct ProgressDisplay {
    bar: ProgressBar,
    /// Print one line per interval instead of drawing (stderr is not a terminal).
    plain: bool,
    total_s: Option<f64>,
    /// The timeline rows' attempts and errors so far: the two totals the progress line
    /// shows, summed from the rows (whose columns are not a `Counts` either).
    attempts: u64,
    errors: u64,
}

fn progress_bar(plan: &Plan, mode: Progress) -> Option<ProgressDisplay> {
    let terminal = std::io::stderr().is_terminal();
    let plain = match (mode, terminal) {
        (Progress::Never, _) | (Progress::Auto, false) => return None,
        (_, true) => false,
        (Progress::Always, false) => true,
    };
    let total_s = plan.load.duration.map(|d| d.as_secs_f64());
    let bar = if plain {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total_s.map_or(0, |t| (t * 10.0) as u64));
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    };
    Some(ProgressDisplay {
        bar,
        plain,
        total_s,
        attempts: 0,
        errors: 0,
    })
}

struct RunSink {
    writer: Option<TimelineWriter>,
    hlog: Option<crate::collect::hlog::HlogWriter>,
    progress: Option<ProgressDisplay>,
    kernel: Option<KernelTimeline>,
    /// The files a write failed on: "timeline.csv from 0.400 s (No space left on device)".
    lost: Vec<String>,
}

impl Sink for RunSink {
    fn histograms(&mut self, start: Duration, end: Duration, set: &crate::collect::hlog::Set) {
        if let Some(w) = self.hlog.as_mut() {
            if let Err(e) = w.append(start, end, set) {
                eprintln!(
                    "warning: histograms.hlog can no longer be written ({e}); the run goes on"
                );
                self.lost.push(format!(
                    "histograms.hlog from {:.3} s ({e})",
                    start.as_secs_f64()
                ));
                self.hlog = None;
            }
        }
    }

    fn observe(&mut self, row: &mut TimelineRow) {
        if let Some(w) = self.kernel.as_mut() {
            row.kernel = w.interval();
            w.sampled_at(row.t_s);
        }
    }

    fn interval(&mut self, row: &TimelineRow) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.append(row) {
                crate::say::warning!(
                    "timeline.csv can no longer be written ({e}); the run goes on"
                );
                self.lost.push(format!(
                    "timeline.csv from the row of {:.3} s ({e})",
                    row.t_s
                ));
                self.writer = None;
            }
        }
        let Some(p) = self.progress.as_mut() else {
            return;
        };
        p.attempts += row.attempts;
        p.errors += row.errors;
        let of = p.total_s.map(|t| format!("/{t:.0}s")).unwrap_or_default();
        let kinds = if row.errors_by_kind.is_empty() {
            "-"
        } else {
            row.errors_by_kind.as_str()
        };
        let msg = format!(
            "t={:.0}s{of} attempts {} (+{}/interval) connected +{} errors {} [{kinds}] in flight {}",
            row.t_s, p.attempts, row.attempts, row.connected, p.errors, row.in_flight
        );
        if p.plain {
            eprintln!("{msg}");
        } else {
            p.bar.set_position((row.t_s * 10.0) as u64);
            p.bar.set_message(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml_text: &str) -> Plan {
        let scenario: crate::plan::Scenario = toml::from_str(toml_text).expect("a scenario");
        Plan::resolve(&scenario).expect("a valid plan")
    }

    #[test]
    fn a_listener_on_every_interface_is_reached_over_loopback() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("127.0.0.2:9", "127.0.0.2:9"),
            ("[::1]:9", "[::1]:9"),
            ("198.18.0.2:80", "198.18.0.2:80"),
        ];
        for (listen, want) in cases {
            let got = reachable(listen.parse().unwrap());
            assert_eq!(got, want.parse::<SocketAddr>().unwrap(), "{listen}");
        }
    }

    #[test]
    fn outside_a_lab_each_destination_listens_on_the_next_port() {
        let p = plan("");
        let at = |listen: &str, i| listen_addr(&p, listen.parse().unwrap(), None, i).to_string();
        assert_eq!(at("127.0.0.1:8080", 0), "127.0.0.1:8080");
        assert_eq!(at("127.0.0.1:8080", 2), "127.0.0.1:8082");
        // Port 0: each listener takes whatever the kernel gives it.
        assert_eq!(at("127.0.0.1:0", 3), "127.0.0.1:0");
        assert_eq!(at("127.0.0.1:65535", 1), "127.0.0.1:65535", "saturates");
    }

    #[test]
    fn a_sharded_run_says_which_shard_and_how_late_it_began() {
        assert!(shard_summary(&plan(""), None).is_none());
        let p = plan("[load]\nrate = 300\ncount = 1000\nshard = \"1/3\"\n");
        let s = shard_summary(&p, Some(Duration::from_millis(250))).expect("a shard");
        assert_eq!((s.index, s.count), (1, 3));
        assert_eq!((s.total_rate, s.total_count), (Some(300.0), Some(1000)));
        assert_eq!(s.late_s, Some(0.25));
        assert!(s.start_at.is_none(), "no --start-at");
    }
}
