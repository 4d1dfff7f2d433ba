//! `portlab inspect`: this host's ephemeral-port settings, its current TIME_WAIT and
//! ESTABLISHED counts, and with `--rate R` the model for this host (P / R, P / T, steady
//! TIME_WAIT, margin) with a WARNING when R x T exceeds the ports.
//!
//! - [`parse`]: pure parsers for netsh, reg query, sysctl and netstat output (every OS).
//! - [`build`]: what was read -> [`HostReport`] and its [`ModelInput`] (pure, every OS).
//! - `linux.rs`, `windows.rs`, `macos.rs`, `other.rs`: the reading, one file per OS.
//! - the command (read, model, [`write`]) is cmd/inspect.rs.
//!
//! Nothing is written: inspect reads settings and limits, never changes them.

use std::io::Write;

use anyhow::Context as _;
use serde::Serialize;

use crate::model::{
    num, Advice, Inverse, ModelError, ModelInput, Prediction, TimeWaitSide, TwReuse,
};
use crate::observe::DestinationCount;
use crate::plan::values::parse_rate;
use crate::plan::{CloseMode, PortRange};
use crate::report::prediction::render_text;
use crate::report::Format;
use crate::sys::NofileLimit;

pub mod build;
pub mod parse;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod os;
#[cfg(windows)]
#[path = "windows.rs"]
mod os;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod os;
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
#[path = "other.rs"]
mod os;

/// A command's stdout whatever its exit status (reg exits 1 for an absent value; sysctl
/// prints the names it knows even when one is unknown), or None when it could not be started.
#[cfg(any(windows, target_os = "macos"))]
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Flags of `portlab inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// New connections (or requests) per second your client makes, e.g. 100 or 6000/min:
    /// adds the model for this host (time to exhaustion, sustainable rate, steady
    /// TIME_WAIT, margin) and a WARNING when the ports run out.
    #[arg(long, value_name = "R", value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Who closes first: active (the client, which keeps TIME_WAIT), passive (the server
    /// does) or reset (SO_LINGER 0, no TIME_WAIT).
    #[arg(long, value_name = "MODE", value_parser = crate::plan::values::close_flag(), default_value = "active")]
    pub close: CloseMode,

    /// Persistent connections: 0 = a new connection per request; N > 0 = N connections
    /// reused, holding N ports and no TIME_WAIT.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub pool: u32,

    /// Destinations (ip:port) the load is spread over evenly; connect() reuses a local port
    /// across destinations, so each gets the whole range.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub destinations: u32,

    /// The traffic goes to loopback (127.0.0.1, ::1): Linux tcp_tw_reuse = 2 applies only
    /// there.
    #[arg(long)]
    pub loopback: bool,

    /// Output format: text, json (host and model), or csv and markdown (its fields as
    /// key,value rows).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    pub format: Format,
}

/// One setting as read (or its default when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// The sysctl, registry value or command it comes from.
    pub name: String,
    /// The value as the OS reports it; `default (N)` when absent and N is the default.
    pub value: String,
    /// True when the value is absent and the default is shown.
    pub default: bool,
    /// What it means for ephemeral ports.
    pub note: Option<String>,
}

/// The ephemeral ports the model works from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ports {
    /// The range, `LO-HI`.
    pub range: Option<PortRange>,
    /// Its first port.
    pub first: Option<u16>,
    /// Its last port (inclusive).
    pub last: Option<u16>,
    /// Reserved ports inside the range.
    pub reserved: u32,
    /// P: range minus reserved, per (source address, destination).
    pub usable: u32,
}

/// How long TIME_WAIT lasts here, and what says so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeWait {
    /// T in seconds.
    pub seconds: f64,
    /// Where T comes from (a setting, a formula, or "fixed in the kernel").
    pub from: String,
}

/// TCP sockets right now (None: not observed on this OS).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sockets {
    /// Sockets in TIME_WAIT, every address and side.
    pub time_wait: Option<u64>,
    /// Sockets in ESTABLISHED.
    pub established: Option<u64>,
    /// The destinations with the most client-side TIME_WAIT (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_wait_by_destination: Option<Vec<DestinationCount>>,
    /// How they were counted.
    pub source: Option<String>,
}

/// What `portlab inspect` found on this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    /// linux, windows, macos, ...
    pub os: &'static str,
    /// Where the values were read from.
    pub read_from: String,
    /// The settings, in display order.
    pub settings: Vec<Setting>,
    /// The ephemeral ports (P).
    pub ports: Ports,
    /// TIME_WAIT (T).
    pub time_wait: TimeWait,
    /// RLIMIT_NOFILE (Unix); null where there is none.
    pub nofile: Option<NofileLimit>,
    /// TCP sockets right now.
    pub sockets: Sockets,
    /// What was assumed or is worth knowing.
    pub notes: Vec<String>,
    /// The model's input for this host, before the workload flags.
    #[serde(skip)]
    pub input: ModelInput,
    /// The connection-tracking table of this namespace, where one is loaded.
    pub conntrack: ConntrackRead,
}

/// What inspect read of the conntrack table (/proc/sys/net/netfilter, Linux).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConntrackRead {
    /// Whether there is a table to read: false off Linux, or when nf_conntrack is not
    /// loaded (then nothing passes one, and the limit does not apply).
    pub applicable: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// nf_conntrack_count: entries now (this namespace's).
    pub count: Option<u64>,
    /// nf_conntrack_max (host-wide).
    pub max: Option<u64>,
    /// nf_conntrack_buckets: the hash table's size.
    pub buckets: Option<u64>,
    /// nf_conntrack_tcp_timeout_time_wait, seconds.
    pub time_wait_s: Option<f64>,
    /// nf_conntrack_tcp_timeout_close, seconds.
    pub close_s: Option<f64>,
}

impl ConntrackRead {
    /// Not applicable, for `why`.
    pub fn not_applicable(why: &str) -> ConntrackRead {
        ConntrackRead {
            note: Some(why.to_string()),
            ..ConntrackRead::default()
        }
    }

    /// From the files of /proc/sys/net/netfilter as (name, contents) pairs: applicable when
    /// count and max were read.
    pub fn from_files(read: &dyn Fn(&str) -> Option<String>) -> ConntrackRead {
        let n = |name: &str| read(name).and_then(|v| v.trim().parse::<u64>().ok());
        let c = ConntrackRead {
            applicable: false,
            note: None,
            count: n("nf_conntrack_count"),
            max: n("nf_conntrack_max"),
            buckets: n("nf_conntrack_buckets"),
            time_wait_s: n("nf_conntrack_tcp_timeout_time_wait").map(|v| v as f64),
            close_s: n("nf_conntrack_tcp_timeout_close").map(|v| v as f64),
        };
        match (c.count, c.max) {
            (Some(_), Some(max)) if max > 0 => ConntrackRead {
                applicable: true,
                ..c
            },
            _ => ConntrackRead::not_applicable(
                "not applicable: no conntrack table here (nf_conntrack not loaded)",
            ),
        }
    }

    /// The model's input, when there is a table.
    pub fn input(&self) -> Option<crate::model::conntrack::ConntrackInput> {
        let (count, max) = (self.count?, self.max?);
        let mut ct = crate::model::conntrack::ConntrackInput::new(max, count);
        if let Some(t) = self.time_wait_s {
            ct.time_wait_s = t;
        }
        if let Some(t) = self.close_s {
            ct.close_s = t;
        }
        applicable_then(self.applicable, ct)
    }
}

fn applicable_then<T>(yes: bool, v: T) -> Option<T> {
    yes.then_some(v)
}

impl HostReport {
    /// Builds a report; `ports` and `time_wait` come from `input`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        os: &'static str,
        read_from: String,
        settings: Vec<Setting>,
        input: ModelInput,
        time_wait_from: String,
        nofile: Option<NofileLimit>,
        sockets: Sockets,
        notes: Vec<String>,
    ) -> HostReport {
        HostReport {
            os,
            read_from,
            settings,
            ports: Ports {
                range: input.port_range,
                first: input.port_range.map(|r| r.lo),
                last: input.port_range.map(|r| r.hi),
                reserved: input.reserved,
                usable: input.ports,
            },
            time_wait: TimeWait {
                seconds: input.time_wait_s,
                from: time_wait_from,
            },
            nofile,
            sockets,
            notes,
            input,
            conntrack: ConntrackRead::not_applicable("not applicable on this OS"),
        }
    }
}

/// The model for this host and the workload the flags describe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// The host's settings with the flags' rate, close mode, destinations and target.
    pub input: ModelInput,
    /// What the model predicts.
    pub prediction: Prediction,
    /// What would make the rate sustainable (when it is not).
    pub inverse: Option<Inverse>,
    /// The commands that apply it, as `portlab predict` gives them.
    pub advice: Vec<Advice>,
    /// Set when the ports run out at this rate: R x hold > P.
    pub warning: Option<String>,
    /// The conntrack table at this rate, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<crate::model::conntrack::ConntrackPrediction>,
}

/// The JSON document `inspect --format json` prints: the host, then the model.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    host: &'a HostReport,
    model: &'a ModelReport,
}

/// Reads this host's settings (never changes them).
pub fn collect() -> anyhow::Result<HostReport> {
    os::collect()
}

/// The model input: the host's settings, with the workload from the flags.
pub fn input_for(host: &HostReport, args: &InspectArgs) -> Result<ModelInput, ModelError> {
    let input = ModelInput {
        rate: args.rate,
        timewait_side: TimeWaitSide::from(args.close),
        pool: args.pool,
        destinations: args.destinations,
        loopback: args.loopback,
        ..host.input.clone()
    };
    input.validate()?;
    Ok(input)
}

/// Predicts for `input` the way `portlab predict` does, plus the warning.
pub fn model(input: ModelInput) -> ModelReport {
    let (prediction, inv, advice) = crate::model::analyse(&input);
    let warning = warning(&input, &prediction);
    ModelReport {
        input,
        prediction,
        inverse: inv,
        advice,
        warning,
        conntrack: None,
    }
}

/// The WARNING line when the ports run out at the given rate (R x hold > P, hold being T or
/// the tcp_tw_reuse delay where reuse applies); None when they do not, or no rate is given.
pub fn warning(input: &ModelInput, p: &Prediction) -> Option<String> {
    let r = input.rate?;
    if !p.exhausts {
        return None;
    }
    if input.pool > 0 {
        return Some(format!("WARNING: {}", p.explanation));
    }
    let ports = p.ports_effective as f64;
    let hold = if p.reuse_applies {
        format!("{} s port hold (tcp_tw_reuse delay)", num(p.hold_s))
    } else {
        format!("{} s TIME_WAIT", num(p.hold_s))
    };
    let after = p.first_error_s.map_or(String::new(), |t| {
        format!(
            ": the first {} comes after {} / {} conn/s = {} s",
            p.exhaustion_error,
            p.ports_effective,
            num(r),
            num(t)
        )
    });
    let then = p.post_exhaustion_rate.map_or(String::new(), |s| {
        format!(", then at most {} conn/s succeed", num(s))
    });
    Some(format!(
        "WARNING: {} conn/s x {hold} = {} ports needed, more than the {} usable{after}{then}.",
        num(r),
        num(r * p.hold_s),
        num(ports)
    ))
}

/// The model of the flags' workload on `host` (its settings, the flags' rate and close), with
/// the conntrack table where there is one.
pub fn model_of(host: &HostReport, args: &InspectArgs) -> anyhow::Result<ModelReport> {
    let input = input_for(host, args).context("this host's settings do not make a model input")?;
    let mut model = model(input);
    model.conntrack = host.conntrack.input().map(|ct| {
        crate::model::conntrack::predict(
            &ct,
            model.input.rate,
            model.input.timewait_side,
            model.input.pool,
            model.prediction.first_error_s,
        )
    });
    Ok(model)
}

/// Writes the inspection in `format`: the text of [`render`], or the host then the model.
pub fn write(
    host: &HostReport,
    model: &ModelReport,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let report = Report { host, model };
    let text = || render(host, model);
    crate::report::document::render(&report, format, &text, out)
}

fn limit(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), |n| n.to_string())
}

fn count(v: Option<u64>) -> String {
    v.map_or("not observed".into(), |n| n.to_string())
}

/// The text rendering: settings, sockets, capacity, and with a rate the model, in the order
/// tests/it/inspect.rs reads them.
pub fn render(host: &HostReport, m: &ModelReport) -> String {
    format!(
        "portlab inspect: {}, read from {}\n\n{}\n{}\n{}{}{}",
        host.os,
        host.read_from,
        settings_text(host),
        sockets_text(host),
        capacity_text(m),
        model_text(m),
        conntrack_text(host, m)
    )
}

/// The conntrack table: what was read, and at the flags' rate what the model says.
fn conntrack_text(host: &HostReport, m: &ModelReport) -> String {
    let c = &host.conntrack;
    if !c.applicable {
        return format!(
            "\nconntrack table: {}\n",
            c.note.as_deref().unwrap_or("not applicable")
        );
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut out = format!(
        "\nconntrack table: {} of {} entries in use (nf_conntrack_count / nf_conntrack_max), {} buckets, TIME_WAIT timeout {} s\n  (the count is this namespace's, and holds only connections one of its rules tracks: a NAT, a state match; the max is the host's)\n",
        opt(c.count),
        opt(c.max),
        opt(c.buckets),
        c.time_wait_s.map_or("-".into(), num)
    );
    if let Some(ct) = &m.conntrack {
        out.push_str(&crate::report::prediction::conntrack_text(ct, false));
    }
    out
}

/// The settings table, then the TIME_WAIT hold and RLIMIT_NOFILE, in aligned columns.
fn settings_text(host: &HostReport) -> String {
    let mut rows: Vec<(String, String, String)> = host
        .settings
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.value.clone(),
                s.note.clone().unwrap_or_default(),
            )
        })
        .collect();
    rows.push((
        "TIME_WAIT".into(),
        format!("{} s", num(host.time_wait.seconds)),
        host.time_wait.from.clone(),
    ));
    if let Some(n) = host.nofile {
        rows.push((
            "RLIMIT_NOFILE".into(),
            format!("soft {}, hard {}", limit(n.soft), limit(n.hard)),
            "open sockets per process (TIME_WAIT sockets hold no descriptor)".into(),
        ));
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let vw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).min(16);
    let mut s = String::from("Settings\n");
    for (name, value, note) in &rows {
        let line = format!("  {name:<w$}  {value:<vw$}  {note}");
        s += line.trim_end();
        s += "\n";
    }

    s
}

/// The socket counts of the namespace and the notes on what was read.
fn sockets_text(host: &HostReport) -> String {
    let mut s = String::from("Sockets now, every address");
    if let Some(src) = &host.sockets.source {
        s += &format!(" ({src})");
    }
    s += &format!(
        "\n  TIME_WAIT     {}\n  ESTABLISHED   {}\n",
        count(host.sockets.time_wait),
        count(host.sockets.established)
    );
    if let Some(d) = &host.sockets.time_wait_by_destination {
        let top: Vec<String> = d
            .iter()
            .take(3)
            .map(|c| format!("{} {}", c.destination, c.time_wait))
            .collect();
        s += &format!("  TIME_WAIT toward: {}\n", top.join(", "));
    }
    for n in &host.notes {
        s += &format!("  note: {n}\n");
    }

    s
}

/// Ports, close side and the sustainable rate.
fn capacity_text(m: &ModelReport) -> String {
    let (p, input) = (&m.prediction, &m.input);
    let mut s = String::from("Capacity\n");
    let range = input
        .port_range
        .map_or(String::new(), |r| format!("range {r}, "));
    s += &format!(
        "  {} usable ports ({range}{} reserved); {}, {} target\n",
        input.ports,
        input.reserved,
        match input.timewait_side {
            TimeWaitSide::Client => "active close",
            TimeWaitSide::Server => "passive close",
            TimeWaitSide::Nobody => "reset",
        },
        if input.loopback { "loopback" } else { "remote" }
    );
    if input.pool > 0 {
        s += &format!(
            "  pool of {} persistent connections: {} ports held, nothing in TIME_WAIT\n",
            input.pool, input.pool
        );
    }
    match p.sustainable_rate {
        Some(r) => {
            s += &format!(
                "  sustainable: {} port slots / {} s hold = {} conn/s",
                p.ports_effective,
                num(p.hold_s),
                num(r)
            );
            if input.destinations > 1 {
                s += &format!(
                    " ({} conn/s per destination)",
                    num(p.sustainable_rate_per_destination.unwrap_or(r))
                );
            }
            s += "\n";
        }
        None => s += "  sustainable: not limited by ports (the client keeps no TIME_WAIT)\n",
    }

    if input.tw_reuse == TwReuse::Loopback
        && !input.loopback
        && input.pool == 0
        && input.timewait_side == TimeWaitSide::Client
    {
        s += &format!(
            "  tcp_tw_reuse = 2 applies to loopback only: for traffic to 127.0.0.1 (--loopback) the hold is {} s\n",
            num(input.tw_reuse_delay_s)
        );
    }
    s
}

/// Without a rate, how to get one; with one, the verdict at that rate and the model's text.
fn model_text(m: &ModelReport) -> String {
    let (p, input) = (&m.prediction, &m.input);
    let mut s = String::new();
    match input.rate {
        None => s += "  give --rate R for the model at your rate (time to exhaustion, steady TIME_WAIT, margin)\n",
        Some(r) => {
            s += "\n";
            match &m.warning {
                Some(w) => s += &format!("{w}\n"),
                None => {
                    s += &format!("OK: the ports do not run out at {} conn/s", num(r));
                    if let Some(margin) = p.margin.filter(|_| input.timewait_side == TimeWaitSide::Client) {
                        s += &format!(" (margin {}: {} of {} port slots busy)", num(margin), num(margin * p.ports_effective as f64), p.ports_effective);
                    }
                    s += ".\n";
                }
            }
            s += &format!(
                "\nModel for this host at {} conn/s (as portlab predict)\n\n",
                num(r)
            );
            s += &render_text(input, p, m.inverse.as_ref(), &m.advice);
        }
    }
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn conntrack_is_read_where_count_and_max_are() {
        let files = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let read = ConntrackRead::from_files(&files(&[
            ("nf_conntrack_count", "1536\n"),
            ("nf_conntrack_max", "65536\n"),
            ("nf_conntrack_buckets", "16384\n"),
            ("nf_conntrack_tcp_timeout_time_wait", "60\n"),
        ]));
        assert!(read.applicable);
        let ct = read.input().unwrap();
        assert_eq!(
            (ct.max, ct.count, ct.time_wait_s, ct.close_s),
            (65_536, 1_536, 60.0, 10.0)
        );
        // Not loaded: nothing to read, and it says so.
        let none = ConntrackRead::from_files(&files(&[]));
        assert!(!none.applicable && none.input().is_none());
        assert!(none.note.unwrap().contains("not applicable"));
    }

    use super::*;
    use crate::model::{PortSpec, Profile};

    fn linux(lo: u16, hi: u16, rate: Option<f64>) -> ModelInput {
        ModelInput {
            rate,
            ..ModelInput::from_profile(Profile::Linux)
                .with_ports(PortSpec::Range(PortRange::new(lo, hi).unwrap()), 0)
                .unwrap()
        }
    }

    #[test]
    fn warning_iff_rate_times_hold_exceeds_ports() {
        // 1000 ports, 60 s: 100/s needs 6000 -> warning, first error at 10 s, 16.67/s after.
        let m = model(linux(40000, 40999, Some(100.0)));
        let w = m.warning.expect("6000 > 1000");
        assert!(w.starts_with("WARNING: 100 conn/s x 60 s TIME_WAIT = 6000 ports needed, more than the 1000 usable"), "{w}");
        assert!(w.contains("= 10 s") && w.contains("16.67 conn/s"), "{w}");
        // 10/s needs 600 <= 1000: no warning.
        assert_eq!(model(linux(40000, 40999, Some(10.0))).warning, None);
        // Exactly at the limit (16.66 x 60 = 1000 - 0.4): still none; just above: warning.
        assert_eq!(model(linux(40000, 40999, Some(16.66))).warning, None);
        assert!(model(linux(40000, 40999, Some(16.7))).warning.is_some());
        // No rate: capacity only, never a warning.
        assert_eq!(model(linux(40000, 40999, None)).warning, None);
    }

    #[test]
    fn no_warning_when_the_client_keeps_no_time_wait() {
        for side in [TimeWaitSide::Server, TimeWaitSide::Nobody] {
            let i = ModelInput {
                timewait_side: side,
                ..linux(40000, 40999, Some(1000.0))
            };
            assert_eq!(model(i).warning, None, "{side:?}");
        }
    }

    #[test]
    fn warning_uses_the_reuse_delay_where_reuse_applies() {
        // tw_reuse 2 on loopback, delay 1 s: 100/s needs 100 ports of 1000 -> fine;
        // 2000/s needs 2000 -> warning naming the reuse delay.
        let i = ModelInput {
            loopback: true,
            ..linux(40000, 40999, Some(100.0))
        };
        assert_eq!(model(i.clone()).warning, None);
        let w = model(ModelInput {
            rate: Some(2000.0),
            ..i
        })
        .warning
        .unwrap();
        assert!(w.contains("1 s port hold (tcp_tw_reuse delay)"), "{w}");
    }

    #[test]
    fn inspect_flags_override_the_host_workload() {
        let host = HostReport::new(
            "linux",
            "test".into(),
            Vec::new(),
            linux(40000, 40999, None),
            "fixed".into(),
            None,
            Sockets::default(),
            Vec::new(),
        );
        let args = InspectArgs {
            rate: Some(100.0),
            close: CloseMode::Passive,
            pool: 0,
            destinations: 4,
            loopback: true,
            format: Format::Text,
        };
        let i = input_for(&host, &args).unwrap();
        assert_eq!(i.rate, Some(100.0));
        assert_eq!(i.timewait_side, TimeWaitSide::Server);
        assert_eq!((i.destinations, i.loopback, i.ports), (4, true, 1000));
    }

    #[test]
    fn text_shows_settings_counts_and_model() {
        let host = HostReport::new(
            "linux",
            "test".into(),
            vec![Setting {
                name: "net.ipv4.tcp_fin_timeout".into(),
                value: "60".into(),
                default: false,
                note: Some("does NOT shorten TIME_WAIT".into()),
            }],
            linux(40000, 40999, None),
            "fixed".into(),
            Some(NofileLimit {
                soft: Some(1024),
                hard: None,
            }),
            Sockets {
                time_wait: Some(7),
                established: Some(2),
                time_wait_by_destination: None,
                source: Some("sock_diag".into()),
            },
            Vec::new(),
        );
        let t = render(&host, &model(linux(40000, 40999, Some(100.0))));
        for needle in [
            "net.ipv4.tcp_fin_timeout",
            "does NOT shorten TIME_WAIT",
            "soft 1024, hard unlimited",
            "TIME_WAIT     7",
            "ESTABLISHED   2",
            "1000 port slots / 60 s hold = 16.67 conn/s",
            "WARNING: 100 conn/s",
            "first error        after 10 s",
        ] {
            assert!(t.contains(needle), "{needle:?} missing in\n{t}");
        }
        let t = render(&host, &model(linux(40000, 40999, Some(10.0))));
        assert!(
            t.contains("OK: the ports do not run out at 10 conn/s (margin 0.6"),
            "{t}"
        );
        assert!(!t.contains("WARNING"), "{t}");
    }
}
