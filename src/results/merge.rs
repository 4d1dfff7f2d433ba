//! The merge behind `portlab merge` and the many-client lab: the shards of one run
//! (`--shard I/N`, one per machine, or one client namespace each) made into one results
//! directory, exactly: histograms added from each run's histograms.hlog (percentiles cannot
//! be merged from summaries), counts and errors summed, timelines aligned on absolute time
//! (each run's `started_at`). Each shard was its own host with its own ports, so each keeps
//! its own model check; the merged verdict holds when every shard's did. The result is an
//! ordinary results directory: `portlab report` renders it. The subcommand's glue
//! (arguments, printing) is `cmd::merge`.

use super::dir::ResultsDir;
use super::summary::{EarlyEndCounter, EndedEarly, MergeSummary, MergedShard, Summary};
use super::verdict::{Check, Verdict};
use crate::collect::hlog::{self, HlogWriter, Set};
use crate::collect::timeline::TimelineRow;
use crate::collect::{histogram, timeline, Counts, ErrorStat, Exhaustion, Latency};
use crate::plan::bounds;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Input {
    dir: String,
    path: PathBuf,
    summary: Summary,
    started: SystemTime,
    /// Its timeline.csv, when it has one.
    timeline: Option<PathBuf>,
}

/// The longest a run's summary may say it lasted: the longest --duration plus the longest
/// wait and drain around it.
const MAX_RUN_S: f64 = bounds::MAX_DURATION.as_secs_f64() + 2.0 * bounds::MAX_WAIT.as_secs_f64();

/// How far past its summary's duration a timeline row or histogram interval may end: the
/// last interval closes after the run's clock stops (a little), never a whole interval and
/// a second later.
fn margin_s(interval_s: f64) -> f64 {
    2.0 * interval_s + 1.0
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
        if !path.join(name).exists() {
            bail!(not_a_run(&format!("no {name}")));
        }
    }
    let summary = super::dir::load_summary(path)?;
    for (name, v) in [
        ("duration_s", summary.duration_s),
        ("load_duration_s", summary.load_duration_s),
    ] {
        if !(v.is_finite() && (0.0..=MAX_RUN_S).contains(&v)) {
            bail!("{dir}/summary.json: {name} {v} is not the length of a run (0 to {MAX_RUN_S} s)");
        }
    }
    if !summary.incomplete_files.is_empty() {
        bail!(
            "{dir} is an incomplete run (a write failed while it ran: {}); its results cannot be merged",
            summary.incomplete_files.join("; ")
        );
    }
    let started = humantime::parse_rfc3339_weak(&summary.started_at)
        .with_context(|| format!("{dir}/summary.json: started_at is not an RFC 3339 time"))?;
    let timeline = Some(path.join("timeline.csv")).filter(|p| p.exists());
    Ok(Input {
        dir,
        path: path.to_path_buf(),
        summary,
        started,
        timeline,
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
                Some((_, c)) => *c = c.saturating_add(n),
                None => into.push((k.to_string(), n)),
            }
        }
    }
}

/// Opens a timeline.csv for reading row by row.
fn timeline_rows(
    path: &Path,
) -> Result<csv::DeserializeRecordsIntoIter<std::fs::File, TimelineRow>> {
    let file = crate::input::open(path, crate::input::STREAM_LIMIT)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(file)
        .into_deserialize())
}

/// Checks a shard's timeline.csv before anything is written: every row's time is a time of
/// the run (finite, not negative, not going back, not past the summary's duration and a
/// margin), and its rows add up to its summary (a timeline a failed write left short would
/// otherwise be merged as if the run had been quieter).
fn check_timeline(inp: &Input, path: &Path, interval_s: f64) -> Result<()> {
    let shown = path.display();
    let x = &inp.summary;
    let most = x.duration_s + margin_s(interval_s);
    let (mut attempts, mut prev) = (0u64, 0.0f64);
    for (i, row) in timeline_rows(path)?.enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let row = row.with_context(|| format!("reading {shown} line {line}"))?;
        if !(row.t_s.is_finite() && row.t_s >= prev && row.t_s <= most) {
            bail!(
                "{shown} line {line}: t_s {} is not a time of this run (the rows go from 0 to its summary's duration, {:.3} s, in order)",
                row.t_s,
                x.duration_s
            );
        }
        prev = row.t_s;
        attempts = attempts.saturating_add(row.attempts);
    }
    if attempts != x.attempts {
        bail!(
            "{shown} does not add up to its summary: its rows count {attempts} attempts, {}/summary.json says {}; a timeline cut short (a failed write) cannot be merged",
            inp.dir,
            x.attempts
        );
    }
    Ok(())
}

/// The merged directory's summary.json, before it is written: what [`Merge::write`] wrote
/// beside it.
pub struct Merge {
    inputs: Vec<Input>,
    base: SystemTime,
    interval_s: f64,
    acc: Acc,
}

/// Reads the shards' summaries and checks their timelines (nothing written yet): a
/// directory that is not a run, a summary or timeline that does not hold up, is refused by
/// name. [`Merge::write`] then streams the histograms and timelines into the merged
/// directory.
pub fn merge(paths: &[PathBuf]) -> Result<Merge> {
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
        .clamp(0.01, MAX_RUN_S);
    let mut acc = Acc::new(&first.summary, base, interval_s);
    for inp in &inputs {
        if let Some(p) = &inp.timeline {
            check_timeline(inp, p, interval_s)?;
        }
        acc.add(inp);
    }
    if acc.end_s > MAX_RUN_S {
        bail!(
            "the shards' starts and durations span {:.0} s, more than one run can ({MAX_RUN_S} s): they are not the shards of one run",
            acc.end_s
        );
    }
    Ok(Merge {
        inputs,
        base,
        interval_s,
        acc,
    })
}

/// One shard as its files are read in step with the others.
struct Stream {
    hlog_path: String,
    hlog: hlog::Reader<std::fs::File>,
    /// Its histograms' start after the merged start (known once BaseTime is read).
    hoff: Option<f64>,
    started_off: f64,
    next_h: Option<(usize, hlog::Entry)>,
    tl_path: String,
    rows: Option<csv::DeserializeRecordsIntoIter<std::fs::File, TimelineRow>>,
    row_line: usize,
    /// The end of its previous row: the start of the next.
    prev_t: f64,
    off: f64,
    next_row: Option<(usize, TimelineRow)>,
    /// Its last time allowed (merged seconds).
    most_s: f64,
}

impl Stream {
    fn open(inp: &Input, base: SystemTime, interval_s: f64) -> Result<Stream> {
        let hp = inp.path.join("histograms.hlog");
        let file = crate::input::open(&hp, crate::input::STREAM_LIMIT)
            .with_context(|| format!("reading {}", hp.display()))?;
        let off = secs_between(inp.started, base);
        let rows = inp.timeline.as_deref().map(timeline_rows).transpose()?;
        Ok(Stream {
            hlog_path: hp.display().to_string(),
            hlog: hlog::Reader::new(file, histogram()),
            hoff: None,
            started_off: off,
            next_h: None,
            tl_path: inp
                .timeline
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            rows,
            row_line: 1,
            prev_t: 0.0,
            off,
            next_row: None,
            most_s: off + inp.summary.duration_s + margin_s(interval_s),
        })
    }

    /// Peeks the next histogram (and its bucket), if not yet peeked.
    fn peek_h(&mut self, acc: &Acc) -> Result<Option<usize>> {
        if self.next_h.is_none() {
            let e = self.hlog.next_entry().map_err(|e| {
                anyhow::anyhow!("{} line {}: {e}", self.hlog_path, self.hlog.line_number())
            })?;
            if let Some(e) = e {
                let started_off = self.started_off;
                let base = acc.base;
                let hoff = *self
                    .hoff
                    .get_or_insert_with(|| match self.hlog.base_time_s {
                        Some(b) if (0.0..1e11).contains(&b) => {
                            secs_between(UNIX_EPOCH + Duration::from_secs_f64(b), base)
                        }
                        _ => started_off,
                    });
                let at = hoff + e.start_s;
                // A second of slack before the start: BaseTime and started_at are written
                // from the same clock reading, rounded differently.
                if !(at.is_finite() && at >= -1.0 && at <= self.most_s) {
                    bail!(
                        "{} line {}: an interval starting at {:.3} s of the merged run, outside this shard's run (which ends at {:.3} s)",
                        self.hlog_path,
                        self.hlog.line_number(),
                        at,
                        self.most_s
                    );
                }
                self.next_h = Some((acc.bucket(at), e));
            }
        }
        Ok(self.next_h.as_ref().map(|(k, _)| *k))
    }

    /// Peeks the next timeline row (and its bucket: that of its start, the previous row's
    /// end), if not yet peeked.
    fn peek_row(&mut self, acc: &Acc) -> Result<Option<usize>> {
        if self.next_row.is_none() {
            if let Some(rows) = &mut self.rows {
                if let Some(row) = rows.next() {
                    self.row_line += 1;
                    let row = row.with_context(|| {
                        format!("reading {} line {}", self.tl_path, self.row_line)
                    })?;
                    // check_timeline read the same rows; a file changed since is refused.
                    if !(row.t_s.is_finite() && row.t_s >= self.prev_t)
                        || self.off + row.t_s > self.most_s
                    {
                        bail!(
                            "{} line {}: t_s {} is not a time of this run (the file changed while it was merged?)",
                            self.tl_path,
                            self.row_line,
                            row.t_s
                        );
                    }
                    let k = acc.bucket(self.off + self.prev_t);
                    self.prev_t = row.t_s;
                    self.next_row = Some((k, row));
                }
            }
        }
        Ok(self.next_row.as_ref().map(|(k, _)| *k))
    }

    /// Adds everything of bucket `k` into `b`; the next entries are of later buckets.
    fn drain(&mut self, k: usize, acc: &mut Acc, b: &mut Bucket) -> Result<()> {
        while let Some(at) = self.peek_h(acc)? {
            if at > k {
                break;
            }
            let (_, e) = self.next_h.take().expect("peeked");
            if at < k {
                bail!(
                    "{} line {}: its intervals are not in time order (one starting at {:.3} s comes after those of {:.3} s)",
                    self.hlog_path,
                    self.hlog.line_number(),
                    at as f64 * acc.interval_s,
                    k as f64 * acc.interval_s
                );
            }
            let add = |into: &mut hdrhistogram::Histogram<u64>, path: &str| {
                into.add(&e.histogram)
                    .map_err(|err| anyhow::anyhow!("{path}: histogram {:?}: {err:?}", e.tag))
            };
            add(b.0.get_mut(e.tag).expect("a known tag"), &self.hlog_path)?;
            add(
                acc.totals.get_mut(e.tag).expect("a known tag"),
                &self.hlog_path,
            )?;
        }
        while let Some(at) = self.peek_row(acc)? {
            if at > k {
                break;
            }
            let (_, row) = self.next_row.take().expect("peeked");
            let (_, r, kinds) = b;
            r.add_counts(&row);
            add_kinds(kinds, &row.errors_by_kind);
        }
        Ok(())
    }
}

/// One interval of the merged run: its histograms, its timeline row, its errors by kind.
type Bucket = (Set, TimelineRow, Vec<(String, u64)>);

impl Merge {
    /// Streams the merged histograms.hlog and timeline.csv into `dir`, interval by interval
    /// with every shard's files read in step (memory: one interval's histograms per shard
    /// and one merged, whatever the run's length), and returns the merged summary.json's
    /// contents, for the caller to complete and [`write_summary`].
    pub fn write(self, dir: &ResultsDir) -> Result<Summary> {
        let Merge {
            inputs,
            base,
            interval_s,
            mut acc,
        } = self;
        let shown = |n: &str| dir.path().join(n).display().to_string();
        let mut streams = inputs
            .iter()
            .map(|i| Stream::open(i, base, interval_s))
            .collect::<Result<Vec<_>>>()?;
        let mut hw = HlogWriter::new(
            dir.create("histograms.hlog")
                .with_context(|| format!("creating {}", shown("histograms.hlog")))?,
            base,
        )
        .with_context(|| format!("writing {}", shown("histograms.hlog")))?;
        let mut tw = timeline::TimelineWriter::new(
            dir.create("timeline.csv")
                .with_context(|| format!("creating {}", shown("timeline.csv")))?,
        );
        let mut bucket: Bucket = (Set::new(histogram), TimelineRow::default(), Vec::new());
        let mut k = 0usize;
        loop {
            let mut next: Option<usize> = None;
            for s in &mut streams {
                for at in [s.peek_h(&acc)?, s.peek_row(&acc)?].into_iter().flatten() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            let Some(next) = next else {
                break;
            };
            // Intervals where no shard had anything: empty rows, as a run writes them.
            while k < next {
                emit(&mut bucket, k, interval_s, acc.end_s, &mut hw, &mut tw, dir)?;
                k += 1;
            }
            for s in &mut streams {
                s.drain(k, &mut acc, &mut bucket)?;
            }
            emit(&mut bucket, k, interval_s, acc.end_s, &mut hw, &mut tw, dir)?;
            k += 1;
        }
        Ok(acc.finish(inputs.len()))
    }
}

/// Writes bucket `k` as the merged run's interval `k` (its row ends at the interval's end,
/// the last at the run's end) and empties it for the next.
fn emit(
    b: &mut Bucket,
    k: usize,
    interval_s: f64,
    end_s: f64,
    hw: &mut HlogWriter,
    tw: &mut timeline::TimelineWriter,
    dir: &ResultsDir,
) -> Result<()> {
    let shown = |n: &str| dir.path().join(n).display().to_string();
    let (start, end) = interval_bounds(k, interval_s, end_s);
    let (set, row, kinds) = b;
    row.t_s = end;
    row.errors_by_kind = kinds_text(kinds);
    if !set.connect.is_empty() {
        row.connect_p50_us = Some(set.connect.value_at_quantile(0.5));
        row.connect_p99_us = Some(set.connect.value_at_quantile(0.99));
        row.connect_max_us = Some(set.connect.max());
    }
    hw.append(
        Duration::from_secs_f64(start),
        Duration::from_secs_f64(end),
        set,
    )
    .with_context(|| format!("writing {}", shown("histograms.hlog")))?;
    tw.append(row)
        .with_context(|| format!("writing {}", shown("timeline.csv")))?;
    set.reset();
    *row = TimelineRow::default();
    kinds.clear();
    Ok(())
}

/// Interval `k`'s start and end (seconds since the merged start): the last ends at `end_s`.
fn interval_bounds(k: usize, interval_s: f64, end_s: f64) -> (f64, f64) {
    let start = k as f64 * interval_s;
    let end = ((k + 1) as f64 * interval_s).min(end_s.max(start));
    (start, end)
}

/// "EADDRNOTAVAIL=3 ECONNRESET=1".
fn kinds_text(kinds: &[(String, u64)]) -> String {
    kinds
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The merged run as the inputs are added one by one.
struct Acc {
    /// The first input's summary, the base of the merged one.
    s: Summary,
    /// The inputs' counts, summed.
    counts: Counts,
    /// The earliest start: the merged run's t = 0.
    base: SystemTime,
    interval_s: f64,
    errors: BTreeMap<String, ErrorStat>,
    exhaustion: Exhaustion,
    http_status: BTreeMap<String, u64>,
    kernel: BTreeMap<String, u64>,
    ended_early: Option<EndedEarly>,
    totals: Set,
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
        s.interrupted = false;
        Acc {
            s,
            counts: Counts::default(),
            base,
            interval_s,
            errors: BTreeMap::new(),
            exhaustion: Exhaustion::default(),
            http_status: BTreeMap::new(),
            kernel: BTreeMap::new(),
            ended_early: None,
            totals: Set::new(histogram),
            shards: Vec::new(),
            end_s: 0.0,
            load_end_s: 0.0,
            checks: Vec::new(),
            earliest: None,
            targets: Vec::new(),
        }
    }

    /// The interval an absolute time (merged seconds, checked finite and within the run)
    /// falls in.
    fn bucket(&self, abs_s: f64) -> usize {
        (abs_s / self.interval_s + 1e-6).floor().max(0.0) as usize
    }

    /// The input's summary: its counts, errors, exhaustion and line (its histograms and
    /// timeline are streamed later, by [`Merge::write`]).
    fn add(&mut self, inp: &Input) {
        let x = &inp.summary;
        let off = secs_between(inp.started, self.base);
        self.counts += x.counts();
        self.s.interrupted |= x.interrupted;
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
            let c = self.http_status.entry(k.clone()).or_insert(0);
            *c = c.saturating_add(*n);
        }
        for (k, n) in x.kernel.iter().flatten() {
            let c = self.kernel.entry(k.clone()).or_insert(0);
            *c = c.saturating_add(*n);
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
        self.add_shard(inp, off);
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
    fn finish(self, inputs: usize) -> Summary {
        let mut s = self.s;
        s.set_counts(self.counts);
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
        s
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

/// Writes the merged summary.json into `dir` (last, atomically: a directory with a
/// summary.json is a complete run).
pub fn write_summary(summary: &Summary, dir: &ResultsDir) -> Result<()> {
    let json = serde_json::to_string_pretty(summary)? + "\n";
    dir.write_atomic("summary.json", json.as_bytes())
        .with_context(|| format!("writing {}", dir.path().join("summary.json").display()))
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
    fn intervals_end_on_their_interval_and_the_last_at_the_runs_end() {
        let ends: Vec<(f64, f64)> = (0..3).map(|k| interval_bounds(k, 1.0, 2.5)).collect();
        assert_eq!(ends, [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]);
        let kinds = [
            ("EADDRNOTAVAIL".to_string(), 3),
            ("ECONNRESET".to_string(), 1),
        ];
        assert_eq!(kinds_text(&kinds), "EADDRNOTAVAIL=3 ECONNRESET=1");
        assert_eq!(kinds_text(&[]), "");
    }
}
