//! One client run: the command started in the lab, its namespace sampled and its output read
//! until it exits, the duration ends or `client.stop_after` passes after its first failure;
//! then the summary, the model on the measured rate, and the verdict.

use super::activity::{self, Shape};
use super::process::{self, ClientProcess, Line};
use super::result;
use super::sample::{self, Point};
use super::signatures::{LineReader, Recognised, Signatures};
use super::timing;
use super::ClientExec;
use crate::collect::{Counts, ErrorStat, Exhaustion, Measured};
use crate::lab;
use crate::model;
use crate::observe::kernel_timeline::TimewaitSummary;
use crate::observe::{Counter, KernelSample, Sampler};
use crate::plan::{Plan, Rate, Scenario, ServerClose, Target};
use crate::results::client_exec::ClientExecSummary;
use crate::results::summary::Summary;
use crate::results::{assemble, verdict};
use crate::server::exec::ExecSummary;
use crate::server::exec::ExecTarget;
use crate::server::{Server, ServerStats};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the engine set up for the run.
pub struct Setup<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Its client command.
    pub cx: &'a ClientExec,
    /// The plan as a scenario (plan.toml, summary.plan).
    pub scenario: Scenario,
    /// The results directory.
    pub dir: &'a crate::results::dir::ResultsDir,
    /// The lab, when there is one.
    pub applied: Option<&'a lab::Applied>,
    /// The embedded server (one per destination), started.
    pub servers: Vec<Server>,
    /// The server command portlab started (`--target-exec`).
    pub exec: Option<ExecTarget>,
    /// Where the client is sent (the first) and the embedded server's other destinations.
    pub targets: &'a [SocketAddr],
    /// The settings the model works from.
    pub settings: &'a BTreeMap<String, String>,
}

/// A recognised line, seconds since the command started.
#[derive(Debug, Clone)]
struct Failure {
    t: f64,
    line: String,
    what: Recognised,
}

/// Runs the client and returns the run's summary (with prediction and verdict): set-up,
/// [`watch`] until it ends, the last sample once the servers closed their side, then the
/// pure [`assemble`].
pub async fn drive(
    s: Setup<'_>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let (plan, cx) = (s.plan, s.cx);
    let target = *s
        .targets
        .first()
        .ok_or_else(|| anyhow!("internal: no target for the client"))?;
    let mut probe = Probe::new(target, s.applied, &s.servers)?;
    let mut reader = LineReader::new(Signatures::new(
        cx.failure_pattern
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("client.failure_pattern")?,
    ));
    let mut out = Outputs::create(s.dir)?;
    let rate = match plan.lab_rate() {
        Rate::PerSecond(r) => Some(r),
        Rate::Max => None,
    };
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let (base, base_kernel) = probe.take(0.0);
    crate::say::note!("running your client: {}", cx.command);
    let mut proc =
        ClientProcess::start(&cx.command, &process::environment(target, s.targets, rate)).map_err(
            |e| {
                anyhow!(
                    "client.exec (--client-exec) `{}` cannot be started: {e}",
                    cx.command
                )
            },
        )?;
    let t0 = proc.started;
    let bounds = Bounds {
        duration: plan.load.duration.unwrap_or(Duration::from_secs(10)),
        sample: cx.sample,
        stop_after: cx.stop_after,
    };
    let mut w = watch(
        &mut proc,
        &mut probe,
        bounds,
        &mut reader,
        &mut out.log,
        base,
        shutdown,
    )
    .await;
    let (status, stopped_by) = proc.stop();
    // The rest of its output: the pipes close once it and its children are gone.
    let drain_until = Instant::now() + Duration::from_secs(1);
    while let Ok(line) = proc
        .lines
        .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
    {
        keep(&line, t0, &mut reader, &mut out.log, &mut w.failures);
    }
    let _ = out.log.flush();
    could_run(cx, status, &w.points, &out.log_path)?;
    let end_s = Instant::now().saturating_duration_since(t0).as_secs_f64();

    // The server's side closes after the client's: then the last sample.
    let server = assemble::server_summary(
        &crate::server::stop_servers(s.servers, plan.load.drain_timeout).await,
        s.targets,
    );
    let (p, k) = probe.take(end_s);
    w.points.push(p);
    let accepts = probe.accepts(t0);
    let destinations: Vec<SocketAddr> = if accepts.is_empty() {
        Vec::new()
    } else {
        s.targets.to_vec()
    };
    let end_kernel = if k.counters.get(Counter::ActiveOpens).is_some() {
        k
    } else {
        w.last_kernel
    };
    write_samples(&mut out.csv, &w.points);
    let ran = ClientRecord {
        scenario: s.scenario,
        started_at,
        target,
        rate,
        points: w.points,
        failures: w.failures,
        kernel: kernel_deltas(&end_kernel, &base_kernel),
        end_s,
        exit_status: status.map_or_else(|| "unknown".to_string(), |x| process::describe(&x)),
        stopped_by: stopped_by.map(str::to_string),
        ended_by: w.ended_by,
        log: out.log_path.display().to_string(),
        samples: out.samples_path.display().to_string(),
        server,
        exec: s.exec.map(ExecTarget::stop),
        accepts,
        destinations,
        lab: s
            .applied
            .zip(plan.lab.as_ref())
            .map(|(a, lab)| assemble::lab_summary(a, lab)),
    };
    Ok(assemble(plan, cx, s.settings, ran))
}

/// The kernel samplers toward the target (the client's namespace, and the server's with
/// the veth topology) and the embedded server's request counters.
struct Probe {
    client: Sampler,
    server: Option<Sampler>,
    stats: Vec<Arc<ServerStats>>,
    /// On the host (no lab), ActiveOpens counts every process's connections (another test's
    /// once made a client that opened none look like one at 60/s): the client's connections
    /// are then the ones the embedded server accepted.
    opens_from_server: bool,
}

impl Probe {
    fn new(
        target: SocketAddr,
        applied: Option<&lab::Applied>,
        servers: &[Server],
    ) -> Result<Probe> {
        let server = match applied {
            Some(a) if a.topology == crate::plan::lab::Topology::Veth => {
                Some(a.in_server_ns(|| Sampler::new(target))?)
            }
            _ => None,
        };
        let on_host = applied.is_none_or(|a| a.mode == "host");
        Ok(Probe {
            client: Sampler::new(target),
            server,
            stats: servers.iter().map(|x| x.stats.clone()).collect(),
            opens_from_server: on_host && !servers.is_empty(),
        })
    }

    /// Each embedded server's accept times, seconds since `t0`.
    fn accepts(&self, t0: Instant) -> Vec<Vec<f64>> {
        self.stats
            .iter()
            .map(|x| {
                x.accept_times()
                    .iter()
                    .map(|a| a.saturating_duration_since(t0).as_secs_f64())
                    .collect()
            })
            .collect()
    }

    /// One sample at `t` seconds since the command started, with the kernel's counters.
    fn take(&mut self, t: f64) -> (Point, KernelSample) {
        let k = self.client.sample();
        let tw_server = match self.server.as_mut() {
            Some(x) => x.sample().tw_server,
            None => k.tw_server,
        };
        let requests = (!self.stats.is_empty()).then(|| {
            self.stats
                .iter()
                .map(|x| x.requests.load(Ordering::Relaxed))
                .sum()
        });
        let accepted = || {
            self.stats
                .iter()
                .map(|x| x.accepted.load(Ordering::Relaxed))
                .sum()
        };
        let p = Point {
            t_s: t,
            active_opens: if self.opens_from_server {
                Some(accepted())
            } else {
                k.counters.get(Counter::ActiveOpens)
            },
            tw_client: k.tw_client,
            tw_server,
            established_client: k.established_client,
            requests,
            all_held: k.client_held,
            all_ports: k.client_ports,
            segments: k.counters.segments(),
        };
        (p, k)
    }
}

/// client-exec.log and client-samples.csv in the results directory.
struct Outputs {
    log: std::io::BufWriter<std::fs::File>,
    log_path: PathBuf,
    csv: csv::Writer<std::fs::File>,
    samples_path: PathBuf,
}

impl Outputs {
    fn create(dir: &crate::results::dir::ResultsDir) -> Result<Outputs> {
        let log_path = dir.path().join("client-exec.log");
        let log = std::io::BufWriter::new(
            dir.create("client-exec.log")
                .with_context(|| format!("creating {}", log_path.display()))?,
        );
        let samples_path = dir.path().join("client-samples.csv");
        let csv = csv::Writer::from_writer(
            dir.create("client-samples.csv")
                .with_context(|| format!("creating {}", samples_path.display()))?,
        );
        Ok(Outputs {
            log,
            log_path,
            csv,
            samples_path,
        })
    }
}

/// What [`watch`] saw until the client ended.
struct Watched {
    /// The samples, the baseline first.
    points: Vec<Point>,
    /// The recognised lines.
    failures: Vec<Failure>,
    /// The kernel's last sample.
    last_kernel: KernelSample,
    /// exited, duration, stop_after or interrupted.
    ended_by: &'static str,
}

/// When [`watch`] samples and when it stops.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The run's duration (`load.duration`, 10 s without one).
    duration: Duration,
    /// `client.sample`.
    sample: Duration,
    /// `client.stop_after`.
    stop_after: Option<Duration>,
}

/// Samples every `client.sample` and reads the client's output until it exits, the
/// duration ends, `client.stop_after` passes after its first failure, or `shutdown`.
async fn watch(
    proc: &mut ClientProcess,
    probe: &mut Probe,
    bounds: Bounds,
    reader: &mut LineReader,
    log: &mut impl Write,
    base: Point,
    shutdown: impl std::future::Future<Output = ()>,
) -> Watched {
    let t0 = proc.started;
    let mut points = vec![Point { t_s: -0.0, ..base }];
    let mut failures: Vec<Failure> = Vec::new();
    let mut ticker = tokio::time::interval(bounds.sample);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let interrupted = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut shutdown => true,
        };
        let now = Instant::now().saturating_duration_since(t0);
        let (p, last_kernel) = probe.take(now.as_secs_f64());
        points.push(p);
        while let Ok(line) = proc.lines.try_recv() {
            keep(&line, t0, reader, log, &mut failures);
        }
        let ended_by = ended_by(
            interrupted,
            proc.exited().is_some(),
            Instant::now().saturating_duration_since(t0),
            bounds.duration,
            bounds.stop_after.zip(failures.first().map(|f| f.t)),
        );
        if let Some(ended_by) = ended_by {
            return Watched {
                points,
                failures,
                last_kernel,
                ended_by,
            };
        }
    }
}

/// Why the watch ends now, if it does: `now` since the command started, against the run's
/// `duration` and (stop_after, when the first failure came).
fn ended_by(
    interrupted: bool,
    exited: bool,
    now: Duration,
    duration: Duration,
    stop_after: Option<(Duration, f64)>,
) -> Option<&'static str> {
    if interrupted {
        Some("interrupted")
    } else if exited {
        Some("exited")
    } else if now >= duration {
        Some("duration")
    } else if stop_after
        .is_some_and(|(after, first)| now.as_secs_f64() >= first + after.as_secs_f64())
    {
        Some("stop_after")
    } else {
        None
    }
}

/// The shell could not run the command (not found, not executable) and it opened nothing:
/// a set-up error, not a run.
fn could_run(
    cx: &ClientExec,
    status: Option<std::process::ExitStatus>,
    points: &[Point],
    log_path: &std::path::Path,
) -> Result<()> {
    let opened =
        points.last().and_then(|p| p.active_opens) != points.first().and_then(|p| p.active_opens);
    let (Some(code @ (126 | 127)), false) = (status.and_then(|x| x.code()), opened) else {
        return Ok(());
    };
    let output = std::fs::read_to_string(log_path).unwrap_or_default();
    let tail: Vec<&str> = output.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(anyhow!(
        "client.exec (--client-exec) `{}` could not be run (exit {code}); fix the command. Its output ends:\n{}",
        cx.command,
        tail.join("\n")
    ))
}

/// Everything a finished client run produced, for [`assemble`].
struct ClientRecord {
    scenario: Scenario,
    started_at: String,
    target: SocketAddr,
    /// The rate the client was asked for (`PORTLAB_RATE`).
    rate: Option<f64>,
    points: Vec<Point>,
    failures: Vec<Failure>,
    /// The kernel's counter changes over the run.
    kernel: BTreeMap<String, u64>,
    /// When it ended, seconds since the command started.
    end_s: f64,
    exit_status: String,
    stopped_by: Option<String>,
    ended_by: &'static str,
    log: String,
    samples: String,
    server: Option<crate::results::summary::ServerSummary>,
    exec: Option<ExecSummary>,
    lab: Option<crate::results::summary::LabSummary>,
    /// Each embedded server's accept times (seconds since the command started), in the
    /// order of `destinations`; empty without an embedded server.
    accepts: Vec<Vec<f64>>,
    /// The embedded server's destinations (the target first).
    destinations: Vec<SocketAddr>,
}

/// The pure end of a client run: the samples, the server's accept times and the recognised
/// lines become the figures (through [`assemble::figures`], as a built-in run's do), then
/// the model on the measured rate and closing side, and the verdict.
fn assemble(
    plan: &Plan,
    cx: &ClientExec,
    settings: &BTreeMap<String, String>,
    r: ClientRecord,
) -> Summary {
    let sample_s = cx.sample.as_secs_f64();
    // P toward one destination (with plain connect() each has its own), and the model's
    // input apart from the measured figures.
    let mut input = model::from_plan::input_for(plan, settings, r.target);
    input.destinations = 1;
    input.rate = None;
    let base = r.points.first().copied().unwrap_or_default();
    input.preexisting = clamp_u32(base.ports_used().unwrap_or(0));
    let mut ports = model::predict(&input).ports_effective;
    // bind(0) before connect(): one range for every destination.
    let shared = timing::shared_range(&r.points, ports);
    let view: Vec<Point> = if shared {
        input.bind = model::BindModel::WholeRange;
        input.preexisting = clamp_u32(base.all_held.unwrap_or(0));
        ports = model::predict(&input).ports_effective;
        r.points
            .iter()
            .map(|p| Point {
                tw_client: p
                    .all_held
                    .map(|h| h.saturating_sub(p.established_client.unwrap_or(0))),
                ..*p
            })
            .collect()
    } else {
        r.points.clone()
    };
    let unmeasured = model::predict(&input);
    // Where connect() may take a TIME_WAIT port (tcp_tw_reuse), a full count is not
    // exhaustion: the next connect() reuses one.
    let full_counts = !unmeasured.reuse_applies;
    // The connections at the server's resolution: toward the destination whose ports run
    // out (every destination when the range is shared), and all of them.
    let pool = accepts_of(&r.accepts, r.target, &r.destinations, shared);
    let all = accepts_of(&r.accepts, r.target, &r.destinations, true);
    let sampled_full = sample::analyse(&view, ports, None)
        .ports_full_at
        .filter(|_| full_counts);
    let full_at = sampled_full.map(|f| {
        pool.as_deref()
            .map_or(f, |t| timing::refine_full(&view, f, t))
    });
    let first = first_failure(&r.failures, full_at, sample_s);
    let stopped = pool
        .as_deref()
        .and_then(|t| activity::stopped_at(t, 0.0, (3.0 * sample_s).max(0.3), r.end_s));
    let decision = timing::decide(&timing::Witnesses {
        line: first.map(|f| (f.t, f.what.late)),
        ports_full: full_at,
        full_precise: full_at != sampled_full,
        accepts_stopped: stopped,
        sample_s,
    });
    let mut a = sample::analyse(&view, ports, decision.at);
    a.ports_full_at = full_at;
    let act = pool
        .as_deref()
        .and_then(|t| timing::activity_until(t, decision.at));
    if let (Some(x), Some(times)) = (&act, pool.as_deref()) {
        a.first_connection_s = Some(x.first_s);
        a.measured_rate = x.span_rate.or(a.measured_rate);
        a.rate_until_s = Some(x.last_s);
        a.port_share = timing::port_share(&view, times, x.first_s, x.last_s);
    }
    if let Some(all) = &all {
        a.connections = all.len() as u64;
    }
    let start = a.first_connection_s.unwrap_or(0.0);
    let counted = counted(&r.failures, first);
    let failures = counted.iter().map(|f| f.what.count).sum();
    let mut c = client_summary(cx, &r, &a, ports, first, failures);
    c.shared_range = shared;
    c.tw_reuse_applies = !full_counts;
    c.exhaustion_source = decision.source.name().to_string();
    c.exhausted_s = decision.at.map(|t| (t - start).max(0.0));
    c.failure_line_late_s = decision.line_late_by;
    c.stalled = stall(&r, all.as_deref(), decision.at);
    describe_activity(&mut c, act.as_ref(), pool.as_deref(), &r, all.as_deref());
    let model_first = model_first_s(&c, act.as_ref(), pool.as_deref(), ports);
    c.model_first_error_s = model_first;
    c.model_rate = match (model_first, c.measured_rate) {
        (Some(t), _) if t > 0.0 => Some(ports as f64 / t),
        (_, Some(r)) => Some(r * held_share(&c).unwrap_or(1.0)),
        _ => None,
    };
    let measured = measured(
        &a,
        &counted,
        decision.at,
        first,
        start,
        &unmeasured.exhaustion_error,
        decision.source,
    );
    let last = r.points.last().copied().unwrap_or_default();
    let load_duration_s = (r.end_s - start).max(0.0);
    let facts = assemble::Facts {
        scenario: r.scenario,
        started_at: r.started_at,
        target: r.target,
        achieved_rate: Some(if load_duration_s > 0.0 {
            (measured.counts.attempts as f64) / load_duration_s
        } else {
            0.0
        }),
        measured,
        duration_s: r.end_s,
        load_duration_s,
        interrupted: r.ended_by == "interrupted",
        server: r.server,
        exec: r.exec,
        observed: Some(assemble::Observed {
            timewait: TimewaitSummary {
                client_max: Some(a.tw_client_max),
                server_max: Some(a.tw_server_max),
                client_end: last.tw_client,
                server_end: last.tw_server,
                ..TimewaitSummary::default()
            },
            kernel: r.kernel,
            preexisting: 0,
            by: assemble::Watcher::ClientExec,
            conntrack: None,
        }),
        lab: r.lab,
    };
    let mut summary = assemble::figures(plan, &facts);
    // The model on the measured rate and the measured closing side.
    input.rate = c.model_rate;
    input.timewait_side = result::model_side(&c.close_side);
    if c.pooled {
        input.pool = u32::try_from(a.established_max.max(1)).unwrap_or(u32::MAX);
    }
    let mut prediction = model::predict(&input);
    if let (Some(x), Some(t)) = (act.as_ref(), model_first) {
        unsteady_prediction(&mut prediction, &input, x, held_share(&c), t, ports);
    }
    let mut checks = result::checks(
        &prediction,
        &c,
        facts.load_duration_s,
        expected_side(&plan.target, summary.server.as_ref()),
        |n| plan.expect.tolerance_for(n),
    );
    if !plan.expect.model {
        for ch in &mut checks {
            ch.advisory = true;
        }
    }
    let inconclusive = result::inconclusive(&c);
    summary.client_exec = Some(c);
    checks.extend(verdict::expectations(&summary, &plan.expect));
    checks.extend(verdict::margin_check(&prediction, &plan.expect));
    summary.verdict = Some(verdict::Verdict {
        pass: inconclusive.is_none() && checks.iter().all(|c| c.pass || c.advisory),
        checks,
        inconclusive,
    });
    summary.prediction = Some(prediction);
    summary
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The accept times toward the target (its server's), or toward every destination, sorted;
/// None without an embedded server (another server's accepts are not portlab's to see).
fn accepts_of(
    accepts: &[Vec<f64>],
    target: SocketAddr,
    destinations: &[SocketAddr],
    every: bool,
) -> Option<Vec<f64>> {
    if accepts.is_empty() {
        return None;
    }
    if !every {
        let i = destinations.iter().position(|d| *d == target).unwrap_or(0);
        return accepts.get(i).cloned();
    }
    let mut all: Vec<f64> = accepts.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    Some(all)
}

/// The share of connections that cost the client a port, where not every one does: the
/// port share (pgbench -C) when the client closes first and holds its ports for the whole
/// TIME_WAIT, or its share of TIME_WAIT when both sides hold some. None otherwise: with
/// the server closing first the client holds none (the model's side says so), and where
/// tcp_tw_reuse lets connect() take a TIME_WAIT port, fewer held ports is reuse, not a
/// connection that held none (26% held at 100/s on loopback with reuse 1).
fn held_share(c: &ClientExecSummary) -> Option<f64> {
    if c.tw_reuse_applies {
        return None;
    }
    match (c.close_side.as_str(), c.port_share, c.client_share) {
        ("client", Some(p), _) if p < 0.95 => Some(p),
        ("mixed", Some(p), _) if p < 0.95 => Some(p),
        ("mixed", _, Some(s)) => Some(s),
        _ => None,
    }
}

/// When the model says the first failure comes, seconds since the first connection: P / R
/// for a steady client (R times the share of connections that hold a port); for one that
/// bursts or ramps, where its cumulative connections reach P (extrapolated at its current
/// rate when they did not within the run). None when its ports are not what runs out (the
/// server closes first, nobody holds TIME_WAIT, a pool) or no rate was measured.
fn model_first_s(
    c: &ClientExecSummary,
    act: Option<&activity::Activity>,
    pool: Option<&[f64]>,
    ports: u64,
) -> Option<f64> {
    if c.pooled || matches!(c.close_side.as_str(), "server" | "none") || c.tw_reuse_applies {
        return None;
    }
    let share = held_share(c).unwrap_or(1.0);
    let rate = c.measured_rate? * share;
    let steady = act.is_none_or(|x| matches!(x.shape, Shape::Steady | Shape::Unknown));
    if steady || rate <= 0.0 {
        return (rate > 0.0).then(|| ports as f64 / rate);
    }
    let (x, times) = (act?, pool?);
    let need = (ports as f64 / share).ceil() as u64;
    match activity::nth(times, need) {
        Some(t) => Some(t - x.first_s),
        None => {
            let cur = x.current_rate? * share;
            let have = times.len() as f64 * share;
            let last = times.last().copied()?;
            Some(last - x.first_s + (ports as f64 - have).max(0.0) / cur)
        }
    }
}

/// The model of a client that bursts or ramps: its need in ports from the rate at the end
/// (R x hold), its first failure where its connections reach P (`first_s`, since the
/// first connection), and a sentence that says so.
fn unsteady_prediction(
    p: &mut model::Prediction,
    input: &model::ModelInput,
    x: &activity::Activity,
    share: Option<f64>,
    first_s: f64,
    ports: u64,
) {
    if matches!(x.shape, Shape::Steady | Shape::Unknown) {
        return;
    }
    let Some(cur) = x.current_rate else {
        return;
    };
    let share = share.unwrap_or(1.0);
    let at_end = model::predict(&model::ModelInput {
        rate: Some(cur * share),
        ..input.clone()
    });
    p.steady_timewait = at_end.steady_timewait;
    p.steady_timewait_max = at_end.steady_timewait_max;
    p.margin = at_end.margin;
    p.exhausts = p.exhausts || at_end.exhausts;
    p.first_error_s = p.exhausts.then_some(first_s);
    p.explanation = format!(
        "a {} client: {:.1} conn/s on average, {:.0}/s at its peak, {:.1}/s at the end. At that rate, holding each port {:.0} s, it needs {:.0} ports against {ports}; its connections reach {ports} {:.2} s after its first, where the first {} comes.",
        x.shape.name(),
        x.mean_rate.unwrap_or(0.0),
        x.peak_rate.unwrap_or(0.0),
        cur,
        at_end.hold_s,
        cur * share * at_end.hold_s,
        first_s,
        at_end.exhaustion_error
    );
}

/// The rate's window, shape, peak and current rate, and the destinations, into `c`.
fn describe_activity(
    c: &mut ClientExecSummary,
    act: Option<&activity::Activity>,
    pool: Option<&[f64]>,
    r: &ClientRecord,
    all: Option<&[f64]>,
) {
    if let Some(x) = act {
        c.rate_window_s = Some([x.first_s, x.last_s]);
        c.rate_connections = Some(x.count);
        c.shape = Some(x.shape.name().to_string());
        c.peak_rate = x.peak_rate;
        c.average_rate = x.mean_rate;
        c.current_rate = x.current_rate;
        c.rate_source = "server_accepts".into();
    } else {
        c.rate_source = "samples".into();
    }
    c.destinations = r.destinations.len().max(1) as u32;
    if let (Some(p), Some(all)) = (pool, all) {
        if c.destinations > 1 && !c.shared_range {
            c.target_connections = Some(p.len() as u64);
            c.all_connections = Some(all.len() as u64);
        }
    }
}

/// Seconds without a connection or a request, while the client ran and before its ports
/// ran out, that no rhythm of its own explains: (from, seconds). A client that waits on a
/// server that never answers (an HTTP/1.0 client waiting for a close) makes no progress,
/// and a run that measured nothing must not pass.
fn stall(r: &ClientRecord, accepts: Option<&[f64]>, exhausted: Option<f64>) -> Option<[f64; 2]> {
    let mut events: Vec<f64> = accepts.unwrap_or(&[]).to_vec();
    for w in r.points.windows(2) {
        let more = |f: fn(&Point) -> Option<u64>| f(&w[1]) > f(&w[0]);
        // Segments count as progress only where the accepts and requests cannot see it (a
        // pool toward another server); on the host they are every process's.
        let blind = accepts.is_none();
        if more(|p| p.requests) || (blind && (more(|p| p.active_opens) || more(|p| p.segments))) {
            events.push(w[1].t_s);
        }
    }
    events.sort_by(f64::total_cmp);
    let until = exhausted.map_or(r.end_s, |t| t.min(r.end_s));
    let Some(&begin) = events.first() else {
        // Not one connection: it made no progress at all (unless it ran out at once).
        return (exhausted.is_none() && r.end_s >= STALL_S).then_some([0.0, r.end_s]);
    };
    let events: Vec<f64> = events.into_iter().filter(|&t| t <= until).collect();
    let (at, len) = activity::longest_quiet(&events, begin, until);
    let rhythm = events
        .windows(2)
        .filter(|w| w[1] <= at)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    (len >= STALL_S && len >= 3.0 * rhythm).then_some([at, len])
}

/// The shortest quiet stretch called a stall, seconds.
const STALL_S: f64 = 1.0;

/// The first failure that counts as the ports running out: a line that says so, or one
/// that does not say why a connect failed within two samples of the ports being seen full.
fn first_failure(failures: &[Failure], full_at: Option<f64>, sample_s: f64) -> Option<&Failure> {
    failures
        .iter()
        .find(|f| f.what.definite || full_at.is_some_and(|full| full <= f.t + 2.0 * sample_s))
}

/// The failures counted: every definite one, and the others from the first on.
fn counted<'a>(failures: &'a [Failure], first: Option<&Failure>) -> Vec<&'a Failure> {
    failures
        .iter()
        .filter(|f| f.what.definite || first.is_some_and(|x| f.t >= x.t))
        .collect()
}

/// Who the embedded server's close makes hold TIME_WAIT (None with an external target,
/// whose close portlab does not know). With `after-client`, an HTTP request that asks for
/// the close (HTTP/1.0, `Connection: close`) makes the server close first, as nginx does:
/// the side is then decided by the share of connections the server `closed_on_request`,
/// split as the measured side is (`sample::close_side`: 80% either way decides).
fn expected_side(
    target: &Target,
    server: Option<&crate::results::summary::ServerSummary>,
) -> Option<&'static str> {
    match target {
        Target::Embedded(e) => Some(match e.close {
            ServerClose::AfterClient => match server {
                Some(s) if s.closed_on_request > 0 => {
                    let closed = s.closed_on_request.min(s.accepted);
                    sample::close_side(s.accepted - closed, closed).0
                }
                _ => "client",
            },
            ServerClose::First => "server",
            ServerClose::Reset => "none",
        }),
        Target::External(_) => None,
    }
}

/// summary.json's `client_exec`.
fn client_summary(
    cx: &ClientExec,
    r: &ClientRecord,
    a: &sample::Analysis,
    ports: u64,
    first: Option<&Failure>,
    failures: u64,
) -> ClientExecSummary {
    let start = a.first_connection_s.unwrap_or(0.0);
    let since = |t: f64| (t - start).max(0.0);
    let (side, share) = sample::close_side(a.tw_client_max, a.tw_server_max);
    ClientExecSummary {
        command: cx.command.clone(),
        first_connection_s: a.first_connection_s,
        measured_rate: a.measured_rate,
        requested_rate: r.rate,
        close_side: side.to_string(),
        client_share: share,
        port_share: a.port_share,
        port_share_min: a.port_share_min,
        tw_client_max: a.tw_client_max,
        tw_server_max: a.tw_server_max,
        established_max: a.established_max,
        pooled: sample::pooled(a.connections, a.requests, a.established_max),
        connections: a.connections,
        requests: a.requests,
        first_failure_s: first.map(|f| since(f.t)),
        failure_line: first.map(|f| f.line.clone()),
        failure_kind: first.map(|f| f.what.kind.clone()),
        failure_signature: first.map(|f| f.what.signature.to_string()),
        failures,
        ports_full_s: a.ports_full_at.map(since),
        ports,
        exit_status: r.exit_status.clone(),
        stopped_by: r.stopped_by.clone(),
        ended_by: r.ended_by.to_string(),
        log: r.log.clone(),
        samples: r.samples.clone(),
        sample_s: cx.sample.as_secs_f64(),
        ..ClientExecSummary::default()
    }
}

/// The figures a built-in run's collector would give, from the samples and the counted
/// failures (seconds from the first connection, `start`): each failure a connect error
/// (a summary line as many as it says), the exhaustion at `at` (the decided time), named
/// by the first failure's kind or else as the model's `exhaustion_error`.
fn measured(
    a: &sample::Analysis,
    counted: &[&Failure],
    at: Option<f64>,
    first: Option<&Failure>,
    start: f64,
    exhaustion_error: &str,
    source: timing::Source,
) -> Measured {
    let since = |t: f64| (t - start).max(0.0);
    let mut errors: BTreeMap<String, ErrorStat> = BTreeMap::new();
    for f in counted {
        let e = errors
            .entry(f.what.kind.clone())
            .or_insert_with(|| ErrorStat {
                count: 0,
                phase: "connect".into(),
                first_s: since(f.t),
                last_s: since(f.t),
                by_phase: BTreeMap::new(),
            });
        e.count += f.what.count;
        e.last_s = since(f.t);
        *e.by_phase.entry("connect".into()).or_insert(0) += f.what.count;
    }
    // A late line's time is not the error's: the exhaustion's is.
    if let (Some(t), Some(f)) = (at, first) {
        if let Some(e) = errors.get_mut(&f.what.kind) {
            e.first_s = e.first_s.min(since(t));
        }
    }
    let phase = match (source, first.is_some()) {
        (timing::Source::FailureLine, _) => "connect".to_string(),
        (timing::Source::PortsFull, true) => "connect (dated by the samples: the ports were full; the client printed its failure later)".to_string(),
        (timing::Source::ServerAccepts, true) => "connect (dated by the server's last accept; the client printed its failure later)".to_string(),
        (timing::Source::PortsFull, false) => "ports full (seen in the samples; the client printed no failure portlab recognised)".to_string(),
        _ => String::new(),
    };
    let exhaustion = Exhaustion {
        first_s: at.map(since),
        kind: at
            .map(|_| first.map_or_else(|| exhaustion_error.to_string(), |f| f.what.kind.clone())),
        phase: at.map(|_| phase),
        due_s: None,
        attempt: None,
    };
    let failed = counted.iter().map(|f| f.what.count).sum();
    Measured {
        counts: Counts {
            attempts: a.connections + failed,
            connected: a.connections,
            completed: a.requests.unwrap_or(a.connections),
            failed,
            ..Counts::default()
        },
        errors,
        exhaustion,
        ..Measured::empty()
    }
}

/// Logs a line (seconds since the command started, stream, text) and keeps it when it is a
/// recognised failure (once per failure, however many lines it is printed over).
fn keep(
    line: &Line,
    t0: Instant,
    reader: &mut LineReader,
    log: &mut impl Write,
    failures: &mut Vec<Failure>,
) {
    let t = line.at.saturating_duration_since(t0).as_secs_f64();
    let _ = writeln!(log, "{t:.3} {} {}", line.stream, line.text);
    if let Some(what) = reader.feed(line.stream, &line.text) {
        failures.push(Failure {
            t,
            line: line.text.clone(),
            what,
        });
    }
}

/// client-samples.csv: each sample, and the client's connection rate over the interval
/// that ends with it (ActiveOpens delta / seconds).
fn write_samples(csv: &mut csv::Writer<std::fs::File>, points: &[Point]) {
    #[derive(serde::Serialize)]
    struct Row {
        t_s: f64,
        active_opens: Option<u64>,
        tw_client: Option<u64>,
        tw_server: Option<u64>,
        established_client: Option<u64>,
        requests: Option<u64>,
        rate: Option<f64>,
    }
    let mut previous: Option<&Point> = None;
    for p in points {
        let rate = previous.and_then(|q| {
            let opened = p.active_opens?.checked_sub(q.active_opens?)?;
            let dt = p.t_s - q.t_s;
            (dt > 0.0).then(|| opened as f64 / dt)
        });
        let _ = csv.serialize(Row {
            t_s: p.t_s,
            active_opens: p.active_opens,
            tw_client: p.tw_client,
            tw_server: p.tw_server,
            established_client: p.established_client,
            requests: p.requests,
            rate,
        });
        previous = Some(p);
    }
    let _ = csv.flush();
}

fn kernel_deltas(end: &KernelSample, base: &KernelSample) -> BTreeMap<String, u64> {
    let d = end.delta(base);
    Counter::ALL
        .iter()
        .filter_map(|c| d.get(*c).map(|v| (c.name().to_string(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(t: f64, kind: &str, definite: bool) -> Failure {
        Failure {
            t,
            line: format!("{kind} at {t}"),
            what: Recognised {
                kind: kind.to_string(),
                signature: "test",
                definite,
                count: 1,
                late: false,
            },
        }
    }

    #[test]
    fn the_watch_ends_for_the_first_reason_that_holds() {
        let s = Duration::from_secs;
        // (interrupted, exited, now, duration, (stop_after, first failure at), want)
        type Case = (
            bool,
            bool,
            u64,
            u64,
            Option<(u64, f64)>,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (false, false, 1, 10, None, None),
            (true, true, 20, 10, Some((0, 0.0)), Some("interrupted")),
            (false, true, 20, 10, None, Some("exited")),
            (false, false, 10, 10, None, Some("duration")),
            (false, false, 5, 10, Some((2, 3.0)), Some("stop_after")),
            (false, false, 4, 10, Some((2, 3.0)), None),
        ];
        for &(interrupted, exited, now, duration, stop, want) in cases {
            let stop = stop.map(|(after, first)| (s(after), first));
            assert_eq!(
                ended_by(interrupted, exited, s(now), s(duration), stop),
                want,
                "{interrupted} {exited} {now} {duration} {stop:?}"
            );
        }
    }

    #[test]
    fn an_indefinite_line_counts_only_near_the_ports_being_full() {
        let lines = [
            failure(1.0, "ECONNREFUSED?", false),
            failure(3.0, "EADDRNOTAVAIL", false),
            failure(4.0, "EADDRNOTAVAIL", false),
        ];
        // Full at 3.1 s, sampled every 0.1 s: the 1.0 s line is too early, the 3.0 s one counts.
        let first = first_failure(&lines, Some(3.1), 0.1).map(|f| f.t);
        assert_eq!(first, Some(3.0));
        let first = first_failure(&lines, Some(3.1), 0.1);
        assert_eq!(counted(&lines, first).len(), 2);
        // Never full: nothing counts.
        assert!(first_failure(&lines, None, 0.1).is_none());
        assert!(counted(&lines, None).is_empty());
        // A definite line counts wherever it is, and is first.
        let lines = [
            failure(0.5, "EADDRNOTAVAIL", true),
            failure(0.7, "x", false),
        ];
        assert_eq!(first_failure(&lines, None, 0.1).map(|f| f.t), Some(0.5));
        assert_eq!(counted(&lines, first_failure(&lines, None, 0.1)).len(), 2);
    }

    #[test]
    fn measured_counts_each_failure_as_a_connect_error_from_the_first_connection() {
        let a = sample::Analysis {
            connections: 300,
            requests: Some(280),
            ..sample::Analysis::default()
        };
        let lines = [
            failure(2.5, "EADDRNOTAVAIL", true),
            failure(2.75, "EADDRNOTAVAIL", true),
        ];
        let counted: Vec<&Failure> = lines.iter().collect();
        let m = measured(
            &a,
            &counted,
            Some(2.5),
            lines.first(),
            0.5,
            "unused",
            timing::Source::FailureLine,
        );
        assert_eq!(
            (
                m.counts.attempts,
                m.counts.connected,
                m.counts.completed,
                m.counts.failed
            ),
            (302, 300, 280, 2)
        );
        let e = &m.errors["EADDRNOTAVAIL"];
        assert_eq!((e.count, e.first_s, e.last_s), (2, 2.0, 2.25));
        assert_eq!(e.by_phase["connect"], 2);
        assert_eq!(m.exhaustion.first_s, Some(2.0));
        assert_eq!(m.exhaustion.kind.as_deref(), Some("EADDRNOTAVAIL"));
        assert_eq!(m.exhaustion.phase.as_deref(), Some("connect"));
        // No line, but the ports were seen full: the model's error, at that time.
        let m = measured(
            &a,
            &[],
            Some(2.0),
            None,
            0.5,
            "EADDRNOTAVAIL (model)",
            timing::Source::PortsFull,
        );
        assert_eq!(m.exhaustion.first_s, Some(1.5));
        assert_eq!(m.exhaustion.kind.as_deref(), Some("EADDRNOTAVAIL (model)"));
        assert!(m.exhaustion.phase.unwrap().starts_with("ports full"));
        // Neither: no exhaustion.
        let m = measured(&a, &[], None, None, 0.5, "x", timing::Source::None);
        assert!(m.exhaustion.first_s.is_none() && m.exhaustion.kind.is_none());
    }

    #[test]
    fn the_embedded_servers_close_decides_the_expected_side() {
        let plan = |toml_text: &str| {
            let scenario: Scenario = toml::from_str(toml_text).expect("a scenario");
            Plan::resolve(&scenario).expect("a valid plan")
        };
        let after = "[target]\nserver_close = \"after-client\"\n";
        let cases = [
            (after, Some("client")),
            ("[target]\nserver_close = \"first\"\n", Some("server")),
            ("[target]\nserver_close = \"reset\"\n", Some("none")),
            ("[target]\naddress = \"127.0.0.1:9\"\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(expected_side(&plan(text).target, None), want, "{text}");
        }
        // after-client: the requests that asked for the close decide (ab, HTTP/1.0: all of
        // them; a keep-alive client: none; between: mixed, as the measured side says).
        let served = |accepted, closed_on_request| crate::results::summary::ServerSummary {
            accepted,
            closed_on_request,
            ..Default::default()
        };
        let after = plan(after);
        for (accepted, closed, want) in [
            (300, 300, "server"),
            (300, 250, "server"),
            (300, 0, "client"),
            (300, 30, "client"),
            (300, 150, "mixed"),
            (0, 0, "client"),
        ] {
            let server = served(accepted, closed);
            assert_eq!(
                expected_side(&after.target, Some(&server)),
                Some(want),
                "{closed} of {accepted} closed on request"
            );
        }
        // With server_close = "first" the plan decides, whatever the requests asked.
        let first = plan("[target]\nserver_close = \"first\"\n");
        assert_eq!(
            expected_side(&first.target, Some(&served(300, 0))),
            Some("server")
        );
    }
}
