//! The run's thread layout: one OS thread (one per core by default), each driving a
//! current-thread tokio runtime (its own epoll and timer) that runs its share of the client's
//! workers and, with the embedded server, an accept loop of its own on the listening
//! socket, the way wrk gives each of its threads an event loop of its own.
//!
//! Why not the multi-thread runtime: a connection's task there is woken on whichever thread
//! polled the event and may be stolen by the other, and idle threads are woken to look for
//! work. Against nginx (1 worker, one connection per request, 50 connections, 2 cores) that
//! layout made 2.2 times as many context switches as wrk; nginx went to sleep twice as
//! often, and each connect() paid for waking it (an IPI on a VM): 45-49k req/s against
//! wrk's 58k. With threads that never share a connection portlab went to 58.8k against wrk's
//! 58.8k in the same run, and past it with the changes that followed (benches/README.md).
//! The embedded server runs on the same threads because a server on threads of its own
//! competes with the client's for the cores: with it on the main runtime, reset churn fell
//! from 141k to 56k conn/s.

use std::future::Future;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Running threads, each blocked in its runtime until [`Threads::shutdown`].
pub struct Threads {
    handles: Vec<Handle>,
    joins: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// How many threads: `threads`, or one per core, never more than `workers` (at least 1).
pub fn count(threads: Option<u32>, workers: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    threads.unwrap_or(cores).min(workers).max(1)
}

impl Threads {
    /// Starts `n` threads, named `portlab-shard`. They are started from the calling
    /// thread and so are in its network namespace (the lab's, when there is one).
    pub fn start(n: u32) -> std::io::Result<Threads> {
        let (stop, stopped) = watch::channel(false);
        let mut threads = Threads {
            handles: Vec::new(),
            joins: Vec::new(),
            stop,
        };
        for _ in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            threads.handles.push(runtime.handle().clone());
            let mut stopped = stopped.clone();
            let thread = std::thread::Builder::new()
                .name("portlab-shard".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        let _ = stopped.wait_for(|&s| s).await;
                    });
                    // Dropping the runtime drops every task still on it (and its sockets).
                    drop(runtime);
                });
            match thread {
                Ok(t) => threads.joins.push(t),
                Err(e) => {
                    threads.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(threads)
    }

    /// The threads' runtimes, to spawn on (one accept loop each, for instance).
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Spreads `workers` workers over the threads: worker `i` runs `make(i)` on thread
    /// `i % threads`.
    pub fn spawn_workers<F, Fut>(&self, workers: u32, make: F) -> Workers
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let first_done = Arc::new(Notify::new());
        let tasks = (0..workers)
            .map(|i| {
                let (work, first_done) = (make(i), first_done.clone());
                self.handles[i as usize % self.handles.len()].spawn(async move {
                    work.await;
                    first_done.notify_one();
                })
            })
            .collect();
        Workers {
            first_done,
            tasks,
            panicked: false,
        }
    }

    /// Ends every thread's runtime (dropping what still runs on it) and waits for the threads.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.joins {
            let _ = t.join();
        }
    }
}

/// Worker tasks spread over the threads: what the runner waits on.
pub struct Workers {
    /// Notified when any worker has ended (closed loop: the load phase is over).
    first_done: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
    panicked: bool,
}

impl Workers {
    /// Returns when the first worker ends.
    pub async fn first_done(&self) {
        self.first_done.notified().await;
    }

    /// Returns when every worker has ended. May be cancelled (a drain timeout) and called
    /// again: a worker is forgotten as soon as its end is seen, since a finished task's
    /// handle must not be polled twice.
    pub async fn all_done(&mut self) {
        while let Some(t) = self.tasks.last_mut() {
            let ended = t.await;
            self.tasks.pop();
            if ended.is_err_and(|e| e.is_panic()) {
                self.panicked = true;
            }
        }
    }

    /// Cancels every worker still running, and waits until they are gone.
    pub async fn abort(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.all_done().await;
    }

    /// Whether a worker panicked (a bug: its outcomes are missing from the run).
    pub fn panicked(&self) -> bool {
        self.panicked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn every_worker_runs_once_spread_over_named_threads() {
        let pool = Threads::start(3).unwrap();
        let ran = Arc::new(AtomicU32::new(0));
        let threads = Arc::new(Mutex::new(HashMap::new()));
        let mut workers = pool.spawn_workers(10, |i| {
            let (ran, threads) = (ran.clone(), threads.clone());
            async move {
                ran.fetch_add(1 << i, Ordering::Relaxed);
                let me = std::thread::current();
                threads
                    .lock()
                    .unwrap()
                    .insert(me.id(), me.name().map(String::from));
            }
        });
        runtime().block_on(workers.all_done());
        assert_eq!(ran.load(Ordering::Relaxed), (1 << 10) - 1);
        let threads = threads.lock().unwrap();
        assert_eq!(threads.len(), 3, "three threads: {threads:?}");
        assert!(threads
            .values()
            .all(|n| n.as_deref() == Some("portlab-shard")));
        assert!(!workers.panicked());
        pool.shutdown();
    }

    #[test]
    fn first_done_then_abort_cancels_the_rest() {
        let threads = Threads::start(2).unwrap();
        let mut workers = threads.spawn_workers(4, |i| async move {
            if i != 2 {
                std::future::pending::<()>().await;
            }
        });
        let rt = runtime();
        rt.block_on(workers.first_done());
        rt.block_on(workers.abort());
        assert!(!workers.panicked());
        threads.shutdown();
    }

    #[test]
    fn a_drain_that_times_out_after_some_workers_ended_can_still_abort() {
        // One worker never ends, the others at once: waiting is cut short midway, whichever
        // end the waiting starts from.
        for stuck in [0, 3] {
            let threads = Threads::start(2).unwrap();
            let mut workers = threads.spawn_workers(4, move |i| async move {
                if i == stuck {
                    std::future::pending::<()>().await;
                }
            });
            let rt = runtime();
            let waited = rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), workers.all_done()).await
            });
            assert!(waited.is_err(), "worker {stuck} never ends");
            rt.block_on(workers.abort());
            assert!(!workers.panicked());
            threads.shutdown();
        }
    }

    #[test]
    fn a_panicking_worker_is_reported() {
        let threads = Threads::start(1).unwrap();
        let mut workers = threads.spawn_workers(2, |i| async move {
            assert!(i != 1, "worker 1 fails");
        });
        runtime().block_on(workers.all_done());
        assert!(workers.panicked());
        threads.shutdown();
    }

    #[test]
    fn shutdown_drops_what_still_runs() {
        let threads = Threads::start(2).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        for h in threads.handles() {
            let tx = tx.clone();
            h.spawn(async move {
                let _tx = tx; // dropped with the task
                std::future::pending::<()>().await;
            });
        }
        drop(tx);
        threads.shutdown();
        assert!(
            runtime().block_on(rx.recv()).is_none(),
            "tasks were dropped"
        );
    }

    #[test]
    fn never_more_threads_than_workers() {
        assert_eq!(count(Some(8), 3), 3);
        assert_eq!(count(Some(2), 50), 2);
        assert_eq!(count(Some(4), 0), 1);
        assert!(count(None, 1000) >= 1);
    }
}
