//! The conntrack table of the watched namespace: how full it is, how fast new entries come,
//! where the count heads at that rate, and when the table is full.
//!
//! Every connection that passes a conntrack (a namespace with a stateful firewall rule, a NAT,
//! a Kubernetes node) holds an entry for its lifetime plus the conntrack timeout of the state
//! it closed in (TIME_WAIT: 120 s by default, whichever side closed first), so a steady rate
//! R of new connections heads for R x 120 entries; the kernel drops a new connection's first
//! packet when the count reaches nf_conntrack_max (the client sees a SYN that vanishes: a
//! one-second stall, then a connect timeout), and counts it in the `drop` and `early_drop`
//! statistics.
//!
//! The rate is read from the table itself, as the ports' is from the TIME_WAIT timers: a
//! dump of the entries gives each TIME_WAIT entry's remaining timeout, so its age, and the
//! entries younger than a window over that window are the connections closed per second
//! (whoever opened them: this namespace's sockets, both ends of a loopback connection,
//! which share one entry, or connections a NAT only forwards). Where no dump can be had, the
//! count's growth since the previous sample stands in (a lower bound: entries expire
//! meanwhile). The count includes expired entries until the kernel's collector removes
//! them, which is what the kernel compares with the maximum.

use serde::Serialize;

use super::State;

/// A source NAT's mappings toward one destination from one public address (a dump's
/// entries the NAT rewrote).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatMappings {
    /// The address the NAT rewrote the source to.
    pub public: std::net::IpAddr,
    /// Where the connections went (original destination).
    pub destination: std::net::SocketAddr,
    /// Open (each holds one of the NAT's ports toward this destination: a closed one's, in
    /// TIME_WAIT or CLOSE, is handed out again) and all.
    #[serde(flatten)]
    pub count: crate::observe::conntrack::NatCount,
}

/// One reading of the namespace's table.
#[derive(Debug, Clone, PartialEq)]
pub struct ConntrackReading {
    /// nf_conntrack_count.
    pub count: u64,
    /// nf_conntrack_max (host-wide).
    pub max: u64,
    /// nf_conntrack_tcp_timeout_time_wait, seconds.
    pub time_wait_s: f64,
    /// drop + early_drop + insert_failed, summed over the CPUs: what a full table (or a NAT
    /// with no port left) refused.
    pub refused: u64,
    /// The TIME_WAIT entries' ages (`time_wait_s` minus each one's remaining timeout), from a
    /// dump of the table; None when it could not be dumped.
    pub closed: Option<super::Ages>,
    /// A source NAT's mappings by (public address, destination), from the same dump: empty
    /// where the namespace masquerades nothing.
    pub nat: Vec<NatMappings>,
    /// The NAT's pool toward one destination (`--nat-ports`, else [`DEFAULT_NAT_POOL`]).
    pub nat_pool: u64,
}

/// The age of a TIME_WAIT entry whose remaining timeout the dump gave as `timeout_s`, in a
/// table whose TIME_WAIT timeout is `hold_s`: the kernel rounds the remainder down to whole
/// seconds, so the age lies within the second below `hold_s - timeout_s`; its middle.
pub fn age_s(hold_s: f64, timeout_s: u32) -> f64 {
    (hold_s - f64::from(timeout_s) - 0.5).max(0.0)
}

/// The table's figures and state (JSON `conntrack`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConntrackReport {
    /// Whether the table holds any entry of this namespace: conntrack keeps entries for a
    /// namespace only once a rule there uses it, so an empty table says nothing about the
    /// TCP opens (no rate, steady count or ETA is given then).
    pub tracking: bool,
    /// nf_conntrack_count now.
    pub entries: u64,
    /// nf_conntrack_max.
    pub max: u64,
    /// Connections per second that recently closed through the table (from its TIME_WAIT
    /// entries' timeouts), or the count's growth since the previous sample where the table
    /// could not be dumped (null then in the first sample).
    pub new_rate: Option<f64>,
    /// The span `new_rate` was measured over, seconds.
    pub rate_window_s: Option<f64>,
    /// How long a closed connection keeps its entry: the conntrack TIME_WAIT timeout, s.
    pub hold_s: f64,
    /// Where the count heads at this rate: new_rate x hold_s.
    pub steady_entries: Option<f64>,
    /// Seconds until the count reaches max at this rate, when it heads past it.
    pub eta_s: Option<f64>,
    /// New connections refused since the previous sample (drop, early_drop, insert_failed).
    pub refused: u64,
    /// A source NAT's mappings by (public address, destination) against its pool
    /// (`--nat-ports`): empty where the namespace masquerades nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nat: Vec<NatReport>,
    /// exhausted: the count is at max or connections were refused, or a NAT's open mappings
    /// toward one destination fill its pool; warning: the count heads past max, or reaches
    /// it within --warn-within, or a NAT's pool is 90% held; ok otherwise.
    pub state: State,
}

/// A NAT's mappings toward one destination against its pool (JSON `conntrack.nat`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatReport {
    /// The mappings, as the dump counted them.
    #[serde(flatten)]
    pub mappings: NatMappings,
    /// The pool's ports toward one destination (`--nat-ports`; unset, 64,512: the
    /// 1024-65535 a masquerade without a port range picks from).
    pub pool: u64,
    /// exhausted: every port held by an open connection (new ones are refused); warning:
    /// 90% held; ok otherwise.
    pub state: State,
}

/// The ports a masquerade or SNAT rule without a port range picks from for a source port
/// above 1023 (1024-65535, net/netfilter/nf_nat_proto.c).
pub const DEFAULT_NAT_POOL: u64 = 64_512;

/// A NAT's share of its pool at which `watch` warns.
const NAT_WARN_SHARE: f64 = 0.9;

/// The report for `now`, against the reading `before` taken `dt_s` seconds earlier (None in
/// the first sample); `warn_within_s` as for the ports.
pub fn report(
    now: &ConntrackReading,
    before: Option<(&ConntrackReading, f64)>,
    warn_within_s: f64,
) -> ConntrackReport {
    let nat_pool = now.nat_pool;
    let tracking = now.count > 0 || before.is_some_and(|(b, _)| b.count > 0);
    let measured = match now.closed {
        Some(ages) => Some(ages.measure()),
        None => before
            .filter(|(_, dt)| *dt > 0.0)
            .map(|(b, dt)| (now.count.saturating_sub(b.count) as f64 / dt, dt)),
    }
    .filter(|_| tracking);
    let rate = measured.map(|(r, _)| r);
    let refused = before.map_or(0, |(b, _)| now.refused.saturating_sub(b.refused));
    let hold_s = now.time_wait_s;
    let steady = rate.map(|r| r * hold_s);
    let free = now.max.saturating_sub(now.count) as f64;
    // At most one hold away: within a hold the entries of the oldest connections expire.
    let eta_s = rate
        .filter(|&r| r > 0.0)
        .map(|r| free / r)
        .filter(|&eta| steady.is_some_and(|s| s > now.max as f64) || eta <= hold_s);
    let nat: Vec<NatReport> = now
        .nat
        .iter()
        .map(|m| NatReport {
            mappings: m.clone(),
            pool: nat_pool,
            state: if m.count.open >= nat_pool {
                State::Exhausted
            } else if m.count.open as f64 >= NAT_WARN_SHARE * nat_pool as f64 {
                State::Warning
            } else {
                State::Ok
            },
        })
        .collect();
    let nat_state = nat.iter().map(|n| n.state).max().unwrap_or(State::Ok);
    let state = if now.count >= now.max || refused > 0 {
        State::Exhausted
    } else if steady.is_some_and(|s| s > now.max as f64)
        || eta_s.is_some_and(|eta| eta <= warn_within_s.min(hold_s))
    {
        State::Warning
    } else {
        State::Ok
    };
    ConntrackReport {
        tracking,
        entries: now.count,
        max: now.max,
        new_rate: rate,
        rate_window_s: measured.map(|(_, w)| w),
        hold_s,
        steady_entries: steady,
        eta_s: if now.count >= now.max {
            Some(0.0)
        } else {
            eta_s
        },
        refused,
        nat,
        state: state.max(nat_state),
    }
}

impl ConntrackReport {
    /// One line for the text outputs.
    pub fn line(&self) -> String {
        if !self.tracking {
            return format!(
                "conntrack: 0 of {} entries (no rule in this namespace tracks its connections now)",
                self.max
            );
        }
        let pct = if self.max > 0 {
            100.0 * self.entries as f64 / self.max as f64
        } else {
            0.0
        };
        let mut s = format!(
            "conntrack: {} of {} entries ({pct:.1}%)",
            self.entries, self.max
        );
        if let (Some(r), Some(steady)) = (self.new_rate, self.steady_entries) {
            s += &format!(
                ", {r:.1} closed/s x {:.0} s hold = {steady:.0} at steady state",
                self.hold_s
            );
        }
        if let Some(eta) = self.eta_s {
            s += &format!(", full in {eta:.1} s");
        }
        if self.refused > 0 {
            s += &format!(", {} new connections refused", self.refused);
        }
        s += &format!(": {}", self.state.name());
        for n in &self.nat {
            let m = &n.mappings;
            s += &format!(
                "\nNAT {} -> {}: {} open mappings of {} ports ({} with closed ones): {}",
                m.public,
                m.destination,
                m.count.open,
                n.pool,
                m.count.all,
                n.state.name()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Ages;

    /// A table with `count` entries of which `closed_per_s` closed every second for the
    /// last `for_s` seconds (their TIME_WAIT entries' ages spread evenly), `refused` so far.
    fn reading(count: u64, closed_per_s: u32, for_s: u32, refused: u64) -> ConntrackReading {
        let mut ages = Ages::new(120.0);
        for i in 0..closed_per_s * for_s {
            ages.add(f64::from(i) / f64::from(closed_per_s));
        }
        ConntrackReading {
            count,
            max: 12_000,
            time_wait_s: 120.0,
            refused,
            closed: Some(ages),
            nat: Vec::new(),
            nat_pool: DEFAULT_NAT_POOL,
        }
    }

    #[test]
    fn a_nats_open_mappings_toward_one_destination_are_judged_against_its_pool() {
        let nat = |open, all| NatMappings {
            public: "198.18.1.1".parse().unwrap(),
            destination: "198.18.1.2:5432".parse().unwrap(),
            count: crate::observe::conntrack::NatCount { open, all },
        };
        let mut r = reading(500, 1, 20, 0);
        // Closed connections' mappings are handed out again: 100 of them do not fill 100.
        r.nat = vec![nat(10, 100)];
        r.nat_pool = 100;
        let ok = report(&r, None, 60.0);
        assert_eq!((ok.state, ok.nat[0].state), (State::Ok, State::Ok));
        r.nat = vec![nat(95, 150)];
        assert_eq!(report(&r, None, 60.0).state, State::Warning);
        r.nat = vec![nat(100, 100)];
        let full = report(&r, None, 60.0);
        assert_eq!(full.state, State::Exhausted);
        assert!(
            full.line().contains(
                "NAT 198.18.1.1 -> 198.18.1.2:5432: 100 open mappings of 100 ports (100 with closed ones): exhausted"
            ),
            "{}",
            full.line()
        );
        // Unset, the pool is the masquerade's default range.
        r.nat_pool = DEFAULT_NAT_POOL;
        assert_eq!(report(&r, None, 60.0).nat[0].state, State::Ok);
    }

    #[test]
    fn the_ages_of_time_wait_entries_give_the_rate_the_steady_count_and_the_eta() {
        // 50 closes/s against a 12,000-entry table: 6,000 at steady state, ok.
        let r = report(&reading(1_000, 50, 20, 0), None, 60.0);
        assert_eq!(r.new_rate, Some(50.0));
        assert_eq!(r.steady_entries, Some(6_000.0));
        assert_eq!((r.eta_s, r.state), (None, State::Ok));
        // 200/s: 24,000 at steady state, past the max: full in (12,000 - 1,200) / 200 s.
        let r = report(&reading(1_200, 200, 6, 0), None, 60.0);
        assert_eq!(r.state, State::Warning);
        assert_eq!(r.eta_s, Some(54.0));
        assert!(r.line().contains("full in 54.0 s"), "{}", r.line());
    }

    #[test]
    fn the_age_is_the_middle_of_the_second_the_kernel_rounded_down() {
        assert_eq!(age_s(120.0, 117), 2.5);
        assert_eq!(age_s(120.0, 120), 0.0);
        assert_eq!(age_s(1.0, 5), 0.0);
    }

    #[test]
    fn without_a_dump_the_counts_growth_stands_in() {
        let blind = |count| ConntrackReading {
            closed: None,
            ..reading(count, 0, 0, 0)
        };
        let first = report(&blind(500), None, 60.0);
        assert_eq!(first.new_rate, None);
        let r = report(&blind(800), Some((&blind(500), 2.0)), 60.0);
        assert_eq!((r.new_rate, r.rate_window_s), (Some(150.0), Some(2.0)));
        assert_eq!(r.steady_entries, Some(18_000.0));
        assert_eq!(r.state, State::Warning);
    }

    #[test]
    fn an_empty_table_is_no_table_tracking_the_namespace() {
        let r = report(
            &reading(0, 0, 0, 0),
            Some((&reading(0, 0, 0, 0), 1.0)),
            60.0,
        );
        assert!(!r.tracking);
        assert_eq!((r.new_rate, r.steady_entries, r.eta_s), (None, None, None));
        assert_eq!(r.state, State::Ok);
        assert!(r.line().contains("no rule"), "{}", r.line());
    }

    #[test]
    fn a_full_table_or_a_refused_connection_is_exhausted() {
        let full = report(&reading(12_000, 1, 20, 0), None, 60.0);
        assert_eq!((full.state, full.eta_s), (State::Exhausted, Some(0.0)));
        let refused = report(
            &reading(900, 1, 20, 4),
            Some((&reading(890, 1, 20, 1), 1.0)),
            60.0,
        );
        assert_eq!((refused.state, refused.refused), (State::Exhausted, 3));
        assert!(refused.line().contains("3 new connections refused"));
        // Within --warn-within of full at this rate, though the steady count stays under.
        let near = report(&reading(11_950, 50, 20, 0), None, 60.0);
        assert_eq!((near.state, near.eta_s), (State::Warning, Some(1.0)));
    }
}
