//! The module graph: data flows down the pipeline, never back up. Every
//! `crate::` and `super::` path in `src/` is read, and each top-level module
//! may name only the modules this table allows; inside a module, submodules
//! import each other without circles.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Each top-level module and what it may import. Foundations first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("span", &[]),
    ("rng", &[]),
    ("scalar", &[]),
    ("diagnostic", &["span"]),
    ("syntax", &["span", "diagnostic", "scalar"]),
    ("graph", &["span", "scalar"]),
    (
        "check",
        &["span", "diagnostic", "syntax", "graph", "scalar"],
    ),
    ("unroll", &["graph"]),
    ("autodiff", &["graph"]),
    ("opt", &["graph", "scalar"]),
    ("interp", &["graph"]),
    ("derivation", &["graph", "autodiff", "scalar"]),
    (
        "pipeline",
        &[
            "span",
            "diagnostic",
            "syntax",
            "check",
            "graph",
            "unroll",
            "autodiff",
            "opt",
        ],
    ),
    ("runtime", &["graph", "interp", "autodiff"]),
    ("data", &["graph", "runtime", "rng"]),
    (
        "train",
        &["graph", "runtime", "autodiff", "interp", "rng", "data"],
    ),
    (
        "cli",
        &[
            "span",
            "diagnostic",
            "syntax",
            "check",
            "graph",
            "unroll",
            "autodiff",
            "opt",
            "interp",
            "derivation",
            "pipeline",
            "runtime",
            "data",
            "train",
            "rng",
        ],
    ),
];

/// The module path of a source file: `src/runtime/forward.rs` → `runtime::forward`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every module path a file names, as `crate::a::b` or `super::b`, resolved.
fn references(module: &[String], is_mod_file: bool, text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (prefix, base) in [("crate::", 0usize), ("super::", 1)] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let path: Vec<String> = rest
                    .split("::")
                    .map(|s| {
                        s.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty() && s.chars().next().unwrap().is_lowercase())
                    .collect();
                let mut full: Vec<String> = if base == 0 {
                    vec![]
                } else {
                    // `super` of a mod.rs file is its parent; of a leaf file, its directory.
                    let keep = module.len().saturating_sub(if is_mod_file { 2 } else { 1 });
                    module[..keep].to_vec()
                };
                full.extend(path);
                if !full.is_empty() {
                    out.insert(full);
                }
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_the_stages_below_them_and_have_no_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    // Inside each top-level module: file-level module → modules it names.
    let mut inner: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_of(rel);
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        let top = module[0].clone();
        let Some(ok) = allowed.get(top.as_str()) else {
            problems.push(format!(
                "module `{top}` is not in the layer table of tests/layers.rs"
            ));
            continue;
        };
        let is_mod = rel.file_name().is_some_and(|n| n == "mod.rs");
        let text = fs::read_to_string(f).unwrap();
        for r in references(&module, is_mod, &text) {
            let target = &r[0];
            if *target != top {
                if !ok.contains(target.as_str()) && allowed.contains_key(target.as_str()) {
                    problems.push(format!("{}: `{top}` imports `{target}`", rel.display()));
                }
            } else if module.len() > 1 && r.len() > 1 && r[1] != module[1] {
                inner
                    .entry(top.clone())
                    .or_default()
                    .entry(module[1].clone())
                    .or_default()
                    .insert(r[1].clone());
            }
        }
    }
    // Circles between the submodules of one module.
    for (top, graph) in &inner {
        for start in graph.keys() {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            while let Some((m, path)) = stack.pop() {
                for next in graph.get(&m).into_iter().flatten() {
                    if next == start {
                        problems.push(format!("circle in `{top}`: {} → {start}", path.join(" → ")));
                    } else if !path.contains(next) && path.len() < 16 {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
