//! One direction (issue 11): no top-level module of src/ imports a module that imports it,
//! directly or through others. A module's imports are its `crate::NAME` paths (including
//! `crate::{a, b}` groups) in code, outside comments and its `#[cfg(test)]` part; a cycle
//! is reported with the file and line of each edge in it.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// Every .rs file of module `m`, test-only files left out.
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
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("tests"))
            {
                out.push(p);
            }
        }
    }
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
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
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
                        edges
                            .entry(x)
                            .or_default()
                            .push(format!("{}:{}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    g
}

/// The strongly connected groups of more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeMap<String, Vec<String>>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g[v].keys() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.len() > 10, "read too few modules: {:?}", g.keys());
    let found = cycles(&g);
    let mut why = String::new();
    for comp in &found {
        why.push_str(&format!("cycle {comp:?}:\n"));
        for a in comp {
            for (b, at) in &g[a] {
                if comp.contains(b) {
                    why.push_str(&format!("  {a} -> {b}: {}\n", at.join(", ")));
                }
            }
        }
    }
    assert!(found.is_empty(), "{why}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    // a -> b -> c -> a, and d -> a outside it.
    let mut g: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), vec![format!("{a}.rs:1")]);
        g.entry(b.into()).or_default();
    }
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    g.get_mut("c").unwrap().clear();
    assert!(cycles(&g).is_empty());
}
