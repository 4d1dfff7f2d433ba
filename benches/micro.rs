//! Criterion micro-benches: the pacer's decision, the collector's per-outcome
//! record, the outcome hand-off (bounded channel into the collector thread), and the TIME_WAIT
//! sampler with many sockets present.
//!
//! The sampler group needs Linux and a private network namespace (root or unprivileged user
//! namespaces): it makes SAMPLER_SOCKETS (default 100,000) client-side TIME_WAIT sockets in
//! its own namespace and times `Sampler::sample`; elsewhere it prints why it skipped.
//!
//! Run: `cargo bench --bench micro` (one group: `cargo bench --bench micro -- collector`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portlab::collect::timeline::TimelineRow;
use portlab::collect::{Collector, ErrCode, Failure, Outcome, Phase, Shared, Sink};
use portlab::runner::pacer::{ConstantRate, Pacer};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn outcome(i: u64) -> Outcome {
    let at = i * 33;
    Outcome {
        scheduled_us: at,
        started_us: at + (i % 50),
        connect_us: Some(20 + (i % 300) as u32),
        exchange_us: Some(5 + (i % 40) as u32),
        ended_us: at + 400,
        seq: 0,
        failure: (i % 1000 == 0).then_some(Failure {
            code: ErrCode(99),
            phase: Phase::Connect,
        }),
        status: 0,
        opened: true,
        reconnect: false,
    }
}

fn pacer(c: &mut Criterion) {
    let mut g = c.benchmark_group("pacer");
    let p = ConstantRate {
        rate: 30_000.0,
        duration: Some(Duration::from_secs(3600)),
        count: None,
        offset: Duration::ZERO,
    };
    // The pacer thread asks once per start (and once per wait): one decision's cost.
    g.bench_function("decide", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 1) % 100_000_000;
            black_box(p.decide(black_box(Duration::from_micros(i * 33)), black_box(i)))
        })
    });
    g.finish();
}

struct NoSink;
impl Sink for NoSink {
    fn interval(&mut self, _row: &TimelineRow) {}
}

fn collector(c: &mut Criterion) {
    let mut g = c.benchmark_group("collector");
    g.throughput(Throughput::Elements(1));
    // Five histogram records, counters, and one error in a thousand.
    g.bench_function("record", |b| {
        let mut col = Collector::new(Instant::now(), Duration::from_secs(1));
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            col.record(black_box(&outcome(i)));
        })
    });
    // The hand-off as workers see it: 100,000 outcomes sent from two threads through the
    // bounded channel while `Collector::collect` drains it on its own thread (polling, as in
    // a run). Timed until both senders are done; the collector's last tick is not timed.
    const N: u64 = 100_000;
    g.throughput(Throughput::Elements(N));
    g.sample_size(20);
    g.bench_function("hand_off_2_senders", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let shared = Arc::new(Shared::default());
                let (tx, rx) = std::sync::mpsc::sync_channel::<Outcome>(64 * 1024);
                let s = shared.clone();
                let col = std::thread::spawn(move || {
                    Collector::new(Instant::now(), Duration::from_secs(1)).collect(
                        rx,
                        &s,
                        &mut NoSink,
                    )
                });
                let began = Instant::now();
                let senders: Vec<_> = (0..2)
                    .map(|k| {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            for i in 0..N / 2 {
                                let _ = tx.send(outcome(k * N + i));
                            }
                        })
                    })
                    .collect();
                for s in senders {
                    let _ = s.join();
                }
                total += began.elapsed();
                drop(tx);
                black_box(col.join().map(|m| m.counts.completed).unwrap_or(0));
            }
            total
        })
    });
    g.finish();
}

#[cfg(target_os = "linux")]
fn sampler(c: &mut Criterion) {
    match sampler_setup() {
        Ok((mut sampler, made, _listeners)) => {
            let mut g = c.benchmark_group("sampler");
            g.sample_size(20);
            g.bench_function(format!("sample_{made}_timewait"), |b| {
                b.iter(|| black_box(sampler.sample()))
            });
            // What the sampler falls back to without sock_diag: read and parse
            // /proc/net/tcp and tcp6, counting TIME_WAIT.
            g.bench_function(format!("proc_fallback_{made}_timewait"), |b| {
                b.iter(|| {
                    let mut tw = 0usize;
                    for f in ["tcp", "tcp6"] {
                        let path = format!("/proc/thread-self/net/{f}");
                        let text = std::fs::read_to_string(path).unwrap_or_default();
                        tw += text
                            .lines()
                            .filter_map(portlab::observe::parse_proc_net_tcp_line)
                            .filter(|e| e.state == 6)
                            .count();
                    }
                    black_box(tw)
                })
            });
            // `portlab watch`'s sample (its budget: under 20 ms with 100,000 sockets): the same
            // dump with SYN_SENT too, grouped per (local address, destination) with each
            // TIME_WAIT timer read, plus the namespace's sysctls and Tcp counters.
            match (
                portlab::watch::KernelSource::new(None),
                portlab::watch::KernelSource::new(None),
            ) {
                (Ok(mut source), Ok(mut before)) => {
                    use portlab::watch::Source;
                    // The sample as it was before: every sample rereads the namespace's
                    // sysctls, and the dump carries CAP_NET_ADMIN's mark on every socket.
                    // Same sockets, same run.
                    if let Err(e) = before.sample_as_before() {
                        println!("watch sample bench: SKIPPED ({e})");
                        return;
                    }
                    // Side by side, one sample of each in turn (the TIME_WAIT sockets expire
                    // 60 s after they were made and the machine's load moves, so both must
                    // see the same moment): wall time and this thread's CPU, user and system
                    // (the kernel's dump), per sample.
                    let cpu = || {
                        // SAFETY: getrusage fills the zeroed struct it is given.
                        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
                        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                        (secs(ru.ru_utime), secs(ru.ru_stime))
                    };
                    let tw_before = sampler.sample().tw_total;
                    let pairs: u32 = 60;
                    let mut walls = [Vec::new(), Vec::new(), Vec::new()];
                    let mut cpus = [[0.0f64; 2]; 3];
                    for i in 0..pairs {
                        for k in 0..3 {
                            // Rotate the order so neither goes first every time.
                            let which = (k + i as usize) % 3;
                            let (u0, s0) = cpu();
                            let t0 = Instant::now();
                            match which {
                                0 => {
                                    black_box(source.snapshot().map(|s| s.groups.len()).ok());
                                }
                                1 => {
                                    black_box(before.snapshot().map(|s| s.groups.len()).ok());
                                }
                                _ => {
                                    black_box(sampler.sample());
                                }
                            }
                            walls[which].push(t0.elapsed().as_secs_f64() * 1000.0);
                            let (u1, s1) = cpu();
                            cpus[which][0] += (u1 - u0) * 1000.0 / f64::from(pairs);
                            cpus[which][1] += (s1 - s0) * 1000.0 / f64::from(pairs);
                        }
                    }
                    for (name, (w, c)) in ["watch", "watch before", "run's sampler"]
                        .iter()
                        .zip(walls.iter_mut().zip(cpus))
                    {
                        w.sort_by(f64::total_cmp);
                        // 95% confidence interval of the median from order statistics.
                        let n = w.len() as f64;
                        let half = 1.96 * n.sqrt() / 2.0;
                        let lo = w[((n / 2.0 - half).floor().max(0.0)) as usize];
                        let hi = w[((n / 2.0 + half).ceil() as usize).min(w.len() - 1)];
                        println!(
                            "{name:14} {made} sockets, {pairs} samples alternated: median {:.2} ms [{lo:.2}, {hi:.2}]; CPU per sample {:.2} ms (user {:.2}, system {:.2})",
                            w[w.len() / 2],
                            c[0] + c[1],
                            c[0],
                            c[1]
                        );
                    }
                    println!(
                        "TCP sockets on the whole host (slabinfo, every namespace: the dump walks them all): {}; TIME_WAIT in this namespace before / after the alternated samples: {tw_before:?} / {:?}",
                        host_sockets(),
                        sampler.sample().tw_total
                    );
                    // Short, so that both run well within the sockets' 60 s.
                    g.warm_up_time(Duration::from_secs(1));
                    g.measurement_time(Duration::from_secs(3));
                    g.bench_function(format!("watch_{made}_timewait"), |b| {
                        b.iter(|| black_box(source.snapshot().map(|s| s.groups.len())))
                    });
                    g.bench_function(format!("watch_{made}_timewait_before"), |b| {
                        b.iter(|| black_box(before.snapshot().map(|s| s.groups.len())))
                    });
                }
                (Err(e), _) | (_, Err(e)) => println!("watch sample bench: SKIPPED ({e})"),
            }
            g.finish();
        }
        Err(e) => println!("sampler bench: SKIPPED ({e:#})"),
    }
}

/// Active TCP, TCPv6 and TIME_WAIT socket objects on the whole host, from /proc/slabinfo
/// (root only; "unknown" otherwise). Without a per-namespace hash
/// (net.ipv4.tcp_child_ehash_entries) every sock_diag dump walks all of them, whatever
/// namespace it lists, so other work on the machine weighs on the figures.
#[cfg(target_os = "linux")]
fn host_sockets() -> String {
    let Ok(text) = std::fs::read_to_string("/proc/slabinfo") else {
        return "unknown".into();
    };
    let mut parts = Vec::new();
    for name in ["TCP", "TCPv6", "tw_sock_TCP"] {
        if let Some(n) = text.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().unwrap_or("?").to_string())
        }) {
            parts.push(format!("{name} {n}"));
        }
    }
    parts.join(", ")
}

#[cfg(not(target_os = "linux"))]
fn sampler(_c: &mut Criterion) {
    println!("sampler bench: SKIPPED (Linux only)");
}

/// Enters a private namespace and leaves N client-side TIME_WAIT sockets in it, returning a
/// sampler toward one of the listeners.
#[cfg(target_os = "linux")]
fn sampler_setup() -> anyhow::Result<(portlab::observe::Sampler, usize, [std::net::TcpListener; 2])>
{
    use anyhow::Context;
    use portlab::lab;
    use portlab::plan::lab::LabConfig;
    use std::io::Read;
    use std::net::{SocketAddr, TcpListener, TcpStream};

    let n: usize = std::env::var("SAMPLER_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let plan = LabConfig {
        isolate: true,
        port_range: Some("1024-65535".into()),
        tw_reuse: Some(0),
        max_tw_buckets: Some(1_000_000),
        ..LabConfig::default()
    }
    .validate()?;
    lab::enter(&plan).context("a private network namespace")?;
    let listeners = [
        TcpListener::bind("127.0.0.1:1000")?,
        TcpListener::bind("127.0.0.1:1001")?,
    ];
    let targets = [listeners[0].local_addr()?, listeners[1].local_addr()?];
    let mut buf = [0u8; 16];
    let per_source = 60_000usize;
    let began = Instant::now();
    for i in 0..n {
        // Explicit sources (127.0.1.x) and ports: connect() would scan past every TIME_WAIT.
        let source = SocketAddr::from((
            [127, 0, 1, (i / per_source) as u8 + 1],
            (2000 + i % per_source) as u16,
        ));
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&source.into())?;
        socket.connect(&targets[i % 2].into())?;
        let client = TcpStream::from(socket);
        let (mut server, _) = listeners[i % 2].accept()?;
        drop(client); // client closes first: its side goes to TIME_WAIT
        while server.read(&mut buf)? > 0 {}
    }
    let mut sampler = portlab::observe::Sampler::new(targets[0]);
    let s = sampler.sample();
    println!(
        "sampler bench: {n} connections made in {:.1} s; TIME_WAIT seen: {:?}",
        began.elapsed().as_secs_f64(),
        s.tw_total
    );
    Ok((sampler, n, listeners))
}

criterion_group!(benches, pacer, collector, sampler);
criterion_main!(benches);
