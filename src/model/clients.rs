//! The many-client lab's arithmetic (`lab.clients = K`): what the one server holds in
//! TIME_WAIT when K clients, each its own host with its own ports, close second (passive
//! close: the server closes first and keeps TIME_WAIT on its side).
//!
//! Each client k adds the distinct 4-tuples it uses within one TIME_WAIT: at most R_k x T
//! connections, at most the ones it made, and at most its distinct tuples toward the one
//! server address:port (a SYN on a 4-tuple the server holds in TIME_WAIT takes that socket
//! over, so a client cannot give the server more sockets than it has tuples). Linux's
//! connect() steps through the ports of one parity, so the tuples a client reaches are
//! [`tuples_reached`] of its floor(P / 2): the server's TIME_WAIT is
//! sum over k of min(R_k x T, tuples_reached(N_k, made_k)).

use super::tuples_reached;

/// One client namespace's load, as its own model saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientLoad {
    /// Its connection rate R_k (per second, lab time).
    pub rate: f64,
    /// How long the server holds a 4-tuple in TIME_WAIT, T (seconds).
    pub hold_s: f64,
    /// Connections it made (completed) in the run.
    pub made: f64,
    /// Its distinct 4-tuples toward the server address:port (None: not modelled, no cap).
    pub tuples: Option<f64>,
}

impl ClientLoad {
    /// This client's share of the server's TIME_WAIT at its most.
    pub fn server_timewait(&self) -> f64 {
        let within_hold = (self.rate * self.hold_s).max(0.0);
        let reached = match self.tuples {
            Some(n) => tuples_reached(n, self.made),
            None => self.made.max(0.0),
        };
        within_hold.min(reached)
    }
}

/// The server's TIME_WAIT at its most: the sum over the clients of each one's share, at most
/// the server's tcp_max_tw_buckets (`max_tw_buckets`: beyond it closing sockets skip
/// TIME_WAIT).
pub fn server_timewait(clients: &[ClientLoad], max_tw_buckets: Option<u64>) -> f64 {
    // A fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
    let sum = clients
        .iter()
        .map(ClientLoad::server_timewait)
        .fold(0.0, |a, b| a + b);
    max_tw_buckets.map_or(sum, |cap| sum.min(cap as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(rate: f64, made: f64, tuples: Option<f64>) -> ClientLoad {
        ClientLoad {
            rate,
            hold_s: 60.0,
            made,
            tuples,
        }
    }

    #[test]
    fn a_short_run_gives_the_server_every_connection_up_to_the_tuples() {
        // 3 clients of 200 ports (100 tuples of one parity), 100 connections each: the
        // stepping reaches fewer than 100 of the 100 distinct tuples.
        let one = client(50.0, 100.0, Some(100.0));
        let share = one.server_timewait();
        assert!((share - tuples_reached(100.0, 100.0)).abs() < 1e-9);
        assert!(share < 100.0 && share > 60.0, "{share}");
        assert!((server_timewait(&[one, one, one], None) - 3.0 * share).abs() < 1e-9);
    }

    #[test]
    fn each_client_is_capped_by_its_own_tuples() {
        // Many laps over 100 tuples: the cap, not R x T (3000) nor the 6000 made.
        let capped = client(50.0, 6000.0, Some(100.0));
        assert!((capped.server_timewait() - 100.0).abs() < 0.01);
        // A slow client is capped by R x T instead: 0.5/s x 60 s = 30.
        let slow = client(0.5, 6000.0, Some(100.0));
        assert!((slow.server_timewait() - 30.0).abs() < 1e-9);
        // Without a tuple model, the connections made.
        let unmodelled = client(50.0, 40.0, None);
        assert_eq!(unmodelled.server_timewait(), 40.0);
        let all = [capped, slow, unmodelled];
        assert!((server_timewait(&all, None) - 170.0).abs() < 0.01);
        // The server's tcp_max_tw_buckets caps the sum.
        assert_eq!(server_timewait(&all, Some(150)), 150.0);
        assert!((server_timewait(&all, Some(1000)) - 170.0).abs() < 0.01);
        assert_eq!(server_timewait(&[], None).to_string(), "0");
    }
}
