//! One run, end to end: results directory, target, collector thread, runner, summary.
//!
//! Everything that can fail because of the user's input or the machine's set-up fails here
//! before the first connection, as an error (exit 2). Once traffic starts, nothing measured
//! is lost: the timeline is flushed every interval and summary.json is written at the end,
//! after Ctrl-C too.

use crate::collect::timeline::TimelineWriter;
use crate::collect::{Collector, Shared, Sink, TimelineRow};
use crate::lab;
use crate::model;
use crate::observe::watch::KernelWatch;
use crate::observe::Sampler;
use crate::plan::{Plan, Target};
use crate::report::{self, verdict, Format, ServerSummary, Summary};
use crate::runner::{self, shards, shards::Shards};
use crate::target;
use crate::target::exec::ExecTarget;
use crate::target::Server;
use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How a run should present itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory (None: results/<name>-<UTC time>/).
    pub out: Option<PathBuf>,
    /// Summary format on stdout.
    pub format: Format,
    /// Progress display.
    pub progress: Progress,
    /// `--baseline`: an earlier run's summary, and the margin in percent its p99 connect
    /// latency and success rate may worsen by.
    pub baseline: Option<(Box<Summary>, f64)>,
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
}

/// Runs a plan: sets everything up (errors here mean nothing was sent), drives the load,
/// writes results/<run>/ and prints the summary.
pub fn run(plan: Plan, opts: &RunOptions) -> Result<RunResult> {
    let dir = results_dir(&plan.name, opts.out.as_deref())?;
    let scenario = plan.to_scenario();
    let plan_toml = toml::to_string(&scenario).context("serialising the resolved plan")?;
    std::fs::write(dir.join("plan.toml"), plan_toml)
        .with_context(|| format!("writing {}", dir.join("plan.toml").display()))?;

    // The lab comes first: a namespace is entered by this thread and inherited only by the
    // threads it starts afterwards (the runtime, the pacer, the collector).
    let applied = match &plan.lab {
        Some(lab) if lab.isolate => Some(lab::enter(lab).context("setting up the lab")?),
        _ => None,
    };
    if let Some(a) = &applied {
        for w in &a.warnings {
            eprintln!("warning: lab: {w}");
        }
    }
    // The settings the model works from: the lab's, read back, or this namespace's own.
    let settings = match &applied {
        Some(a) => a.settings.clone(),
        None => lab::read_settings().unwrap_or_default(),
    };
    // The embedded server's sockets (one per destination), in the server's namespace when
    // there is one.
    let mut listeners = Vec::new();
    if let Target::Embedded(cfg) = &plan.target {
        for i in 0..cfg.destinations {
            let addr = listen_addr(&plan, cfg.listen, applied.as_ref(), i);
            let bound = match &applied {
                Some(a) => a.in_server_ns(|| target::bind(addr, cfg.backlog))?,
                None => target::bind(addr, cfg.backlog),
            };
            listeners.push(bound.map_err(|e| {
                anyhow!("the embedded server cannot listen on {addr}: {e}; change target.listen (--listen)")
            })?);
        }
    }
    // A server command starts from this thread, so it inherits the lab's namespace (the
    // server's with veth) and serves where the client can reach it.
    let exec = match (&plan.exec, &plan.target) {
        (Some(x), Target::External(address)) => {
            let log = dir.join("target-exec.log");
            let start = || ExecTarget::start(&x.command, address, &log);
            let mut running = match &applied {
                Some(a) => a.in_server_ns(start)??,
                None => start()?,
            };
            running.wait_ready(x.ready_timeout)?;
            Some(running)
        }
        _ => None,
    };

    if let Some(limit) = crate::sys::raise_nofile_limit() {
        let need = plan.descriptors_needed();
        if need > limit {
            eprintln!(
                "warning: this run may hold {need} file descriptors but RLIMIT_NOFILE is {limit}; \
                 EMFILE errors would be the limit, not the ports (raise it with ulimit -n, or lower \
                 --max-in-flight / --concurrency)"
            );
        }
    }

    // The traffic (client workers, embedded server) runs on the shards; this runtime only
    // steers the run.
    let shards = Shards::start(shards::count(plan.load.threads, plan.workers()))
        .context("starting the client threads")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(drive(
        &plan,
        scenario,
        &dir,
        opts,
        applied.as_ref(),
        Traffic {
            listeners,
            exec,
            shards: &shards,
        },
        &settings,
    ));
    // Connections abandoned at the drain timeout must not hold the process open.
    shards.shutdown();
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(RunResult {
        summary: summary?,
        dir,
    })
}

/// Creates the results directory: `out`, or a fresh results/<name>-<UTC time>/ (for a run,
/// or for a suite, named "suite").
pub fn results_dir(name: &str, out: Option<&Path>) -> Result<PathBuf> {
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => {
            let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
                .to_string()
                .chars()
                .filter(|c| !matches!(c, '-' | ':'))
                .collect();
            let base = PathBuf::from("results").join(format!("{name}-{stamp}"));
            let mut dir = base.clone();
            let mut n = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create the results directory {} (choose another with --out DIR)",
            dir.display()
        )
    })?;
    Ok(dir)
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
    let ip = if listen.ip().is_loopback() {
        a.server_addr
    } else {
        listen.ip()
    };
    let port = match (listen.port(), lab.port_range) {
        (0, Some(r)) if r.lo > 1025 + i => r.lo - 1 - i,
        (0, Some(r)) if r.hi < u16::MAX - i => r.hi + 1 + i,
        (port, _) => fixed(port),
    };
    SocketAddr::new(ip, port)
}

/// What carries the run, set up before the runtime: the embedded server's listeners (one per
/// destination) or the server command portlab started, and the shards the traffic runs on.
struct Traffic<'a> {
    listeners: Vec<std::net::TcpListener>,
    exec: Option<ExecTarget>,
    shards: &'a Shards,
}

async fn drive(
    plan: &Plan,
    scenario: crate::plan::Scenario,
    dir: &Path,
    opts: &RunOptions,
    applied: Option<&lab::Applied>,
    Traffic {
        listeners,
        exec,
        shards,
    }: Traffic<'_>,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<Summary> {
    // Target first: a bad address fails before anything else happens.
    let (servers, targets, host) = match &plan.target {
        Target::Embedded(cfg) => {
            let mut servers = Vec::with_capacity(listeners.len());
            for listener in listeners {
                servers.push(
                    Server::start(plan, cfg, listener, shards.handles())
                        .context("starting the embedded server")?,
                );
            }
            let targets: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
            let Some(&first) = targets.first() else {
                return Err(anyhow!("internal: no listener for the embedded server"));
            };
            (servers, targets, first.to_string())
        }
        Target::External(address) => {
            let addr = resolve_and_probe(address, plan).await?;
            (Vec::new(), vec![addr], address.clone())
        }
    };
    let target = targets[0];
    // --client-exec: the user's program is the client; portlab only watches (src/client).
    if let Some(cx) = &plan.client_exec {
        let setup = crate::client::run::Setup {
            plan,
            cx,
            scenario,
            dir,
            applied,
            servers,
            exec,
            target,
            settings,
        };
        let summary = crate::client::run::drive(setup, shutdown_signal()).await?;
        crate::client::run::publish(&summary, dir, opts.format)?;
        return Ok(summary);
    }
    let watch = if cfg!(target_os = "linux") {
        let server = match applied {
            Some(a) if a.topology == lab::Topology::Veth => {
                Some(a.in_server_ns(|| Sampler::new(target))?)
            }
            _ => None,
        };
        Some(KernelWatch::start(Sampler::new(target), server).also_toward(&targets[1..]))
    } else {
        None
    };
    let writer = TimelineWriter::create(&dir.join("timeline.csv"))
        .with_context(|| format!("creating {}", dir.join("timeline.csv").display()))?;

    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let shared = Arc::new(Shared::default());
    let (tx, rx) = std::sync::mpsc::sync_channel(64 * 1024);
    let t0 = Instant::now();
    let collector = Collector::new(t0, plan.load.interval);
    let progress = progress_bar(plan, opts.progress);
    let collector_shared = shared.clone();
    let collector_thread = std::thread::Builder::new()
        .name("portlab-collector".into())
        .spawn(move || {
            let mut sink = RunSink {
                writer: Some(writer),
                progress,
                watch,
            };
            let m = collector.collect(rx, &collector_shared, &mut sink);
            if let Some(p) = &sink.progress {
                p.bar.finish_and_clear();
            }
            (m, sink.watch)
        })
        .context("starting the collector thread")?;

    // The collector takes its last sample when every sender is gone: this one is held until
    // the embedded server has closed its side too.
    let hold_collector = tx.clone();
    let outlet = runner::Outlet {
        t0,
        shared: shared.clone(),
        tx,
    };
    let end = runner::run(plan, shards, &targets, &host, outlet, shutdown_signal()).await;
    let duration_s = t0.elapsed().as_secs_f64();
    let mut server_summary: Option<ServerSummary> = None;
    for s in servers {
        let st = s.stats.clone();
        let address = s.addr.to_string();
        let left = s.stop(plan.load.drain_timeout).await;
        if left > 0 {
            eprintln!("warning: the embedded server ({address}) still had {left} connections open after --drain-timeout");
        }
        let sum = server_summary.get_or_insert_with(|| ServerSummary {
            address,
            ..ServerSummary::default()
        });
        sum.accepted += st.accepted.load(Ordering::Relaxed);
        sum.accept_errors += st.accept_errors.load(Ordering::Relaxed);
        sum.connection_errors += st.conn_errors.load(Ordering::Relaxed);
    }
    if let (Some(sum), [_, .., last]) = (server_summary.as_mut(), targets.as_slice()) {
        sum.address = format!("{} .. {last} ({} ports)", sum.address, targets.len());
    }
    let exec_summary = exec.map(ExecTarget::stop);
    drop(hold_collector);
    let (measured, watch) = collector_thread
        .join()
        .map_err(|_| anyhow!("the collector thread panicked"))?;
    let mut summary = Summary::new(
        scenario,
        started_at,
        target.to_string(),
        &measured,
        duration_s,
        end.load_elapsed.as_secs_f64(),
        end.interrupted,
        end.aborted,
        server_summary,
    );
    if let Some(w) = &watch {
        summary.timewait = Some(w.timewait().clone());
        let kernel = w.kernel_deltas();
        let segments = kernel
            .get("InSegs")
            .zip(kernel.get("OutSegs"))
            .map(|(i, o)| i + o);
        summary.segments_per_request = segments
            .filter(|_| summary.completed > 0)
            .map(|s| s as f64 / summary.completed as f64);
        summary.kernel = Some(kernel);
        summary.observation = Some(
            if plan.isolated() {
                "private network namespace: every kernel figure is this run's own"
            } else {
                "host namespace: TIME_WAIT by side is filtered to the target; tw_sockstat and the kernel counters include the host's other traffic"
            }
            .to_string(),
        );
    }
    if let (Some(a), Some(lab)) = (applied, &plan.lab) {
        summary.lab = Some(serde_json::json!({
            "mode": a.mode,
            "topology": a.topology,
            "settings": a.settings,
            "server_settings": a.server_settings,
            "written": a.written,
            "time_scale": lab.time_scale(),
            "emulated_time_wait_s": lab.emulated_hold().map(|d| d.as_secs_f64()),
            "warnings": a.warnings,
            "tw_reuse_note": lab.tw_reuse_note,
        }));
    }
    let mut input = model::from_plan::input_for(plan, settings, target);
    // Ports already held toward this target when the run began (an earlier run's TIME_WAIT,
    // the host's own connections) are not the run's to use. That holds for connect()'s
    // per-destination ports; with bind before connect every socket on the range counts,
    // which the sampler does not split out, so the model is left without them there.
    if input.bind == model::BindModel::PerDestination {
        input.preexisting = watch
            .as_ref()
            .map_or(0, |w| u32::try_from(w.preexisting()).unwrap_or(u32::MAX));
    }
    let prediction = model::predict(&input);
    summary.verdict = Some(verdict::assess(
        &prediction,
        &summary,
        &measured.timeline,
        &plan.expect,
        opts.baseline.as_ref().map(|(b, m)| (&**b, *m)),
    ));
    summary.prediction = serde_json::to_value(&prediction).ok();
    summary.target_exec = exec_summary;
    if plan.time_scale() != 1.0 {
        let k = plan.time_scale();
        summary.modelled = Some(crate::report::Modelled {
            time_scale: k,
            rate: summary.achieved_rate / k,
            duration_s: summary.load_duration_s * k,
            first_error_s: summary.exhaustion.first_s.map(|t| t * k),
        });
    }
    let json = serde_json::to_string_pretty(&summary).context("serialising summary.json")?;
    std::fs::write(dir.join("summary.json"), json + "\n")
        .with_context(|| format!("writing {}", dir.join("summary.json").display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let rendered = report::reporter(opts.format).render(&summary, &mut out);
    if opts.format == Format::Text {
        use std::io::Write;
        let _ = writeln!(out, "\nresults: {}/", dir.display());
    }
    ignore_broken_pipe(rendered)?;
    if let Some(why) = end.failed {
        // Everything measured is on disk; the run still fails.
        return Err(anyhow!("{why} (what was measured is in {})", dir.display()));
    }
    Ok(summary)
}

/// A reader that went away (`portlab run | head`) is not an error.
fn ignore_broken_pipe(r: std::io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the summary to stdout"),
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

/// Resolves on Ctrl-C (and SIGTERM on Unix).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct ProgressDisplay {
    bar: ProgressBar,
    /// Print one line per interval instead of drawing (stderr is not a terminal).
    plain: bool,
    total_s: Option<f64>,
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
    progress: Option<ProgressDisplay>,
    watch: Option<KernelWatch>,
}

impl Sink for RunSink {
    fn observe(&mut self, row: &mut TimelineRow) {
        if let Some(w) = self.watch.as_mut() {
            row.kernel = w.interval();
        }
    }

    fn interval(&mut self, row: &TimelineRow) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.append(row) {
                eprintln!("warning: timeline.csv can no longer be written ({e}); the run goes on");
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
