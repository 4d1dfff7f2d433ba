//! A run's view of the kernel: a baseline sample before the first start, one sample per
//! interval (timeline columns), and the totals for summary.json (`timewait`, `kernel`).

use super::conntrack::{ConntrackSource, ConntrackSummary};
use super::{Counter, KernelSample, Sample};
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
    /// The client's side before the run's first connection: another program's, or an
    /// earlier run's toward a port the embedded server now listens on again. Absent in
    /// summaries written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_start: Option<u64>,
    /// The server's side before the run's first connection (an earlier listener's on the
    /// same port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_start: Option<u64>,
}

/// Watches the client's namespace (and the server's, in the veth topology).
pub struct KernelTimeline {
    client: Box<dyn Sample>,
    server: Option<Box<dyn Sample>>,
    baseline: KernelSample,
    previous: KernelSample,
    last: KernelSample,
    timewait: TimewaitSummary,
    /// Further destinations of the run (the embedded server's other ports): their client
    /// TIME_WAIT counts toward the client's side too.
    also: Vec<std::net::SocketAddr>,
    /// The conntrack table the lab tracks (the timeline's `conntrack_count` column).
    conntrack: Option<Box<dyn ConntrackSource>>,
    /// The run's time of the last [`KernelTimeline::interval`], seconds.
    last_t_s: Option<f64>,
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

impl KernelTimeline {
    /// Takes the baseline sample. `server` samples the server's namespace (veth), else the
    /// client's sampler gives both sides.
    pub fn start(
        mut client: Box<dyn Sample>,
        mut server: Option<Box<dyn Sample>>,
    ) -> KernelTimeline {
        let baseline = client.sample();
        let server_start = match server.as_mut() {
            Some(s) => s.sample().tw_server,
            None => baseline.tw_server,
        };
        KernelTimeline {
            client,
            server,
            previous: baseline.clone(),
            last: baseline.clone(),
            timewait: TimewaitSummary {
                client_start: baseline.tw_client,
                server_start,
                ..TimewaitSummary::default()
            },
            baseline,
            also: Vec::new(),
            conntrack: None,
            last_t_s: None,
        }
    }

    /// Counts client TIME_WAIT toward these destinations as well as the sampler's target
    /// (a run spread over several destinations).
    pub fn also_toward(mut self, destinations: &[std::net::SocketAddr]) -> KernelTimeline {
        self.also = destinations.to_vec();
        self
    }

    /// Samples this conntrack table too: a `conntrack_count` column after the others, and
    /// [`KernelTimeline::conntrack`] at the end.
    pub fn with_conntrack(mut self, ct: Option<Box<dyn ConntrackSource>>) -> KernelTimeline {
        self.conntrack = ct;
        self
    }

    /// The conntrack table's figures over the run, with its live entries now (None when no
    /// table was tracked).
    pub fn conntrack(&mut self) -> Option<ConntrackSummary> {
        let last_t_s = self.last_t_s;
        self.conntrack.as_mut().map(|c| ConntrackSummary {
            last_sample_s: last_t_s,
            ..c.summary()
        })
    }

    /// Says when (the run's seconds) the last [`KernelTimeline::interval`] sampled.
    pub fn sampled_at(&mut self, t_s: f64) {
        self.last_t_s = Some(t_s);
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
        if let Some(ct) = self.conntrack.as_mut() {
            row.push(("conntrack_count", f(ct.count())));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::DestinationCount;
    use std::collections::VecDeque;

    /// Plays back samples in order (the last one again once they run out).
    struct Script(VecDeque<KernelSample>);

    impl Sample for Script {
        fn sample(&mut self) -> KernelSample {
            match self.0.len() {
                0 => KernelSample::default(),
                1 => self.0[0].clone(),
                _ => self.0.pop_front().unwrap_or_default(),
            }
        }
    }

    fn script(samples: Vec<KernelSample>) -> Box<dyn Sample> {
        Box::new(Script(samples.into()))
    }

    fn sample(tw_client: u64, tw_server: u64, active_opens: u64) -> KernelSample {
        let mut s = KernelSample {
            tw_client: Some(tw_client),
            tw_server: Some(tw_server),
            tw_sockstat: Some(tw_client + tw_server),
            established_client: Some(0),
            ..KernelSample::default()
        };
        s.counters.set(Counter::ActiveOpens, Some(active_opens));
        s
    }

    fn column(row: &[(&'static str, Option<f64>)], name: &str) -> Option<f64> {
        row.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v)
    }

    #[test]
    fn time_wait_keeps_its_maximum_and_its_end_and_counters_their_changes() {
        let mut w = KernelTimeline::start(
            script(vec![
                sample(2, 0, 100), // the baseline
                sample(10, 0, 110),
                sample(30, 1, 140),
                sample(5, 0, 145), // after the drain
            ]),
            None,
        );
        let rows: Vec<_> = (0..3).map(|_| w.interval()).collect();
        assert_eq!(column(&rows[0], "tw_client"), Some(10.0));
        assert_eq!(column(&rows[1], "ActiveOpens"), Some(30.0), "per interval");
        assert_eq!(column(&rows[2], "tw_sockstat"), Some(5.0));
        let t = w.timewait();
        assert_eq!((t.client_max, t.client_end), (Some(30), Some(5)));
        assert_eq!((t.server_max, t.server_end), (Some(1), Some(0)));
        assert_eq!(w.kernel_deltas()["ActiveOpens"], 45, "last minus baseline");
        assert_eq!(
            w.preexisting(),
            2,
            "TIME_WAIT toward the target before the run"
        );
    }

    #[test]
    fn the_server_namespace_gives_the_server_side() {
        let mut w = KernelTimeline::start(
            script(vec![sample(0, 99, 0), sample(7, 99, 7)]),
            Some(script(vec![sample(0, 0, 0), sample(0, 4, 0)])),
        );
        let row = w.interval();
        assert_eq!(column(&row, "tw_client"), Some(7.0));
        assert_eq!(column(&row, "tw_server"), Some(4.0), "not the client's 99");
        assert_eq!(w.timewait().server_max, Some(4));
    }

    #[test]
    fn further_destinations_count_toward_the_client() {
        let other: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let stranger: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let mut later = sample(10, 0, 0);
        later.tw_by_destination = Some(vec![
            DestinationCount {
                destination: other,
                time_wait: 6,
            },
            DestinationCount {
                destination: stranger,
                time_wait: 50,
            },
        ]);
        let mut w =
            KernelTimeline::start(script(vec![sample(0, 0, 0), later]), None).also_toward(&[other]);
        let row = w.interval();
        assert_eq!(
            column(&row, "tw_client"),
            Some(16.0),
            "10 + 6, not the stranger's 50"
        );
        assert_eq!(w.timewait().client_max, Some(16));
    }

    #[test]
    fn what_cannot_be_observed_stays_unknown() {
        let mut w = KernelTimeline::start(script(vec![KernelSample::default()]), None);
        let row = w.interval();
        assert_eq!(row.len(), columns().len());
        assert!(row.iter().all(|(_, v)| v.is_none()));
        assert_eq!(w.timewait(), &TimewaitSummary::default());
        assert!(w.kernel_deltas().is_empty());
    }
}
