//! Errors classified by raw OS error number, never by message text.
//!
//! An [`ErrCode`] is the raw `errno` / WSA code (>= 0) or one of portlab's own negative codes
//! for failures that have no OS error (a timeout portlab enforced, a reply cut short). Names
//! come from the OS-specific tables in `errno_unix.rs` and `errno_windows.rs`.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// A raw OS error, or one of portlab's own failures (negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrCode(pub i32);

impl ErrCode {
    /// portlab's connect or exchange timeout fired (the kernel had not given up yet).
    pub const TIMEOUT: ErrCode = ErrCode(-1);
    /// The peer closed before the expected reply arrived.
    pub const EARLY_EOF: ErrCode = ErrCode(-2);
    /// The reply was not valid HTTP/1.1, or used a framing portlab does not read.
    pub const BAD_RESPONSE: ErrCode = ErrCode(-3);
    /// An I/O error that carried no OS error number.
    pub const OTHER: ErrCode = ErrCode(-4);

    /// Classifies an `io::Error` by its raw OS error; never by its message.
    pub fn of(e: &io::Error) -> ErrCode {
        match e.raw_os_error() {
            Some(code) => ErrCode(code),
            None => match e.kind() {
                io::ErrorKind::TimedOut => ErrCode::TIMEOUT,
                io::ErrorKind::UnexpectedEof => ErrCode::EARLY_EOF,
                io::ErrorKind::InvalidData => ErrCode::BAD_RESPONSE,
                _ => ErrCode::OTHER,
            },
        }
    }

    /// The OS's own name (EADDRNOTAVAIL, WSAENOBUFS, ...), or portlab's for its own codes.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            ErrCode::TIMEOUT => Cow::Borrowed("TIMEOUT"),
            ErrCode::EARLY_EOF => Cow::Borrowed("EARLY_EOF"),
            ErrCode::BAD_RESPONSE => Cow::Borrowed("BAD_RESPONSE"),
            ErrCode::OTHER => Cow::Borrowed("OTHER"),
            ErrCode(code) => match os::name(code) {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(format!("OS_ERROR_{code}")),
            },
        }
    }

    /// True when the process (EMFILE, WSAEMFILE) or the system (ENFILE) has no descriptor
    /// left: a limit of this machine, not of its ports. A worker backs off on these.
    pub fn is_descriptor_limit(self) -> bool {
        is_descriptor_limit(&self.name())
    }

    /// True when this error, in this phase, means "no local port left".
    ///
    /// Linux/macOS: EADDRNOTAVAIL (connect() found no free port toward this destination),
    /// EADDRINUSE at bind or connect (bind(0) or an explicit port still held), ENOBUFS.
    /// Windows: WSAEADDRINUSE (10048, Vista and later) and WSAENOBUFS (10055, NT to 2003).
    /// WSAEADDRNOTAVAIL (10049) is a bad remote address on Windows, not exhaustion.
    pub fn is_exhaustion(self, phase: Phase) -> bool {
        os::is_exhaustion(self.0, phase)
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// [`ErrCode::is_descriptor_limit`] by name, as summary.json's `errors` keys them.
pub fn is_descriptor_limit(name: &str) -> bool {
    matches!(name, "EMFILE" | "ENFILE" | "WSAEMFILE")
}

/// Where in a connection's life an error came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// socket() or setsockopt(): EMFILE, ENFILE, ENOBUFS.
    Socket,
    /// bind() before connect (any-port, no-port, range, source addresses).
    Bind,
    /// connect(), including portlab's connect timeout.
    Connect,
    /// Sending the request or reading the reply, up to the close.
    Exchange,
}

impl Phase {
    /// Lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Socket => "socket",
            Phase::Bind => "bind",
            Phase::Connect => "connect",
            Phase::Exchange => "exchange",
        }
    }
}

/// An error and the phase it came in: what the collector counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub code: ErrCode,
    /// When in the connection's life.
    pub phase: Phase,
}

impl Failure {
    /// Classifies `e` as having happened in `phase`.
    pub fn new(phase: Phase, e: &io::Error) -> Failure {
        Failure {
            code: ErrCode::of(e),
            phase,
        }
    }
}

#[cfg(unix)]
#[path = "errno_unix.rs"]
mod os;
#[cfg(windows)]
#[path = "errno_windows.rs"]
mod os;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_codes_have_names() {
        assert_eq!(ErrCode::TIMEOUT.name(), "TIMEOUT");
        assert_eq!(ErrCode(99_999).name(), "OS_ERROR_99999");
    }

    #[test]
    fn io_errors_without_os_code() {
        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        assert_eq!(ErrCode::of(&e), ErrCode::TIMEOUT);
        let e = io::Error::other("Cannot assign requested address");
        assert_eq!(ErrCode::of(&e), ErrCode::OTHER, "messages are never parsed");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_names_and_exhaustion() {
        // (raw errno, phase, name, means "no port left")
        let cases = [
            (99, Phase::Connect, "EADDRNOTAVAIL", true), // connect() found no port
            (99, Phase::Bind, "EADDRNOTAVAIL", true),    // bind to a source address with no port
            (98, Phase::Bind, "EADDRINUSE", true),       // bind(0) / explicit port held
            (98, Phase::Connect, "EADDRINUSE", true),    // 4-tuple still in TIME_WAIT
            (98, Phase::Exchange, "EADDRINUSE", false),  // cannot happen mid-exchange: not counted
            (105, Phase::Socket, "ENOBUFS", true),       // kernel out of buffers for sockets
            (111, Phase::Connect, "ECONNREFUSED", false), // nobody listening
            (104, Phase::Exchange, "ECONNRESET", false), // peer reset
            (110, Phase::Connect, "ETIMEDOUT", false),   // kernel gave up on SYNs
            (24, Phase::Socket, "EMFILE", false),        // descriptor limit, not ports
            (23, Phase::Socket, "ENFILE", false),
        ];
        for (errno, phase, name, exhaustion) in cases {
            let e = io::Error::from_raw_os_error(errno);
            let code = ErrCode::of(&e);
            assert_eq!(code.name(), name, "errno {errno}");
            assert_eq!(code.is_exhaustion(phase), exhaustion, "{name} in {phase:?}");
        }
    }
}
