//! One client run: the command started in the lab, its namespace sampled and its output read
//! until it exits, the duration ends or `client.stop_after` passes after its first failure;
//! then the summary, the model on the measured rate, and the verdict.

use super::process::{self, ClientProcess, Line};
use super::result::{self, ClientExecSummary};
use super::sample::{self, Point};
use super::signatures::{Recognised, Signatures};
use super::ClientExec;
use crate::collect::{ErrorStat, Exhaustion, Latency, Measured};
use crate::lab;
use crate::model;
use crate::observe::watch::TimewaitSummary;
use crate::observe::{Counter, KernelSample, Sampler};
use crate::plan::{Plan, Rate, Scenario, ServerClose, Target};
use crate::report::{assemble, verdict, ExecSummary, Summary};
use crate::target::exec::ExecTarget;
use crate::target::{Server, ServerStats};
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
    pub dir: &'a crate::report::output::ResultsDir,
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
    let signatures = Signatures::new(
        cx.failure_pattern
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("client.failure_pattern")?,
    );
    let mut out = Outputs::create(s.dir)?;
    let rate = match plan.lab_rate() {
        Rate::PerSecond(r) => Some(r),
        Rate::Max => None,
    };
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let (base, base_kernel) = probe.take(0.0);
    crate::say::note!("running your client: {}", cx.command);
    let mut proc =
        ClientProcess::start(&cx.command, &process::environment(target, rate)).map_err(|e| {
            anyhow!(
                "client.exec (--client-exec) `{}` cannot be started: {e}",
                cx.command
            )
        })?;
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
        &signatures,
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
        keep(&line, t0, &signatures, &mut out.log, &mut w.failures);
    }
    let _ = out.log.flush();
    could_run(cx, status, &w.points, &out.log_path)?;
    let end_s = Instant::now().saturating_duration_since(t0).as_secs_f64();

    // The server's side closes after the client's: then the last sample.
    let server = assemble::server_summary(
        &crate::target::stop_servers(s.servers, plan.load.drain_timeout).await,
        s.targets,
    );
    let (p, k) = probe.take(end_s);
    w.points.push(p);
    let end_kernel = if k.counters.get(Counter::ActiveOpens).is_some() {
        k
    } else {
        w.last_kernel
    };
    write_samples(&mut out.csv, &w.points);
    let ran = Ran {
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
            Some(a) if a.topology == lab::Topology::Veth => {
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
    fn create(dir: &crate::report::output::ResultsDir) -> Result<Outputs> {
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
    signatures: &Signatures,
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
            keep(&line, t0, signatures, log, &mut failures);
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
struct Ran {
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
    server: Option<crate::report::ServerSummary>,
    exec: Option<ExecSummary>,
    lab: Option<crate::report::LabSummary>,
}

/// The pure end of a client run: the samples and the recognised lines become the figures
/// (through [`assemble::figures`], as a built-in run's do), then the model on the
/// measured rate and closing side, and the verdict.
fn assemble(plan: &Plan, cx: &ClientExec, settings: &BTreeMap<String, String>, r: Ran) -> Summary {
    // P, and the model's input apart from the measured figures.
    let mut input = model::from_plan::input_for(plan, settings, r.target);
    if input.bind == model::BindModel::PerDestination {
        let held = r.points.first().and_then(Point::ports_used).unwrap_or(0);
        input.preexisting = u32::try_from(held).unwrap_or(u32::MAX);
    }
    input.rate = None;
    let unmeasured = model::predict(&input);
    let ports = unmeasured.ports_effective;
    let full_at = sample::analyse(&r.points, ports, None).ports_full_at;
    let first = first_failure(&r.failures, full_at, cx.sample.as_secs_f64());
    let a = sample::analyse(&r.points, ports, first.map(|f| f.t));
    let start = a.first_connection_s.unwrap_or(0.0);
    let counted = counted(&r.failures, first);
    let c = client_summary(cx, &r, &a, ports, first, counted.len() as u64);
    let measured = measured(
        &a,
        &counted,
        first,
        start,
        c.ports_full_s,
        &unmeasured.exhaustion_error,
    );
    let last = r.points.last().copied().unwrap_or_default();
    let facts = assemble::Facts {
        scenario: r.scenario,
        started_at: r.started_at,
        target: r.target,
        measured,
        duration_s: r.end_s,
        load_duration_s: (r.end_s - start).max(0.0),
        achieved_rate: Some(a.measured_rate.unwrap_or(0.0)),
        interrupted: r.ended_by == "interrupted",
        aborted: 0,
        server: r.server,
        exec: r.exec,
        observed: Some(assemble::Observed {
            timewait: TimewaitSummary {
                client_max: Some(a.tw_client_max),
                server_max: Some(a.tw_server_max),
                client_end: last.tw_client,
                server_end: last.tw_server,
            },
            kernel: r.kernel,
            preexisting: 0,
            by: assemble::Watcher::ClientExec,
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
    let prediction = model::predict(&input);
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
    summary.client_exec = Some(c);
    checks.extend(verdict::expectations(&summary, &plan.expect));
    checks.extend(verdict::margin_check(&prediction, &plan.expect));
    summary.verdict = Some(verdict::Verdict {
        pass: checks.iter().all(|c| c.pass || c.advisory),
        checks,
    });
    summary.prediction = Some(prediction);
    summary
}

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
    server: Option<&crate::report::ServerSummary>,
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

/// The rate of connections that cost the client a port: the measured rate times the share
/// that went on holding one (seen at half the rate window) when that is clearly below 1,
/// else times the client's share of TIME_WAIT when both sides hold some.
fn model_rate(rate: f64, side: &str, tw_share: Option<f64>, port_share: Option<f64>) -> f64 {
    match (port_share, side, tw_share) {
        (Some(p), _, _) if p < 0.95 => rate * p,
        (_, "mixed", Some(share)) => rate * share,
        _ => rate,
    }
}

/// summary.json's `client_exec`.
fn client_summary(
    cx: &ClientExec,
    r: &Ran,
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
        model_rate: a
            .measured_rate
            .map(|r| model_rate(r, side, share, a.port_share)),
        requested_rate: r.rate,
        close_side: side.to_string(),
        client_share: share,
        port_share: a.port_share,
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
        exhaustion_source: match (first, a.ports_full_at) {
            (Some(_), _) => "failure_line",
            (None, Some(_)) => "ports_full",
            (None, None) => "none",
        }
        .to_string(),
        exit_status: r.exit_status.clone(),
        stopped_by: r.stopped_by.clone(),
        ended_by: r.ended_by.to_string(),
        log: r.log.clone(),
        samples: r.samples.clone(),
        sample_s: cx.sample.as_secs_f64(),
    }
}

/// The figures a built-in run's collector would give, from the samples and the counted
/// failures (seconds from the first connection, `start`): each failure a connect error,
/// the exhaustion at the first failure or else when the ports were seen full (as the
/// model's `exhaustion_error`).
fn measured(
    a: &sample::Analysis,
    counted: &[&Failure],
    first: Option<&Failure>,
    start: f64,
    ports_full_s: Option<f64>,
    exhaustion_error: &str,
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
        e.count += 1;
        e.last_s = since(f.t);
        *e.by_phase.entry("connect".into()).or_insert(0) += 1;
    }
    let exhaustion = Exhaustion {
        first_s: first.map(|f| since(f.t)).or(ports_full_s),
        kind: first
            .map(|f| f.what.kind.clone())
            .or_else(|| ports_full_s.map(|_| exhaustion_error.to_string())),
        phase: first
            .map(|_| "connect".to_string())
            .or_else(|| ports_full_s.map(|_| "ports full (seen in the samples; the client printed no failure portlab recognised)".to_string())),
        due_s: None,
        attempt: None,
    };
    let failed = counted.len() as u64;
    Measured {
        attempts: a.connections + failed,
        connected: a.connections,
        completed: a.requests.unwrap_or(a.connections),
        failed,
        dropped: 0,
        reconnects: 0,
        errors,
        exhaustion,
        http_status: BTreeMap::new(),
        connect_latency: Latency::default(),
        connect_latency_actual: Latency::default(),
        exchange_latency: Latency::default(),
        request_latency: Latency::default(),
        schedule_lag: Latency::default(),
        timeline: Vec::new(),
        completions: Default::default(),
    }
}

/// Logs a line (seconds since the command started, stream, text) and keeps it when it is a
/// recognised failure.
fn keep(
    line: &Line,
    t0: Instant,
    signatures: &Signatures,
    log: &mut impl Write,
    failures: &mut Vec<Failure>,
) {
    let t = line.at.saturating_duration_since(t0).as_secs_f64();
    let _ = writeln!(log, "{t:.3} {} {}", line.stream, line.text);
    if let Some(what) = signatures.recognise(&line.text) {
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
        let m = measured(&a, &counted, lines.first(), 0.5, None, "unused");
        assert_eq!(
            (m.attempts, m.connected, m.completed, m.failed),
            (302, 300, 280, 2)
        );
        let e = &m.errors["EADDRNOTAVAIL"];
        assert_eq!((e.count, e.first_s, e.last_s), (2, 2.0, 2.25));
        assert_eq!(e.by_phase["connect"], 2);
        assert_eq!(m.exhaustion.first_s, Some(2.0));
        assert_eq!(m.exhaustion.kind.as_deref(), Some("EADDRNOTAVAIL"));
        assert_eq!(m.exhaustion.phase.as_deref(), Some("connect"));
        // No line, but the ports were seen full: the model's error, at that time.
        let m = measured(&a, &[], None, 0.5, Some(1.5), "EADDRNOTAVAIL (model)");
        assert_eq!(m.exhaustion.first_s, Some(1.5));
        assert_eq!(m.exhaustion.kind.as_deref(), Some("EADDRNOTAVAIL (model)"));
        assert!(m.exhaustion.phase.unwrap().starts_with("ports full"));
        // Neither: no exhaustion.
        let m = measured(&a, &[], None, 0.5, None, "x");
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
        let served = |accepted, closed_on_request| crate::report::ServerSummary {
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
