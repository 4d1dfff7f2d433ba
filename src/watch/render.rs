//! `portlab watch` output: a table (with --once, and refreshed in place on a terminal), one
//! line per sample elsewhere, JSON, and the Prometheus text exposition (format 0.0.4, what
//! node_exporter's textfile collector reads).

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::{State, WatchFormat, WatchReport};
use crate::model::num;

/// Destinations shown in the text table (all of them are in JSON and prom).
const TABLE_ROWS: usize = 20;

/// The text for one sample in `format`; `once`: a single sample (full table, pretty JSON);
/// `terminal`: stdout is a terminal (the table is redrawn in place).
/// `max_destinations`: the series cap of the Prometheus exposition.
pub fn render(
    report: &WatchReport,
    format: WatchFormat,
    once: bool,
    terminal: bool,
    max_destinations: usize,
) -> String {
    match format {
        WatchFormat::Json => json(report, once),
        WatchFormat::Prom => prometheus(report, max_destinations, None),
        WatchFormat::Text if once => table(report),
        // Home the cursor and clear the screen, then draw the table again.
        WatchFormat::Text if terminal => format!("\x1b[H\x1b[2J{}", table(report)),
        WatchFormat::Text => line(report),
    }
}

/// One sample as JSON: pretty for a single sample (`once`), a line each in a stream.
fn json(value: &impl serde::Serialize, once: bool) -> String {
    let text = if once {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.unwrap_or_default() + "\n"
}

/// The text for one sample of every namespace (`--all-netns`), `reports` in the order
/// shown (those with destinations first: see [`super::NamespaceReport::order`]): text a
/// section per namespace (a line each in a stream), JSON an array of the reports with their
/// labels, prom every series with the namespace's labels.
pub fn render_all(
    reports: &[super::NamespaceReport],
    format: WatchFormat,
    once: bool,
    terminal: bool,
    max_destinations: usize,
) -> String {
    match format {
        WatchFormat::Json => json(&reports, once),
        WatchFormat::Prom => prometheus_all(reports, max_destinations),
        WatchFormat::Text if once || terminal => {
            let mut s = if terminal && !once {
                "\x1b[H\x1b[2J".to_string()
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "portlab watch --all-netns: {} network namespaces",
                reports.len()
            );
            for r in reports {
                let _ = writeln!(s, "\n=== {} ===", r.labels.describe());
                s += &table(&r.report);
            }
            s
        }
        WatchFormat::Text => {
            let mut s = String::new();
            for r in reports {
                let _ = write!(
                    s,
                    "{} {}: {}",
                    r.labels.netns,
                    r.labels.comm,
                    line(&r.report)
                );
            }
            s
        }
    }
}

/// The exposition of every namespace: each one's series with its labels, merged family by
/// family.
pub fn prometheus_all(reports: &[super::NamespaceReport], max_destinations: usize) -> String {
    let parts: Vec<String> = reports
        .iter()
        .map(|r| prometheus_labelled(&r.report, max_destinations, &r.labels.prometheus()))
        .collect();
    merge(&parts)
}

fn timestamp(unix_s: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(unix_s.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

fn eta(v: Option<f64>) -> String {
    match v {
        None => "never".into(),
        Some(s) if s <= 0.0 => "now".into(),
        Some(s) => format!("{} s", num(s)),
    }
}

/// The table: settings, one row per destination (worst first), notes.
pub fn table(r: &WatchReport) -> String {
    let mut s = format!("portlab watch: {}, {}\n", r.namespace, timestamp(r.time));
    let p = r.whole_range.usable_ports;
    let _ = writeln!(
        s,
        "ports: range {}, {} usable ({} reserved, {} listening inside); tcp_tw_reuse {} (delay {} s)",
        r.port_range.as_deref().unwrap_or("unknown"),
        p,
        r.reserved_ports,
        r.listening_ports_in_range,
        r.tw_reuse,
        num(r.tw_reuse_delay_s)
    );
    s += &destinations(r);
    // Also where no client socket is listed: a NAT or a server holds its table all the same.
    if let Some(c) = &r.conntrack {
        let _ = writeln!(s, "{}", c.line());
    }
    if r.other_destinations > 0 {
        let _ = writeln!(
            s,
            "note: {} client sockets toward further destinations are not listed (bound of {})",
            r.other_destinations,
            super::MAX_GROUPS
        );
    }
    let _ = writeln!(
        s,
        "TIME_WAIT in the namespace: {} client side, {} server side (on a listening port; they hold no ephemeral port)",
        r.time_wait_client, r.time_wait_server
    );
    if let Some(a) = r.active_opens_rate {
        let sum: f64 = r.destinations.iter().map(|d| d.rate).sum();
        let _ = writeln!(
            s,
            "cross-check: Tcp ActiveOpens {:.1}/s over the last interval (every destination); the TIME_WAIT timers give {:.1}/s",
            a, sum
        );
    }
    let _ = writeln!(
        s,
        "state: {}",
        match r.state {
            State::Ok => "ok",
            State::Warning => "WARNING",
            State::Exhausted => "EXHAUSTED",
        }
    );
    s
}

/// The destinations' part of the table: one row per destination (worst first, at most
/// [`TABLE_ROWS`]) and the model's line for the worst; or that there are none.
fn destinations(r: &WatchReport) -> String {
    let mut s = String::new();
    if r.destinations.is_empty() {
        s += "\nno client sockets toward any destination";
        if r.other_destinations > 0 {
            let _ = write!(s, " listed ({} beyond the bound)", r.other_destinations);
        }
        s += "\n";
        return s;
    }
    let header = [
        "DESTINATION",
        "LOCAL",
        "TIME_WAIT",
        "ESTAB",
        "SYN_SENT",
        "USED/P",
        "RATE/s",
        "HOLD",
        "RxT",
        "ETA",
        "STATE",
    ];
    let mut rows: Vec<[String; 11]> = vec![header.map(String::from)];
    for d in r.destinations.iter().take(TABLE_ROWS) {
        rows.push([
            d.destination.clone(),
            d.local.clone(),
            d.time_wait.to_string(),
            d.established.to_string(),
            d.syn_sent.to_string(),
            format!("{}/{}", d.used, d.usable_ports),
            format!("{:.1}", d.rate),
            format!("{} s", num(d.hold_s)),
            num(d.steady_ports),
            eta(d.eta_s),
            d.state.name().to_string(),
        ]);
    }
    s += "\n";
    // Text left (destination, local address, state), numbers right.
    s += &grid(&rows, &[0, 1, 10]);
    if r.destinations.len() > TABLE_ROWS {
        let _ = writeln!(
            s,
            "... and {} more destinations (--format json lists them all)",
            r.destinations.len() - TABLE_ROWS
        );
    }
    s += "\n";
    let w = &r.whole_range;
    if w.shared || r.destinations.len() > 1 {
        let _ = writeln!(s, "how the ports are taken: {}", w.evidence);
    }
    if let (Some(state), Some(model)) = (w.state, &w.model) {
        let _ = writeln!(
            s,
            "RANGE (every destination): {}/{} ports in use, {:.1}/s together, hold {} s, ETA {}, {}",
            w.ports_in_use,
            w.usable_ports,
            w.rate,
            num(w.hold_s),
            eta(w.eta_s),
            state.name()
        );
        let _ = writeln!(s, "every destination: {model}");
    } else if let Some(d) = r.destinations.first() {
        let _ = writeln!(s, "{} from {}: {}", d.destination, d.local, d.model);
    }
    s
}

/// Rows as aligned columns two spaces apart, one line each: the columns in `left`
/// left-aligned, the others right-aligned; no trailing spaces.
fn grid<const N: usize>(rows: &[[String; N]], left: &[usize]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut s = String::new();
    for row in rows {
        let mut l = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if left.contains(&i) {
                let _ = write!(l, "{c:<w$}  ");
            } else {
                let _ = write!(l, "{c:>w$}  ");
            }
        }
        s += l.trim_end();
        s += "\n";
    }
    s
}

/// One line per sample (not a terminal): the time, how many destinations, the worst one.
pub fn line(r: &WatchReport) -> String {
    let mut s = format!(
        "{}  {} destination{}",
        timestamp(r.time),
        r.destinations.len(),
        if r.destinations.len() == 1 { "" } else { "s" }
    );
    let w = &r.whole_range;
    match r.destinations.first() {
        Some(_) if w.shared => {
            let _ = write!(
                s,
                "  one range shared by every destination (bind before connect()): {}/{} ports, {:.1}/s, hold {} s, ETA {}, {}",
                w.ports_in_use,
                w.usable_ports,
                w.rate,
                num(w.hold_s),
                eta(w.eta_s),
                w.state.unwrap_or(r.state).name()
            );
        }
        Some(d) => {
            let _ = write!(
                s,
                "  worst {} from {}: {} TIME_WAIT, {} ESTAB, {} SYN_SENT, {}/{} ports, {:.1}/s, hold {} s, ETA {}, {}",
                d.destination,
                d.local,
                d.time_wait,
                d.established,
                d.syn_sent,
                d.used,
                d.usable_ports,
                d.rate,
                num(d.hold_s),
                eta(d.eta_s),
                d.state.name()
            );
        }
        None => s += "  ok",
    }
    if let Some(c) = r.conntrack.as_ref().filter(|c| c.tracking) {
        let _ = write!(
            s,
            "  conntrack {}/{} entries, ETA {}, {}",
            c.entries,
            c.max,
            eta(c.eta_s),
            c.state.name()
        );
    }
    s + "\n"
}

/// A label value escaped as the exposition format wants: backslash, double quote, newline.
pub(super) fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: Prometheus writes infinity as +Inf.
fn value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// What the exporter adds to a sample's exposition: how the sampler itself is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SamplerStats {
    /// Samples taken since the exporter started.
    pub samples: u64,
    /// Samples that failed (the last good one is served meanwhile).
    pub errors: u64,
    /// How long the last sample took (listing, grouping, evaluating), seconds.
    pub duration_s: f64,
    /// The exporter watches every namespace (--all-netns).
    pub all_netns: bool,
}

/// One family of the exposition: name, HELP, TYPE.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
}

impl Family {
    fn header(&self, s: &mut String) {
        let _ = writeln!(s, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(s, "# TYPE {} {}", self.name, self.kind);
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: "gauge",
    }
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: "counter",
    }
}

/// The label values of the series that adds up the destinations beyond --max-destinations.
pub const OTHER: &str = "other";

/// The Prometheus text exposition (format 0.0.4): one family per figure, every one with
/// HELP and TYPE (also when it has no sample), named the Prometheus way (units last:
/// `_seconds`, `_ports`, `_sockets`, `_per_second`; `_total` for the two counters).
/// Per destination, a `destination` and a `local` label; at most `max_destinations` of
/// them, worst first (state, then ETA, then ports used: the ones an alert needs), and the
/// rest added up in one series labelled `destination="other",local="other"` (sockets,
/// ports used and rates summed; its ETA the soonest and its state the worst of them; no
/// hold or R x T of its own, since those are per destination; P is the namespace's), so that a node with
/// 10,000 destinations gives 10 x max + 8 + 19 series (527 at the default 50; docs/watch.md
/// says how), not 100,000.
///
/// Hand-written rather than through the prometheus-client crate: that crate encodes
/// OpenMetrics (not 0.0.4) from a registry of long-lived metric objects updated in place,
/// while each sample here is a fresh set of label values computed at once; a registry
/// rebuilt per sample would cost more code than these lines, which prometheus_client's
/// parser and a real Prometheus read in tests/it/watch.rs.
pub fn prometheus(
    r: &WatchReport,
    max_destinations: usize,
    stats: Option<&SamplerStats>,
) -> String {
    let mut s = prometheus_labelled(r, max_destinations, "");
    if let Some(t) = stats {
        s += &sampler_families(t, 1);
    }
    s
}

/// The exposition of one namespace's sample as [`prometheus`] writes it, without the
/// sampler's families, every series with `extra` labels first (`a="x",b="y"`, or empty):
/// `--all-netns` gives each namespace's its labels and merges them ([`merge`]).
pub fn prometheus_labelled(r: &WatchReport, max_destinations: usize, extra: &str) -> String {
    let pre = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra},")
    };
    let bare = if extra.is_empty() {
        String::new()
    } else {
        format!("{{{extra}}}")
    };
    type Get = fn(&super::DestinationReport) -> f64;
    /// How the `other` series combines a figure over the destinations it holds.
    #[derive(Clone, Copy)]
    enum Other {
        Sum,
        Min,
        Max,
        Same,
        None,
    }
    let families: [(Family, Get, Other); 10] = [
        (gauge("portlab_time_wait_sockets", "Client sockets in TIME_WAIT toward the destination."), |d| d.time_wait as f64, Other::Sum),
        (gauge("portlab_established_sockets", "Client sockets in ESTABLISHED toward the destination."), |d| d.established as f64, Other::Sum),
        (gauge("portlab_syn_sent_sockets", "Client sockets in SYN_SENT toward the destination."), |d| d.syn_sent as f64, Other::Sum),
        (gauge("portlab_used_ports", "Ephemeral ports connect() cannot take toward the destination: ESTABLISHED + SYN_SENT + TIME_WAIT younger than the hold, inside the range (when the range is shared, every socket of the range toward it)."), |d| d.used as f64, Other::Sum),
        (gauge("portlab_usable_ports", "P: ephemeral range minus reserved ports minus listening ports inside it."), |d| d.usable_ports as f64, Other::Same),
        (gauge("portlab_connections_per_second", "R: connections per second that recently ended in TIME_WAIT toward the destination (from the TIME_WAIT timers of one sample)."), |d| d.rate, Other::Sum),
        (gauge("portlab_port_hold_seconds", "T: how long a closed connection holds its port (60 s, or the tcp_tw_reuse delay where reuse applies)."), |d| d.hold_s, Other::None),
        (gauge("portlab_steady_state_ports", "R x T: the ports this rate keeps busy in steady state; above portlab_usable_ports the ports run out."), |d| d.steady_ports, Other::None),
        (gauge("portlab_exhaustion_eta_seconds", "(P - used) / R when R x T > P, 0 when every port is held; +Inf when the ports never run out at this rate. destination=\"other\": the soonest of the destinations not listed."), |d| d.eta_s.unwrap_or(f64::INFINITY), Other::Min),
        (gauge("portlab_port_state", "0 ok, 1 warning (runs out at this rate, or less than --warn-within left), 2 exhausted (every usable port held). destination=\"other\": the worst of the destinations not listed."), |d| state_value(d.state), Other::Max),
    ];
    let cap = max_destinations.min(r.destinations.len());
    let (shown, rest) = r.destinations.split_at(cap);
    let mut s = String::new();
    for (family, get, other) in families {
        family.header(&mut s);
        for d in shown {
            let _ = writeln!(
                s,
                "{}{{{pre}destination=\"{}\",local=\"{}\"}} {}",
                family.name,
                label(&d.destination),
                label(&d.local),
                value(get(d))
            );
        }
        let values = rest.iter().map(get);
        let combined = match other {
            _ if rest.is_empty() => None,
            Other::Sum => Some(values.sum()),
            Other::Min => values.reduce(f64::min),
            Other::Max => values.reduce(f64::max),
            Other::Same => values.reduce(f64::max),
            Other::None => None,
        };
        if let Some(v) = combined {
            let _ = writeln!(
                s,
                "{}{{{pre}destination=\"{OTHER}\",local=\"{OTHER}\"}} {}",
                family.name,
                value(v)
            );
        }
    }
    let w = &r.whole_range;
    let ns: [(Family, Option<f64>); 14] = [
        (gauge("portlab_destinations", "Destinations (local address, remote address:port) with client sockets in this sample; those beyond --max-destinations are added up in the destination=\"other\" series."), Some(r.destinations.len() as f64)),
        (gauge("portlab_unlisted_destination_sockets", "Client sockets toward destinations beyond the sampler's bound of 4096 per sample (counted, not grouped)."), Some(r.other_destinations as f64)),
        (gauge("portlab_range_used_ports", "Distinct ephemeral ports held by client sockets, every destination (what bind() before connect() draws on)."), Some(w.ports_in_use as f64)),
        (gauge("portlab_range_usable_ports", "P of the whole range: ephemeral range minus reserved ports minus listening ports inside it."), Some(w.usable_ports as f64)),
        (gauge("portlab_range_sockets", "Client sockets with a local port inside the ephemeral range, every destination."), Some(w.sockets as f64)),
        (gauge("portlab_range_shared", "1 when the client binds before connect(), so that every destination draws on one range (then the portlab_range_* ETA and state are every destination's); 0 when each destination has its own."), Some(f64::from(u8::from(w.shared)))),
        (gauge("portlab_range_connections_per_second", "Connections per second that recently ended in TIME_WAIT, every destination together (from the TIME_WAIT timers)."), Some(w.rate)),
        (gauge("portlab_range_port_hold_seconds", "How long a closed connection keeps its port from bind(): 60 s (tcp_tw_reuse only helps connect())."), Some(w.hold_s)),
        (gauge("portlab_range_exhaustion_eta_seconds", "When the shared range is full: (P - ports in use) / rate when rate x 60 s > P, 0 when full now; +Inf when never or when the range is not shared."), Some(w.eta_s.unwrap_or(f64::INFINITY))),
        (gauge("portlab_range_port_state", "The shared range: 0 ok, 1 warning, 2 exhausted (bind() fails for every destination); 0 when the range is not shared."), Some(state_value(w.state.unwrap_or(State::Ok)))),
        (gauge("portlab_watch_state", "The worst state of this sample, of the destinations, the shared range and the conntrack table (what the exit code says): 0 ok, 1 warning, 2 exhausted."), Some(state_value(r.state))),
        (gauge("portlab_active_opens_per_second", "Tcp ActiveOpens per second over the interval before the sample (every destination, also connections the server closed): the cross-check of the TIME_WAIT rates."), r.active_opens_rate),
        (counter("portlab_tcp_active_opens_total", "Tcp ActiveOpens of the namespace (/proc/net/snmp): connections this namespace opened."), r.active_opens.map(|a| a as f64)),
        (gauge("portlab_watch_sample_timestamp_seconds", "When portlab watch took this sample (Unix time)."), Some(r.time)),
    ];
    let sides = gauge(
        "portlab_namespace_time_wait_sockets",
        "TIME_WAIT sockets of the whole namespace by side: side=\"client\" (each holds an ephemeral port; every destination, whatever --dst) or side=\"server\" (on a listening port; no ephemeral port held).",
    );
    sides.header(&mut s);
    for (side, n) in [
        ("client", r.time_wait_client),
        ("server", r.time_wait_server),
    ] {
        let _ = writeln!(s, "{}{{{pre}side=\"{side}\"}} {n}", sides.name);
    }
    for (family, v) in ns {
        if let Some(v) = v {
            family.header(&mut s);
            let _ = writeln!(s, "{}{bare} {}", family.name, value(v));
        }
    }
    if let Some(c) = &r.conntrack {
        for (family, v) in conntrack_families(c) {
            if let Some(v) = v {
                family.header(&mut s);
                let _ = writeln!(s, "{}{bare} {}", family.name, value(v));
            }
        }
        nat_families(c, &pre, &mut s);
    }
    s
}

/// A NAT's mappings per (public address, destination), where the namespace masquerades.
fn nat_families(c: &super::conntrack::ConntrackReport, pre: &str, s: &mut String) {
    if c.nat.is_empty() {
        return;
    }
    type Get = fn(&super::conntrack::NatReport) -> f64;
    let families: [(Family, Get); 4] = [
        (gauge("portlab_nat_open_mappings", "A source NAT's mappings of connections not yet closed, toward one destination from one public address: each holds one of its ports (a closed connection's is handed out again)."), |n| n.mappings.count.open as f64),
        (gauge("portlab_nat_mappings", "A source NAT's mappings toward one destination from one public address, closed connections' (conntrack TIME_WAIT, CLOSE) included."), |n| n.mappings.count.all as f64),
        (gauge("portlab_nat_pool_ports", "The NAT's ports toward one destination (--nat-ports; 64512 unset: the 1024-65535 a masquerade without a range picks from): at this many open mappings new connections are refused."), |n| n.pool as f64),
        (gauge("portlab_nat_state", "A NAT's pool toward one destination: 0 ok, 1 warning (90% held by open connections), 2 exhausted (all held: new SYNs are dropped)."), |n| state_value(n.state)),
    ];
    for (family, get) in families {
        family.header(s);
        for n in &c.nat {
            let _ = writeln!(
                s,
                "{}{{{pre}public=\"{}\",destination=\"{}\"}} {}",
                family.name,
                label(&n.mappings.public.to_string()),
                label(&n.mappings.destination.to_string()),
                value(get(n))
            );
        }
    }
}

/// The conntrack table's families, where the namespace has one (nf_conntrack loaded).
fn conntrack_families(c: &super::conntrack::ConntrackReport) -> [(Family, Option<f64>); 7] {
    [
        (gauge("portlab_conntrack_entries", "nf_conntrack_count of the namespace: its connections' entries, expired ones included until the kernel's collector removes them (what the kernel compares with the maximum)."), Some(c.entries as f64)),
        (gauge("portlab_conntrack_max_entries", "nf_conntrack_max (host-wide): at this count the kernel drops a new connection's first packet (\"table full, dropping packet\")."), Some(c.max as f64)),
        (gauge("portlab_conntrack_new_entries_per_second", "New conntrack entries per second since the previous sample: the namespace's TCP opens, or the count's growth where faster (forwarded connections). Absent when no rule tracks this namespace's connections."), c.new_rate),
        (gauge("portlab_conntrack_hold_seconds", "How long a closed connection keeps its entry: nf_conntrack_tcp_timeout_time_wait (120 s by default, twice TCP's TIME_WAIT)."), Some(c.hold_s)),
        (gauge("portlab_conntrack_steady_state_entries", "New entries per second x the hold: where the count heads at this rate; above portlab_conntrack_max_entries the table fills."), c.steady_entries),
        (gauge("portlab_conntrack_full_eta_seconds", "(max - entries) / new entries per second when the count heads past the max or reaches it within one hold, 0 when full now; +Inf otherwise."), Some(c.eta_s.unwrap_or(f64::INFINITY))),
        (gauge("portlab_conntrack_state", "The conntrack table: 0 ok, 1 warning (fills at this rate, or within --warn-within), 2 exhausted (full, or new connections refused since the last sample: drop, early_drop, insert_failed)."), Some(state_value(c.state))),
    ]
}

/// The exporter's own families: samples taken, failed, how long the last one took, and
/// (`namespaces` > 1 or --all-netns) how many namespaces it watched.
pub fn sampler_families(t: &SamplerStats, namespaces: usize) -> String {
    let mut s = String::new();
    let families = [
        (counter("portlab_watch_samples_total", "Samples the exporter has taken since it started."), t.samples as f64),
        (counter("portlab_watch_sample_errors_total", "Samples that failed since the exporter started (the last good sample is served meanwhile; see portlab_watch_sample_timestamp_seconds)."), t.errors as f64),
        (gauge("portlab_watch_sample_duration_seconds", "How long the last sample took: listing the sockets, grouping and evaluating them (with --all-netns: every namespace, and the /proc scan)."), t.duration_s),
    ];
    for (family, v) in families {
        family.header(&mut s);
        let _ = writeln!(s, "{} {}", family.name, value(v));
    }
    if t.all_netns {
        let family = gauge(
            "portlab_watch_namespaces",
            "Network namespaces watched in the last sample (--all-netns).",
        );
        family.header(&mut s);
        let _ = writeln!(s, "{} {namespaces}", family.name);
    }
    s
}

/// Expositions merged into one: each family once, with its HELP and TYPE, followed by the
/// samples every part has for it (the format wants a family's samples together), families
/// in the order they first appear.
pub fn merge(parts: &[String]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut families: std::collections::HashMap<&str, (Vec<&str>, Vec<&str>)> =
        std::collections::HashMap::new();
    for part in parts {
        let mut current = "";
        for l in part.lines() {
            if let Some(rest) = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
            {
                current = rest.split(' ').next().unwrap_or("");
                let entry = families.entry(current).or_insert_with(|| {
                    order.push(current);
                    (Vec::new(), Vec::new())
                });
                if entry.0.len() < 2 && !entry.0.contains(&l) {
                    entry.0.push(l);
                }
            } else if !l.is_empty() {
                families
                    .entry(current)
                    .or_insert_with(|| {
                        order.push(current);
                        (Vec::new(), Vec::new())
                    })
                    .1
                    .push(l);
            }
        }
    }
    let mut s = String::new();
    for name in order {
        let (head, samples) = &families[name];
        for l in head.iter().chain(samples) {
            s += l;
            s += "\n";
        }
    }
    s
}

/// A state as a gauge value: 0 ok, 1 warning, 2 exhausted.
fn state_value(s: State) -> f64 {
    match s {
        State::Ok => 0.0,
        State::Warning => 1.0,
        State::Exhausted => 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_aligns_text_left_and_numbers_right() {
        let rows = [
            ["NAME".to_string(), "N".to_string(), "STATE".to_string()],
            ["a".to_string(), "1234".to_string(), "ok".to_string()],
            [
                "longer".to_string(),
                "5".to_string(),
                "EXHAUSTED".to_string(),
            ],
        ];
        let want = "\
NAME       N  STATE
a       1234  ok
longer     5  EXHAUSTED
";
        assert_eq!(grid(&rows, &[0, 2]), want);
        assert_eq!(grid::<2>(&[], &[0]), "");
    }
}
