//! The client's thread layout: one OS thread per shard (one per core by default), each with
//! its own current-thread tokio runtime (its own epoll and timer) running its share of the
//! workers, the way wrk gives each of its threads an event loop of its own.
//!
//! Why not the multi-thread runtime: a connection's task there is woken on whichever thread
//! polled the event and may be stolen by the other, and idle threads are woken to look for
//! work. Against nginx (1 worker, one connection per request, 50 connections, 2 cores) that
//! layout made 2.2 times as many context switches as wrk; nginx went to sleep twice as
//! often, and each connect() paid for waking it (an IPI on a VM): 45-49k req/s against
//! wrk's 58k. Shards that never share a connection: 60.6k against wrk's 60.3k, measured
//! side by side (benches/README.md).
//!
//! The embedded server stays on the main runtime: its accept loops and the client's shards
//! do not wait on each other.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

/// Running shards: what the runner waits on.
pub struct Shards {
    /// Notified when any worker has ended (closed loop: the load phase is over).
    first_done: Arc<Notify>,
    /// Closed (every sender dropped) once every shard thread has finished.
    all_done: mpsc::Receiver<()>,
    /// `true` tells every shard to drop its workers at once (the drain timed out).
    abort: watch::Sender<bool>,
    /// Set by a shard whose worker panicked.
    panicked: Arc<AtomicBool>,
}

/// How many shard threads for `workers` workers: `threads`, or one per core, never more
/// than there are workers.
pub fn count(threads: Option<u32>, workers: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    threads.unwrap_or(cores).min(workers).max(1)
}

/// Starts `shards` threads and spreads `workers` workers over them: worker `i` runs
/// `make(i)` on shard `i % shards`.
///
/// Threads are named `portlab-client`. They are started from the calling thread and so are
/// in its network namespace (the lab's, when there is one).
pub fn spawn<F, Fut>(shards: u32, workers: u32, make: F) -> std::io::Result<Shards>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let make = Arc::new(make);
    let first_done = Arc::new(Notify::new());
    let (done_tx, all_done) = mpsc::channel::<()>(1);
    let (abort, abort_rx) = watch::channel(false);
    let panicked = Arc::new(AtomicBool::new(false));
    for shard in 0..shards {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (make, first_done, done_tx) = (make.clone(), first_done.clone(), done_tx.clone());
        let (mut abort_rx, panicked) = (abort_rx.clone(), panicked.clone());
        std::thread::Builder::new()
            .name("portlab-client".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    for i in (shard..workers).step_by(shards as usize) {
                        let (work, first_done) = (make(i), first_done.clone());
                        set.spawn(async move {
                            work.await;
                            first_done.notify_one();
                        });
                    }
                    let joined = async {
                        while let Some(r) = set.join_next().await {
                            if r.is_err_and(|e| e.is_panic()) {
                                panicked.store(true, Ordering::Relaxed);
                                first_done.notify_one();
                            }
                        }
                    };
                    tokio::select! {
                        () = joined => {}
                        // Dropping the set (and then the runtime) cancels every worker.
                        _ = abort_rx.wait_for(|&a| a) => {}
                    }
                });
                // Dropped last: the runner sees the shard done only once its sockets are.
                drop(runtime);
                drop(done_tx);
            })?;
    }
    Ok(Shards {
        first_done,
        all_done,
        abort,
        panicked,
    })
}

impl Shards {
    /// Returns when the first worker ends.
    pub async fn first_done(&self) {
        self.first_done.notified().await;
    }

    /// Returns when every shard has finished.
    pub async fn all_done(&mut self) {
        while self.all_done.recv().await.is_some() {}
    }

    /// Cancels every worker still running, and waits for the shards to finish.
    pub async fn abort(&mut self) {
        let _ = self.abort.send(true);
        self.all_done().await;
    }

    /// Whether a worker panicked (a bug: its outcomes are missing from the run).
    pub fn panicked(&self) -> bool {
        self.panicked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn every_worker_runs_once_on_named_threads() {
        let ran = Arc::new(AtomicU32::new(0));
        let names = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let (r, n) = (ran.clone(), names.clone());
        let mut shards = spawn(3, 10, move |i| {
            let (r, n) = (r.clone(), n.clone());
            async move {
                r.fetch_add(1 << i, Ordering::Relaxed);
                let name = std::thread::current().name().map(String::from);
                n.lock().unwrap().insert(std::thread::current().id(), name);
            }
        })
        .unwrap();
        runtime().block_on(shards.all_done());
        assert_eq!(ran.load(Ordering::Relaxed), (1 << 10) - 1);
        let names = names.lock().unwrap();
        assert_eq!(names.len(), 3, "three threads: {names:?}");
        assert!(names
            .iter()
            .all(|(_, n)| n.as_deref() == Some("portlab-client")));
        assert!(!shards.panicked());
    }

    #[test]
    fn first_done_comes_before_all_done_and_abort_cancels_the_rest() {
        let mut shards = spawn(2, 4, |i| async move {
            if i != 2 {
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
        let rt = runtime();
        rt.block_on(shards.first_done());
        rt.block_on(shards.abort());
        assert!(!shards.panicked());
    }

    #[test]
    fn a_panicking_worker_is_reported() {
        let mut shards = spawn(1, 2, |i| async move {
            assert!(i != 1, "worker 1 fails");
        })
        .unwrap();
        runtime().block_on(shards.all_done());
        assert!(shards.panicked());
    }

    #[test]
    fn never_more_threads_than_workers() {
        assert_eq!(count(Some(8), 3), 3);
        assert_eq!(count(Some(2), 50), 2);
        assert_eq!(count(Some(4), 0), 1);
        assert!(count(None, 1000) >= 1);
    }
}
