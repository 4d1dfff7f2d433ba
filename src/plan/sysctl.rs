//! The sysctl registry: one row per kernel knob portlab reads, sets in the lab or models.
//! Everything that spells a knob iterates [`REGISTRY`] or names its row's const:
//! lab validation and set-up (the key, what it accepts, how it is written, the message when a
//! kernel lacks it; plan/lab.rs), the settings read back (lab/), inspect's rows and notes
//! (inspect/build.rs), the model's host input (model/host.rs) and the settings a comparison
//! always shows (report/compare.rs). Adding a knob is a row here, its field in
//! `[lab]` / `[lab.server]` (plan/lab.rs), and, when the model reads it, a line in
//! model/host.rs.

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

/// One kernel setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// Dotted sysctl name.
    pub name: &'static str,
    /// The `[lab]` key that sets it (its `--lab-*` flag is that field's `#[arg]`).
    pub lab_key: &'static str,
    /// The `[lab.server]` key (veth's server namespace), if the server side has one.
    pub server_key: Option<&'static str>,
    /// What the lab accepts, checked before set-up.
    pub accepts: Accepts,
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

const DROP: &str = "drop that key from [lab]";

/// net.ipv4.ip_local_port_range.
pub const PORT_RANGE: Knob = Knob {
    name: "net.ipv4.ip_local_port_range",
    lab_key: "port_range",
    server_key: None,
    accepts: Accepts::Ports("LO-HI, 1024 <= LO <= HI <= 65535"),
    since: "2.6",
    note: "the ephemeral ports connect() and bind(0) pick from",
    model: "P, the usable ports (with the reserved ones taken out)",
    compared: true,
    missing: DROP,
};

/// net.ipv4.ip_local_reserved_ports.
pub const RESERVED_PORTS: Knob = Knob {
    name: "net.ipv4.ip_local_reserved_ports",
    lab_key: "reserved_ports",
    server_key: None,
    accepts: Accepts::Ports("ports and LO-HI ranges, comma separated"),
    since: "2.6.35",
    note: "ports never picked for connect()",
    model: "the reserved ports inside the range, taken out of P",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_timestamps.
pub const TIMESTAMPS: Knob = Knob {
    name: "net.ipv4.tcp_timestamps",
    lab_key: "timestamps",
    server_key: Some("server.timestamps"),
    accepts: Accepts::Bool,
    since: "2.4",
    note: "tcp_tw_reuse has no effect without them",
    model: "whether tcp_tw_reuse can apply",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_tw_reuse.
pub const TW_REUSE: Knob = Knob {
    name: "net.ipv4.tcp_tw_reuse",
    lab_key: "tw_reuse",
    server_key: Some("server.tw_reuse"),
    accepts: Accepts::Int {
        lo: 0,
        hi: 2,
        expected: "0 (off), 1 (any destination) or 2 (loopback only)",
    },
    since: "2.6",
    note: "whether connect() may reuse a port still in TIME_WAIT",
    model: "whether the hold is the reuse delay instead of TIME_WAIT",
    compared: true,
    missing: DROP,
};

/// net.ipv4.tcp_tw_reuse_delay.
pub const TW_REUSE_DELAY: Knob = Knob {
    name: "net.ipv4.tcp_tw_reuse_delay",
    lab_key: "tw_reuse_delay_ms",
    server_key: Some("server.tw_reuse_delay_ms"),
    accepts: Accepts::Int {
        lo: 1,
        hi: super::lab::MAX_TW_REUSE_DELAY_MS as u64,
        expected: "1-60000 ms (the kernel's range for tcp_tw_reuse_delay); for a longer hold \
                   use time_wait with time_scale",
    },
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
    lab_key: "max_tw_buckets",
    server_key: Some("server.max_tw_buckets"),
    accepts: Accepts::Int {
        lo: 0,
        hi: KERNEL_INT,
        expected: "0-2147483647 (the kernel keeps it in an int)",
    },
    since: "2.4",
    note: "beyond this many TIME_WAIT sockets, closes skip TIME_WAIT",
    model: "the cap on TIME_WAIT",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_fin_timeout.
pub const FIN_TIMEOUT: Knob = Knob {
    name: "net.ipv4.tcp_fin_timeout",
    lab_key: "fin_timeout",
    server_key: Some("server.fin_timeout"),
    accepts: Accepts::Int {
        lo: 0,
        // Kept in jiffies in an int: INT_MAX / HZ, with HZ up to 1000.
        hi: KERNEL_INT / 1000,
        expected: "0-2147483 seconds (the kernel keeps it in jiffies in an int)",
    },
    since: "2.4",
    note: "s: bounds orphaned FIN_WAIT_2 only; it does NOT shorten TIME_WAIT (fixed at 60 s)",
    model: "",
    compared: false,
    missing: DROP,
};

/// net.core.somaxconn.
pub const SOMAXCONN: Knob = Knob {
    name: "net.core.somaxconn",
    lab_key: "somaxconn",
    server_key: Some("server.somaxconn"),
    accepts: Accepts::Int {
        lo: 0,
        hi: KERNEL_INT,
        expected: "0-2147483647",
    },
    since: "2.4",
    note: "caps every listen() backlog",
    model: "",
    compared: false,
    missing: DROP,
};

/// net.ipv4.tcp_abort_on_overflow.
pub const ABORT_ON_OVERFLOW: Knob = Knob {
    name: "net.ipv4.tcp_abort_on_overflow",
    lab_key: "abort_on_overflow",
    server_key: Some("server.abort_on_overflow"),
    accepts: Accepts::Bool,
    since: "2.4",
    note: "with 1, a full accept queue answers with RST (ECONNRESET) instead of dropping",
    model: "",
    compared: false,
    missing: DROP,
};

/// The largest value the kernel keeps in a C int.
const KERNEL_INT: u64 = i32::MAX as u64;

/// Every knob, in the order the lab writes them, reads them back and inspect lists them.
pub const REGISTRY: [Knob; 9] = [
    PORT_RANGE,
    RESERVED_PORTS,
    TIMESTAMPS,
    TW_REUSE,
    TW_REUSE_DELAY,
    MAX_TW_BUCKETS,
    FIN_TIMEOUT,
    SOMAXCONN,
    ABORT_ON_OVERFLOW,
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
        .find(|k| k.lab_key == key || k.server_key == Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_consistent() {
        for k in &REGISTRY {
            assert_eq!(by_name(k.name), Some(k));
            assert_eq!(by_lab_key(k.lab_key), Some(k));
            // Its flags are those of the [lab] and [lab.server] fields it names.
            let flag = crate::plan::lab::flag_of(k.lab_key).expect(k.lab_key);
            assert_eq!(
                flag,
                format!(
                    "--lab-{}",
                    k.lab_key.trim_end_matches("_ms").replace('_', "-")
                )
            );
            if let Some(s) = k.server_key {
                assert_eq!(s, format!("server.{}", k.lab_key));
                let server_flag = crate::plan::lab::flag_of(s).expect(s);
                assert_eq!(server_flag, flag.replace("--lab-", "--lab-server-"));
            }
        }
        // Every lab key of the registry is a key of [lab] (deny_unknown_fields refuses others).
        for k in &REGISTRY {
            let v = match k.accepts {
                Accepts::Bool => "true".to_string(),
                Accepts::Ports(r) if r.starts_with("LO-HI") => "\"40000-40099\"".to_string(),
                Accepts::Ports(_) => "\"40000\"".to_string(),
                Accepts::Int { lo, hi, expected } => {
                    // A range's refusal starts with the range itself (tw_reuse lists its three).
                    assert!(
                        expected.starts_with(&format!("{lo}-{hi}")) || k.lab_key == "tw_reuse",
                        "{}: {expected}",
                        k.name
                    );
                    hi.to_string()
                }
            };
            toml::from_str::<crate::plan::lab::LabConfig>(&format!("{} = {v}", k.lab_key))
                .unwrap_or_else(|e| panic!("{}: {e}", k.lab_key));
        }
        // The lab reads back exactly these, in this order.
        assert_eq!(crate::lab::MODEL_SYSCTLS, NAMES);
    }

    /// The lab checks and writes every knob both sides share from its row alone: a value past
    /// the row's range is refused naming the key, its flag and the row's wording, on either
    /// side; one within it is written under the row's name.
    #[test]
    fn lab_checks_and_writes_every_shared_knob_from_its_row() {
        use crate::plan::lab::{flag_of, LabConfig};
        let plan = |text: &str| toml::from_str::<LabConfig>(text).unwrap().validate();
        for k in REGISTRY.iter().filter(|k| k.server_key.is_some()) {
            let (ok, written) = match k.accepts {
                Accepts::Bool => ("true".to_string(), "1".to_string()),
                Accepts::Int { hi, .. } => (hi.to_string(), hi.to_string()),
                Accepts::Ports(_) => unreachable!("{}: ports are [lab]-only", k.name),
            };
            let p = plan(&format!(
                "isolate = true\ntopology = \"veth\"\n{} = {ok}\n[server]\n{} = {ok}",
                k.lab_key, k.lab_key
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", k.name));
            for side in [&p.sysctls, &p.server_sysctls] {
                let got = side.iter().find(|s| s.name == k.name);
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
                (format!("isolate = true\n{} = {past}", k.lab_key), k.lab_key),
                (
                    format!(
                        "isolate = true\ntopology = \"veth\"\n[server]\n{} = {past}",
                        k.lab_key
                    ),
                    k.server_key.unwrap(),
                ),
            ] {
                let e = plan(&text).expect_err(&text).to_string();
                let flag = flag_of(key).expect(key);
                assert_eq!(e, format!("lab.{key} = {past} (flag {flag}): {expected}"));
            }
        }
    }
}
