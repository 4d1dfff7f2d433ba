//! The failure lines real clients print when they run out of local ports, mapped to the
//! error names portlab already uses (summary.errors, exhaustion.kind).
//!
//! A client's own process is the only witness of a connect() that failed for want of a
//! port: no SYN is sent, so no kernel counter moves. Its output is therefore read line by
//! line and matched against this table (most specific first), then against the user's own
//! `client.failure_pattern`.
//!
//! Two things make a line more or less than one failure, and [`LineReader`] handles both:
//!
//! - a summary that says how many failures it stands for (hey's `[300] Get ...`, wrk's
//!   `Socket errors: connect 300, ...`, ApacheBench's `Test aborted after 10 failures`, a
//!   program's own tally `300 x [Errno 99] ...`) is
//!   that many; such a line is [`Recognised::late`] when it is printed at the end of the run,
//!   not when the failures happened;
//! - one exception printed over several lines (Java's `Caused by:`, Python's chained
//!   tracebacks, Ruby's cause after the backtrace, Node's error properties and `[cause]:`,
//!   .NET's ` ---> ` inner exception) is one failure, however many of its lines name the
//!   error.
//!
//! The texts in the tests were captured from the runtimes themselves, on this machine, with
//! every local port taken (tests/fixtures/client-output/, and
//! `every_installed_runtime_is_named_from_its_own_output`, which runs them again).

use regex::Regex;

/// One recognised failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    /// The error name, as portlab names OS errors (EADDRNOTAVAIL, WSAEADDRINUSE, ...), or
    /// `CLIENT_FAILURE` for the user's own pattern.
    pub kind: String,
    /// Which signature matched: the runtime or tool that printed it ("java", "python",
    /// "ruby", "go", "hey", ..., "failure_pattern").
    pub signature: &'static str,
    /// False when the line says a connect failed but not why (curl's exit 7, wrk's connect
    /// errors): it counts as the ports running out only when the samples show them full at
    /// that time.
    pub definite: bool,
    /// How many failures the line stands for, at least 1: a summary's own count
    /// (`[300] Get ...` is 300).
    pub count: u64,
    /// True when the line is a summary printed after the fact (hey's error distribution,
    /// wrk's socket errors): its arrival time is when the client reported, not when it
    /// failed, so it must not be taken as the time of the first failure.
    pub late: bool,
}

/// (signature, pattern, kind, definite). Order matters: the first match wins, so each
/// runtime's own shape comes before the bare errno name and the plain strerror text that
/// many runtimes share.
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
    // Python: OSError / ConnectionError / URLError / requests' NewConnectionError quote it;
    // aiohttp's ClientConnectorError says "Cannot connect to host H:P ssl:default [...]".
    // An exception's repr (asyncio code that prints `{e!r}`): `OSError(99, 'Cannot assign
    // requested address')`.
    (
        "python",
        r"\[Errno 99\]|\b\w*(Error|error)\(99, '",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "python",
        r"\[Errno 98\]|\b\w*(Error|error)\(98, '",
        "EADDRINUSE",
        true,
    ),
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
    (
        "python",
        r"Cannot connect to host \S+ ssl:\S+ \[Cannot assign requested address\]",
        "EADDRNOTAVAIL",
        true,
    ),
    // Ruby: `x.rb:3:in 'initialize': Cannot assign requested address - connect(2) for
    // "127.0.0.1" port 8080 (Errno::EADDRNOTAVAIL)`.
    ("ruby", r"\bErrno::EADDRNOTAVAIL\b", "EADDRNOTAVAIL", true),
    ("ruby", r"\bErrno::EADDRINUSE\b", "EADDRINUSE", true),
    // PHP's warnings ("PHP Warning:  fsockopen(): Unable to connect to 127.0.0.1:8080
    // (Cannot assign requested address) in ..." on stderr, "Warning: ..." on stdout with
    // display_errors).
    (
        "php",
        r"^(PHP )?(Warning|Fatal error|Notice): .*Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "php",
        r"^(PHP )?(Warning|Fatal error|Notice): .*Address already in use",
        "EADDRINUSE",
        true,
    ),
    // Perl: IO::Socket::INET's $@, HTTP::Tiny's 599 content, and die's " at FILE line N.".
    (
        "perl",
        r"IO::Socket::INET6?: connect: Cannot assign requested address|Could not connect to '[^']*': Cannot assign requested address|Cannot assign requested address at .+ line \d+\.$",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "perl",
        r"IO::Socket::INET6?: connect: Address already in use|Address already in use at .+ line \d+\.$",
        "EADDRINUSE",
        true,
    ),
    // Go: "dial tcp 127.0.0.1:80: connect: cannot assign requested address" (its errno
    // texts are lower case; k6 and other Go tools quote them).
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
    // Rust std: Debug `Os { code: 99, kind: AddrNotAvailable, message: "..." }` and Display
    // "Cannot assign requested address (os error 99)"; Windows codes first (their kind is
    // AddrInUse too).
    (
        "rust",
        r"\bcode: 10048, kind:|\(os error 10048\)",
        "WSAEADDRINUSE",
        true,
    ),
    (
        "rust",
        r"\bcode: 10049, kind:|\(os error 10049\)",
        "WSAEADDRNOTAVAIL",
        true,
    ),
    (
        "rust",
        r"\bcode: 10055, kind:|\(os error 10055\)",
        "WSAENOBUFS",
        true,
    ),
    (
        "rust",
        r"\bkind: AddrNotAvailable\b|\(os error 99\)",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "rust",
        r"\bkind: AddrInUse\b|\(os error 98\)",
        "EADDRINUSE",
        true,
    ),
    // Elixir's atoms (`{:error, :eaddrnotavail}`), then Erlang's (`{error,eaddrnotavail}`).
    ("elixir", r":eaddrnotavail\b", "EADDRNOTAVAIL", true),
    ("elixir", r":eaddrinuse\b", "EADDRINUSE", true),
    ("erlang", r"\beaddrnotavail\b", "EADDRNOTAVAIL", true),
    ("erlang", r"\beaddrinuse\b", "EADDRINUSE", true),
    // Node: "Error: connect EADDRNOTAVAIL 127.0.0.1:8080 - Local (0.0.0.0:0)" and the
    // error's `code: 'EADDRNOTAVAIL'` property below it.
    (
        "node",
        r"\bconnect EADDRNOTAVAIL\b|code: 'EADDRNOTAVAIL'",
        "EADDRNOTAVAIL",
        true,
    ),
    (
        "node",
        r"\bconnect EADDRINUSE\b|code: 'EADDRINUSE'",
        "EADDRINUSE",
        true,
    ),
    // .NET: "System.Net.Sockets.SocketException (10048): Only one usage of each socket
    // address (protocol/network address/port) is normally permitted"; on Linux the errno
    // in parentheses and the strerror text (documented forms; no .NET runtime here).
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
    (
        "dotnet",
        r"SocketException \(99\)|HttpRequestException: Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    ("dotnet", r"SocketException \(98\)", "EADDRINUSE", true),
    // libpq (psql, pgbench, every driver built on it): "connection to server at
    // \"127.0.0.1\", port 5432 failed: Cannot assign requested address" (PostgreSQL 14+)
    // or "could not connect to server: Cannot assign requested address" (older).
    (
        "libpq",
        r"(could not connect to server|connection to server at .*failed): *Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    // ApacheBench stops at its first connect error of this kind:
    // "apr_socket_connect(): Cannot assign requested address (99)".
    (
        "ab",
        r"^apr_socket_connect\(\): Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    // wrk when no connection can be opened at all: "unable to connect to 127.0.0.1:8080
    // Cannot assign requested address".
    (
        "wrk",
        r"^unable to connect to \S+ Cannot assign requested address",
        "EADDRNOTAVAIL",
        true,
    ),
    // The bare errno name, from any runtime that prints it.
    ("errno", r"\bEADDRNOTAVAIL\b", "EADDRNOTAVAIL", true),
    ("errno", r"\bEADDRINUSE\b", "EADDRINUSE", true),
    // Plain strerror text (C, .NET on Linux, curl -v, ...).
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

/// hey's error distribution, printed when it ends: `  [300]\tGet "http://...": dial tcp
/// ...: connect: cannot assign requested address` (two spaces, the count in brackets, a
/// tab, the Go error). The error is recognised by the table; the count is hey's.
const HEY_SUMMARY: &str = r"^  \[(\d+)\]\t(.+)$";

/// A tally a program prints of its own errors, typically at its end: the count first, then
/// `x`, `×` or `times`, then the error (`  300 x [Errno 99] Cannot assign requested
/// address`, `12 times: connect EADDRNOTAVAIL ...`). The error is recognised by the table;
/// the count is the program's.
const TALLY: &str = r"^\s*(\d+)\s*(?:x|×|times)\s*:?\s+(.+)$";

/// wrk's summary: `  Socket errors: connect 300, read 0, write 0, timeout 0`. wrk does not
/// say why a connect failed (refused and no port look alike), so it is not definite.
const WRK_SUMMARY: &str = r"^\s*Socket errors: connect (\d+), read \d+, write \d+, timeout \d+";

/// The compiled table plus the user's own pattern.
#[derive(Debug, Clone)]
pub struct Signatures {
    table: Vec<(&'static str, Regex, &'static str, bool)>,
    hey: Regex,
    tally: Regex,
    wrk: Regex,
    user: Option<Regex>,
}

/// The kind given to a line matched by `client.failure_pattern`.
pub const USER_KIND: &str = "CLIENT_FAILURE";

/// A built-in pattern; the patterns are fixed and covered by the tests below.
fn builtin(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in signature compiles")
}

impl Signatures {
    /// The built-in table, and `user` (already validated) after it.
    pub fn new(user: Option<Regex>) -> Signatures {
        let table = TABLE
            .iter()
            .map(|&(sig, pat, kind, definite)| (sig, builtin(pat), kind, definite))
            .collect();
        Signatures {
            table,
            hey: builtin(HEY_SUMMARY),
            tally: builtin(TALLY),
            wrk: builtin(WRK_SUMMARY),
            user,
        }
    }

    /// The error one line reports, when it reports one, with the count a summary line
    /// gives. Stateless: [`LineReader::feed`] is the one to call on a stream of lines.
    pub fn recognise(&self, line: &str) -> Option<Recognised> {
        if let Some(c) = self.hey.captures(line) {
            if let (Ok(count @ 1..), Some(inner)) = (c[1].parse::<u64>(), self.table_match(&c[2])) {
                return Some(Recognised {
                    signature: "hey",
                    count,
                    late: true,
                    ..inner
                });
            }
        }
        if let Some(c) = self.tally.captures(line) {
            if let (Ok(count @ 1..), Some(inner)) = (c[1].parse::<u64>(), self.table_match(&c[2])) {
                return Some(Recognised {
                    count,
                    late: true,
                    ..inner
                });
            }
        }
        if let Some(c) = self.wrk.captures(line) {
            // A count too large for u64 is no count wrk printed: not a failure line.
            return match c[1].parse::<u64>() {
                Ok(count @ 1..) => Some(Recognised {
                    kind: "EADDRNOTAVAIL".to_string(),
                    signature: "wrk",
                    definite: false,
                    count,
                    late: true,
                }),
                _ => None,
            };
        }
        self.table_match(line).or_else(|| {
            self.user
                .as_ref()
                .filter(|re| re.is_match(line))
                .map(|_| Recognised {
                    kind: USER_KIND.to_string(),
                    signature: "failure_pattern",
                    definite: true,
                    count: 1,
                    late: false,
                })
        })
    }

    fn table_match(&self, line: &str) -> Option<Recognised> {
        self.table
            .iter()
            .find(|(_, re, _, _)| re.is_match(line))
            .map(|&(signature, _, kind, definite)| Recognised {
                kind: kind.to_string(),
                signature,
                definite,
                count: 1,
                late: false,
            })
    }
}

/// Reads a client's output, line by line and stream by stream, and returns each failure
/// once, with the count it stands for.
///
/// A recognised line opens a *block*: the lines after it that belong to the same printed
/// failure are read as part of it, and a recognised line among them is that same failure
/// (`feed` returns None). Part of a block are:
/// - blank lines, and indented lines (stack frames `\tat ...`, `  File "..."`, Ruby's
///   `\tfrom x.rb:3:in ...`, Java's `\t... 5 more`, Node's error properties, .NET's
///   ` ---> ` inner exception);
/// - Java's `Caused by:` (and Node's `[cause]:`);
/// - Python's `During handling of the above exception, another exception occurred:` and
///   `The above exception was the direct cause of the following exception:`, then the
///   chained traceback down to its exception line;
/// - Ruby's cause, printed in column 0 after the backtrace, whose message the first line
///   already quoted;
/// - Node's `Emitted 'error' event on ... at:` and bare `{` / `}` lines.
///
/// The block ends at the first other line in column 0; a recognised line there is a new
/// failure. A block opened by an indented line (a tool's own failure list) does not absorb
/// the indented failure lines after it: each is its own (an indented cause, Node's
/// `  [cause]: Error: ...`, is an exception's first line, and does). A counted summary line
/// ([`Recognised::late`]) is always its own failures, and so is ApacheBench's
/// `Test aborted after N failures` followed by the error line (N failures).
///
/// Each stream (stdout, stderr) has its own state: their lines interleave as the pipes
/// deliver them, so a block on one never continues on the other. The same failure printed
/// on both streams (PHP with display_errors and log_errors on, Erlang's crash slogan) is
/// therefore counted on each.
#[derive(Debug)]
pub struct LineReader {
    signatures: Signatures,
    shapes: Shapes,
    /// Each stream's state, by stream name (two, at most a few).
    streams: Vec<(String, StreamState)>,
}

/// The shapes of lines that continue a block (compiled once).
#[derive(Debug)]
struct Shapes {
    /// Python's sentences between a cause and the exception it led to.
    chain_sentence: Regex,
    /// Lines that introduce a cause or inner exception of the same failure.
    chain_header: Regex,
    /// Python's traceback header (part of a block only after a chain sentence).
    traceback: Regex,
    /// Column-0 lines that continue a block (Node's).
    continues: Regex,
    /// ApacheBench's abort line: the count for the error line that follows it.
    ab_abort: Regex,
    /// Ruby's exception line: `x.rb:3:in 'm': MESSAGE (Class)`.
    ruby: Regex,
}

/// One stream's state.
#[derive(Debug, Default)]
struct StreamState {
    block: Option<Block>,
    /// ApacheBench's "Test aborted after N failures": N, for the error line after it.
    pending_count: Option<u64>,
}

/// The failure being printed.
#[derive(Debug)]
struct Block {
    /// Its first line was in column 0 (an exception's first line), so the indented
    /// recognised lines under it restate it.
    absorbs: bool,
    /// After a Python chain sentence: the next column-0 exception line is the same failure.
    chained: bool,
    /// Its first line (Ruby's cause is checked against it).
    opener: String,
}

impl LineReader {
    pub fn new(signatures: Signatures) -> LineReader {
        LineReader {
            signatures,
            shapes: Shapes {
                chain_sentence: builtin(
                    r"^(During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$",
                ),
                chain_header: builtin(r"^(Caused by: |\s*---> |\s*\[cause\]: |\s*Suppressed: )"),
                traceback: builtin(r"^Traceback \(most recent call last\):$"),
                continues: builtin(r"^(Emitted '\w+' event on .* at:|[{}\[\]()]+,?)$"),
                ab_abort: builtin(r"^Test aborted after (\d+) failures$"),
                ruby: builtin(r":in [`'][^']*': (.+) \([A-Z]\w*(?:::\w+)*\)$"),
            },
            streams: Vec::new(),
        }
    }

    /// One line of `stream`: the failure it starts, or None when it is no failure or
    /// continues one already returned.
    pub fn feed(&mut self, stream: &str, line: &str) -> Option<Recognised> {
        let index = match self.streams.iter().position(|(s, _)| s == stream) {
            Some(i) => i,
            None => {
                self.streams
                    .push((stream.to_string(), StreamState::default()));
                self.streams.len() - 1
            }
        };
        let state = &mut self.streams[index].1;
        let recognised = self.signatures.recognise(line);
        step(&self.shapes, state, line, recognised)
    }
}

/// One line through one stream's state.
fn step(
    shapes: &Shapes,
    state: &mut StreamState,
    line: &str,
    recognised: Option<Recognised>,
) -> Option<Recognised> {
    let blank = line.trim().is_empty();
    if let Some(c) = shapes.ab_abort.captures(line) {
        state.block = None;
        state.pending_count = c[1].parse::<u64>().ok().filter(|&n| n > 0);
        return None;
    }
    if let Some(r) = recognised.as_ref().filter(|r| r.late) {
        // A summary: its own failures, never part of an exception.
        state.block = None;
        return Some(r.clone());
    }
    let indented = line.starts_with([' ', '\t']);
    if let Some(block) = state.block.as_mut() {
        if blank {
            return None;
        }
        if shapes.chain_sentence.is_match(line) {
            block.chained = true;
            return None;
        }
        if shapes.chain_header.is_match(line) {
            return None;
        }
        if indented || shapes.continues.is_match(line) {
            if recognised.is_none() || block.absorbs {
                return None;
            }
            // An indented failure line under an indented one: its own failure.
            return recognised;
        }
        if block.chained {
            // Python's chained traceback: its header, then (after the indented frames)
            // the exception line that ends it, recognised or not.
            if !shapes.traceback.is_match(line) {
                block.chained = false;
            }
            return None;
        }
        if recognised.is_some() && ruby_cause(shapes, &block.opener, line) {
            return None;
        }
        state.block = None;
    }
    match recognised {
        Some(mut r) => {
            if let Some(n) = state.pending_count.take() {
                r.count = n;
            }
            state.block = Some(Block {
                // An indented cause ("  [cause]: Error: connect EADDRNOTAVAIL ...") opens an
                // exception like a first line does.
                absorbs: !indented || shapes.chain_header.is_match(line),
                chained: false,
                opener: line.to_string(),
            });
            Some(r)
        }
        None => {
            if !blank {
                state.pending_count = None;
            }
            None
        }
    }
}

/// Ruby prints an exception's cause after its backtrace, in column 0, with nothing between:
/// it is the same failure when the first line already quoted its message (Net::HTTP's
/// "Failed to open TCP connection to H:P (MESSAGE) (Errno::EADDRNOTAVAIL)", then
/// "...: MESSAGE (Errno::EADDRNOTAVAIL)"). The same line again is a new failure.
fn ruby_cause(shapes: &Shapes, opener: &str, line: &str) -> bool {
    line != opener
        && shapes
            .ruby
            .captures(line)
            .is_some_and(|c| opener.contains(&c[1]))
}
#[cfg(test)]
mod tests {
    use super::*;

    /// (line, (signature, kind, count, late)): real lines, as the clients print them. The
    /// Java, Python, Ruby, PHP, Perl, Go, Rust, Erlang, Elixir, Node, curl, pgbench, hey, wrk
    /// and ab ones were captured on this machine with every local port taken; the Windows
    /// and .NET ones are the runtimes' documented texts.
    type Want = Option<(&'static str, &'static str, u64, bool)>;
    const LINES: &[(&str, Want)] = &[
        ("Exception in thread \"main\" java.net.BindException: Cannot assign requested address", Some(("java", "EADDRNOTAVAIL", 1, false))),
        ("java.net.NoRouteToHostException: Cannot assign requested address (Address not available)", Some(("java", "EADDRNOTAVAIL", 1, false))),
        ("java.net.BindException: Address already in use: connect", Some(("java", "WSAEADDRINUSE", 1, false))),
        ("java.net.SocketException: No buffer space available (maximum connections reached?): connect", Some(("java", "WSAENOBUFS", 1, false))),
        ("OSError: [Errno 99] Cannot assign requested address", Some(("python", "EADDRNOTAVAIL", 1, false))),
        ("urllib.error.URLError: <urlopen error [Errno 99] Cannot assign requested address>", Some(("python", "EADDRNOTAVAIL", 1, false))),
        ("requests.exceptions.ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=80): Max retries exceeded with url: / (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 99] Cannot assign requested address'))", Some(("python", "EADDRNOTAVAIL", 1, false))),
        ("aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host 127.0.0.1:8080 ssl:default [Cannot assign requested address]", Some(("python", "EADDRNOTAVAIL", 1, false))),
        ("OSError: [Errno 98] Address already in use", Some(("python", "EADDRINUSE", 1, false))),
        ("OSError: [WinError 10048] Only one usage of each socket address (protocol/network address/port) is normally permitted", Some(("python", "WSAEADDRINUSE", 1, false))),
        ("-e:1:in `initialize': Cannot assign requested address - connect(2) for \"127.0.0.1\" port 8080 (Errno::EADDRNOTAVAIL)", Some(("ruby", "EADDRNOTAVAIL", 1, false))),
        ("/usr/lib/ruby/3.1.0/socket.rb:1214:in `__connect_nonblock': Failed to open TCP connection to 127.0.0.1:8080 (Cannot assign requested address - connect(2) for 127.0.0.1:8080) (Errno::EADDRNOTAVAIL)", Some(("ruby", "EADDRNOTAVAIL", 1, false))),
        ("PHP Warning:  fsockopen(): Unable to connect to 127.0.0.1:8080 (Cannot assign requested address) in Command line code on line 1", Some(("php", "EADDRNOTAVAIL", 1, false))),
        ("PHP Warning:  file_get_contents(http://127.0.0.1:8080/): Failed to open stream: Cannot assign requested address in Command line code on line 1", Some(("php", "EADDRNOTAVAIL", 1, false))),
        ("Warning: fsockopen(): Unable to connect to 127.0.0.1:8080 (Cannot assign requested address) in Command line code on line 1", Some(("php", "EADDRNOTAVAIL", 1, false))),
        ("connect: IO::Socket::INET: connect: Cannot assign requested address", Some(("perl", "EADDRNOTAVAIL", 1, false))),
        ("cannot connect: Cannot assign requested address at -e line 1.", Some(("perl", "EADDRNOTAVAIL", 1, false))),
        ("599 Could not connect to '127.0.0.1:8080': Cannot assign requested address", Some(("perl", "EADDRNOTAVAIL", 1, false))),
        ("dial tcp 127.0.0.1:39999: connect: cannot assign requested address", Some(("go", "EADDRNOTAVAIL", 1, false))),
        ("panic: Get \"http://127.0.0.1:8080/\": dial tcp 127.0.0.1:8080: connect: cannot assign requested address", Some(("go", "EADDRNOTAVAIL", 1, false))),
        ("dial tcp 10.0.0.5:443: connectex: Only one usage of each socket address (protocol/network address/port) is normally permitted.", Some(("go", "WSAEADDRINUSE", 1, false))),
        ("Cannot assign requested address (os error 99)", Some(("rust", "EADDRNOTAVAIL", 1, false))),
        ("Error: Os { code: 99, kind: AddrNotAvailable, message: \"Cannot assign requested address\" }", Some(("rust", "EADDRNOTAVAIL", 1, false))),
        ("Error: Os { code: 10048, kind: AddrInUse, message: \"Only one usage of each socket address (protocol/network address/port) is normally permitted.\" }", Some(("rust", "WSAEADDRINUSE", 1, false))),
        ("{error,eaddrnotavail}", Some(("erlang", "EADDRNOTAVAIL", 1, false))),
        ("** (MatchError) no match of right hand side value: {:error, :eaddrnotavail}", Some(("elixir", "EADDRNOTAVAIL", 1, false))),
        ("Error: connect EADDRNOTAVAIL 127.0.0.1:39999 - Local (0.0.0.0:0)", Some(("node", "EADDRNOTAVAIL", 1, false))),
        ("System.Net.Sockets.SocketException (10048): Only one usage of each socket address (protocol/network address/port) is normally permitted.", Some(("dotnet", "WSAEADDRINUSE", 1, false))),
        ("System.Net.Sockets.SocketException (10055): An operation on a socket could not be performed because the system lacked sufficient buffer space or because a queue was full.", Some(("dotnet", "WSAENOBUFS", 1, false))),
        ("System.Net.Sockets.SocketException (99): Cannot assign requested address", Some(("dotnet", "EADDRNOTAVAIL", 1, false))),
        ("pgbench: error: connection to server at \"127.0.0.1\", port 5432 failed: Cannot assign requested address", Some(("libpq", "EADDRNOTAVAIL", 1, false))),
        ("psql: could not connect to server: Cannot assign requested address", Some(("libpq", "EADDRNOTAVAIL", 1, false))),
        ("apr_socket_connect(): Cannot assign requested address (99)", Some(("ab", "EADDRNOTAVAIL", 1, false))),
        ("unable to connect to 127.0.0.1:8080 Cannot assign requested address", Some(("wrk", "EADDRNOTAVAIL", 1, false))),
        ("  [300]\tGet \"http://127.0.0.1:8080/\": dial tcp 127.0.0.1:8080: connect: cannot assign requested address", Some(("hey", "EADDRNOTAVAIL", 300, true))),
        ("  [12]\tGet \"http://127.0.0.1:8080/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)", None),
        ("  Socket errors: connect 2, read 0, write 0, timeout 0", Some(("wrk", "EADDRNOTAVAIL", 2, true))),
        ("  Socket errors: connect 0, read 0, write 0, timeout 3", None),
        ("  Socket errors: connect 99999999999999999999999, read 0, write 0, timeout 0", None),
        ("uncaught: EADDRNOTAVAIL", Some(("errno", "EADDRNOTAVAIL", 1, false))),
        ("connect: Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL", 1, false))),
        ("*   Trying 127.0.0.1:39999...\n* Immediate connect fail for 127.0.0.1: Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL", 1, false))),
        ("curl: (7) Failed to connect to 127.0.0.1 port 39999 after 0 ms: Couldn't connect to server", Some(("curl", "EADDRNOTAVAIL", 1, false))),
        ("error: OSError(99, 'Cannot assign requested address')", Some(("python", "EADDRNOTAVAIL", 1, false))),
        ("ConnectionError(98, 'Address already in use')", Some(("python", "EADDRINUSE", 1, false))),
        ("  300 x [Errno 99] Cannot assign requested address", Some(("python", "EADDRNOTAVAIL", 300, true))),
        ("12 times: connect EADDRNOTAVAIL 127.0.0.1:8080 - Local (0.0.0.0:0)", Some(("node", "EADDRNOTAVAIL", 12, true))),
        ("7 × Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL", 7, true))),
        ("3 xenial hosts: Cannot assign requested address", Some(("strerror", "EADDRNOTAVAIL", 1, false))),
        ("request 120 ok", None),
        ("HTTP/1.1 200 OK", None),
        ("pgbench: transaction type: <builtin: TPC-B (sort of)>", None),
    ];

    #[test]
    fn every_real_line_maps_to_its_error_runtime_and_count() {
        let s = Signatures::new(None);
        for (line, want) in LINES {
            let got = s.recognise(line);
            assert_eq!(
                got.as_ref()
                    .map(|r| (r.signature, r.kind.as_str(), r.count, r.late)),
                *want,
                "{line}"
            );
        }
    }

    #[test]
    fn a_ruby_errno_is_named_ruby_not_node() {
        // Seen with a real Ruby client: the bare errno name used to be taken for Node's.
        let s = Signatures::new(None);
        let r = s
            .recognise("x.rb:3:in `initialize': Cannot assign requested address - connect(2) for \"127.0.0.1\" port 8080 (Errno::EADDRNOTAVAIL)")
            .unwrap();
        assert_eq!(r.signature, "ruby");
    }

    #[test]
    fn only_curls_exit_7_and_wrks_summary_are_indefinite() {
        let s = Signatures::new(None);
        let curl = s.recognise("curl: (7) Failed to connect").unwrap();
        assert!(!curl.definite);
        let wrk = s
            .recognise("  Socket errors: connect 5, read 0, write 0, timeout 0")
            .unwrap();
        assert!(!wrk.definite);
        assert!(s.recognise("OSError: [Errno 99] x").unwrap().definite);
    }

    #[test]
    fn the_users_pattern_comes_after_the_table() {
        let s = Signatures::new(Some(Regex::new("E_NOPORT|out of sockets").unwrap()));
        let r = s.recognise("client: E_NOPORT after 812 requests").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.signature, r.count),
            (USER_KIND, "failure_pattern", 1)
        );
        assert_eq!(
            s.recognise("OSError: [Errno 99] out of sockets")
                .unwrap()
                .kind,
            "EADDRNOTAVAIL",
            "a known signature keeps its own name"
        );
    }

    /// The failures a reader returns for `text` fed as one stream: (signature, count, late).
    fn failures(text: &str) -> Vec<(&'static str, u64, bool)> {
        let mut reader = LineReader::new(Signatures::new(None));
        text.lines()
            .filter_map(|l| reader.feed("stderr", l))
            .map(|r| (r.signature, r.count, r.late))
            .collect()
    }

    /// Whole outputs captured from real programs with no local port left (see
    /// tests/fixtures/client-output/README.md for the commands), and the failures each
    /// program had: a chained exception is one, a summary is its count.
    #[test]
    fn each_captured_output_gives_each_failure_once() {
        macro_rules! fixture {
            ($name:literal) => {
                (
                    $name,
                    include_str!(concat!("../../tests/fixtures/client-output/", $name)),
                )
            };
        }
        let one = |sig| vec![(sig, 1, false)];
        type Case<'a> = ((&'a str, &'a str), Vec<(&'a str, u64, bool)>);
        let cases: Vec<Case> = vec![
            // socket.create_connection: one OSError.
            (fixture!("python-socket.stderr"), one("python")),
            // urlopen: OSError, "During handling of the above exception...", URLError.
            (fixture!("python-urllib.stderr"), one("python")),
            // Socket(), URL.openStream(), HttpClient.send() (a ConnectException caused by a
            // ConnectException caused by a BindException), each printStackTrace'd, then an
            // uncaught RuntimeException caused by a BindException.
            (fixture!("java.stderr"), vec![("java", 1, false); 4]),
            // An unhandled 'error' event: the Error line, its frames, "Emitted 'error' event
            // on Socket instance at:", and its properties (code: 'EADDRNOTAVAIL').
            (fixture!("node-net.stderr"), one("node")),
            // fetch(): "TypeError: fetch failed" with the connect error as its [cause].
            (fixture!("node-fetch.stderr"), one("node")),
            (fixture!("ruby-socket.stderr"), one("ruby")),
            // Net::HTTP: its own Errno::EADDRNOTAVAIL, then the socket's as its cause.
            (fixture!("ruby-nethttp.stderr"), one("ruby")),
            // A RuntimeError raised in the rescue, its cause the connect error.
            (fixture!("ruby-cause.stderr"), one("ruby")),
            // fsockopen, file_get_contents, stream_socket_client: three warnings.
            (fixture!("php.stderr"), vec![("php", 1, false); 3]),
            // display_errors=1: the warning on stdout too (each stream has one).
            (fixture!("php-display-errors.stdout"), one("php")),
            (fixture!("php-display-errors.stderr"), one("php")),
            // warn "$@", then die "$!".
            (fixture!("perl.stderr"), vec![("perl", 1, false); 2]),
            // net.Dial's and http.Get's errors printed, then panic(err).
            (fixture!("go.stdout"), vec![("go", 1, false); 2]),
            (fixture!("go.stderr"), one("go")),
            // println!("{e}") and ("{e:?}"), then eprintln!("Error: {e:?}") and unwrap().
            (fixture!("rust.stdout"), vec![("rust", 1, false); 2]),
            (fixture!("rust.stderr"), vec![("rust", 1, false); 2]),
            // io:format of the error, then the badmatch crash (its slogan on both streams).
            (fixture!("erlang.stdout"), vec![("erlang", 1, false); 2]),
            (fixture!("erlang.stderr"), one("erlang")),
            (fixture!("elixir.stdout"), one("elixir")),
            (fixture!("elixir.stderr"), one("elixir")),
            // hey -n 300: every request failed; its error distribution says so, at the end.
            (fixture!("hey.stdout"), vec![("hey", 300, true)]),
            // ab -c 10: "Test aborted after 10 failures", then the error.
            (fixture!("ab.stderr"), vec![("ab", 10, false)]),
            (fixture!("ab.stdout"), vec![]),
            // wrk -c 2 against a server that closes: 10 requests, then both connections'
            // reconnects failed.
            (fixture!("wrk.stdout"), vec![("wrk", 2, true)]),
            (fixture!("wrk-startup.stderr"), one("wrk")),
        ];
        for ((name, text), want) in cases {
            assert_eq!(failures(text), want, "{name}");
        }
    }

    #[test]
    fn a_new_failure_is_a_recognised_line_outside_a_block() {
        let python = "Traceback (most recent call last):\n  File \"c.py\", line 3, in <module>\nOSError: [Errno 99] Cannot assign requested address\n";
        // The same traceback twice, with no chain sentence between: two failures.
        assert_eq!(failures(&python.repeat(2)).len(), 2);
        // A thread's traceback after the main one's: "Exception in thread" ends the block.
        let threaded = format!("{python}Exception in thread Thread-1 (worker):\n{python}");
        assert_eq!(failures(&threaded).len(), 2);
        // The same Ruby line twice is two failures (a cause differs from its first line).
        let ruby = "c.rb:1:in `initialize': Cannot assign requested address - connect(2) for \"127.0.0.1\" port 8080 (Errno::EADDRNOTAVAIL)\n\tfrom c.rb:1:in `new'\n";
        assert_eq!(failures(&ruby.repeat(2)).len(), 2);
        // A tool's own indented failure list: each line is one.
        let list = "failures:\n  conn 1: connect: Cannot assign requested address\n  conn 2: connect: Cannot assign requested address\n";
        assert_eq!(failures(list).len(), 2);
        // Java's "Caused by:" is part of the exception above it, whatever it names.
        let java = "java.net.ConnectException: Cannot assign requested address\n\tat X.main(X.java:6)\nCaused by: java.net.BindException: Cannot assign requested address\n\t... 1 more\n";
        assert_eq!(failures(java).len(), 1);
        assert_eq!(failures(&java.repeat(3)).len(), 3);
        // A summary line closes a block and is its own failures.
        let after = format!("{java}  [7]\tGet \"http://x/\": dial tcp 1.2.3.4:80: connect: cannot assign requested address\n");
        assert_eq!(failures(&after), vec![("java", 1, false), ("hey", 7, true)]);
        // ab's abort count is for the error line right after it, not for a later one.
        let ab = "Test aborted after 10 failures\n\nsomething else\napr_socket_connect(): Cannot assign requested address (99)\n";
        assert_eq!(failures(ab), vec![("ab", 1, false)]);
    }

    #[test]
    fn each_stream_has_its_own_block() {
        let mut reader = LineReader::new(Signatures::new(None));
        let java = "java.net.BindException: Cannot assign requested address";
        assert!(reader.feed("stderr", java).is_some());
        // stdout's indented line is not part of stderr's exception.
        assert!(reader.feed("stdout", "  code: 'EADDRNOTAVAIL',").is_some());
        // stderr's exception continues across stdout's line.
        assert!(reader
            .feed(
                "stderr",
                "Caused by: java.net.BindException: Cannot assign requested address"
            )
            .is_none());
    }
}

/// Each runtime that is installed, run with no local port left, is named right from its own
/// output: a private network namespace (util-linux unshare) where two local ports exist and
/// a holder (python3) has both connected to 127.0.0.1:8080 before it runs the program.
/// A runtime that is missing, or no namespace, skips with a printed reason, except under
/// CI=true, where .ci/run installs them all and a skip is a failure.
#[cfg(all(test, target_os = "linux"))]
mod live {
    use super::*;
    use std::process::Command;

    /// Listens on 127.0.0.1:8080, takes both local ports with connections to it, runs argv.
    const HOLD: &str = "import socket, subprocess, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', 8080)); l.listen(16)
held = [socket.create_connection(('127.0.0.1', 8080)) for _ in range(2)]
sys.exit(subprocess.call(sys.argv[1:]))";

    const JAVA: &str = "public class X { public static void main(String[] a) throws Exception {
  new java.net.Socket(\"127.0.0.1\", 8080);
} }";
    const GO: &str = "package main
import \"net/http\"
func main() { _, err := http.Get(\"http://127.0.0.1:8080/\"); println(err.Error()) }";
    const RUST: &str = "fn main() { std::net::TcpStream::connect(\"127.0.0.1:8080\").unwrap(); }";

    fn skip_or_fail(what: &str) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what}; CI must run this test"
        );
        eprintln!("SKIPPED {what}");
    }

    fn works(cmd: &mut Command) -> bool {
        cmd.output().is_ok_and(|o| o.status.success())
    }

    #[test]
    fn every_installed_runtime_is_named_from_its_own_output() {
        let test = "every_installed_runtime_is_named_from_its_own_output";
        let unshare: &[&str] = if works(Command::new("unshare").args(["-n", "true"])) {
            &["-n"]
        } else if works(Command::new("unshare").args(["-r", "-n", "true"])) {
            &["-r", "-n"]
        } else {
            return skip_or_fail(&format!("{test}: cannot create a network namespace"));
        };
        if !works(Command::new("python3").arg("--version")) {
            return skip_or_fail(&format!("{test}: needs python3 to hold the ports"));
        }
        let dir = std::env::temp_dir().join(format!("portlab-sigs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        };
        let (java, go) = (file("X.java", JAVA), file("x.go", GO));
        let rust_bin = dir.join("x").to_string_lossy().into_owned();
        let rust_ok = works(
            Command::new("rustc")
                .args(["-o", &rust_bin])
                .arg(file("x.rs", RUST)),
        );
        // (runtime, the command that shows it is installed, the program, its signature,
        // the failures it has on the stream that prints them).
        type Program<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, &'a str, u64);
        let programs: Vec<Program> = vec![
            (
                "python3",
                vec!["python3", "--version"],
                vec![
                    "python3",
                    "-c",
                    "import socket\nsocket.create_connection(('127.0.0.1', 8080))",
                ],
                "python",
                1,
            ),
            (
                "java",
                vec!["java", "-version"],
                vec!["java", &java],
                "java",
                1,
            ),
            (
                "node",
                vec!["node", "--version"],
                vec!["node", "-e", "require('net').connect(8080, '127.0.0.1')"],
                "node",
                1,
            ),
            (
                "ruby",
                vec!["ruby", "--version"],
                vec!["ruby", "-rsocket", "-e", "TCPSocket.new('127.0.0.1', 8080)"],
                "ruby",
                1,
            ),
            (
                "php",
                vec!["php", "--version"],
                vec!["php", "-r", "fsockopen('127.0.0.1', 8080);"],
                "php",
                1,
            ),
            (
                "perl",
                vec!["perl", "-MIO::Socket::INET", "-e", "1"],
                vec![
                    "perl",
                    "-MIO::Socket::INET",
                    "-e",
                    "IO::Socket::INET->new(PeerAddr => '127.0.0.1:8080') or die \"connect: $@\\n\"",
                ],
                "perl",
                1,
            ),
            ("go", vec!["go", "version"], vec!["go", "run", &go], "go", 1),
            (
                "rust",
                vec!["test", if rust_ok { "1" } else { "" }],
                vec![&rust_bin],
                "rust",
                1,
            ),
            (
                "erlang",
                vec!["erl", "-noshell", "-eval", "init:stop()."],
                vec![
                    "erl",
                    "-noshell",
                    "-eval",
                    "io:format(\"~p~n\", [gen_tcp:connect({127,0,0,1}, 8080, [])]), init:stop().",
                ],
                "erlang",
                1,
            ),
            (
                "elixir",
                vec!["elixir", "--version"],
                vec![
                    "elixir",
                    "-e",
                    "IO.inspect(:gen_tcp.connect({127,0,0,1}, 8080, []))",
                ],
                "elixir",
                1,
            ),
            (
                "hey",
                vec!["sh", "-c", "command -v hey"],
                vec!["hey", "-n", "20", "-c", "2", "http://127.0.0.1:8080/"],
                "hey",
                20,
            ),
            (
                "ab",
                vec!["sh", "-c", "command -v ab"],
                vec!["ab", "-n", "50", "-c", "1", "http://127.0.0.1:8080/"],
                "ab",
                10,
            ),
        ];
        let mut missing = Vec::new();
        for (runtime, probe, program, signature, count) in programs {
            if !works(Command::new(probe[0]).args(&probe[1..])) {
                missing.push(runtime);
                continue;
            }
            let out = Command::new("unshare")
                .args(unshare)
                .args([
                    "sh",
                    "-c",
                    "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40001' && exec python3 -c \"$0\" \"$@\"",
                    HOLD,
                ])
                .args(&program)
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            let mut reader = LineReader::new(Signatures::new(None));
            let mut by_stream = Vec::new();
            for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
                let got: Vec<Recognised> = text
                    .lines()
                    .filter_map(|l| reader.feed(stream, l))
                    .collect();
                by_stream.push(got);
            }
            let context = format!("{runtime}\nstdout:\n{stdout}\nstderr:\n{stderr}");
            assert!(
                by_stream.iter().flatten().all(|r| r.signature == signature),
                "{context}\n{by_stream:?}"
            );
            let most = by_stream
                .iter()
                .map(|got| got.iter().map(|r| r.count).sum::<u64>())
                .max();
            assert_eq!(most, Some(count), "{context}\n{by_stream:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        if !missing.is_empty() {
            skip_or_fail(&format!(
                "{test} for {}: not installed (.ci/run installs them)",
                missing.join(", ")
            ));
        }
    }
}
