//! The connection-tracking table: the limit that may hit before the ports do.
//!
//! Wherever connections pass a conntrack (a firewall with state rules, a NAT, a Kubernetes
//! node), each new connection holds an entry for its lifetime plus the timeout of the state
//! it ends in: TIME_WAIT (`nf_conntrack_tcp_timeout_time_wait`, 120 s, twice TCP's own) when
//! either side closed with FIN, CLOSE (10 s) after an RST. So a steady rate R needs
//! R x (lifetime + timeout) entries; when that exceeds the room left (nf_conntrack_max -
//! nf_conntrack_count), the table is full after room / R seconds and the kernel drops new
//! SYNs (`nf_conntrack: table full, dropping packet`): the client sees connect timeouts,
//! not EADDRNOTAVAIL. A pool holds one ESTABLISHED entry per connection (5 days' timeout).
//!
//! Pure arithmetic; the figures come from `predict`'s flags or `inspect`'s reading of
//! /proc/sys/net/netfilter.

use serde::{Deserialize, Serialize};

use super::profile::TimeWaitSide;

/// Linux's nf_conntrack_tcp_timeout_time_wait default, seconds.
pub const TIME_WAIT_TIMEOUT_S: f64 = crate::plan::sysctl::CONNTRACK_TIME_WAIT_DEFAULT_S as f64;
/// Linux's nf_conntrack_tcp_timeout_close default, seconds (after an RST).
pub const CLOSE_TIMEOUT_S: f64 = 10.0;

/// What the model needs to know of the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConntrackInput {
    /// nf_conntrack_max: entries the table holds.
    pub max: u64,
    /// nf_conntrack_count: entries already there.
    pub count: u64,
    /// nf_conntrack_tcp_timeout_time_wait, seconds.
    pub time_wait_s: f64,
    /// nf_conntrack_tcp_timeout_close, seconds.
    pub close_s: f64,
    /// How long a connection is open (connect to close), seconds.
    pub lifetime_s: f64,
}

impl ConntrackInput {
    /// A table of `max` entries, `count` used, Linux's timeouts, connections of no length.
    pub fn new(max: u64, count: u64) -> ConntrackInput {
        ConntrackInput {
            max,
            count,
            time_wait_s: TIME_WAIT_TIMEOUT_S,
            close_s: CLOSE_TIMEOUT_S,
            lifetime_s: 0.0,
        }
    }
}

/// What the model says of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConntrackPrediction {
    /// How long each connection holds its entry: lifetime + the timeout of its last state.
    pub hold_s: f64,
    /// Entries the load keeps in steady state: R x hold, or the pool.
    pub entries_needed: Option<f64>,
    /// max - count: the room left.
    pub room: u64,
    /// When the table is full and SYNs are dropped (None: it never is).
    pub full_s: Option<f64>,
    /// The highest rate the table sustains: room / hold.
    pub sustainable_rate: Option<f64>,
    /// Which limit comes first: "conntrack", "ports", or "neither".
    pub first_limit: Option<String>,
    /// One or two plain sentences.
    pub explanation: String,
    /// The settings that fix it, when it runs out.
    pub advice: Vec<String>,
}

/// The table's figures for a load at `rate` (None: capacity only) closing as `side` says,
/// with `pool` persistent connections (0: one per request); `ports_first_error_s` is when
/// the ports run out (to say which limit comes first).
pub fn predict(
    ct: &ConntrackInput,
    rate: Option<f64>,
    side: TimeWaitSide,
    pool: u32,
    ports_first_error_s: Option<f64>,
) -> ConntrackPrediction {
    let timeout = match side {
        TimeWaitSide::Nobody => ct.close_s,
        _ => ct.time_wait_s,
    };
    let hold_s = ct.lifetime_s + timeout;
    let room = ct.max.saturating_sub(ct.count);
    let sustainable_rate = (hold_s > 0.0).then(|| room as f64 / hold_s);
    let needed = match (pool, rate) {
        (p, _) if p > 0 => Some(f64::from(p)),
        (_, Some(r)) => Some(r * hold_s),
        _ => None,
    };
    let full_s = match (pool, rate, needed) {
        (0, Some(r), Some(n)) if r > 0.0 && n > room as f64 => Some(room as f64 / r),
        // A pool larger than the room cannot all connect: full as it opens.
        (p, _, _) if p > 0 && u64::from(p) > room => Some(0.0),
        _ => None,
    };
    let first_limit = needed.map(|_| {
        match (full_s, ports_first_error_s) {
            (Some(c), Some(p)) if c < p => "conntrack",
            (Some(_), None) => "conntrack",
            (_, Some(_)) => "ports",
            (None, None) => "neither",
        }
        .to_string()
    });
    let explanation = match (rate, needed, full_s) {
        (Some(r), Some(n), Some(t)) if pool == 0 => format!(
            "{} conn/s each holding a conntrack entry for {} s ({} s open + {} s after its close) need {} entries, but the table has room for {room} ({} max, {} in use), so it is full after {room} / {} conn/s = {} s and new SYNs are dropped: the client sees connect timeouts, not EADDRNOTAVAIL.",
            fmt(r), fmt(hold_s), fmt(ct.lifetime_s), fmt(timeout), fmt(n), ct.max, ct.count, fmt(r), fmt(t)
        ),
        (Some(r), Some(n), None) if pool == 0 => format!(
            "{} conn/s each holding a conntrack entry for {} s need {} entries of the {room} left ({} max, {} in use): the table does not fill.",
            fmt(r), fmt(hold_s), fmt(n), ct.max, ct.count
        ),
        (_, Some(n), full) => format!(
            "a pool of {} connections holds {} ESTABLISHED entries of the {room} left: {}.",
            pool,
            fmt(n),
            if full.is_some() { "more than the table has room for" } else { "the table does not fill" }
        ),
        _ => format!(
            "the table has room for {room} entries ({} max, {} in use); at {} s per connection it sustains {} conn/s.",
            ct.max,
            ct.count,
            fmt(hold_s),
            sustainable_rate.map_or("-".into(), fmt)
        ),
    };
    let advice = match (full_s, needed, rate) {
        (Some(_), Some(n), r) => {
            // 25% headroom, and buckets at a quarter of max (the kernel's own ratio).
            let max = ((n + ct.count as f64) * 1.25).ceil() as u64;
            let mut a = vec![format!(
                "Raise the table: sysctl -w net.netfilter.nf_conntrack_max={max} and echo {} > /sys/module/nf_conntrack/parameters/hashsize (nf_conntrack_buckets, a quarter of max).",
                max.div_ceil(4)
            )];
            if let (Some(r), 0) = (r, pool) {
                let shorter = (room as f64 / r - ct.lifetime_s).floor();
                if shorter >= 1.0 && side != TimeWaitSide::Nobody {
                    a.push(format!(
                        "Or shorten the entries' TIME_WAIT: sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait={} (now {} s; TCP's own TIME_WAIT is 60 s).",
                        shorter as u64,
                        fmt(ct.time_wait_s)
                    ));
                }
                a.push(
                    "Or pool the connections: a pool holds one entry per connection, not R x hold."
                        .to_string(),
                );
            }
            a
        }
        _ => Vec::new(),
    };
    ConntrackPrediction {
        hold_s,
        entries_needed: needed,
        room,
        full_s,
        sustainable_rate,
        first_limit,
        explanation,
        advice,
    }
}

fn fmt(v: f64) -> String {
    super::num(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_churning_client_fills_the_table_at_room_over_rate() {
        // 1,000/s with the client closing first: 120,000 entries against a 65,536 table
        // with 1,536 in use: full after 64,000 / 1,000 = 64 s; 28,232 ports at 1,000/s run
        // out first, at 28.2 s.
        let ct = ConntrackInput::new(65_536, 1_536);
        let p = predict(&ct, Some(1000.0), TimeWaitSide::Client, 0, Some(28.232));
        assert_eq!(p.hold_s, 120.0);
        assert_eq!(p.entries_needed, Some(120_000.0));
        assert_eq!(p.room, 64_000);
        assert_eq!(p.full_s, Some(64.0));
        assert_eq!(p.first_limit.as_deref(), Some("ports"));
        assert!((p.sustainable_rate.unwrap() - 533.33).abs() < 0.01);
        assert!(
            p.explanation.contains("connect timeouts"),
            "{}",
            p.explanation
        );
        assert!(
            p.advice[0].contains("nf_conntrack_max=151920"),
            "{:?}",
            p.advice
        );
        assert!(
            p.advice[1].contains("timeout_time_wait=64"),
            "{:?}",
            p.advice
        );
        // The server closing first holds the entry as long; with pooling the ports never
        // run out, and the table is the only limit.
        let p = predict(&ct, Some(1000.0), TimeWaitSide::Server, 0, None);
        assert_eq!(p.first_limit.as_deref(), Some("conntrack"));
    }

    #[test]
    fn an_rst_close_holds_the_entry_ten_seconds_and_a_pool_one_each() {
        let ct = ConntrackInput::new(65_536, 0);
        let p = predict(&ct, Some(1000.0), TimeWaitSide::Nobody, 0, None);
        assert_eq!(p.hold_s, 10.0);
        assert_eq!(p.full_s, None);
        assert_eq!(p.first_limit.as_deref(), Some("neither"));
        let pool = predict(&ct, Some(1000.0), TimeWaitSide::Client, 100, None);
        assert_eq!(pool.entries_needed, Some(100.0));
        assert_eq!(pool.full_s, None);
        let small = ConntrackInput::new(64, 0);
        assert_eq!(
            predict(&small, None, TimeWaitSide::Client, 100, None).full_s,
            Some(0.0)
        );
    }

    #[test]
    fn the_connections_own_lifetime_counts() {
        let ct = ConntrackInput {
            lifetime_s: 30.0,
            ..ConntrackInput::new(10_000, 0)
        };
        let p = predict(&ct, Some(100.0), TimeWaitSide::Client, 0, None);
        assert_eq!(p.entries_needed, Some(15_000.0));
        assert_eq!(p.full_s, Some(100.0));
        // Shortening TIME_WAIT to 70 s leaves 100 s of hold: 10,000 entries, just room.
        assert!(
            p.advice[1].contains("timeout_time_wait=70"),
            "{:?}",
            p.advice
        );
    }
}
