//! Value types shared by scenario files and flags, each with one parser used by both, so a
//! value means the same thing wherever it is written.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a value did not parse: the accepted forms, for the message that names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

/// A number as a message shows it: plain, or in exponent form when plain would be a wall of
/// digits (1e300, 5e-324).
pub fn shown(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e12).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

/// Implements Display, Serialize (as the string form) and Deserialize (from a string, and from
/// a number where `$num` says how) for a type with `FromStr<Err = ValueError>`.
macro_rules! string_value {
    ($ty:ty, $expecting:literal) => {
        string_value!($ty, $expecting, |v: f64| -> Result<$ty, ValueError> {
            err(format!("expected {}, got the number {v}", $expecting))
        });
    };
    ($ty:ty, $expecting:literal, $num:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(|e: ValueError| E::custom(e.0))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_f64(v as f64)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_f64(v as f64)
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$ty, E> {
                        ($num)(v).map_err(|e: ValueError| E::custom(e.0))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// A duration written as "5s", "250ms", "1m30s" (humantime), or a bare number of seconds:
/// the one duration grammar of every key and flag (run, predict, inspect, the lab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// The longest duration any key accepts (about 100 years): beyond it nothing is meaningful
/// and `Instant + d` could overflow. Each key has a tighter bound of its own.
pub const MAX_SPAN: Duration = Duration::from_secs(3_155_760_000); // 100 x 365.25 days

const SPAN_FORMS: &str = "write e.g. 5s, 250ms, 2m, or a number of seconds";

impl FromStr for Span {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        if s.starts_with('-') {
            return err(format!(
                "'{s}' is negative; a duration is 0 or more ({SPAN_FORMS})"
            ));
        }
        if let Ok(secs) = s.parse::<f64>() {
            return Span::from_secs(secs);
        }
        let d = humantime::parse_duration(s)
            .map_err(|e| ValueError(format!("'{s}' is not a duration ({e}); {SPAN_FORMS}")))?;
        Span::bounded(d, s)
    }
}

impl Span {
    /// A number of seconds as a duration: finite, 0 or more, at most [`MAX_SPAN`].
    pub fn from_secs(secs: f64) -> Result<Self, ValueError> {
        let secs_shown = shown(secs);
        if !secs.is_finite() || secs < 0.0 {
            return err(format!("'{secs_shown}' is not a duration; {SPAN_FORMS}"));
        }
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => Span::bounded(d, &format!("{secs_shown}s")),
            Err(_) => err(format!(
                "'{secs_shown}' seconds is too long a duration (at most {})",
                humantime::format_duration(MAX_SPAN)
            )),
        }
    }

    fn bounded(d: Duration, shown: &str) -> Result<Self, ValueError> {
        if d > MAX_SPAN {
            return err(format!(
                "'{shown}' is too long a duration (at most {})",
                humantime::format_duration(MAX_SPAN)
            ));
        }
        Ok(Span(d))
    }

    /// Seconds, as the model works in them.
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

string_value!(
    Span,
    "a duration such as \"5s\", \"250ms\" or a number of seconds",
    Span::from_secs
);

/// The load's pace: starts per second (open loop) or as fast as possible (closed loop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Start i is due at t0 + i / R.
    PerSecond(f64),
    /// Closed loop: `concurrency` workers start the next one as soon as the last ends.
    Max,
}

const RATE_FORMS: &str =
    "write starts per second (e.g. 200, 200/s or 1800/min), or max for a closed loop";

impl FromStr for Rate {
    type Err = ValueError;
    /// The one rate grammar of run, predict and inspect: `N`, `N/s`, `N/sec`, `N/min`
    /// (`N/m`), or `max`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let (num, per) = match t.split_once('/') {
            None => (t, 1.0),
            Some((n, "s" | "sec")) => (n, 1.0),
            Some((n, "m" | "min")) => (n, 60.0),
            Some(_) => return err(format!("'{s}' is not a rate; {RATE_FORMS}")),
        };
        match num.trim().parse::<f64>() {
            Ok(v) => Rate::from_num(v / per),
            Err(_) => err(format!("'{s}' is not a rate; {RATE_FORMS}")),
        }
    }
}

impl Rate {
    fn from_num(v: f64) -> Result<Self, ValueError> {
        if v.is_finite() && v > 0.0 {
            Ok(Rate::PerSecond(v))
        } else {
            err(format!(
                "rate {} is not allowed; write a positive number of starts per second, or max",
                shown(v)
            ))
        }
    }

    /// Starts per second, or None for the closed loop.
    pub fn per_second(self) -> Option<f64> {
        match self {
            Rate::PerSecond(r) => Some(r),
            Rate::Max => None,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}"),
            Rate::Max => f.write_str("max"),
        }
    }
}

string_value!(
    Rate,
    "a rate: starts per second (e.g. 200) or \"max\"",
    Rate::from_num
);

/// Parses a rate with the one rate grammar ([`Rate`]: `30`, `30/s`, `1800/min`);
/// the model needs a number, so `max` is refused here.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<Rate>() {
        Ok(Rate::PerSecond(r)) => Ok(r),
        Ok(Rate::Max) => {
            Err("max (a closed loop) has no rate to model; write e.g. 30, 30/s or 1800/min".into())
        }
        Err(e) => Err(e.0),
    }
}

/// Parses a duration into seconds with the one duration grammar ([`Span`]:
/// `240s`, `4m`, `250ms`, or a bare number of seconds); zero is refused.
pub fn parse_duration_s(s: &str) -> Result<f64, String> {
    match s.parse::<Span>() {
        Ok(d) if !d.0.is_zero() => Ok(d.secs()),
        Ok(_) => Err("must be a positive duration, e.g. 240s, 4m, 250ms or 60 (seconds)".into()),
        Err(e) => Err(e.0),
    }
}

/// Who closes the connection, and how. Decides deterministically who holds TIME_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// The client closes first; the server closes after reading the client's FIN.
    /// TIME_WAIT lands on the client.
    Active,
    /// The server closes first after its reply; the client reads EOF, then closes.
    /// TIME_WAIT lands on the server.
    Passive,
    /// The client closes with SO_LINGER {1, 0}: RST, no TIME_WAIT anywhere.
    Reset,
    /// The client closes first with SO_LINGER {1, N}: close() waits up to N s for unsent data;
    /// TIME_WAIT still follows on the client.
    Linger(u32),
}

impl FromStr for CloseMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        match t {
            "active" => Ok(CloseMode::Active),
            "passive" => Ok(CloseMode::Passive),
            "reset" | "rst" => Ok(CloseMode::Reset),
            _ => match t.strip_prefix("linger=").map(|n| n.trim().parse::<u32>()) {
                Some(Ok(n)) => Ok(CloseMode::Linger(n)),
                _ => err(format!(
                    "'{s}' is not a close mode; accepted: active, passive, reset, linger=SECONDS"
                )),
            },
        }
    }
}

/// The parser of predict's and inspect's `--close`: clap lists active, passive and reset with
/// their help (run's `--close` parses [`CloseMode`]'s `FromStr`, which also takes
/// `linger=N`; for the model that is `active`). Not a `clap::ValueEnum` impl: clap would then
/// use it for run's `--close` too and refuse `linger=N`.
pub fn close_flag() -> impl clap::builder::TypedValueParser<Value = CloseMode> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new("active")
            .help("The client closes first and keeps TIME_WAIT (also a non-zero SO_LINGER)"),
        PossibleValue::new("passive")
            .help("The server closes first and keeps TIME_WAIT on its side"),
        PossibleValue::new("reset")
            .help("The client resets (SO_LINGER 0): no TIME_WAIT on either side"),
    ])
    .map(|s| match s.as_str() {
        "passive" => CloseMode::Passive,
        "reset" => CloseMode::Reset,
        _ => CloseMode::Active,
    })
}

impl fmt::Display for CloseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseMode::Active => f.write_str("active"),
            CloseMode::Passive => f.write_str("passive"),
            CloseMode::Reset => f.write_str("reset"),
            CloseMode::Linger(n) => write!(f, "linger={n}"),
        }
    }
}

string_value!(
    CloseMode,
    "a close mode: active, passive, reset or linger=SECONDS"
);

/// How the embedded server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerClose {
    /// Close right after the reply (or right after accept with no payload): server TIME_WAIT.
    First,
    /// Close only after reading the client's FIN (EOF).
    AfterClient,
    /// Close with SO_LINGER {1, 0} after the reply: RST.
    Reset,
}

impl FromStr for ServerClose {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "first" => Ok(ServerClose::First),
            "after-client" => Ok(ServerClose::AfterClient),
            "reset" => Ok(ServerClose::Reset),
            _ => err(format!(
                "'{s}' is not a server close behaviour; accepted: first, after-client, reset"
            )),
        }
    }
}

impl fmt::Display for ServerClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerClose::First => "first",
            ServerClose::AfterClient => "after-client",
            ServerClose::Reset => "reset",
        })
    }
}

string_value!(ServerClose, "first, after-client or reset");

/// How the client's local port is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// connect() picks the port: a port is shared across destinations (per 4-tuple).
    Auto,
    /// bind(0) before connect(): the port is exclusive across all destinations.
    AnyPort,
    /// IP_BIND_ADDRESS_NO_PORT + bind(ip, 0): the port is chosen at connect() (Linux only).
    NoPort,
    /// portlab binds ports lo..=hi itself, in order, wrapping (a MaxUserPort-style range).
    Range(u16, u16),
}

impl FromStr for BindMode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        match t {
            "auto" => Ok(BindMode::Auto),
            "any-port" => Ok(BindMode::AnyPort),
            "no-port" => Ok(BindMode::NoPort),
            _ => match t.strip_prefix("range=") {
                Some(r) => {
                    let PortRange { lo, hi } = r.parse()?;
                    Ok(BindMode::Range(lo, hi))
                }
                None => err(format!(
                    "'{s}' is not a bind mode; accepted: auto, any-port, no-port, range=LO-HI"
                )),
            },
        }
    }
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindMode::Auto => f.write_str("auto"),
            BindMode::AnyPort => f.write_str("any-port"),
            BindMode::NoPort => f.write_str("no-port"),
            BindMode::Range(lo, hi) => write!(f, "range={lo}-{hi}"),
        }
    }
}

string_value!(BindMode, "auto, any-port, no-port or range=LO-HI");

/// An inclusive port range `LO-HI` with 1 <= LO <= HI <= 65535: the one type for the bind
/// range, the lab's ip_local_port_range and the model's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub lo: u16,
    /// Last port of the range (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Builds a range, refusing port 0 and LO > HI.
    pub fn new(lo: u16, hi: u16) -> Result<Self, ValueError> {
        let bad = |reason: &str| {
            err(format!(
                "'{lo}-{hi}' is not a port range: {reason} (write LO-HI, inclusive, 1-65535, e.g. 40000-40199)"
            ))
        };
        if lo == 0 {
            return bad("port 0 is not a port");
        }
        if lo > hi {
            return bad("LO must not exceed HI");
        }
        Ok(PortRange { lo, hi })
    }

    /// How many ports the range holds.
    pub fn len(self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    /// Always false: a `PortRange` holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }

    /// How many ports the two ranges share.
    pub fn overlap(self, other: PortRange) -> u32 {
        let (lo, hi) = (self.lo.max(other.lo), self.hi.min(other.hi));
        if lo <= hi {
            u32::from(hi) - u32::from(lo) + 1
        } else {
            0
        }
    }

    /// Parses the kernel's ip_local_reserved_ports syntax: ports and `LO-HI` ranges, comma
    /// separated ("1000-1010,2000"; "" is none), in the order given.
    pub fn parse_list(s: &str) -> Result<Vec<PortRange>, ValueError> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('-') {
                Some(_) => item.parse(),
                None => item
                    .parse::<u16>()
                    .map_err(|_| ValueError(format!("'{item}' is not a port number")))
                    .and_then(|p| PortRange::new(p, p)),
            })
            .collect()
    }
}

impl FromStr for PortRange {
    type Err = ValueError;

    /// Parses `LO-HI` (spaces around the dash allowed).
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = |reason: String| {
            err(format!(
                "'{s}' is not a port range: {reason} (write LO-HI, inclusive, 1-65535, e.g. 40000-40199)"
            ))
        };
        let Some((lo, hi)) = s.trim().split_once('-') else {
            return bad("no '-' between LO and HI".into());
        };
        let port = |t: &str| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| format!("'{}' is not a port number", t.trim()))
        };
        match (port(lo), port(hi)) {
            (Ok(lo), Ok(hi)) => PortRange::new(lo, hi).map_err(|_| {
                ValueError(format!(
                    "'{s}' is not a port range: {} (write LO-HI, inclusive, 1-65535, e.g. 40000-40199)",
                    if lo == 0 { "port 0 is not a port" } else { "LO must not exceed HI" }
                ))
            }),
            (Err(e), _) | (_, Err(e)) => bad(e),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

string_value!(PortRange, "a port range LO-HI");

/// What the client exchanges on each connection (or each pooled request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Connect and close; nothing is sent.
    None,
    /// Send `send` bytes, read `expect` (a byte count or EOF).
    Tcp,
    /// One HTTP/1.1 GET of `path`; the response is parsed and its status counted.
    Http,
}

impl FromStr for PayloadKind {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "none" => Ok(PayloadKind::None),
            "tcp" => Ok(PayloadKind::Tcp),
            "http" => Ok(PayloadKind::Http),
            _ => err(format!("'{s}' is not a payload; accepted: none, tcp, http")),
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadKind::None => "none",
            PayloadKind::Tcp => "tcp",
            PayloadKind::Http => "http",
        })
    }
}

string_value!(PayloadKind, "none, tcp or http");

/// How much of the reply the client reads before closing (raw TCP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this many bytes.
    Bytes(usize),
    /// Until the server closes.
    Eof,
}

impl FromStr for Expect {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t == "eof" {
            return Ok(Expect::Eof);
        }
        t.parse::<usize>().map(Expect::Bytes).map_err(|_| {
            ValueError(format!(
                "'{s}' is not an expectation; write a byte count (e.g. 3) or eof"
            ))
        })
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Bytes(n) => write!(f, "{n}"),
            Expect::Eof => f.write_str("eof"),
        }
    }
}

string_value!(Expect, "a byte count or \"eof\"", |v: f64| {
    if v >= 0.0 && v.fract() == 0.0 {
        Ok(Expect::Bytes(v as usize))
    } else {
        err(format!("expect = {v}: write a whole byte count or \"eof\""))
    }
});

/// Bytes written as text, or as `hex:` followed by hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl FromStr for Bytes {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let Some(hex) = s.strip_prefix("hex:") else {
            return Ok(Bytes(s.as_bytes().to_vec()));
        };
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() % 2 != 0 {
            return err(format!("'{s}': hex needs an even number of digits"));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| ValueError(format!("'{s}': not hex digits")))
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Bytes)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.starts_with("hex:") && !text.contains('\0') => f.write_str(text),
            _ => {
                f.write_str("hex:")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

string_value!(Bytes, "text, or hex:0a0b...");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let cases: &[(&str, Option<Rate>)] = &[
            ("200", Some(Rate::PerSecond(200.0))),
            ("200/s", Some(Rate::PerSecond(200.0))), // unit suffix allowed
            ("1800/min", Some(Rate::PerSecond(30.0))), // per minute, as predict took it
            ("60/m", Some(Rate::PerSecond(1.0))),
            ("5/h", None),                       // no such unit
            ("0.5", Some(Rate::PerSecond(0.5))), // slower than one per second
            ("max", Some(Rate::Max)),
            ("MAX", Some(Rate::Max)),
            ("0", None),    // a rate of zero would never start anything
            ("-3", None),   // negative
            ("fast", None), // not a number
            ("inf", None),  // not finite
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Rate>().ok(), *want, "rate {text:?}");
        }
    }

    #[test]
    fn close_modes_round_trip() {
        for text in ["active", "passive", "reset", "linger=5"] {
            let mode: CloseMode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
        }
        let e = "half".parse::<CloseMode>().unwrap_err();
        assert!(
            e.0.contains("active, passive, reset, linger=SECONDS"),
            "{e}"
        );
    }

    #[test]
    fn bind_modes_and_ranges() {
        assert_eq!("range=1025-5000".parse(), Ok(BindMode::Range(1025, 5000)));
        assert!(
            "range=5000-1025".parse::<BindMode>().is_err(),
            "inverted range"
        );
        assert!("range=0-10".parse::<BindMode>().is_err(), "port 0");
        assert!("range=1-70000".parse::<BindMode>().is_err(), "above 65535");
        assert_eq!(PortRange::new(1025, 5000).unwrap().len(), 3976);
    }

    #[test]
    fn bytes_text_and_hex() {
        assert_eq!("hello".parse::<Bytes>().unwrap().0, b"hello");
        assert_eq!("hex:0d0a ff".parse::<Bytes>().unwrap().0, vec![13, 10, 255]);
        assert!("hex:abc".parse::<Bytes>().is_err());
        assert!("hex:zz".parse::<Bytes>().is_err());
        assert_eq!(Bytes(vec![0, 1]).to_string(), "hex:0001");
    }

    #[test]
    fn spans() {
        assert_eq!("5s".parse::<Span>().unwrap().0, Duration::from_secs(5));
        assert_eq!(
            "1.5".parse::<Span>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!("1m30s".parse::<Span>().unwrap().0, Duration::from_secs(90));
        assert!("soon".parse::<Span>().is_err());
        assert!("-1".parse::<Span>().is_err());
        let e = "-1s".parse::<Span>().unwrap_err();
        assert!(e.0.contains("negative"), "{e}");
        // Finite but absurd: refused, not a panic in Duration::from_secs_f64.
        for huge in [
            "1e300",
            "1e19",
            "5e9",
            "99999999999999999999999s",
            "1000000y",
        ] {
            assert!(huge.parse::<Span>().is_err(), "{huge}");
        }
    }
}
