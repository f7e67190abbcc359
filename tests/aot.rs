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

/// The numbers after `label = ` in the example's output, in order.
fn numbers(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for part in text.split([',', ':', '\n']) {
        if let Some((label, value)) = part.split_once(" = ") {
            out.push((label.trim().to_string(), value.trim().parse().unwrap()));
        }
    }
    out
}

#[test]
fn the_c_example_builds_with_its_makefile_and_prints_the_interpreters_checksums() {
    let dir = scratch("aot-example");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["main.c", "Makefile"] {
        std::fs::copy(root.join("examples/c").join(f), dir.join(f)).unwrap();
    }
    let (x, h, b, t) = (5usize, 11usize, 3usize, 7usize);
    run(
        Command::new("make")
            .arg(format!("ROOT={}", root.display()))
            .arg(format!("CELLC={}", env!("CARGO_BIN_EXE_cellc")))
            .arg(format!("RUNTIME={}", runtime_dir().display()))
            .args([format!("X={x}"), format!("H={h}"), format!("B={b}")])
            .current_dir(&*dir),
        "make (the example's Makefile)",
    );
    // The example's data, as `unzip params.npz` would give it.
    let step = load(&model_path("lstm"));
    let bindings = with_sizes(&step, &[("X", x), ("H", h)]);
    let p = common::problem_with(&step, &bindings, t, b, None, false, false, 11);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (seq, _) = in_type::<f32>(&p);
    for (sig, a) in step.params.iter().zip(&seq.params) {
        cellc::data::write_npy(
            &data.join(format!("{}.npy", sig.name)),
            &cellc::data::ArrayData::F32(a.clone()),
        )
        .unwrap();
    }
    cellc::data::write_npy(
        &data.join("x.npy"),
        &cellc::data::ArrayData::F32(seq.inputs[0].clone().into_dyn()),
    )
    .unwrap();
    let printed = run(
        Command::new(dir.join("lstm_example"))
            .arg(&data)
            .current_dir(&*dir),
        "the example",
    );
    // The interpreter on the same arrays: the loss is sum(h) over every step.
    let traj = forward(&step, &seq).unwrap();
    let cot = Cotangents {
        outputs: vec![Some(ArrayD::from_elem(traj.outputs[0].raw_dim(), 1.0f32))],
        last: vec![None, None],
    };
    let adj = differentiate_step(&step).unwrap();
    let g = backward(&step, &adj, &seq, &cot).unwrap();
    let total = |a: &ArrayD<f32>| {
        (
            a.iter().map(|&v| v as f64).sum::<f64>(),
            a.iter().map(|&v| (v as f64).abs()).sum::<f64>(),
        )
    };
    let mut want = vec![
        ("sum(h)".to_string(), total(&traj.outputs[0])),
        (
            "sum(h.last)".into(),
            total(&traj.last[0].clone().into_dyn()),
        ),
        (
            "sum(C.last)".into(),
            total(&traj.last[1].clone().into_dyn()),
        ),
    ];
    for (sig, a) in step.params.iter().zip(&g.params) {
        want.push((format!("sum(d{})", sig.name), total(a)));
    }
    want.push(("sum(dx)".into(), total(&g.inputs[0].clone().into_dyn())));
    let got: Vec<(String, f64)> = numbers(&printed)
        .into_iter()
        .filter(|(l, _)| l.starts_with("sum("))
        .collect();
    assert_eq!(got.len(), want.len(), "the example printed:\n{printed}");
    for ((label, value), (wlabel, (sum, scale))) in got.iter().zip(&want) {
        assert_eq!(label, wlabel, "the example printed:\n{printed}");
        assert!(
            (value - sum).abs() <= 1e-5 * scale + 1e-6,
            "{label}: the example printed {value}, the interpreter gives {sum}"
        );
    }
}

/// Bad calls return their error codes and write nothing.
const BAD_CALLS: &str = r#"#include "cell.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { if (!(cond)) { printf("failed: %s (line %d)\n", #cond, __LINE__); return 1; } } while (0)

int main(void) {
    enum { T = 3 };
    static cell_real w[4 * CELL_PARAM_W_f_SIZE], bias[4 * CELL_PARAM_b_f_SIZE], x[T * CELL_INPUT_x_SIZE];
    static cell_real h[T * CELL_OUTPUT_h_SIZE];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = 0.5f;
    cell_params p = {w, w + CELL_PARAM_W_f_SIZE, w + 2 * CELL_PARAM_W_f_SIZE, w + 3 * CELL_PARAM_W_f_SIZE,
                     bias, bias + CELL_PARAM_b_f_SIZE, bias + 2 * CELL_PARAM_b_f_SIZE, bias + 3 * CELL_PARAM_b_f_SIZE};
    cell_inputs in = {x};
    cell_outputs out = {h};
    size_t n = cell_forward_workspace(T);
    CHECK(n > 0);
    void *ws = malloc(n);
    CHECK(ws != NULL);
    memset(h, 0x7f, sizeof h);
    CHECK(cell_forward(T, NULL, &in, NULL, NULL, 0, &out, NULL, ws, n) == CELL_ERR_NULL);
    CHECK(cell_forward(T, &p, NULL, NULL, NULL, 0, &out, NULL, ws, n) == CELL_ERR_NULL);
    cell_params missing = p;
    missing.b_o = NULL;
    CHECK(cell_forward(T, &missing, &in, NULL, NULL, 0, &out, NULL, ws, n) == CELL_ERR_NULL);
    CHECK(cell_forward(T, &p, &in, NULL, NULL, 0, &out, NULL, NULL, n) == CELL_ERR_NULL);
    CHECK(cell_forward(T, &p, &in, NULL, NULL, 0, &out, NULL, ws, n - 1) == CELL_ERR_WORKSPACE);
    int32_t too_long[CELL_BATCH] = {T + 1, 1};
    CHECK(cell_forward(T, &p, &in, NULL, too_long, 0, &out, NULL, ws, n) == CELL_ERR_LENGTH);
    int32_t negative[CELL_BATCH] = {-1, 1};
    CHECK(cell_forward(T, &p, &in, NULL, negative, 0, &out, NULL, ws, n) == CELL_ERR_LENGTH);
    CHECK(cell_forward_workspace(SIZE_MAX / 2) == 0);
    CHECK(cell_backward_workspace(SIZE_MAX / 2) == 0);
    CHECK(cell_forward(SIZE_MAX / 2, &p, &in, NULL, NULL, 0, &out, NULL, ws, n) == CELL_ERR_SIZE);
    for (size_t i = 0; i < sizeof h; i++) CHECK(((unsigned char *)h)[i] == 0x7f); /* nothing written */
    CHECK(cell_backward(T, &p, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, ws, n) == CELL_ERR_NULL);
    CHECK(cell_backward(T, &p, &in, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, ws,
                        cell_backward_workspace(T) - 1) == CELL_ERR_WORKSPACE);
    /* Good calls: forward, and backward with every result left out. */
    CHECK(cell_forward(T, &p, &in, NULL, NULL, 0, &out, NULL, ws, n) == CELL_OK);
    CHECK(h[0] == 0.0f); /* zero weights: h stays 0 */
    CHECK(cell_forward(0, &p, &in, NULL, NULL, 0, &out, NULL, ws, n) == CELL_OK);
    size_t nb = cell_backward_workspace(T);
    void *wb = malloc(nb);
    CHECK(wb != NULL);
    CHECK(cell_backward(T, &p, &in, NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL, wb, nb) == CELL_OK);
    free(ws);
    free(wb);
    printf("ok\n");
    return 0;
}
"#;

#[test]
fn bad_calls_return_their_error_codes_and_write_nothing() {
    let dir = scratch("aot-bad-calls");
    let path = PathBuf::from(model_path("lstm"));
    compile(&dir, &path, &[("X".into(), 3), ("H".into(), 5)], 2, "f32");
    std::fs::write(dir.join("main.c"), BAD_CALLS).unwrap();
    build(&dir);
    let out = run(
        Command::new(dir.join("main")).current_dir(&*dir),
        "the bad calls",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn the_header_compiles_as_c99_and_as_cpp_with_warnings_as_errors() {
    let dir = scratch("aot-header");
    std::fs::write(dir.join("custom.cell"), CUSTOM).unwrap();
    let cases = [
        ("lstm", model_path("lstm"), "f32"),
        ("gru", model_path("gru"), "f64"),
        (
            "custom",
            dir.join("custom.cell").display().to_string(),
            "f32",
        ),
    ];
    for (name, cell, dtype) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellc"));
        cmd.args(["compile", &cell, "-D", "X=3", "-D", "H=4", "--dtype", dtype])
            .args(["--prefix", name, "-o"])
            .arg(format!("{name}.o"))
            .arg("--header")
            .arg(format!("{name}.h"))
            .current_dir(&*dir);
        run(&mut cmd, "cellc compile");
    }
    // Three cells in one program: the prefixes keep every name apart.
    std::fs::write(
        dir.join("all.c"),
        "#include \"lstm.h\"\n#include \"gru.h\"\n#include \"custom.h\"\n#include \"lstm.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    run(
        Command::new("gcc")
            .args([
                "-std=c99",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "all.c",
                "lstm.o",
            ])
            .args(["gru.o", "custom.o", "-L"])
            .arg(runtime_dir())
            .args(["-lcellc_rt", "-lm", "-lpthread", "-ldl", "-o", "all"])
            .current_dir(&*dir),
        "gcc on three headers",
    );
    std::fs::copy(dir.join("all.c"), dir.join("all.cpp")).unwrap();
    run(
        Command::new("g++")
            .args([
                "-std=c++11",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg("all.cpp")
            .current_dir(&*dir),
        "g++ on three headers",
    );
}

#[test]
fn emit_writes_the_cranelift_ir_or_the_machine_code_of_each_step() {
    let dir = scratch("aot-emit");
    let cell = model_path("lstm");
    for (emit, needle) in [("clif", "function"), ("asm", "ret")] {
        let out = common::cellc(
            &dir,
            &[
                "compile", &cell, "-D", "X=3", "-D", "H=4", "--emit", emit, "-o", "out.txt",
            ],
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let text = std::fs::read_to_string(dir.join("out.txt")).unwrap();
        for step in [
            "lstm__forward_step",
            "lstm__bptt_forward_step",
            "lstm__adjoint_step",
        ] {
            assert!(text.contains(step), "--emit {emit}: no {step}");
        }
        assert!(text.contains(needle), "--emit {emit}:\n{text}");
    }
}

#[test]
fn compile_refuses_bad_arguments_with_clear_errors() {
    let dir = scratch("aot-errors");
    let cell = model_path("lstm");
    for (args, needle) in [
        (&["-D", "X=3", "-o", "a.o"][..], "H is not bound"),
        (&["-D", "X=3", "-D", "H=0", "-o", "a.o"][..], "H"),
        (
            &["-D", "X=3", "-D", "H=4", "--prefix", "9x", "-o", "a.o"][..],
            "not a C identifier",
        ),
        (
            &["-D", "X=3", "-D", "H=4", "--batch", "0", "-o", "a.o"][..],
            "--batch",
        ),
        (
            &["-D", "X=3", "-D", "H=4", "-o", "no/such/dir/a.o"][..],
            "a.o",
        ),
    ] {
        let mut all = vec!["compile", cell.as_str()];
        all.extend(args);
        let out = common::cellc(&dir, &all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = common::stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!dir.join("a.o").exists(), "{args:?} wrote a file");
    }
}
