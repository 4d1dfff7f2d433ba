//! One direction: src/'s top-level modules stand in a declared order of layers, bottom to
//! top ([`LAYERS`]), and a module imports only from the layers below its own; main.rs stands
//! above them all. A module's imports are its `crate::NAME` paths (including `crate::{a, b}`
//! groups) in code outside comments, its unit tests included; an import that goes upward
//! is reported with its file and line. A new module must be given its place in the list.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// src/'s top-level modules, bottom to top. A module may import any module of a lower
/// layer, none of its own layer and none above.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "OS helpers, what portlab says, the shard arithmetic, main's early signal block",
        &["sys", "say", "shard", "early_linux"],
    ),
    ("bounded reads of the files a user names", &["input"]),
    ("the plan: scenario files and flags, resolved", &["plan"]),
    (
        "pure arithmetic, and the built-in scenarios",
        &["model", "catalog"],
    ),
    (
        "what a run measures and the kernel's view",
        &["collect", "observe"],
    ),
    ("the client: threads, pacer, workers", &["runner"]),
    (
        "the lab's namespaces and the embedded server",
        &["lab", "server"],
    ),
    (
        "the results: summary, verdict, merge, comparison, the results directory",
        &["results"],
    ),
    ("the renderings of results, one per format", &["report"]),
    ("the user's own client (--client-exec)", &["client"]),
    ("one run end to end", &["engine"]),
    (
        "what inspect, suite and watch do",
        &["inspect", "suite", "watch"],
    ),
    ("the commands and the command line", &["cmd"]),
    ("fuzzing entry points over the commands' flags", &["fuzz"]),
];

/// Upward imports not fixed yet, each (from, to, the one file where it may occur). The test
/// fails when one no longer occurs, so that the entry goes too.
const NOT_YET_FIXED: &[(&str, &str, &str)] = &[];

/// The top-level modules: src/NAME.rs and src/NAME/.
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let m = match name.strip_suffix(".rs") {
                Some(stem) => stem.to_string(),
                None if e.path().is_dir() => name,
                None => return None,
            };
            (m != "lib" && m != "main").then_some(m)
        })
        .collect()
}

/// Every .rs file of module `m`, its test files included.
fn files(src: &Path, m: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src.join(format!("{m}.rs"));
    if file.exists() {
        out.push(file);
    }
    let mut dirs = vec![src.join(m)];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// module -> (imported module -> where).
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mods = modules(src);
    let single = Regex::new(r"crate::(\w+)").unwrap();
    let group = Regex::new(r"crate::\{([^}]*)").unwrap();
    let first = Regex::new(r"(?:^|,)\s*(\w+)").unwrap();
    let mut g = BTreeMap::new();
    for m in &mods {
        let edges: &mut BTreeMap<String, Vec<String>> = g.entry(m.clone()).or_default();
        for path in files(src, m) {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let line = line.split("//").next().unwrap_or("");
                let mut found: Vec<String> = single
                    .captures_iter(line)
                    .map(|c| c[1].to_string())
                    .collect();
                for c in group.captures_iter(line) {
                    found.extend(first.captures_iter(&c[1]).map(|x| x[1].to_string()));
                }
                for x in found {
                    if &x != m && mods.contains(&x) {
                        edges.entry(x).or_default().push(format!(
                            "{}:{}",
                            relative(src, &path),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    g
}

/// `path` from the checkout's root (src/...).
fn relative(src: &Path, path: &Path) -> String {
    let root = src.parent().unwrap_or(src);
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Each module's layer, 0 at the bottom.
fn rank() -> BTreeMap<&'static str, usize> {
    let mut rank = BTreeMap::new();
    for (i, (_, mods)) in LAYERS.iter().enumerate() {
        for m in *mods {
            assert!(rank.insert(*m, i).is_none(), "{m} is in two layers");
        }
    }
    rank
}

/// The imports of `g` that do not go to a lower layer: (from, to, where).
fn upward(
    g: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    rank: &BTreeMap<&str, usize>,
) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for (a, edges) in g {
        for (b, at) in edges {
            let (Some(ra), Some(rb)) = (rank.get(a.as_str()), rank.get(b.as_str())) else {
                continue;
            };
            if rb >= ra {
                out.push((a.clone(), b.clone(), at.clone()));
            }
        }
    }
    out
}

#[test]
fn every_module_has_its_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = modules(&src);
    let listed: BTreeSet<String> = rank().keys().map(|m| m.to_string()).collect();
    let unplaced: Vec<_> = found.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        unplaced.is_empty(),
        "give these modules their layer in LAYERS (tests/layers.rs): {unplaced:?}"
    );
    assert!(
        gone.is_empty(),
        "LAYERS names modules src/ no longer has: {gone:?}"
    );
}

#[test]
fn every_module_imports_only_from_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.len() > 10, "read too few modules: {:?}", g.keys());
    let rank = rank();
    let name = |m: &str| rank.get(m).map_or("?", |&i| LAYERS[i].0);
    let mut why = String::new();
    let mut excused = BTreeSet::new();
    for (a, b, at) in upward(&g, &rank) {
        let mut at = at;
        if let Some(k) = NOT_YET_FIXED
            .iter()
            .position(|(x, y, _)| *x == a && *y == b)
        {
            let file = NOT_YET_FIXED[k].2;
            at.retain(|w| !w.starts_with(&format!("{file}:")));
            excused.insert(k);
            if at.is_empty() {
                continue;
            }
        }
        why.push_str(&format!(
            "{a} ({}) imports {b} ({}): {}\n",
            name(&a),
            name(&b),
            at.join(", ")
        ));
    }
    assert!(
        why.is_empty(),
        "imports that do not go down (move the function to the lower module):\n{why}"
    );
    let stale: Vec<_> = (0..NOT_YET_FIXED.len())
        .filter(|k| !excused.contains(k))
        .map(|k| NOT_YET_FIXED[k])
        .collect();
    assert!(
        stale.is_empty(),
        "fixed, drop them from NOT_YET_FIXED: {stale:?}"
    );
}

#[test]
fn the_layer_check_finds_an_upward_and_a_sideways_import() {
    let mut g: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut edge = |a: &str, b: &str| {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), vec![format!("src/{a}.rs:1")]);
    };
    edge("report", "plan"); // down: fine
    edge("plan", "report"); // up
    edge("lab", "server"); // same layer
    let rank = rank();
    let found: Vec<(String, String)> = upward(&g, &rank)
        .into_iter()
        .map(|(a, b, _)| (a, b))
        .collect();
    assert_eq!(
        found,
        vec![
            ("lab".to_string(), "server".to_string()),
            ("plan".to_string(), "report".to_string())
        ]
    );
}
