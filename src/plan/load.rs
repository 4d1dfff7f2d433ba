//! `[load]`: how fast, how long, how many at once; resolved and checked here.

use super::{
    invalid, positive, span_or, Load, LoadSection, PlanError, Rate, DEFAULT_CONCURRENCY,
    DEFAULT_DURATION, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE, MAX_THREADS,
};
use std::time::Duration;

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
