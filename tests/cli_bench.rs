//! `cellc bench` as the contract says: one JSON object with the required
//! keys, text with the time, throughput and GFLOP/s lines, and clear errors.
//! No timing is asserted: performance is measured, never tested.

mod common;

use common::{cellc, model_path, scratch, stderr};
use std::collections::BTreeMap;

/// A JSON value, as much of JSON as the report uses.
#[derive(Debug, PartialEq)]
enum Json {
    Number(f64),
    Str(String),
    Null,
    Object(BTreeMap<String, Json>),
}

/// Parses one JSON object (numbers, strings, null and nested objects), and
/// nothing after it but white space.
fn parse_object(text: &str) -> Json {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let v = value(&chars, &mut i);
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    assert_eq!(i, chars.len(), "text after the object: {text}");
    assert!(matches!(v, Json::Object(_)), "not an object: {text}");
    v
}

fn skip_ws(c: &[char], i: &mut usize) {
    while *i < c.len() && c[*i].is_whitespace() {
        *i += 1;
    }
}

fn value(c: &[char], i: &mut usize) -> Json {
    skip_ws(c, i);
    match c[*i] {
        '{' => {
            *i += 1;
            let mut map = BTreeMap::new();
            skip_ws(c, i);
            if c[*i] == '}' {
                *i += 1;
                return Json::Object(map);
            }
            loop {
                skip_ws(c, i);
                let Json::Str(key) = value(c, i) else {
                    panic!("a key is not a string at {i}")
                };
                skip_ws(c, i);
                assert_eq!(c[*i], ':', "at {i}");
                *i += 1;
                let v = value(c, i);
                assert!(map.insert(key.clone(), v).is_none(), "key {key} twice");
                skip_ws(c, i);
                match c[*i] {
                    ',' => *i += 1,
                    '}' => {
                        *i += 1;
                        return Json::Object(map);
                    }
                    x => panic!("unexpected {x:?} at {i}"),
                }
            }
        }
        '"' => {
            *i += 1;
            let mut s = String::new();
            while c[*i] != '"' {
                if c[*i] == '\\' {
                    *i += 1;
                }
                s.push(c[*i]);
                *i += 1;
            }
            *i += 1;
            Json::Str(s)
        }
        'n' => {
            let word: String = c[*i..*i + 4].iter().collect();
            assert_eq!(word, "null");
            *i += 4;
            Json::Null
        }
        _ => {
            let start = *i;
            while *i < c.len() && matches!(c[*i], '0'..='9' | '-' | '+' | '.' | 'e' | 'E') {
                *i += 1;
            }
            let s: String = c[start..*i].iter().collect();
            Json::Number(s.parse().unwrap_or_else(|_| panic!("bad number {s:?}")))
        }
    }
}

fn lstm_bench(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let lstm = model_path("lstm");
    let mut args = vec![
        "bench",
        lstm.as_str(),
        "-D",
        "H=8",
        "-D",
        "X=4",
        "--seq",
        "3",
        "--batch",
        "2",
        "--repeats",
        "2",
    ];
    args.extend_from_slice(extra);
    cellc(dir, &args)
}

#[test]
fn json_is_one_object_with_the_contract_keys() {
    let dir = scratch("bench-json");
    for mode in ["fwd", "fwdbwd"] {
        let o = lstm_bench(&dir, &["--mode", mode, "--json"]);
        let out = String::from_utf8(o.stdout.clone()).unwrap();
        assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
        assert_eq!(out.lines().count(), 1, "one line: {out}");
        let Json::Object(map) = parse_object(&out) else {
            unreachable!()
        };
        let number = |k: &str| match map.get(k) {
            Some(Json::Number(v)) => *v,
            other => panic!("`{k}` is not a number: {other:?} in {out}"),
        };
        for k in [
            "median_ms",
            "min_ms",
            "mean_ms",
            "gflops",
            "compile_ms",
            "steps_per_s",
        ] {
            assert!(number(k) >= 0.0, "{k} in {out}");
        }
        assert!(number("min_ms") <= number("median_ms"), "{out}");
        assert_eq!(number("seq"), 3.0);
        assert_eq!(number("batch"), 2.0);
        assert_eq!(number("threads"), 1.0);
        assert_eq!(number("calls"), 2.0, "--repeats 2");
        assert_eq!(number("H"), 8.0, "the bound dimensions at the top level");
        assert_eq!(number("X"), 4.0);
        // lstm: four [H, H+X] products per step; backward twice the forward.
        let forward = 4.0 * 2.0 * 8.0 * 12.0 * 2.0 * 3.0;
        let factor = if mode == "fwd" { 1.0 } else { 3.0 };
        assert_eq!(number("flops_per_call"), factor * forward, "{out}");
        assert_eq!(map.get("mode"), Some(&Json::Str(mode.into())));
        assert_eq!(map.get("cell"), Some(&Json::Str("lstm".into())));
        assert_eq!(map.get("backend"), Some(&Json::Str("jit".into()))); // the default back end
        assert_eq!(map.get("dtype"), Some(&Json::Str("f32".into())));
        let Some(Json::Object(dims)) = map.get("dims") else {
            panic!("no dims object: {out}")
        };
        assert_eq!(dims.get("H"), Some(&Json::Number(8.0)));
        assert_eq!(dims.get("X"), Some(&Json::Number(4.0)));
    }
}

#[test]
fn f64_and_threads_are_recorded() {
    let dir = scratch("bench-f64");
    let o = lstm_bench(&dir, &["--dtype", "f64", "--threads", "2", "--json"]);
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.contains("\"dtype\":\"f64\""), "{out}");
    assert!(out.contains("\"threads\":2"), "{out}");
}

#[test]
fn text_has_the_time_throughput_and_gflops_lines() {
    let dir = scratch("bench-text");
    let o = lstm_bench(&dir, &["--mode", "fwdbwd"]);
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = |start: &str| {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` line in\n{out}"))
            .to_string()
    };
    let time = line("time per call");
    assert!(time.contains("median") && time.contains("min") && time.contains(" ms"));
    assert!(line("throughput").contains("steps·batch/s"));
    assert!(line("matrix products").contains("GFLOP/s"));
    assert!(line("compile").contains(" ms"));
    assert!(line("bench lstm").contains("fwdbwd"));
}

#[test]
fn a_missing_dimension_is_named() {
    let dir = scratch("bench-missing");
    let lstm = model_path("lstm");
    let o = cellc(
        &dir,
        &["bench", &lstm, "-D", "H=8", "--seq", "3", "--batch", "2"],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("-D X=SIZE"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_counts_are_refused() {
    let dir = scratch("bench-counts");
    for (flag, value) in [
        ("--threads", "0"),
        ("--repeats", "0"),
        ("--seq", "0"),
        ("--batch", "0"),
        ("--threads", "-1"),
    ] {
        let o = lstm_bench(&dir, &[flag, value]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {e}");
        assert!(!e.contains("panicked"), "{e}");
        assert!(
            e.contains(flag) || e.contains("'-1'") || e.contains("would be 0"),
            "{flag} {value}: {e}"
        );
    }
    // --seq and --batch are required, as the contract writes them.
    let lstm = model_path("lstm");
    let o = cellc(&dir, &["bench", &lstm, "-D", "H=8", "-D", "X=4"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--seq"), "{}", stderr(&o));
}

#[test]
fn a_cell_with_an_error_is_reported_as_check_does() {
    let dir = scratch("bench-bad-cell");
    let bad = dir.join("bad.cell");
    std::fs::write(
        &bad,
        "cell bad(x: [X]) {\n  state h: [H]\n  h_t = y\n  output h\n}\n",
    )
    .unwrap();
    let o = cellc(
        &dir,
        &[
            "bench",
            bad.to_str().unwrap(),
            "-D",
            "H=2",
            "-D",
            "X=2",
            "--seq",
            "2",
            "--batch",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("bad.cell:3:"), "{e}");
}

#[test]
fn a_dimension_named_like_a_key_is_only_in_dims() {
    let dir = scratch("bench-collide");
    let cell = dir.join("collide.cell");
    std::fs::write(
        &cell,
        "cell collide(x: [batch]) {\n  state h: [H] = 0\n  param W: [H, batch], U: [H, H]\n  h_t = tanh(W @ x_t + U @ h_{t-1})\n  output h\n}\n",
    )
    .unwrap();
    let o = cellc(
        &dir,
        &[
            "bench",
            cell.to_str().unwrap(),
            "-D",
            "H=4",
            "-D",
            "batch=3",
            "--seq",
            "2",
            "--batch",
            "5",
            "--repeats",
            "1",
            "--json",
        ],
    );
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let Json::Object(map) = parse_object(&out) else {
        unreachable!()
    };
    // `batch` is the run's batch; the dimension `batch` is in `dims` only.
    assert_eq!(map.get("batch"), Some(&Json::Number(5.0)), "{out}");
    assert_eq!(map.get("H"), Some(&Json::Number(4.0)), "{out}");
    let Some(Json::Object(dims)) = map.get("dims") else {
        panic!("{out}")
    };
    assert_eq!(dims.get("batch"), Some(&Json::Number(3.0)), "{out}");
}

#[test]
fn a_bench_too_large_for_the_memory_is_refused_before_it_runs() {
    let dir = scratch("bench-memory");
    let o = lstm_bench(&dir, &["--max-memory", "1M"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("this bench needs about") && e.contains("state histories"),
        "{e}"
    );
    assert!(o.stdout.is_empty());
}
