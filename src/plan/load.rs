//! `[load]`: how fast, how long, how many at once; resolved and checked here.

use super::bounds::{
    self, DESCRIPTORS, MAX_COUNT, MAX_DURATION, MAX_RATE, MAX_WAIT, MAX_WORKERS, MIN_RATE,
};
use super::Span;
use super::{
    invalid, positive, span_or, Load, PlanError, Rate, DEFAULT_CONCURRENCY, DEFAULT_DURATION,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE, MAX_THREADS,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

super::scenario::section! {
    /// `[load]`: how fast, how long, how many at once (flags under "Load").
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct LoadSection in "load" {
        /// Starts per second (open loop: start i at t0 + i/R; also 200/s or 1800/min), or
        /// "max" for a closed loop [key: load.rate; default 100].
        #[arg(long, allow_hyphen_values = true, value_name = "R|max")]
        pub rate: Option<Rate>
            where v => bounds::range(
                v.and_then(Rate::per_second),
                MIN_RATE,
                MAX_RATE,
                " starts per second (or max)",
            ),
        /// Closed-loop workers with --rate max [key: load.concurrency; default 32, or the pool
        /// size].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub concurrency: Option<u32>
            where v => bounds::range(v.filter(|n| *n > 0), 1, MAX_WORKERS, DESCRIPTORS),
        /// Client threads, each running its share of the workers on its own event loop
        /// [key: load.threads; default one per core].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub threads: Option<u32>,
        /// How long to issue starts, e.g. 5s, 2m [key: load.duration; default 10s unless
        /// --count].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub duration: Option<Span>
            where v => bounds::at_most(*v, MAX_DURATION),
        /// Total starts [key: load.count].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub count: Option<u64>
            where v => bounds::range(v.filter(|n| *n > 0), 1, MAX_COUNT, ""),
        /// A start due while N are in flight is dropped and counted, not queued
        /// [key: load.max_in_flight; default 1024].
        #[arg(long, allow_hyphen_values = true, value_name = "N")]
        pub max_in_flight: Option<u32>
            where v => bounds::range(v.filter(|n| *n > 0), 1, MAX_WORKERS, DESCRIPTORS),
        /// connect() bound; past it the attempt fails as TIMEOUT [key: load.connect_timeout;
        /// default 5s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub connect_timeout: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
        /// Exchange bound after connect [key: load.exchange_timeout; default 5s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub exchange_timeout: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
        /// After the last start or Ctrl-C, how long in-flight connections may finish
        /// [key: load.drain_timeout; default 3s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub drain_timeout: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
        /// Timeline and progress interval [key: load.interval; default 1s].
        #[arg(long, allow_hyphen_values = true, value_name = "DURATION")]
        pub interval: Option<Span>
            where v => bounds::at_most(*v, MAX_WAIT),
        /// Run shard I of N (from 0): rate R/N, first start at I/R, count split exactly, so
        /// N shards on N machines make one even schedule; "N" alone takes I from
        /// $JOB_COMPLETION_INDEX [key: load.shard].
        #[arg(long, value_name = "I/N")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub shard: Option<crate::shard::ShardSpec>,
        /// Begin the load at this instant (RFC 3339 UTC or Unix seconds), with a countdown;
        /// give every shard the same one [key: load.start_at].
        #[arg(long, value_name = "TIME")]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub start_at: Option<crate::shard::StartAt>,
    }
}

/// `[load]` with its defaults filled in; `pool` (client.pool) sets the default concurrency.
pub(super) fn resolve(l: &LoadSection, pool: u32) -> Result<Load, PlanError> {
    let rate = l.rate.unwrap_or(Rate::PerSecond(DEFAULT_RATE));
    let count = match l.count {
        Some(0) => return Err(invalid("load.count", "--count", "must be at least 1")),
        c => c,
    };
    let duration = match (l.duration.map(|d| d.0), count) {
        (Some(d), _) if d.is_zero() => {
            return Err(invalid(
                "load.duration",
                "--duration",
                "must be longer than 0s",
            ))
        }
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    let mut concurrency = positive(
        l.concurrency,
        DEFAULT_CONCURRENCY,
        "load.concurrency",
        "--concurrency",
    )?;
    if pool > 0 && l.concurrency.is_none() {
        concurrency = pool;
    }
    let interval = span_or(
        l.interval,
        Duration::from_secs(1),
        "load.interval",
        "--interval",
    )?;
    if interval < Duration::from_millis(10) {
        return Err(invalid(
            "load.interval",
            "--interval",
            "must be at least 10ms",
        ));
    }
    let threads = match l.threads {
        Some(0) => return Err(invalid("load.threads", "--threads", "must be at least 1")),
        Some(n) if n > MAX_THREADS => {
            return Err(invalid(
                "load.threads",
                "--threads",
                format!("must be at most {MAX_THREADS}"),
            ))
        }
        t => t,
    };
    let (rate, count, shard) = match l.shard {
        None => (rate, count, None),
        Some(spec) => split(spec, rate, count)?,
    };
    if let Some(at) = l.start_at {
        at.check(std::time::SystemTime::now())
            .map_err(|m| invalid("load.start_at", "--start-at", m))?;
    }
    Ok(Load {
        shard,
        start_at: l.start_at,
        rate,
        concurrency,
        threads,
        duration,
        count,
        max_in_flight: positive(
            l.max_in_flight,
            DEFAULT_MAX_IN_FLIGHT,
            "load.max_in_flight",
            "--max-in-flight",
        )?,
        connect_timeout: span_or(
            l.connect_timeout,
            Duration::from_secs(5),
            "load.connect_timeout",
            "--connect-timeout",
        )?,
        exchange_timeout: span_or(
            l.exchange_timeout,
            Duration::from_secs(5),
            "load.exchange_timeout",
            "--exchange-timeout",
        )?,
        drain_timeout: span_or(
            l.drain_timeout,
            Duration::from_secs(3),
            "load.drain_timeout",
            "--drain-timeout",
        )?,
        interval,
    })
}

/// This shard's rate (R / N) and count (its exact share of C), and the shard resolved.
/// `[load]` as plan.toml writes it, every default filled in. Both structs are taken apart
/// field by field, so a key added to either is a compile error here until it is written.
pub(super) fn written(l: &Load) -> LoadSection {
    let Load {
        rate,
        concurrency,
        threads,
        duration,
        count,
        max_in_flight,
        connect_timeout,
        exchange_timeout,
        drain_timeout,
        interval,
        shard,
        start_at,
    } = l;
    LoadSection {
        // A shard writes back the whole run's rate and count with its shard: the plan
        // re-runs as the same shard of the same schedule.
        rate: Some(match shard.and_then(|s| s.total_rate) {
            Some(r) => Rate::PerSecond(r),
            None => *rate,
        }),
        concurrency: Some(*concurrency),
        // Unset stays unset: the plan re-run elsewhere takes that machine's cores.
        threads: *threads,
        duration: duration.map(Span),
        count: shard.map_or(*count, |s| s.total_count),
        max_in_flight: Some(*max_in_flight),
        connect_timeout: Some(Span(*connect_timeout)),
        exchange_timeout: Some(Span(*exchange_timeout)),
        drain_timeout: Some(Span(*drain_timeout)),
        interval: Some(Span(*interval)),
        shard: shard.map(|s| crate::shard::ShardSpec {
            index: Some(s.index),
            count: s.count,
        }),
        start_at: *start_at,
    }
}

fn split(
    spec: crate::shard::ShardSpec,
    rate: Rate,
    count: Option<u64>,
) -> Result<(Rate, Option<u64>, Option<crate::shard::Shard>), PlanError> {
    use crate::shard::{Shard, INDEX_ENV};
    let env = std::env::var(INDEX_ENV).ok();
    let (index, n) =
        Shard::resolve(spec, env.as_deref()).map_err(|m| invalid("load.shard", "--shard", m))?;
    let mine = match count {
        Some(c) if c < u64::from(n) => {
            return Err(invalid(
                "load.shard",
                "--shard",
                format!("--count {c} over {n} shards leaves some shards no start; use at most {c} shards or a larger --count"),
            ))
        }
        c => c.map(|c| Shard::share(index, n, c)),
    };
    let (shard_rate, total_rate) = match rate {
        Rate::PerSecond(r) => (Rate::PerSecond(r / f64::from(n)), Some(r)),
        Rate::Max => (Rate::Max, None),
    };
    Ok((
        shard_rate,
        mine,
        Some(Shard {
            index,
            count: n,
            total_rate,
            total_count: count,
        }),
    ))
}
