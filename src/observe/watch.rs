//! A run's view of the kernel: a baseline sample before the first start, one sample per
//! interval (timeline columns), and the totals for summary.json (`timewait`, `kernel`).

use super::{Counter, KernelSample, Sampler};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// TIME_WAIT on each side over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimewaitSummary {
    /// Most TIME_WAIT sockets toward the target seen in one sample (the client's side).
    pub client_max: Option<u64>,
    /// Most TIME_WAIT sockets on the target's port seen in one sample (the server's side).
    pub server_max: Option<u64>,
    /// The client's side in the last sample (after the drain).
    pub client_end: Option<u64>,
    /// The server's side in the last sample (after the drain).
    pub server_end: Option<u64>,
}

/// Watches the client's namespace (and the server's, in the veth topology).
pub struct KernelWatch {
    client: Sampler,
    server: Option<Sampler>,
    baseline: KernelSample,
    previous: KernelSample,
    last: KernelSample,
    timewait: TimewaitSummary,
    /// Further destinations of the run (the embedded server's other ports): their client
    /// TIME_WAIT counts toward the client's side too.
    also: Vec<std::net::SocketAddr>,
}

/// Names of the timeline columns `interval` fills, in order.
pub fn columns() -> Vec<&'static str> {
    let mut names = vec![
        "tw_client",
        "tw_server",
        "tw_sockstat",
        "established_client",
    ];
    names.extend(Counter::ALL.iter().map(|c| c.name()));
    names
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl KernelWatch {
    /// Takes the baseline sample. `server` samples the server's namespace (veth), else the
    /// client's sampler gives both sides.
    pub fn start(mut client: Sampler, mut server: Option<Sampler>) -> KernelWatch {
        let baseline = client.sample();
        if let Some(s) = server.as_mut() {
            s.sample();
        }
        KernelWatch {
            client,
            server,
            previous: baseline.clone(),
            last: baseline.clone(),
            baseline,
            timewait: TimewaitSummary::default(),
            also: Vec::new(),
        }
    }

    /// Counts client TIME_WAIT toward these destinations as well as the sampler's target
    /// (a run spread over several destinations).
    pub fn also_toward(mut self, destinations: &[std::net::SocketAddr]) -> KernelWatch {
        self.also = destinations.to_vec();
        self
    }

    /// Samples now: TIME_WAIT by side and each counter's change since the last interval,
    /// as (column, value) in the order of [`columns`].
    pub fn interval(&mut self) -> Vec<(&'static str, Option<f64>)> {
        let mut now = self.client.sample();
        if let (false, Some(tw), Some(dests)) = (
            self.also.is_empty(),
            now.tw_client.as_mut(),
            now.tw_by_destination.as_ref(),
        ) {
            *tw += dests
                .iter()
                .filter(|d| self.also.contains(&d.destination))
                .map(|d| d.time_wait)
                .sum::<u64>();
        }
        let tw_server = match self.server.as_mut() {
            Some(s) => s.sample().tw_server,
            None => now.tw_server,
        };
        let t = &mut self.timewait;
        t.client_max = max_opt(t.client_max, now.tw_client);
        t.server_max = max_opt(t.server_max, tw_server);
        t.client_end = now.tw_client;
        t.server_end = tw_server;
        let f = |v: Option<u64>| v.map(|v| v as f64);
        let mut row = vec![
            ("tw_client", f(now.tw_client)),
            ("tw_server", f(tw_server)),
            ("tw_sockstat", f(now.tw_sockstat)),
            ("established_client", f(now.established_client)),
        ];
        let delta = now.delta(&self.previous);
        row.extend(Counter::ALL.iter().map(|c| (c.name(), f(delta.get(*c)))));
        self.previous = now.clone();
        self.last = now;
        row
    }

    /// Client sockets that held a port toward the target before the run (TIME_WAIT or
    /// ESTABLISHED in the first sample): ports the run cannot have.
    pub fn preexisting(&self) -> u64 {
        self.baseline.tw_client.unwrap_or(0) + self.baseline.established_client.unwrap_or(0)
    }

    /// TIME_WAIT by side over the run so far.
    pub fn timewait(&self) -> &TimewaitSummary {
        &self.timewait
    }

    /// Each counter's change from the baseline to the last sample, by its kernel name.
    pub fn kernel_deltas(&self) -> BTreeMap<String, u64> {
        let delta = self.last.delta(&self.baseline);
        Counter::ALL
            .iter()
            .filter_map(|c| delta.get(*c).map(|v| (c.name().to_string(), v)))
            .collect()
    }
}
