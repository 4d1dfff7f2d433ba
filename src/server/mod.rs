//! The embedded server: answers every payload kind and ends each connection exactly as the
//! plan says, so who holds TIME_WAIT is decided by the plan, not by a race.
//!
//! - `after-client`: reads until the client's FIN, then closes (client holds TIME_WAIT).
//!   A client command's HTTP request that asks for the close (`Connection: close`, or
//!   HTTP/1.0 without keep-alive) is the exception: the server closes first after its
//!   response, as RFC 9112 says (see `sniffed`).
//! - `first`: closes right after its reply (or right after accept with no payload); the
//!   client reads EOF before closing (server holds TIME_WAIT). It only closes after reading
//!   the whole request, since closing with unread data would send RST instead of FIN.
//! - `reset`: closes with SO_LINGER {1, 0} after its reply: RST.

pub mod exec;
mod sniffed;

use crate::plan::{EmbeddedServer, PayloadKind, Plan, ServerClose};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the server counted.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// accept() errors (EMFILE, ...).
    pub accept_errors: AtomicU64,
    /// Connections that ended in an I/O error on the server's side (e.g. the client's RST).
    pub conn_errors: AtomicU64,
    /// Connections accepted and not yet closed by the server.
    pub open: AtomicU64,
    /// Requests answered when the server tells raw TCP from HTTP itself (a client command's
    /// run): each HTTP request, or each read of raw bytes.
    pub requests: AtomicU64,
    /// Connections an `after-client` server closed first because the HTTP request asked
    /// for it (`Connection: close`, or HTTP/1.0 without keep-alive; RFC 9112 9.3): their
    /// TIME_WAIT is on the server's side, as with nginx.
    pub closed_on_request: AtomicU64,
    /// Woken when `open` drops to 0.
    idle: tokio::sync::Notify,
    /// When each connection was accepted, in a client command's run (`sniff`): the client's
    /// connections at the clock's resolution, not the samples' (its rate, bursts and ramps,
    /// and when it stopped connecting). At most [`ACCEPT_LOG_MAX`] are kept.
    pub accept_log: std::sync::Mutex<Vec<std::time::Instant>>,
    /// The distinct client (address, port) pairs accepted: a server that closes first
    /// keeps one TIME_WAIT (and conntrack one entry) per 4-tuple, and a SYN that reuses a
    /// 4-tuple takes over its TIME_WAIT.
    pub peers: std::sync::Mutex<PeerTuples>,
}

/// The distinct client (address, port) pairs a listener accepted, a port set per client
/// address (8 KiB each). Counted here because the server has each peer from accept() at
/// no cost, where the client would need a getsockname() per connection; and because
/// Linux's connect() can step back onto a port freed a moment earlier when two threads
/// connect at once (its per-destination offset is read and advanced without a lock), so
/// the 4-tuples a run used are fewer than its connections and no model can say by how
/// many.
#[derive(Debug, Default)]
pub struct PeerTuples {
    by_address: std::collections::HashMap<std::net::IpAddr, crate::observe::port_set::PortSet>,
    distinct: u64,
}

impl PeerTuples {
    /// Notes an accepted peer.
    pub fn note(&mut self, peer: SocketAddr) {
        let new = self
            .by_address
            .entry(peer.ip())
            .or_default()
            .insert(peer.port());
        self.distinct += u64::from(new);
    }

    /// The distinct pairs noted.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }
}

/// Accept times kept per server: 16 bytes each, 64 MiB at most (a client at 10,000/s for
/// 400 s); later accepts are counted in `accepted` but not timed.
pub const ACCEPT_LOG_MAX: usize = 4 << 20;

impl ServerStats {
    /// Notes an accept at `at` (only in a client command's run, where the log is read).
    fn log_accept(&self, at: std::time::Instant) {
        let mut log = self.accept_log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < ACCEPT_LOG_MAX {
            log.push(at);
        }
    }

    /// Notes an accepted connection's peer (see [`PeerTuples`]).
    fn note_peer(&self, peer: Option<SocketAddr>) {
        if let Some(peer) = peer {
            self.peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .note(peer);
        }
    }

    /// The distinct client 4-tuples accepted so far.
    pub fn distinct_peers(&self) -> u64 {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .distinct()
    }

    /// The accept times so far.
    pub fn accept_times(&self) -> Vec<std::time::Instant> {
        self.accept_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the server has closed every connection it accepted, or `limit` passed;
    /// returns how many are still open.
    async fn wait_idle(&self, limit: Duration) -> u64 {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                // Registered before the check, so a wake-up between the two is not lost.
                notified.as_mut().enable();
                if self.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.open.load(Ordering::Acquire)
    }
}

/// How the server answers, derived from the plan.
#[derive(Debug, Clone)]
struct Behaviour {
    payload: PayloadKind,
    /// tcp: bytes of one request (the client's `send`).
    request_len: usize,
    /// tcp: the reply; http: the whole response, built once.
    reply: Vec<u8>,
    close: ServerClose,
    accept_delay: Duration,
    /// A client command's run: tell raw TCP from HTTP by the first bytes and answer HTTP as
    /// RFC 9112 says (see `sniffed`).
    sniff: bool,
}

/// A running embedded server.
pub struct Server {
    /// The address it listens on (the real port when the plan said port 0).
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<ServerStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts serving on a listener made by [`bind`] (which may have been made in another
    /// network namespace): an accept loop on each runtime in `runtimes` (each on its own
    /// descriptor for the one listening socket) when connections carry a payload, else on
    /// the first; a connection is served on the thread that accepted it. `runtimes` must
    /// not be empty.
    pub fn start(
        plan: &Plan,
        cfg: &EmbeddedServer,
        listener: std::net::TcpListener,
        runtimes: &[tokio::runtime::Handle],
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let http_close = cfg.close != ServerClose::AfterClient;
        let body = b"ok\n";
        let http_reply = |close: bool| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{}",
                body.len(),
                if close { "close" } else { "keep-alive" },
                String::from_utf8_lossy(body)
            )
            .into_bytes()
        };
        let behaviour = Behaviour {
            payload: plan.payload.kind,
            request_len: plan.payload.send.0.len(),
            reply: match plan.payload.kind {
                PayloadKind::Http => http_reply(http_close),
                _ => plan.payload.response.0.clone(),
            },
            close: cfg.close,
            accept_delay: cfg.accept_delay,
            sniff: plan.client_exec.is_some(),
        };
        let stats = Arc::new(ServerStats::default());
        let (stop, stopped) = watch::channel(false);
        let behaviour = Arc::new(behaviour);
        let mut tasks = Vec::with_capacity(runtimes.len());
        // One accept loop per runtime when connections carry a payload, so that their
        // serving is spread too (HTTP at full speed, 2 cores: 65.5k req/s against 57.4k
        // with one loop). Without a payload a connection is finished in the accept loop
        // itself (`serve_now`), and there one loop is faster: every loop is woken for every
        // connection, and a second one costs reset churn 5% (139.6k against 132.6k conn/s).
        // A slow server (accept_delay) accepts at one pace: one loop, not one per thread.
        let one = !cfg.accept_delay.is_zero() || plan.payload.kind == PayloadKind::None;
        let loops = if one {
            &runtimes[..runtimes.len().min(1)]
        } else {
            runtimes
        };
        for runtime in loops {
            // Registered with the runtime that will poll it.
            let fd = {
                let _in = runtime.enter();
                TcpListener::from_std(listener.try_clone()?)?
            };
            tasks.push(runtime.spawn(accept_loop(
                fd,
                behaviour.clone(),
                stats.clone(),
                stopped.clone(),
            )));
        }
        Ok(Server {
            addr,
            stats,
            stop,
            tasks,
        })
    }

    /// Stops accepting, then waits (at most `grace`) until the server has closed every
    /// connection it accepted, so that the last kernel sample sees their final states
    /// (TIME_WAIT on the side the plan says). Returns how many were still open.
    pub async fn stop(self, grace: Duration) -> u64 {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.stats.wait_idle(grace).await
    }
}

/// Binds the embedded server's listening socket (non-blocking, SO_REUSEADDR, the plan's
/// backlog). Fails when the address is taken or not local.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A server restarted on a fixed port must not wait out its own TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    behaviour: Arc<Behaviour>,
    stats: Arc<ServerStats>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if !behaviour.accept_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(behaviour.accept_delay) => {}
                _ = stopped.changed() => break,
            }
        }
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => take(stream, Some(peer), &behaviour, &stats, true),
                Err(_) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = stopped.changed() => break,
        }
    }
    drain_queue(&listener, &behaviour, &stats);
}

/// At the stop, serves the connections already waiting in the accept queue instead of
/// resetting them with the listener: the clients' sockets of those connections are
/// finished (FIN_WAIT2, a `TW`-counted mini-socket) and wait for this server's FIN, as they
/// would from any server that falls behind and catches up. Dropping the listener with
/// them queued sent an RST to each, so a server kept off the CPU turned the run's last
/// thousands of client TIME_WAITs into resets (a lab run of 28,232 ports beside a release
/// build: 6,935 RSTs, client TIME_WAIT max 21,297). Bounded by what is queued now: the
/// loop ends at the first empty accept, and after `MAX_DRAIN` connections in any case.
/// Their accept times are not logged: they arrived earlier, when is not known.
fn drain_queue(listener: &TcpListener, behaviour: &Arc<Behaviour>, stats: &Arc<ServerStats>) {
    // A million: more than the accept queue of any backlog the plan takes holds at once,
    // so only a client still connecting (its own command) could make the loop reach it.
    const MAX_DRAIN: usize = 1 << 20;
    let raw = socket2::SockRef::from(listener);
    for _ in 0..MAX_DRAIN {
        // A plain accept4 on the non-blocking listener: tokio's accept would answer from
        // its cached readiness, which no event refreshes once the loop stopped polling.
        let Ok((socket, peer)) = raw.accept() else {
            return;
        };
        let peer = peer.as_socket();
        let stream = socket
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(socket.into()));
        match stream {
            Ok(stream) => take(stream, peer, behaviour, stats, false),
            Err(_) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Counts and serves one accepted connection: at once when it needs no waiting
/// ([`serve_now`]), else on a task of its own that [`Server::stop`] waits for. `log`: its
/// accept time is now (a client command's run logs it).
fn take(
    stream: TcpStream,
    peer: Option<SocketAddr>,
    behaviour: &Arc<Behaviour>,
    stats: &Arc<ServerStats>,
    log: bool,
) {
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    stats.note_peer(peer);
    if log && behaviour.sniff {
        stats.log_accept(std::time::Instant::now());
    }
    let stream = match serve_now(stream, behaviour) {
        Now::Done(Ok(())) => return,
        Now::Done(Err(_)) => {
            stats.conn_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Now::Later(stream) => stream,
    };
    stats.open.fetch_add(1, Ordering::AcqRel);
    let (b, s) = (behaviour.clone(), stats.clone());
    tokio::spawn(async move {
        let served = if b.sniff {
            sniffed::serve(stream, &b, &s).await
        } else {
            serve(stream, &b).await
        };
        if served.is_err() {
            s.conn_errors.fetch_add(1, Ordering::Relaxed);
        }
        if s.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle.notify_waiters();
        }
    });
}

/// Whether a connection could be finished at once, or needs a task.
enum Now {
    Done(io::Result<()>),
    Later(TcpStream),
}

/// The fast path of [`serve`] for connections without payload (the churn case): what
/// `serve` would do, done in the accept loop when it needs no waiting, which saves a task
/// (an allocation and a trip through the scheduler) per connection. A server that closes
/// first (or resets) closes now; one that closes after the client reads what is already
/// there (the client's FIN or RST often is) and closes at EOF. Anything that would block
/// goes to `serve` as before.
fn serve_now(stream: TcpStream, b: &Behaviour) -> Now {
    use std::io::Read;
    if b.payload != PayloadKind::None || b.sniff {
        return Now::Later(stream);
    }
    match b.close {
        ServerClose::First => Now::Done(Ok(())),
        ServerClose::Reset => {
            Now::Done(socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)))
        }
        ServerClose::AfterClient => {
            let mut buf = [0u8; 512];
            loop {
                // A plain recv on the socket: tokio's own try_read would answer WouldBlock
                // from its cached readiness before any event came for this new socket.
                let r = (&*socket2::SockRef::from(&stream)).read(&mut buf);
                match r {
                    Ok(0) => return Now::Done(Ok(())),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Now::Later(stream),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Now::Done(Err(e)),
                }
            }
        }
    }
}

/// Serves one connection: request/reply exchanges (one, or until the client's FIN when the
/// server closes after the client), then the close the plan asks for.
async fn serve(mut stream: TcpStream, b: &Behaviour) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut pending = 0usize; // bytes of the next request already read
    let mut client_done = false;
    loop {
        match b.payload {
            PayloadKind::None => break,
            PayloadKind::Tcp => {
                // Read one whole request (the client's `send`), then reply.
                while pending < b.request_len {
                    let want = (b.request_len - pending).min(buf.len());
                    match stream.read(&mut buf[..want]).await? {
                        0 => {
                            client_done = true;
                            break;
                        }
                        n => pending += n,
                    }
                }
                if client_done {
                    break;
                }
                pending = 0;
                stream.write_all(&b.reply).await?;
            }
            PayloadKind::Http => {
                // Read up to the end of the request head (GET has no body).
                loop {
                    if let Some(end) = find_head_end(&buf[..pending]) {
                        buf.copy_within(end..pending, 0);
                        pending -= end;
                        break;
                    }
                    if pending == buf.len() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request head too large",
                        ));
                    }
                    match stream.read(&mut buf[pending..]).await? {
                        0 => {
                            client_done = true;
                            break;
                        }
                        n => pending += n,
                    }
                }
                if client_done {
                    break;
                }
                stream.write_all(&b.reply).await?;
            }
        }
        if b.close != ServerClose::AfterClient {
            break;
        }
    }
    close(stream, b.close, client_done, &mut buf).await
}

/// Ends a served connection as the plan says: at once (`first`), after the client's FIN
/// (`after-client`; `client_done` when it already came), or with RST (`reset`).
async fn close(
    mut stream: TcpStream,
    how: ServerClose,
    client_done: bool,
    buf: &mut [u8],
) -> io::Result<()> {
    match how {
        ServerClose::First => {}
        ServerClose::AfterClient => {
            if !client_done {
                while stream.read(buf).await? != 0 {}
            }
        }
        ServerClose::Reset => {
            let socket = socket2::SockRef::from(&stream);
            socket.set_linger(Some(Duration::ZERO))?;
        }
    }
    drop(stream);
    Ok(())
}

fn find_head_end(data: &[u8]) -> Option<usize> {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Stops the embedded servers (each closes its side within `grace`; a second stop signal
/// ends that wait) and gives back what each counted, for
/// [`crate::results::assemble::server_summary`].
pub async fn stop_servers(
    servers: Vec<Server>,
    grace: Duration,
) -> Vec<(SocketAddr, Arc<ServerStats>)> {
    let stats: Vec<_> = servers.iter().map(|s| (s.addr, s.stats.clone())).collect();
    let stopping = async {
        for s in servers {
            let address = s.addr.to_string();
            let left = s.stop(grace).await;
            if left > 0 {
                crate::say::warning!("the embedded server ({address}) still had {left} connections open after --drain-timeout");
            }
        }
    };
    tokio::select! {
        () = stopping => {}
        () = crate::sys::signalled(2) => crate::say::warning!("second signal: the embedded server's connections were not waited for"),
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Scenario, Span, Target};
    use crate::runner::threads::Threads;
    use std::io::{Read, Write};

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    /// Accept loops a server on two threads starts, for a scenario made by `edit`.
    fn accept_loops(edit: impl FnOnce(&mut Scenario)) -> usize {
        let mut scenario = Scenario::default();
        edit(&mut scenario);
        let plan = Plan::resolve(&scenario).unwrap();
        let Target::Embedded(cfg) = &plan.target else {
            panic!("embedded server expected");
        };
        let threads = Threads::start(2).unwrap();
        let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let server = Server::start(&plan, cfg, listener, threads.handles()).unwrap();
        let loops = server.tasks.len();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(server.stop(Duration::from_secs(1))), 0);
        threads.shutdown();
        loops
    }

    #[test]
    fn one_accept_loop_per_thread_only_for_payloads_at_full_pace() {
        assert_eq!(
            accept_loops(|s| s.payload.kind = Some(PayloadKind::Http)),
            2
        );
        assert_eq!(accept_loops(|s| s.payload.kind = Some(PayloadKind::Tcp)), 2);
        // Payload-less connections are finished in the accept loop: one is faster.
        assert_eq!(accept_loops(|_| {}), 1);
        // A paced server accepts at its one pace.
        let slow = |s: &mut Scenario| {
            s.payload.kind = Some(PayloadKind::Http);
            s.target.accept_delay = Some(Span(Duration::from_millis(5)));
        };
        assert_eq!(accept_loops(slow), 1);
    }

    /// Connections still in the accept queue at the stop are served and closed with a FIN,
    /// not reset with the listener, for each way the server may close and carry a payload.
    #[test]
    fn the_stop_serves_what_waits_in_the_accept_queue() {
        for (payload, close) in [
            (None, None),
            (Some(PayloadKind::Tcp), None),
            (None, Some(ServerClose::AfterClient)),
        ] {
            let mut scenario = Scenario::default();
            scenario.payload.kind = payload;
            scenario.target.server_close = close;
            // A server that would take its first connection only after an hour.
            scenario.target.accept_delay = Some(Span(Duration::from_secs(3600)));
            let plan = Plan::resolve(&scenario).unwrap();
            let Target::Embedded(cfg) = &plan.target else {
                panic!("embedded server expected");
            };
            let threads = Threads::start(1).unwrap();
            let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
            let server = Server::start(&plan, cfg, listener, threads.handles()).unwrap();
            // Three connections the kernel completed; the server has accepted none. Each
            // client sends its request (if any) and its FIN, as the engine's client does.
            let mut clients: Vec<_> = (0..3)
                .map(|_| {
                    let mut c = std::net::TcpStream::connect(server.addr).unwrap();
                    if payload == Some(PayloadKind::Tcp) {
                        c.write_all(&[b'x'; 64]).unwrap();
                    }
                    c.shutdown(std::net::Shutdown::Write).unwrap();
                    c
                })
                .collect();
            let stats = server.stats.clone();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            assert_eq!(rt.block_on(server.stop(Duration::from_secs(10))), 0);
            assert_eq!(
                stats.accepted.load(Ordering::Relaxed),
                3,
                "{payload:?} {close:?}"
            );
            for c in &mut clients {
                let mut got = Vec::new();
                // EOF (the server's FIN), not ECONNRESET.
                c.read_to_end(&mut got)
                    .unwrap_or_else(|e| panic!("{payload:?} {close:?}: {e}"));
            }
            threads.shutdown();
        }
    }
}
