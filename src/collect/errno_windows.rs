//! Winsock error names. Raw OS errors on Windows sockets are WSA codes (winerror.h); the
//! table is written in numbers because no dependency of ours exports them as constants.

use super::Phase;

/// WSAEADDRINUSE: "Only one usage of each socket address ... is normally permitted" (Vista+
/// exhaustion, and a port still held in TIME_WAIT).
pub const WSAEADDRINUSE: i32 = 10048;
/// WSAENOBUFS: "No buffer space available": exhaustion on NT to Server 2003 (KB 196271).
pub const WSAENOBUFS: i32 = 10055;

/// The Winsock name of a code that matters to a connection's life; None for the rest.
pub fn name(code: i32) -> Option<&'static str> {
    Some(match code {
        10004 => "WSAEINTR",
        10009 => "WSAEBADF",
        10013 => "WSAEACCES",
        10014 => "WSAEFAULT",
        10022 => "WSAEINVAL",
        10024 => "WSAEMFILE",
        10035 => "WSAEWOULDBLOCK",
        10036 => "WSAEINPROGRESS",
        10037 => "WSAEALREADY",
        10047 => "WSAEAFNOSUPPORT",
        WSAEADDRINUSE => "WSAEADDRINUSE",
        10049 => "WSAEADDRNOTAVAIL",
        10050 => "WSAENETDOWN",
        10051 => "WSAENETUNREACH",
        10052 => "WSAENETRESET",
        10053 => "WSAECONNABORTED",
        10054 => "WSAECONNRESET",
        WSAENOBUFS => "WSAENOBUFS",
        10056 => "WSAEISCONN",
        10057 => "WSAENOTCONN",
        10058 => "WSAESHUTDOWN",
        10060 => "WSAETIMEDOUT",
        10061 => "WSAECONNREFUSED",
        10065 => "WSAEHOSTUNREACH",
        _ => return None,
    })
}

/// "No local port left": WSAEADDRINUSE at bind or connect, WSAENOBUFS before the exchange.
/// WSAEADDRNOTAVAIL (10049) means a bad remote address on Windows and is not counted.
pub fn is_exhaustion(code: i32, phase: Phase) -> bool {
    match code {
        WSAEADDRINUSE => matches!(phase, Phase::Bind | Phase::Connect),
        WSAENOBUFS => phase != Phase::Exchange,
        _ => false,
    }
}
