//! The sysctl registry: one row per kernel knob portlab reads, sets in the lab or models.
//! Everything that spells a knob iterates [`REGISTRY`] or names its row's const:
//! lab validation and set-up (the key, what it accepts, how it is written, the message when a
//! kernel lacks it; plan/lab.rs), the settings read back (lab/), inspect's rows and notes
//! (inspect/build.rs), the model's host input (model/host.rs) and the settings a comparison
//! always shows (results/compare.rs). A row is typed: it names the `[lab]` (and
//! `[lab.server]`) field that sets it with [`lab_field!`], so the key, its value and the
//! knob cannot drift apart; the lab writes a [`super::lab::Sysctl`] that carries its row,
//! whose path, read-back and missing-kernel hint the lab's Linux side takes from here.
//! Adding a knob is a row here (and its line in [`REGISTRY`]), its field in `[lab]` /
//! `[lab.server]` (plan/lab.rs), and, when the model reads it, a line in model/host.rs.

use super::lab::{LabConfig, ServerSideConfig};

/// What a knob accepts in the lab, and how it is written to /proc/sys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// true or false, written 1 or 0.
    Bool,
    /// A whole number in `lo..=hi`, written as is; `expected` is what a refusal says.
    Int {
        /// Lowest accepted.
        lo: u64,
        /// Highest accepted (past it the kernel refuses the write).
        hi: u64,
        /// The accepted values as a refusal words them.
        expected: &'static str,
    },
    /// Ports in the kernel's own syntax, parsed by plan/lab.rs (`parse_port_range`,
    /// `parse_reserved_ports`); the text says what is accepted.
    Ports(&'static str),
}

impl Accepts {
    /// `v` (a bool as 0 or 1) as written to /proc/sys, or what a refusal says is accepted.
    pub fn check(self, v: u64) -> Result<String, &'static str> {
        match self {
            Accepts::Int { lo, hi, expected } if !(lo..=hi).contains(&v) => Err(expected),
            _ => Ok(v.to_string()),
        }
    }
}

/// What a `[lab]` field holds, as a knob reads it: a number (a bool as 0 or 1), or text
/// (the port lists, which the lab parses itself).
pub trait Given {
    /// The value as a number, None for text.
    fn number(&self) -> Option<u64>;
}

impl Given for u8 {
    fn number(&self) -> Option<u64> {
        Some(u64::from(*self))
    }
}

impl Given for u32 {
    fn number(&self) -> Option<u64> {
        Some(u64::from(*self))
    }
}

impl Given for u64 {
    fn number(&self) -> Option<u64> {
        Some(*self)
    }
}

impl Given for bool {
    fn number(&self) -> Option<u64> {
        Some(u64::from(*self))
    }
}

impl Given for String {
    fn number(&self) -> Option<u64> {
        None
    }
}

/// The field of a `[lab]` (`C` = [`LabConfig`]) or `[lab.server]` ([`ServerSideConfig`])
/// table that sets a knob: its key as messages and flags name it, and its value.
pub struct Field<C: 'static> {
    /// `tw_reuse`, or `server.tw_reuse` (the clap id of its `--lab-*` flag).
    pub key: &'static str,
    /// The field's value, None when unset.
    pub get: for<'a> fn(&'a C) -> Option<&'a dyn Given>,
}

impl<C> Clone for Field<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Field<C> {}

impl<C> std::fmt::Debug for Field<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

/// `lab_field!(tw_reuse)`: the `[lab]` field `tw_reuse`; `lab_field!(server.tw_reuse)`: the
/// `[lab.server]` one. The key is spelt from the field itself, so a typo does not compile.
macro_rules! lab_field {
    (server . $f:ident) => {
        Field::<ServerSideConfig> {
            key: concat!("server.", stringify!($f)),
            get: |c| c.$f.as_ref().map(|v| v as &dyn Given),
        }
    };
    ($f:ident) => {
        Field::<LabConfig> {
            key: stringify!($f),
            get: |c| c.$f.as_ref().map(|v| v as &dyn Given),
        }
    };
}

/// How the kernel prints a knob back, to check it holds what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// The same words, whatever the whitespace ("32768\t60999" holds "32768 60999").
    Words,
    /// The same set of ports (the kernel merges and reorders a reserved-port list).
    PortSet,
}

/// One kernel setting.
#[derive(Debug, Clone, Copy)]
pub struct Knob {
    /// Dotted sysctl name.
    pub name: &'static str,
    /// The `[lab]` field that sets it (its `--lab-*` flag is that field's `#[arg]`).
    pub lab: Field<LabConfig>,
    /// The `[lab.server]` field (veth's server namespace), if the server side has one.
    pub server: Option<Field<ServerSideConfig>>,
    /// What the lab accepts, checked before set-up.
    pub accepts: Accepts,
    /// How the kernel prints it back.
    pub read_back: ReadBack,
    /// The first Linux release that has it.
    pub since: &'static str,
    /// What inspect says about it.
    pub note: &'static str,
    /// What the model takes from it ("" when nothing; model/host.rs reads it).
    pub model: &'static str,
    /// Whether a comparison of runs shows it even when every run has the same value.
    pub compared: bool,
    /// What to do when this kernel lacks it.
    pub missing: &'static str,
}

impl PartialEq for Knob {
    /// One row per name (the registry's test checks it).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Knob {}

impl Knob {
    /// Its file under /proc/sys, in the namespace the calling thread is in.
    pub fn path(&self) -> String {
        format!("/proc/sys/{}", self.name.replace('.', "/"))
    }

    /// Whether `got`, as the kernel prints it, holds `wanted` as the lab wrote it.
    pub fn holds(&self, wanted: &str, got: &str) -> bool {
        match self.read_back {
            ReadBack::Words => wanted.split_whitespace().eq(got.split_whitespace()),
            ReadBack::PortSet => {
                let set = |v| super::lab::parse_reserved_ports(self.lab.key, v);
                matches!((set(wanted), set(got)), (Ok(a), Ok(b)) if a == b)
            }
        }
    }
}

const DROP: &str = "drop that key from [lab]";

/// net.ipv4.ip_local_port_range.
pub const PORT_RANGE: Knob = Knob {
    name: "net.ipv4.ip_local_port_range",
    lab: lab_field!(port_range),
    server: None,
    accepts: Accepts::Ports("LO-HI, 1024 <= LO <= HI <= 65535"),
    read_back: ReadBack::Words,
    since: "2.6",
    note: "the ephemeral ports connect() and bind(0) pick from",
    model: "P, the usable ports (with the reserved ones taken out)",
    compared: true,
    missing: DROP,
};

/// net.ipv4.ip_local_reserved_ports.
pub const RESERVED_PORTS: Knob = Knob {
    name: "net.ipv4.ip_local_reserved_ports",
    lab: lab_field!(reserved_ports),
    server: None,
    accepts: Accepts::Ports("ports and LO-HI ranges, comma separated"),
    read_back: ReadBack::PortSet,
    since: "2.6.35",
    note: "ports never picked for connect()",
    model: "the reserved ports inside the range, taken out of P",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_timestamps.
pub const TIMESTAMPS: Knob = Knob {
    name: "net.ipv4.tcp_timestamps",
    lab: lab_field!(timestamps),
    server: Some(lab_field!(server.timestamps)),
    accepts: Accepts::Bool,
    read_back: ReadBack::Words,
    since: "2.4",
    note: "tcp_tw_reuse has no effect without them",
    model: "whether tcp_tw_reuse can apply",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_tw_reuse.
pub const TW_REUSE: Knob = Knob {
    name: "net.ipv4.tcp_tw_reuse",
    lab: lab_field!(tw_reuse),
    server: Some(lab_field!(server.tw_reuse)),
    accepts: Accepts::Int {
        lo: 0,
        hi: 2,
        expected: "0 (off), 1 (any destination) or 2 (loopback only)",
    },
    read_back: ReadBack::Words,
    since: "2.6",
    note: "whether connect() may reuse a port still in TIME_WAIT",
    model: "whether the hold is the reuse delay instead of TIME_WAIT",
    compared: true,
    missing: DROP,
};

/// net.ipv4.tcp_tw_reuse_delay.
pub const TW_REUSE_DELAY: Knob = Knob {
    name: "net.ipv4.tcp_tw_reuse_delay",
    lab: lab_field!(tw_reuse_delay_ms),
    server: Some(lab_field!(server.tw_reuse_delay_ms)),
    accepts: Accepts::Int {
        lo: 1,
        hi: super::lab::MAX_TW_REUSE_DELAY_MS as u64,
        expected: "1-60000 ms (the kernel's range for tcp_tw_reuse_delay); for a longer hold \
                   use time_wait with time_scale",
    },
    read_back: ReadBack::Words,
    since: "6.14",
    note: "ms: the port hold where tcp_tw_reuse applies",
    model: "the hold per port where reuse applies",
    compared: false,
    missing: "added in Linux 6.14: drop tw_reuse_delay_ms, time_wait and time_scale; \
              without it the TIME_WAIT hold is fixed at 60 s and only the port range can be scaled",
};

/// net.ipv4.tcp_max_tw_buckets.
pub const MAX_TW_BUCKETS: Knob = Knob {
    name: "net.ipv4.tcp_max_tw_buckets",
    lab: lab_field!(max_tw_buckets),
    server: Some(lab_field!(server.max_tw_buckets)),
    accepts: Accepts::Int {
        lo: 0,
        hi: KERNEL_INT,
        expected: "0-2147483647 (the kernel keeps it in an int)",
    },
    read_back: ReadBack::Words,
    since: "2.4",
    note: "beyond this many TIME_WAIT sockets, closes skip TIME_WAIT",
    model: "the cap on TIME_WAIT",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_fin_timeout.
pub const FIN_TIMEOUT: Knob = Knob {
    name: "net.ipv4.tcp_fin_timeout",
    lab: lab_field!(fin_timeout),
    server: Some(lab_field!(server.fin_timeout)),
    accepts: Accepts::Int {
        lo: 0,
        // Kept in jiffies in an int: INT_MAX / HZ, with HZ up to 1000.
        hi: KERNEL_INT / 1000,
        expected: "0-2147483 seconds (the kernel keeps it in jiffies in an int)",
    },
    read_back: ReadBack::Words,
    since: "2.4",
    note: "s: bounds orphaned FIN_WAIT_2 only; it does NOT shorten TIME_WAIT (fixed at 60 s)",
    model: "",
    compared: false,
    missing: DROP,
};

/// net.core.somaxconn.
pub const SOMAXCONN: Knob = Knob {
    name: "net.core.somaxconn",
    lab: lab_field!(somaxconn),
    server: Some(lab_field!(server.somaxconn)),
    accepts: Accepts::Int {
        lo: 0,
        hi: KERNEL_INT,
        expected: "0-2147483647",
    },
    read_back: ReadBack::Words,
    since: "2.4",
    note: "caps every listen() backlog",
    model: "",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_abort_on_overflow.
pub const ABORT_ON_OVERFLOW: Knob = Knob {
    name: "net.ipv4.tcp_abort_on_overflow",
    lab: lab_field!(abort_on_overflow),
    server: Some(lab_field!(server.abort_on_overflow)),
    accepts: Accepts::Bool,
    read_back: ReadBack::Words,
    since: "2.4",
    note: "with 1, a full accept queue answers with RST (ECONNRESET) instead of dropping",
    model: "",
    compared: false,
    missing: DROP,
};

/// The kernel's default nf_conntrack_tcp_timeout_time_wait, seconds.
pub const CONNTRACK_TIME_WAIT_DEFAULT_S: u64 = 120;

/// net.netfilter.nf_conntrack_tcp_timeout_time_wait (per namespace; only where the
/// nf_conntrack module is loaded).
pub const CONNTRACK_TIME_WAIT: Knob = Knob {
    name: "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
    lab: lab_field!(conntrack_time_wait),
    server: Some(lab_field!(server.conntrack_time_wait)),
    accepts: Accepts::Int {
        lo: 1,
        hi: KERNEL_INT / 1000,
        expected: "1-2147483 seconds (the kernel keeps it in jiffies in an int)",
    },
    read_back: ReadBack::Words,
    since: "2.6.15 (nf_conntrack)",
    note: "s: conntrack's hold of a connection's entry after a FIN close, either side",
    model: "the conntrack entry's hold after the close",
    compared: false,
    missing: "the nf_conntrack module is not loaded on this host (portlab loads no module: \
              `modprobe nf_conntrack` is a change to the host); drop conntrack_time_wait",
};

/// The largest value the kernel keeps in a C int.
const KERNEL_INT: u64 = i32::MAX as u64;

/// Every knob, in the order the lab writes them, reads them back and inspect lists them.
pub const REGISTRY: &[Knob] = &[
    PORT_RANGE,
    RESERVED_PORTS,
    TIMESTAMPS,
    TW_REUSE,
    TW_REUSE_DELAY,
    MAX_TW_BUCKETS,
    FIN_TIMEOUT,
    SOMAXCONN,
    ABORT_ON_OVERFLOW,
    CONNTRACK_TIME_WAIT,
];

/// Every knob's name, in [`REGISTRY`] order.
pub const NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

/// The knob named `name` (dotted).
pub fn by_name(name: &str) -> Option<&'static Knob> {
    REGISTRY.iter().find(|k| k.name == name)
}

/// The knob a `[lab]` key (or `server.<key>`) sets.
pub fn by_lab_key(key: &str) -> Option<&'static Knob> {
    REGISTRY
        .iter()
        .find(|k| k.lab.key == key || k.server.is_some_and(|f| f.key == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_consistent() {
        for k in REGISTRY {
            assert_eq!(by_name(k.name), Some(k));
            assert_eq!(by_lab_key(k.lab.key), Some(k));
            // Its flags are those of the [lab] and [lab.server] fields it names.
            let flag = crate::plan::lab::flag_of(k.lab.key).expect(k.lab.key);
            assert_eq!(
                flag,
                format!(
                    "--lab-{}",
                    k.lab.key.trim_end_matches("_ms").replace('_', "-")
                )
            );
            if let Some(s) = k.server.map(|f| f.key) {
                assert_eq!(s, format!("server.{}", k.lab.key));
                let server_flag = crate::plan::lab::flag_of(s).expect(s);
                assert_eq!(server_flag, flag.replace("--lab-", "--lab-server-"));
            }
        }
        // Every lab key of the registry is a key of [lab] (deny_unknown_fields refuses others).
        for k in REGISTRY {
            let v = match k.accepts {
                Accepts::Bool => "true".to_string(),
                Accepts::Ports(r) if r.starts_with("LO-HI") => "\"40000-40099\"".to_string(),
                Accepts::Ports(_) => "\"40000\"".to_string(),
                Accepts::Int { lo, hi, expected } => {
                    // A range's refusal starts with the range itself (tw_reuse lists its three).
                    assert!(
                        expected.starts_with(&format!("{lo}-{hi}")) || k.lab.key == "tw_reuse",
                        "{}: {expected}",
                        k.name
                    );
                    hi.to_string()
                }
            };
            toml::from_str::<crate::plan::lab::LabConfig>(&format!("{} = {v}", k.lab.key))
                .unwrap_or_else(|e| panic!("{}: {e}", k.lab.key));
        }
    }

    /// The read-back the lab checks after each write comes from the row: words for most,
    /// the set of ports for the reserved list (the kernel merges and reorders it).
    #[test]
    fn a_row_says_how_its_value_reads_back() {
        assert!(PORT_RANGE.holds("40000 40999", "40000\t40999"));
        assert!(!PORT_RANGE.holds("40000 40999", "40000 41000"));
        assert!(RESERVED_PORTS.holds("2000,1000-1011", "1000-1011,2000"));
        assert!(!RESERVED_PORTS.holds("2000,1000-1011", "1000-1011"));
        assert!(!TW_REUSE.holds("1", "1000-1011,2000"));
        assert_eq!(TW_REUSE.path(), "/proc/sys/net/ipv4/tcp_tw_reuse");
        // A row reads its own field: set in [lab] or [lab.server], unset elsewhere.
        let lab: crate::plan::lab::LabConfig =
            toml::from_str("somaxconn = 7\n[server]\ntimestamps = true").unwrap();
        assert_eq!((SOMAXCONN.lab.get)(&lab).and_then(|v| v.number()), Some(7));
        assert!((TIMESTAMPS.lab.get)(&lab).is_none());
        let server = TIMESTAMPS.server.unwrap();
        assert_eq!(server.key, "server.timestamps");
        assert_eq!((server.get)(&lab.server).and_then(|v| v.number()), Some(1));
    }

    /// The lab checks and writes every knob both sides share from its row alone: a value past
    /// the row's range is refused naming the key, its flag and the row's wording, on either
    /// side; one within it is written under the row's name.
    #[test]
    fn lab_checks_and_writes_every_shared_knob_from_its_row() {
        use crate::plan::lab::{flag_of, LabConfig};
        let plan = |text: &str| toml::from_str::<LabConfig>(text).unwrap().validate();
        for k in REGISTRY.iter().filter(|k| k.server.is_some()) {
            let (ok, written) = match k.accepts {
                Accepts::Bool => ("true".to_string(), "1".to_string()),
                Accepts::Int { hi, .. } => (hi.to_string(), hi.to_string()),
                Accepts::Ports(_) => unreachable!("{}: ports are [lab]-only", k.name),
            };
            let p = plan(&format!(
                "isolate = true\ntopology = \"veth\"\n{} = {ok}\n[server]\n{} = {ok}",
                k.lab.key, k.lab.key
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", k.name));
            for side in [&p.sysctls, &p.server_sysctls] {
                let got = side.iter().find(|s| s.name() == k.name);
                assert_eq!(
                    got.map(|s| s.value.as_str()),
                    Some(written.as_str()),
                    "{}",
                    k.name
                );
            }
            let Accepts::Int { hi, expected, .. } = k.accepts else {
                continue;
            };
            let past = hi + 1;
            for (text, key) in [
                (format!("isolate = true\n{} = {past}", k.lab.key), k.lab.key),
                (
                    format!(
                        "isolate = true\ntopology = \"veth\"\n[server]\n{} = {past}",
                        k.lab.key
                    ),
                    k.server.unwrap().key,
                ),
            ] {
                let e = plan(&text).expect_err(&text).to_string();
                let flag = flag_of(key).expect(key);
                assert_eq!(e, format!("lab.{key} = {past} (flag {flag}): {expected}"));
            }
        }
    }
}
