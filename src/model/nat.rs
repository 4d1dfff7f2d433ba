//! A source NAT's port pool (a Kubernetes node masquerading its pods, a cloud NAT gateway):
//! what it holds, when it runs out, and what the clients behind it see then.
//!
//! A NAT maps each connection to (its public address, a port of its pool) toward the
//! connection's destination, and needs that 4-tuple to be unique: its capacity is the pool's
//! size per (public address, destination), whatever the clients' own port ranges. Linux's
//! NAT (what the lab runs) keeps a mapping in its conntrack entry, and a mapping whose
//! connection has closed (conntrack TIME_WAIT or CLOSE) is handed to the next SYN that needs
//! it: churn alone does not exhaust it, connections open at once beyond the pool do. When
//! no port is left the kernel refuses the new conntrack entry (insert_failed) and drops the
//! SYN (drop): the client sees no error at once, only a SYN retransmitted after 1 s, 3 s,
//! 7 s ... until a mapping frees or its connect timeout fails it as TIMEOUT.
//!
//! A NAT that holds a port for a fixed time after the close (a cloud NAT's TCP TIME_WAIT
//! timeout) runs out like a client's ports with that hold: pool / R, which
//! [`fixed_hold_exhaustion_s`] gives; the lab does not emulate it (this kernel reuses).

/// What a NAT run needs from its plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NatInput {
    /// Ports in the pool (per public address, toward one destination).
    pub ports: u64,
    /// Connections that want a mapping at once: the persistent pool's size, times the
    /// clients behind the NAT; None for one connection per request (few at once).
    pub at_once: Option<u64>,
    /// Connections made (established), for the ports the pool hands out.
    pub connections: u64,
    /// One connection per request (no persistent pool): closed connections' ports are
    /// handed out again.
    pub churn: bool,
    /// Starts per second, all clients together.
    pub rate: f64,
    /// The server closes first, so it keeps TIME_WAIT on the NAT's 4-tuples.
    pub server_closes: bool,
    /// The server's TIME_WAIT, seconds (60 on Linux).
    pub server_time_wait_s: f64,
}

/// What the model says of a NAT run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NatOutlook {
    /// The pool's ports: mappings toward one destination at once.
    pub ports: u64,
    /// Connections wanting a mapping at once (None: one connection per request).
    pub at_once: Option<u64>,
    /// Of those, how many get none while the others hold theirs: their SYNs are dropped.
    pub refused_at_once: u64,
    /// The NAT's ports the server sees: min(connections, pool).
    pub ports_used: u64,
    /// When the NAT starts handing out ports it handed out before (pool / R), seconds;
    /// None when the run makes no more connections than the pool has ports, or holds them
    /// (a persistent pool).
    pub reuse_from_s: Option<f64>,
    /// From `reuse_from_s`, a new connection may meet the server's TIME_WAIT on its 4-tuple
    /// (the server closes first and the pool comes round within its TIME_WAIT): the server
    /// takes the SYN over only when its timestamp or sequence is newer (RFC 6191), else the
    /// client's connect stalls for a SYN retransmission.
    pub server_timewait_collisions: bool,
}

/// The model of a NAT run.
pub fn outlook(i: &NatInput) -> NatOutlook {
    let refused_at_once = i.at_once.map_or(0, |c| c.saturating_sub(i.ports));
    // Only churn hands ports out again; a persistent pool holds its mappings.
    let reuse_from_s =
        (i.churn && i.connections > i.ports && i.rate > 0.0).then(|| i.ports as f64 / i.rate);
    NatOutlook {
        ports: i.ports,
        at_once: i.at_once,
        refused_at_once,
        ports_used: i.connections.min(i.ports),
        reuse_from_s,
        server_timewait_collisions: i.server_closes
            && reuse_from_s.is_some_and(|t| t < i.server_time_wait_s),
    }
}

/// `portlab predict`'s NAT: K clients, each with the same load, behind one NAT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NatPlan {
    /// The pool's ports (per public address, toward one destination).
    pub ports: u64,
    /// Clients behind the NAT, each with the load given.
    pub clients: u64,
    /// Each client's new connections per second (None: capacity only).
    pub rate: Option<f64>,
    /// Each client's persistent connections (0: one per request).
    pub pool: u32,
    /// How long each connection stays open, seconds.
    pub lifetime_s: f64,
    /// The server closes first.
    pub server_closes: bool,
    /// A NAT that holds each port this long after the close (a cloud NAT's TCP TIME_WAIT
    /// timeout), seconds; None: it reuses closed connections' ports at once, as Linux does.
    pub hold_s: Option<f64>,
}

/// What `predict` says of a NAT.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NatPrediction {
    /// The model's outlook (as a lab run's `nat.model`).
    #[serde(flatten)]
    pub outlook: NatOutlook,
    /// Clients behind the NAT.
    pub clients: u64,
    /// New connections per second through the NAT, all clients together.
    pub rate: Option<f64>,
    /// The fixed hold after the close, seconds (None: reused at once).
    pub hold_s: Option<f64>,
    /// When a NAT with a fixed hold runs out: ports / (R x K), seconds.
    pub runs_out_at_s: Option<f64>,
    /// In words.
    pub explanation: String,
}

/// The NAT's figures for `predict`: connections at once (the pools, or R x lifetime for
/// one per request), what is refused, when a fixed-hold NAT runs out.
pub fn predict(p: &NatPlan) -> NatPrediction {
    let clients = p.clients.max(1);
    let rate = p.rate.map(|r| r * clients as f64);
    let at_once = match (p.pool, rate) {
        (0, Some(r)) if p.lifetime_s > 0.0 => Some((r * p.lifetime_s).ceil() as u64),
        (0, _) => None,
        (n, _) => Some(u64::from(n) * clients),
    };
    let outlook = outlook(&NatInput {
        ports: p.ports,
        at_once,
        // Over a long run every port is used once the rate is given.
        connections: if rate.is_some() { u64::MAX } else { 0 },
        // A NAT that holds its ports hands none out again within the hold.
        churn: p.pool == 0 && p.hold_s.is_none(),
        rate: rate.unwrap_or(0.0),
        server_closes: p.server_closes,
        server_time_wait_s: 60.0,
    });
    let runs_out_at_s = match (p.pool, p.hold_s, rate) {
        (0, Some(h), Some(r)) => fixed_hold_exhaustion_s(p.ports, r, p.lifetime_s + h),
        _ => None,
    };
    let mut explanation = outlook.sentence();
    if let (Some(h), Some(r)) = (p.hold_s, rate) {
        explanation.push_str(&match runs_out_at_s {
            Some(t) => format!(
                " A NAT that holds each port {h:.0} s after the close runs out at {} / {r:.1} per \
                 second = {t:.1} s: from then on it admits {:.2} new connections per second.",
                p.ports,
                p.ports as f64 / (p.lifetime_s + h)
            ),
            None => format!(
                " A NAT that holds each port {h:.0} s after the close keeps {:.0} of its {} ports \
                 busy at {r:.1} per second, and never runs out.",
                r * (p.lifetime_s + h),
                p.ports
            ),
        });
    }
    NatPrediction {
        outlook,
        clients,
        rate,
        hold_s: p.hold_s,
        runs_out_at_s,
        explanation,
    }
}

/// When a NAT that holds each port `hold_s` after the close (rather than reusing it, as
/// Linux does) runs out at `rate` connections per second: pool / rate, if the pool is
/// smaller than rate x hold; None when it never does.
pub fn fixed_hold_exhaustion_s(ports: u64, rate: f64, hold_s: f64) -> Option<f64> {
    (rate > 0.0 && rate * hold_s > ports as f64).then(|| ports as f64 / rate)
}

impl NatOutlook {
    /// One sentence for the report.
    pub fn sentence(&self) -> String {
        let mut out = format!(
            "The NAT has {} ports per destination (its public address, the server's address and \
             port): ",
            self.ports
        );
        match self.at_once {
            Some(c) if c > self.ports => out.push_str(&format!(
                "{c} connections want one at once, so {} get none: the NAT drops their SYNs \
                 (conntrack insert_failed) and the clients see connect stalls and TIMEOUTs, \
                 not EADDRNOTAVAIL, until a mapping frees",
                self.refused_at_once
            )),
            Some(1) => out.push_str("1 connection at a time fits"),
            Some(c) => out.push_str(&format!("{c} connections at once fit")),
            None => {
                out.push_str("one connection per request needs few at once, so none is refused")
            }
        }
        match (self.reuse_from_s, self.server_timewait_collisions) {
            (Some(t), true) => out.push_str(&format!(
                "; from {t:.1} s the NAT reuses ports whose 4-tuples the server still holds in \
                 TIME_WAIT (it closes first): some connects stall for a SYN retransmission (1 s)"
            )),
            (Some(t), false) => out.push_str(&format!(
                "; from {t:.1} s it reuses the ports of closed connections (this kernel's NAT \
                 hands out a mapping in TIME_WAIT again), which costs nothing"
            )),
            (None, _) => {}
        }
        out.push('.');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> NatInput {
        NatInput {
            ports: 100,
            at_once: None,
            connections: 300,
            churn: true,
            rate: 50.0,
            server_closes: false,
            server_time_wait_s: 60.0,
        }
    }

    #[test]
    fn a_pool_larger_than_the_nat_leaves_the_rest_without_a_mapping() {
        let o = outlook(&NatInput {
            at_once: Some(150),
            connections: 150,
            churn: false,
            ..input()
        });
        assert_eq!((o.refused_at_once, o.ports_used), (50, 100));
        assert!(o.sentence().contains("50 get none"), "{}", o.sentence());
        let fits = outlook(&NatInput {
            at_once: Some(80),
            connections: 80,
            churn: false,
            ..input()
        });
        assert_eq!(
            (fits.refused_at_once, fits.ports_used, fits.reuse_from_s),
            (0, 80, None)
        );
    }

    #[test]
    fn churn_reuses_the_pool_from_pool_over_rate_and_collides_only_when_the_server_closes() {
        let o = outlook(&input());
        assert_eq!(o.reuse_from_s, Some(2.0));
        assert_eq!((o.ports_used, o.refused_at_once), (100, 0));
        assert!(!o.server_timewait_collisions);
        let s = outlook(&NatInput {
            server_closes: true,
            ..input()
        });
        assert!(s.server_timewait_collisions);
        // The pool comes round after the server's TIME_WAIT has ended: no collision.
        let slow = outlook(&NatInput {
            server_closes: true,
            rate: 1.0,
            ..input()
        });
        assert_eq!(slow.reuse_from_s, Some(100.0));
        assert!(!slow.server_timewait_collisions);
    }

    #[test]
    fn predict_counts_every_clients_pool_and_a_fixed_holds_run_out() {
        let base = NatPlan {
            ports: 64,
            clients: 1,
            rate: Some(2.0),
            pool: 0,
            lifetime_s: 0.05,
            server_closes: false,
            hold_s: None,
        };
        // One per request at 2/s for 50 ms: a single connection at once, and Linux's NAT
        // reuses: nothing runs out.
        let p = predict(&base);
        assert_eq!((p.outlook.at_once, p.outlook.refused_at_once), (Some(1), 0));
        assert_eq!(p.runs_out_at_s, None);
        // A cloud NAT holding each port 120 s: 64 / 2 = 32 s.
        let held = predict(&NatPlan {
            hold_s: Some(120.0),
            ..base
        });
        assert_eq!(held.runs_out_at_s, Some(32.0));
        assert!(held.explanation.contains("32.0 s"), "{}", held.explanation);
        // Four pods with pools of 20 behind it: 80 want a port at once, 16 get none.
        let pods = predict(&NatPlan {
            clients: 4,
            pool: 20,
            ..base
        });
        assert_eq!(
            (pods.outlook.at_once, pods.outlook.refused_at_once),
            (Some(80), 16)
        );
        assert_eq!(pods.rate, Some(8.0));
    }

    #[test]
    fn a_nat_that_holds_its_ports_runs_out_like_a_client() {
        // A cloud NAT with 64 ports per VM holding each 120 s: 64 / R at R = 1/s.
        assert_eq!(fixed_hold_exhaustion_s(64, 1.0, 120.0), Some(64.0));
        assert_eq!(fixed_hold_exhaustion_s(1024, 1.0, 120.0), None);
    }
}
