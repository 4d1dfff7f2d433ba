//! The failure lines real clients print when they run out of local ports, mapped to the
//! error names portlab already uses (summary.errors, exhaustion.kind).
//!
//! A client's own process is the only witness of a connect() that failed for want of a
//! port: no SYN is sent, so no kernel counter moves. Its output is therefore read line by
//! line and matched against this table (most specific first), then against the user's own
//! `client.failure_pattern`.

use regex::Regex;

/// One recognised line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    /// The error name, as portlab names OS errors (EADDRNOTAVAIL, WSAEADDRINUSE, ...), or
    /// `CLIENT_FAILURE` for the user's own pattern.
    pub kind: String,
    /// Which signature matched ("java", "python", "go", ..., "failure_pattern").
    pub signature: &'static str,
    /// False when the line says a connect failed but not why (curl's exit 7): it counts as
    /// the ports running out only when the samples show them full at that time.
    pub definite: bool,
}

/// (signature, pattern, kind, definite). Order matters: the first match wins.
const TABLE: &[(&str, &str, &str, bool)] = &[
    // Java on Linux: BindException (NIO socket impl, 13+) or NoRouteToHostException (the
    // old PlainSocketImpl); on Windows "Address already in use: connect" (10048) and
    // "No buffer space available (maximum connections reached?)" (10055).
    (
        "java",
        r"java\.net\.(BindException|NoRouteToHostException|ConnectException|SocketException)\b.*Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "java",
        r"java\.net\.(BindException|SocketException)\b.*Address already in use: connect",
        "WSAEADDRINUSE",
        true,
    ),
    (
        "java",
        r"java\.net\.(BindException|SocketException)\b.*Address already in use",
        "EADDRINUSE",
        true,
    ),
    (
        "java",
        r"java\.net\.SocketException\b.*No buffer space available",
        "WSAENOBUFS",
        true,
    ),
    // Python: OSError / ConnectionError / URLError / requests' NewConnectionError quote it.
    ("python", r"\[Errno 99\]", "EADDRNOTAVAIL", true),
    ("python", r"\[Errno 98\]", "EADDRINUSE", true),
    (
        "python",
        r"\[(WinError|Errno) 10048\]",
        "WSAEADDRINUSE",
        true,
    ),
    ("python", r"\[(WinError|Errno) 10055\]", "WSAENOBUFS", true),
    (
        "python",
        r"\[(WinError|Errno) 10049\]",
        "WSAEADDRNOTAVAIL",
        true,
    ),
    // Go: "dial tcp 127.0.0.1:80: connect: cannot assign requested address".
    (
        "go",
        r"connect: cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    ("go", r"bind: address already in use", "EADDRINUSE", true),
    (
        "go",
        r"connectex: Only one usage of each socket address",
        "WSAEADDRINUSE",
        true,
    ),
    // Node: "Error: connect EADDRNOTAVAIL 127.0.0.1:8080 - Local (0.0.0.0:0)".
    ("node", r"\bEADDRNOTAVAIL\b", "EADDRNOTAVAIL", true),
    ("node", r"connect EADDRINUSE\b", "EADDRINUSE", true),
    // .NET: "System.Net.Sockets.SocketException (10048): Only one usage of each socket
    // address (protocol/network address/port) is normally permitted".
    (
        "dotnet",
        r"SocketException \(10048\)|Only one usage of each socket address",
        "WSAEADDRINUSE",
        true,
    ),
    ("dotnet", r"SocketException \(10055\)", "WSAENOBUFS", true),
    (
        "dotnet",
        r"SocketException \(10049\)",
        "WSAEADDRNOTAVAIL",
        true,
    ),
    // libpq (psql, pgbench, every driver built on it): "connection to server at
    // \"127.0.0.1\", port 5432 failed: Cannot assign requested address" (PostgreSQL 14+)
    // or "could not connect to server: Cannot assign requested address" (older).
    (
        "libpq",
        r"(could not connect to server|connection to server at .*failed): *Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    // Plain strerror text (C, Rust, Ruby, .NET on Linux, curl -v, ...).
    (
        "strerror",
        r"(?i)cannot assign requested address|can't assign requested address|address not available",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "strerror",
        r"(?i)address already in use",
        "EADDRINUSE",
        true,
    ),
    (
        "strerror",
        r"(?i)no buffer space available",
        "ENOBUFS",
        true,
    ),
    // curl's exit 7 says only "Failed to connect ... Couldn't connect to server": refused
    // and no-port look alike, so the samples decide.
    ("curl", r"curl: \(7\)", "EADDRNOTAVAIL", false),
];

/// The compiled table plus the user's own pattern.
#[derive(Debug, Clone)]
pub struct Signatures {
    table: Vec<(&'static str, Regex, &'static str, bool)>,
    user: Option<Regex>,
}

/// The kind given to a line matched by `client.failure_pattern`.
pub const USER_KIND: &str = "CLIENT_FAILURE";

impl Signatures {
    /// The built-in table, and `user` (already validated) after it.
    pub fn new(user: Option<Regex>) -> Signatures {
        let table = TABLE
            .iter()
            .map(|&(sig, pat, kind, definite)| {
                // The table is fixed and covered by the tests below.
                let re = Regex::new(pat).expect("built-in signature compiles");
                (sig, re, kind, definite)
            })
            .collect();
        Signatures { table, user }
    }

    /// The error a line reports, when it reports one.
    pub fn recognise(&self, line: &str) -> Option<Recognised> {
        let builtin = self
            .table
            .iter()
            .find(|(_, re, _, _)| re.is_match(line))
            .map(|&(signature, _, kind, definite)| Recognised {
                kind: kind.to_string(),
                signature,
                definite,
            });
        builtin.or_else(|| {
            self.user
                .as_ref()
                .filter(|re| re.is_match(line))
                .map(|_| Recognised {
                    kind: USER_KIND.to_string(),
                    signature: "failure_pattern",
                    definite: true,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real lines, as the clients print them (the Java, Python, curl and pgbench ones were
    /// captured on this machine; the Windows ones are the runtimes' documented texts).
    const LINES: &[(&str, Option<(&str, &str)>)] = &[
        ("Exception in thread \"main\" java.net.BindException: Cannot assign requested address", Some(("java", "EADDRNOTAVAIL"))),
        ("java.net.NoRouteToHostException: Cannot assign requested address (Address not available)", Some(("java", "EADDRNOTAVAIL"))),
        ("java.net.BindException: Address already in use: connect", Some(("java", "WSAEADDRINUSE"))),
        ("java.net.SocketException: No buffer space available (maximum connections reached?): connect", Some(("java", "WSAENOBUFS"))),
        ("OSError: [Errno 99] Cannot assign requested address", Some(("python", "EADDRNOTAVAIL"))),
        ("urllib.error.URLError: <urlopen error [Errno 99] Cannot assign requested address>", Some(("python", "EADDRNOTAVAIL"))),
        ("requests.exceptions.ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=80): Max retries exceeded with url: / (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 99] Cannot assign requested address'))", Some(("python", "EADDRNOTAVAIL"))),
        ("OSError: [Errno 98] Address already in use", Some(("python", "EADDRINUSE"))),
        ("OSError: [WinError 10048] Only one usage of each socket address (protocol/network address/port) is normally permitted", Some(("python", "WSAEADDRINUSE"))),
        ("dial tcp 127.0.0.1:39999: connect: cannot assign requested address", Some(("go", "EADDRNOTAVAIL"))),
        ("dial tcp 10.0.0.5:443: connectex: Only one usage of each socket address (protocol/network address/port) is normally permitted.", Some(("go", "WSAEADDRINUSE"))),
        ("Error: connect EADDRNOTAVAIL 127.0.0.1:39999 - Local (0.0.0.0:0)", Some(("node", "EADDRNOTAVAIL"))),
        ("System.Net.Sockets.SocketException (10048): Only one usage of each socket address (protocol/network address/port) is normally permitted.", Some(("dotnet", "WSAEADDRINUSE"))),
        ("System.Net.Sockets.SocketException (10055): An operation on a socket could not be performed because the system lacked sufficient buffer space or because a queue was full.", Some(("dotnet", "WSAENOBUFS"))),
        ("pgbench: error: connection to server at \"127.0.0.1\", port 5432 failed: Cannot assign requested address", Some(("libpq", "EADDRNOTAVAIL"))),
        ("psql: could not connect to server: Cannot assign requested address", Some(("libpq", "EADDRNOTAVAIL"))),
        ("connect: Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL"))),
        ("*   Trying 127.0.0.1:39999...\n* Immediate connect fail for 127.0.0.1: Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL"))),
        ("curl: (7) Failed to connect to 127.0.0.1 port 39999 after 0 ms: Couldn't connect to server", Some(("curl", "EADDRNOTAVAIL"))),
        ("request 120 ok", None),
        ("HTTP/1.1 200 OK", None),
        ("pgbench: transaction type: <builtin: TPC-B (sort of)>", None),
    ];

    #[test]
    fn every_real_line_maps_to_its_error() {
        let s = Signatures::new(None);
        for (line, want) in LINES {
            let got = s.recognise(line);
            assert_eq!(
                got.as_ref().map(|r| (r.signature, r.kind.as_str())),
                *want,
                "{line}"
            );
        }
    }

    #[test]
    fn only_curls_exit_7_is_indefinite() {
        let s = Signatures::new(None);
        let curl = s.recognise("curl: (7) Failed to connect").unwrap();
        assert!(!curl.definite);
        assert!(s.recognise("OSError: [Errno 99] x").unwrap().definite);
    }

    #[test]
    fn the_users_pattern_comes_after_the_table() {
        let s = Signatures::new(Some(Regex::new("E_NOPORT|out of sockets").unwrap()));
        let r = s.recognise("client: E_NOPORT after 812 requests").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.signature),
            (USER_KIND, "failure_pattern")
        );
        assert_eq!(
            s.recognise("OSError: [Errno 99] out of sockets")
                .unwrap()
                .kind,
            "EADDRNOTAVAIL",
            "a known signature keeps its own name"
        );
    }
}
