//! `portlab watch --listen ADDR:PORT`: the Prometheus exporter. The sampler runs on the
//! watch thread (inside the namespace it watches) every --interval and leaves its latest
//! rendered exposition here; a small HTTP server on a thread of its own (in the namespace
//! portlab started in, where the listening socket was bound) answers each scrape with that
//! text, so a scrape never waits for a socket dump, however slow.
//!
//! The server is written here on tokio (already a dependency) and httparse (already one
//! too, for the embedded target) instead of an HTTP server crate: it serves one path, one
//! response per connection, and its limits are the point: a request of at most
//! [`MAX_REQUEST`] bytes read within [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] at
//! once (more are closed at once), the response written within [`RESPONSE_TIMEOUT`], so
//! nothing a client sends can make it wait forever, grow its memory, or panic it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::render::{self, SamplerStats};
use super::{evaluate, History, Source, WatchArgs, WatchError};

/// The largest request read (request line and headers; a scrape sends a few hundred
/// bytes): beyond it, 431 and close.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A client has this long to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// And this long to read the response.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 32;
/// Content-Type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The latest rendered sample, shared by the sampler (writer) and the server (readers);
/// None before the first sample.
#[derive(Clone, Default)]
pub struct Latest(Arc<Mutex<Option<Arc<String>>>>);

impl Latest {
    pub(super) fn set(&self, text: String) {
        // A poisoned lock only means another thread panicked mid-assignment of an Arc:
        // the value is still whole.
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(text));
    }

    /// The latest exposition, None before the first sample.
    pub fn get(&self) -> Option<Arc<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Binds `addr` (before any namespace is entered: the socket stays in portlab's own
/// namespace) and starts the server on a thread of its own. Returns the shared sample
/// and the address bound (the port chosen when `addr` has port 0). Exit 2 (a flag error)
/// when the address cannot be bound.
pub fn start(addr: SocketAddr) -> Result<(Latest, SocketAddr), WatchError> {
    let flag_error = |reason: String| WatchError::Flag {
        flag: "--listen",
        given: addr.to_string(),
        reason,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        flag_error(match e.kind() {
            io::ErrorKind::AddrInUse => {
                "the address is already in use; pick another port, or 0 for a free one".into()
            }
            io::ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this host; give one of its addresses, 127.0.0.1, or 0.0.0.0 for all",
                addr.ip()
            ),
            io::ErrorKind::PermissionDenied => format!(
                "binding port {} needs CAP_NET_BIND_SERVICE; pick a port above 1023",
                addr.port()
            ),
            _ => format!("cannot listen there: {e}"),
        })
    })?;
    let bound = listener.local_addr().map_err(|e| WatchError::Io {
        what: "reading the exporter's address".into(),
        source: e,
    })?;
    listener.set_nonblocking(true).map_err(|e| WatchError::Io {
        what: "setting up the exporter's socket".into(),
        source: e,
    })?;
    let latest = Latest::default();
    let shared = latest.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| WatchError::Io {
            what: "starting the exporter's runtime".into(),
            source: e,
        })?;
    std::thread::Builder::new()
        .name("portlab-exporter".into())
        .spawn(move || runtime.block_on(serve(listener, shared)))
        .map_err(|e| WatchError::Io {
            what: "starting the exporter's thread".into(),
            source: e,
        })?;
    Ok((latest, bound))
}

/// Accepts connections forever, each served on a task of its own within the limits.
async fn serve(listener: std::net::TcpListener, latest: Latest) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("portlab watch: the exporter cannot serve: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors or the like: try again a little later rather
                // than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let _ = handle(stream, &latest).await;
            drop(slot);
        });
    }
}

/// Reads one request (bounded in size and time), answers it, closes.
async fn handle(mut stream: tokio::net::TcpStream, latest: &Latest) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let reply =
        match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream, &mut buf)).await {
            Ok(Ok(Some(reply))) => reply,
            // The client closed, failed, or was too slow: nothing to answer.
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return Ok(()),
        };
    let reply = reply.respond(latest);
    tokio::time::timeout(RESPONSE_TIMEOUT, async {
        stream.write_all(reply.head.as_bytes()).await?;
        if let Some(body) = &reply.body {
            stream.write_all(body.as_bytes()).await?;
        }
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()))
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// GET /metrics (HEAD: the same without the body).
    Metrics {
        /// HEAD: headers only.
        head: bool,
    },
    /// Any other path.
    NotFound,
    /// Another method than GET or HEAD.
    MethodNotAllowed,
    /// Not HTTP.
    BadRequest,
    /// More than [`MAX_REQUEST`] bytes of headers.
    TooLarge,
}

/// Reads until the request's headers are complete; None when the client closed first.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
) -> io::Result<Option<Request>> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Ok(Some(Request::TooLarge));
        }
        let k = stream.read(&mut buf[n..]).await?;
        if k == 0 {
            return Ok(None);
        }
        n += k;
        if let Some(r) = parse(&buf[..n]) {
            return Ok(Some(r));
        }
    }
}

/// What `bytes` ask for, or None while the headers are incomplete.
pub fn parse(bytes: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            Some(match req.method.unwrap_or("") {
                "GET" | "HEAD" if path != "/metrics" => Request::NotFound,
                "GET" => Request::Metrics { head: false },
                "HEAD" => Request::Metrics { head: true },
                _ => Request::MethodNotAllowed,
            })
        }
        Err(httparse::Error::TooManyHeaders) => Some(Request::TooLarge),
        Err(_) => Some(Request::BadRequest),
    }
}

/// A response: its status line and headers, and its body.
pub struct Reply {
    /// Status line and headers, ending with the blank line.
    pub head: String,
    /// The body (none for HEAD).
    pub body: Option<Arc<String>>,
}

impl Request {
    /// The response, with the latest sample for /metrics (503 before the first).
    pub fn respond(self, latest: &Latest) -> Reply {
        let (status, content_type, body, extra) = match self {
            Request::Metrics { .. } => match latest.get() {
                Some(text) => ("200 OK", CONTENT_TYPE, text, ""),
                None => (
                    "503 Service Unavailable",
                    "text/plain; charset=utf-8",
                    Arc::new("no sample yet; try again in one --interval\n".to_string()),
                    "Retry-After: 1\r\n",
                ),
            },
            Request::NotFound => (
                "404 Not Found",
                "text/plain; charset=utf-8",
                Arc::new("portlab watch serves /metrics only\n".to_string()),
                "",
            ),
            Request::MethodNotAllowed => (
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                Arc::new("GET or HEAD /metrics\n".to_string()),
                "Allow: GET, HEAD\r\n",
            ),
            Request::BadRequest => (
                "400 Bad Request",
                "text/plain; charset=utf-8",
                Arc::new("not an HTTP request\n".to_string()),
                "",
            ),
            Request::TooLarge => (
                "431 Request Header Fields Too Large",
                "text/plain; charset=utf-8",
                Arc::new(format!("at most {MAX_REQUEST} bytes of request headers\n")),
                "",
            ),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let body = (self != Request::Metrics { head: true }).then_some(body);
        Reply { head, body }
    }
}

/// Samples `source` every --interval and leaves each sample's exposition in `latest`,
/// until --count samples (forever without it). A sample that fails is counted
/// (`portlab_watch_sample_errors_total`) and reported on stderr, and the last good one is
/// served meanwhile; the first failing ends the exporter (exit 2: nothing can be read).
/// Returns the exit code of the last sample (0 ok, 1 warning or exhausted).
pub fn export_loop(
    source: &mut dyn Source,
    args: &WatchArgs,
    namespace: &str,
    latest: &Latest,
) -> anyhow::Result<u8> {
    let mut history = History::default();
    let mut stats = SamplerStats::default();
    let mut code = 0;
    let start = Instant::now();
    let mut taken = 0u64;
    loop {
        let began = Instant::now();
        match source.snapshot() {
            Ok(snap) => {
                let report = evaluate(&snap, &history, args.warn_within.0.as_secs_f64(), namespace);
                code = report.exit_code();
                history.record(&snap);
                stats.samples += 1;
                stats.duration_s = began.elapsed().as_secs_f64();
                let text =
                    render::prometheus(&report, usize::from(args.max_destinations), Some(&stats));
                latest.set(text);
            }
            Err(e) if stats.samples == 0 => return Err(e.into()),
            Err(e) => {
                stats.errors += 1;
                eprintln!("portlab watch: sample failed (the previous one is served): {e}");
            }
        }
        taken += 1;
        if args.count.is_some_and(|n| taken >= n) {
            return Ok(code);
        }
        let next = start + args.interval.0.mul_f64(taken as f64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let cases: [(&[u8], Option<Request>); 9] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Some(Request::Metrics { head: false }),
            ),
            (
                b"GET /metrics?name[]=a HTTP/1.1\r\n\r\n",
                Some(Request::Metrics { head: false }),
            ),
            (
                b"HEAD /metrics HTTP/1.0\r\n\r\n",
                Some(Request::Metrics { head: true }),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Some(Request::NotFound)),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Some(Request::NotFound)),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                Some(Request::MethodNotAllowed),
            ),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Some(Request::BadRequest),
            ),
            // Headers not finished yet: read more.
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", None),
            (b"GET /met", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
        let many = format!("GET /metrics HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(65));
        assert_eq!(parse(many.as_bytes()), Some(Request::TooLarge));
    }

    #[test]
    fn metrics_is_503_before_the_first_sample_then_the_sample() {
        let latest = Latest::default();
        let r = Request::Metrics { head: false }.respond(&latest);
        assert!(r.head.starts_with("HTTP/1.1 503 "), "{}", r.head);
        assert!(r.head.contains("Retry-After: 1\r\n"));
        let body = "# HELP a b\n# TYPE a gauge\na 1\n";
        latest.set(body.into());
        let length = format!("Content-Length: {}\r\n", body.len());
        let r = Request::Metrics { head: false }.respond(&latest);
        assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
        assert!(r
            .head
            .contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(r.head.contains(&length), "{}", r.head);
        assert_eq!(r.body.as_deref().map(String::as_str), Some(body));
        let h = Request::Metrics { head: true }.respond(&latest);
        assert!(h.head.contains(&length) && h.body.is_none());
        let n = Request::MethodNotAllowed.respond(&latest);
        assert!(n.head.starts_with("HTTP/1.1 405 ") && n.head.contains("Allow: GET, HEAD\r\n"));
    }
}
