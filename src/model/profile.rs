//! OS profiles (their default port ranges, TIME_WAIT lengths and error names) and
//! [`ModelInput`], everything the model reads.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::ModelError;

/// An operating system whose defaults the model starts from (`shared/tcp-facts.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
pub enum Profile {
    /// Linux: 32768-60999, TIME_WAIT 60 s (fixed), tcp_tw_reuse 2, reuse delay 1 s.
    #[serde(rename = "linux")]
    #[value(name = "linux")]
    Linux,
    /// Windows XP / Server 2003: 1025-5000 (MaxUserPort 5000), TcpTimedWaitDelay 240 s.
    #[serde(rename = "windows-2003")]
    #[value(name = "windows-2003", alias = "windows-xp")]
    Windows2003,
    /// Windows Vista / Server 2008 and later: 49152-65535, TcpTimedWaitDelay 240 s.
    #[serde(rename = "windows-2008")]
    #[value(name = "windows-2008", alias = "windows")]
    Windows2008,
    /// macOS: 49152-65535, MSL 15 s so TIME_WAIT 30 s.
    #[serde(rename = "macos")]
    #[value(name = "macos")]
    Macos,
    /// FreeBSD: 10000-65535, TIME_WAIT 60 s.
    #[serde(rename = "freebsd")]
    #[value(name = "freebsd")]
    Freebsd,
    /// No defaults: ports and TIME_WAIT must be given; Linux knobs (tw_reuse,
    /// max_tw_buckets) are allowed and off unless given.
    #[serde(rename = "custom")]
    #[value(name = "custom")]
    Custom,
}

impl Profile {
    /// Every profile, in the order help and errors list them.
    pub const ALL: [Profile; 6] = [
        Profile::Linux,
        Profile::Windows2003,
        Profile::Windows2008,
        Profile::Macos,
        Profile::Freebsd,
        Profile::Custom,
    ];

    /// The accepted names, as listed in errors.
    pub const NAMES: &'static str = "linux, windows-2003, windows-2008, macos, freebsd, custom";

    /// The profile's name as written on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Linux => "linux",
            Profile::Windows2003 => "windows-2003",
            Profile::Windows2008 => "windows-2008",
            Profile::Macos => "macos",
            Profile::Freebsd => "freebsd",
            Profile::Custom => "custom",
        }
    }

    /// The default ephemeral port range; `None` for `custom`.
    pub fn port_range(self) -> Option<PortRange> {
        let (lo, hi) = match self {
            Profile::Linux => (32768, 60999),
            Profile::Windows2003 => (1025, 5000),
            Profile::Windows2008 | Profile::Macos => (49152, 65535),
            Profile::Freebsd => (10000, 65535),
            Profile::Custom => return None,
        };
        Some(PortRange { lo, hi })
    }

    /// The default TIME_WAIT length in seconds; `None` for `custom`.
    pub fn time_wait_s(self) -> Option<f64> {
        match self {
            Profile::Linux | Profile::Freebsd => Some(60.0),
            Profile::Windows2003 | Profile::Windows2008 => Some(240.0),
            Profile::Macos => Some(30.0),
            Profile::Custom => None,
        }
    }

    /// The default tcp_tw_reuse: 2 (loopback only) on Linux, off elsewhere.
    pub fn tw_reuse(self) -> TwReuse {
        match self {
            Profile::Linux => TwReuse::Loopback,
            _ => TwReuse::Off,
        }
    }

    /// Whether the Linux-only knobs (tcp_tw_reuse, its delay, tcp_max_tw_buckets) exist.
    pub fn has_linux_knobs(self) -> bool {
        matches!(self, Profile::Linux | Profile::Custom)
    }

    /// The error a client sees when the ports run out. On Linux it depends on where the
    /// port is chosen: connect() fails with EADDRNOTAVAIL, bind(0) with EADDRINUSE.
    pub fn exhaustion_error(self, bind: BindModel) -> &'static str {
        match (self, bind) {
            (Profile::Linux, BindModel::PerDestination) => "EADDRNOTAVAIL",
            (Profile::Linux, BindModel::WholeRange) => "EADDRINUSE",
            (Profile::Windows2003, _) => "WSAENOBUFS",
            (Profile::Windows2008, _) => "WSAEADDRINUSE",
            (Profile::Macos | Profile::Freebsd, _) => "EADDRNOTAVAIL",
            (Profile::Custom, _) => "EADDRNOTAVAIL or EADDRINUSE",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = ModelError;

    /// Accepts the names in [`Profile::NAMES`] and their aliases, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use clap::ValueEnum;
        Profile::ALL
            .into_iter()
            .find(|p| {
                p.to_possible_value()
                    .is_some_and(|v| v.matches(s.trim(), true))
            })
            .ok_or_else(|| ModelError::UnknownProfile {
                given: s.to_string(),
                accepted: Profile::NAMES.to_string(),
            })
    }
}

use crate::plan::PortRange;

/// Where the usable ports come from: a range, or just a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    /// An inclusive range, as configured on the host.
    Range(PortRange),
    /// A number of ports, when only the count is known.
    Count(u32),
}

/// Linux `net.ipv4.tcp_tw_reuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TwReuse {
    /// 0: connect() never takes a port still in TIME_WAIT.
    #[value(name = "0")]
    Off,
    /// 1: connect() may take a TIME_WAIT port after tcp_tw_reuse_delay.
    #[value(name = "1")]
    On,
    /// 2: as 1, but only for loopback traffic (the default since about 4.18).
    #[value(name = "2")]
    Loopback,
}

impl TwReuse {
    /// The sysctl value, 0, 1 or 2.
    pub fn value(self) -> u8 {
        match self {
            TwReuse::Off => 0,
            TwReuse::On => 1,
            TwReuse::Loopback => 2,
        }
    }
}

impl Serialize for TwReuse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.value())
    }
}

/// Which side keeps TIME_WAIT: the side that closes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum TimeWaitSide {
    /// Active close (or a non-zero linger, which only delays close): the client's port
    /// stays in TIME_WAIT, which is what exhausts it.
    #[serde(rename = "client")]
    Client,
    /// Passive close: the server closes first and keeps TIME_WAIT on its own port; the
    /// client's port is free as soon as the connection ends.
    #[serde(rename = "server")]
    Server,
    /// Reset (SO_LINGER 0): the socket goes straight to CLOSED, no TIME_WAIT anywhere.
    #[serde(rename = "none")]
    Nobody,
}

impl TimeWaitSide {
    /// `client`, `server` or `none`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TimeWaitSide::Client => "client",
            TimeWaitSide::Server => "server",
            TimeWaitSide::Nobody => "none",
        }
    }
}

/// How the client's local port is chosen, which decides what the port range is shared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
pub enum BindModel {
    /// connect() picks the port (or bind(ip, 0) with IP_BIND_ADDRESS_NO_PORT): a port is
    /// only taken for one (source, destination) pair, so capacity multiplies by
    /// destinations x source addresses.
    #[serde(rename = "auto")]
    #[value(name = "auto")]
    PerDestination,
    /// bind(0) before connect(): the port must be free of every bind conflict, whatever
    /// the destination, so the whole range is shared by all destinations.
    #[serde(rename = "any-port")]
    #[value(name = "any-port")]
    WholeRange,
}

/// Everything the model reads. Build it with [`ModelInput::from_profile`], then override
/// fields (struct update syntax) and set ports with [`ModelInput::with_ports`]; check it
/// with [`ModelInput::validate`] before predicting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInput {
    /// Whose defaults were used; also picks the error name and the commands in the advice.
    pub profile: Profile,
    /// The configured range the ports come from, when known; the advice extends it.
    pub port_range: Option<PortRange>,
    /// Ports in the range that are reserved (ip_local_reserved_ports) and never picked.
    pub reserved: u32,
    /// P: usable ephemeral ports per (source address, destination), range minus reserved.
    pub ports: u32,
    /// T: how long a closed socket stays in TIME_WAIT, seconds.
    pub time_wait_s: f64,
    /// Linux tcp_tw_reuse: where it applies, a client port is reusable after the delay.
    pub tw_reuse: TwReuse,
    /// Linux tcp_tw_reuse_delay in seconds (default 1 s): the hold when reuse applies.
    pub tw_reuse_delay_s: f64,
    /// Linux tcp_max_tw_buckets: TIME_WAIT cannot exceed it; closes past it skip TIME_WAIT.
    pub max_tw_buckets: Option<u64>,
    /// R: new connections (requests) per second; `None` = closed loop or unknown, then
    /// only capacity figures are predicted.
    pub rate: Option<f64>,
    /// Who keeps TIME_WAIT, from the close mode (active, passive, reset).
    pub timewait_side: TimeWaitSide,
    /// 0: one connection per request. N > 0: N persistent connections hold N ports and
    /// nothing enters TIME_WAIT.
    pub pool: u32,
    /// Whether the range is per destination (connect()) or shared (bind before connect).
    pub bind: BindModel,
    /// Destinations the load is spread over evenly (>= 1).
    pub destinations: u32,
    /// Local source addresses the load is spread over evenly (>= 1).
    pub sources: u32,
    /// Whether the target is on loopback, which is where tcp_tw_reuse = 2 applies.
    pub loopback: bool,
    /// Sockets already holding ports when the run starts (observed); they reduce P.
    pub preexisting: u32,
    /// Linux, SO_REUSEADDR on sockets bound to explicit ports (`--bind range=`): bind() may
    /// take a port held in TIME_WAIT, so the error moves to connect() (EADDRNOTAVAIL); and
    /// with `timestamps`, connect() takes over the TIME_WAIT socket of the same 4-tuple at
    /// once, whatever tcp_tw_reuse says (tcp_twsk_unique is called without a port search), so
    /// the ports never run out. Measured in the lab (scenarios/reuse-addr*.toml).
    pub explicit_bind_reuse_addr: bool,
    /// Linux tcp_timestamps (on by default): TIME_WAIT takeover needs them.
    pub timestamps: bool,
}

impl ModelInput {
    /// The profile's defaults with a remote target, active close, no pool, connect()
    /// choosing ports, one destination and one source, and no rate. For `custom`, ports
    /// and TIME_WAIT are 0 and [`ModelInput::validate`] asks for them.
    pub fn from_profile(profile: Profile) -> Self {
        let range = profile.port_range();
        ModelInput {
            profile,
            port_range: range,
            reserved: 0,
            ports: range.map_or(0, PortRange::len),
            time_wait_s: profile.time_wait_s().unwrap_or(0.0),
            tw_reuse: profile.tw_reuse(),
            tw_reuse_delay_s: 1.0,
            max_tw_buckets: None,
            rate: None,
            timewait_side: TimeWaitSide::Client,
            pool: 0,
            bind: BindModel::PerDestination,
            destinations: 1,
            sources: 1,
            loopback: false,
            preexisting: 0,
            explicit_bind_reuse_addr: false,
            timestamps: true,
        }
    }

    /// Sets the port range (or count) and the reserved ports inside it, keeping
    /// `port_range`, `reserved` and `ports` consistent. Refuses reserving every port.
    pub fn with_ports(mut self, spec: PortSpec, reserved: u32) -> Result<Self, ModelError> {
        let (range, total) = match spec {
            PortSpec::Range(r) => (Some(r), r.len()),
            PortSpec::Count(n) => (None, n),
        };
        if total == 0 {
            return Err(ModelError::Value {
                flag: "--ports",
                given: "0".into(),
                reason: "at least 1 port is needed".into(),
            });
        }
        if reserved >= total {
            return Err(ModelError::Value {
                flag: "--reserved",
                given: reserved.to_string(),
                reason: format!("must be below the {total} ports of the range"),
            });
        }
        self.port_range = range;
        self.reserved = reserved;
        self.ports = total - reserved;
        Ok(self)
    }

    /// Checks every value, naming the flag at fault and what it accepts.
    pub fn validate(&self) -> Result<(), ModelError> {
        let custom = self.profile == Profile::Custom;
        if self.ports == 0 {
            return Err(if custom {
                ModelError::MissingForCustom {
                    flag: "--ports or --port-range",
                    what: "the usable ephemeral ports",
                }
            } else {
                ModelError::Value {
                    flag: "--ports",
                    given: "0".into(),
                    reason: "at least 1 usable port is needed".into(),
                }
            });
        }
        if custom && self.time_wait_s == 0.0 {
            return Err(ModelError::MissingForCustom {
                flag: "--time-wait",
                what: "how long TIME_WAIT lasts, e.g. 60s",
            });
        }
        if !(self.time_wait_s.is_finite() && self.time_wait_s > 0.0) {
            return Err(ModelError::Value {
                flag: "--time-wait",
                given: format!("{} s", self.time_wait_s),
                reason: "must be a positive duration (model no TIME_WAIT with --close reset)"
                    .into(),
            });
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(ModelError::Value {
                    flag: "--rate",
                    given: r.to_string(),
                    reason: "must be a positive number of connections per second".into(),
                });
            }
        }
        if !self.profile.has_linux_knobs() {
            if self.tw_reuse != TwReuse::Off {
                return Err(ModelError::NotForProfile {
                    flag: "--tw-reuse",
                    profile: self.profile.name(),
                });
            }
            if self.max_tw_buckets.is_some() {
                return Err(ModelError::NotForProfile {
                    flag: "--max-tw-buckets",
                    profile: self.profile.name(),
                });
            }
        }
        if !(0.001..=60.0).contains(&self.tw_reuse_delay_s) {
            return Err(ModelError::Value {
                flag: "--tw-reuse-delay",
                given: format!("{} s", self.tw_reuse_delay_s),
                reason: "Linux accepts 1 ms to 60 s (write e.g. 1s or 250ms)".into(),
            });
        }
        for (flag, v) in [
            ("--destinations", self.destinations),
            ("--sources", self.sources),
        ] {
            if v == 0 {
                return Err(ModelError::Value {
                    flag,
                    given: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn profile_names_round_trip_and_aliases() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
            assert!(Profile::NAMES.contains(p.name()));
        }
        assert_eq!("Windows".parse::<Profile>(), Ok(Profile::Windows2008));
        assert_eq!(" LINUX ".parse::<Profile>(), Ok(Profile::Linux));
    }

    #[test]
    fn default_port_counts_match_the_facts() {
        let count = |p: Profile| p.port_range().map(PortRange::len);
        assert_eq!(count(Profile::Linux), Some(28232));
        assert_eq!(count(Profile::Windows2003), Some(3976));
        assert_eq!(count(Profile::Windows2008), Some(16384));
        assert_eq!(count(Profile::Macos), Some(16384));
        assert_eq!(count(Profile::Freebsd), Some(55536));
        assert_eq!(count(Profile::Custom), None);
    }

    #[test]
    fn port_range_parses_like_the_sysctl() {
        assert_eq!("1025-5000".parse(), Ok(PortRange { lo: 1025, hi: 5000 }));
        assert_eq!(
            "32768 - 60999".parse(),
            Ok(PortRange {
                lo: 32768,
                hi: 60999
            })
        );
        assert_eq!("7-7".parse::<PortRange>().map(PortRange::len), Ok(1));
    }
}
