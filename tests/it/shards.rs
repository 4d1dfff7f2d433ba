//! Shards, one run over several machines: `run --shard I/N --start-at`, histograms.hlog, and
//! `portlab merge`.

use crate::common::{
    self, assert_first_error_due, assert_merged_histograms_exact, assert_ports_used_once,
    ended_early, hlog_totals, lab_run, n, namespaces_available, parse_summary, portlab,
};
use hdrhistogram::Histogram;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn merge(dirs: &[PathBuf], out: &Path) -> std::process::Output {
    Command::new(portlab())
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .args(["--format", "json"])
        .output()
        .expect("running portlab merge")
}

fn summary(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn fixtures() -> Vec<PathBuf> {
    (0..3)
        .map(|i| PathBuf::from(format!("tests/fixtures/shards/shard-{i}")))
        .collect()
}

#[test]
fn merge_of_fixture_shards_is_exact_and_golden() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("merged");
    let o = merge(&fixtures(), &dest);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_merged_histograms_exact(&fixtures(), &dest);
    let s = summary(&dest);
    let parts: Vec<Value> = fixtures().iter().map(|d| summary(d)).collect();
    for key in ["attempts", "connected", "completed", "failed"] {
        let total: u64 = parts.iter().map(|p| p[key].as_u64().unwrap()).sum();
        assert_eq!(s[key], total, "{key}");
    }
    assert_eq!(s["attempts"], 60, "count 60 split 20/20/20");
    assert_eq!(s["merge"]["shards"].as_array().unwrap().len(), 3);
    assert!(s["plan"]["load"].get("shard").is_none_or(Value::is_null));
    // Every report format renders the merged directory.
    for format in ["text", "json", "markdown", "csv"] {
        let r = Command::new(portlab())
            .args(["report", "--format", format])
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    // Golden: the merged summary.json, byte for byte (inputs are fixed files).
    insta::assert_snapshot!(
        "merged_fixture_summary",
        std::fs::read_to_string(dest.join("summary.json")).unwrap()
    );
    insta::assert_snapshot!(
        "merged_fixture_timeline",
        std::fs::read_to_string(dest.join("timeline.csv")).unwrap()
    );
}

#[test]
fn merge_refuses_a_directory_that_is_not_a_run() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("merged");
    let mut dirs = fixtures();
    dirs.push(empty.path().to_path_buf());
    let o = merge(&dirs, &dest);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not a portlab run"), "{err}");
    assert!(
        err.contains(&empty.path().display().to_string()),
        "names it: {err}"
    );
    assert!(!dest.exists(), "nothing written");
}

#[test]
fn merge_refuses_histograms_with_other_bounds_naming_the_directory() {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let odd = tempfile::tempdir().unwrap();
    let src = &fixtures()[1];
    for f in ["summary.json", "timeline.csv"] {
        std::fs::copy(src.join(f), odd.path().join(f)).unwrap();
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
    h.record(1234).unwrap();
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut buf, &mut ser)
        .unwrap();
    w.write_histogram(
        &h,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(1),
        Tag::new("connect"),
    )
    .unwrap();
    drop(w);
    std::fs::write(odd.path().join("histograms.hlog"), buf).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("merged");
    let o = merge(&[fixtures()[0].clone(), odd.path().to_path_buf()], &dest);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&odd.path().display().to_string()) && err.contains("significant figures"),
        "{err}"
    );
    assert!(!dest.exists(), "nothing written");
}

#[test]
fn shard_flags_refuse_bad_input_before_any_traffic() {
    for (args, says) in [
        (vec!["--shard", "3/3"], "below"),
        (vec!["--shard", "0/0"], "1 to 10000"),
        (vec!["--shard", "0/10001"], "1 to 10000"),
        (
            vec!["--shard", "0/3", "--count", "2"],
            "--count 2 over 3 shards",
        ),
        (vec!["--start-at", "2020-01-01T00:00:00Z"], "ago"),
        (vec!["--start-at", "4102444800"], "ahead"),
        (vec!["--start-at", "soon"], "RFC 3339"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new(portlab())
            .arg("run")
            .args(&args)
            .arg("--out")
            .arg(out.path().join("r"))
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!out.path().join("r").join("summary.json").exists());
    }
    // N alone takes I from $JOB_COMPLETION_INDEX; without it, says so.
    let o = Command::new(portlab())
        .args(["run", "--shard", "3", "--dry-run"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("JOB_COMPLETION_INDEX"));
}

#[test]
fn job_completion_index_picks_the_shard_and_counts_split_exactly() {
    let _turn = common::light();
    let out = tempfile::tempdir().unwrap();
    let mut total = 0;
    for i in 0..3 {
        let dir = out.path().join(format!("s{i}"));
        let o = Command::new(portlab())
            .args(["run", "--rate", "200", "--count", "7", "--shard", "3"])
            .args(["-q", "--format", "json", "--out"])
            .arg(&dir)
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .output()
            .unwrap();
        let s = parse_summary(&o);
        assert_eq!(s["shard"]["index"], i);
        assert_eq!(s["shard"]["count"], 3);
        assert_eq!(
            s["attempts"],
            [3, 2, 2][i],
            "7 over 3: the first gets one more"
        );
        assert_eq!(s["plan"]["load"]["rate"], "200", "plan.toml keeps R");
        assert_eq!(s["plan"]["load"]["count"], 7, "plan.toml keeps C");
        total += s["attempts"].as_u64().unwrap();
        assert!(dir.join("histograms.hlog").is_file());
    }
    assert_eq!(total, 7);
}

/// Runs `portlab run --lab ARGS` and returns (its directory, its summary).
fn lab_shard(args: Vec<String>, dir: PathBuf) -> (PathBuf, Value) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab_run(Command::new(portlab()), &args, &dir);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, parse_summary(&out))
}

#[test]
fn three_lab_shards_merged_equal_one_unsharded_run() {
    let _turn = common::heavy();
    if !namespaces_available("three_lab_shards") {
        return;
    }
    // R = 150/s for 3 s. Each shard is its own host with P = 100 ports (tcp_tw_reuse 0):
    // first error at P / (R / N) = 100 / 50 = 2.0 s. The unsharded run has the three
    // hosts' ports, 300, at 150/s: first error at 2.0 s too, with the same counts.
    let common = |range: &str| -> Vec<String> {
        [
            "--lab-port-range",
            range,
            "--lab-tw-reuse",
            "0",
            "--rate",
            "150",
            "--duration",
            "3s",
        ]
        .map(String::from)
        .to_vec()
    };
    let tmp = tempfile::tempdir().unwrap();
    let at = (std::time::SystemTime::now() + std::time::Duration::from_secs(3))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let mut args = common("40000-40099");
            args.extend([
                "--shard".into(),
                format!("{i}/3"),
                "--start-at".into(),
                at.clone(),
            ]);
            let dir = tmp.path().join(format!("shard-{i}"));
            std::thread::spawn(move || common::within_heavy(|| lab_shard(args, dir)))
        })
        .collect();
    let shards: Vec<(PathBuf, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (_, whole) = lab_shard(common("40000-40299"), tmp.path().join("whole"));

    // Each host used its 100 ports once, plus one port per TIME_WAIT socket an RST ended
    // early (common::ended_early: on a loaded machine about 1 shard in 9 has some, up to 18
    // measured; the suite once failed here with 102 connections on 100 ports).
    for (i, (dir, s)) in shards.iter().enumerate() {
        let what = dir.display().to_string();
        assert_eq!(s["exhaustion"]["kind"], "EADDRNOTAVAIL", "{what}");
        // Shard i makes every third start of the 150/s schedule, from the i-th: its own 50/s
        // shifted by i / 150 s. Due at P / (R / N) = 2.0 s (+ 20 ms per early end).
        assert_first_error_due(s, 100, 50.0, i as f64 / 150.0);
        assert_ports_used_once(s, 100, &what);
    }
    let dest = tmp.path().join("merged");
    let dirs: Vec<PathBuf> = shards.iter().map(|(d, _)| d.clone()).collect();
    let o = merge(&dirs, &dest);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = summary(&dest);
    assert_ports_used_once(&whole, 300, "the unsharded run");
    // The merged shards and the unsharded run made the same 450 attempts on 300 ports; each
    // connected one more per TIME_WAIT socket ended early, and failed one fewer.
    let (em, ew) = (ended_early(&m), ended_early(&whole));
    let shards_early: u64 = shards.iter().map(|(_, s)| ended_early(s)).sum();
    assert_eq!(em, shards_early, "merge adds the shards' early ends");
    assert_eq!(m["attempts"], 450);
    assert_eq!(m["attempts"], whole["attempts"]);
    let shards_connected: u64 = shards.iter().map(|(_, s)| n(s, "connected")).sum();
    assert_eq!(n(&m, "connected"), shards_connected);
    assert_eq!(
        n(&m, "connected") - em,
        n(&whole, "connected") - ew,
        "{m:#}"
    );
    assert_eq!(n(&m, "failed") + em, n(&whole, "failed") + ew);
    let exhausted = |v: &Value| v["errors"]["EADDRNOTAVAIL"]["count"].as_u64().unwrap();
    assert_eq!(
        exhausted(&m) + em,
        exhausted(&whole) + ew,
        "exhaustion errors"
    );
    // The earliest failure is the earliest shard's, on the merged clock. When it came is the
    // model's 2.0 s plus that shard's lateness (due times: asserted above per shard), up to
    // 0.27 s measured on a loaded machine: compared with what the shards reported, not 2.0.
    let earliest = m["merge"]["earliest_exhaustion_s"].as_f64().unwrap();
    let from_shards = m["merge"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["offset_s"].as_f64().unwrap() + x["first_exhaustion_s"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        (earliest - from_shards).abs() <= 1e-6 && earliest >= 2.0 - 0.05,
        "earliest {earliest}, shards {from_shards}"
    );
    assert_merged_histograms_exact(&dirs, &dest);
    // The unsharded run's histograms count the same samples: a connect() sample per
    // connection, a schedule-lag sample per attempt.
    let w = hlog_totals(&tmp.path().join("whole/histograms.hlog"));
    let mh = hlog_totals(&dest.join("histograms.hlog"));
    assert_eq!(
        mh["connect"].len() - em,
        w["connect"].len() - ew,
        "connect count vs the unsharded run"
    );
    assert_eq!(mh["schedule_lag"].len(), w["schedule_lag"].len());
}

#[test]
fn kubernetes_manifests_are_indexed_jobs_with_their_required_fields() {
    // A real YAML parser (PyPI PyYAML) reads every document; the Job API's fields are
    // checked here on what it parsed.
    let script = "import json, sys, yaml\n\
        docs = []\n\
        for f in sys.argv[1:]:\n\
        \x20   docs += [[f, d] for d in yaml.safe_load_all(open(f)) if d is not None]\n\
        print(json.dumps(docs))";
    let files = [
        "deploy/kubernetes/shards-job.yaml",
        "deploy/kubernetes/merge-job.yaml",
        "deploy/kubernetes/results-pvc.yaml",
    ];
    let out = Command::new("python3")
        .args(["-c", script])
        .args(files)
        .output();
    let usable = out.as_ref().is_ok_and(|o| o.status.success());
    if !common::can_run(
        "kubernetes_manifests",
        usable,
        "python3 with PyYAML is needed (pip install pyyaml; .ci/run installs it)",
    ) {
        return;
    }
    let docs: Vec<(String, Value)> = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    let jobs: Vec<&Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Job")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(jobs.len(), 2, "the shards Job and the merge Job");
    let mut claims = Vec::new();
    for (file, d) in &docs {
        if d["kind"] == "PersistentVolumeClaim" {
            claims.push(d["metadata"]["name"].as_str().unwrap().to_string());
        }
        assert!(d["metadata"]["name"].is_string(), "{file}: metadata.name");
    }
    for job in &jobs {
        let name = job["metadata"]["name"].as_str().unwrap();
        assert_eq!(job["apiVersion"], "batch/v1", "{name}");
        let spec = &job["spec"];
        assert_eq!(spec["completions"], spec["parallelism"], "{name}");
        let pod = &spec["template"]["spec"];
        let policy = pod["restartPolicy"].as_str().unwrap_or("");
        assert!(
            ["Never", "OnFailure"].contains(&policy),
            "{name}: a Job's pods restart Never or OnFailure, not {policy:?}"
        );
        let containers = pod["containers"].as_array().expect("containers");
        assert!(!containers.is_empty());
        for c in containers {
            assert!(c["name"].is_string() && c["image"].is_string(), "{name}");
            assert!(
                c["args"].as_array().is_some_and(|a| !a.is_empty()),
                "{name}"
            );
        }
        for v in pod["volumes"].as_array().into_iter().flatten() {
            let claim = v["persistentVolumeClaim"]["claimName"].as_str().unwrap();
            assert!(claims.iter().any(|c| c == claim), "{name}: claim {claim}");
        }
    }
    let shards = jobs
        .iter()
        .find(|j| j["metadata"]["name"] == "portlab-shards")
        .expect("portlab-shards");
    assert_eq!(shards["spec"]["completionMode"], "Indexed");
    let n = shards["spec"]["completions"].as_u64().unwrap();
    let c = &shards["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .map(|i| args[i + 1])
            .unwrap_or_else(|| panic!("{flag} missing in {args:?}"))
    };
    assert_eq!(args[0], "run");
    assert_eq!(after("--shard"), n.to_string(), "--shard N = completions");
    assert_eq!(after("--start-at"), "$(START_AT)");
    assert!(after("--out").contains("$(JOB_COMPLETION_INDEX)"));
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"JOB_COMPLETION_INDEX") && env.contains(&"START_AT"));
    // The shard arguments the Job passes are accepted by portlab itself.
    let o = Command::new(portlab())
        .args(["run", "--rate", "8000", "--duration", "60s", "--dry-run"])
        .args(["--shard", after("--shard")])
        .env("JOB_COMPLETION_INDEX", (n - 1).to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
