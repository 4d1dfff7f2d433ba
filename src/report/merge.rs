//! The merge behind `portlab merge` and the many-client lab: the shards of one run
//! (`--shard I/N`, one per machine, or one client namespace each) made into one results
//! directory, exactly: histograms added from each run's histograms.hlog (percentiles cannot
//! be merged from summaries), counts and errors summed, timelines aligned on absolute time
//! (each run's `started_at`). Each shard was its own host with its own ports, so each keeps
//! its own model check; the merged verdict holds when every shard's did. The result is an
//! ordinary results directory: `portlab report` renders it. The subcommand's glue
//! (arguments, printing) is `cmd::merge`.

use super::output::ResultsDir;
use super::summary::{EarlyEndCounter, EndedEarly, Summary};
use super::verdict::{Check, Verdict};
use crate::collect::hlog::{self, HlogWriter, Set};
use crate::collect::{histogram, timeline, ErrorStat, Exhaustion, Latency, TimelineRow};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `merge` in a merged summary.json: each shard as it ran, and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeSummary {
    /// Each input, in the order given.
    pub shards: Vec<MergedShard>,
    /// The earliest first exhaustion, seconds since the merged `started_at`; null when no
    /// shard ran out of ports.
    pub earliest_exhaustion_s: Option<f64>,
    /// Which input that was (its directory).
    pub earliest_exhaustion_dir: Option<String>,
    /// The spread of the shards' actual starts (latest `started_at` minus earliest), seconds:
    /// how far apart their clocks and schedules began.
    pub start_spread_s: f64,
    /// Every shard's verdict passed (a shard without a verdict does not count against it).
    pub pass: bool,
}

/// One merged input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Its results directory.
    pub dir: String,
    /// `shard.index`/`shard.count`, when it was run with --shard.
    pub shard: Option<String>,
    /// Its `started_at`.
    pub started_at: String,
    /// Its start after the earliest one, seconds.
    pub offset_s: f64,
    /// Its actual start against the `--start-at` it was given, seconds (its clock's skew
    /// plus its lateness); null without --start-at.
    pub skew_s: Option<f64>,
    /// Its attempts.
    pub attempts: u64,
    /// Its first exhaustion, seconds since its own start.
    pub first_exhaustion_s: Option<f64>,
    /// What its model predicted for the first error (its own ports at its own rate R / N).
    pub predicted_first_error_s: Option<f64>,
    /// Its verdict (null when it had none).
    pub pass: Option<bool>,
}

struct Input {
    dir: String,
    summary: Summary,
    hlog: hlog::Hlog,
    timeline: Vec<TimelineRow>,
    started: SystemTime,
}

fn read_input(path: &Path) -> Result<Input> {
    let dir = path.display().to_string();
    let not_a_run = |what: &str| {
        format!("{dir} is not a portlab run ({what}); name results directories written by `portlab run` (results/<run>/)")
    };
    if !path.is_dir() {
        bail!(not_a_run("not a directory"));
    }
    for name in ["summary.json", "histograms.hlog"] {
        if !path.join(name).is_file() {
            bail!(not_a_run(&format!("no {name}")));
        }
    }
    let summary = crate::report::load_summary(path)?;
    let bytes = std::fs::read(path.join("histograms.hlog"))
        .with_context(|| format!("reading {dir}/histograms.hlog"))?;
    let hlog = hlog::read(&bytes, &histogram)
        .map_err(|e| anyhow::anyhow!("{dir}/histograms.hlog: {e}"))?;
    let timeline = match path.join("timeline.csv") {
        p if p.is_file() => {
            timeline::read(&p).with_context(|| format!("reading {dir}/timeline.csv"))?
        }
        _ => Vec::new(),
    };
    let started = humantime::parse_rfc3339_weak(&summary.started_at)
        .with_context(|| format!("{dir}/summary.json: started_at is not an RFC 3339 time"))?;
    Ok(Input {
        dir,
        summary,
        hlog,
        timeline,
        started,
    })
}

fn secs_between(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Adds "EADDRNOTAVAIL=3 ECONNRESET=1" texts kind by kind, in order of first appearance.
fn add_kinds(into: &mut Vec<(String, u64)>, text: &str) {
    for pair in text.split_whitespace() {
        if let Some((k, n)) = pair.rsplit_once('=') {
            let n: u64 = n.parse().unwrap_or(0);
            match into.iter_mut().find(|(kind, _)| kind == k) {
                Some((_, c)) => *c += n,
                None => into.push((k.to_string(), n)),
            }
        }
    }
}

/// One interval of the merged run: its histograms, its timeline row, its errors by kind.
type Bucket = (Set, TimelineRow, Vec<(String, u64)>);

/// Bucket `k`, made (empty) when the merged run had none that far yet.
fn slot(buckets: &mut Vec<Bucket>, k: usize) -> &mut Bucket {
    if buckets.len() <= k {
        buckets.resize_with(k + 1, || {
            (Set::new(histogram), TimelineRow::default(), Vec::new())
        });
    }
    &mut buckets[k]
}

/// The merged directory's contents, built from the inputs (no files touched).
pub struct Merged {
    /// summary.json.
    pub summary: Summary,
    /// timeline.csv's rows.
    pub timeline: Vec<TimelineRow>,
    /// histograms.hlog: BaseTime and each interval (start, end since it).
    pub base: SystemTime,
    /// Each interval of the merged log.
    pub intervals: Intervals,
}

/// Merges `paths` (read and checked first: a directory that is not a run, or whose
/// histograms have other bounds, is refused by name).
pub fn merge(paths: &[PathBuf]) -> Result<Merged> {
    let inputs = paths
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = inputs.first() else {
        bail!("portlab merge needs at least one results directory");
    };
    let base = inputs
        .iter()
        .map(|i| i.started)
        .min()
        .unwrap_or(first.started);
    let interval_s = first
        .summary
        .plan
        .load
        .interval
        .map_or(1.0, |s| s.secs())
        .max(0.01);
    let mut acc = Acc::new(&first.summary, base, interval_s);
    for inp in &inputs {
        acc.add(inp);
    }
    Ok(acc.finish(inputs.len()))
}

/// The merged run as the inputs are added one by one.
struct Acc {
    /// The first input's summary, its counts summed over the inputs.
    s: Summary,
    /// The earliest start: the merged run's t = 0.
    base: SystemTime,
    interval_s: f64,
    errors: BTreeMap<String, ErrorStat>,
    exhaustion: Exhaustion,
    http_status: BTreeMap<String, u64>,
    kernel: BTreeMap<String, u64>,
    ended_early: Option<EndedEarly>,
    totals: Set,
    buckets: Vec<Bucket>,
    shards: Vec<MergedShard>,
    end_s: f64,
    load_end_s: f64,
    checks: Vec<Check>,
    /// The earliest first exhaustion (merged seconds) and whose it was.
    earliest: Option<(f64, String)>,
    targets: Vec<String>,
}

impl Acc {
    fn new(first: &Summary, base: SystemTime, interval_s: f64) -> Acc {
        let mut s = first.clone();
        (s.attempts, s.connected, s.completed, s.failed) = (0, 0, 0, 0);
        (s.dropped, s.aborted, s.reconnects) = (0, 0, 0);
        s.interrupted = false;
        Acc {
            s,
            base,
            interval_s,
            errors: BTreeMap::new(),
            exhaustion: Exhaustion::default(),
            http_status: BTreeMap::new(),
            kernel: BTreeMap::new(),
            ended_early: None,
            totals: Set::new(histogram),
            buckets: Vec::new(),
            shards: Vec::new(),
            end_s: 0.0,
            load_end_s: 0.0,
            checks: Vec::new(),
            earliest: None,
            targets: Vec::new(),
        }
    }

    /// The interval an absolute time (merged seconds) falls in.
    fn bucket(&self, abs_s: f64) -> usize {
        (abs_s / self.interval_s + 1e-6).floor().max(0.0) as usize
    }

    fn add(&mut self, inp: &Input) {
        let x = &inp.summary;
        let off = secs_between(inp.started, self.base);
        let s = &mut self.s;
        s.attempts += x.attempts;
        s.connected += x.connected;
        s.completed += x.completed;
        s.failed += x.failed;
        s.dropped += x.dropped;
        s.aborted += x.aborted;
        s.reconnects += x.reconnects;
        s.interrupted |= x.interrupted;
        self.end_s = self.end_s.max(off + x.duration_s);
        self.load_end_s = self.load_end_s.max(off + x.load_duration_s);
        if !self.targets.contains(&x.target) {
            self.targets.push(x.target.clone());
        }
        add_errors(&mut self.errors, &x.errors, off);
        if let Some(t) = x.exhaustion.first_s {
            if self.earliest.as_ref().is_none_or(|(e, _)| off + t < *e) {
                self.earliest = Some((off + t, inp.dir.clone()));
                self.exhaustion = Exhaustion {
                    first_s: Some(off + t),
                    kind: x.exhaustion.kind.clone(),
                    phase: x.exhaustion.phase.clone(),
                    due_s: x.exhaustion.due_s.map(|d| off + d),
                    attempt: None,
                };
            }
        }
        for (k, n) in &x.http_status {
            *self.http_status.entry(k.clone()).or_insert(0) += n;
        }
        for (k, n) in x.kernel.iter().flatten() {
            *self.kernel.entry(k.clone()).or_insert(0) += n;
        }
        // Each host's TIME_WAIT sockets ended early add up like its connections; the count
        // names OutRsts only when every input's did.
        if let Some(e) = x.timewait_ended_early {
            self.ended_early = Some(match self.ended_early {
                None => e,
                Some(a) => EndedEarly {
                    count: a.count + e.count,
                    counter: if a.counter == e.counter {
                        e.counter
                    } else {
                        EarlyEndCounter::Vanished
                    },
                },
            });
        }
        self.add_histograms(inp);
        self.add_timeline(&inp.timeline, off);
        self.add_shard(inp, off);
    }

    /// Each interval of the input's histograms into the bucket of its absolute start.
    fn add_histograms(&mut self, inp: &Input) {
        let hbase = inp
            .hlog
            .base_time_s
            .map_or(inp.started, |b| UNIX_EPOCH + Duration::from_secs_f64(b));
        let hoff = secs_between(hbase, self.base);
        for (start, _len, set) in &inp.hlog.intervals {
            let k = self.bucket(hoff + start);
            slot(&mut self.buckets, k).0.add(set);
            self.totals.add(set);
        }
    }

    /// Each timeline row into the bucket of its absolute start (the previous row's end).
    fn add_timeline(&mut self, timeline: &[TimelineRow], off: f64) {
        let mut prev = 0.0;
        for row in timeline {
            let k = self.bucket(off + prev);
            prev = row.t_s;
            let (_, r, kinds) = slot(&mut self.buckets, k);
            r.attempts += row.attempts;
            r.connected += row.connected;
            r.completed += row.completed;
            r.dropped += row.dropped;
            r.errors += row.errors;
            r.in_flight += row.in_flight;
            r.t_s = r.t_s.max(off + row.t_s);
            add_kinds(kinds, &row.errors_by_kind);
        }
    }

    /// The input's own line in `merge.shards`, and its checks under its name.
    fn add_shard(&mut self, inp: &Input, off: f64) {
        let x = &inp.summary;
        let label = x
            .shard
            .as_ref()
            .map(|sh| format!("{}/{}", sh.index, sh.count));
        let name = label
            .as_ref()
            .map_or_else(|| inp.dir.clone(), |l| format!("shard {l}"));
        for c in x.verdict.iter().flat_map(|v| v.checks.iter()) {
            let mut c = c.clone();
            c.name = format!("{name}: {}", c.name);
            self.checks.push(c);
        }
        self.shards.push(MergedShard {
            dir: inp.dir.clone(),
            shard: label,
            started_at: x.started_at.clone(),
            offset_s: off,
            skew_s: x
                .shard
                .as_ref()
                .and_then(|sh| sh.start_at.as_deref())
                .and_then(|a| humantime::parse_rfc3339_weak(a).ok())
                .map(|a| secs_between(inp.started, a)),
            attempts: x.attempts,
            first_exhaustion_s: x.exhaustion.first_s,
            predicted_first_error_s: x.prediction.as_ref().and_then(|p| p.first_error_s),
            pass: x.verdict.as_ref().map(|v| v.pass),
        });
    }

    /// The merged directory's contents from `inputs` inputs.
    fn finish(self, inputs: usize) -> Merged {
        let mut s = self.s;
        let latency = |h: &hdrhistogram::Histogram<u64>| Latency::of(h);
        s.started_at = humantime::format_rfc3339_millis(self.base).to_string();
        s.duration_s = self.end_s;
        s.load_duration_s = self.load_end_s;
        s.achieved_rate = if self.load_end_s > 0.0 {
            s.attempts as f64 / self.load_end_s
        } else {
            0.0
        };
        s.target = self.targets.join(", ");
        s.errors = self.errors;
        s.exhaustion = self.exhaustion;
        s.http_status = self.http_status;
        s.connect_latency_us = latency(&self.totals.connect);
        s.connect_latency_actual_us = latency(&self.totals.connect_actual);
        s.exchange_latency_us = latency(&self.totals.exchange);
        s.request_latency_us = latency(&self.totals.request);
        s.schedule_lag_us = latency(&self.totals.schedule_lag);
        // Per host figures have no one value for several hosts: each shard's stay in its own
        // directory, and its model check is in the verdict below.
        s.server = None;
        s.timewait = None;
        s.kernel = (!self.kernel.is_empty()).then_some(self.kernel);
        s.timewait_ended_early = self.ended_early;
        s.segments_per_request = None;
        s.observation = Some(format!(
            "merged from {inputs} runs by `portlab merge`; kernel counters are their sum"
        ));
        s.lab = None;
        s.prediction = None;
        s.modelled = None;
        s.target_exec = None;
        s.client_exec = None;
        s.shard = None;
        // The merged plan is the unsharded run: plan.toml of a shard holds the whole rate/count.
        s.plan.load.shard = None;
        let pass = self.checks.iter().all(|c| c.pass || c.advisory);
        s.verdict = (!self.checks.is_empty()).then_some(Verdict {
            pass,
            checks: self.checks,
            inconclusive: None,
        });
        let starts: Vec<f64> = self.shards.iter().map(|m| m.offset_s).collect();
        s.merge = Some(MergeSummary {
            earliest_exhaustion_s: self.earliest.as_ref().map(|(t, _)| *t),
            earliest_exhaustion_dir: self.earliest.map(|(_, d)| d),
            start_spread_s: starts.iter().cloned().fold(0.0, f64::max),
            pass,
            shards: self.shards,
        });
        let (timeline, intervals) = rows(self.buckets, self.interval_s, self.end_s);
        Merged {
            summary: s,
            timeline,
            base: self.base,
            intervals,
        }
    }
}

/// Adds one input's errors (its seconds `off` after the merged start) kind by kind: counts
/// and phases summed, the earliest first time (and its phase) and the latest last time.
fn add_errors(
    into: &mut BTreeMap<String, ErrorStat>,
    errors: &BTreeMap<String, ErrorStat>,
    off: f64,
) {
    for (kind, e) in errors {
        let e_first = off + e.first_s;
        let stat = into.entry(kind.clone()).or_insert_with(|| ErrorStat {
            count: 0,
            phase: e.phase.clone(),
            first_s: e_first,
            last_s: off + e.last_s,
            by_phase: BTreeMap::new(),
        });
        stat.count += e.count;
        if e_first < stat.first_s {
            stat.first_s = e_first;
            stat.phase = e.phase.clone();
        }
        stat.last_s = stat.last_s.max(off + e.last_s);
        for (p, n) in &e.by_phase {
            *stat.by_phase.entry(p.clone()).or_insert(0) += n;
        }
    }
}

/// histograms.hlog's intervals: (start, end) since the merged start, and the histograms.
type Intervals = Vec<(Duration, Duration, Set)>;

/// The merged timeline rows and histogram intervals, one per bucket of `interval_s`; the
/// last ends at `end_s`.
fn rows(buckets: Vec<Bucket>, interval_s: f64, end_s: f64) -> (Vec<TimelineRow>, Intervals) {
    let mut rows = Vec::with_capacity(buckets.len());
    let mut intervals = Vec::with_capacity(buckets.len());
    for (k, (set, mut row, kinds)) in buckets.into_iter().enumerate() {
        let start = k as f64 * interval_s;
        let end = ((k + 1) as f64 * interval_s).min(end_s.max(start));
        row.t_s = end;
        row.errors_by_kind = kinds
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        if !set.connect.is_empty() {
            row.connect_p50_us = Some(set.connect.value_at_quantile(0.5));
            row.connect_p99_us = Some(set.connect.value_at_quantile(0.99));
            row.connect_max_us = Some(set.connect.max());
        }
        rows.push(row);
        intervals.push((
            Duration::from_secs_f64(start),
            Duration::from_secs_f64(end),
            set,
        ));
    }
    (rows, intervals)
}

/// Writes a merged run into `dir`: histograms.hlog, timeline.csv and summary.json (last,
/// atomically).
pub fn write(merged: &Merged, dir: &ResultsDir) -> Result<()> {
    let shown = |n: &str| dir.path().join(n).display().to_string();
    let mut hw = HlogWriter::new(
        dir.create("histograms.hlog")
            .with_context(|| format!("creating {}", shown("histograms.hlog")))?,
        merged.base,
    )
    .with_context(|| format!("writing {}", shown("histograms.hlog")))?;
    for (start, end, set) in &merged.intervals {
        hw.append(*start, *end, set)
            .with_context(|| format!("writing {}", shown("histograms.hlog")))?;
    }
    let mut tw = timeline::TimelineWriter::new(
        dir.create("timeline.csv")
            .with_context(|| format!("creating {}", shown("timeline.csv")))?,
    );
    for row in &merged.timeline {
        tw.append(row)
            .with_context(|| format!("writing {}", shown("timeline.csv")))?;
    }
    let json = serde_json::to_string_pretty(&merged.summary)? + "\n";
    dir.write_atomic("summary.json", json.as_bytes())
        .with_context(|| format!("writing {}", shown("summary.json")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(count: u64, phase: &str, first_s: f64, last_s: f64) -> ErrorStat {
        ErrorStat {
            count,
            phase: phase.into(),
            first_s,
            last_s,
            by_phase: [(phase.to_string(), count)].into_iter().collect(),
        }
    }

    #[test]
    fn errors_add_up_on_the_merged_clock() {
        let mut into = BTreeMap::new();
        let a = [("EADDRNOTAVAIL".to_string(), stat(3, "connect", 2.0, 4.0))].into();
        let b = [
            ("EADDRNOTAVAIL".to_string(), stat(2, "bind", 0.5, 1.0)),
            ("ECONNRESET".to_string(), stat(1, "exchange", 0.0, 0.0)),
        ]
        .into();
        add_errors(&mut into, &a, 0.0);
        // The second run began 1 s later: its 0.5 s is the merged 1.5 s, before the first's 2 s.
        add_errors(&mut into, &b, 1.0);
        let e = &into["EADDRNOTAVAIL"];
        assert_eq!((e.count, e.first_s, e.last_s), (5, 1.5, 4.0));
        assert_eq!(e.phase, "bind", "the phase of the earliest");
        assert_eq!((e.by_phase["connect"], e.by_phase["bind"]), (3, 2));
        let r = &into["ECONNRESET"];
        assert_eq!((r.count, r.first_s, r.last_s), (1, 1.0, 1.0));
    }

    #[test]
    fn rows_end_on_their_interval_and_the_last_at_the_runs_end() {
        let bucket = |attempts: u64, kinds: &[(&str, u64)]| -> Bucket {
            let row = TimelineRow {
                attempts,
                ..TimelineRow::default()
            };
            let kinds = kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect();
            (Set::new(histogram), row, kinds)
        };
        let buckets = vec![
            bucket(10, &[]),
            bucket(20, &[("EADDRNOTAVAIL", 3), ("ECONNRESET", 1)]),
            bucket(5, &[]),
        ];
        let (rows, intervals) = rows(buckets, 1.0, 2.5);
        let ends: Vec<f64> = rows.iter().map(|r| r.t_s).collect();
        assert_eq!(ends, [1.0, 2.0, 2.5]);
        assert_eq!(rows[1].attempts, 20);
        assert_eq!(rows[1].errors_by_kind, "EADDRNOTAVAIL=3 ECONNRESET=1");
        assert_eq!(rows[0].errors_by_kind, "");
        assert!(
            rows[0].connect_p50_us.is_none(),
            "no histogram, no percentile"
        );
        let last = &intervals[2];
        assert_eq!(
            (last.0, last.1),
            (Duration::from_secs(2), Duration::from_millis(2500))
        );
    }
}
