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
use crate::report::{verdict, ExecSummary, Summary};
use crate::target::exec::ExecTarget;
use crate::target::{Server, ServerStats};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
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
struct Failure {
    t: f64,
    line: String,
    what: Recognised,
}

/// Runs the client and returns the run's summary (with prediction and verdict).
pub async fn drive(
    s: Setup<'_>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let (plan, cx) = (s.plan, s.cx);
    let target = *s
        .targets
        .first()
        .ok_or_else(|| anyhow!("internal: no target for the client"))?;
    let mut client = Sampler::new(target);
    let mut server = match s.applied {
        Some(a) if a.topology == lab::Topology::Veth => {
            Some(a.in_server_ns(|| Sampler::new(target))?)
        }
        _ => None,
    };
    let stats: Vec<Arc<ServerStats>> = s.servers.iter().map(|x| x.stats.clone()).collect();
    let requests = || -> Option<u64> {
        (!stats.is_empty()).then(|| {
            stats
                .iter()
                .map(|x| x.requests.load(Ordering::Relaxed))
                .sum()
        })
    };
    let signatures = Signatures::new(
        cx.failure_pattern
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("client.failure_pattern")?,
    );
    let log_path = s.dir.path().join("client-exec.log");
    let mut log = std::io::BufWriter::new(
        s.dir
            .create("client-exec.log")
            .with_context(|| format!("creating {}", log_path.display()))?,
    );
    let samples_path = s.dir.path().join("client-samples.csv");
    let mut csv = csv::Writer::from_writer(
        s.dir
            .create("client-samples.csv")
            .with_context(|| format!("creating {}", samples_path.display()))?,
    );

    let rate = match plan.lab_rate() {
        Rate::PerSecond(r) => Some(r),
        Rate::Max => None,
    };
    let duration = plan.load.duration.unwrap_or(Duration::from_secs(10));
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let take = |client: &mut Sampler, server: &mut Option<Sampler>, t: f64, req: Option<u64>| {
        let k = client.sample();
        let tw_server = match server.as_mut() {
            Some(x) => x.sample().tw_server,
            None => k.tw_server,
        };
        let p = Point {
            t_s: t,
            active_opens: k.counters.get(Counter::ActiveOpens),
            tw_client: k.tw_client,
            tw_server,
            established_client: k.established_client,
            requests: req,
        };
        (p, k)
    };
    let (base, base_kernel) = take(&mut client, &mut server, 0.0, requests());
    crate::say::note!("running your client: {}", cx.command);
    let mut proc =
        ClientProcess::start(&cx.command, &process::environment(target, rate)).map_err(|e| {
            anyhow!(
                "client.exec (--client-exec) `{}` cannot be started: {e}",
                cx.command
            )
        })?;
    let t0 = proc.started;
    let secs = |at: Instant| at.saturating_duration_since(t0).as_secs_f64();
    let mut points = vec![Point { t_s: -0.0, ..base }];
    let mut last_kernel: KernelSample;
    let mut failures: Vec<Failure> = Vec::new();
    let mut ticker = tokio::time::interval(cx.sample);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let ended_by = loop {
        let interrupted = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut shutdown => true,
        };
        let (p, k) = take(&mut client, &mut server, secs(Instant::now()), requests());
        points.push(p);
        last_kernel = k;
        while let Ok(line) = proc.lines.try_recv() {
            keep(&line, t0, &signatures, &mut log, &mut failures);
        }
        if interrupted {
            break "interrupted";
        }
        if proc.exited().is_some() {
            break "exited";
        }
        let now = Instant::now().saturating_duration_since(t0);
        if now >= duration {
            break "duration";
        }
        if let (Some(after), Some(first)) = (cx.stop_after, failures.first()) {
            if now.as_secs_f64() >= first.t + after.as_secs_f64() {
                break "stop_after";
            }
        }
    };
    let (status, stopped_by) = proc.stop();
    // The rest of its output: the pipes close once it and its children are gone.
    let drain_until = Instant::now() + Duration::from_secs(1);
    while let Ok(line) = proc
        .lines
        .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
    {
        keep(&line, t0, &signatures, &mut log, &mut failures);
    }
    let _ = log.flush();
    // The shell could not run it (not found, not executable) and it opened nothing: a
    // set-up error, not a run.
    let opened = points.last().and_then(|p| p.active_opens) != base.active_opens;
    if let (Some(code @ (126 | 127)), false) = (status.and_then(|x| x.code()), opened) {
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(anyhow!(
            "client.exec (--client-exec) `{}` could not be run (exit {code}); fix the command. Its output ends:\n{}",
            cx.command,
            tail.join("\n")
        ));
    }
    let end_s = secs(Instant::now());

    // The server's side closes after the client's: then the last sample.
    let server_summary =
        crate::engine::stop_servers(s.servers, s.targets, plan.load.drain_timeout).await;
    let (p, k) = take(&mut client, &mut server, end_s, requests());
    points.push(p);
    let end_kernel = if k.counters.get(Counter::ActiveOpens).is_some() {
        k
    } else {
        last_kernel
    };
    let exec_summary: Option<ExecSummary> = s.exec.map(ExecTarget::stop);
    write_samples(&mut csv, &points);

    // P, and the model's input apart from the measured figures.
    let mut input = model::from_plan::input_for(plan, s.settings, target);
    if input.bind == model::BindModel::PerDestination {
        input.preexisting = u32::try_from(base.ports_used().unwrap_or(0)).unwrap_or(u32::MAX);
    }
    input.rate = None;
    let ports = model::predict(&input).ports_effective;
    let full_at = sample::analyse(&points, ports, None).ports_full_at;
    // A line that does not say why a connect failed counts when the ports were full then.
    let first = failures.iter().find(|f| {
        f.what.definite || full_at.is_some_and(|full| full <= f.t + 2.0 * cx.sample.as_secs_f64())
    });
    let a = sample::analyse(&points, ports, first.map(|f| f.t));
    let start = a.first_connection_s.unwrap_or(0.0);
    let (side, share) = sample::close_side(a.tw_client_max, a.tw_server_max);
    let pooled = sample::pooled(a.connections, a.requests, a.established_max);
    let since = |t: f64| (t - start).max(0.0);
    let counted: Vec<&Failure> = failures
        .iter()
        .filter(|f| f.what.definite || first.is_some_and(|x| f.t >= x.t))
        .collect();
    let c = ClientExecSummary {
        command: cx.command.clone(),
        first_connection_s: a.first_connection_s,
        measured_rate: a.measured_rate,
        model_rate: a.measured_rate.map(|r| match (side, share) {
            ("mixed", Some(share)) => r * share,
            _ => r,
        }),
        requested_rate: rate,
        close_side: side.to_string(),
        client_share: share,
        tw_client_max: a.tw_client_max,
        tw_server_max: a.tw_server_max,
        established_max: a.established_max,
        pooled,
        connections: a.connections,
        requests: a.requests,
        first_failure_s: first.map(|f| since(f.t)),
        failure_line: first.map(|f| f.line.clone()),
        failure_kind: first.map(|f| f.what.kind.clone()),
        failure_signature: first.map(|f| f.what.signature.to_string()),
        failures: counted.len() as u64,
        ports_full_s: a.ports_full_at.map(since),
        ports,
        exhaustion_source: match (first, a.ports_full_at) {
            (Some(_), _) => "failure_line",
            (None, Some(_)) => "ports_full",
            (None, None) => "none",
        }
        .to_string(),
        exit_status: status.map_or_else(|| "unknown".to_string(), |x| process::describe(&x)),
        stopped_by: stopped_by.map(str::to_string),
        ended_by: ended_by.to_string(),
        log: log_path.display().to_string(),
        samples: samples_path.display().to_string(),
        sample_s: cx.sample.as_secs_f64(),
    };

    let mut errors: BTreeMap<String, ErrorStat> = BTreeMap::new();
    for f in &counted {
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
        first_s: c.first_failure_s.or(c.ports_full_s),
        kind: first
            .map(|f| f.what.kind.clone())
            .or_else(|| c.ports_full_s.map(|_| model::predict(&input).exhaustion_error.to_string())),
        phase: first
            .map(|_| "connect".to_string())
            .or_else(|| c.ports_full_s.map(|_| "ports full (seen in the samples; the client printed no failure portlab recognised)".to_string())),
        due_s: None,
        attempt: None,
    };
    let measured = Measured {
        attempts: a.connections + counted.len() as u64,
        connected: a.connections,
        completed: a.requests.unwrap_or(a.connections),
        failed: counted.len() as u64,
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
    };
    let ran_s = (end_s - start).max(0.0);
    let mut summary = Summary::new(
        s.scenario,
        started_at,
        target.to_string(),
        &measured,
        end_s,
        ran_s,
        ended_by == "interrupted",
        0,
        server_summary,
    );
    summary.achieved_rate = a.measured_rate.unwrap_or(0.0);
    let last = points.last().copied().unwrap_or_default();
    summary.timewait = Some(TimewaitSummary {
        client_max: Some(a.tw_client_max),
        server_max: Some(a.tw_server_max),
        client_end: last.tw_client,
        server_end: last.tw_server,
    });
    summary.kernel = Some(kernel_deltas(&end_kernel, &base_kernel));
    summary.observation = Some(
        if plan.isolated() {
            "private network namespace: every kernel figure is this run's own"
        } else {
            "host namespace: TIME_WAIT by side is filtered to the target; the kernel counters include the host's other traffic"
        }
        .to_string(),
    );
    summary.lab = s
        .applied
        .zip(plan.lab.as_ref())
        .map(|(a, lab)| crate::engine::lab_summary(a, lab));
    // The model on the measured rate and the measured closing side.
    input.rate = c.model_rate;
    input.timewait_side = result::model_side(&c.close_side);
    if pooled {
        input.pool = u32::try_from(a.established_max.max(1)).unwrap_or(u32::MAX);
    }
    let prediction = model::predict(&input);
    let expected_side = match &plan.target {
        Target::Embedded(e) => Some(match e.close {
            ServerClose::AfterClient => "client",
            ServerClose::First => "server",
            ServerClose::Reset => "none",
        }),
        Target::External(_) => None,
    };
    let mut checks = result::checks(&prediction, &c, ran_s, expected_side, |n| {
        plan.expect.tolerance_for(n)
    });
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
    summary.target_exec = exec_summary;
    summary.modelled = crate::engine::modelled(plan, &summary);
    Ok(summary)
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
