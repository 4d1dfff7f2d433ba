//! End-to-end churn bench: portlab `--rate max` against a plain
//! blocking `std::net` loop written here (one client thread per core doing
//! socket/connect/close against an accept loop), in each close mode, measured in the same run,
//! in the same private network namespace, interleaved round by round; prints the ratio.
//!
//! Each mode gets a fresh namespace (lo up, `tcp_tw_reuse = 1`, ports 32768-60999, the
//! kernel's default reuse delay of 1 s), a warm-up, then ROUNDS rounds of: std loop, portlab
//! with its embedded server, portlab against the std accept loop (same server as the std
//! loop), in alternating order. In `active` mode the client keeps TIME_WAIT and the ceiling is
//! the kernel's: ports / tcp_tw_reuse_delay, printed beside the std loop's figure (which is
//! what the kernel really lets through).
//!
//! Then the recording cost: the CPU time per outcome of the collector hand-off (a `Copy`
//! outcome through the bounded channel into `Collector::collect`, sent at the rate portlab
//! reached) against the CPU time per connection of the portlab process at that maximum rate
//! (reset mode). Each portlab run also reports its collector thread's share of its CPU, read
//! from /proc (that thread also runs the kernel sampler once per interval).
//!
//! Needs Linux and root or unprivileged user namespaces; skips with a message otherwise.
//! Knobs (environment): CHURN_SECS (5), CHURN_ROUNDS (3), CHURN_CONCURRENCY (64),
//! CHURN_MODES (reset,passive,active), CHURN_BEFORE (path of an earlier portlab build, run
//! interleaved with the others for a before/after comparison).
//!
//! Run: `cargo bench --bench churn`

#[cfg(target_os = "linux")]
mod common;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("churn bench: skipped (Linux only: it needs network namespaces)");
}

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = linux::main() {
        eprintln!("churn bench failed: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::common::{self, env_or, median, PortlabRun};
    use anyhow::{Context, Result};
    use portlab::collect::timeline::TimelineRow;
    use portlab::collect::{Collector, Failure, Outcome, Shared, Sink};
    use std::io::Read;
    use std::net::{SocketAddr, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const PORTS: &str = "32768-60999";
    const PORT_COUNT: f64 = 28_232.0;
    /// The bench's accept loop listens outside the ephemeral range.
    const SERVER: &str = "127.0.0.1:1080";
    /// So does portlab's embedded server: in active mode the range is full of TIME_WAIT, so
    /// a listener on port 0 would find no port (EADDRINUSE).
    const EMBEDDED: &str = "127.0.0.1:1081";
    /// Bound on any one loop: no run makes more connections than this.
    const MAX_CONNECTIONS: u64 = 50_000_000;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        Reset,
        Passive,
        Active,
    }

    impl Mode {
        fn name(self) -> &'static str {
            match self {
                Mode::Reset => "reset",
                Mode::Passive => "passive",
                Mode::Active => "active",
            }
        }
    }

    pub fn main() -> Result<()> {
        if std::env::args().any(|a| a == "--list") {
            return Ok(()); // `cargo bench -- --list`
        }
        if !std::env::args().any(|a| a == "--bench") {
            // `cargo test --benches` runs bench targets without --bench: minutes of load
            // do not belong in a test run.
            println!("churn bench: not run (use `cargo bench --bench churn`)");
            return Ok(());
        }
        if let Some(why) = common::lab_unavailable() {
            println!("churn bench: SKIPPED (no private network namespace: {why})");
            return Ok(());
        }
        let secs: u64 = env_or("CHURN_SECS", 5);
        let rounds: usize = env_or("CHURN_ROUNDS", 3);
        let concurrency: u32 = env_or("CHURN_CONCURRENCY", 64);
        let modes: Vec<Mode> = std::env::var("CHURN_MODES")
            .unwrap_or_else(|_| "reset,passive,active".into())
            .split(',')
            .filter_map(|m| match m.trim() {
                "reset" => Some(Mode::Reset),
                "passive" => Some(Mode::Passive),
                "active" => Some(Mode::Active),
                _ => None,
            })
            .collect();
        let cores = common::cores();
        println!(
            "churn: {secs} s per run, {rounds} rounds interleaved, std loop {cores} threads, \
             portlab --concurrency {concurrency}, ports {PORTS}, tcp_tw_reuse 1, portlab {}",
            common::PORTLAB
        );
        let mut reset_cpu_per_conn = None;
        let mut reset_rate = f64::NAN;
        let mut table = Vec::new();
        for mode in modes {
            let r = compare(mode, secs, rounds, concurrency, cores)?;
            if mode == Mode::Reset {
                reset_cpu_per_conn = Some(r.portlab_cpu_per_conn);
                reset_rate = r.portlab_rate;
            }
            table.push(r);
        }
        println!();
        println!(
            "{:<8} {:>12} {:>14} {:>8} {:>16} {:>8} {:>10}",
            "mode", "std conn/s", "portlab conn/s", "ratio", "portlab->std srv", "ratio", "goal"
        );
        for r in &table {
            if !r.before_rate.is_nan() {
                println!(
                    "{:<8} before/after (CHURN_BEFORE): {:.0} -> {:.0} conn/s, x{:.3}",
                    r.mode.name(),
                    r.before_rate,
                    r.portlab_rate,
                    r.portlab_rate / r.before_rate
                );
            }
        }
        for r in &table {
            let goal = match r.mode {
                Mode::Active => format!(
                    "ceiling {:.0}/s (model {:.0}/s)",
                    r.std_rate, r.model_ceiling
                ),
                _ => ">= 0.90".into(),
            };
            println!(
                "{:<8} {:>12.0} {:>14.0} {:>8.3} {:>16.0} {:>8.3}   {goal}",
                r.mode.name(),
                r.std_rate,
                r.portlab_rate,
                r.portlab_rate / r.std_rate,
                r.external_rate,
                r.external_rate / r.std_rate,
            );
        }
        for r in &table {
            println!(
                "{:<8} collector thread: {:.2}% of portlab's CPU at max rate (median of rounds)",
                r.mode.name(),
                r.collector_share * 100.0
            );
        }
        if let Some(cpu_per_conn) = reset_cpu_per_conn {
            recording_cost(cpu_per_conn, reset_rate)?;
        }
        Ok(())
    }

    struct Comparison {
        mode: Mode,
        std_rate: f64,
        portlab_rate: f64,
        external_rate: f64,
        portlab_cpu_per_conn: f64,
        /// The collector thread's share of portlab's CPU time.
        collector_share: f64,
        /// CHURN_BEFORE's rate (NaN without it).
        before_rate: f64,
        model_ceiling: f64,
    }

    fn compare(
        mode: Mode,
        secs: u64,
        rounds: usize,
        concurrency: u32,
        cores: usize,
    ) -> Result<Comparison> {
        // A fresh namespace per mode, so TIME_WAIT left by one mode does not weigh on the next.
        let applied = common::enter_lab(PORTS, None)?;
        let delay_ms: f64 = applied
            .settings
            .get("net.ipv4.tcp_tw_reuse_delay")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000.0);
        let server = AcceptLoop::start(mode, cores)?;
        let run = Duration::from_secs(secs);
        let limit = run + Duration::from_secs(30);
        let concurrency = concurrency.to_string();
        let duration = format!("{secs}s");
        let embedded_args = [
            "--rate",
            "max",
            "--concurrency",
            &concurrency,
            "--close",
            mode.name(),
            "--duration",
            &duration,
        ];
        let mut external_args = embedded_args.to_vec();
        external_args.extend(["--target", SERVER]);
        let mut embedded_args = embedded_args.to_vec();
        embedded_args.extend(["--listen", EMBEDDED]);

        // Warm-up: in active mode this fills the port range with TIME_WAIT, so every measured
        // run sees the steady state.
        std_loop(mode, cores, Duration::from_secs(2));

        let before = std::env::var("CHURN_BEFORE").ok();
        let variants = if before.is_some() { 4 } else { 3 };
        let (mut std_rates, mut pl_rates, mut ext_rates, mut cpu) =
            (vec![], vec![], vec![], vec![]);
        let (mut before_rates, mut collector_share) = (vec![], vec![]);
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..variants).collect();
            order.rotate_left(round % variants);
            for which in order {
                match which {
                    0 => {
                        let r = std_loop(mode, cores, run);
                        println!(
                            "  {:<7} round {round}: std loop         {r:>9.0} conn/s",
                            mode.name()
                        );
                        std_rates.push(r);
                    }
                    1 => {
                        let p = common::run_portlab(&embedded_args, limit)?;
                        report(mode, round, "portlab", &p);
                        cpu.push(p.cpu_s / p.num("/completed"));
                        collector_share.push(p.collector_cpu_s / p.cpu_s);
                        pl_rates.push(p.completed_rate);
                    }
                    2 => {
                        let p = common::run_portlab(&external_args, limit)?;
                        report(mode, round, "portlab->std srv", &p);
                        ext_rates.push(p.completed_rate);
                    }
                    _ => {
                        let bin = before.as_deref().expect("only with CHURN_BEFORE");
                        let p = common::run_portlab_bin(bin, &embedded_args, limit)?;
                        report(mode, round, "portlab (before)", &p);
                        before_rates.push(p.completed_rate);
                    }
                }
            }
        }
        server.stop();
        Ok(Comparison {
            mode,
            std_rate: median(std_rates),
            portlab_rate: median(pl_rates),
            external_rate: median(ext_rates),
            portlab_cpu_per_conn: median(cpu),
            collector_share: median(collector_share),
            before_rate: median(before_rates),
            model_ceiling: PORT_COUNT / (delay_ms / 1000.0),
        })
    }

    fn report(mode: Mode, round: usize, what: &str, p: &PortlabRun) {
        let errors = p.num("/failed");
        println!(
            "  {:<7} round {round}: {what:<16} {:>9.0} conn/s  ({} errors, {:.1} us CPU/conn, collector thread {:.1}% of CPU)",
            mode.name(),
            p.completed_rate,
            errors,
            p.cpu_s / p.num("/completed") * 1e6,
            p.collector_cpu_s / p.cpu_s * 100.0
        );
    }

    /// The plain blocking client: one thread per core, socket/connect/(read EOF)/close in a
    /// loop for `run`; returns successful connections per second.
    fn std_loop(mode: Mode, threads: usize, run: Duration) -> f64 {
        let target: SocketAddr = SERVER.parse().expect("constant address");
        let start = Instant::now();
        let deadline = start + run;
        let per_thread = MAX_CONNECTIONS / threads as u64;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    let mut buf = [0u8; 64];
                    for _ in 0..per_thread {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let Ok(mut s) = TcpStream::connect(target) else {
                            continue; // EADDRNOTAVAIL in active mode: the ports' ceiling
                        };
                        match mode {
                            Mode::Reset => {
                                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                            }
                            Mode::Passive => while matches!(s.read(&mut buf), Ok(n) if n > 0) {},
                            Mode::Active => {}
                        }
                        drop(s);
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        total as f64 / start.elapsed().as_secs_f64()
    }

    /// The accept loop: one blocking thread per core. It ends each connection the way
    /// portlab's embedded server does in that mode: after the client's FIN or RST (reset,
    /// active) or at once (passive: the server closes first).
    struct AcceptLoop {
        stop: Arc<AtomicBool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl AcceptLoop {
        fn start(mode: Mode, threads: usize) -> Result<AcceptLoop> {
            // The same backlog as portlab's embedded server (std's default is 128).
            let listener = portlab::server::bind(SERVER.parse()?, 4096)
                .context("binding the bench's accept loop")?;
            listener.set_nonblocking(false)?;
            let stop = Arc::new(AtomicBool::new(false));
            let threads = (0..threads)
                .map(|_| {
                    let (l, stop) = (listener.try_clone()?, stop.clone());
                    Ok(std::thread::spawn(move || {
                        let mut buf = [0u8; 512];
                        while let Ok((mut s, _)) = l.accept() {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            if mode != Mode::Passive {
                                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                            }
                        }
                    }))
                })
                .collect::<std::io::Result<_>>()?;
            Ok(AcceptLoop { stop, threads })
        }

        fn stop(self) {
            self.stop.store(true, Ordering::Relaxed);
            let mut woken = 0;
            for _ in &self.threads {
                // Wake each blocked accept(); it sees the flag and returns. In active mode
                // every port may still be held for up to the reuse delay: retry, bounded.
                for _ in 0..50 {
                    if let Ok(s) = TcpStream::connect(SERVER) {
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        woken += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if woken == self.threads.len() {
                for t in self.threads {
                    let _ = t.join();
                }
            } // else: leave the blocked threads behind rather than hang the bench
        }
    }

    struct NoSink;
    impl Sink for NoSink {
        fn interval(&mut self, _row: &TimelineRow) {}
    }

    /// Recording cost: the CPU per outcome of the hand-off and the collector, at the rate
    /// portlab reached (reset mode, above), against portlab's CPU per connection there.
    ///
    /// Outcomes are sent the way workers send them, in bursts every 100 us at `rate`, for
    /// 2 s, into `Collector::collect` on its own thread (polling as in a run). Cost = time
    /// spent in `send` (timed per burst) + the collector thread's whole CPU time (drains,
    /// histogram records, counters, its idle wake-ups), divided by the outcomes.
    fn recording_cost(cpu_per_conn: f64, rate: f64) -> Result<()> {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            50_000.0
        };
        let secs = 2.0;
        let n = (rate * secs) as u64;
        let burst = ((rate / 10_000.0).ceil() as u64).max(1);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Outcome>(64 * 1024);
        let t0 = Instant::now();
        let collector_shared = shared.clone();
        let collector = std::thread::spawn(move || {
            let m = Collector::new(t0, Duration::from_secs(1)).collect(
                rx,
                &collector_shared,
                &mut NoSink,
            );
            (m, common::thread_cpu_s())
        });
        let mut in_send = Duration::ZERO;
        let mut i = 0u64;
        let mut next = Instant::now();
        while i < n {
            let began = Instant::now();
            for _ in 0..burst.min(n - i) {
                let at = i * 13;
                let o = Outcome {
                    scheduled_us: at,
                    started_us: at + (i % 50),
                    connect_us: Some(20 + (i % 300) as u32),
                    exchange_us: Some(5 + (i % 40) as u32),
                    ended_us: at + 400,
                    seq: 0,
                    failure: (i % 1000 == 0).then_some(Failure {
                        code: portlab::collect::ErrCode(libc::EADDRNOTAVAIL),
                        phase: portlab::collect::Phase::Connect,
                    }),
                    status: 0,
                    opened: true,
                    reconnect: false,
                };
                if tx.send(o).is_err() {
                    break;
                }
                i += 1;
            }
            in_send += began.elapsed();
            next += Duration::from_micros(100);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        drop(tx);
        let (m, collector_cpu) = collector
            .join()
            .map_err(|_| anyhow::anyhow!("collector panicked"))?;
        let outcomes = (m.counts.completed + m.counts.failed) as f64;
        let per = (in_send.as_secs_f64() + collector_cpu) / outcomes;
        println!();
        println!(
            "recording cost: {outcomes} outcomes at {rate:.0}/s for {secs} s: send {:.0} ns + collector thread {:.0} ns = {:.0} ns CPU per outcome",
            in_send.as_secs_f64() / outcomes * 1e9,
            collector_cpu / outcomes * 1e9,
            per * 1e9
        );
        println!(
            "  portlab CPU per connection at max rate (reset, same run): {:.1} us -> recording is {:.2}% of a connection (goal < 1%: {})",
            cpu_per_conn * 1e6,
            per / cpu_per_conn * 100.0,
            if per / cpu_per_conn < 0.01 { "met" } else { "NOT met" }
        );
        Ok(())
    }
}
