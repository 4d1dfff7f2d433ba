//! The sysctl registry: one row per kernel knob portlab reads, sets in the lab or models.
//! Lab validation and set-up (names, flags, the message when a kernel lacks one), inspect's
//! notes and the list of settings read back all come from [`REGISTRY`]; adding a knob is a
//! row here (plus its validation in plan/lab.rs when it takes more than a plain value).

/// One kernel setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// Dotted sysctl name.
    pub name: &'static str,
    /// The `[lab]` key that sets it.
    pub lab_key: &'static str,
    /// The `[lab.server]` key (veth's server namespace), if the server side has one.
    pub server_key: Option<&'static str>,
    /// What the lab accepts.
    pub range: &'static str,
    /// The first Linux release that has it.
    pub since: &'static str,
    /// What inspect says about it.
    pub note: &'static str,
    /// What the model takes from it ("" when nothing).
    pub model: &'static str,
    /// What to do when this kernel lacks it.
    pub missing: &'static str,
}

const DROP: &str = "drop that key from [lab]";

/// Every knob, in the order the lab reports them.
pub const REGISTRY: [Knob; 9] = [
    Knob {
        name: "net.ipv4.ip_local_port_range",
        lab_key: "port_range",
        server_key: None,
        range: "LO-HI, 1024 <= LO <= HI <= 65535",
        since: "2.6",
        note: "the ephemeral ports connect() and bind(0) pick from",
        model: "P, the usable ports (with the reserved ones taken out)",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.ip_local_reserved_ports",
        lab_key: "reserved_ports",
        server_key: None,
        range: "ports and LO-HI ranges, comma separated",
        since: "2.6.35",
        note: "ports never picked for connect()",
        model: "the reserved ports inside the range, taken out of P",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.tcp_tw_reuse",
        lab_key: "tw_reuse",
        server_key: Some("server.tw_reuse"),
        range: "0, 1 or 2",
        since: "2.6",
        note: "whether connect() may reuse a port still in TIME_WAIT",
        model: "whether the hold is the reuse delay instead of TIME_WAIT",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.tcp_tw_reuse_delay",
        lab_key: "tw_reuse_delay_ms",
        server_key: Some("server.tw_reuse_delay_ms"),
        range: "1-60000 ms",
        since: "6.14",
        note: "ms: the port hold where tcp_tw_reuse applies",
        model: "the hold per port where reuse applies",
        missing: "added in Linux 6.14: drop tw_reuse_delay_ms, time_wait and time_scale; \
                  without it the TIME_WAIT hold is fixed at 60 s and only the port range can be scaled",
    },
    Knob {
        name: "net.ipv4.tcp_max_tw_buckets",
        lab_key: "max_tw_buckets",
        server_key: Some("server.max_tw_buckets"),
        range: "0-2147483647",
        since: "2.4",
        note: "beyond this many TIME_WAIT sockets, closes skip TIME_WAIT",
        model: "the cap on TIME_WAIT",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.tcp_fin_timeout",
        lab_key: "fin_timeout",
        server_key: Some("server.fin_timeout"),
        range: "0-2147483 s",
        since: "2.4",
        note: "s: bounds orphaned FIN_WAIT_2 only; it does NOT shorten TIME_WAIT (fixed at 60 s)",
        model: "",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.tcp_timestamps",
        lab_key: "timestamps",
        server_key: Some("server.timestamps"),
        range: "true or false",
        since: "2.4",
        note: "tcp_tw_reuse has no effect without them",
        model: "whether tcp_tw_reuse can apply",
        missing: DROP,
    },
    Knob {
        name: "net.core.somaxconn",
        lab_key: "somaxconn",
        server_key: Some("server.somaxconn"),
        range: "0-2147483647",
        since: "2.4",
        note: "caps every listen() backlog",
        model: "",
        missing: DROP,
    },
    Knob {
        name: "net.ipv4.tcp_abort_on_overflow",
        lab_key: "abort_on_overflow",
        server_key: Some("server.abort_on_overflow"),
        range: "true or false",
        since: "2.4",
        note: "with 1, a full accept queue answers with RST (ECONNRESET) instead of dropping",
        model: "",
        missing: DROP,
    },
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
            let v = match k.range {
                "true or false" => "true".to_string(),
                r if r.starts_with("LO-HI") => "\"40000-40099\"".to_string(),
                r if r.starts_with("ports") => "\"40000\"".to_string(),
                _ => "1".to_string(),
            };
            toml::from_str::<crate::plan::lab::LabConfig>(&format!("{} = {v}", k.lab_key))
                .unwrap_or_else(|e| panic!("{}: {e}", k.lab_key));
        }
        // The lab reads back exactly these, in this order.
        assert_eq!(crate::lab::MODEL_SYSCTLS, NAMES);
    }
}
