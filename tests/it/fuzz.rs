//! Property test over the fuzz entry points, since nothing a user types may panic: mutated
//! catalog scenarios, random `run` flag sets and mutated summary.json files never panic;
//! each ends in a plan or a
//! clear message. The case count keeps it to seconds; examples/fuzz_scenarios.rs runs the
//! same entry points a million times.

use portlab::fuzz::{self, Mutator};
use proptest::prelude::*;
use std::path::Path;

fn catalog() -> &'static [Vec<u8>] {
    static FILES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    FILES.get_or_init(read_catalog)
}

fn read_catalog() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn fixture_summary() -> &'static serde_json::Value {
    static SUMMARY: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SUMMARY.get_or_init(read_summary)
}

fn read_summary() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/before/summary.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A refusal must say something a user can act on, not be empty or an internal panic text.
fn clear(e: &str) {
    assert!(!e.trim().is_empty(), "an empty error message");
    assert!(!e.contains("panicked"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_catalog_scenarios_resolve_or_say_why(seed: u64) {
        let files = catalog();
        let mut m = Mutator::new(seed);
        let file = &files[m.below(files.len())];
        if let Err(e) = fuzz::scenario(&m.bytes(file)) {
            clear(&e);
        }
    }

    #[test]
    fn random_run_flags_resolve_or_say_why(seed: u64, with_file: bool) {
        let files = catalog();
        let mut m = Mutator::new(seed);
        let file = with_file.then(|| files[m.below(files.len())].clone());
        if let Err(e) = fuzz::run_flags(&m.flags(), file.as_deref()) {
            clear(&e);
        }
    }

    #[test]
    fn random_command_lines_parse_or_say_why(seed: u64) {
        let mut m = Mutator::new(seed);
        if let Err(e) = fuzz::command_line(&m.command_line()) {
            clear(&e);
        }
    }

    #[test]
    fn mutated_summaries_render_or_say_why(seed: u64) {
        let mut m = Mutator::new(seed);
        if let Err(e) = fuzz::summary(&m.summary(fixture_summary())) {
            clear(&e);
        }
    }
}

/// The fixture shard's files, which the results fuzz mutates; its plan.toml without its
/// --start-at, which is in the past now (a run refuses it, so every input would be refused).
fn shard_files() -> Vec<(&'static str, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shards/shard-0");
    fuzz::RESULTS_FILES
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap();
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("start_at"))
                .collect();
            (*n, (kept.join("\n") + "\n").into_bytes())
        })
        .collect()
}

/// The longest one mutated results directory may take through report, compare and merge
/// (a debug build takes about 0.2 s; the hangs this guards against, before every read was
/// bounded, never ended).
const RESULTS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_results_directories_report_and_merge_or_say_why(seed: u64) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        for (name, bytes) in Mutator::new(seed).results(&shard_files()) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let out = tmp.path().join("merged");
        // On a thread of its own, so that a hang fails the case instead of the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| fuzz::results(&dir, &out));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(RESULTS_DEADLINE) {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => clear(&e),
            Ok(Err(_)) => panic!("seed {seed}: panicked"),
            Err(_) => panic!("seed {seed}: hung (more than {RESULTS_DEADLINE:?})"),
        }
    }
}

#[test]
fn the_catalog_itself_resolves() {
    for file in catalog() {
        fuzz::scenario(file).unwrap();
    }
    fuzz::summary(fixture_summary().to_string().as_bytes()).unwrap();
    // The fixture shard unmutated: everything renders and merges, and its plan.toml resolves.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in shard_files() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    fuzz::results(&dir, &tmp.path().join("merged")).unwrap();
}

/// The fuzzed flags are clap's own: every subcommand's long flags, each value-taking one with
/// values its own parser accepts (a new flag is fuzzed without being listed; one whose
/// grammar no sample fits is named here, so that a sample is added to `fuzz::SAMPLES`).
#[test]
fn fuzzed_flags_are_every_subcommands_flags_with_values_they_accept() {
    let flags = fuzz::flags();
    for (command, long) in [
        ("run", "--rate"),
        ("run", "--lab-server-somaxconn"),
        ("run", "--client-exec"),
        ("run", "--lab"),
        ("run", "--expect-error"),
        ("report", "--format"),
        ("predict", "--profile"),
        ("inspect", "--rate"),
        ("merge", "--out"),
    ] {
        assert!(
            flags.iter().any(|f| f.command == command && f.long == long),
            "{command} {long} is not among the fuzzed flags"
        );
    }
    let lost: Vec<String> = flags
        .iter()
        .filter(|f| f.takes_value && f.sane.is_empty())
        .map(|f| format!("{} {}", f.command, f.long))
        .collect();
    assert!(lost.is_empty(), "no sample fits {lost:?}");
    // Every sane value of every flag passes clap's parser in the real command line (other
    // refusals, like a flag that requires another, may remain).
    for f in flags {
        for value in &f.sane {
            let mut args: Vec<String> = f.command.split(' ').map(str::to_string).collect();
            args.extend([f.long.clone(), value.clone()]);
            if let Err(e) = fuzz::command_line(&args) {
                assert!(!e.contains("invalid value"), "{args:?}: {e}");
            }
        }
    }
}

#[test]
fn issue_12_reproducers_are_refused_by_the_library_entry() {
    for flags in [
        &["--duration", "1e300", "--count", "1"][..],
        &["--rate", "1e-300", "--count", "2"],
        &["--rate", "5e-324", "--duration", "1s"],
        &["--interval", "1e19", "--duration", "1s", "--rate", "10"],
        &["--max-in-flight", "4294967295"],
        &["--concurrency", "4294967295", "--rate", "max"],
        &["--pool", "4294967295", "--payload", "tcp"],
        &["--lab", "--lab-max-tw-buckets", "9007199254740992"],
        &["--destinations", "8", "--listen", "127.0.0.1:65535"],
    ] {
        let args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let e = fuzz::run_flags(&args, None).expect_err(&flags.join(" "));
        clear(&e);
    }
}
