//! The pure end of a run: what was measured and observed goes in, the summary (with the
//! model's prediction and the verdict) comes out. No I/O, so every rule here is unit-tested.
//! A built-in run (engine) and a `--client-exec` run (client) both assemble theirs here,
//! with the embedded servers' counts ([`server_summary`]) and the lab ([`lab_summary`]).

use crate::collect::Measured;
use crate::model;
use crate::observe::kernel_timeline::TimewaitSummary;
use crate::plan::{Plan, Scenario};
use crate::results::summary::{
    EndedEarly, LabSummary, Modelled, ServerSummary, Summary, WrittenSysctl,
};
use crate::results::verdict;
use crate::server::exec::ExecSummary;
use crate::server::ServerStats;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// What the kernel showed over the run (Linux).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// TIME_WAIT by side.
    pub timewait: TimewaitSummary,
    /// Counter changes by kernel name (InSegs, OutSegs, TWRecycled ...).
    pub kernel: BTreeMap<String, u64>,
    /// Client sockets already holding a port toward the target when the run began.
    pub preexisting: u64,
    /// Who took these figures.
    pub by: Watcher,
    /// The conntrack table the lab tracked (`lab.conntrack`).
    pub conntrack: Option<crate::observe::conntrack::ConntrackSummary>,
}

/// Who sampled the kernel, which decides what its figures hold and how summary.json
/// describes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Watcher {
    /// The run's own sampler: TIME_WAIT by side, tw_sockstat and the Tcp counters, from
    /// which segments per request are derived.
    #[default]
    Run,
    /// A client-exec run's samples (src/client): TIME_WAIT by side and the Tcp counters, no
    /// tw_sockstat; the connections are the user's program's, so no segments per request.
    ClientExec,
}

impl Watcher {
    /// summary.json's `observation`: whose traffic the kernel figures count.
    fn observation(self, isolated: bool) -> &'static str {
        match (isolated, self) {
            (true, _) => "private network namespace: every kernel figure is this run's own",
            (false, Watcher::Run) => "host namespace: TIME_WAIT by side is filtered to the target; tw_sockstat and the kernel counters include the host's other traffic",
            (false, Watcher::ClientExec) => "host namespace: TIME_WAIT by side is filtered to the target; the kernel counters include the host's other traffic",
        }
    }
}

/// Everything a finished (or interrupted) run produced.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The resolved plan as a scenario (summary.json's `plan`).
    pub scenario: Scenario,
    /// When the run began, RFC 3339.
    pub started_at: String,
    /// Where the connections went (the first destination).
    pub target: SocketAddr,
    /// The collector's totals and timeline, with the connections abandoned at the drain
    /// timeout (`counts.aborted`).
    pub measured: Measured,
    /// From the first start to the end of the drain, seconds.
    pub duration_s: f64,
    /// While starts were issued, seconds.
    pub load_duration_s: f64,
    /// The achieved rate when it is not attempts / `load_duration_s`: a client-exec run's
    /// connections per second, from the kernel's ActiveOpens.
    pub achieved_rate: Option<f64>,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// What the embedded server counted.
    pub server: Option<ServerSummary>,
    /// The server command and how it ended.
    pub exec: Option<ExecSummary>,
    /// The kernel's view, where it could be had.
    pub observed: Option<Observed>,
    /// The lab as it was.
    pub lab: Option<LabSummary>,
}

/// The hold of an entry in the tracked table: conntrack's TIME_WAIT timeout after a FIN
/// close, its CLOSE timeout after a reset, seconds.
fn c_hold(time_wait_s: Option<u64>, close_s: Option<u64>, reset: bool) -> Option<f64> {
    if reset { close_s } else { time_wait_s }.map(|s| s as f64)
}

/// The model for the emulated full table (`lab.conntrack_max`): each connection holds an
/// entry for about the hold (its lifetime is milliseconds), so at R per second the table of
/// `max` fills at max / R when R x hold exceeds max; a run that ends within one hold of its
/// start admits min(attempts, max), none having expired to make room.
fn emulated_model(
    plan: &Plan,
    summary: &Summary,
    duration_s: f64,
    e: &mut crate::observe::conntrack::EmulatedTable,
    hold: Option<f64>,
) {
    let Some(hold) = hold else { return };
    let rate = plan.lab_rate().per_second();
    e.full_from_s = rate
        .filter(|r| r * hold > e.max as f64)
        .map(|r| e.max as f64 / r);
    e.model_admitted = (duration_s <= hold).then(|| summary.attempts.min(e.max));
}

/// The NAT's part (`lab.nat_ports`): the model's outlook for the plan and what the NAT's
/// conntrack table (the one the run tracked) and the connects showed.
pub fn nat(
    plan: &Plan,
    summary: &Summary,
    timeline: &[crate::collect::timeline::TimelineRow],
) -> Option<super::summary::NatSummary> {
    let lab = plan.lab.as_ref()?;
    let pool = lab.nat?;
    let ct = summary.conntrack.as_ref()?;
    let server_closes = matches!(&plan.target, crate::plan::Target::Embedded(t)
        if t.close == crate::plan::ServerClose::First);
    let model = crate::model::nat::outlook(&crate::model::nat::NatInput {
        ports: u64::from(pool.len()),
        at_once: (plan.client.pool > 0)
            .then(|| u64::from(plan.client.pool) * u64::from(lab.clients)),
        // What the server accepted: every connection that got a mapping, the many-client
        // lab's reachability probes included (each took one of the NAT's ports too).
        connections: summary
            .server
            .as_ref()
            .map_or(summary.connected, |s| s.accepted),
        churn: plan.client.pool == 0,
        rate: plan.lab_rate().per_second().unwrap_or(0.0),
        server_closes,
        server_time_wait_s: super::summary::EndedEarly::TIME_WAIT_S,
    });
    Some(super::summary::NatSummary {
        pool: format!("{}-{}", pool.lo, pool.hi),
        public_address: crate::lab::NAT_PUBLIC_ADDR.to_string(),
        model,
        refused: ct.stats.get("insert_failed").copied().unwrap_or(0),
        dropped: ct.stats.get("drop").copied().unwrap_or(0),
        ports_used: summary.server.as_ref().and_then(|s| s.distinct_peers),
        first_stall_s: timeline
            .iter()
            .find(|r| r.connect_max_us.is_some_and(|us| us >= 1_000_000))
            .map(|r| r.t_s),
        slowest_connect_s: summary.connect_latency_actual_us.max as f64 / 1e6,
        in_flight_max: timeline.iter().map(|r| r.in_flight).max().unwrap_or(0),
    })
}

/// The summary of a run: the figures, the model's prediction for `plan` under `settings`
/// (the sysctls in force), and the verdict (against the model, the plan's `[expect]`, and
/// `baseline` when given).
pub fn assemble(
    plan: &Plan,
    facts: Facts,
    settings: &BTreeMap<String, String>,
    baseline: Option<(&Summary, f64)>,
) -> Summary {
    let mut summary = figures(plan, &facts);
    let prediction = predict(plan, &facts, settings, &summary);
    summary.verdict = Some(verdict::assess(
        &prediction,
        &summary,
        &facts.measured.completions,
        &plan.expect,
        baseline,
    ));
    summary.prediction = Some(prediction);
    summary
}

/// The summary without the model and the verdict: what was measured and observed, the lab,
/// the server command, the modelled-time figures. Built the same way for a built-in run
/// and a client-exec run (which adds its own model and verdict, src/client/run.rs).
pub fn figures(plan: &Plan, facts: &Facts) -> Summary {
    let mut summary = Summary::new(
        facts.scenario.clone(),
        facts.started_at.clone(),
        facts.target.to_string(),
        &facts.measured,
        facts.duration_s,
        facts.load_duration_s,
        facts.interrupted,
        facts.server.clone(),
    );
    if let Some(rate) = facts.achieved_rate {
        summary.achieved_rate = rate;
    }
    if let Some(o) = &facts.observed {
        if o.by == Watcher::Run {
            summary.segments_per_request = segments_per_request(&o.kernel, summary.completed);
        }
        summary.timewait = Some(o.timewait.clone());
        summary.kernel = Some(o.kernel.clone());
        // Only in a private namespace are the counters the run's own; with veth the server's
        // RSTs are sent, and counted, in its own namespace.
        if plan.isolated() {
            let resets_here = facts.lab.as_ref().is_none_or(|l| l.topology != "veth");
            summary.timewait_ended_early = o
                .timewait
                .client_end
                .zip(o.timewait.server_end)
                .and_then(|(c, s)| {
                    EndedEarly::from_kernel(&o.kernel, c + s, facts.duration_s, resets_here)
                });
        }
        summary.conntrack = o.conntrack.clone().map(|mut c| {
            // Closed by an RST, either side: a port is free again at once, and fewer entries
            // than connections were left (8,097 connections, 7,306 entries at 3,000/s): not
            // modelled, so not checked. With a FIN, each connection keeps its own entry.
            let reset = plan.client.close == crate::plan::CloseMode::Reset
                || matches!(&plan.target, crate::plan::Target::Embedded(t)
                    if t.close == crate::plan::ServerClose::Reset);
            // Behind a NAT the pool's ports bound the entries and a SYN that lands on a
            // mapping in TIME_WAIT kills that entry before its own is made, which may then
            // fail (46 entries left for 50 ports used, the server closing first): the NAT's
            // own checks judge that table, not this model.
            let nat = plan.lab.as_ref().is_some_and(|l| l.nat.is_some());
            if let (false, false, Some(([lo, hi], hold))) = (
                reset,
                nat,
                c.expected_live(summary.connected, facts.duration_s, 0.0, false),
            ) {
                // One entry per 4-tuple: a SYN that reuses one takes over its entry (in
                // TIME_WAIT or CLOSE), so where the embedded server saw fewer distinct
                // client 4-tuples than connections, as many fewer entries may be left.
                let tuples = summary.server.as_ref().and_then(|v| v.distinct_peers);
                let lo = tuples.map_or(lo, |t| lo.min(t as f64));
                c.model_live = Some([lo, hi]);
                c.hold_s = Some(hold);
            }
            if let Some(e) = c.emulated.as_mut() {
                let hold = c_hold(c.time_wait_s, c.close_s, reset);
                emulated_model(plan, &summary, facts.duration_s, e, hold);
            }
            c
        });
        summary.nat = nat(plan, &summary, &facts.measured.timeline);
        summary.observation = Some(o.by.observation(plan.isolated()).to_string());
    }
    summary.lab = facts.lab.clone();
    summary.target_exec = facts.exec.clone();
    summary.modelled = modelled(plan, &summary);
    summary
}

/// (InSegs + OutSegs) / completed, when the counters and a completion are there.
fn segments_per_request(kernel: &BTreeMap<String, u64>, completed: u64) -> Option<f64> {
    let segments = kernel.get("InSegs")?.checked_add(*kernel.get("OutSegs")?)?;
    (completed > 0).then(|| segments as f64 / completed as f64)
}

/// The model's prediction for a built-in run: the plan under `settings`, less the ports
/// already held toward the target, on the measured rate in a closed loop.
fn predict(
    plan: &Plan,
    facts: &Facts,
    settings: &BTreeMap<String, String>,
    summary: &Summary,
) -> model::Prediction {
    let preexisting = facts.observed.as_ref().map_or(0, |o| o.preexisting);
    let mut input = model::from_plan::input_for(plan, settings, facts.target);
    // Ports already held toward this target when the run began (an earlier run's TIME_WAIT,
    // the host's own connections) are not the run's to use. That holds for connect()'s
    // per-destination ports; with bind before connect every socket on the range counts,
    // which the sampler does not split out, so the model is left without them there.
    if input.bind == model::BindModel::PerDestination {
        input.preexisting = u32::try_from(preexisting).unwrap_or(u32::MAX);
    }
    // A closed loop (--rate max) has no planned rate: the model runs on the measured one.
    let closed_loop = input
        .rate
        .is_none()
        .then(|| closed_loop_rate(summary))
        .flatten();
    if let Some((rate, _)) = &closed_loop {
        input.rate = Some(*rate);
    }
    let mut prediction = model::predict(&input);
    if let Some((_, how)) = closed_loop {
        prediction.explanation = format!(
            "Closed loop (--rate max): the model runs on the measured rate, {how}. {}",
            prediction.explanation
        );
    }
    prediction
}

/// The rate a closed loop (`--rate max`) took ports at, for the model, and how it was
/// measured: up to the first "no port" error, attempts begun / when that attempt began (the
/// rate before exhaustion; failing connects after it come at another pace and take no port);
/// without one, the whole run's achieved rate. None when nothing was attempted.
fn closed_loop_rate(s: &Summary) -> Option<(f64, String)> {
    match (s.exhaustion.attempt, s.exhaustion.due_s) {
        (Some(n), Some(t)) if n > 1 && t > 0.0 => {
            // The attempts before the failing one took the ports.
            let before = n - 1;
            Some((
                before as f64 / t,
                format!(
                    "{before} attempts in the {t:.3} s before the first port error = {:.1} conn/s",
                    before as f64 / t
                ),
            ))
        }
        _ => (s.achieved_rate > 0.0).then(|| {
            (
                s.achieved_rate,
                format!(
                    "{} attempts in {:.3} s = {:.1} conn/s",
                    s.attempts, s.load_duration_s, s.achieved_rate
                ),
            )
        }),
    }
}

/// A time-scaled lab's figures in modelled seconds (None at scale 1).
pub fn modelled(plan: &Plan, summary: &Summary) -> Option<Modelled> {
    let k = plan.time_scale();
    (k != 1.0).then(|| Modelled {
        time_scale: k,
        rate: summary.achieved_rate / k,
        duration_s: summary.load_duration_s * k,
        first_error_s: summary.exhaustion.first_s.map(|t| t * k),
    })
}

/// What the embedded servers counted, added up (one summary however many ports); `stopped`
/// is what [`crate::server::stop_servers`] returns, `targets` every address the run used.
pub fn server_summary(
    stopped: &[(SocketAddr, std::sync::Arc<ServerStats>)],
    targets: &[SocketAddr],
) -> Option<ServerSummary> {
    let mut summary: Option<ServerSummary> = None;
    for (addr, st) in stopped {
        let sum = summary.get_or_insert_with(|| ServerSummary {
            address: addr.to_string(),
            ..ServerSummary::default()
        });
        sum.accepted += st.accepted.load(Ordering::Relaxed);
        sum.accept_errors += st.accept_errors.load(Ordering::Relaxed);
        sum.connection_errors += st.conn_errors.load(Ordering::Relaxed);
        sum.closed_on_request += st.closed_on_request.load(Ordering::Relaxed);
        // Each server's peers are 4-tuples toward its own address: distinct across servers.
        *sum.distinct_peers.get_or_insert(0) += st.distinct_peers();
    }
    // Consecutive ports, listed in any order (the client's target first): lowest to highest.
    if let (Some(sum), Some(lo), Some(hi)) = (
        summary.as_mut(),
        targets.iter().min_by_key(|a| a.port()),
        targets.iter().max_by_key(|a| a.port()),
    ) {
        if targets.len() > 1 {
            sum.address = format!("{lo} .. {hi} ({} ports)", targets.len());
        }
    }
    summary
}

/// The lab as summary.json records it.
pub fn lab_summary(a: &crate::lab::Applied, lab: &crate::plan::lab::LabPlan) -> LabSummary {
    LabSummary {
        mode: a.mode.to_string(),
        topology: a.topology.to_string(),
        settings: a.settings.clone(),
        server_settings: a.server_settings.clone(),
        written: a
            .written
            .iter()
            .map(|w| WrittenSysctl {
                name: w.recorded_name(),
                value: w.value.clone(),
            })
            .collect(),
        time_scale: lab.time_scale(),
        emulated_time_wait_s: lab.emulated_hold().map(|d| d.as_secs_f64()),
        warnings: a.warnings.clone(),
        tw_reuse_note: lab.tw_reuse_note.map(str::to_string),
        clients: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Collector, ErrCode, Failure, Outcome, Phase, Shared};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    /// The servers' counts are added up; the address names the range when there are several.
    #[test]
    fn server_summary_adds_every_servers_counts() {
        assert_eq!(server_summary(&[], &[]), None);
        let counted = |accepted, accept_errors, conn_errors, closed_on_request| {
            let st = ServerStats::default();
            st.accepted.store(accepted, Ordering::Relaxed);
            st.accept_errors.store(accept_errors, Ordering::Relaxed);
            st.conn_errors.store(conn_errors, Ordering::Relaxed);
            st.closed_on_request
                .store(closed_on_request, Ordering::Relaxed);
            // Every connection from one client address, its ports cycling through four.
            for i in 0..accepted {
                let port = 40000 + 2 * (i % 4) as u16;
                st.peers
                    .lock()
                    .unwrap()
                    .note(SocketAddr::from(([10, 0, 0, 1], port)));
            }
            std::sync::Arc::new(st)
        };
        let a: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let one = server_summary(&[(a, counted(5, 1, 2, 4))], &[a]).expect("one server");
        assert_eq!(
            one,
            ServerSummary {
                address: "127.0.0.1:9000".into(),
                accepted: 5,
                accept_errors: 1,
                connection_errors: 2,
                closed_on_request: 4,
                distinct_peers: Some(4),
            }
        );
        let two = server_summary(
            &[(a, counted(5, 1, 2, 4)), (b, counted(7, 0, 3, 7))],
            &[a, b],
        )
        .expect("two servers");
        assert_eq!(two.address, "127.0.0.1:9000 .. 127.0.0.1:9001 (2 ports)");
        assert_eq!(
            (
                two.accepted,
                two.accept_errors,
                two.connection_errors,
                two.closed_on_request,
                two.distinct_peers
            ),
            (12, 1, 5, 11, Some(8))
        );
    }

    fn plan(toml_text: &str) -> Plan {
        let scenario: Scenario = toml::from_str(toml_text).expect("a scenario");
        Plan::resolve(&scenario).expect("a valid plan")
    }

    /// `ok` successes then `failed` EADDRNOTAVAIL at connect, one per ms.
    fn measured(ok: u64, failed: u64) -> Measured {
        let shared = Shared::default();
        let mut c = Collector::new(Instant::now(), Duration::from_secs(1));
        for i in 0..ok + failed {
            let at = i * 1000;
            let failure = (i >= ok).then(|| Failure {
                code: ErrCode(libc_eaddrnotavail()),
                phase: Phase::Connect,
            });
            c.record(&Outcome {
                scheduled_us: at,
                started_us: at,
                connect_us: failure.is_none().then_some(50),
                exchange_us: failure.is_none().then_some(5),
                ended_us: at + 60,
                seq: i + 1,
                failure,
                status: 0,
                opened: failure.is_none(),
                reconnect: false,
            });
        }
        shared.started.store(ok + failed, Ordering::Relaxed);
        c.close_interval((ok + failed) as f64 / 1000.0, &shared);
        c.measured(&shared)
    }

    fn libc_eaddrnotavail() -> i32 {
        #[cfg(unix)]
        return libc::EADDRNOTAVAIL;
        #[cfg(not(unix))]
        return 10049;
    }

    fn facts(plan: &Plan, m: Measured, observed: Option<Observed>) -> Facts {
        Facts {
            scenario: plan.scenario.clone(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            target: "127.0.0.1:9".parse().unwrap(),
            measured: m,
            duration_s: 1.0,
            load_duration_s: 1.0,
            achieved_rate: None,
            interrupted: false,
            server: None,
            exec: None,
            observed,
            lab: None,
        }
    }

    fn settings(range: &str) -> BTreeMap<String, String> {
        [
            ("net.ipv4.ip_local_port_range", range),
            ("net.ipv4.tcp_tw_reuse", "0"),
            ("net.ipv4.ip_local_reserved_ports", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn figures_come_from_the_measurement_and_segments_from_the_kernel() {
        let p = plan("[load]\nrate = 100\nduration = \"1s\"\n");
        let kernel: BTreeMap<String, u64> = [("InSegs", 600), ("OutSegs", 600), ("OutRsts", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let observed = Observed {
            kernel,
            ..Observed::default()
        };
        let s = assemble(
            &p,
            facts(&p, measured(100, 0), Some(observed)),
            &settings("40000 40299"),
            None,
        );
        assert_eq!((s.attempts, s.completed, s.failed), (100, 100, 0));
        assert_eq!(s.segments_per_request, Some(12.0));
        assert!(s
            .observation
            .as_deref()
            .unwrap()
            .starts_with("host namespace"));
        assert_eq!(s.kernel.as_ref().unwrap()["OutRsts"], 0);
        assert!(s.modelled.is_none(), "no time scale");
        assert!(s.verdict.is_some() && s.prediction.is_some());
    }

    #[test]
    fn time_wait_ended_early_is_told_only_where_the_counters_are_the_runs_own() {
        // 102 connections on 100 ports: 2 TIME_WAIT sockets ended by RSTs (measured shape).
        let kernel: BTreeMap<String, u64> = [("OutRsts", 2), ("TW", 102), ("TWRecycled", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let observed = Observed {
            kernel,
            timewait: TimewaitSummary {
                client_max: Some(100),
                server_max: Some(0),
                client_end: Some(100),
                server_end: Some(0),
                ..TimewaitSummary::default()
            },
            ..Observed::default()
        };
        let run = |toml_text: &str| {
            let p = plan(toml_text);
            figures(&p, &facts(&p, measured(102, 48), Some(observed.clone())))
        };
        let lab = run("[load]\nrate = 50\nduration = \"3s\"\n[lab]\nisolate = true\n");
        let e = lab
            .timewait_ended_early
            .expect("told in a private namespace");
        assert_eq!((e.count, e.counter.name()), (2, "OutRsts - EstabResets"));
        let host = run("[load]\nrate = 50\nduration = \"3s\"\n");
        assert!(
            host.timewait_ended_early.is_none(),
            "the host's RSTs are not the run's"
        );
    }

    #[test]
    fn without_the_kernel_there_is_no_observation() {
        let p = plan("[load]\nrate = 100\nduration = \"1s\"\n");
        let s = assemble(&p, facts(&p, measured(10, 0), None), &BTreeMap::new(), None);
        assert!(s.timewait.is_none() && s.kernel.is_none());
        assert!(s.segments_per_request.is_none() && s.observation.is_none());
    }

    #[test]
    fn ports_held_before_the_run_are_not_the_runs() {
        let p = plan("[load]\nrate = 100\nduration = \"5s\"\n");
        let observed = Observed {
            preexisting: 100,
            ..Observed::default()
        };
        let s = assemble(
            &p,
            facts(&p, measured(200, 300), Some(observed)),
            &settings("40000 40299"),
            None,
        );
        let pred = s.prediction.as_ref().unwrap();
        assert_eq!(pred.preexisting, Some(100));
        assert_eq!(pred.ports_effective, 200, "300 ports, 100 already held");
        assert_eq!(pred.first_error_s, Some(2.0), "200 / 100 per second");
        assert!(pred.exhausts);
    }

    #[test]
    fn the_verdict_judges_the_measurement_against_the_model() {
        // 300 ports at 100/s: exhaustion at 3 s. A run with no error over 5 s fails the
        // exhaustion check; the same run, told not to expect the model, passes.
        let five_s = |p: &Plan| Facts {
            duration_s: 5.0,
            load_duration_s: 5.0,
            ..facts(p, measured(500, 0), None)
        };
        let p = plan("[load]\nrate = 100\nduration = \"5s\"\n");
        let s = assemble(&p, five_s(&p), &settings("40000 40299"), None);
        let v = s.verdict.as_ref().unwrap();
        assert!(!v.pass, "{v:#?}");
        assert!(v.checks.iter().any(|c| c.name == "exhaustion" && !c.pass));
        let p = plan("[load]\nrate = 100\nduration = \"5s\"\n[expect]\nmodel = false\n");
        let s = assemble(&p, five_s(&p), &settings("40000 40299"), None);
        assert!(s.verdict.unwrap().pass);
    }

    #[test]
    fn segments_per_request_needs_both_counters_and_a_completion() {
        let k = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        type Case = (&'static [(&'static str, u64)], u64, Option<f64>);
        let cases: &[Case] = &[
            (&[("InSegs", 50), ("OutSegs", 50)], 10, Some(10.0)),
            (&[("InSegs", 50), ("OutSegs", 50)], 0, None),
            (&[("InSegs", 50)], 10, None),
            (&[("OutSegs", 50)], 10, None),
            (&[("InSegs", u64::MAX), ("OutSegs", 1)], 10, None),
        ];
        for (counters, completed, want) in cases {
            assert_eq!(
                segments_per_request(&k(counters), *completed),
                *want,
                "{counters:?} {completed}"
            );
        }
    }

    #[test]
    fn a_client_exec_run_gets_the_same_figures_its_own_way() {
        let p = plan("[load]\nrate = 100\nduration = \"1s\"\n");
        let kernel: BTreeMap<String, u64> = [("InSegs", 600), ("OutSegs", 600)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut f = facts(&p, measured(100, 0), None);
        f.achieved_rate = Some(42.5);
        f.observed = Some(Observed {
            kernel,
            by: Watcher::ClientExec,
            ..Observed::default()
        });
        let s = figures(&p, &f);
        assert_eq!(
            s.achieved_rate, 42.5,
            "the client's measured rate, not attempts / s"
        );
        assert_eq!(s.completed, 100);
        assert!(s.segments_per_request.is_none());
        assert!(!s.observation.as_deref().unwrap().contains("tw_sockstat"));
        assert!(
            s.prediction.is_none() && s.verdict.is_none(),
            "the client judges itself"
        );
        // The same facts from the run's own sampler.
        f.observed.as_mut().unwrap().by = Watcher::Run;
        f.achieved_rate = None;
        let s = figures(&p, &f);
        assert_eq!(s.achieved_rate, 100.0);
        assert_eq!(s.segments_per_request, Some(12.0));
        assert!(s.observation.as_deref().unwrap().contains("tw_sockstat"));
    }
}
