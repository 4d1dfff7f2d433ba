//! The embedded server for a client command (`--client-exec`): the user's client speaks raw
//! TCP or HTTP, and the server tells which from the first bytes (an HTTP method and a
//! space), then answers every request: raw TCP with the plan's reply to each read, HTTP as
//! RFC 9112 says.
//!
//! HTTP: each request is read whole (head, then its body by Content-Length or chunked,
//! trailers included) and answered in order (pipelined requests too) with a 200 carrying a
//! correct Content-Length (HEAD: the same headers, no body). The connection persists
//! (HTTP/1.1, or HTTP/1.0 with `Connection: keep-alive`) unless the request asks for a
//! close (`Connection: close`, or HTTP/1.0 without keep-alive): then the server answers
//! `Connection: close` and closes first after the response, as nginx and Apache do (RFC 9112
//! 9.3, 9.6), which puts TIME_WAIT on the server ([`ServerStats::closed_on_request`] counts
//! those). A request portlab cannot frame (a malformed head, a head over 16 KiB, a bad
//! Content-Length or chunk, a transfer coding other than chunked last) gets a 400 and the
//! close, never a wait. `server_close = "first"` or `"reset"` still closes after the first
//! response whatever the request said; with `after-client` a persistent connection is
//! closed after the client's FIN, so the client's own closing decides where TIME_WAIT lands.

use super::{Behaviour, ServerStats};
use crate::plan::ServerClose;
use httparse::Status;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[cfg(target_os = "linux")]
#[path = "fin_linux.rs"]
mod fin;

#[cfg(not(target_os = "linux"))]
#[path = "fin_other.rs"]
mod fin;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Whether the first bytes of a connection are an HTTP request line.
pub(super) fn looks_like_http(first: &[u8]) -> bool {
    METHODS.iter().any(|m| first.starts_with(m))
}

/// The body of every 200.
const BODY: &[u8] = b"ok\n";
/// The body of a 400.
const BAD_BODY: &[u8] = b"bad request\n";
/// Headers at most in one request (more: 400).
const MAX_HEADERS: usize = 64;
/// The read buffer: a request head or a chunk-size or trailer line must fit in it.
const BUF: usize = 16 * 1024;

/// Why the server stopped reading a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `server_close = "first"` or `"reset"`: after every first response.
    Plan,
    /// The request asked for it (`Connection: close`, or HTTP/1.0 without keep-alive).
    Request,
    /// The request could not be framed: answered 400.
    Bad,
}

/// How one request is answered, decided from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    /// HEAD: the headers alone.
    head_only: bool,
    /// Close after this response, and why (None: the connection persists).
    close: Option<End>,
}

/// Where the reader is in a chunked body (RFC 9112 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At (the rest of) a request head.
    Head,
    /// Skipping a body by Content-Length: bytes left.
    Fixed(u64, Reply),
    /// Skipping a chunked body.
    Chunked(Chunk, Reply),
    /// Reads nothing more: the connection closes.
    Done(End),
}

/// What a request head says.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Not all there yet.
    Partial,
    /// Cannot be framed: 400.
    Bad,
    Request {
        /// Bytes of the head.
        len: usize,
        body: Body,
        /// It asked for the close (RFC 9112 9.3).
        close: bool,
        head_only: bool,
        /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
        continue_100: bool,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&c| c == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Reads a request head (RFC 9112 6.3 for the body's length, 9.3 for persistence).
fn parse_head(data: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(data) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) => return Head::Partial,
        Err(_) => return Head::Bad,
    };
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut expect) = (false, false, false);
    let mut length: Option<u64> = None;
    // The last transfer coding named: the body is chunked when that is "chunked".
    let mut coding: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Repeated values must agree (RFC 9110 8.6); anything but digits is refused.
            for t in tokens(h.value) {
                let n = std::str::from_utf8(t)
                    .ok()
                    .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok());
                match (n, length) {
                    (None, _) => return Head::Bad,
                    (Some(n), Some(had)) if n != had => return Head::Bad,
                    (Some(n), _) => length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            coding = Some(tokens(h.value).last().unwrap_or(b""));
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = match (coding, length) {
        // Chunked must be the last coding, never on HTTP/1.0, never beside a Content-Length
        // (RFC 9112 6.1, 6.3: the framing is faulty, or a smuggling attempt).
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") && !http10 => Body::Chunked,
        (Some(_), _) => return Head::Bad,
        (None, Some(n)) if n > 0 => Body::Length(n),
        (None, _) => Body::None,
    };
    Head::Request {
        len,
        continue_100: expect && !http10 && body != Body::None,
        body,
        close: close || (http10 && !keep_alive),
        head_only: req.method == Some("HEAD"),
    }
}

/// Appends the response to one request.
fn respond(out: &mut Vec<u8>, reply: Reply) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(BODY.len().to_string().as_bytes());
    out.extend_from_slice(if reply.close.is_some() {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: keep-alive\r\n\r\n".as_slice()
    });
    if !reply.head_only {
        out.extend_from_slice(BODY);
    }
}

/// The HTTP side of a connection: bytes in, responses out; no I/O, so that tests can feed it.
#[derive(Debug)]
struct Http {
    state: State,
    /// `server_close = "first"` or `"reset"`: close after the first response.
    plan_closes: bool,
    /// Requests answered and not yet counted in the server's stats.
    answered: u64,
}

impl Http {
    fn new(plan_closes: bool) -> Http {
        Http {
            state: State::Head,
            plan_closes,
            answered: 0,
        }
    }

    /// Why it stopped reading, once it has.
    fn end(&self) -> Option<End> {
        match self.state {
            State::Done(end) => Some(end),
            _ => None,
        }
    }

    /// Answers a request read whole.
    fn answer(&mut self, reply: Reply, out: &mut Vec<u8>) {
        respond(out, reply);
        self.answered += 1;
        self.state = reply.close.map_or(State::Head, State::Done);
    }

    /// Answers 400 and stops.
    fn bad(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ",
        );
        out.extend_from_slice(BAD_BODY.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        out.extend_from_slice(BAD_BODY);
        self.state = State::Done(End::Bad);
    }

    /// Reads what it can of `data`, appending the answers (and any `100 Continue`) to `out`;
    /// returns the bytes used. The rest (part of a head or of a chunk line) comes again with
    /// more bytes behind it; after the end, everything counts as used.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            match self.state {
                State::Done(_) => return data.len(),
                State::Head => match parse_head(rest) {
                    Head::Partial => return pos,
                    Head::Bad => self.bad(out),
                    Head::Request {
                        len,
                        body,
                        close,
                        head_only,
                        continue_100,
                    } => {
                        pos += len;
                        let reply = Reply {
                            head_only,
                            close: if self.plan_closes {
                                Some(End::Plan)
                            } else {
                                close.then_some(End::Request)
                            },
                        };
                        if continue_100 {
                            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        }
                        match body {
                            Body::None => self.answer(reply, out),
                            Body::Length(n) => self.state = State::Fixed(n, reply),
                            Body::Chunked => self.state = State::Chunked(Chunk::Size, reply),
                        }
                    }
                },
                State::Fixed(left, reply) => {
                    let take = left.min(rest.len() as u64);
                    pos += take as usize;
                    if take == left {
                        self.answer(reply, out);
                    } else {
                        self.state = State::Fixed(left - take, reply);
                        return pos;
                    }
                }
                State::Chunked(at, reply) => {
                    let next = match at {
                        Chunk::Size => {
                            if rest.first().is_some_and(|c| !c.is_ascii_hexdigit()) {
                                None
                            } else {
                                match httparse::parse_chunk_size(rest) {
                                    Ok(Status::Partial) => return pos,
                                    Ok(Status::Complete((n, 0))) => Some((n, Chunk::Trailer)),
                                    Ok(Status::Complete((n, size))) => Some((n, Chunk::Data(size))),
                                    Err(_) => None,
                                }
                            }
                        }
                        Chunk::Data(left) => {
                            let take = left.min(rest.len() as u64);
                            if take == 0 {
                                return pos;
                            }
                            Some((
                                take as usize,
                                if take == left {
                                    Chunk::DataEnd
                                } else {
                                    Chunk::Data(left - take)
                                },
                            ))
                        }
                        Chunk::DataEnd => match rest {
                            [b'\r', b'\n', ..] => Some((2, Chunk::Size)),
                            [] | [b'\r'] => return pos,
                            _ => None,
                        },
                        Chunk::Trailer => match rest.windows(2).position(|w| w == b"\r\n") {
                            None => return pos,
                            Some(0) => {
                                pos += 2;
                                self.answer(reply, out);
                                continue;
                            }
                            // A trailer field: skipped.
                            Some(i) => Some((i + 2, Chunk::Trailer)),
                        },
                    };
                    match next {
                        Some((n, at)) => {
                            pos += n;
                            self.state = State::Chunked(at, reply);
                        }
                        None => self.bad(out),
                    }
                }
            }
        }
    }
}

/// Serves one connection of a client command, counting each request answered and each
/// connection closed first because its request asked for it.
pub(super) async fn serve(
    mut stream: TcpStream,
    b: &Behaviour,
    stats: &ServerStats,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    let mut pending = 0usize;
    let mut http: Option<Option<Http>> = None; // Some(None): raw TCP
    let mut out = Vec::new();
    let after_client = b.close == ServerClose::AfterClient;
    let mut client_done = false;
    loop {
        let n = stream.read(&mut buf[pending..]).await?;
        if n == 0 {
            client_done = true;
            break;
        }
        pending += n;
        let kind = http.get_or_insert_with(|| {
            looks_like_http(&buf[..pending]).then(|| Http::new(!after_client))
        });
        let Some(h) = kind else {
            pending = 0;
            stats.requests.fetch_add(1, Ordering::Relaxed);
            stream.write_all(&b.reply).await?;
            if !after_client {
                break;
            }
            continue;
        };
        let used = h.feed(&buf[..pending], &mut out);
        buf.copy_within(used..pending, 0);
        pending -= used;
        if pending == buf.len() {
            // A head, or a chunk or trailer line, longer than the buffer.
            h.bad(&mut out);
        }
        stats
            .requests
            .fetch_add(std::mem::take(&mut h.answered), Ordering::Relaxed);
        if h.end() == Some(End::Request) {
            // The close the request asked for leaves with the response.
            fin::with_the_fin(&stream);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        match h.end() {
            None => {}
            Some(End::Plan) => break,
            Some(End::Request) => {
                // The server closes first, as the request asked: TIME_WAIT on its side.
                stats.closed_on_request.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Some(End::Bad) => {
                linger(stream, &mut buf).await;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a request that cannot be framed: answered 400",
                ));
            }
        }
    }
    super::close(stream, b.close, client_done, &mut buf).await
}

/// After a 400: the server's FIN, then what the client still sends is read and dropped (at
/// most 1 MiB, for at most 2 s, as nginx's lingering close does) so that closing with unread
/// bytes does not send a RST that could destroy the 400 before the client reads it.
async fn linger(mut stream: TcpStream, buf: &mut [u8]) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut left = 1usize << 20;
        while let Ok(n @ 1..) = stream.read(buf).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_told_from_raw_bytes() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST /x HTTP/1.0\r\n"));
        assert!(!looks_like_http(b"hello\n"));
        assert!(!looks_like_http(b"GETX"));
        assert!(
            !looks_like_http(&[0, 0, 0, 8, 4, 210, 22, 47]),
            "a PostgreSQL start-up"
        );
    }

    /// `feed` over `input` in one piece: the responses, and the end.
    fn fed(after_client: bool, input: &[u8]) -> (String, Option<End>, u64) {
        let mut h = Http::new(!after_client);
        let mut out = Vec::new();
        let used = h.feed(input, &mut out);
        assert!(used <= input.len());
        (String::from_utf8(out).unwrap(), h.end(), h.answered)
    }

    const OK_KEEP: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";
    const OK_CLOSE: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

    #[test]
    fn persistence_follows_rfc_9112() {
        let cases: [(&[u8], &str, Option<End>); 8] = [
            // HTTP/1.1 persists by default.
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", OK_KEEP, None),
            // Any token list that names close, in any case.
            (
                b"GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n",
                OK_CLOSE,
                Some(End::Request),
            ),
            (
                b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n",
                OK_CLOSE,
                Some(End::Request),
            ),
            // HTTP/1.0 closes unless it asks for keep-alive.
            (b"GET / HTTP/1.0\r\n\r\n", OK_CLOSE, Some(End::Request)),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                OK_KEEP,
                None,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                OK_CLOSE,
                Some(End::Request),
            ),
            // Another header's "close" is not the Connection header's.
            (
                b"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n",
                OK_KEEP,
                None,
            ),
            // HEAD: the same Content-Length, no body.
            (
                b"HEAD / HTTP/1.0\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
                Some(End::Request),
            ),
        ];
        for (input, want, end) in cases {
            let text = String::from_utf8_lossy(input);
            assert_eq!(fed(true, input), (want.to_string(), end, 1), "{text}");
        }
        // server_close = "first" (or "reset") closes after the first response anyway.
        let (out, end, _) = fed(false, b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!((out.as_str(), end), (OK_CLOSE, Some(End::Plan)));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_up_to_the_close() {
        let input = b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /4 HTTP/1.1\r\nConnection: close\r\n\r\nGET /5 HTTP/1.1\r\n\r\n";
        let (out, end, answered) = fed(true, input);
        let head_only = OK_KEEP.trim_end_matches("ok\n");
        assert_eq!(out, [OK_KEEP, head_only, OK_KEEP, OK_CLOSE].concat());
        assert_eq!(
            (end, answered),
            (Some(End::Request), 4),
            "/5 after the close: unread"
        );
    }

    #[test]
    fn bodies_are_read_past_in_any_pieces() {
        let input: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n";
        let whole = fed(true, input);
        assert_eq!(
            whole,
            (
                ["HTTP/1.1 100 Continue\r\n\r\n", OK_KEEP, OK_KEEP, OK_CLOSE].concat(),
                Some(End::Request),
                3
            )
        );
        // One byte at a time, keeping what was not used, as `serve` does.
        let mut h = Http::new(false);
        let mut out = Vec::new();
        let mut held = Vec::new();
        for &byte in input {
            held.push(byte);
            let used = h.feed(&held, &mut out);
            held.drain(..used);
        }
        assert_eq!(
            (String::from_utf8(out).unwrap(), h.end(), h.answered),
            whole
        );
    }

    #[test]
    fn what_cannot_be_framed_is_answered_400_and_closed() {
        let bad: [&[u8]; 9] = [
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ];
        for input in bad {
            let (out, end, answered) = fed(true, input);
            let text = String::from_utf8_lossy(input);
            assert!(
                out.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{text}: {out}"
            );
            assert!(out.contains("Connection: close\r\n"), "{text}");
            assert_eq!((end, answered), (Some(End::Bad), 0), "{text}");
        }
        // Repeated equal lengths are one length.
        let (out, end, _) = fed(true, b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nhi");
        assert_eq!((out.as_str(), end), (OK_KEEP, None));
    }

    /// The server on loopback with real sockets, as a client sees it. No clock decides
    /// anything: "the server closed" is an EOF the client read before closing its own side,
    /// "it stayed open" is a second response on the same connection. Each test is bounded
    /// (30 s) only so that a hang fails instead of waiting forever.
    mod on_loopback {
        use super::*;
        use crate::plan::{Plan, Scenario, Target};
        use crate::server::{bind, Server};
        use tokio::io::{AsyncBufReadExt, BufReader};

        /// A client command's server closing as `close` says, on a loopback port.
        fn server(close: &str) -> Server {
            let text = format!("[client]\nexec = \"true\"\n[target]\nserver_close = \"{close}\"\n");
            let scenario: Scenario = toml::from_str(&text).expect("a scenario");
            let plan = Plan::resolve(&scenario).expect("a valid plan");
            let Target::Embedded(cfg) = &plan.target else {
                panic!("embedded server expected");
            };
            let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
            Server::start(&plan, cfg, listener, &[tokio::runtime::Handle::current()]).unwrap()
        }

        type Conn = BufReader<TcpStream>;

        async fn connect(s: &Server) -> Conn {
            BufReader::new(TcpStream::connect(s.addr).await.unwrap())
        }

        async fn send(c: &mut Conn, bytes: &[u8]) {
            c.get_mut().write_all(bytes).await.unwrap();
        }

        /// Reads one response: its head's lines and its body by Content-Length (none after
        /// HEAD).
        async fn response(c: &mut Conn, head_only: bool) -> (Vec<String>, String) {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                c.read_line(&mut line).await.unwrap();
                assert!(
                    line.ends_with("\r\n"),
                    "a head cut short: {lines:?} {line:?}"
                );
                if line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_string());
            }
            let len: usize = lines
                .iter()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("a Content-Length")
                .parse()
                .unwrap();
            let mut body = vec![0u8; if head_only { 0 } else { len }];
            c.read_exact(&mut body).await.unwrap();
            (lines, String::from_utf8(body).unwrap())
        }

        /// Reads to EOF: nothing more may come.
        async fn eof(c: &mut Conn) {
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&rest),
                "",
                "bytes after the last response"
            );
        }

        fn says(head: &[String], header: &str) -> bool {
            head.iter().any(|l| l == header)
        }

        /// Stops the server; its count of connections closed on request.
        async fn stopped(s: Server) -> u64 {
            let stats = s.stats.clone();
            assert_eq!(
                s.stop(Duration::from_secs(5)).await,
                0,
                "connections left open"
            );
            assert_eq!(stats.conn_errors.load(Ordering::Relaxed), 0);
            stats.closed_on_request.load(Ordering::Relaxed)
        }

        async fn bounded(test: impl std::future::Future<Output = ()>) {
            tokio::time::timeout(Duration::from_secs(30), test)
                .await
                .expect("the exchange hung");
        }

        #[tokio::test]
        async fn http_1_0_gets_its_response_then_the_servers_close() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                send(&mut c, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await;
                let (head, body) = response(&mut c, false).await;
                assert_eq!(head[0], "HTTP/1.1 200 OK");
                assert!(says(&head, "Connection: close"), "{head:?}");
                assert!(says(&head, "Content-Length: 3"), "{head:?}");
                assert_eq!(body, "ok\n");
                // EOF while the client has not closed: the server closed first.
                eof(&mut c).await;
                assert_eq!(s.stats.requests.load(Ordering::Relaxed), 1);
                drop(c);
                assert_eq!(stopped(s).await, 1);
            })
            .await;
        }

        #[tokio::test]
        async fn connection_close_on_http_1_1_makes_the_server_close() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                send(
                    &mut c,
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .await;
                let (head, _) = response(&mut c, false).await;
                assert!(says(&head, "Connection: close"), "{head:?}");
                eof(&mut c).await;
                drop(c);
                assert_eq!(stopped(s).await, 1);
            })
            .await;
        }

        #[tokio::test]
        async fn http_1_1_keeps_the_connection_for_the_next_request() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                for _ in 0..2 {
                    send(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
                    let (head, body) = response(&mut c, false).await;
                    assert!(says(&head, "Connection: keep-alive"), "{head:?}");
                    assert_eq!(body, "ok\n");
                }
                // The client closes first; the server follows (after-client).
                c.get_mut().shutdown().await.unwrap();
                eof(&mut c).await;
                assert_eq!(s.stats.requests.load(Ordering::Relaxed), 2);
                assert_eq!(s.stats.accepted.load(Ordering::Relaxed), 1);
                drop(c);
                assert_eq!(stopped(s).await, 0);
            })
            .await;
        }

        #[tokio::test]
        async fn http_1_0_with_keep_alive_stays_open() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                for _ in 0..2 {
                    send(&mut c, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
                    let (head, _) = response(&mut c, false).await;
                    assert!(says(&head, "Connection: keep-alive"), "{head:?}");
                }
                c.get_mut().shutdown().await.unwrap();
                eof(&mut c).await;
                drop(c);
                assert_eq!(stopped(s).await, 0);
            })
            .await;
        }

        #[tokio::test]
        async fn pipelined_requests_in_one_write_are_answered_in_order() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                send(
                    &mut c,
                    b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nPOST /3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /4 HTTP/1.1\r\nConnection: close\r\n\r\n",
                )
                .await;
                for (head_only, connection) in [
                    (false, "keep-alive"),
                    (true, "keep-alive"),
                    (false, "keep-alive"),
                    (false, "close"),
                ] {
                    let (head, body) = response(&mut c, head_only).await;
                    assert!(says(&head, &format!("Connection: {connection}")), "{head:?}");
                    // HEAD: the same Content-Length, and no body (the next response's
                    // status line follows at once, which `response` checks).
                    assert!(says(&head, "Content-Length: 3"), "{head:?}");
                    assert_eq!(body, if head_only { "" } else { "ok\n" });
                }
                eof(&mut c).await;
                assert_eq!(s.stats.requests.load(Ordering::Relaxed), 4);
                drop(c);
                assert_eq!(stopped(s).await, 1);
            })
            .await;
        }

        #[tokio::test]
        async fn a_head_request_has_no_body() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                send(&mut c, b"HEAD / HTTP/1.0\r\n\r\n").await;
                let (head, body) = response(&mut c, true).await;
                assert!(says(&head, "Content-Length: 3"), "{head:?}");
                assert_eq!(body, "");
                // Nothing follows the head: EOF at once.
                eof(&mut c).await;
                drop(c);
                assert_eq!(stopped(s).await, 1);
            })
            .await;
        }

        #[tokio::test]
        async fn a_request_that_cannot_be_framed_gets_400_and_the_close() {
            bounded(async {
                let s = server("after-client");
                let mut c = connect(&s).await;
                send(&mut c, b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n").await;
                let (head, _) = response(&mut c, false).await;
                assert_eq!(head[0], "HTTP/1.1 400 Bad Request");
                eof(&mut c).await;
                drop(c);
                let stats = s.stats.clone();
                assert_eq!(s.stop(Duration::from_secs(5)).await, 0);
                assert_eq!(stats.conn_errors.load(Ordering::Relaxed), 1);
                assert_eq!(stats.closed_on_request.load(Ordering::Relaxed), 0);
            })
            .await;
        }

        #[tokio::test]
        async fn server_close_first_still_closes_after_a_keep_alive_request() {
            bounded(async {
                let s = server("first");
                let mut c = connect(&s).await;
                send(&mut c, b"GET / HTTP/1.1\r\n\r\n").await;
                let (head, _) = response(&mut c, false).await;
                assert!(says(&head, "Connection: close"), "{head:?}");
                eof(&mut c).await;
                drop(c);
                // The plan closed it, not the request.
                assert_eq!(stopped(s).await, 0);
            })
            .await;
        }
    }
}
