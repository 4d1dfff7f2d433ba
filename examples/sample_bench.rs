//! Times `observe::Sampler::sample` with many TIME_WAIT sockets present (the bar:
//! under 20 ms with 100,000).
//!
//! It makes its own private network namespace (via `lab::enter`, so root or unprivileged
//! user namespaces are needed), widens the port range, turns tcp_tw_reuse off, and makes N
//! loopback connections toward two listeners, each closed by the client first (so each
//! leaves one client-side TIME_WAIT); then it samples repeatedly and prints the timings.
//! Nothing outside that namespace is touched.
//!
//! Usage: cargo run --example sample_bench [-- N]   (default N = 100000)

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use portlab::lab::{self, LabConfig};
use portlab::observe::{parse_proc_net_tcp_line, Sampler};
use socket2::{Domain, Socket, Type};

fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().context("N must be a count, e.g. 100000")?,
        None => 100_000,
    };
    let plan = LabConfig {
        isolate: true,
        port_range: Some("1024-65535".into()),
        tw_reuse: Some(0),
        max_tw_buckets: Some(1_000_000),
        ..LabConfig::default()
    }
    .validate()?;
    let applied = lab::enter(&plan).context("entering a private namespace")?;
    eprintln!("lab entered ({})", applied.mode);

    // Two destinations: one local port can serve both, so N may exceed the 64512 ports.
    let listeners = [
        TcpListener::bind("127.0.0.1:1000")?,
        TcpListener::bind("127.0.0.1:1001")?,
    ];
    let targets: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    // Explicit source address and port for each connection: letting connect() pick ports
    // scans past every TIME_WAIT already made, and 100,000 would take longer than the
    // 60 s the first ones live. All of 127.0.0.0/8 is on lo: sources 127.0.1.x spread them.
    let per_source = 60_000usize;
    for i in 0..n {
        let k = i % 2;
        let source = SocketAddr::from((
            [127, 0, 1, (i / per_source) as u8 + 1],
            (2000 + i % per_source) as u16,
        ));
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket
            .bind(&source.into())
            .with_context(|| format!("bind {source} (connection {i} of {n})"))?;
        socket
            .connect(&targets[k].into())
            .with_context(|| format!("connection {i} of {n}"))?;
        let client = TcpStream::from(socket);
        let (mut server, _) = listeners[k].accept()?;
        drop(client); // the client closes first: its port goes to TIME_WAIT
        while server.read(&mut buf)? > 0 {}
    }
    let made_in = started.elapsed();

    let mut sampler = Sampler::new(targets[0]);
    let first = sampler.sample();
    let cpu_before = cpu_times();
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let s = sampler.sample();
            let e = t.elapsed();
            std::hint::black_box(s);
            e
        })
        .collect();
    let cpu_after = cpu_times();
    times.sort();

    // The fallback's cost: read and parse /proc/net/tcp and tcp6 once.
    let t = Instant::now();
    let mut fallback_tw = 0usize;
    for f in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/thread-self/net/{f}"))?;
        fallback_tw += text
            .lines()
            .filter_map(parse_proc_net_tcp_line)
            .filter(|e| e.state == 6)
            .count();
    }
    let fallback = t.elapsed();

    println!(
        "{n} connections made in {:.1} s; TIME_WAIT: sock_diag total {:?} (client side toward {} {:?}), \
         sockstat {:?}, /proc/net/tcp {fallback_tw}",
        made_in.as_secs_f64(),
        first.tw_total,
        targets[0],
        first.tw_client,
        first.tw_sockstat,
    );
    println!(
        "Sampler::sample (sock_diag, {} build), 20 runs: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    println!(
        "  CPU per sample: user {:.2} ms, system (kernel dump) {:.2} ms",
        (cpu_after.0 - cpu_before.0) / 20.0 * 1e3,
        (cpu_after.1 - cpu_before.1) / 20.0 * 1e3,
    );
    println!(
        "fallback read + parse of /proc/net/tcp{{,6}}: {:.2} ms",
        fallback.as_secs_f64() * 1e3
    );
    Ok(())
}

/// (user, system) CPU seconds of this process so far.
fn cpu_times() -> (f64, f64) {
    // SAFETY: rusage is plain old data, valid zeroed; getrusage writes it and cannot fail
    // with RUSAGE_SELF and a valid pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}
