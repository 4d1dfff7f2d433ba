//! Workers: long-lived tasks that each carry one connection (or one pooled connection) at a
//! time. One loop serves every mode: where starts come from (the pacer's channel or a closed
//! loop) is a [`Feed`], and pooling only decides whether the connection outlives a request.
//!
//! Per start a worker allocates nothing: its read buffer is its own, the request bytes are
//! shared, timeouts live inside the future, and the outcome is a `Copy` value sent on a
//! preallocated channel.

use super::socket::SocketFactory;
use crate::collect::{ErrCode, Failure, Outcome, Phase, Shared};
use crate::plan::{CloseMode, Expect, PayloadKind};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One start handed from the pacer to a worker.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Due time, µs since t0.
    pub due_us: u64,
}

/// What every worker shares (read-only but for the atomics).
#[derive(Debug)]
pub struct Ctx {
    /// The run's origin; every time is measured from it.
    pub t0: Instant,
    /// Opens client sockets as the plan says.
    pub factory: SocketFactory,
    /// Who closes, and how.
    pub close: CloseMode,
    /// What is exchanged.
    pub payload: PayloadKind,
    /// Bytes written per request: the tcp payload or the HTTP request, built once.
    pub request: Vec<u8>,
    /// How much of a tcp reply to read.
    pub expect: Expect,
    /// Persistent connections (0: one connection per start).
    pub pool: u32,
    /// Bound on connect().
    pub connect_timeout: Duration,
    /// Bound on the exchange (and the wait for the server's FIN in passive mode).
    pub exchange_timeout: Duration,
    /// Counters shared with the pacer and the collector.
    pub shared: std::sync::Arc<Shared>,
    /// Set on Ctrl-C or at the end of a closed loop: take no new start.
    pub stop: AtomicBool,
}

impl Ctx {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// Read buffer size for this payload: enough for HTTP headers, or a tcp reply chunk.
    fn buffer_len(&self) -> usize {
        match self.payload {
            PayloadKind::None => 512,
            PayloadKind::Tcp => 16 * 1024,
            PayloadKind::Http => 16 * 1024,
        }
    }
}

/// Where a worker's starts come from.
pub enum Feed<'a> {
    /// Open loop: the pacer hands out due starts.
    Paced(async_channel::Receiver<Start>),
    /// Closed loop: the next start begins as soon as the last ends.
    Closed {
        /// Tickets taken so far (shared by all closed-loop workers).
        tickets: &'a AtomicU64,
        /// Stop after this many.
        count: Option<u64>,
        /// Stop at this time.
        deadline: Option<Instant>,
    },
}

impl Feed<'_> {
    async fn next(&self, ctx: &Ctx) -> Option<Start> {
        match self {
            Feed::Paced(rx) => loop {
                let start = rx.recv().await.ok()?;
                if !ctx.stop.load(Ordering::Relaxed) {
                    return Some(start);
                }
                // Interrupted: a queued start is not begun.
                ctx.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            },
            Feed::Closed {
                tickets,
                count,
                deadline,
            } => {
                let now = Instant::now();
                if ctx.stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                // Tickets are only needed to stop at a count (a counter every worker shares
                // is a cache line the cores pass around, once per connection).
                if let Some(c) = count {
                    if tickets.fetch_add(1, Ordering::Relaxed) >= *c {
                        return None;
                    }
                }
                ctx.shared.in_flight.fetch_add(1, Ordering::Relaxed);
                Some(Start {
                    due_us: now.saturating_duration_since(ctx.t0).as_micros() as u64,
                })
            }
        }
    }
}

/// Runs starts from `feed` until it ends, sending one outcome per start.
pub async fn work(ctx: &Ctx, feed: Feed<'_>, tx: SyncSender<Outcome>) {
    let mut buf = vec![0u8; ctx.buffer_len()];
    // A pooled worker keeps its connection between starts.
    let mut conn: Option<TcpStream> = None;
    let mut broken = false;
    let mut backoff = Backoff::default();
    while let Some(start) = feed.next(ctx).await {
        let started_us = ctx.now_us();
        let seq = ctx.shared.started.fetch_add(1, Ordering::Relaxed) + 1;
        let mut o = Outcome {
            scheduled_us: start.due_us,
            started_us,
            connect_us: None,
            exchange_us: None,
            ended_us: started_us,
            seq,
            failure: None,
            status: 0,
            opened: false,
            reconnect: false,
        };
        let result = if ctx.pool == 0 {
            one_connection(ctx, &mut o, &mut buf).await
        } else {
            pooled_request(ctx, &mut o, &mut conn, &mut broken, &mut buf).await
        };
        o.failure = result.err();
        o.ended_us = ctx.now_us();
        let out_of_descriptors = o.failure.is_some_and(|f| f.code.is_descriptor_limit());
        // The collector drains far faster than connections end; if it ever lags, waiting
        // here is the right back-pressure (nothing is lost).
        let _ = tx.send(o);
        ctx.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        // No descriptor left: retrying at once fails again (a hot loop of ~500,000 failures
        // a second that starves the collector); wait for descriptors to be freed.
        if let Some(pause) = backoff.after(out_of_descriptors) {
            tokio::time::sleep(pause).await;
        }
    }
    // A pooled connection is closed the way the plan says (RST via linger 0, or FIN).
    drop(conn);
}

/// A worker's pause after running out of descriptors: 1 ms, doubling to 64 ms while the
/// failures go on, none once a start gets a descriptor again.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// Shortest and longest pause.
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(64);

    /// The pause after a start that did (`limited`) or did not run out of descriptors.
    pub fn after(&mut self, limited: bool) -> Option<Duration> {
        if !limited {
            self.next = None;
            return None;
        }
        let pause = self.next.unwrap_or(Self::FIRST);
        self.next = Some((pause * 2).min(Self::MAX));
        Some(pause)
    }
}

/// Opens, connects, exchanges and closes one connection.
async fn one_connection(ctx: &Ctx, o: &mut Outcome, buf: &mut [u8]) -> Result<(), Failure> {
    // A socket connected inside connect() is writable: the request goes out at once, before
    // the socket is registered with the runtime, which knows nothing of its readiness yet
    // and would wait a turn of its event loop for the first EPOLLOUT (one task wake per
    // connection, and the request that much later).
    let started = start_connect(ctx, o, &ctx.request)?;
    let nothing_to_do = ctx.payload == PayloadKind::None && ctx.close != CloseMode::Passive;
    if nothing_to_do && matches!(started, Started::Connected { .. }) {
        // Connected inside connect() (loopback completes the handshake there) and nothing to
        // exchange or wait for: close it as it is, never registered with the runtime (two
        // epoll_ctl calls and a trip through the reactor less per connection).
        o.exchange_us = Some(0);
        drop(started);
        // Nothing here awaited the runtime: yield, or a closed-loop worker would run
        // connection after connection and starve the workers sharing its thread (and the
        // runtime's own polling of sockets and timers).
        tokio::task::yield_now().await;
        return Ok(());
    }
    let (connected_at, written) = match &started {
        Started::Connected { at, written, .. } => (Some(*at), *written),
        Started::Pending(..) => (None, 0),
    };
    let mut stream = finish_connect(ctx, o, started).await?;
    // The exchange begins when the connection is up (a pending connect's wait is not in it).
    let exchanged = connected_at.unwrap_or_else(Instant::now);
    exchange_and_close(ctx, &mut stream, o, buf, written).await?;
    o.exchange_us = Some(micros(exchanged.elapsed()));
    // Dropping closes: FIN (active, passive after EOF), RST (reset), or a lingering close.
    drop(stream);
    Ok(())
}

/// One request on the worker's pooled connection, opening (or replacing) it when needed.
async fn pooled_request(
    ctx: &Ctx,
    o: &mut Outcome,
    conn: &mut Option<TcpStream>,
    broken: &mut bool,
    buf: &mut [u8],
) -> Result<(), Failure> {
    let mut stream = match conn.take() {
        Some(s) => s,
        None => {
            let s = connect(ctx, o).await?;
            o.reconnect = *broken;
            *broken = false;
            s
        }
    };
    let began = Instant::now();
    match tokio::time::timeout(ctx.exchange_timeout, exchange(ctx, &mut stream, o, buf, 0)).await {
        Ok(Ok(_)) => {
            o.exchange_us = Some(micros(began.elapsed()));
            *conn = Some(stream);
            Ok(())
        }
        Ok(Err(f)) => {
            *broken = true;
            Err(f)
        }
        Err(_) => {
            *broken = true;
            Err(Failure {
                code: ErrCode::TIMEOUT,
                phase: Phase::Exchange,
            })
        }
    }
}

async fn connect(ctx: &Ctx, o: &mut Outcome) -> Result<TcpStream, Failure> {
    let started = start_connect(ctx, o, &[])?;
    finish_connect(ctx, o, started).await
}

/// A client socket after its non-blocking connect().
enum Started {
    /// The handshake completed inside connect(), at `at`; the first `written` bytes of the
    /// request are sent.
    Connected {
        socket: std::net::TcpStream,
        at: Instant,
        written: usize,
    },
    /// Still in progress since this instant.
    Pending(std::net::TcpStream, Instant),
}

/// Opens the socket, calls connect() once and, once connected, writes what it can of
/// `first` (the request). A handshake that completes inside the call (loopback completes it
/// there, though the call says EINPROGRESS) is found at once, so it costs no wait on the
/// runtime: the write of `first` tells (EAGAIN while the handshake is under way), or without
/// one a peer address; SO_ERROR then tells a refusal from a handshake still under way.
fn start_connect(ctx: &Ctx, o: &mut Outcome, first: &[u8]) -> Result<Started, Failure> {
    let socket = ctx.factory.open(o.seq)?;
    let began = Instant::now();
    let cerr = |e: io::Error| Failure::new(Phase::Connect, &e);
    let in_progress = match socket2::SockRef::from(&socket).connect(&ctx.factory.target().into()) {
        Ok(()) => false,
        Err(e) if crate::sys::connect_in_progress(&e) => true,
        Err(e) => return Err(cerr(e)),
    };
    let at = Instant::now();
    let (connected, written) = match (in_progress, first.is_empty()) {
        (false, true) => (true, 0),
        (false, false) => (true, write_now(&socket, first).map_err(xerr)?),
        (true, true) => (socket.peer_addr().is_ok(), 0),
        (true, false) => match write_now(&socket, first) {
            Ok(0) => (false, 0),
            Ok(n) => (true, n),
            // Not connected (EPIPE after a refusal, say): SO_ERROR below has the reason.
            Err(e) => match socket.take_error().map_err(cerr)? {
                Some(why) => return Err(cerr(why)),
                None => return Err(cerr(e)),
            },
        },
    };
    if !connected {
        if let Some(e) = socket.take_error().map_err(cerr)? {
            return Err(cerr(e));
        }
        return Ok(Started::Pending(socket, began));
    }
    o.connect_us = Some(micros(at - began));
    o.opened = true;
    Ok(Started::Connected {
        socket,
        at,
        written,
    })
}

/// Registers the socket with the runtime and, if connect() is still in progress, waits for
/// it within the connect timeout (as tokio's own connect does: writable, then SO_ERROR).
async fn finish_connect(
    ctx: &Ctx,
    o: &mut Outcome,
    started: Started,
) -> Result<TcpStream, Failure> {
    let cerr = |e: io::Error| Failure::new(Phase::Connect, &e);
    let (socket, began) = match started {
        Started::Connected { socket, .. } => return TcpStream::from_std(socket).map_err(cerr),
        Started::Pending(socket, began) => (socket, began),
    };
    let stream = TcpStream::from_std(socket).map_err(cerr)?;
    match tokio::time::timeout(ctx.connect_timeout, stream.writable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(cerr(e)),
        Err(_) => {
            return Err(Failure {
                code: ErrCode::TIMEOUT,
                phase: Phase::Connect,
            })
        }
    }
    if let Some(e) = stream.take_error().map_err(cerr)? {
        return Err(cerr(e));
    }
    o.connect_us = Some(micros(began.elapsed()));
    o.opened = true;
    Ok(stream)
}

/// Writes what it can of `request` at once on a non-blocking socket: the bytes written (0
/// when it would block, as while connect() is still under way).
fn write_now(socket: &std::net::TcpStream, request: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    loop {
        match (&*socket).write(request) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The exchange (the first `written` bytes of the request already sent), then (passive
/// close) the wait for the server's FIN, within the timeout.
async fn exchange_and_close(
    ctx: &Ctx,
    stream: &mut TcpStream,
    o: &mut Outcome,
    buf: &mut [u8],
    written: usize,
) -> Result<(), Failure> {
    let work = async {
        let saw_eof = exchange(ctx, stream, o, buf, written).await? == ReplyEnd::Eof;
        if ctx.close == CloseMode::Passive && !saw_eof && !fin_known(ctx, stream).await? {
            read_to_eof(stream, buf).await?;
        }
        Ok(())
    };
    match tokio::time::timeout(ctx.exchange_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Failure {
            code: ErrCode::TIMEOUT,
            phase: Phase::Exchange,
        }),
    }
}

/// After a whole HTTP response (its Content-Length read): whether the server's FIN is
/// already known, from the readiness the runtime has for the socket (EPOLLRDHUP, which
/// usually comes with the reply, as servers close right after writing it). Then nothing is
/// left to read and the recv() that would return 0 is saved; the client still closes after
/// the server's FIN, as a passive close must. Not for tcp payloads: there the reply's
/// length is the plan's guess, and a server that sends more must be read to its end, or the
/// close would send RST for the unread bytes.
async fn fin_known(ctx: &Ctx, stream: &TcpStream) -> Result<bool, Failure> {
    if ctx.payload != PayloadKind::Http {
        return Ok(false);
    }
    let ready = stream
        .ready(tokio::io::Interest::READABLE)
        .await
        .map_err(xerr)?;
    Ok(ready.is_read_closed())
}

/// How a reply ended: at a known length, or at the server's FIN.
#[derive(Debug, PartialEq, Eq)]
enum ReplyEnd {
    Length,
    Eof,
}

fn xerr(e: io::Error) -> Failure {
    Failure::new(Phase::Exchange, &e)
}

const EARLY_EOF: Failure = Failure {
    code: ErrCode::EARLY_EOF,
    phase: Phase::Exchange,
};
const BAD_RESPONSE: Failure = Failure {
    code: ErrCode::BAD_RESPONSE,
    phase: Phase::Exchange,
};

async fn exchange(
    ctx: &Ctx,
    stream: &mut TcpStream,
    o: &mut Outcome,
    buf: &mut [u8],
    written: usize,
) -> Result<ReplyEnd, Failure> {
    let rest = &ctx.request[written..];
    match ctx.payload {
        PayloadKind::None => Ok(ReplyEnd::Length),
        PayloadKind::Tcp => {
            stream.write_all(rest).await.map_err(xerr)?;
            match ctx.expect {
                Expect::Eof => read_to_eof(stream, buf).await.map(|_| ReplyEnd::Eof),
                Expect::Bytes(n) => skip_exact(stream, n, buf).await.map(|()| ReplyEnd::Length),
            }
        }
        PayloadKind::Http => {
            stream.write_all(rest).await.map_err(xerr)?;
            read_http_response(stream, o, buf).await
        }
    }
}

/// Reads and discards exactly `left` bytes; the peer closing first is EARLY_EOF.
async fn skip_exact(
    stream: &mut TcpStream,
    mut left: usize,
    buf: &mut [u8],
) -> Result<(), Failure> {
    while left > 0 {
        let want = left.min(buf.len());
        match stream.read(&mut buf[..want]).await.map_err(xerr)? {
            0 => return Err(EARLY_EOF),
            n => left -= n,
        }
    }
    Ok(())
}

/// Reads until the peer's FIN; returns the bytes read.
async fn read_to_eof(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, Failure> {
    let mut total = 0;
    loop {
        match stream.read(buf).await.map_err(xerr)? {
            0 => return Ok(total),
            n => total += n,
        }
    }
}

/// Reads one HTTP/1.1 response (headers with httparse, then a Content-Length body, or a body
/// ended by the server's FIN), recording its status.
async fn read_http_response(
    stream: &mut TcpStream,
    o: &mut Outcome,
    buf: &mut [u8],
) -> Result<ReplyEnd, Failure> {
    let mut filled = 0;
    let (head_len, body_len) = loop {
        if filled == buf.len() {
            return Err(BAD_RESPONSE); // headers larger than the buffer
        }
        match stream.read(&mut buf[filled..]).await.map_err(xerr)? {
            0 => return Err(EARLY_EOF),
            n => filled += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(head_len)) => {
                o.status = resp.code.unwrap_or(0);
                let mut body_len = None;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        body_len = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                        if body_len.is_none() {
                            return Err(BAD_RESPONSE);
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        // Chunked bodies are not read: portlab's targets answer with a length.
                        return Err(BAD_RESPONSE);
                    }
                }
                // 1xx, 204 and 304 have no body.
                if matches!(o.status, 100..=199 | 204 | 304) {
                    body_len = Some(0);
                }
                break (head_len, body_len);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(BAD_RESPONSE),
        }
    };
    match body_len {
        Some(len) => skip_exact(stream, len.saturating_sub(filled - head_len), buf)
            .await
            .map(|()| ReplyEnd::Length),
        None => read_to_eof(stream, buf).await.map(|_| ReplyEnd::Eof),
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_while_out_of_descriptors_and_resets_after() {
        let mut b = Backoff::default();
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
        let seq: Vec<_> = (0..9).map(|_| ms(b.after(true))).collect();
        assert_eq!(seq, [1, 2, 4, 8, 16, 32, 64, 64, 64].map(Some).to_vec());
        assert_eq!(b.after(false), None);
        assert_eq!(ms(b.after(true)), Some(1), "starts over");
    }

    use super::*;
    use crate::plan::{Plan, Scenario};
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    fn ctx(target: std::net::SocketAddr, request: &[u8]) -> Ctx {
        let plan = Plan::resolve(&Scenario::default()).unwrap();
        Ctx {
            t0: Instant::now(),
            factory: SocketFactory::new(&plan.client, &[target]),
            close: CloseMode::Active,
            payload: PayloadKind::Http,
            request: request.to_vec(),
            expect: Expect::Eof,
            pool: 0,
            connect_timeout: Duration::from_secs(1),
            exchange_timeout: Duration::from_secs(1),
            shared: Default::default(),
            stop: Default::default(),
        }
    }

    fn outcome() -> Outcome {
        Outcome {
            scheduled_us: 0,
            started_us: 0,
            connect_us: None,
            exchange_us: None,
            ended_us: 0,
            seq: 0,
            failure: None,
            status: 0,
            opened: false,
            reconnect: false,
        }
    }

    /// A port nobody listens on: bound, then released.
    fn closed_port() -> std::net::SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn a_refusal_is_a_connect_failure_with_or_without_a_request_to_write() {
        for request in [&b""[..], b"GET / HTTP/1.1\r\n\r\n"] {
            let ctx = ctx(closed_port(), request);
            let mut o = outcome();
            let failure = match start_connect(&ctx, &mut o, request) {
                Err(f) => f,
                Ok(_) => panic!("connected to a closed port"),
            };
            assert_eq!(failure.phase, Phase::Connect);
            assert_eq!(failure.code.name(), "ECONNREFUSED", "{request:?}");
            assert!(!o.opened && o.connect_us.is_none());
        }
    }

    #[test]
    fn the_request_goes_out_with_the_connect() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let ctx = ctx(listener.local_addr().unwrap(), request);
        let mut o = outcome();
        let started = start_connect(&ctx, &mut o, request).unwrap();
        let Started::Connected { written, .. } = started else {
            panic!("loopback connects inside connect()");
        };
        assert_eq!(written, request.len());
        assert!(o.opened && o.connect_us.is_some());
        let (mut server, _) = listener.accept().unwrap();
        let mut got = vec![0u8; request.len()];
        server.read_exact(&mut got).unwrap();
        assert_eq!(got, request);
    }

    #[test]
    fn the_servers_fin_is_known_only_once_it_came() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let ctx = ctx(listener.local_addr().unwrap(), b"");
            let mut stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (mut server, _) = listener.accept().unwrap();
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            let (mut o, mut buf) = (outcome(), vec![0u8; 1024]);
            let end = read_http_response(&mut stream, &mut o, &mut buf).await;
            assert_eq!(end.ok(), Some(ReplyEnd::Length));
            assert_eq!(o.status, 200);
            // More bytes, and no FIN: readable, but the FIN must not be reported.
            server.write_all(b"x").unwrap();
            let early = tokio::time::timeout(Duration::from_secs(5), fin_known(&ctx, &stream));
            assert_eq!(early.await.ok().map(|r| r.ok()), Some(Some(false)));
            assert_eq!(stream.read(&mut buf).await.unwrap(), 1);
            drop(server);
            let known = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if fin_known(&ctx, &stream).await.unwrap() {
                        return;
                    }
                    // Readable without the FIN yet: a read would block, so wait for it.
                    stream.readable().await.unwrap();
                }
            });
            assert!(known.await.is_ok(), "the FIN was never seen");
        });
    }
}
