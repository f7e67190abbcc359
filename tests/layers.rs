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
    ("schedule", &["graph", "span"]),
    ("codegen", &["graph", "schedule", "opt", "scalar"]),
    (
        "pipeline",
        &["check", "graph", "unroll", "autodiff", "opt", "schedule"],
    ),
    (
        "runtime",
        &["graph", "interp", "autodiff", "codegen", "schedule"],
    ),
    ("aot", &["graph", "autodiff", "codegen", "runtime"]),
    ("data", &["graph", "runtime", "rng"]),
    ("train", &["graph", "runtime"]),
    (
        "bench",
        &[
            "graph", "autodiff", "pipeline", "runtime", "data", "schedule",
        ],
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
            "schedule",
            "pipeline",
            "runtime",
            "codegen",
            "aot",
            "data",
            "train",
            "bench",
            "rng",
            "scalar",
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

/// The leading module segments of a path written after `crate::`/`super::`
/// (`opt::simplify` → `[opt, simplify]`; stops at a type, a brace or `*`).
fn segments(rest: &str) -> Vec<String> {
    rest.split("::")
        .map(|s| {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty() && s.chars().next().unwrap().is_lowercase())
        .collect()
}

/// The items of a brace group `{a, b::c, d::{e}}` that `text` starts with:
/// each item's text, split at top-level commas.
fn brace_items(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 1usize);
    for (k, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(&text[start..k]);
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(&text[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    items
}

/// Every module path a file names, as `crate::a::b`, `super::b` or inside a
/// brace group (`crate::{a, b}`, over several lines too), resolved.
fn references(module: &[String], is_mod_file: bool, text: &str) -> BTreeSet<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", 0usize), ("super::", 1)] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let paths: Vec<Vec<String>> = if rest.starts_with('{') {
                brace_items(rest).into_iter().map(segments).collect()
            } else {
                vec![segments(rest)]
            };
            for path in paths.into_iter().filter(|p| !p.is_empty()) {
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

#[test]
fn braced_and_multi_line_imports_are_read() {
    let m = vec!["graph".to_string(), "op".to_string()];
    let r = references(
        &m,
        false,
        "use crate::{opt, unroll::unroll};\nuse super::{\n  dim::Type,\n  step,\n};\nuse crate::x::{a::{b}, c};",
    );
    let want: BTreeSet<Vec<String>> = [
        vec!["opt"],
        vec!["unroll", "unroll"],
        vec!["graph", "dim"],
        vec!["graph", "step"],
        vec!["x"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    assert_eq!(r, want);
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
