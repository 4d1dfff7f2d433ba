//! One run split over N machines (`--shard I/N`, `--start-at TIME`).
//!
//! Shard I of N runs rate R / N with its first start offset by I / R, so start k of shard I
//! is due at t0 + I / R + k x N / R: the N shards' starts interleave into the one even
//! schedule of the unsharded run (start j = I + k x N), and a count C splits exactly (start j
//! belongs to shard j mod N: the first C mod N shards get one more). Each shard is its own
//! host with its own ports, so the model judges each at its own rate R / N.
//!
//! `--start-at` makes every shard begin at the same wall-clock instant: each waits for it
//! with a countdown on stderr, and one that got there late says by how much.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most shards one run may be split into.
pub const MAX_SHARDS: u32 = 10_000;

/// How far in the past `--start-at` may be (a shard scheduled a little late still runs,
/// and says how late).
pub const MAX_PAST: Duration = Duration::from_secs(5);

/// How far in the future `--start-at` may be.
pub const MAX_FUTURE: Duration = Duration::from_secs(24 * 3600);

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// `load.shard` as written: "I/N", or "N" with I from `$JOB_COMPLETION_INDEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// I (None: from the environment).
    pub index: Option<u32>,
    /// N.
    pub count: u32,
}

const SHARD_FORMS: &str =
    "write I/N (shard I of N, counting from 0, e.g. 0/8), or N alone with I from $JOB_COMPLETION_INDEX";

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let num = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{t}' is not a shard; {SHARD_FORMS}"))
        };
        let (index, count) = match t.split_once('/') {
            Some((i, n)) => (Some(num(i)?), num(n)?),
            None => (None, num(t)?),
        };
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "'{t}': the number of shards must be 1 to {MAX_SHARDS}"
            ));
        }
        if let Some(i) = index {
            if i >= count {
                return Err(format!(
                    "'{t}': shard index {i} must be below the number of shards {count} (0 to {})",
                    count - 1
                ));
            }
        }
        Ok(ShardSpec { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{i}/{}", self.count),
            None => write!(f, "{}", self.count),
        }
    }
}

impl Serialize for ShardSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShardSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(s) => s.parse().map_err(de::Error::custom),
            Raw::Number(n) => n.to_string().parse().map_err(de::Error::custom),
        }
    }
}

/// A string or a number, as a scenario file may write either.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Number(f64),
}

/// `load.start_at`: an instant, RFC 3339 (2026-12-01T03:00:00Z) or Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt(pub SystemTime);

const START_FORMS: &str =
    "write an RFC 3339 UTC time (e.g. 2026-12-01T03:00:00Z) or Unix seconds (e.g. 1796094000)";

impl FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(secs) = t.parse::<f64>() {
            return StartAt::from_unix(secs);
        }
        humantime::parse_rfc3339_weak(t)
            .map(StartAt)
            .map_err(|e| format!("'{t}' is not a time ({e}); {START_FORMS}"))
    }
}

impl StartAt {
    fn from_unix(secs: f64) -> Result<StartAt, String> {
        // 1e11 s is year 5138: far beyond MAX_FUTURE, refused later with its own message.
        if !(secs.is_finite() && (0.0..1e11).contains(&secs)) {
            return Err(format!("'{secs}' is not a time; {START_FORMS}"));
        }
        Ok(StartAt(UNIX_EPOCH + Duration::from_secs_f64(secs)))
    }

    /// RFC 3339, milliseconds.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.0).to_string()
    }

    /// Refuses a time more than [`MAX_PAST`] ago or more than [`MAX_FUTURE`] ahead of `now`.
    pub fn check(self, now: SystemTime) -> Result<(), String> {
        match self.0.duration_since(now) {
            Ok(ahead) if ahead > MAX_FUTURE => Err(format!(
                "{} is {} from now; at most {} ahead is accepted",
                self.rfc3339(),
                humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                humantime::format_duration(MAX_FUTURE)
            )),
            Ok(_) => Ok(()),
            Err(e) if e.duration() > MAX_PAST => Err(format!(
                "{} was {} ago (now is {}); give a time in the future, e.g. a minute from now",
                self.rfc3339(),
                humantime::format_duration(Duration::from_secs(e.duration().as_secs())),
                humantime::format_rfc3339_seconds(now)
            )),
            Err(_) => Ok(()),
        }
    }
}

impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for StartAt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StartAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(s) => s.parse().map_err(de::Error::custom),
            Raw::Number(n) => StartAt::from_unix(n).map_err(de::Error::custom),
        }
    }
}

/// A resolved shard: I of N, and what the whole run was before it was split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    /// I, from 0.
    pub index: u32,
    /// N.
    pub count: u32,
    /// The whole run's rate R (starts per second; None: a closed loop, not split by rate).
    pub total_rate: Option<f64>,
    /// The whole run's count C, when it had one.
    pub total_count: Option<u64>,
}

impl Shard {
    /// Resolves `spec`, taking I from `index_env` (the value of $JOB_COMPLETION_INDEX) when
    /// the spec has none.
    pub fn resolve(spec: ShardSpec, index_env: Option<&str>) -> Result<(u32, u32), String> {
        let index = match (spec.index, index_env) {
            (Some(i), _) => i,
            (None, Some(v)) => v.trim().parse::<u32>().map_err(|_| {
                format!("${INDEX_ENV} is '{v}', not a shard index; write I/N instead")
            })?,
            (None, None) => {
                return Err(format!(
                    "'{}' gives no shard index and ${INDEX_ENV} is not set; write I/N (e.g. 0/{})",
                    spec.count, spec.count
                ))
            }
        };
        if index >= spec.count {
            return Err(format!(
                "shard index {index} must be below the number of shards {}",
                spec.count
            ));
        }
        Ok((index, spec.count))
    }

    /// This shard's share of `total` starts: start j belongs to shard j mod N.
    pub fn share(index: u32, count: u32, total: u64) -> u64 {
        let (n, i) = (u64::from(count), u64::from(index));
        total / n + u64::from(i < total % n)
    }

    /// How far after t0 this shard's first start is due: I / R, in lab time (`lab_rate` is
    /// this shard's rate R / N as the lab runs it).
    pub fn offset(&self, lab_rate: f64) -> Duration {
        if self.total_rate.is_none() || lab_rate.is_nan() || lab_rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(f64::from(self.index) / (lab_rate * f64::from(self.count)))
            .unwrap_or_default()
    }
}

/// `shard` in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSummary {
    /// I, from 0.
    pub index: u32,
    /// N.
    pub count: u32,
    /// The instant every shard was to begin (RFC 3339); null without --start-at.
    pub start_at: Option<String>,
    /// How late this shard began against `start_at`, seconds (0 when on time; null without
    /// --start-at).
    pub late_s: Option<f64>,
    /// The whole run's rate R, per second (null: a closed loop).
    pub total_rate: Option<f64>,
    /// The whole run's count C (null: bounded by duration).
    pub total_count: Option<u64>,
}

/// Waits until `at`, printing a countdown on stderr once a second (every 10 s while more
/// than a minute away); returns how late the wait ended (zero when on time). `cancel`
/// (Ctrl-C) ends the wait early with None.
pub async fn wait_until(
    at: SystemTime,
    cancel: impl std::future::Future<Output = ()>,
) -> Option<Duration> {
    tokio::pin!(cancel);
    let mut last_shown = None;
    loop {
        let now = SystemTime::now();
        let Ok(left) = at.duration_since(now) else {
            return Some(now.duration_since(at).unwrap_or_default());
        };
        if left.is_zero() {
            return Some(Duration::ZERO);
        }
        let secs = left.as_secs_f64().ceil() as u64;
        let show = if secs > 60 { secs % 10 == 0 } else { true };
        if show && last_shown != Some(secs) {
            eprintln!("starting in {secs}s (at {})", StartAt(at).rfc3339());
            last_shown = Some(secs);
        }
        // Wake on each whole second before `at`, and at `at` itself.
        let frac = left - Duration::from_secs(left.as_secs());
        let step = if frac.is_zero() {
            Duration::from_secs(1).min(left)
        } else {
            frac
        };
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            () = &mut cancel => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_split_exactly_and_add_up() {
        for total in [0u64, 1, 2, 7, 100, 1001] {
            for n in [1u32, 2, 3, 8, 13] {
                let shares: Vec<u64> = (0..n).map(|i| Shard::share(i, n, total)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {n}");
                let extra = (total % u64::from(n)) as usize;
                assert!(shares[..extra]
                    .iter()
                    .all(|&s| s == total / u64::from(n) + 1));
                assert!(shares[extra..].iter().all(|&s| s == total / u64::from(n)));
            }
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            "2/8".parse::<ShardSpec>(),
            Ok(ShardSpec {
                index: Some(2),
                count: 8
            })
        );
        assert_eq!("8".parse::<ShardSpec>().unwrap().index, None);
        for (bad, says) in [
            ("8/8", "below"),
            ("0/0", "1 to 10000"),
            ("0/10001", "1 to 10000"),
            ("a/b", "I/N"),
            ("-1/3", "I/N"),
        ] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let spec: ShardSpec = "4".parse().unwrap();
        assert_eq!(Shard::resolve(spec, Some("3")), Ok((3, 4)));
        assert!(Shard::resolve(spec, Some("4"))
            .unwrap_err()
            .contains("below"));
        assert!(Shard::resolve(spec, None)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
    }

    #[test]
    fn the_shards_starts_interleave_into_one_schedule() {
        // R = 300/s over N = 3: shard I starts at I/R + k*N/R.
        let shard = |index| Shard {
            index,
            count: 3,
            total_rate: Some(300.0),
            total_count: None,
        };
        let mut dues: Vec<u64> = (0..3)
            .flat_map(|i| {
                let off = shard(i).offset(100.0);
                (0..10).map(move |k| (off.as_secs_f64() * 1e6 + k as f64 * 1e4).round() as u64)
            })
            .collect();
        dues.sort_unstable();
        let even: Vec<u64> = (0..30)
            .map(|j| (j as f64 * 1e6 / 300.0).round() as u64)
            .collect();
        assert_eq!(dues, even);
    }

    #[test]
    fn start_times_parse_and_are_bounded() {
        let at: StartAt = "2026-12-01T03:00:00Z".parse().unwrap();
        let unix: StartAt = "1796094000".parse().unwrap();
        assert_eq!(at, unix);
        assert!("tomorrow"
            .parse::<StartAt>()
            .unwrap_err()
            .contains("RFC 3339"));
        let now = at.0;
        assert!(
            at.check(now + Duration::from_secs(3)).is_ok(),
            "a little late is fine"
        );
        assert!(at
            .check(now + Duration::from_secs(60))
            .unwrap_err()
            .contains("ago"));
        assert!(at
            .check(now - Duration::from_secs(2 * 24 * 3600))
            .unwrap_err()
            .contains("ahead"));
    }
}
