//! The host's side of the model, in one place: what was read on each OS (Linux sysctls by
//! their registry rows, Windows' netsh and registry values, macOS' sysctls) -> the
//! [`ModelInput`] defaults a run, `inspect` and `watch` start from. Pure: the readers
//! (lab::read_settings, inspect's collectors) do the I/O.

use super::profile::{ModelInput, PortSpec, Profile, TwReuse};
use super::ModelError;
use crate::plan::sysctl::{
    MAX_TW_BUCKETS, PORT_RANGE, RESERVED_PORTS, TIMESTAMPS, TW_REUSE, TW_REUSE_DELAY,
};
use crate::plan::PortRange;
use std::collections::BTreeMap;

/// The profile of the OS portlab runs on.
pub fn host_profile() -> Profile {
    if cfg!(target_os = "linux") {
        Profile::Linux
    } else if cfg!(target_os = "macos") {
        Profile::Macos
    } else if cfg!(target_os = "freebsd") {
        Profile::Freebsd
    } else if cfg!(windows) {
        Profile::Windows2008
    } else {
        Profile::Custom
    }
}

pub(super) fn setting<'a>(settings: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    settings.get(name).map(|v| v.trim())
}

/// Counts the reserved ports ("1000-1010,2000") that fall inside `range`; a list the
/// kernel would not have printed counts as none.
pub(super) fn reserved_in(list: &str, range: PortRange) -> u32 {
    PortRange::parse_list(list)
        .map(|l| l.iter().map(|r| r.overlap(range)).sum())
        .unwrap_or(0)
}

/// The host's side of the model: [`host_profile`]'s defaults with the Linux `settings`
/// (sysctl name -> value, as `lab::read_settings` gives them; a missing or unreadable one
/// keeps the default) laid over them: port range, reserved ports, tcp_tw_reuse, its delay and
/// tcp_max_tw_buckets. The workload fields (rate, close, ...) are the defaults of
/// [`ModelInput::from_profile`]. Used by [`super::from_plan::input_for`], `portlab inspect` and `portlab watch`.
pub fn host_input(settings: &BTreeMap<String, String>) -> ModelInput {
    let mut input = ModelInput::from_profile(host_profile());
    if let Some(r) = setting(settings, PORT_RANGE.name) {
        let mut it = r.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
        if let (Some(lo), Some(hi)) = (it.next(), it.next()) {
            if let Ok(range) = PortRange::new(lo, hi) {
                let reserved =
                    setting(settings, RESERVED_PORTS.name).map_or(0, |l| reserved_in(l, range));
                if let Ok(i) = input.clone().with_ports(PortSpec::Range(range), reserved) {
                    input = i;
                }
            }
        }
    }
    input.tw_reuse = match setting(settings, TW_REUSE.name) {
        Some("0") => TwReuse::Off,
        Some("1") => TwReuse::On,
        Some("2") => TwReuse::Loopback,
        _ => input.tw_reuse,
    };
    if let Some(ms) = setting(settings, TW_REUSE_DELAY.name).and_then(|v| v.parse::<f64>().ok()) {
        input.tw_reuse_delay_s = ms / 1000.0;
    }
    input.max_tw_buckets = setting(settings, MAX_TW_BUCKETS.name).and_then(|v| v.parse().ok());
    input
}

/// [`host_input`] as `inspect` shows it: with tcp_timestamps = 0, tcp_tw_reuse can never
/// apply, so the model takes it as 0, and a note says so.
pub fn linux_input(settings: &BTreeMap<String, String>) -> (ModelInput, Vec<String>) {
    let mut input = host_input(settings);
    let mut notes = Vec::new();
    if setting(settings, TIMESTAMPS.name) == Some("0") && input.tw_reuse != TwReuse::Off {
        notes.push(format!(
            "tcp_tw_reuse = {} but tcp_timestamps = 0: reuse needs timestamps on the old connection, so the model takes tcp_tw_reuse as 0",
            input.tw_reuse.value()
        ));
        input.tw_reuse = TwReuse::Off;
    }
    (input, notes)
}

/// The dynamic (ephemeral) port range `netsh int ipv4 show dynamicport tcp` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicPorts {
    /// "Start Port".
    pub start: u16,
    /// "Number of Ports".
    pub count: u32,
}

/// Windows' model input: the dynamic port range netsh shows (Vista / 2008 and later) or,
/// without it, MaxUserPort (XP / 2003: ports 1025-MaxUserPort); TcpTimedWaitDelay in
/// seconds. Absent values take the windows-2008 (or, with MaxUserPort, windows-2003)
/// defaults: 49152-65535, 240 s. Returns the notes on what was assumed.
///
/// `excluded` are netsh's excluded port ranges: those inside the dynamic range count as
/// reserved (never handed out).
pub fn windows_input(
    dynamic: Option<DynamicPorts>,
    excluded: &[(u16, u16)],
    max_user_port: Option<u32>,
    timed_wait_delay: Option<u32>,
) -> (ModelInput, Vec<String>) {
    let mut notes = Vec::new();
    let mut input = match (dynamic, max_user_port) {
        (Some(d), _) => {
            let base = ModelInput::from_profile(Profile::Windows2008);
            let last = (u32::from(d.start).saturating_add(d.count.max(1) - 1)).min(65535) as u16;
            if u32::from(last) - u32::from(d.start) + 1 < d.count {
                notes.push(format!(
                    "netsh's range starting at {} with {} ports would pass 65535; counted up to 65535",
                    d.start, d.count
                ));
            }
            if let Some(m) = max_user_port {
                notes.push(format!(
                    "MaxUserPort = {m} is set, but it is the XP / 2003 setting: Vista / 2008 and later take their ports from the dynamic port range netsh shows, which the model uses"
                ));
            }
            let Ok(range) = PortRange::new(d.start, last) else {
                return (base, notes);
            };
            let reserved = excluded_in(excluded, range);
            match base.clone().with_ports(PortSpec::Range(range), reserved) {
                Ok(i) => i,
                Err(_) => {
                    notes.push(format!(
                        "the excluded port ranges cover all of {range}; ignored"
                    ));
                    base.with_ports(PortSpec::Range(range), 0)
                        .unwrap_or_else(|_| ModelInput::from_profile(Profile::Windows2008))
                }
            }
        }
        (None, Some(m)) if (1025..=65535).contains(&m) => {
            let base = ModelInput::from_profile(Profile::Windows2003);
            PortRange::new(1025, m as u16)
                .map_err(ModelError::from)
                .and_then(|r| base.clone().with_ports(PortSpec::Range(r), 0))
                .unwrap_or(base)
        }
        (None, m) => {
            if let Some(m) = m {
                notes.push(format!("MaxUserPort = {m} is outside 5000-65534; ignored"));
            }
            notes.push(
                "no dynamic port range could be read: the model uses the Vista / 2008 default, 49152-65535"
                    .into(),
            );
            ModelInput::from_profile(Profile::Windows2008)
        }
    };
    match timed_wait_delay {
        Some(0) => {
            notes.push("TcpTimedWaitDelay = 0 is not a delay; the default 240 s is used".into())
        }
        Some(t) => input.time_wait_s = f64::from(t),
        None => {}
    }
    (input, notes)
}

/// Ports of `range` inside the (possibly overlapping) `excluded` ranges.
fn excluded_in(excluded: &[(u16, u16)], range: PortRange) -> u32 {
    (range.lo..=range.hi)
        .filter(|p| excluded.iter().any(|&(lo, hi)| (lo..=hi).contains(p)))
        .count() as u32
}

/// macOS' model input from its sysctls: net.inet.ip.portrange.first / last and
/// net.inet.tcp.msl (ms; TIME_WAIT = 2 x MSL). Absent or unusable values keep the macos
/// profile's defaults (49152-65535, MSL 15 s so 30 s).
pub fn macos_input(settings: &BTreeMap<String, String>) -> (ModelInput, Vec<String>) {
    let mut input = ModelInput::from_profile(Profile::Macos);
    let mut notes = Vec::new();
    let port = |name: &str| setting(settings, name).and_then(|v| v.parse::<u16>().ok());
    let default = input.port_range.expect("macos has a range");
    let (first, last) = (
        port("net.inet.ip.portrange.first").unwrap_or(default.lo),
        port("net.inet.ip.portrange.last").unwrap_or(default.hi),
    );
    // The kernel accepts first > last and then counts downwards.
    let (lo, hi) = (first.min(last), first.max(last));
    match PortRange::new(lo, hi)
        .map_err(ModelError::from)
        .and_then(|r| input.clone().with_ports(PortSpec::Range(r), 0))
    {
        Ok(i) => input = i,
        Err(e) => notes.push(format!(
            "port range {first}-{last} not usable ({e}); default used"
        )),
    }
    match setting(settings, "net.inet.tcp.msl").and_then(|v| v.parse::<f64>().ok()) {
        Some(ms) if ms > 0.0 => input.time_wait_s = 2.0 * ms / 1000.0,
        Some(_) => notes.push("net.inet.tcp.msl is 0; the default 15000 ms is used".into()),
        None => {}
    }
    (input, notes)
}
