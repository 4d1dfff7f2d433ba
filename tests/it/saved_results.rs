//! Saved results are not trusted: a results directory, a scenario or a baseline
//! is whatever a user (or a full disk) left there. Times outside the run, values a chart
//! cannot place, histogram headers claiming any range, special files, and a timeline that
//! does not add up to its summary are refused with exit 2 naming the file, in bounded time
//! and memory; and merging a long run takes memory bounded by one interval, not the run's
//! length. Each command here runs under a data-size limit (RLIMIT_DATA, through the shell's
//! `ulimit -d`) and a deadline, so a regression fails instead of eating the machine or
//! hanging the suite.

use crate::common::{self, hlog_totals, portlab};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fixture shard: a real 20-attempt run of one 1 s interval.
const SHARD: &str = "tests/fixtures/shards/shard-0";

/// A copy of [`SHARD`] in `dir`, to be spoiled.
fn shard_copy(dir: &Path) -> PathBuf {
    let d = dir.join("shard");
    std::fs::create_dir_all(&d).unwrap();
    for f in [
        "summary.json",
        "timeline.csv",
        "histograms.hlog",
        "plan.toml",
    ] {
        std::fs::copy(Path::new(SHARD).join(f), d.join(f)).unwrap();
    }
    d
}

/// `portlab ARGS` with at most `data_mib` MiB of heap (RLIMIT_DATA: an allocation past it
/// fails, and Rust aborts) and `deadline` to finish (killed and failed past it). Its output
/// goes to files (a pipe would fill and stall it); polls for the exit: std has no wait with
/// a timeout.
fn portlab_bounded(args: &[&str], data_mib: u64, deadline: Duration) -> Output {
    use std::io::{Read, Seek};
    let (mut stdout, mut stderr) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {}; exec \"$0\" \"$@\"", data_mib * 1024))
        .arg(portlab())
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .expect("running portlab");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let mut err = String::new();
            stderr.rewind().unwrap();
            stderr.read_to_string(&mut err).unwrap();
            panic!("portlab {args:?} did not finish within {deadline:?} (hung); stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    stdout.rewind().unwrap();
    stdout.read_to_end(&mut out.stdout).unwrap();
    stderr.rewind().unwrap();
    stderr.read_to_end(&mut out.stderr).unwrap();
    out
}

/// Asserts exit 2 with every one of `words` in stderr.
fn refused(out: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for w in words {
        assert!(err.contains(w), "stderr names {w:?}: {err}");
    }
}

fn merge_args<'a>(dirs: &'a [&'a str], out: &'a str) -> Vec<&'a str> {
    let mut a = vec!["merge"];
    a.extend(dirs);
    a.extend(["--out", out, "--format", "json"]);
    a
}

/// Sets timeline.csv's first row's t_s (its only row, of 20 attempts).
fn set_first_t(dir: &Path, t: &str) {
    let p = dir.join("timeline.csv");
    let text = std::fs::read_to_string(&p).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let (_, row) = rest.split_once(',').unwrap();
    std::fs::write(&p, format!("{head}\n{t},{row}")).unwrap();
}

const LIMIT_MIB: u64 = 200;
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn merge_refuses_a_timeline_row_at_2_pow_64_seconds_naming_the_file_and_line() {
    // Was: a panic (index out of bounds in results/merge.rs (then report/merge.rs)).
    let tmp = tempfile::tempdir().unwrap();
    let d = shard_copy(tmp.path());
    let out = tmp.path().join("merged");
    let (d, out) = (d.to_str().unwrap(), out.to_str().unwrap());
    for t in ["18446744073709551616", "inf", "NaN", "-1"] {
        set_first_t(Path::new(d), t);
        let o = portlab_bounded(&merge_args(&[d], out), LIMIT_MIB, DEADLINE);
        refused(&o, &["timeline.csv line 2", "not a time of this run"]);
        assert!(!Path::new(out).exists(), "{t}: nothing written");
    }
}

#[test]
fn merge_refuses_a_timeline_row_at_100000_s_without_allocating_every_interval_up_to_it() {
    // Was: 100,000 intervals of histograms allocated (about 94 GB) for a 1 s run.
    let tmp = tempfile::tempdir().unwrap();
    let d = shard_copy(tmp.path());
    set_first_t(&d, "100000");
    let out = tmp.path().join("merged");
    let o = portlab_bounded(
        &merge_args(&[d.to_str().unwrap()], out.to_str().unwrap()),
        LIMIT_MIB,
        DEADLINE,
    );
    refused(&o, &["timeline.csv line 2", "100000"]);
}

#[test]
fn report_html_of_a_timeline_holding_inf_finishes() {
    // Was: 100% CPU forever (the chart's axis ticks over an infinite range); -1e15
    // overflowed the pixel arithmetic (a panic).
    let tmp = tempfile::tempdir().unwrap();
    let d = shard_copy(tmp.path());
    for (col, v) in [
        (0, "inf"),
        (8, "inf"),
        (10, "inf"),
        (8, "-1e15"),
        (0, "1e300"),
    ] {
        let p = d.join("timeline.csv");
        std::fs::copy(Path::new(SHARD).join("timeline.csv"), &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let (head, row) = text.trim_end().split_once('\n').unwrap();
        let mut cells: Vec<&str> = row.split(',').collect();
        cells[col] = v;
        std::fs::write(&p, format!("{head}\n{}\n", cells.join(","))).unwrap();
        let o = portlab_bounded(
            &["report", "--format", "html", d.to_str().unwrap()],
            LIMIT_MIB,
            DEADLINE,
        );
        assert!(
            o.status.success(),
            "column {col} = {v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let page = String::from_utf8_lossy(&o.stdout);
        assert!(
            page.contains("<svg"),
            "column {col} = {v}: the charts are drawn"
        );
    }
}

/// A histograms.hlog line whose histogram is a bare V2 header (40 bytes, 56 characters of
/// base64) claiming `sigfig` significant figures over 1..`high`, and `payload` bytes of
/// counts.
fn header_line(sigfig: u32, high: u64, payload: u32) -> String {
    use base64::Engine as _;
    let mut b = Vec::new();
    b.extend(0x1c84_9313u32.to_be_bytes()); // V2, not compressed
    b.extend(payload.to_be_bytes());
    b.extend(0u32.to_be_bytes()); // normalizing offset
    b.extend(sigfig.to_be_bytes());
    b.extend(1u64.to_be_bytes());
    b.extend(high.to_be_bytes());
    b.extend(1f64.to_be_bytes());
    let enc = base64::engine::general_purpose::STANDARD.encode(&b);
    assert_eq!(enc.len(), 56);
    format!("Tag=connect,0.000,0.957,0.000,{enc}\n")
}

#[test]
fn merge_refuses_a_56_character_hlog_line_claiming_a_huge_range_without_allocating_it() {
    // Was: 4.2 GB allocated for what the header claimed before its bounds were compared.
    let tmp = tempfile::tempdir().unwrap();
    let d = shard_copy(tmp.path());
    let out = tmp.path().join("merged");
    let hlog = d.join("histograms.hlog");
    let original = std::fs::read_to_string(Path::new(SHARD).join("histograms.hlog")).unwrap();
    for (line, says) in [
        (header_line(5, 1 << 62, 0), "significant figures"),
        // The bounds portlab writes, but counts claimed up to 4 GB.
        (header_line(3, 3_600_000_000, u32::MAX), "bytes of counts"),
    ] {
        std::fs::write(&hlog, format!("{original}{line}")).unwrap();
        let o = portlab_bounded(
            &merge_args(&[d.to_str().unwrap()], out.to_str().unwrap()),
            LIMIT_MIB,
            DEADLINE,
        );
        refused(&o, &["histograms.hlog line 9", says]);
    }
}

/// `shard` made `n` intervals of `step_s` long: its one interval's histograms and row
/// repeated (what benches/long_shards.py makes for the bench).
fn long_shard(dir: &Path, n: usize, step_s: f64) -> PathBuf {
    let d = shard_copy(dir);
    let hlog = std::fs::read_to_string(d.join("histograms.hlog")).unwrap();
    let (head, tags): (Vec<&str>, Vec<&str>) = hlog.lines().partition(|l| !l.starts_with("Tag="));
    let mut text = head.join("\n") + "\n";
    let tl = std::fs::read_to_string(d.join("timeline.csv")).unwrap();
    let (header, row) = tl.trim_end().split_once('\n').unwrap();
    let row_rest = row.split_once(',').unwrap().1;
    let mut rows = format!("{header}\n");
    for k in 0..n {
        for t in &tags {
            let f: Vec<&str> = t.splitn(5, ',').collect();
            text += &format!(
                "{},{:.3},{step_s:.3},{},{}\n",
                f[0],
                k as f64 * step_s,
                f[3],
                f[4]
            );
        }
        rows += &format!("{:.3},{row_rest}\n", (k + 1) as f64 * step_s);
    }
    std::fs::write(d.join("histograms.hlog"), text).unwrap();
    std::fs::write(d.join("timeline.csv"), rows).unwrap();
    let mut s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap();
    let per = s["attempts"].as_u64().unwrap();
    s["duration_s"] = (n as f64 * step_s).into();
    s["load_duration_s"] = (n as f64 * step_s).into();
    s["attempts"] = (per * n as u64).into();
    s["plan"]["load"]["interval"] = format!("{}ms", (step_s * 1000.0).round()).into();
    std::fs::write(d.join("summary.json"), s.to_string()).unwrap();
    d
}

#[test]
fn merge_of_a_ten_minute_shard_stays_within_100_mib() {
    // Was: about 1.85 MB per interval (a histogram set per interval per shard, all held at
    // once): these 600 intervals took about 1.1 GB. The bench (benches/README.md) measures
    // the one-hour shard; a debug build takes too long over it for `cargo test`.
    let tmp = tempfile::tempdir().unwrap();
    let d = long_shard(tmp.path(), 600, 1.0);
    let out = tmp.path().join("merged");
    let o = portlab_bounded(
        &merge_args(&[d.to_str().unwrap()], out.to_str().unwrap()),
        100,
        Duration::from_secs(300),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Exact: the merged histograms count every sample of the 600 intervals.
    let one = hlog_totals(&Path::new(SHARD).join("histograms.hlog"));
    let merged = hlog_totals(&out.join("histograms.hlog"));
    for (tag, h) in &one {
        assert_eq!(merged[tag].len(), h.len() * 600, "{tag}");
    }
    let rows = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 600);
}

#[test]
fn merge_refuses_a_shard_whose_timeline_does_not_add_up_to_its_summary() {
    // Was: a timeline.csv left empty by a full disk merged as 0 attempts beside a summary
    // of 20, exit 0.
    let tmp = tempfile::tempdir().unwrap();
    let d = shard_copy(tmp.path());
    std::fs::write(d.join("timeline.csv"), "").unwrap();
    let out = tmp.path().join("merged");
    let o = portlab_bounded(
        &merge_args(&[SHARD, d.to_str().unwrap()], out.to_str().unwrap()),
        LIMIT_MIB,
        DEADLINE,
    );
    refused(
        &o,
        &[
            &d.join("timeline.csv").display().to_string(),
            "does not add up to its summary",
            "0 attempts",
            "20",
        ],
    );
    assert!(!out.exists(), "nothing written");
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

#[test]
fn a_summary_or_scenario_that_is_dev_zero_is_refused_not_read_until_memory_runs_out() {
    let z = "/dev/zero";
    let o = portlab_bounded(&["report", z], LIMIT_MIB, DEADLINE);
    refused(&o, &[z, "character device"]);
    let o = portlab_bounded(&["run", "--dry-run", z], LIMIT_MIB, DEADLINE);
    refused(&o, &[z, "character device"]);
    let o = portlab_bounded(
        &[
            "run",
            "--dry-run",
            "--baseline",
            z,
            "--rate",
            "10",
            "--count",
            "1",
        ],
        LIMIT_MIB,
        DEADLINE,
    );
    refused(&o, &[z, "character device"]);
}

#[cfg(unix)]
#[test]
fn a_fifo_given_as_scenario_baseline_summary_timeline_or_netns_is_refused_not_waited_on() {
    // Was: each blocked forever in open(), waiting for a writer (and ignoring SIGTERM).
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let o = portlab_bounded(&["run", "--dry-run", f], LIMIT_MIB, DEADLINE);
    refused(&o, &[f, "FIFO"]);
    let o = portlab_bounded(
        &[
            "run",
            "--dry-run",
            "--baseline",
            f,
            "--rate",
            "10",
            "--count",
            "1",
        ],
        LIMIT_MIB,
        DEADLINE,
    );
    refused(&o, &[f, "FIFO"]);
    let o = portlab_bounded(&["report", f], LIMIT_MIB, DEADLINE);
    refused(&o, &[f, "FIFO"]);
    let o = portlab_bounded(&["watch", "--once", "--netns", f], LIMIT_MIB, DEADLINE);
    refused(&o, &[f, "FIFO"]);
    // A results directory whose summary.json or timeline.csv is a FIFO.
    let d = shard_copy(tmp.path());
    std::fs::remove_file(d.join("summary.json")).unwrap();
    mkfifo(&d.join("summary.json"));
    let shown = d.join("summary.json").display().to_string();
    let o = portlab_bounded(&["report", d.to_str().unwrap()], LIMIT_MIB, DEADLINE);
    refused(&o, &[&shown, "FIFO"]);
    std::fs::remove_file(d.join("summary.json")).unwrap();
    std::fs::copy(
        Path::new(SHARD).join("summary.json"),
        d.join("summary.json"),
    )
    .unwrap();
    std::fs::remove_file(d.join("timeline.csv")).unwrap();
    mkfifo(&d.join("timeline.csv"));
    let o = portlab_bounded(
        &["report", "--format", "html", d.to_str().unwrap()],
        LIMIT_MIB,
        DEADLINE,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("merged");
    let o = portlab_bounded(
        &merge_args(&[d.to_str().unwrap()], out.to_str().unwrap()),
        LIMIT_MIB,
        DEADLINE,
    );
    refused(&o, &["timeline.csv", "FIFO"]);
}

#[cfg(target_os = "linux")]
#[test]
fn a_write_that_fails_mid_run_makes_exit_3_naming_the_file_and_merge_refuses_it() {
    let _turn = common::light();
    // Was: exit 0 with a timeline or histograms.hlog cut short. RLIMIT_FSIZE stands in for a
    // disk full for a moment: 12 KiB per file (SIGXFSZ ignored, so a write past it fails
    // with EFBIG) holds summary.json (about 5 KiB) and plan.toml, not histograms.hlog at 10 ms
    // intervals (about 1.2 KiB each, 100 of them). Loopback only, 200 connections.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 24; exec \"$0\" \"$@\"")
        .arg(portlab())
        .args([
            "run",
            "--rate",
            "200",
            "--duration",
            "1s",
            "--interval",
            "10ms",
        ])
        .args(["--tolerance", "delivery=1000", "--format", "json", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("histograms.hlog from"), "{err}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let files = s["incomplete_files"].as_array().expect("incomplete_files");
    assert!(
        files
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("histograms.hlog from")),
        "{files:?}"
    );
    let out = tmp.path().join("merged");
    let o = portlab_bounded(
        &merge_args(&[dir.to_str().unwrap()], out.to_str().unwrap()),
        LIMIT_MIB,
        DEADLINE,
    );
    refused(&o, &["is an incomplete run", "histograms.hlog from"]);
}
