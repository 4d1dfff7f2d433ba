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
    let reuse_from_s = (i.at_once.is_none() && i.connections > i.ports && i.rate > 0.0)
        .then(|| i.ports as f64 / i.rate);
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
            ..input()
        });
        assert_eq!((o.refused_at_once, o.ports_used), (50, 100));
        assert!(o.sentence().contains("50 get none"), "{}", o.sentence());
        let fits = outlook(&NatInput {
            at_once: Some(80),
            connections: 80,
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
    fn a_nat_that_holds_its_ports_runs_out_like_a_client() {
        // A cloud NAT with 64 ports per VM holding each 120 s: 64 / R at R = 1/s.
        assert_eq!(fixed_hold_exhaustion_s(64, 1.0, 120.0), Some(64.0));
        assert_eq!(fixed_hold_exhaustion_s(1024, 1.0, 120.0), None);
    }
}
