//! The many-client lab (`lab.clients = K`, Linux): K client namespaces in front of one
//! server namespace, each client a child `portlab run --shard k/K`, merged into one results
//! directory.
//!
//! This process makes the namespaces (it lives in the server's), serves with the embedded
//! server on 198.18.0.2 and samples the server namespace (TIME_WAIT on the server's port,
//! the tw_sock_TCP slab). Client k is this binary again, started from inside client
//! namespace k (a child inherits the network namespace of the thread that forks it) as
//! `portlab run OUT/plan.toml --shard k/K --start-at T --in-lab-client 198.18.0.2:PORT
//! --out OUT/client-k`: the hidden `--in-lab-client` tells it that it already stands in a
//! lab client namespace whose sysctls are set (so it enters nothing and writes nothing) and
//! that its target is the server's one address. Every shard begins at T; each is its own
//! host with its own ports, judged at its own rate R / K.
//!
//! Children run in a process group of their own (a terminal's Ctrl-C reaches this process,
//! which forwards one SIGTERM per signal it gets, so a child drains and writes its results as
//! a run does on Ctrl-C) and die with this process (PR_SET_PDEATHSIG). One still running past
//! its load, drain and timeouts plus [`GRACE`] is killed. Whatever the children wrote is
//! merged with `portlab merge`'s code; a child without results is named in `lab.clients.lost`.

use super::{signalled, RunOptions, RunResult};
use crate::lab::ManyClients;
use crate::model::clients::{server_timewait, ClientLoad};
use crate::observe::slab::{SlabSummary, SlabWatch, TW_SLAB};
use crate::observe::Sampler;
use crate::plan::{EmbeddedServer, Plan, Rate, Target};
use crate::results::dir::ResultsDir;
use crate::results::lab_clients::{ClientLine, ClientsSummary};
use crate::results::summary::{LabSummary, Summary, WrittenSysctl};
use crate::runner::threads::{self, Threads};
use anyhow::{anyhow, bail, Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How long a child may run past its load, drain and timeouts before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// How often the server namespace is sampled (TIME_WAIT, slab): its maximum is the figure.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Runs the many-client lab; see the module's documentation.
pub(super) fn run(plan: Plan, opts: &RunOptions) -> Result<RunResult> {
    super::in_results_dir(&plan.name, opts, |dir, started| {
        set_up_and_run(&plan, opts, dir, started)
    })
}

/// One client process while it runs.
struct Running {
    pid: u32,
    dir: PathBuf,
    ended: Option<String>,
}

fn set_up_and_run(
    plan: &Plan,
    opts: &RunOptions,
    dir: &ResultsDir,
    started: &std::cell::Cell<bool>,
) -> Result<super::Finished> {
    let (Some(lab_plan), Target::Embedded(cfg)) = (&plan.lab, &plan.target) else {
        bail!("internal: the many-client lab needs a lab and the embedded server");
    };
    super::write_plan(plan, dir)?;
    let many = ManyClients::enter(lab_plan).context("setting up the lab")?;
    for w in &lab_plan.warnings {
        crate::say::warning!("lab: {w}");
    }
    let listen = super::lab_listen_addr(cfg.listen, many.server_addr, lab_plan.port_range, 0);
    let listener = crate::server::bind(listen, cfg.backlog).map_err(|e| {
        anyhow!(
            "the embedded server cannot listen on {listen}: {e}; change target.listen (--listen)"
        )
    })?;
    super::warn_of_descriptor_limit(plan);
    let threads = Threads::start(threads::count(plan.load.threads, u32::MAX))
        .context("starting the server threads")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let ran = serve_and_wait(
        plan, cfg, opts, dir, &many, listener, &threads, &runtime, started,
    );
    threads.shutdown();
    runtime.shutdown_timeout(Duration::from_millis(100));
    let served = ran?;
    let mut failed = served.failed.clone();
    let summary = merge(plan, lab_plan, &many, dir, served)?;
    let lost = summary
        .lab
        .as_ref()
        .and_then(|l| l.clients.as_ref())
        .map_or(0, |c| c.lost.len());
    // A client stopped by Ctrl-C before its start sent nothing: nothing of it is missing.
    if failed.is_none() && lost > 0 && crate::sys::stop_signals() == 0 {
        failed = Some(format!(
            "{lost} client(s) left no results (lab.clients.lost says which)"
        ));
    }
    Ok((summary, None, failed))
}

/// What the server-side sampler saw: TIME_WAIT max and at the end, and the slab.
type Sampled = (
    Option<u64>,
    Option<u64>,
    SlabSummary,
    Option<crate::observe::conntrack::ConntrackSummary>,
);

/// What serving the clients left: where the server was, how each client ended, what the
/// server namespace showed, what the embedded server counted, and why the results are
/// incomplete (a client killed past its time).
struct Served {
    server_addr: SocketAddr,
    children: Vec<Running>,
    sampled: Sampled,
    server: Option<crate::results::summary::ServerSummary>,
    failed: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn serve_and_wait(
    plan: &Plan,
    cfg: &EmbeddedServer,
    opts: &RunOptions,
    dir: &ResultsDir,
    many: &ManyClients,
    listener: std::net::TcpListener,
    threads: &Threads,
    runtime: &tokio::runtime::Runtime,
    started: &std::cell::Cell<bool>,
) -> Result<Served> {
    let server = crate::server::Server::start(plan, cfg, listener, threads.handles())
        .context("starting the embedded server")?;
    let server_addr = server.addr;
    let (stop_sampling, sampler) = sample_server(server_addr, nat_table(many))?;

    // Every client begins at the same instant, far enough ahead for K processes to start.
    let lead = Duration::from_millis(2000 + 100 * u64::from(many_count(many)));
    let at = SystemTime::now() + lead;
    let (mut children, rx) = spawn_clients(many, dir, opts, server_addr, at, started)?;
    crate::say::note!(
        "{} clients start at {} in their own namespaces, the server at {server_addr}",
        children.len(),
        humantime::format_rfc3339_millis(at)
    );
    let deadline = Instant::now() + lead + load_bound(plan) + GRACE;
    let (failed, served) = runtime.block_on(async {
        let failed = wait_for_clients(&mut children, rx, deadline).await;
        let served = crate::results::assemble::server_summary(
            &crate::server::stop_servers(vec![server], plan.load.drain_timeout).await,
            &[server_addr],
        );
        (failed, served)
    });
    let _ = stop_sampling.send(());
    let sampled = sampler
        .join()
        .map_err(|_| anyhow!("the server sampler thread panicked"))?;
    Ok(Served {
        server_addr,
        children,
        sampled,
        failed,
        server: served,
    })
}

/// Each client's end, as its waiter thread reports it: (k, how it ended).
type Ends = tokio::sync::mpsc::UnboundedReceiver<(usize, String)>;

/// Starts client k of K inside client namespace k, for every k: `portlab run OUT/plan.toml
/// --shard k/K --start-at AT --in-lab-client SERVER --out OUT/client-k`, its stderr in
/// OUT/client-k.log, each watched by a thread that reports its end.
fn spawn_clients(
    many: &ManyClients,
    dir: &ResultsDir,
    opts: &RunOptions,
    server_addr: SocketAddr,
    at: SystemTime,
    started: &std::cell::Cell<bool>,
) -> Result<(Vec<Running>, Ends)> {
    let at_unix = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let exe = std::env::current_exe().context("finding portlab's own executable")?;
    let k_count = many_count(many);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    let mut children: Vec<Running> = Vec::new();
    for k in 0..k_count as usize {
        let out = dir.path().join(format!("client-{k}"));
        let log_name = format!("client-{k}.log");
        let log = dir
            .create(&log_name)
            .with_context(|| format!("creating {}", dir.path().join(&log_name).display()))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .arg(dir.path().join("plan.toml"))
            .arg("--shard")
            .arg(format!("{k}/{k_count}"))
            .arg("--start-at")
            .arg(format!("{at_unix:.3}"))
            .arg("--in-lab-client")
            .arg(server_addr.to_string())
            .args(["--format", "json", "--quiet", "--out"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if opts.force {
            cmd.arg("--force");
        }
        crate::sys::die_with_parent(&mut cmd);
        let mut child = match many.spawn_in(k, &mut cmd) {
            Ok(c) => c,
            Err(e) => {
                // The ones already started wait for a start that will not come: end them.
                for c in &children {
                    crate::sys::signal_group(c.pid, libc::SIGKILL);
                }
                return Err(anyhow!("starting client {k} ({}): {e}", exe.display()));
            }
        };
        started.set(true);
        children.push(Running {
            pid: child.id(),
            dir: out,
            ended: None,
        });
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("portlab-client-{k}"))
            .spawn(move || {
                let ended = child.wait().map_or_else(|e| e.to_string(), describe);
                let _ = tx.send((k, ended));
            })
            .context("starting a client's waiter thread")?;
    }
    Ok((children, rx))
}

/// Waits until every client has ended: each stop signal this process gets is passed on as
/// one SIGTERM to every client still running, and at `deadline` the ones still running are
/// killed. Returns why the results are incomplete when some were.
async fn wait_for_clients(
    children: &mut [Running],
    mut ends: Ends,
    deadline: Instant,
) -> Option<String> {
    let mut forwarded = 0;
    let mut failed = None;
    while children.iter().any(|c| c.ended.is_none()) {
        tokio::select! {
            got = ends.recv() => match got {
                Some((k, ended)) => children[k].ended = Some(ended),
                None => break,
            },
            () = signalled(forwarded + 1) => {
                forwarded += 1;
                for c in children.iter().filter(|c| c.ended.is_none()) {
                    crate::sys::signal_group(c.pid, libc::SIGTERM);
                }
            }
            () = tokio::time::sleep_until(deadline.into()), if failed.is_none() => {
                let late: Vec<String> = children
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.ended.is_none())
                    .map(|(k, c)| {
                        crate::sys::signal_group(c.pid, libc::SIGKILL);
                        format!("client {k}")
                    })
                    .collect();
                failed = Some(format!(
                    "{} still ran {}s past the end of the load and were killed",
                    late.join(", "),
                    GRACE.as_secs()
                ));
            }
        }
    }
    failed
}

fn many_count(many: &ManyClients) -> u32 {
    u32::try_from(many.clients.len()).unwrap_or(u32::MAX)
}

/// The longest the load may take: its duration, or its count at its rate, plus the drain
/// and the connection timeouts.
fn load_bound(plan: &Plan) -> Duration {
    let load = match (plan.load.duration, plan.load.count, plan.lab_rate()) {
        (Some(d), _, _) => d,
        (None, Some(n), Rate::PerSecond(r)) if r > 0.0 => {
            Duration::try_from_secs_f64(n as f64 / r).unwrap_or(Duration::from_secs(86_400))
        }
        _ => Duration::from_secs(86_400),
    };
    load + plan.load.drain_timeout + plan.load.connect_timeout + plan.load.exchange_timeout
}

/// How a child ended, in words.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "ended".into(),
    }
}

/// The NAT's conntrack table (`lab.nat_ports`), opened in its namespace; None without a NAT,
/// or (said once) when it cannot be read.
fn nat_table(many: &ManyClients) -> Option<Box<dyn crate::observe::conntrack::ConntrackSource>> {
    let failed = |e: &dyn std::fmt::Display| {
        crate::say::warning!(
            "the NAT's conntrack table cannot be read ({e}): the run goes on without it"
        );
        None
    };
    match many.in_nat_ns(crate::observe::conntrack_linux::CtSampler::open) {
        Ok(Some(Ok(s))) => Some(Box::new(s)),
        Ok(None) => None,
        Ok(Some(Err(e))) => failed(&e),
        Err(e) => failed(&e),
    }
}

/// Samples the server namespace (this thread's, inherited by the sampler thread) every
/// [`SAMPLE_EVERY`] until told to stop, then once more: TIME_WAIT on the server's port at
/// its most and at the end, the tw_sock_TCP slab, and `conntrack` (the NAT's table) when
/// there is one.
fn sample_server(
    target: SocketAddr,
    mut conntrack: Option<Box<dyn crate::observe::conntrack::ConntrackSource>>,
) -> Result<(mpsc::Sender<()>, std::thread::JoinHandle<Sampled>)> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("portlab-server-sampler".into())
        .spawn(move || {
            let mut sampler = Sampler::new(target);
            let mut slab = SlabWatch::start(TW_SLAB);
            let mut max: Option<u64> = None;
            loop {
                let tw = sampler.sample().tw_server;
                max = max.max(tw);
                slab.sample();
                if let Some(c) = conntrack.as_mut() {
                    c.count();
                }
                if !matches!(
                    stopped.recv_timeout(SAMPLE_EVERY),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    break;
                }
            }
            let end = sampler.sample().tw_server;
            let table = conntrack.as_mut().map(|c| c.summary());
            (max.max(end), end, slab.summary(), table)
        })
        .context("starting the server sampler thread")?;
    Ok((stop, thread))
}

/// The summary of a many-client run stopped before any client measured anything: no
/// attempts, interrupted, and which clients left nothing (`lab.clients.lost` in words).
fn interrupted_before_start(
    plan: &Plan,
    dir: &ResultsDir,
    server_addr: SocketAddr,
    lost: Vec<String>,
) -> Result<Summary> {
    let m = crate::collect::Measured::empty();
    let started = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut s = Summary::new(
        plan.scenario.clone(),
        started,
        server_addr.to_string(),
        &m,
        0.0,
        0.0,
        true,
        None,
    );
    s.observation = Some(format!(
        "interrupted while the clients started, before any sent anything: {}",
        lost.join("; ")
    ));
    let json = serde_json::to_string_pretty(&s).context("serialising the summary")?;
    dir.write_atomic("summary.json", json.as_bytes())
        .with_context(|| format!("writing {}/summary.json", dir.path().display()))?;
    Ok(s)
}

/// Merges what the clients wrote into `dir` and adds `lab.clients`.
fn merge(
    plan: &Plan,
    lab_plan: &crate::plan::lab::LabPlan,
    many: &ManyClients,
    dir: &ResultsDir,
    Served {
        server_addr,
        children,
        sampled: (tw_max, tw_end, slab, table),
        server,
        ..
    }: Served,
) -> Result<Summary> {
    let per_client_rate = match plan.lab_rate() {
        Rate::PerSecond(r) => r / f64::from(lab_plan.clients),
        // A closed loop has no planned R: the connections each client made bound its share.
        Rate::Max => f64::INFINITY,
    };
    let (mut lost, mut runs, mut lines, mut loads) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, c) in children.iter().enumerate() {
        let (line, load) = client_line(k, c, many, per_client_rate);
        match load {
            Some(load) => {
                runs.push(c.dir.clone());
                loads.extend(load);
            }
            None => lost.push(format!(
                "client {k} ({}): no results in {} ({}); its output is in client-{k}.log",
                line.address, line.dir, line.ended
            )),
        }
        lines.push(line);
    }
    // Interrupted before any client could start its load (a signal in a client's first
    // milliseconds, before it can catch one, ends it with nothing written): nothing was
    // sent, and the summary says so.
    if runs.is_empty() && crate::sys::stop_signals() > 0 {
        return interrupted_before_start(plan, dir, server_addr, lost);
    }
    if runs.is_empty() {
        bail!(
            "no client wrote its results ({}); see the client-*.log files in {}",
            lost.join("; "),
            dir.path().display()
        );
    }
    let mut summary = crate::results::merge::merge(&runs)?.write(dir)?;
    let buckets = lab_plan
        .server_sysctls
        .iter()
        .find(|w| *w.knob == crate::plan::sysctl::MAX_TW_BUCKETS)
        .and_then(|w| w.value.trim().parse().ok());
    let model = server_timewait(&loads, buckets);
    let s = &mut summary;
    s.interrupted |= crate::sys::stop_signals() > 0;
    // The one server all the clients shared (its accepted count includes each client's
    // reachability probe).
    s.server = server;
    s.observation = Some(format!(
        "{} client namespaces, merged; kernel counters are their sum; the server's TIME_WAIT is in lab.clients",
        lab_plan.clients
    ));
    // Behind a NAT the server sees the NAT's 4-tuples, at most its pool's ports; each
    // connection in flight holds one out of TIME_WAIT (see verdict::server_timewait).
    let in_flight = crate::collect::timeline::read(&dir.path().join("timeline.csv"))
        .map(|rows| rows.iter().map(|r| r.in_flight).max().unwrap_or(0))
        .unwrap_or(0);
    if let Some(table) = table {
        check_nat(plan, s, table, in_flight);
    }
    let (model, lo) = match lab_plan.nat {
        Some(pool) => {
            let m = model.min(f64::from(pool.len()));
            (m, (m - in_flight as f64).max(0.0))
        }
        None => (model, model),
    };
    if let (false, Some(measured)) = (loads.is_empty(), tw_max) {
        check_server_timewait(plan, s, [lo, model], measured);
    }
    let clients = ClientsSummary {
        count: lab_plan.clients,
        server_address: server_addr.to_string(),
        clients: lines,
        server_timewait_max: tw_max,
        server_timewait_end: tw_end,
        model_server_timewait: model,
        server_timewait_bytes: tw_max.zip(slab.objsize).map(|(n, size)| n * size),
        tw_slab: slab,
        lost,
    };
    s.lab = Some(lab_summary(many, lab_plan, clients));
    crate::results::merge::write_summary(&summary, dir)?;
    crate::report::html::write_report_or_warn(dir, &summary);
    Ok(summary)
}

/// Client k's line of `lab.clients`, and, when it left results, its share of the server's
/// TIME_WAIT (`Some(None)` when the server does not hold its TIME_WAIT; `None`: no results).
fn client_line(
    k: usize,
    c: &Running,
    many: &ManyClients,
    rate: f64,
) -> (ClientLine, Option<Option<ClientLoad>>) {
    let (address, settings) = &many.clients[k];
    let mut line = ClientLine {
        index: k as u32,
        address: address.to_string(),
        port_range: settings.get("net.ipv4.ip_local_port_range").cloned(),
        dir: c.dir.display().to_string(),
        ended: c.ended.clone().unwrap_or_else(|| "not waited for".into()),
        ..ClientLine::default()
    };
    let is_run = ["summary.json", "histograms.hlog"]
        .iter()
        .all(|f| c.dir.join(f).is_file());
    let Some(s) = is_run
        .then(|| crate::results::dir::load_summary(&c.dir).ok())
        .flatten()
    else {
        return (line, None);
    };
    line.attempts = s.attempts;
    line.connected = s.connected;
    line.failed = s.failed;
    line.first_exhaustion_s = s.exhaustion.first_s;
    line.timewait_max = s.timewait.as_ref().and_then(|t| t.client_max);
    let mut load = None;
    if let Some(p) = &s.prediction {
        line.ports = Some(p.ports_effective);
        line.predicted_first_error_s = p.first_error_s;
        if p.timewait_side == crate::model::TimeWaitSide::Server {
            line.tuples = p.client_tuples;
            let share = ClientLoad {
                rate,
                // The server's TIME_WAIT is Linux's fixed one, whatever the clients' reuse.
                hold_s: crate::model::Profile::Linux.time_wait_s().unwrap_or(60.0),
                made: s.completed as f64,
                tuples: p.client_tuples,
            };
            line.model_server_timewait = share.server_timewait();
            load = Some(share);
        }
    }
    (line, Some(load))
}

/// The verdict's `server timewait_max`: the server namespace's TIME_WAIT against the model's
/// sum over the clients (when the server closes first).
fn check_server_timewait(plan: &Plan, s: &mut Summary, [lo, model]: [f64; 2], measured: u64) {
    let Some(v) = s.verdict.as_mut() else { return };
    let tol = plan.expect.tolerance_for("timewait_max");
    let mut c = if lo.round() < model.round() {
        crate::results::verdict::in_range(
            "server timewait_max",
            lo.round(),
            model.round(),
            measured as f64,
            tol,
        )
    } else {
        crate::results::verdict::numeric(
            "server timewait_max",
            model.round(),
            measured as f64,
            tol,
            None,
        )
    };
    c.note = Some(match s.nat {
        Some(_) => "the server namespace's TIME_WAIT: the NAT's 4-tuples, at most its pool's ports, less the connections in flight (each holds its reused 4-tuple out of TIME_WAIT)".into(),
        None => "the server namespace's TIME_WAIT against the sum over clients of min(R_k x T, the distinct 4-tuples each reached)".into(),
    });
    crate::results::verdict::add_checks(v, vec![c]);
    if let Some(m) = s.merge.as_mut() {
        m.pass = v.pass;
    }
}

/// The NAT's table and the model's outlook for it in the merged summary (`lab.nat_ports`),
/// and the verdict's NAT checks.
fn check_nat(
    plan: &Plan,
    s: &mut Summary,
    table: crate::observe::conntrack::ConntrackSummary,
    in_flight: u64,
) {
    s.conntrack = Some(table);
    s.nat = crate::results::assemble::nat(plan, s, &[]);
    if let Some(n) = s.nat.as_mut() {
        n.in_flight_max = in_flight;
    }
    let checks = crate::results::verdict::nat(
        s,
        crate::results::verdict::kernel_count_tolerance(&plan.expect),
    );
    if let Some(v) = s.verdict.as_mut() {
        crate::results::verdict::add_checks(v, checks);
        if let Some(m) = s.merge.as_mut() {
            m.pass = v.pass;
        }
    }
}

/// `lab` of the merged summary: the lab as the clients' namespaces hold it (client 0's
/// settings; each client's range is in `clients`), the server's, and `clients`.
fn lab_summary(
    many: &ManyClients,
    lab_plan: &crate::plan::lab::LabPlan,
    clients: ClientsSummary,
) -> LabSummary {
    let side = |prefix: &str, list: &[crate::plan::lab::Sysctl]| -> Vec<WrittenSysctl> {
        list.iter()
            .map(|w| WrittenSysctl {
                name: format!("{prefix}{}", w.name()),
                value: w.value.clone(),
            })
            .collect()
    };
    let mut written = side("", &lab_plan.sysctls);
    written.extend(side("server:", &lab_plan.server_sysctls));
    LabSummary {
        mode: many.mode.to_string(),
        topology: lab_plan.topology.to_string(),
        settings: many
            .clients
            .first()
            .map(|c| c.1.clone())
            .unwrap_or_default(),
        server_settings: Some(many.server_settings.clone()),
        written,
        time_scale: lab_plan.time_scale(),
        emulated_time_wait_s: lab_plan.emulated_hold().map(|d| d.as_secs_f64()),
        warnings: lab_plan.warnings.clone(),
        tw_reuse_note: lab_plan.tw_reuse_note.map(str::to_string),
        clients: Some(clients),
    }
}
