//! errno names on Unix, from libc's constants (their values differ between Linux and macOS,
//! so the table is written in names, not numbers).

use super::Phase;

/// The C name of an errno that matters to a connection's life; None for the rest.
pub fn name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EPIPE => "EPIPE",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETDOWN => "ENETDOWN",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::EAGAIN => "EAGAIN",
        libc::EINTR => "EINTR",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTO => "EPROTO",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::EBADF => "EBADF",
        _ => return None,
    })
}

/// "No local port left": EADDRNOTAVAIL anywhere before the exchange, EADDRINUSE at bind or
/// connect, ENOBUFS.
pub fn is_exhaustion(code: i32, phase: Phase) -> bool {
    match code {
        libc::EADDRNOTAVAIL => phase != Phase::Exchange,
        libc::EADDRINUSE => matches!(phase, Phase::Bind | Phase::Connect),
        libc::ENOBUFS => phase != Phase::Exchange,
        _ => false,
    }
}
