//! The embedded server for a client command (`--client-exec`): the user's client speaks raw
//! TCP or HTTP/1.1, and the server tells which from the first bytes (an HTTP method and a
//! space), then answers every request: HTTP with a 200 (keep-alive unless the server closes
//! first), raw TCP with the plan's reply to each read. It closes as the plan says, so the
//! client's own closing decides where TIME_WAIT lands with `after-client`.

use super::{find_head_end, Behaviour};
use crate::plan::ServerClose;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// The Content-Length of a request head (0 when absent or unreadable: GET has no body).
fn content_length(head: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(head).is_err() {
        return 0;
    }
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Serves one connection of a client command, counting each request answered.
pub(super) async fn serve(
    mut stream: TcpStream,
    b: &Behaviour,
    requests: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = 0usize;
    let mut skip = 0usize; // body bytes of the last request still to read past
    let mut http = None;
    let mut client_done = false;
    let after_client = b.close == ServerClose::AfterClient;
    'conn: loop {
        let n = stream.read(&mut buf[pending..]).await?;
        if n == 0 {
            client_done = true;
            break;
        }
        let dropped = skip.min(n);
        skip -= dropped;
        buf.copy_within(pending + dropped..pending + n, pending);
        pending += n - dropped;
        if pending == 0 {
            continue;
        }
        if !*http.get_or_insert_with(|| looks_like_http(&buf[..pending])) {
            pending = 0;
            requests.fetch_add(1, Ordering::Relaxed);
            stream.write_all(&b.reply).await?;
            if !after_client {
                break;
            }
            continue;
        }
        while let Some(end) = find_head_end(&buf[..pending]) {
            let body = content_length(&buf[..end]);
            let here = (pending - end).min(body);
            skip = body - here;
            buf.copy_within(end + here..pending, 0);
            pending -= end + here;
            requests.fetch_add(1, Ordering::Relaxed);
            stream.write_all(&b.http_reply).await?;
            if !after_client {
                break 'conn;
            }
        }
        if pending == buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
    super::close(stream, b.close, client_done, &mut buf).await
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
        assert_eq!(
            content_length(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            12
        );
        assert_eq!(content_length(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    }
}
