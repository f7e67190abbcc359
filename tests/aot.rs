//! `cellc compile`: the object and header, used from C as a user would,
//! compute what the interpreter computes, forward and backward.
//!
//! Each case compiles a cell with the `cellc` binary, writes a C program
//! against the generated header (filling each struct field by its name),
//! builds it with gcc (`-std=c99 -Wall -Wextra -Werror`) against
//! `libcellc_rt.a`, runs it on a problem's arrays (raw little-endian files)
//! and compares every output, final state and gradient with the
//! interpreter's: every bundled model in f64 with lengths (one of them 0),
//! reverse and given initial states; f32 at odd sizes and B = 1; T = 0; a
//! cell not in `models/`. The bundled C example (`examples/c/`) is built
//! with its Makefile and its checksums checked the same way. The object
//! exports its four entry points and nothing else; bad calls return codes.

mod common;

use cellc::aot::names::distinct;
use cellc::graph::op::Real;
use cellc::graph::step::StepGraph;
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{Cotangents, backward};
use cellc::runtime::forward::forward;
use cellc::runtime::types::Sequences;
use common::{Problem, Scratch, load, model_names, model_path, scratch};
use ndarray::ArrayD;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding a fresh `libcellc_rt.a`: built by cargo into a
/// target directory of its own (the test's own build holds the main one's
/// lock), once per test binary.
fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("aot-runtime");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--offline", "-p", "cellc-rt"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building libcellc_rt.a failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = target.join("release");
        assert!(dir.join("libcellc_rt.a").is_file());
        dir
    })
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cellc compile` of `cell` into `dir` as `cell.o` and `cell.h`.
fn compile(dir: &Path, cell: &Path, dims: &[(String, usize)], batch: usize, dtype: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellc"));
    cmd.arg("compile").arg(cell);
    for (n, v) in dims {
        cmd.arg("-D").arg(format!("{n}={v}"));
    }
    cmd.args([
        "--batch",
        &batch.to_string(),
        "--dtype",
        dtype,
        "--prefix",
        "cell",
    ])
    .args(["-o", "cell.o", "--header", "cell.h"])
    .current_dir(dir);
    run(&mut cmd, "cellc compile");
}

/// Builds `main.c` in `dir` against `cell.o`, warnings as errors.
fn build(dir: &Path) {
    run(
        Command::new("gcc")
            .args([
                "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "main.c", "cell.o",
            ])
            .arg("-L")
            .arg(runtime_dir())
            .args(["-lcellc_rt", "-lm", "-lpthread", "-ldl", "-o", "main"])
            .current_dir(dir),
        "gcc",
    );
}

/// A C program for `step`'s header: reads every array from `NAME.bin`,
/// runs forward then backward, writes every result to `NAME.out`.
fn harness(step: &StepGraph, give_init: bool, lengths: bool, reverse: bool) -> String {
    let ids = |names: Vec<&str>| distinct(&names);
    let params = ids(step.params.iter().map(|p| p.name.as_str()).collect());
    let inputs = ids(step.inputs.iter().map(|p| p.name.as_str()).collect());
    let states = ids(step.states.iter().map(|p| p.name.as_str()).collect());
    let outputs = ids(step.outputs.iter().map(|p| p.name.as_str()).collect());
    let mut c = String::from(
        r#"#include "cell.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *load(const char *name, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s.bin", name);
    FILE *f = fopen(path, "rb");
    void *p = malloc(n * sizeof(cell_real) + 1);
    if (!f || !p || fread(p, sizeof(cell_real), n, f) != n) { fprintf(stderr, "cannot read %s\n", path); exit(3); }
    fclose(f);
    return p;
}

static void save(const char *name, const void *p, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s.out", name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, sizeof(cell_real), n, f) != n) { fprintf(stderr, "cannot write %s\n", path); exit(3); }
    fclose(f);
}

static cell_real *fresh(size_t n) {
    cell_real *p = malloc(n * sizeof(cell_real) + 1);
    if (!p) exit(3);
    memset(p, 0xff, n * sizeof(cell_real)); /* NaN: what is not written shows */
    return p;
}

int main(int argc, char **argv) {
    if (argc != 2) return 3;
    size_t T = (size_t)atol(argv[1]);
    cell_params p;
    cell_param_grads dp;
    cell_inputs x;
    cell_input_grads dx;
    cell_states init, dlast;
    cell_state_values last, dinit;
    cell_outputs y, y2;
    cell_output_grads dy;
"#,
    );
    for (id, sig) in params.iter().zip(&step.params) {
        let size = format!("CELL_PARAM_{id}_SIZE");
        let _ = writeln!(c, "    p.{id} = load(\"param_{}\", {size});", sig.name);
        let _ = writeln!(c, "    dp.{id} = fresh({size});");
    }
    for (id, sig) in inputs.iter().zip(&step.inputs) {
        let size = format!("T * CELL_INPUT_{id}_SIZE");
        let _ = writeln!(c, "    x.{id} = load(\"input_{}\", {size});", sig.name);
        let _ = writeln!(c, "    dx.{id} = fresh({size});");
    }
    for (id, sig) in states.iter().zip(&step.states) {
        let size = format!("CELL_STATE_{id}_SIZE");
        if give_init {
            let _ = writeln!(c, "    init.{id} = load(\"init_{}\", {size});", sig.name);
        } else {
            let _ = writeln!(c, "    init.{id} = NULL;");
        }
        let _ = writeln!(c, "    dlast.{id} = load(\"dlast_{}\", {size});", sig.name);
        let _ = writeln!(c, "    last.{id} = fresh({size});");
        let _ = writeln!(c, "    dinit.{id} = fresh({size});");
    }
    for (id, sig) in outputs.iter().zip(&step.outputs) {
        let size = format!("T * CELL_OUTPUT_{id}_SIZE");
        let _ = writeln!(c, "    y.{id} = fresh({size});");
        let _ = writeln!(c, "    y2.{id} = fresh({size});");
        let _ = writeln!(c, "    dy.{id} = load(\"dy_{}\", {size});", sig.name);
    }
    let lengths_expr = if lengths {
        "    int32_t lengths[CELL_BATCH];\n    FILE *lf = fopen(\"lengths.bin\", \"rb\");\n    if (!lf || fread(lengths, 4, CELL_BATCH, lf) != CELL_BATCH) return 3;\n    fclose(lf);\n"
    } else {
        "    int32_t *lengths = NULL;\n"
    };
    c.push_str(lengths_expr);
    let _ = write!(
        c,
        r#"    size_t nf = cell_forward_workspace(T), nb = cell_backward_workspace(T);
    void *ws = malloc(nf > nb ? nf : nb);
    if (!ws) return 3;
    int rc = cell_forward(T, &p, &x, &init, lengths, {rev}, &y, &last, ws, nf);
    if (rc != CELL_OK) {{ printf("forward: %d\n", rc); return 4; }}
    rc = cell_backward(T, &p, &x, &init, lengths, {rev}, &dy, &dlast, &dp, &dx, &dinit, &y2, ws, nb);
    if (rc != CELL_OK) {{ printf("backward: %d\n", rc); return 4; }}
"#,
        rev = reverse as i32
    );
    for (id, sig) in params.iter().zip(&step.params) {
        let _ = writeln!(
            c,
            "    save(\"d{}\", dp.{id}, CELL_PARAM_{id}_SIZE);",
            sig.name
        );
    }
    for (id, sig) in inputs.iter().zip(&step.inputs) {
        let _ = writeln!(
            c,
            "    save(\"d{}\", dx.{id}, T * CELL_INPUT_{id}_SIZE);",
            sig.name
        );
    }
    for (id, sig) in states.iter().zip(&step.states) {
        let _ = writeln!(
            c,
            "    save(\"{0}.last\", last.{id}, CELL_STATE_{id}_SIZE);\n    save(\"d{0}.init\", dinit.{id}, CELL_STATE_{id}_SIZE);",
            sig.name
        );
    }
    for (id, sig) in outputs.iter().zip(&step.outputs) {
        let _ = writeln!(
            c,
            "    save(\"output {0}\", y.{id}, T * CELL_OUTPUT_{id}_SIZE);\n    save(\"backward's output {0}\", y2.{id}, T * CELL_OUTPUT_{id}_SIZE);",
            sig.name
        );
    }
    c.push_str("    return 0;\n}\n");
    c
}

fn write_raw<F: Real>(path: &Path, a: impl Iterator<Item = f64>) {
    let mut bytes = Vec::new();
    for v in a {
        let v = F::from_f64(v).unwrap();
        if size_of::<F>() == 4 {
            bytes.extend(v.to_f32().unwrap().to_le_bytes());
        } else {
            bytes.extend(v.to_f64().unwrap().to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn read_raw<F: Real>(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if size_of::<F>() == 4 {
        bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else {
        bytes
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

fn cast<F: Real>(a: &ArrayD<f64>) -> ArrayD<F> {
    a.mapv(|v| F::from_f64(v).unwrap())
}

/// The problem in `F`, rounded as the C program reads it.
fn in_type<F: Real>(p: &Problem) -> (Sequences<F>, Cotangents<F>) {
    let s = &p.seq;
    let seq = Sequences {
        params: s.params.iter().map(cast).collect(),
        inputs: s
            .inputs
            .iter()
            .map(|x| cast(&x.clone().into_dyn()).into_dimensionality().unwrap())
            .collect(),
        init: s
            .init
            .iter()
            .map(|i| {
                i.as_ref()
                    .map(|a| cast(&a.clone().into_dyn()).into_dimensionality().unwrap())
            })
            .collect(),
        lengths: s.lengths.clone(),
        reverse: s.reverse,
        bindings: s.bindings.clone(),
        steps: s.steps,
        batch: s.batch,
        fill: Vec::new(),
    };
    let cot = Cotangents {
        outputs: p.cot.outputs.iter().map(|o| o.as_ref().map(cast)).collect(),
        last: p
            .cot
            .last
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|a| cast(&a.clone().into_dyn()).into_dimensionality().unwrap())
            })
            .collect(),
    };
    (seq, cot)
}

/// The interpreter's results, by the names the harness writes.
fn oracle<F: Real>(step: &StepGraph, p: &Problem) -> Vec<(String, ArrayD<f64>)> {
    let (seq, cot) = in_type::<F>(p);
    let traj = forward(step, &seq).unwrap();
    let adj = differentiate_step(step).unwrap();
    let g = backward(step, &adj, &seq, &cot).unwrap();
    let up = |a: ArrayD<F>| a.mapv(|v| v.to_f64().unwrap());
    let mut out = Vec::new();
    for (o, a) in step.outputs.iter().zip(&traj.outputs) {
        out.push((format!("output {}", o.name), up(a.clone())));
        out.push((format!("backward's output {}", o.name), up(a.clone())));
    }
    for (s, a) in step.states.iter().zip(traj.last) {
        out.push((format!("{}.last", s.name), up(a.into_dyn())));
    }
    for (p, a) in step.params.iter().zip(g.params) {
        out.push((format!("d{}", p.name), up(a)));
    }
    for (i, a) in step.inputs.iter().zip(g.inputs) {
        out.push((format!("d{}", i.name), up(a.into_dyn())));
    }
    for (s, a) in step.states.iter().zip(g.init) {
        out.push((format!("d{}.init", s.name), up(a.into_dyn())));
    }
    out
}

/// Writes the problem's arrays as the harness reads them.
fn write_problem<F: Real>(dir: &Path, step: &StepGraph, p: &Problem) {
    let s = &p.seq;
    for (sig, a) in step.params.iter().zip(&s.params) {
        write_raw::<F>(
            &dir.join(format!("param_{}.bin", sig.name)),
            a.iter().copied(),
        );
    }
    for (sig, a) in step.inputs.iter().zip(&s.inputs) {
        write_raw::<F>(
            &dir.join(format!("input_{}.bin", sig.name)),
            a.iter().copied(),
        );
    }
    for (k, sig) in step.states.iter().enumerate() {
        if let Some(Some(a)) = s.init.get(k) {
            write_raw::<F>(
                &dir.join(format!("init_{}.bin", sig.name)),
                a.iter().copied(),
            );
        }
        let c = p.cot.last[k].as_ref().expect("a cotangent per state");
        write_raw::<F>(
            &dir.join(format!("dlast_{}.bin", sig.name)),
            c.iter().copied(),
        );
    }
    for (o, sig) in step.outputs.iter().enumerate() {
        let c = p.cot.outputs[o].as_ref().expect("a cotangent per output");
        write_raw::<F>(&dir.join(format!("dy_{}.bin", sig.name)), c.iter().copied());
    }
    if let Some(l) = &s.lengths {
        let bytes: Vec<u8> = l.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
        std::fs::write(dir.join("lengths.bin"), bytes).unwrap();
    }
}

/// One case: the cell at `cell`, its problem, through C; compared with the
/// interpreter to `rtol` of each array's largest entry.
fn case<F: Real>(name: &str, cell: &Path, step: &StepGraph, p: &Problem, rtol: f64) -> Scratch {
    let dir = scratch(&format!("aot-{name}"));
    let dims: Vec<(String, usize)> = step
        .dims
        .iter()
        .map(|d| (d.name.clone(), p.seq.bindings[&d.name]))
        .collect();
    let dtype = if size_of::<F>() == 4 { "f32" } else { "f64" };
    compile(&dir, cell, &dims, p.seq.batch, dtype);
    let give_init = p.seq.init.iter().any(Option::is_some);
    let c = harness(step, give_init, p.seq.lengths.is_some(), p.seq.reverse);
    std::fs::write(dir.join("main.c"), c).unwrap();
    build(&dir);
    write_problem::<F>(&dir, step, p);
    run(
        Command::new(dir.join("main"))
            .arg(p.seq.steps.to_string())
            .current_dir(&*dir),
        &format!("{name}: the C program"),
    );
    for (what, want) in oracle::<F>(step, p) {
        let got = read_raw::<F>(&dir.join(format!("{what}.out")));
        assert_eq!(got.len(), want.len(), "{name}: {what}: size");
        let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        let worst = want.iter().zip(&got).fold(0.0f64, |m, (w, g)| {
            m.max((w - g).abs())
                .max(if g.is_nan() { f64::INFINITY } else { 0.0 })
        });
        assert!(
            worst <= rtol * scale,
            "{name}: {what} differs by {worst:e} (largest entry {scale:e})"
        );
    }
    dir
}

fn with_sizes(step: &StepGraph, sizes: &[(&str, usize)]) -> cellc::graph::dim::Bindings {
    step.dims
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = sizes
                .iter()
                .find(|(n, _)| *n == d.name)
                .map_or(2 + i, |(_, v)| *v);
            (d.name.clone(), v)
        })
        .collect()
}

/// A problem at the given sizes (the other dimensions 2, 3, ...).
#[allow(clippy::too_many_arguments)]
fn problem_at(
    step: &StepGraph,
    sizes: &[(&str, usize)],
    t: usize,
    batch: usize,
    lengths: Option<Vec<i64>>,
    reverse: bool,
    give_init: bool,
    seed: u64,
) -> Problem {
    let b = with_sizes(step, sizes);
    common::problem_with(step, &b, t, batch, lengths, reverse, give_init, seed)
}

#[test]
fn every_model_in_f64_with_lengths_reverse_and_given_initial_states() {
    for (k, name) in model_names().iter().enumerate() {
        let path = PathBuf::from(model_path(name));
        let step = load(&model_path(name));
        let p = problem_at(
            &step,
            &[],
            5,
            3,
            Some(vec![5, 0, 3]),
            true,
            true,
            90 + k as u64,
        );
        case::<f64>(name, &path, &step, &p, 1e-12);
        let p = problem_at(&step, &[], 4, 2, None, false, false, 190 + k as u64);
        case::<f64>(&format!("{name}-plain"), &path, &step, &p, 1e-12);
    }
}

#[test]
fn f32_at_odd_sizes_at_one_sequence_and_at_no_steps() {
    for (name, sizes, t, batch, lengths, reverse) in [
        (
            "lstm",
            &[("H", 67), ("X", 33)][..],
            6,
            5,
            Some(vec![6, 1, 0, 4, 6]),
            false,
        ),
        (
            "gru",
            &[("H", 67), ("X", 33)][..],
            5,
            5,
            Some(vec![5, 2, 5, 0, 3]),
            true,
        ),
        (
            "layernorm_lstm",
            &[("H", 19), ("X", 7)][..],
            7,
            1,
            None,
            false,
        ),
        ("torch_lstm", &[("H", 16), ("X", 8)][..], 0, 3, None, false),
    ] {
        let path = PathBuf::from(model_path(name));
        let step = load(&model_path(name));
        let p = problem_at(&step, sizes, t, batch, lengths, reverse, false, 7);
        case::<f32>(&format!("{name}-f32"), &path, &step, &p, 1e-4);
    }
}

/// A cell of the user's own, not in `models/`: a gated unit with a learned
/// initial state, a read two steps back and a name that is not a C
/// identifier (`c̃`).
const CUSTOM: &str = "\
cell custom(x: [X]) {
    state h: [H] = param
    state c̃: [H] = 0
    param W: [H, H + X]
    param U, b, w_c

    z_t = σ(W · [h_{t-1}; x_t] + b)
    c̃_t = w_c ∘ c̃_{t-1} + tanh(U · h_{t-2})
    h_t = z_t ∘ h_{t-1} + (1 - z_t) ∘ c̃_t

    output h
    output c̃
}
";

#[test]
fn a_cell_not_in_models() {
    let dir = scratch("aot-custom-src");
    let path = dir.join("custom.cell");
    std::fs::write(&path, CUSTOM).unwrap();
    let step = cellc::check::check_source(CUSTOM)
        .unwrap_or_else(|f| panic!("{}", f.render("custom.cell")))
        .step;
    let p = problem_at(
        &step,
        &[("H", 13), ("X", 5)],
        9,
        4,
        Some(vec![9, 3, 7, 1]),
        false,
        true,
        3,
    );
    case::<f64>("custom", &path, &step, &p, 1e-12);
    let p = problem_at(&step, &[("H", 13), ("X", 5)], 9, 4, None, true, false, 4);
    case::<f32>("custom-f32", &path, &step, &p, 1e-4);
}

#[test]
fn the_object_exports_its_entry_points_only() {
    let dir = scratch("aot-nm");
    let path = PathBuf::from(model_path("lstm"));
    compile(&dir, &path, &[("X".into(), 8), ("H".into(), 16)], 2, "f32");
    let out = run(
        Command::new("nm")
            .args(["-g", "--defined-only", "cell.o"])
            .current_dir(&*dir),
        "nm",
    );
    let mut names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cell_backward",
            "cell_backward_workspace",
            "cell_forward",
            "cell_forward_workspace"
        ]
    );
    let undefined = run(
        Command::new("nm").args(["-u", "cell.o"]).current_dir(&*dir),
        "nm -u",
    );
    for l in undefined.lines() {
        let sym = l.split_whitespace().last().unwrap_or("");
        assert!(
            sym.starts_with("cellc_"),
            "an undefined symbol outside the runtime: {sym}"
        );
    }
}
