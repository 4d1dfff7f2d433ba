//! The million-input fuzz run of issue 12, on stable Rust (cargo fuzz needs nightly): the
//! fuzz entry points of `portlab::fuzz` fed with mutated catalog scenarios, random `run` flag
//! sets (half over a catalog file) and mutated summary.json files, in turn, each under
//! `catch_unwind`. Prints inputs, inputs/s, how many resolved or rendered, and panics (with
//! the seed of the first few, to reproduce one with `Mutator::new(seed)`).
//!
//! `cargo run --release --example fuzz_scenarios -- [INPUTS] [FIRST_SEED] [results]`
//!
//! With `results` (issue 22) it feeds `fuzz::results` instead: the fixture shard's results
//! directory with its summary.json, timeline.csv, histograms.hlog or plan.toml mutated,
//! through report in every format, compare and merge (in a directory under the system's
//! temporary directory, removed at the end). Each input is also timed: the slowest is
//! printed, since a hang is a bug as much as a panic.

use portlab::fuzz::{self, Mutator};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let inputs: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("INPUTS"));
    let first: u64 = args.next().map_or(0, |a| a.parse().expect("FIRST_SEED"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if args.next().as_deref() == Some("results") {
        return results(root, inputs, first);
    }
    let mut files: Vec<_> = std::fs::read_dir(root.join("scenarios"))
        .expect("scenarios/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let catalog: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/fixtures/runs/before/summary.json")).expect("fixture"),
    )
    .expect("fixture JSON");

    // Panics are counted, not printed one by one.
    panic::set_hook(Box::new(|_| {}));
    let (mut ok, mut refused, mut panics) = ([0u64; 3], [0u64; 3], [0u64; 3]);
    let mut first_panics = Vec::new();
    let start = Instant::now();
    for seed in first..first + inputs {
        let mut m = Mutator::new(seed);
        let kind = (seed % 3) as usize;
        let result = panic::catch_unwind(AssertUnwindSafe(|| match kind {
            0 => {
                let file = &catalog[m.below(catalog.len())];
                fuzz::scenario(&m.bytes(file)).map(drop)
            }
            1 => {
                let file = (m.below(2) == 0).then(|| catalog[m.below(catalog.len())].clone());
                fuzz::run_flags(&m.flags(), file.as_deref()).map(drop)
            }
            _ => fuzz::summary(&m.summary(&summary)).map(drop),
        }));
        match result {
            Ok(Ok(())) => ok[kind] += 1,
            Ok(Err(_)) => refused[kind] += 1,
            Err(p) => {
                panics[kind] += 1;
                if first_panics.len() < 10 {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    first_panics.push((seed, kind, msg));
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = panic::take_hook();
    println!(
        "inputs: {inputs} (seeds {first}..{}), {secs:.1} s, {:.0} inputs/s",
        first + inputs,
        inputs as f64 / secs
    );
    for (i, what) in ["scenario files", "run flag sets", "summary.json"]
        .iter()
        .enumerate()
    {
        println!(
            "  {what:15} ok {:>8}  refused {:>8}  panics {}",
            ok[i], refused[i], panics[i]
        );
    }
    println!("panics: {}", panics.iter().sum::<u64>());
    for (seed, kind, msg) in &first_panics {
        println!("  seed {seed} (kind {kind}): {msg}");
    }
    if panics.iter().sum::<u64>() > 0 {
        std::process::exit(1);
    }
}

/// `fuzz::results` over `inputs` mutated copies of the fixture shard.
fn results(root: &Path, inputs: u64, first: u64) {
    let shard = root.join("tests/fixtures/shards/shard-0");
    // Its plan.toml without its --start-at, which is in the past now (a refusal every time).
    let files: Vec<(&str, Vec<u8>)> = fuzz::RESULTS_FILES
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(shard.join(n)).expect("fixture");
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("start_at"))
                .collect();
            (*n, (kept.join("\n") + "\n").into_bytes())
        })
        .collect();
    let work = std::env::temp_dir().join(format!("portlab-fuzz-{}", std::process::id()));
    let (dir, out) = (work.join("run"), work.join("merged"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    panic::set_hook(Box::new(|_| {}));
    let (mut ok, mut refused, mut panics) = (0u64, 0u64, Vec::new());
    let mut slowest = (0.0f64, 0u64);
    let start = Instant::now();
    for seed in first..first + inputs {
        for (name, bytes) in Mutator::new(seed).results(&files) {
            std::fs::write(dir.join(name), bytes).expect("writing an input");
        }
        let t = Instant::now();
        match panic::catch_unwind(AssertUnwindSafe(|| fuzz::results(&dir, &out))) {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(_)) => refused += 1,
            Err(p) => panics.push((
                seed,
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            )),
        }
        let took = t.elapsed().as_secs_f64();
        if took > slowest.0 {
            slowest = (took, seed);
        }
    }
    let _ = panic::take_hook();
    let _ = std::fs::remove_dir_all(&work);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "results directories: {inputs} (seeds {first}..{}), {secs:.1} s, ok {ok} refused {refused} panics {}; slowest {:.3} s (seed {})",
        first + inputs,
        panics.len(),
        slowest.0,
        slowest.1
    );
    for (seed, msg) in panics.iter().take(10) {
        println!("  seed {seed}: {msg}");
    }
    if !panics.is_empty() {
        std::process::exit(1);
    }
}
