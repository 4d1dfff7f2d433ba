//! The runner: a pacer thread hands due starts to long-lived worker tasks; workers send one
//! outcome per start to the collector. The workers run on client threads of their own, each
//! with its own event loop ([`threads`]).
//!
//! The pacer is an OS thread, not a task: std::thread::sleep has tens-of-microseconds
//! precision, where tokio's timer has one millisecond, and a schedule of 10,000 starts per
//! second must not start them in 1 ms clumps. Shutdown is a value passed in (any future), so
//! tests and Ctrl-C stop a run the same way.

pub mod pacer;
pub mod slices;
pub mod socket;
pub mod threads;
pub mod worker;

use crate::collect::{Outcome, Shared};
use crate::plan::{CloseMode, PayloadKind, Plan, Rate};
use pacer::{ConstantRate, Decision, Pacer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Ctx, Feed, Start};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// Stopped by the shutdown future (Ctrl-C), not by its own bounds.
    pub interrupted: bool,
    /// From t0 until the last start was issued (the denominator of the achieved rate).
    pub load_elapsed: Duration,
    /// Still in flight when the drain timeout ran out, and abandoned.
    pub aborted: u64,
    /// A worker panicked (a bug): what was measured is still written, and the run fails
    /// with this message.
    pub failed: Option<String>,
}

/// Builds the bytes each request writes.
pub fn request_bytes(plan: &Plan, host: &str) -> Vec<u8> {
    match plan.payload.kind {
        PayloadKind::None => Vec::new(),
        PayloadKind::Tcp => plan.payload.send.0.clone(),
        PayloadKind::Http => {
            // Who closes first must not be left to the server's reading of the header: only
            // a passive close asks the server to close; otherwise the connection stays open
            // until the client closes it (HTTP/1.1 keep-alive is the default).
            let connection = if plan.client.close == CloseMode::Passive {
                "Connection: close\r\n"
            } else {
                ""
            };
            format!(
                "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portlab/{}\r\n{connection}\r\n",
                plan.payload.path,
                env!("CARGO_PKG_VERSION")
            )
            .into_bytes()
        }
    }
}

/// Where the workers' outcomes go.
pub struct Outlet {
    /// The origin of every time the collector sees.
    pub t0: Instant,
    /// Counters shared with the collector.
    pub shared: Arc<Shared>,
    /// Carries outcomes to the collector; dropped (by the last worker) when the run is over,
    /// which ends the collector.
    pub tx: SyncSender<Outcome>,
}

/// Runs the plan's load against `targets` (round robin) on the `threads` until its bounds or
/// `shutdown`, then drains until every connection ended, the drain timeout, `shutdown` (when
/// it came during the drain) or `abandon` (a second Ctrl-C), whichever comes first.
pub async fn run(
    plan: &Plan,
    threads: &threads::Threads,
    targets: &[SocketAddr],
    host: &str,
    Outlet { t0, shared, tx }: Outlet,
    shutdown: impl Future<Output = ()>,
    abandon: impl Future<Output = ()>,
) -> RunEnd {
    let ctx = Arc::new(Ctx {
        t0,
        factory: socket::SocketFactory::new(&plan.client, targets),
        close: plan.client.close,
        payload: plan.payload.kind,
        request: request_bytes(plan, host),
        expect: plan.payload.expect,
        pool: plan.client.pool,
        connect_timeout: plan.load.connect_timeout,
        exchange_timeout: plan.load.exchange_timeout,
        shared: shared.clone(),
        stop: Default::default(),
    });
    if let Some(why) = ctx.factory.slices_unavailable() {
        crate::say::warning!("{why}");
    }
    if crate::sys::stop_signals() > 0 {
        // Interrupted before the first start (during set-up, or --start-at's wait): nothing
        // is sent, and the summary says so.
        drop(tx);
        return RunEnd {
            interrupted: true,
            load_elapsed: Duration::ZERO,
            aborted: 0,
            failed: None,
        };
    }
    tokio::pin!(shutdown);
    tokio::pin!(abandon);
    let (load_elapsed, mut workers, mut interrupted) = match plan.lab_rate() {
        Rate::PerSecond(rate) => paced(plan, threads, &ctx, &tx, rate, shutdown.as_mut()).await,
        Rate::Max => closed_loop(plan, threads, &ctx, &tx, shutdown.as_mut()).await,
    };
    // Every worker holds its own sender: the collector ends when the last worker does.
    drop(tx);

    // Drain: in-flight connections may finish, within the drain timeout.
    let drained = tokio::time::timeout(plan.load.drain_timeout, workers.all_done());
    let drain_result = tokio::select! {
        r = drained => r.is_ok(),
        () = &mut shutdown, if !interrupted => {
            interrupted = true;
            false
        }
        () = &mut abandon, if interrupted => false,
    };
    let mut aborted = 0;
    if !drain_result {
        aborted = shared.in_flight.load(Ordering::Relaxed).max(0) as u64;
        workers.abort().await;
    }
    RunEnd {
        interrupted,
        load_elapsed,
        aborted,
        failed: workers
            .panicked()
            .then(|| "internal error: a worker panicked; its outcomes are missing".into()),
    }
}

/// The open loop: the pacer thread hands starts to the workers at `rate` until the
/// schedule ends or `shutdown`. Returns (load phase, workers, interrupted).
async fn paced(
    plan: &Plan,
    threads: &threads::Threads,
    ctx: &Arc<Ctx>,
    tx: &SyncSender<Outcome>,
    rate: f64,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> (Duration, threads::Workers, bool) {
    let t0 = ctx.t0;
    let max_in_flight = plan.load.max_in_flight;
    let (start_tx, start_rx) = async_channel::bounded::<Start>(max_in_flight as usize);
    let workers = threads.spawn_workers(plan.workers(), |_| {
        let (ctx, rx, tx) = (ctx.clone(), start_rx.clone(), tx.clone());
        async move { worker::work(&ctx, Feed::Paced(rx), tx).await }
    });
    drop(start_rx);
    let schedule = ConstantRate {
        rate,
        duration: plan.load.duration,
        count: plan.load.count,
        offset: plan.load.shard.map_or(Duration::ZERO, |s| s.offset(rate)),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pacer_ctx = ctx.clone();
    std::thread::Builder::new()
        .name("portlab-pacer".into())
        .spawn(move || {
            crate::sys::precise_sleep();
            pace(&schedule, &pacer_ctx, max_in_flight, &start_tx);
            let _ = done_tx.send(pacer_ctx.t0.elapsed());
        })
        .expect("spawning the pacer thread");
    tokio::pin!(done_rx);
    // A schedule that ran its course covers its whole window (start i of n is due at
    // i / R, the window ends at n / R), even though the last start came 1/R earlier.
    let window = schedule.window();
    let mut interrupted = false;
    let elapsed = tokio::select! {
        r = &mut done_rx => r.unwrap_or_else(|_| t0.elapsed()).max(window),
        () = &mut shutdown => {
            interrupted = true;
            ctx.stop.store(true, Ordering::Relaxed);
            done_rx.await.unwrap_or_else(|_| t0.elapsed())
        }
    };
    // A shard's starts begin at its offset: its load phase is from there on.
    (
        elapsed.saturating_sub(schedule.offset),
        workers,
        interrupted,
    )
}

/// The closed loop (`--rate max`): each worker starts its next connection when the last
/// ends, until the deadline or count, or `shutdown`. Returns (load phase, workers,
/// interrupted).
async fn closed_loop(
    plan: &Plan,
    threads: &threads::Threads,
    ctx: &Arc<Ctx>,
    tx: &SyncSender<Outcome>,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> (Duration, threads::Workers, bool) {
    let t0 = ctx.t0;
    let tickets = Arc::new(AtomicU64::new(0));
    let deadline = plan.load.duration.map(|d| t0 + d);
    let count = plan.load.count;
    let workers = threads.spawn_workers(plan.workers(), |_| {
        let (ctx, tickets, tx) = (ctx.clone(), tickets.clone(), tx.clone());
        async move {
            let feed = Feed::Closed {
                tickets: &tickets,
                count,
                deadline,
            };
            worker::work(&ctx, feed, tx).await
        }
    });
    // Closed-loop workers stop by themselves at the deadline or count; the load phase ends
    // when the first of them runs dry or at Ctrl-C.
    let mut interrupted = false;
    tokio::select! {
        () = workers.first_done() => {}
        () = shutdown => interrupted = true,
    }
    ctx.stop.store(true, Ordering::Relaxed);
    (t0.elapsed(), workers, interrupted)
}

/// The pacer loop (on its own thread): hands each due start to a worker, or counts it as
/// dropped when `max_in_flight` are already in flight.
fn pace(schedule: &dyn Pacer, ctx: &Ctx, max_in_flight: u32, tx: &async_channel::Sender<Start>) {
    let shared = &ctx.shared;
    let mut scheduled: u64 = 0;
    while !ctx.stop.load(Ordering::Relaxed) {
        match schedule.decide(ctx.t0.elapsed(), scheduled) {
            Decision::Done => break,
            // Bounded so that Ctrl-C is seen within 10 ms even between slow starts.
            Decision::Wait(d) => std::thread::sleep(d.min(Duration::from_millis(10))),
            Decision::Start { due, .. } => {
                scheduled += 1;
                if shared.in_flight.load(Ordering::Relaxed) >= i64::from(max_in_flight) {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                let start = Start {
                    due_us: due.as_micros() as u64,
                };
                if tx.try_send(start).is_err() {
                    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
