//! Fuzzing entry points: everything a user can hand portlab as text, from bytes to the last
//! rendering, with no I/O, so that a property test (tests/it/fuzz.rs), the cargo-fuzz
//! targets (fuzz/) and the million-input driver (examples/fuzz_scenarios.rs) all exercise
//! the same code: a scenario file through plan resolution and the model, `run`'s flags, and a
//! summary.json through every report format. [`results`] is the one entry that reads files
//! (saved results are whatever a user or a full disk left there): a mutated results
//! directory through report, compare and merge.
//!
//! Each entry returns `Ok` or an error message; a panic anywhere below is the bug being
//! hunted. [`Mutator`] makes the inputs from seeds (catalog files, summaries, and the flags
//! of every subcommand as clap defines them: [`flags`], each with the [`SAMPLES`] its own
//! parser accepts, so a new flag is fuzzed without being listed).

use crate::cmd::cli::{Cli, Command};
use crate::model;
use crate::plan::{self, Plan, Scenario};
use crate::report::{self, Format};
use clap::Parser;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

/// Scenario file bytes -> a resolved plan, then what a run derives from it without I/O: the
/// plan written back as TOML and re-resolved (which must give the same plan), and the model's
/// prediction rendered as text.
pub fn scenario(bytes: &[u8]) -> Result<Plan, String> {
    let s = plan::parse_scenario(bytes, Path::new("fuzz.toml")).map_err(|e| e.to_string())?;
    resolved(&s)
}

/// `portlab run ARGS` (and a scenario file's bytes under them) -> a resolved plan, as
/// [`scenario`] goes on from there. Clap's own refusals are errors too.
pub fn run_flags(args: &[String], file: Option<&[u8]>) -> Result<Plan, String> {
    let argv = ["portlab", "run"].into_iter().map(String::from);
    let cli = Cli::try_parse_from(argv.chain(args.iter().cloned())).map_err(|e| e.to_string())?;
    let Command::Run(run) = cli.command else {
        return Err("not a run".into());
    };
    let base = match file {
        Some(bytes) => {
            plan::parse_scenario(bytes, Path::new("fuzz.toml")).map_err(|e| e.to_string())?
        }
        None => Scenario::default(),
    };
    resolved(&run.over(base))
}

fn resolved(s: &Scenario) -> Result<Plan, String> {
    let plan = Plan::resolve(s).map_err(|e| e.to_string())?;
    let text = toml::to_string(&plan.scenario)
        .unwrap_or_else(|e| panic!("a resolved plan must serialise: {e}"));
    let again: Scenario =
        toml::from_str(&text).unwrap_or_else(|e| panic!("plan.toml must parse back: {e}\n{text}"));
    let again = Plan::resolve(&again)
        .unwrap_or_else(|e| panic!("plan.toml must resolve again: {e}\n{text}"));
    assert_eq!(again, plan, "plan.toml must re-run the same plan:\n{text}");
    let target: SocketAddr = "127.0.0.1:1".parse().expect("a literal address");
    let input = model::from_plan::input_for(&plan, &BTreeMap::new(), target);
    let (prediction, inverse, advice) = model::analyse(&input);
    crate::report::prediction::render_text(&input, &prediction, inverse.as_ref(), &advice);
    Ok(plan)
}

/// summary.json bytes -> every report format, alone and compared with itself; returns the
/// number of bytes rendered.
pub fn summary(bytes: &[u8]) -> Result<usize, String> {
    let s: crate::results::summary::Summary =
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let formats = [Format::Text, Format::Json, Format::Csv, Format::Markdown];
    let runs = [("a".to_string(), s.clone()), ("b".to_string(), s.clone())];
    let c = crate::results::compare::compare(&runs);
    let shown = runs.each_ref().map(|(label, s)| report::Run {
        label: label.clone(),
        summary: s,
        dir: None,
    });
    for f in formats {
        let r = report::renderer(f);
        r.run(&shown[0], &mut out).map_err(|e| e.to_string())?;
        r.runs(&shown, &c, &mut out).map_err(|e| e.to_string())?;
    }
    Ok(out.len())
}

/// The files of a results directory the results fuzz mutates.
pub const RESULTS_FILES: [&str; 4] = [
    "summary.json",
    "timeline.csv",
    "histograms.hlog",
    "plan.toml",
];

/// A results directory `dir` (its files mutated by the caller) through everything that reads
/// saved results, trusted no more than any input: `report` in every format, alone and
/// compared with itself (the html page draws its timeline), `merge` into `out` (a directory
/// of its own, replaced), and
/// its plan.toml as the scenario a lab client runs. Unlike the entries above this reads and
/// writes files: merge streams its inputs from disk. Returns the bytes rendered.
pub fn results(dir: &Path, out: &Path) -> Result<usize, String> {
    let mut rendered = Vec::new();
    let mut refusals = Vec::new();
    match crate::results::dir::load_summary(dir) {
        Ok(s) => {
            let runs = [("a".to_string(), s.clone()), ("b".to_string(), s.clone())];
            let c = crate::results::compare::compare(&runs);
            let shown = runs.each_ref().map(|(label, s)| report::Run {
                label: label.clone(),
                summary: s,
                dir: Some(dir),
            });
            for f in [
                Format::Text,
                Format::Json,
                Format::Csv,
                Format::Markdown,
                Format::Junit,
                Format::Html,
            ] {
                let r = report::renderer(f);
                for written in [
                    r.run(&shown[0], &mut rendered),
                    r.runs(&shown, &c, &mut rendered),
                ] {
                    if let Err(e) = written {
                        refusals.push(e.to_string());
                    }
                }
            }
        }
        Err(e) => refusals.push(report::chain(&e)),
    }
    match crate::results::merge::merge(&[dir.to_path_buf()]) {
        Ok(m) => {
            let d = crate::results::dir::ResultsDir::prepare("fuzz", Some(out), true)
                .map_err(|e| report::chain(&e))?;
            match m.write(&d) {
                Ok(s) => {
                    crate::results::merge::write_summary(&s, &d).map_err(|e| report::chain(&e))?
                }
                Err(e) => refusals.push(report::chain(&e)),
            }
        }
        Err(e) => refusals.push(report::chain(&e)),
    }
    if let Err(e) = plan::load_scenario(&dir.join("plan.toml")).and_then(|s| Plan::resolve(&s)) {
        refusals.push(e.to_string());
    }
    if refusals.is_empty() {
        Ok(rendered.len())
    } else {
        Err(refusals.join("\n"))
    }
}

/// SplitMix64: a few lines of deterministic randomness, so an input is reproduced from its
/// seed alone and the library needs no random-number crate for it.
#[derive(Debug, Clone)]
pub struct Mutator(u64);

/// Fragments worth splicing into scenario text and flag values: the numeric boundaries where
/// fuzzing once found panics (overflowing integers, floats, durations), and the grammar's
/// own tokens.
pub const DICTIONARY: &[&str] = &[
    "0",
    "1",
    "-1",
    "1e300",
    "-1e300",
    "1e-300",
    "5e-324",
    "1e19",
    "4294967295",
    "65535",
    "65536",
    "9007199254740992",
    "18446744073709551615",
    "nan",
    "inf",
    "max",
    "0.5",
    "\"",
    "=",
    "[",
    "]",
    "\n",
    ",",
    "-",
    "/s",
    "/min",
    "s",
    "ms",
    "1m30s",
    "\"240\"",
    "range=",
    "linger=",
    "hex:",
    "\u{e9}",
    "\u{0}",
    "[lab]\nisolate = true\n",
    "[lab.server]\n",
    "[expect.tolerance]\n",
    "127.0.0.1:65535",
    "eof",
    "veth",
    "active",
    "passive",
    "reset",
];

/// Values worth giving a flag: each flag of [`flags`] keeps those its own value parser
/// accepts, so a flag added to the CLI is fuzzed with sane values without being listed. A
/// flag whose grammar none of these fits is fuzzed with [`DICTIONARY`] fragments only (a
/// test in tests/fuzz.rs names it, so that a sample can be added here).
pub const SAMPLES: &[&str] = &[
    "100/s",
    "8",
    "2",
    "2s",
    "100",
    "64",
    "1s",
    "100ms",
    "linger=1",
    "4",
    "127.0.0.2",
    "range=40000-40099",
    "tcp",
    "hex:0a0b",
    "3",
    "ok",
    "/health",
    "127.0.0.1:8080",
    "127.0.0.1:0",
    "5",
    "10ms",
    "first",
    "40000-40299",
    "40000-40010,40020",
    "1",
    "250ms",
    "true",
    "240",
    "10",
    "veth",
    "0.1",
    "50",
    "0.9",
    "EADDRNOTAVAIL",
    "first_error_s=10",
    "fuzz",
    "1/2",
    "2030-01-01T00:00:00Z",
    "curl http://127.0.0.1:8080/",
    "refused",
    "results/fuzz",
];

/// One long flag of a subcommand, as clap's own definition of the CLI has it.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The subcommand (`run`, `report`, `merge` ...).
    pub command: String,
    /// `--rate`.
    pub long: String,
    /// Whether it takes a value (false for a switch like `--lab`).
    pub takes_value: bool,
    /// Its possible values, else the [`SAMPLES`] its value parser accepts.
    pub sane: Vec<String>,
}

/// Every long flag of every subcommand, walked from `Cli::command()` (help and version left
/// out), in clap's order, each with the values its parser takes.
pub fn flags() -> &'static [Flag] {
    static FLAGS: std::sync::OnceLock<Vec<Flag>> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| {
        use clap::CommandFactory as _;
        let mut root = Cli::command();
        root.build();
        let mut out = Vec::new();
        for sub in root.get_subcommands() {
            walk(sub, sub.get_name().to_string(), &mut out);
        }
        out
    })
}

fn walk(cmd: &clap::Command, path: String, out: &mut Vec<Flag>) {
    use clap::ArgAction;
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        let action = arg.get_action();
        if matches!(
            action,
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let takes_value = action.takes_values();
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        let sane = match (takes_value, possible.is_empty()) {
            (false, _) => Vec::new(),
            (true, false) => possible,
            (true, true) => {
                // The flag's own value parser, alone in a command of its own (its relations
                // to other flags left behind).
                let probe = clap::Command::new("probe").no_binary_name(true).arg(
                    clap::Arg::new("value")
                        .long(long.to_string())
                        .action(ArgAction::Set)
                        .allow_hyphen_values(true)
                        .value_parser(arg.get_value_parser().clone()),
                );
                SAMPLES
                    .iter()
                    .filter(|v| {
                        probe
                            .clone()
                            .try_get_matches_from([format!("--{long}"), v.to_string()])
                            .is_ok()
                    })
                    .map(|v| v.to_string())
                    .collect()
            }
        };
        out.push(Flag {
            command: path.clone(),
            long: format!("--{long}"),
            takes_value,
            sane,
        });
    }
    for sub in cmd.get_subcommands() {
        walk(sub, format!("{path} {}", sub.get_name()), out);
    }
}

/// `portlab ARGS` for any subcommand, parsed by clap: `run` goes on as [`run_flags`] does
/// (without a file); the other subcommands are parsed only (running them reads files or the
/// host). Clap's own refusals are errors.
pub fn command_line(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("portlab".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Run(run) => resolved(&run.over(Scenario::default())).map(drop),
        _ => Ok(()),
    }
}

impl Mutator {
    /// A mutator whose every choice follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `seed` with 1 to 8 edits: a dictionary fragment inserted or overwriting, bytes deleted,
    /// a byte flipped, or a number replaced by a boundary.
    pub fn bytes(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for _ in 0..1 + self.below(8) {
            let at = self.below(b.len() + 1);
            let word = DICTIONARY[self.below(DICTIONARY.len())].as_bytes();
            match self.below(5) {
                0 => b.splice(at..at, word.iter().copied()).for_each(drop),
                1 => {
                    let end = (at + word.len()).min(b.len());
                    b.splice(at..end, word.iter().copied()).for_each(drop);
                }
                2 => {
                    let end = (at + 1 + self.below(16)).min(b.len());
                    b.drain(at.min(end)..end);
                }
                3 if at < b.len() => b[at] ^= 1 << self.below(8),
                _ => {
                    // The next run of digits after `at` becomes a boundary number.
                    if let Some(start) = b[at.min(b.len())..].iter().position(u8::is_ascii_digit) {
                        let start = at + start;
                        let end = b[start..]
                            .iter()
                            .position(|c| !c.is_ascii_digit() && *c != b'.')
                            .map_or(b.len(), |e| start + e);
                        b.splice(start..end, word.iter().copied()).for_each(drop);
                    }
                }
            }
        }
        b
    }

    /// 1 to 6 random `run` flags of [`flags`], each with one of its sane values (half the
    /// time), a dictionary fragment, or a sane value mutated.
    pub fn flags(&mut self) -> Vec<String> {
        self.flags_of("run")
    }

    /// A random subcommand of [`flags`] and 1 to 6 of its flags, as [`Mutator::flags`] makes
    /// them: the argument list [`command_line`] takes.
    pub fn command_line(&mut self) -> Vec<String> {
        let all = flags();
        let command = all[self.below(all.len())].command.clone();
        let mut args: Vec<String> = command.split(' ').map(str::to_string).collect();
        args.extend(self.flags_of(&command));
        args
    }

    fn flags_of(&mut self, command: &str) -> Vec<String> {
        let mine: Vec<&Flag> = flags().iter().filter(|f| f.command == command).collect();
        let mut args = Vec::new();
        if mine.is_empty() {
            return args;
        }
        for _ in 0..1 + self.below(6) {
            let flag = mine[self.below(mine.len())];
            args.push(flag.long.clone());
            if !flag.takes_value {
                continue;
            }
            let sane = match flag.sane.len() {
                0 => DICTIONARY[self.below(DICTIONARY.len())],
                n => flag.sane[self.below(n)].as_str(),
            };
            let value = match self.below(4) {
                0 => DICTIONARY[self.below(DICTIONARY.len())].to_string(),
                1 => String::from_utf8_lossy(&self.bytes(sane.as_bytes())).into_owned(),
                _ => sane.to_string(),
            };
            args.push(value);
        }
        args
    }

    /// `summary` (a summary.json) with 1 to 6 of its numbers set to boundary values, or, one
    /// time in four, its bytes mutated.
    pub fn summary(&mut self, summary: &serde_json::Value) -> Vec<u8> {
        let mut v = summary.clone();
        if self.below(4) == 0 {
            return self.bytes(v.to_string().as_bytes());
        }
        let mut leaves = Vec::new();
        numbers(&v, &mut Vec::new(), &mut leaves);
        // Integers stay integers (a float there is only a type error); floats get extremes.
        let ints = [0, 1, u64::from(u32::MAX), u64::MAX];
        let floats = [1e300, -1e300, 0.0, -1.0, 5e-324, 1.8e19, 0.5];
        for _ in 0..1 + self.below(6) {
            if leaves.is_empty() {
                break;
            }
            let path = &leaves[self.below(leaves.len())];
            let mut at = &mut v;
            for k in path {
                at = match k {
                    Key::Field(f) => &mut at[f.as_str()],
                    Key::Index(i) => &mut at[*i],
                };
            }
            *at = if at.is_u64() || at.is_i64() {
                serde_json::json!(ints[self.below(ints.len())])
            } else {
                serde_json::json!(floats[self.below(floats.len())])
            };
        }
        v.to_string().into_bytes()
    }
}

impl Mutator {
    /// A results directory's files (`RESULTS_FILES`' names and contents) with one or two of
    /// them mutated: summary.json as [`Mutator::summary`] does, timeline.csv and plan.toml as
    /// bytes (numbers become boundaries: 18446744073709551615, inf, 1e300 ...), and
    /// histograms.hlog as bytes or with a histogram line whose header claims other bounds or
    /// payload (the decoder allocates what a header claims).
    pub fn results(&mut self, files: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(n, b)| (n.to_string(), b.clone()))
            .collect();
        for _ in 0..1 + self.below(2) {
            let i = self.below(out.len());
            let (name, bytes) = &out[i];
            let new = match name.as_str() {
                "summary.json" => match serde_json::from_slice(bytes) {
                    Ok(v) => self.summary(&v),
                    Err(_) => self.bytes(bytes),
                },
                "histograms.hlog" if self.below(3) == 0 => {
                    let mut b = bytes.clone();
                    b.extend(self.hlog_line());
                    b
                }
                _ => self.bytes(bytes),
            };
            out[i].1 = new;
        }
        out
    }

    /// A histograms.hlog line whose histogram is a bare V2 header with boundary claims.
    fn hlog_line(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let sigfigs = [0u32, 2, 3, 5, 6, u32::MAX];
        let highs = [0u64, 2, 3_600_000_000, 1 << 62, u64::MAX];
        let payloads = [0u32, 8, 1 << 20, u32::MAX];
        let mut b = Vec::new();
        b.extend(0x1c84_9313u32.to_be_bytes());
        b.extend(payloads[self.below(payloads.len())].to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(sigfigs[self.below(sigfigs.len())].to_be_bytes());
        b.extend(1u64.to_be_bytes());
        b.extend(highs[self.below(highs.len())].to_be_bytes());
        b.extend(1f64.to_be_bytes());
        let enc = base64::engine::general_purpose::STANDARD.encode(&b);
        format!("Tag=connect,0.000,1.000,0.000,{enc}\n").into_bytes()
    }
}

#[derive(Clone)]
enum Key {
    Field(String),
    Index(usize),
}

fn numbers(v: &serde_json::Value, path: &mut Vec<Key>, out: &mut Vec<Vec<Key>>) {
    match v {
        serde_json::Value::Number(_) => out.push(path.clone()),
        serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
            path.push(Key::Index(i));
            numbers(x, path, out);
            path.pop();
        }),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            path.push(Key::Field(k.clone()));
            numbers(x, path, out);
            path.pop();
        }),
        _ => {}
    }
}
