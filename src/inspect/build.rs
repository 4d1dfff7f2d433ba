//! From what was read on each OS to a [`HostReport`] and its [`ModelInput`]. Pure (the
//! OS-specific collectors do the reading), so every OS's mapping is tested on Linux.

use std::collections::BTreeMap;

use super::parse::{
    parse_netsh_dynamicport, parse_netsh_excluded, parse_netstat_states, parse_reg_dword,
    parse_sysctl,
};
use super::{HostReport, Setting, Sockets};
use crate::model::host::linux_input;
use crate::model::host::DynamicPorts;
use crate::model::host::{macos_input, windows_input};
use crate::model::{num, ModelInput, Profile};
use crate::observe::KernelSample;
use crate::plan::sysctl::{
    Knob, PORT_RANGE, REGISTRY, RESERVED_PORTS, TIMESTAMPS, TW_REUSE, TW_REUSE_DELAY,
};
use crate::sys::NofileLimit;

/// The registry key holding MaxUserPort and TcpTimedWaitDelay.
pub const TCPIP_PARAMETERS: &str = r"HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters";

/// Linux: the sysctls `lab::read_settings` gives, one socket sample of the namespace, and
/// RLIMIT_NOFILE. One row per registry knob, in registry order.
pub fn linux_report(
    settings: &BTreeMap<String, String>,
    sample: &KernelSample,
    nofile: Option<NofileLimit>,
) -> HostReport {
    let (input, notes) = linux_input(settings);
    let rows = REGISTRY
        .iter()
        .map(|k| linux_row(k, settings.get(k.name).map(|v| v.trim()), &input))
        .collect();
    HostReport::new(
        "linux",
        "/proc/sys (the network namespace portlab runs in)".into(),
        rows,
        input,
        "fixed in the kernel (TCP_TIMEWAIT_LEN); no sysctl changes it".into(),
        nofile,
        linux_sockets(sample),
        notes,
    )
}

/// One knob's row: its value as read (tabs, as in ip_local_port_range, print as one space)
/// and what it means here.
fn linux_row(k: &Knob, value: Option<&str>, input: &ModelInput) -> Setting {
    let (value, note) = match value {
        Some("") => ("(empty)".to_string(), linux_note(k, "", input)),
        Some(v) => (
            v.split_whitespace().collect::<Vec<_>>().join(" "),
            linux_note(k, v, input),
        ),
        None if *k == TW_REUSE_DELAY => {
            return Setting {
                name: k.name.into(),
                value: "default (1000)".into(),
                default: true,
                note: Some("not in this kernel (Linux 6.14+): reuse after 1 s".into()),
            }
        }
        None => (
            "not available".to_string(),
            Some("not in this kernel, or not readable".to_string()),
        ),
    };
    Setting {
        name: k.name.to_string(),
        value,
        default: false,
        note,
    }
}

/// What `value` of knob `k` means on this host: the figure the model took from it where
/// there is one, else the registry's note.
fn linux_note(k: &Knob, value: &str, input: &ModelInput) -> Option<String> {
    Some(match *k {
        // Rows compare by name (a row holds functions, which patterns cannot match).
        _ if *k == PORT_RANGE => return input.port_range.map(|r| format!("{} ports", r.len())),
        _ if *k == RESERVED_PORTS => match input.reserved {
            0 => "none inside the range".to_string(),
            n => format!("{n} of them inside the range, never picked for connect()"),
        },
        _ if *k == TW_REUSE => match value {
            "0" => "off: connect() never takes a port still in TIME_WAIT",
            "1" => "on: connect() may reuse a TIME_WAIT port after the delay",
            "2" => {
                "loopback only (the default): connect() may reuse a TIME_WAIT port after the delay"
            }
            _ => "unrecognised value",
        }
        .to_string(),
        _ if *k == TW_REUSE_DELAY => format!("{} ({} s)", k.note, num(input.tw_reuse_delay_s)),
        _ if *k == TIMESTAMPS && value == "0" => format!("off: {}", k.note),
        _ if *k == TIMESTAMPS => "on: tcp_tw_reuse can work".to_string(),
        _ => k.note.to_string(),
    })
}

/// The namespace's socket counts, and where they came from.
fn linux_sockets(sample: &KernelSample) -> Sockets {
    Sockets {
        time_wait: sample.tw_total.or(sample.tw_sockstat),
        established: sample.established,
        time_wait_by_destination: sample.tw_by_destination.clone().filter(|d| !d.is_empty()),
        source: match (sample.source, sample.tw_sockstat) {
            (Some(crate::observe::SocketSource::SockDiag), _) => Some("netlink sock_diag".into()),
            (Some(crate::observe::SocketSource::ProcNetTcp), _) => {
                Some("/proc/net/tcp and tcp6".into())
            }
            (None, Some(_)) => Some("/proc/net/sockstat (TIME_WAIT only)".into()),
            (None, None) => None,
        },
    }
}

/// Windows: the outputs of `netsh int ipv4 show dynamicport tcp`, `reg query` of
/// [`TCPIP_PARAMETERS`] and `netstat -an` (None: the command could not be run), and of
/// `netsh int ipv4 show excludedportrange protocol=tcp`.
pub fn windows_report(
    netsh: Option<&str>,
    excluded: Option<&str>,
    reg: Option<&str>,
    netstat: Option<&str>,
) -> HostReport {
    let read = WindowsRead::parse(netsh, excluded, reg);
    let mut notes = read.notes.clone();
    let (input, more) = windows_input(read.dynamic, &read.excluded, read.max_user_port, read.delay);
    notes.extend(more);
    if reg.is_none() {
        notes.push(format!(
            "reg query {TCPIP_PARAMETERS} could not be run: registry values shown as defaults"
        ));
    }
    let rows = vec![
        read.dynamic_row(&input),
        read.excluded_row(excluded.is_some(), &input),
        read.max_user_port_row(),
        read.delay_row(),
    ];
    let counts = netstat.and_then(parse_netstat_states);
    let sockets = Sockets {
        time_wait: counts.map(|c| c.time_wait),
        established: counts.map(|c| c.established),
        time_wait_by_destination: None,
        source: counts.map(|_| "netstat -an".into()),
    };
    let time_wait_from = match read.delay.filter(|&t| t > 0) {
        Some(_) => "TcpTimedWaitDelay".to_string(),
        None => "TcpTimedWaitDelay not set: the default".to_string(),
    };
    HostReport::new(
        "windows",
        format!("netsh and the registry ({TCPIP_PARAMETERS})"),
        rows,
        input,
        time_wait_from,
        None,
        sockets,
        notes,
    )
}

/// What netsh and the registry gave on Windows, parsed, and the rows that show it.
struct WindowsRead {
    dynamic: Option<DynamicPorts>,
    excluded: Vec<(u16, u16)>,
    max_user_port: Option<u32>,
    delay: Option<u32>,
    /// Registry values that did not parse.
    notes: Vec<String>,
}

impl WindowsRead {
    fn parse(netsh: Option<&str>, excluded: Option<&str>, reg: Option<&str>) -> WindowsRead {
        let mut notes = Vec::new();
        let mut dword = |name: &str| match reg.map(|t| parse_reg_dword(t, name)) {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                notes.push(e);
                None
            }
            None => None,
        };
        let max_user_port = dword("MaxUserPort");
        let delay = dword("TcpTimedWaitDelay");
        WindowsRead {
            dynamic: netsh.and_then(parse_netsh_dynamicport),
            excluded: excluded.map(parse_netsh_excluded).unwrap_or_default(),
            max_user_port,
            delay,
            notes,
        }
    }

    fn dynamic_row(&self, input: &ModelInput) -> Setting {
        Setting {
            name: "netsh int ipv4 show dynamicport tcp".into(),
            value: match self.dynamic {
                Some(d) => format!("start {}, {} ports", d.start, d.count),
                None => "not available".into(),
            },
            default: false,
            note: Some(match (self.dynamic, input.port_range) {
                (Some(_), Some(r)) => format!(
                    "ports {r}; change with netsh int ipv4 set dynamicport tcp start=N num=M"
                ),
                _ => "netsh could not be run or printed no range (Vista / 2008 and later have it)"
                    .into(),
            }),
        }
    }

    /// `read`: whether netsh's excluded ranges could be read at all.
    fn excluded_row(&self, read: bool, input: &ModelInput) -> Setting {
        let list = self
            .excluded
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>();
        Setting {
            name: "netsh int ipv4 show excludedportrange protocol=tcp".into(),
            value: match (read, list.is_empty()) {
                (false, _) => "not available".into(),
                (true, true) => "none".into(),
                (true, false) => list.join(","),
            },
            default: false,
            note: Some(match self.dynamic {
                Some(_) => format!(
                    "{} of them inside the dynamic range, never handed out (Hyper-V, WinNAT, ...)",
                    input.reserved
                ),
                None => "reserved ranges (Hyper-V, WinNAT, ...)".into(),
            }),
        }
    }

    fn max_user_port_row(&self) -> Setting {
        Setting {
            name: "MaxUserPort".into(),
            value: match self.max_user_port {
                Some(m) => m.to_string(),
                None => "default (5000)".into(),
            },
            default: self.max_user_port.is_none(),
            note: Some(if self.dynamic.is_some() {
                "XP / 2003 only (ports 1025-MaxUserPort); not the range in force here".into()
            } else {
                "XP / 2003: ephemeral ports are 1025-MaxUserPort; a change needs a reboot".into()
            }),
        }
    }

    fn delay_row(&self) -> Setting {
        Setting {
            name: "TcpTimedWaitDelay".into(),
            value: match self.delay {
                Some(t) => t.to_string(),
                None => "default (240)".into(),
            },
            default: self.delay.is_none(),
            note: Some("s: how long TIME_WAIT lasts; a change needs a reboot".into()),
        }
    }
}

/// macOS: the output of `sysctl NAMES` and `netstat -an -p tcp` (None: could not be run),
/// and RLIMIT_NOFILE.
pub fn macos_report(
    sysctl: Option<&str>,
    netstat: Option<&str>,
    nofile: Option<NofileLimit>,
) -> HostReport {
    let settings = sysctl.map(parse_sysctl).unwrap_or_default();
    let (input, mut notes) = macos_input(&settings);
    if sysctl.is_none() {
        notes.push("sysctl could not be run: defaults shown".into());
    }
    let row = |name: &str, default: &str, note: String| {
        let v = settings.get(name).map(|v| v.trim());
        Setting {
            name: name.to_string(),
            value: v.map_or(format!("default ({default})"), str::to_string),
            default: v.is_none(),
            note: Some(note),
        }
    };
    let range = input.port_range.map_or(String::new(), |r| r.to_string());
    let rows = vec![
        row(
            "net.inet.ip.portrange.first",
            "49152",
            format!("ephemeral ports {range}: {} ports", input.ports),
        ),
        row(
            "net.inet.ip.portrange.last",
            "65535",
            "last ephemeral port".into(),
        ),
        row(
            "net.inet.tcp.msl",
            "15000",
            format!("ms: TIME_WAIT = 2 x MSL = {} s", num(input.time_wait_s)),
        ),
        row(
            "kern.ipc.somaxconn",
            "128",
            "caps every listen() backlog".into(),
        ),
    ];
    let counts = netstat.and_then(parse_netstat_states);
    let sockets = Sockets {
        time_wait: counts.map(|c| c.time_wait),
        established: counts.map(|c| c.established),
        time_wait_by_destination: None,
        source: counts.map(|_| "netstat -an -p tcp".into()),
    };
    HostReport::new(
        "macos",
        "sysctl".into(),
        rows,
        input,
        "2 x net.inet.tcp.msl".into(),
        nofile,
        sockets,
        notes,
    )
}

/// Any other OS: the profile's defaults, said to be defaults.
pub fn defaults_report(profile: Profile, nofile: Option<NofileLimit>) -> HostReport {
    let input = ModelInput::from_profile(profile);
    HostReport::new(
        std::env::consts::OS,
        format!("nothing: portlab cannot read this OS's settings; the {profile} profile's defaults"),
        Vec::new(),
        input,
        format!("the {profile} profile's default"),
        nofile,
        Sockets::default(),
        vec![format!(
            "these are defaults, not this host's values: check them and use portlab predict --profile {profile} --port-range LO-HI --time-wait T"
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TwReuse;
    use crate::plan::PortRange;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn windows_2003_max_user_port_and_delay() {
        // MaxUserPort 5000, TcpTimedWaitDelay 240 -> 1025-5000 = 3976 ports, 240 s.
        let (i, _) = windows_input(None, &[], Some(5000), Some(240));
        assert_eq!(i.profile, Profile::Windows2003);
        assert_eq!(i.port_range, Some(PortRange::new(1025, 5000).unwrap()));
        assert_eq!(i.ports, 3976);
        assert_eq!(i.time_wait_s, 240.0);
        assert_eq!(i.tw_reuse, TwReuse::Off);
        i.validate().unwrap();
    }

    #[test]
    fn windows_netsh_range_wins_and_absent_delay_is_240() {
        let d = DynamicPorts {
            start: 49152,
            count: 16384,
        };
        let (i, notes) = windows_input(Some(d), &[], None, None);
        assert_eq!(i.profile, Profile::Windows2008);
        assert_eq!(i.port_range, Some(PortRange::new(49152, 65535).unwrap()));
        assert_eq!((i.ports, i.time_wait_s), (16384, 240.0));
        assert!(notes.is_empty(), "{notes:?}");
        // MaxUserPort alongside netsh: netsh's range is used, and the note says so.
        let d = DynamicPorts {
            start: 10000,
            count: 1000,
        };
        let (i, notes) = windows_input(Some(d), &[], Some(5000), Some(30));
        assert_eq!((i.ports, i.time_wait_s), (1000, 30.0));
        assert!(
            notes.iter().any(|n| n.contains("MaxUserPort = 5000")),
            "{notes:?}"
        );
    }

    #[test]
    fn windows_excluded_ranges_inside_the_dynamic_range_are_reserved() {
        // 49152-65535 minus 50000-50059 (60) and 50050-50099 (overlapping: 40 more), 5357
        // outside: 16384 - 100 = 16284 usable.
        let d = DynamicPorts {
            start: 49152,
            count: 16384,
        };
        let (i, _) = windows_input(
            Some(d),
            &[(5357, 5357), (50000, 50059), (50050, 50099)],
            None,
            None,
        );
        assert_eq!((i.reserved, i.ports), (100, 16284));
        let excl = "Start Port    End Port\n----------    --------\n     50000       50059     *\n";
        let r = windows_report(
            Some("Start Port      : 49152\nNumber of Ports : 16384\n"),
            Some(excl),
            None,
            None,
        );
        assert_eq!(r.ports.usable, 16324);
        assert!(r.settings.iter().any(|s| s.value == "50000-50059"));
    }

    #[test]
    fn windows_nothing_readable_is_the_2008_default() {
        let (i, notes) = windows_input(None, &[], None, None);
        assert_eq!(i, ModelInput::from_profile(Profile::Windows2008));
        assert!(!notes.is_empty());
    }

    #[test]
    fn windows_report_from_command_output() {
        let netsh = "Protocol tcp Dynamic Port Range\n---------------------------------\nStart Port      : 49152\nNumber of Ports : 16384\n";
        let reg = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\n    TcpTimedWaitDelay    REG_DWORD    0x1e\n";
        let r = windows_report(Some(netsh), None, Some(reg), None);
        assert_eq!((r.ports.usable, r.time_wait.seconds), (16384, 30.0));
        let max_user = r.settings.iter().find(|s| s.name == "MaxUserPort").unwrap();
        assert_eq!(max_user.value, "default (5000)");
        assert!(max_user.default);
        let delay = r
            .settings
            .iter()
            .find(|s| s.name == "TcpTimedWaitDelay")
            .unwrap();
        assert_eq!((delay.value.as_str(), delay.default), ("30", false));
        // Registry unreadable: 240 s, reported as the default.
        let r = windows_report(Some(netsh), None, None, None);
        assert_eq!(r.time_wait.seconds, 240.0);
        let delay = r
            .settings
            .iter()
            .find(|s| s.name == "TcpTimedWaitDelay")
            .unwrap();
        assert_eq!(delay.value, "default (240)");
    }

    #[test]
    fn windows_2003_text_and_model() {
        // The seed case: MaxUserPort 5000 (3976 ports), TcpTimedWaitDelay absent (240 s),
        // 30 conn/s -> 7200 needed, first WSAENOBUFS at 132.53 s, 16.57 conn/s after.
        let reg = "    MaxUserPort    REG_DWORD    0x1388\r\n";
        let host = windows_report(
            None,
            None,
            Some(reg),
            Some("  TCP    1.2.3.4:1030   5.6.7.8:1433   TIME_WAIT\r\n"),
        );
        let input = ModelInput {
            rate: Some(30.0),
            ..host.input.clone()
        };
        let m = super::super::model(input);
        let t = super::super::render(&host, &m);
        for needle in [
            "portlab inspect: windows",
            "MaxUserPort",
            "TcpTimedWaitDelay",
            "default (240)",
            "TIME_WAIT     1",
            "3976 usable ports (range 1025-5000",
            "WARNING: 30 conn/s x 240 s TIME_WAIT = 7200 ports needed, more than the 3976 usable: the first WSAENOBUFS comes after 3976 / 30 conn/s = 132.53 s, then at most 16.57 conn/s succeed.",
            "MaxUserPort",
        ] {
            assert!(t.contains(needle), "{needle:?} missing in\n{t}");
        }
        assert!(!t.contains("RLIMIT_NOFILE"), "{t}");
    }

    #[test]
    fn macos_sysctl_mapping() {
        let (i, _) = macos_input(&map(&[
            ("net.inet.ip.portrange.first", "49152"),
            ("net.inet.ip.portrange.last", "65535"),
            ("net.inet.tcp.msl", "15000"),
        ]));
        assert_eq!((i.ports, i.time_wait_s), (16384, 30.0));
        let (i, _) = macos_input(&map(&[
            ("net.inet.ip.portrange.first", "50000"),
            ("net.inet.ip.portrange.last", "50999"),
            ("net.inet.tcp.msl", "5000"),
        ]));
        assert_eq!(i.port_range, Some(PortRange::new(50000, 50999).unwrap()));
        assert_eq!((i.ports, i.time_wait_s), (1000, 10.0));
        // Nothing read: the macos defaults.
        let (i, _) = macos_input(&BTreeMap::new());
        assert_eq!(i, ModelInput::from_profile(Profile::Macos));
    }

    #[test]
    fn macos_report_marks_absent_values_as_defaults() {
        let r = macos_report(Some("net.inet.ip.portrange.first: 60000\n"), None, None);
        assert_eq!(r.ports.first, Some(60000));
        assert_eq!(r.ports.usable, 65535 - 60000 + 1);
        let msl = r
            .settings
            .iter()
            .find(|s| s.name == "net.inet.tcp.msl")
            .unwrap();
        assert_eq!((msl.value.as_str(), msl.default), ("default (15000)", true));
        assert_eq!(r.time_wait.seconds, 30.0);
    }

    #[test]
    fn linux_report_counts_and_timestamps_off_disables_reuse() {
        let s = map(&[
            ("net.ipv4.ip_local_port_range", "40000\t40999"),
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.tcp_timestamps", "0"),
        ]);
        let sample = KernelSample {
            tw_total: Some(12),
            established: Some(3),
            ..KernelSample::default()
        };
        let r = linux_report(&s, &sample, None);
        assert_eq!(r.ports.first, Some(40000));
        assert_eq!(r.ports.last, Some(40999));
        assert_eq!(r.ports.usable, 1000);
        assert_eq!(
            (r.sockets.time_wait, r.sockets.established),
            (Some(12), Some(3))
        );
        assert_eq!(r.input.tw_reuse, TwReuse::Off);
        assert!(r.notes.iter().any(|n| n.contains("tcp_timestamps = 0")));
        let range = &r.settings[0];
        assert_eq!(range.value, "40000 40999");
    }
}
