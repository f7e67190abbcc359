//! The `cellc` command line against its contract (`cellc-cli.md` in the shared
//! spec): `check`, `graph` and `run` as a user drives them, every error of the
//! contract's "Errors" and "Edge cases" sections, and that a failed command
//! leaves no output file behind.
//!
//! Each test runs the built binary in a scratch directory of its own, with the
//! NumPy inputs written by the crate's own writer (`cellc::data`), and
//! checks the numbers of a run against a small f64 reference written here from
//! the equations of the cell files.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cellc::data::{ArrayData, NpyArray, read_npz, write_npy, write_npz};
use cellc::rng::SplitMix64;
use common::errors::{ErrorCase, assert_error_cases, fails};
use common::scratch;
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView1, Axis, Ix2, Ix3, IxDyn, s};

// ---------------------------------------------------------------------------
// Scratch directories, running the binary
// ---------------------------------------------------------------------------

/// What one run of `cellc` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    args: Vec<String>,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "cellc {}\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.context());
        assert!(
            !self.stderr.contains("panicked"),
            "panic\n{}",
            self.context()
        );
        self
    }
}

/// Runs `cellc ARGS` with `dir` as the working directory, so that messages
/// name the data files as they were given (relative names).
fn cellc(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the cellc binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(format!("{name}.cell"))
        .display()
        .to_string()
}

fn all_models() -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    assert!(out.len() >= 10, "the model library is in models/");
    out
}

/// Every entry of a directory (hidden ones too), for "nothing was left behind".
fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A needle is found when any of its `|`-separated alternatives is.
fn contains_any(hay: &str, needle: &str) -> bool {
    needle.split('|').any(|alt| hay.contains(alt))
}

/// Exit status 1, no panic, nothing on stdout, exactly one error message on
/// stderr, and that message holds every needle.
#[track_caller]
fn assert_clean_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, Some(1), "expected exit status 1\n{}", r.context());
    assert!(!r.stderr.contains("panicked"), "panic\n{}", r.context());
    assert!(
        r.stdout.trim().is_empty(),
        "nothing on stdout after an error\n{}",
        r.context()
    );
    let errors = r
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("error"))
        .count();
    assert_eq!(errors, 1, "expected one error message\n{}", r.context());
    for n in needles {
        assert!(
            contains_any(&r.stderr, n),
            "the message should mention {n:?}\n{}",
            r.context()
        );
    }
}

/// Runs `cellc ARGS -o out.npz`, which must fail cleanly (see
/// [`assert_clean_error`]) and leave the directory as it was: no `out.npz`, no
/// temporary file.
#[track_caller]
fn assert_run_fails(dir: &Path, args: &[&str], needles: &[&str]) -> Run {
    let before = listing(dir);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", "out.npz"]);
    let r = cellc(dir, &all);
    assert_clean_error(&r, needles);
    assert!(
        !dir.join("out.npz").exists(),
        "no output file after a failure\n{}",
        r.context()
    );
    assert_eq!(
        listing(dir),
        before,
        "the directory is as it was\n{}",
        r.context()
    );
    r
}

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

type Named = Vec<(String, ArrayD<f32>)>;

fn named(list: &[(&str, &ArrayD<f32>)]) -> Named {
    list.iter()
        .map(|(n, a)| (n.to_string(), (*a).clone()))
        .collect()
}

fn save_npz(path: &Path, arrays: &Named) {
    let data: Vec<(String, ArrayData)> = arrays
        .iter()
        .map(|(n, a)| (n.clone(), ArrayData::F32(a.clone())))
        .collect();
    write_npz(path, &data).unwrap();
}

fn save_npz_f64(path: &Path, arrays: &Named) {
    let data: Vec<(String, ArrayData)> = arrays
        .iter()
        .map(|(n, a)| (n.clone(), ArrayData::F64(a.mapv(f64::from))))
        .collect();
    write_npz(path, &data).unwrap();
}

fn save_npy(path: &Path, a: &ArrayD<f32>) {
    write_npy(path, &ArrayData::F32(a.clone())).unwrap();
}

fn save_npy_f64(path: &Path, a: &ArrayD<f32>) {
    write_npy(path, &ArrayData::F64(a.mapv(f64::from))).unwrap();
}

fn save_lengths(path: &Path, l: &[i64]) {
    write_npy(
        path,
        &ArrayData::Int(ArrayD::from_shape_vec(IxDyn(&[l.len()]), l.to_vec()).unwrap()),
    )
    .unwrap();
}

/// A version 1.0 `.npy` file with any `descr`, for dtypes the crate's writer
/// does not produce (`<i4`).
fn save_raw_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    fs::write(path, common::npy::raw_npy(descr, shape, data)).unwrap();
}

fn save_lengths_i32(path: &Path, l: &[i32]) {
    let data: Vec<u8> = l.iter().flat_map(|v| v.to_le_bytes()).collect();
    save_raw_npy(path, "<i4", &[l.len()], &data);
}

/// An `.npz` archive written with the zip crate: `deflate` gives what
/// `numpy.savez_compressed` writes; `members` are raw `.npy` bytes by name.
fn save_zip(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) {
    let file = fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The `.npy` bytes of an array, through the crate's writer.
fn npy_bytes(dir: &Path, a: &ArrayD<f32>) -> Vec<u8> {
    let p = dir.join("member.tmp.npy");
    save_npy(&p, a);
    let b = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    b
}

fn load(path: &Path) -> BTreeMap<String, NpyArray> {
    read_npz(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect()
}

fn as_f64(a: &NpyArray) -> ArrayD<f64> {
    match &a.data {
        ArrayData::F32(x) => x.mapv(f64::from),
        ArrayData::F64(x) => x.clone(),
        other => panic!("expected float data, got {}", other.dtype_name()),
    }
}

fn get<'a>(out: &'a BTreeMap<String, NpyArray>, name: &str) -> &'a NpyArray {
    out.get(name).unwrap_or_else(|| {
        panic!(
            "output has no `{name}`; it has {:?}",
            out.keys().collect::<Vec<_>>()
        )
    })
}

#[track_caller]
fn assert_close(what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: element {i} is {g}, expected {w} (tolerance {tol})"
        );
    }
}

fn max_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn to64(a: &ArrayD<f32>) -> ArrayD<f64> {
    a.mapv(f64::from)
}

fn param<'a>(p: &'a Named, name: &str) -> &'a ArrayD<f32> {
    &p.iter().find(|(n, _)| n == name).unwrap().1
}

fn mat(p: &Named, name: &str) -> Array2<f64> {
    to64(param(p, name)).into_dimensionality::<Ix2>().unwrap()
}

fn vector(p: &Named, name: &str) -> Array1<f64> {
    to64(param(p, name))
        .into_shape_with_order(param(p, name).len())
        .unwrap()
}

fn seq3(a: &ArrayD<f32>) -> Array3<f64> {
    to64(a).into_dimensionality::<Ix3>().unwrap()
}

// ---------------------------------------------------------------------------
// Reference semantics (f64), straight from the contract
// ---------------------------------------------------------------------------

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn softmax(v: Array1<f64>) -> Array1<f64> {
    let m = v.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let e = v.mapv(|x| (x - m).exp());
    let s = e.sum();
    e / s
}

fn concat(a: &Array1<f64>, b: ArrayView1<f64>) -> Array1<f64> {
    ndarray::concatenate(Axis(0), &[a.view(), b]).unwrap()
}

/// One step: previous states and this step's inputs in; new states and the
/// outputs out.
type StepFn<'a> =
    dyn Fn(&[Array1<f64>], &[ArrayView1<f64>]) -> (Vec<Array1<f64>>, Vec<Array1<f64>>) + 'a;

/// Runs a step over `[T, B, n]` inputs as `cellc-cli.md` says: sequence `b`
/// runs over its first `L[b]` positions (backwards with `reverse`), its outputs
/// stay at their own time positions, are zero past its length, and its states
/// stop changing there. Returns the outputs `[T, B, n]` and each state's last
/// value `[B, n]`.
fn drive(
    xs: &[Array3<f64>],
    init: &[Array2<f64>],
    lengths: Option<&[usize]>,
    reverse: bool,
    out_sizes: &[usize],
    step: &StepFn,
) -> (Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
    let (t_len, batch, _) = xs[0].dim();
    let mut outs: Vec<Array3<f64>> = out_sizes
        .iter()
        .map(|&n| Array3::zeros((t_len, batch, n)))
        .collect();
    let mut last: Vec<Array2<f64>> = init.to_vec();
    for b in 0..batch {
        let len = lengths.map_or(t_len, |l| l[b]);
        let mut state: Vec<Array1<f64>> = init.iter().map(|s| s.row(b).to_owned()).collect();
        let order: Vec<usize> = if reverse {
            (0..len).rev().collect()
        } else {
            (0..len).collect()
        };
        for t in order {
            let inputs: Vec<ArrayView1<f64>> = xs.iter().map(|x| x.slice(s![t, b, ..])).collect();
            let (new, o) = step(&state, &inputs);
            for (k, v) in o.iter().enumerate() {
                outs[k].slice_mut(s![t, b, ..]).assign(v);
            }
            state = new;
        }
        for (k, v) in state.iter().enumerate() {
            last[k].row_mut(b).assign(v);
        }
    }
    (
        outs.into_iter().map(|a| a.into_dyn()).collect(),
        last.into_iter().map(|a| a.into_dyn()).collect(),
    )
}

/// `models/lstm.cell`.
fn lstm_params(rng: &mut SplitMix64, h: usize, x: usize) -> Named {
    let mut p = Named::new();
    for n in ["W_f", "W_i", "W_C", "W_o"] {
        p.push((n.into(), rng.uniform::<f32>(&[h, h + x], 0.6)));
    }
    for n in ["b_f", "b_i", "b_C", "b_o"] {
        p.push((n.into(), rng.uniform::<f32>(&[h], 0.3)));
    }
    p
}

/// Reference LSTM: `h` `[T, B, H]`, `h.last`, `C.last`.
fn lstm_ref(
    p: &Named,
    x: &ArrayD<f32>,
    init: Option<(&ArrayD<f32>, &ArrayD<f32>)>,
    lengths: Option<&[usize]>,
    reverse: bool,
) -> (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>) {
    let w: Vec<Array2<f64>> = ["W_f", "W_i", "W_C", "W_o"]
        .iter()
        .map(|n| mat(p, n))
        .collect();
    let b: Vec<Array1<f64>> = ["b_f", "b_i", "b_C", "b_o"]
        .iter()
        .map(|n| vector(p, n))
        .collect();
    let h = b[0].len();
    let x = seq3(x);
    let batch = x.dim().1;
    let init: Vec<Array2<f64>> = match init {
        Some((h0, c0)) => vec![
            to64(h0).into_dimensionality().unwrap(),
            to64(c0).into_dimensionality().unwrap(),
        ],
        None => vec![Array2::zeros((batch, h)), Array2::zeros((batch, h))],
    };
    let step = |s: &[Array1<f64>], xs: &[ArrayView1<f64>]| {
        let z = concat(&s[0], xs[0]);
        let gate = |k: usize| w[k].dot(&z) + &b[k];
        let f = gate(0).mapv(sigmoid);
        let i = gate(1).mapv(sigmoid);
        let c_tilde = gate(2).mapv(f64::tanh);
        let o = gate(3).mapv(sigmoid);
        let c = &f * &s[1] + &i * &c_tilde;
        let hn = &o * &c.mapv(f64::tanh);
        (vec![hn.clone(), c], vec![hn])
    };
    let (outs, last) = drive(&[x], &init, lengths, reverse, &[h], &step);
    (outs[0].clone(), last[0].clone(), last[1].clone())
}

/// `models/learned_init_rnn.cell`: `h_t = tanh(U x_t + W h_{t-1} + b)`.
fn tanh_rnn_ref(
    p: &Named,
    x: &ArrayD<f32>,
    init: &Array2<f64>,
    lengths: Option<&[usize]>,
) -> (ArrayD<f64>, ArrayD<f64>) {
    let (u, w, b) = (mat(p, "U"), mat(p, "W"), vector(p, "b"));
    let step = |s: &[Array1<f64>], xs: &[ArrayView1<f64>]| {
        let hn = (u.dot(&xs[0]) + w.dot(&s[0]) + &b).mapv(f64::tanh);
        (vec![hn.clone()], vec![hn])
    };
    let (outs, last) = drive(
        &[seq3(x)],
        std::slice::from_ref(init),
        lengths,
        false,
        &[b.len()],
        &step,
    );
    (outs[0].clone(), last[0].clone())
}

/// `models/context_rnn.cell`: outputs `y`, `h`; last `h`.
fn context_ref(
    p: &Named,
    x: &ArrayD<f32>,
    c: &ArrayD<f32>,
) -> (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>) {
    let (u, w, f, v, g) = (
        mat(p, "U"),
        mat(p, "W"),
        mat(p, "F"),
        mat(p, "V"),
        mat(p, "G"),
    );
    let (h, y) = (u.nrows(), v.nrows());
    let batch = x.shape()[1];
    let step = |s: &[Array1<f64>], xs: &[ArrayView1<f64>]| {
        let hn = (u.dot(&xs[0]) + w.dot(&s[0]) + f.dot(&xs[1])).mapv(sigmoid);
        let yn = softmax(v.dot(&hn) + g.dot(&xs[1]));
        (vec![hn.clone()], vec![yn, hn])
    };
    let (outs, last) = drive(
        &[seq3(x), seq3(c)],
        &[Array2::zeros((batch, h))],
        None,
        false,
        &[y, h],
        &step,
    );
    (outs[0].clone(), outs[1].clone(), last[0].clone())
}

/// `models/elman.cell`: outputs `y`, `h`; last `h`.
fn elman_ref(
    p: &Named,
    x: &ArrayD<f32>,
    lengths: Option<&[usize]>,
) -> (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>) {
    let (u, w, v) = (mat(p, "U"), mat(p, "W"), mat(p, "V"));
    let (h, y) = (u.nrows(), v.nrows());
    let batch = x.shape()[1];
    let step = |s: &[Array1<f64>], xs: &[ArrayView1<f64>]| {
        let hn = (u.dot(&xs[0]) + w.dot(&s[0])).mapv(f64::tanh);
        let yn = softmax(v.dot(&hn));
        (vec![hn.clone()], vec![yn, hn])
    };
    let (outs, last) = drive(
        &[seq3(x)],
        &[Array2::zeros((batch, h))],
        lengths,
        false,
        &[y, h],
        &step,
    );
    (outs[0].clone(), outs[1].clone(), last[0].clone())
}

/// A standard LSTM data set in `dir`: `p.npz`, `x.npy` (`[T, B, X]`).
struct LstmData {
    p: Named,
    x: ArrayD<f32>,
}

const T: usize = 5;
const B: usize = 2;
const H: usize = 4;
const X: usize = 3;

fn lstm_data(dir: &Path, seed: u64) -> LstmData {
    let mut rng = SplitMix64::new(seed);
    let p = lstm_params(&mut rng, H, X);
    let x = rng.uniform::<f32>(&[T, B, X], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("x.npy"), &x);
    LstmData { p, x }
}

/// Runs the LSTM on `p.npz`/`x.npy` plus `extra`, into `name`; returns the outputs.
fn run_lstm(dir: &Path, extra: &[&str], name: &str) -> (Run, BTreeMap<String, NpyArray>) {
    let m = model("lstm");
    let mut args = vec!["run", &m, "--params", "p.npz", "--input", "x.npy"];
    args.extend_from_slice(extra);
    args.extend(["-o", name]);
    let r = cellc(dir, &args).ok();
    let out = load(&dir.join(name));
    (r, out)
}

/// `run` and `grad` use the native back end unless told otherwise, and give
/// what the interpreter gives (to float32 rounding: summation order differs).
#[test]
fn the_jit_is_the_default_and_agrees_with_the_interpreter() {
    let dir = scratch("backend-default");
    lstm_data(&dir, 3);
    let (_, jit) = run_lstm(&dir, &[], "jit.npz");
    let (_, interp) = run_lstm(&dir, &["--backend", "interp"], "interp.npz");
    let (_, named) = run_lstm(&dir, &["--backend", "jit"], "named.npz");
    assert_eq!(
        jit.keys().collect::<Vec<_>>(),
        interp.keys().collect::<Vec<_>>()
    );
    for (name, a) in &jit {
        let (a, b, c) = (as_f64(a), as_f64(&interp[name]), as_f64(&named[name]));
        assert_eq!(a, c, "{name}: the default is --backend jit");
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= 1e-6, "{name}: jit {x} interp {y}");
        }
    }
}

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------

/// Whitespace runs collapsed to one space, so that column alignment is free.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether some line of `text` holds every one of `parts`.
fn has_line(text: &str, parts: &[&str]) -> bool {
    text.lines()
        .map(squash)
        .any(|l| parts.iter().all(|p| l.contains(p)))
}

#[track_caller]
fn assert_line(r: &Run, parts: &[&str]) {
    assert!(
        has_line(&r.stdout, parts),
        "no line with {parts:?}\n{}",
        r.context()
    );
}

/// Each model's signature as the model library documents it: inputs, states
/// (with their initial value), parameters with their (inferred) shapes and
/// outputs.
/// A model's file and its signature rows (kind, name, shape).
type Signature = (
    &'static str,
    Vec<(&'static str, &'static str, &'static str)>,
);

fn signatures() -> Vec<Signature> {
    let lstm_like = |gates: &[&'static str],
                     extra: &[(&'static str, &'static str, &'static str)]| {
        let mut v = vec![
            ("input", "x: [X]", ""),
            ("state", "h: [H]", "0"),
            ("state", "C: [H]", "0"),
        ];
        for g in gates {
            v.push(("param", *g, ""));
        }
        v.extend_from_slice(extra);
        v.push(("output", "h: [H]", ""));
        v
    };
    let h_only = |params: &[&'static str]| {
        let mut v = vec![("input", "x: [X]", ""), ("state", "h: [H]", "0")];
        for p in params {
            v.push(("param", *p, ""));
        }
        v.push(("output", "h: [H]", ""));
        v
    };
    vec![
        (
            "lstm",
            lstm_like(
                &[
                    "W_f: [H, H+X]",
                    "W_i: [H, H+X]",
                    "W_C: [H, H+X]",
                    "W_o: [H, H+X]",
                    "b_f: [H]",
                    "b_i: [H]",
                    "b_C: [H]",
                    "b_o: [H]",
                ],
                &[],
            ),
        ),
        (
            "cifg_lstm",
            lstm_like(
                &[
                    "W_f: [H, H+X]",
                    "W_C: [H, H+X]",
                    "W_o: [H, H+X]",
                    "b_f: [H]",
                    "b_C: [H]",
                    "b_o: [H]",
                ],
                &[],
            ),
        ),
        (
            "peephole_lstm",
            lstm_like(
                &[
                    "W_i: [H, H+X]",
                    "W_f: [H, H+X]",
                    "W_C: [H, H+X]",
                    "W_o: [H, H+X]",
                    "b_i: [H]",
                    "b_f: [H]",
                    "b_C: [H]",
                    "b_o: [H]",
                    "p_i: [H]",
                    "p_f: [H]",
                    "p_o: [H]",
                ],
                &[],
            ),
        ),
        (
            "gru",
            h_only(&["W_z: [H, H+X]", "W_r: [H, H+X]", "W_h: [H, H+X]"]),
        ),
        (
            "gru_latex",
            h_only(&["W_z: [H, H+X]", "W_r: [H, H+X]", "W_h: [H, H+X]"]),
        ),
        ("irnn", h_only(&["U: [H, X]", "W: [H, H]", "b: [H]"])),
        ("indrnn", h_only(&["W: [H, X]", "b: [H]", "u: [H]"])),
        (
            "mgu",
            h_only(&["W_f: [H, H+X]", "W_h: [H, H+X]", "b_f: [H]", "b_h: [H]"]),
        ),
        (
            "higher_order_rnn",
            h_only(&["U: [H, X]", "W_1: [H, H]", "W_2: [H, H]", "b: [H]"]),
        ),
        (
            "torch_lstm",
            vec![
                ("input", "x: [X]", ""),
                ("state", "h: [H]", "0"),
                ("state", "c: [H]", "0"),
                ("param", "weight_ih_l0: [4*H, X]", ""),
                ("param", "weight_hh_l0: [4*H, H]", ""),
                ("param", "bias_ih_l0: [4*H]", ""),
                ("param", "bias_hh_l0: [4*H]", ""),
                ("output", "h: [H]", ""),
            ],
        ),
        (
            "torch_gru",
            h_only(&[
                "weight_ih_l0: [3*H, X]",
                "weight_hh_l0: [3*H, H]",
                "bias_ih_l0: [3*H]",
                "bias_hh_l0: [3*H]",
            ]),
        ),
        (
            "layernorm_lstm",
            vec![
                ("input", "x: [X]", ""),
                ("state", "h: [H]", "0"),
                ("state", "c: [H]", "0"),
                ("param", "W: [4*H, H+X]", ""),
                ("param", "gain_a: [4*H]", ""),
                ("param", "bias_a: [4*H]", ""),
                ("param", "gain_c: [H]", ""),
                ("param", "bias_c: [H]", ""),
                ("output", "h: [H]", ""),
            ],
        ),
        (
            "learned_init_rnn",
            vec![
                ("input", "x: [X]", ""),
                ("state", "h: [H]", "h_0"),
                ("param", "h_0: [H]", ""),
                ("param", "U: [H, X]", ""),
                ("param", "W: [H, H]", ""),
                ("param", "b: [H]", ""),
                ("output", "h: [H]", ""),
            ],
        ),
        (
            "elman",
            vec![
                ("input", "x: [X]", ""),
                ("state", "h: [H]", "0"),
                ("param", "U: [H, X]", ""),
                ("param", "W: [H, H]", ""),
                ("param", "V: [V_rows, H]", ""),
                ("output", "y: [V_rows]", ""),
                ("output", "h: [H]", ""),
            ],
        ),
        (
            "context_rnn",
            vec![
                ("input", "x: [X]", ""),
                ("input", "c: [K]", ""),
                ("state", "h: [H]", "0"),
                ("param", "U: [H, X]", ""),
                ("param", "W: [H, H]", ""),
                ("param", "F: [H, K]", ""),
                ("param", "V: [V_rows, H]", ""),
                ("param", "G: [V_rows, K]", ""),
                ("output", "y: [V_rows]", ""),
                ("output", "h: [H]", ""),
            ],
        ),
    ]
}

#[test]
fn check_prints_the_signature_of_every_model() {
    let dir = scratch("check-models");
    let expected = signatures();
    for (name, path) in all_models() {
        let r = cellc(&dir, &["check", &path.display().to_string()]).ok();
        assert!(
            r.stdout.contains(&format!("cell {name}")),
            "names the cell\n{}",
            r.context()
        );
        for kind in ["input", "state", "param", "output"] {
            assert!(
                has_line(&r.stdout, &[kind]),
                "a signature lists its {kind}s\n{}",
                r.context()
            );
        }
        let Some((_, entries)) = expected.iter().find(|(m, _)| *m == name) else {
            continue;
        };
        for (kind, item, init) in entries {
            if kind == &"state" {
                let init = if *init == "0" { "= 0" } else { init };
                assert_line(&r, &[kind, item, init]);
            } else {
                assert_line(&r, &[kind, item]);
            }
        }
    }
    for (name, _) in &expected {
        assert!(
            all_models().iter().any(|(m, _)| m == name),
            "models/{name}.cell is in the library"
        );
    }
}

#[test]
fn check_shows_a_free_dimension_under_its_own_name() {
    let dir = scratch("check-free");
    // The rows of V are left open by use: a free dimension with a name of its
    // own, shared by V, G and the output y in context_rnn.
    let r = cellc(&dir, &["check", &model("elman")]).ok();
    assert!(r.stdout.contains("V_rows"), "{}", r.context());
    let r = cellc(&dir, &["check", &model("context_rnn")]).ok();
    for item in ["V: [V_rows, H]", "G: [V_rows, K]", "y: [V_rows]"] {
        assert_line(&r, &[item]);
    }
    // Bound by -D like any other dimension.
    let r = cellc(&dir, &["check", &model("elman"), "-D", "V_rows=7"]).ok();
    assert_line(&r, &["output", "y: [V_rows]", "7"]);
}

/// The names inside the shapes a signature prints (`H`, `X`, `V_rows`, ...).
fn dims_of(signature: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in signature.split('[').skip(1) {
        let inner = part.split(']').next().unwrap_or("");
        for tok in inner.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if tok
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
            {
                out.insert(tok.to_string());
            }
        }
    }
    out
}

/// `-D` flags binding every dimension of a cell to a small size.
fn small_defines(signature: &str) -> Vec<String> {
    dims_of(signature)
        .into_iter()
        .enumerate()
        .flat_map(|(i, d)| ["-D".to_string(), format!("{d}={}", 2 + i % 3)])
        .collect()
}

#[test]
fn check_and_run_every_example_of_the_language_contract() {
    let Some(blocks) = common::spec::language_examples() else {
        return;
    };
    let cells: Vec<&String> = blocks.iter().filter(|b| b.contains("cell ")).collect();
    assert!(
        cells.len() >= 5,
        "the contract has at least five example cells, found {}",
        cells.len()
    );
    let dir = scratch("check-examples");
    for (i, src) in cells.iter().enumerate() {
        let name = src
            .lines()
            .find_map(|l| l.trim().strip_prefix("cell "))
            .and_then(|l| l.split('(').next())
            .unwrap()
            .trim()
            .to_string();
        let file = format!("example{i}_{name}.cell");
        fs::write(dir.join(&file), src).unwrap();
        let r = cellc(&dir, &["check", &file]).ok();
        assert!(
            r.stdout.contains(&format!("cell {name}")),
            "{}",
            r.context()
        );
        for kind in ["input", "state", "param", "output"] {
            assert!(
                has_line(&r.stdout, &[kind]),
                "lists its {kind}s\n{}",
                r.context()
            );
        }
        // ... and it runs (generated data, every dimension bound by -D).
        let defines = small_defines(&r.stdout);
        let mut args: Vec<&str> = vec!["run", &file];
        args.extend(defines.iter().map(String::as_str));
        let before = listing(&dir);
        let r = cellc(&dir, &args).ok();
        assert!(
            r.stdout.contains(".last"),
            "a summary of the outputs\n{}",
            r.context()
        );
        assert_eq!(listing(&dir), before, "a run without -o writes no file");
    }
}

#[test]
fn check_with_define_shows_concrete_sizes() {
    let dir = scratch("check-define");
    let r = cellc(&dir, &["check", &model("lstm"), "-D", "H=8"]).ok();
    // Everything that depends on H alone becomes concrete.
    assert_line(&r, &["state", "h: [H]", "8"]);
    assert_line(&r, &["param", "b_f: [H]", "8"]);
    assert_line(&r, &["output", "h: [H]", "8"]);
    let r = cellc(&dir, &["check", &model("lstm"), "-D", "H=8", "-D", "X=3"]).ok();
    assert_line(&r, &["param", "W_f: [H, H+X]", "[8, 11]"]);
    assert_line(&r, &["input", "x: [X]", "3"]);
    let r = cellc(
        &dir,
        &["check", &model("torch_lstm"), "-D", "H=8", "-D", "X=3"],
    )
    .ok();
    assert_line(&r, &["param", "weight_ih_l0", "[32, 3]"]);
    let r = cellc(
        &dir,
        &["check", &model("elman"), "-D", "V_rows=10", "-D", "H=4"],
    )
    .ok();
    assert_line(&r, &["param", "V: [V_rows, H]", "[10, 4]"]);
}

#[test]
fn check_define_of_an_unknown_dimension_fails_naming_it() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    assert_error_cases(
        |_| {},
        vec![
            fails("-D Q", &["check", m, "-D", "Q=8"], &["Q"]),
            fails(
                "-D Hidden beside a known -D H",
                &["check", m, "-D", "H=8", "-D", "Hidden=8"],
                &["Hidden"],
            ),
        ],
    );
}

#[test]
fn check_diagnostics_carry_file_line_column_source_and_caret() {
    let dir = scratch("check-diag");
    let src = "cell bad(x: [X]) {\n    state h: [H]\n    param W\n    h_t = tanh(W · [h_{t-1}; x_t] + bias)\n    output h\n}\n";
    fs::write(dir.join("bad.cell"), src).unwrap();
    let r = cellc(&dir, &["check", "bad.cell"]);
    assert_clean_error(&r, &["bias", "bad.cell:4:"]);
    // The source line, then a caret under the span.
    let lines: Vec<&str> = r.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("h_t = tanh(W · [h_{t-1}; x_t] + bias)"))
        .unwrap_or_else(|| panic!("the source line is shown\n{}", r.context()));
    let caret_line = lines[at + 1..]
        .iter()
        .find(|l| l.contains('^'))
        .unwrap_or_else(|| panic!("a caret under the span\n{}", r.context()));
    let col_src = lines[at][..lines[at].find("bias").unwrap()].chars().count();
    let col_caret = caret_line.chars().position(|c| c == '^').unwrap();
    assert_eq!(
        col_src,
        col_caret,
        "the caret is under `bias`\n{}",
        r.context()
    );
    // The column is the one of `bias` on line 4 (1-based, in characters).
    let col = src
        .lines()
        .nth(3)
        .unwrap()
        .split("bias")
        .next()
        .unwrap()
        .chars()
        .count()
        + 1;
    assert!(
        r.stderr.contains(&format!("bad.cell:4:{col}")),
        "{}",
        r.context()
    );

    // A state read without a time index.
    let src = "cell bad(x: [X]) {\n    state h: [H]\n    param W\n    h_t = tanh(W · [h; x_t])\n    output h\n}\n";
    fs::write(dir.join("notime.cell"), src).unwrap();
    let r = cellc(&dir, &["check", "notime.cell"]);
    assert_clean_error(&r, &["notime.cell:4:", "h_{t-1}"]);

    // Neither graph nor run accept a bad cell, and run writes nothing.
    let r = cellc(&dir, &["graph", "bad.cell"]);
    assert_clean_error(&r, &["bad.cell:4:"]);
    assert_run_fails(
        &dir,
        &["run", "bad.cell", "-D", "H=2", "-D", "X=2"],
        &["bad.cell:4:"],
    );
}

#[test]
fn check_of_a_missing_or_binary_file_fails_cleanly() {
    assert_error_cases(
        |_| {},
        vec![
            fails("a missing file", &["check", "nope.cell"], &["nope.cell"]),
            fails("a binary file", &["check", "bin.cell"], &["bin.cell"])
                .with(|dir| fs::write(dir.join("bin.cell"), b"\xff\xfe\x00cell").unwrap()),
            fails("an empty file", &["check", "empty.cell"], &["empty.cell"])
                .with(|dir| fs::write(dir.join("empty.cell"), b"").unwrap()),
        ],
    );
}

#[test]
fn check_reports_an_unused_parameter_as_a_warning() {
    let dir = scratch("check-warning");
    let src = "cell w(x: [X]) {\n    state h: [H]\n    param W, Unused\n    h_t = tanh(W · [h_{t-1}; x_t])\n    output h\n}\n";
    fs::write(dir.join("w.cell"), src).unwrap();
    let r = cellc(&dir, &["check", "w.cell"]).ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("Unused"),
        "{}",
        r.context()
    );
    assert!(r.stderr.contains("w.cell:3:"), "{}", r.context());
}

// ---------------------------------------------------------------------------
// graph
// ---------------------------------------------------------------------------

#[test]
fn graph_text_is_stable_and_shows_the_step() {
    let dir = scratch("graph-text");
    let a = cellc(&dir, &["graph", &model("irnn")]).ok();
    let b = cellc(&dir, &["graph", &model("irnn"), "--format", "text"]).ok();
    assert_eq!(a.stdout, b.stdout, "text is the default and is stable");
    for name in ["irnn", "U", "W", "b", "x", "h", "relu"] {
        assert!(
            a.stdout.contains(name),
            "the graph shows {name}\n{}",
            a.context()
        );
    }
    assert_eq!(
        a.stdout.matches("relu").count(),
        1,
        "one step has one relu\n{}",
        a.context()
    );
    // Every model has a graph in both formats.
    for (_, path) in all_models() {
        let p = path.display().to_string();
        let r = cellc(&dir, &["graph", &p]).ok();
        assert!(!r.stdout.trim().is_empty(), "{}", r.context());
        cellc(&dir, &["graph", &p, "--format", "dot"]).ok();
    }
}

#[track_caller]
fn assert_digraph(r: &Run) {
    let text = r.stdout.trim();
    assert!(
        text.starts_with("digraph"),
        "a Graphviz digraph\n{}",
        r.context()
    );
    assert!(text.ends_with('}'), "{}", r.context());
    assert_eq!(
        text.matches('{').count(),
        text.matches('}').count(),
        "balanced braces\n{}",
        r.context()
    );
    assert!(text.contains("->"), "it has edges\n{}", r.context());
    assert_eq!(
        text.matches('"').count() % 2,
        0,
        "balanced quotes\n{}",
        r.context()
    );
}

/// Lets Graphviz itself parse the output, where it is installed.
fn graphviz_accepts(dir: &Path, dot: &str) -> Option<bool> {
    let probe = Command::new("dot").arg("-V").output().ok()?;
    if !probe.status.success() {
        return None;
    }
    fs::write(dir.join("g.dot"), dot).unwrap();
    let out = Command::new("dot")
        .args(["-Tsvg", "-o"])
        .arg(dir.join("g.svg"))
        .arg(dir.join("g.dot"))
        .output()
        .ok()?;
    Some(out.status.success())
}

#[test]
fn graph_dot_is_a_digraph() {
    let dir = scratch("graph-dot");
    for m in ["irnn", "lstm", "context_rnn"] {
        let r = cellc(&dir, &["graph", &model(m), "--format", "dot"]).ok();
        assert_digraph(&r);
        if let Some(ok) = graphviz_accepts(&dir, &r.stdout) {
            assert!(ok, "Graphviz parses it\n{}", r.context());
        }
    }
}

#[test]
fn graph_unroll_three_steps() {
    let dir = scratch("graph-unroll");
    let one = cellc(&dir, &["graph", &model("irnn")]).ok();
    let three = cellc(&dir, &["graph", &model("irnn"), "--unroll", "3"]).ok();
    let per_step = one.stdout.matches("relu").count();
    assert_eq!(
        three.stdout.matches("relu").count(),
        3 * per_step,
        "three steps\n{}",
        three.context()
    );
    assert_ne!(one.stdout, three.stdout);
    let dot = cellc(
        &dir,
        &["graph", &model("irnn"), "--unroll", "3", "--format", "dot"],
    )
    .ok();
    assert_digraph(&dot);
    assert_eq!(
        dot.stdout.matches("relu").count(),
        3 * per_step,
        "{}",
        dot.context()
    );
    // A two-step lag unrolls too.
    cellc(
        &dir,
        &["graph", &model("higher_order_rnn"), "--unroll", "3"],
    )
    .ok();
    // No steps is refused, not a crash.
    let r = cellc(&dir, &["graph", &model("irnn"), "--unroll", "0"]);
    assert_ne!(r.code, Some(0), "{}", r.context());
    assert!(!r.stderr.contains("panicked"), "{}", r.context());
}

// ---------------------------------------------------------------------------
// Not built yet: they must say so. (Real tests come with the commands.)
// ---------------------------------------------------------------------------

// `train` gets real tests when it is built; until then it must fail with a
// clear "not available yet", exit status 1, and create no file (`compile`:
// tests/aot.rs).
#[test]
fn commands_not_built_yet_say_so() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    let not_yet = ["not available yet"];
    assert_error_cases(
        lstm_files,
        vec![fails(
            "train",
            &[
                "train", m, "--task", "adding", "--steps", "2", "--log", "log.csv", "-o",
                "ckpt.npz",
            ],
            &not_yet,
        )],
    );
}

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

#[test]
fn run_lstm_writes_every_output_and_last_state_as_float32() {
    let dir = scratch("run-lstm");
    let d = lstm_data(&dir, 2);
    let (r, out) = run_lstm(&dir, &[], "out.npz");
    assert!(
        !r.stderr.contains("warning") && !r.stderr.contains("note"),
        "f32 in, f32 out: no note\n{}",
        r.context()
    );
    let names: BTreeSet<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["h", "h.last", "C.last"]),
        "one array per output and per state"
    );
    for (name, shape) in [
        ("h", vec![T, B, H]),
        ("h.last", vec![B, H]),
        ("C.last", vec![B, H]),
    ] {
        let a = get(&out, name);
        assert_eq!(a.shape(), shape.as_slice(), "{name}");
        assert_eq!(a.dtype, "float32", "{name} is float32 by default");
    }
    let (h, h_last, c_last) = lstm_ref(&d.p, &d.x, None, None, false);
    assert_close("h", &as_f64(get(&out, "h")), &h, 1e-4);
    assert_close("h.last", &as_f64(get(&out, "h.last")), &h_last, 1e-4);
    assert_close("C.last", &as_f64(get(&out, "C.last")), &c_last, 1e-4);
    // h.last is the last step's output.
    let h_out = as_f64(get(&out, "h"));
    assert_close(
        "h.last = h[T-1]",
        &as_f64(get(&out, "h.last")),
        &h_out.index_axis(Axis(0), T - 1).to_owned(),
        0.0,
    );
    // Nothing else is left in the directory.
    assert_eq!(
        listing(&dir),
        BTreeSet::from(["p.npz".into(), "x.npy".into(), "out.npz".into()])
    );
}

#[test]
fn run_dtype_f64_writes_float64_and_notes_conversions() {
    let dir = scratch("run-f64");
    let d = lstm_data(&dir, 3);
    let (h, h_last, c_last) = lstm_ref(&d.p, &d.x, None, None, false);

    // f32 files under --dtype f64: converted, with a note.
    let (r, out) = run_lstm(&dir, &["--dtype", "f64"], "out64.npz");
    assert!(
        r.stderr.contains("note") && r.stderr.contains("float32"),
        "a note on the conversion\n{}",
        r.context()
    );
    assert!(
        r.stderr.contains("W_f") || r.stderr.contains("p.npz"),
        "the note names what it converted\n{}",
        r.context()
    );
    for name in ["h", "h.last", "C.last"] {
        let a = get(&out, name);
        assert_eq!(a.dtype, "float64", "{name}");
        assert!(matches!(a.data, ArrayData::F64(_)));
    }
    assert_close("h", &as_f64(get(&out, "h")), &h, 1e-9);
    assert_close("h.last", &as_f64(get(&out, "h.last")), &h_last, 1e-9);
    assert_close("C.last", &as_f64(get(&out, "C.last")), &c_last, 1e-9);

    // f64 files under --dtype f64: no note.
    save_npz_f64(&dir.join("p64.npz"), &d.p);
    save_npy_f64(&dir.join("x64.npy"), &d.x);
    let m = model("lstm");
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "p64.npz", "--input", "x64.npy", "--dtype", "f64", "-o", "o.npz",
        ],
    )
    .ok();
    assert!(
        !r.stderr.contains("note"),
        "nothing to convert\n{}",
        r.context()
    );
    assert_close(
        "h (f64 files)",
        &as_f64(get(&load(&dir.join("o.npz")), "h")),
        &h,
        1e-9,
    );

    // f64 files under the default f32: converted, with a note; float32 out.
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "p64.npz", "--input", "x64.npy", "-o", "o32.npz",
        ],
    )
    .ok();
    assert!(
        r.stderr.contains("note") && r.stderr.contains("float64"),
        "{}",
        r.context()
    );
    assert!(
        r.stderr.contains("x64.npy") || r.stderr.contains("`x`"),
        "the input's note names it\n{}",
        r.context()
    );
    let out = load(&dir.join("o32.npz"));
    assert_eq!(get(&out, "h").dtype, "float32");
    assert_close("h (f64 files, f32 run)", &as_f64(get(&out, "h")), &h, 1e-4);
}

#[test]
fn run_accepts_a_two_axis_input_as_batch_one() {
    let dir = scratch("run-2d");
    let d = lstm_data(&dir, 4);
    let x0 = d.x.index_axis(Axis(1), 0).to_owned();
    assert_eq!(x0.shape(), &[T, X]);
    save_npy(&dir.join("x0.npy"), &x0);
    let m = model("lstm");
    cellc(
        &dir,
        &[
            "run", &m, "--params", "p.npz", "--input", "x0.npy", "-o", "o1.npz",
        ],
    )
    .ok();
    let out = load(&dir.join("o1.npz"));
    assert_eq!(get(&out, "h").shape(), &[T, 1, H]);
    assert_eq!(get(&out, "h.last").shape(), &[1, H]);
    assert_eq!(get(&out, "C.last").shape(), &[1, H]);
    let (_, full) = run_lstm(&dir, &[], "o2.npz");
    let h_full = as_f64(get(&full, "h"));
    let col0 = h_full.slice(s![.., 0..1, ..]).to_owned().into_dyn();
    assert_close(
        "h of [T, X] = column 0 of [T, B, X]",
        &as_f64(get(&out, "h")),
        &col0,
        1e-6,
    );
}

fn context_data(rng: &mut SplitMix64, h: usize, x: usize, k: usize, y: usize) -> Named {
    vec![
        ("U".into(), rng.uniform::<f32>(&[h, x], 0.7)),
        ("W".into(), rng.uniform::<f32>(&[h, h], 0.7)),
        ("F".into(), rng.uniform::<f32>(&[h, k], 0.7)),
        ("V".into(), rng.uniform::<f32>(&[y, h], 0.7)),
        ("G".into(), rng.uniform::<f32>(&[y, k], 0.7)),
    ]
}

#[test]
fn run_two_inputs_from_an_npz() {
    let dir = scratch("run-inputs");
    let mut rng = SplitMix64::new(5);
    let (h, x, k, y) = (4, 3, 2, 6);
    let p = context_data(&mut rng, h, x, k, y);
    let xs = rng.uniform::<f32>(&[T, B, x], 1.0);
    let cs = rng.uniform::<f32>(&[T, B, k], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npz(&dir.join("xs.npz"), &named(&[("x", &xs), ("c", &cs)]));
    // Order in the archive does not matter.
    save_npz(&dir.join("xs_rev.npz"), &named(&[("c", &cs), ("x", &xs)]));
    let m = model("context_rnn");
    cellc(
        &dir,
        &[
            "run", &m, "--params", "p.npz", "--inputs", "xs.npz", "-o", "o.npz",
        ],
    )
    .ok();
    cellc(
        &dir,
        &[
            "run",
            &m,
            "--params",
            "p.npz",
            "--inputs",
            "xs_rev.npz",
            "-o",
            "o_rev.npz",
        ],
    )
    .ok();
    let out = load(&dir.join("o.npz"));
    let names: BTreeSet<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["y", "h", "h.last"]));
    assert_eq!(get(&out, "y").shape(), &[T, B, y]);
    assert_eq!(get(&out, "h").shape(), &[T, B, h]);
    assert_eq!(get(&out, "h.last").shape(), &[B, h]);
    let (y_ref, h_ref, last_ref) = context_ref(&p, &xs, &cs);
    assert_close("y", &as_f64(get(&out, "y")), &y_ref, 1e-4);
    assert_close("h", &as_f64(get(&out, "h")), &h_ref, 1e-4);
    assert_close("h.last", &as_f64(get(&out, "h.last")), &last_ref, 1e-4);
    let out_rev = load(&dir.join("o_rev.npz"));
    assert_close(
        "y (archive order)",
        &as_f64(get(&out_rev, "y")),
        &y_ref,
        1e-4,
    );
}

#[test]
fn run_from_an_initial_state_continues_a_sequence() {
    let dir = scratch("run-init");
    let mut rng = SplitMix64::new(6);
    let p = lstm_params(&mut rng, H, X);
    let x = rng.uniform::<f32>(&[2 * T, B, X], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("full.npy"), &x);
    save_npy(
        &dir.join("first.npy"),
        &x.slice(s![..T, .., ..]).to_owned().into_dyn(),
    );
    save_npy(
        &dir.join("second.npy"),
        &x.slice(s![T.., .., ..]).to_owned().into_dyn(),
    );
    let m = model("lstm");
    let run = |input: &str, extra: &[&str], out: &str| {
        let mut args = vec!["run", &m, "--params", "p.npz", "--input", input, "-o", out];
        args.extend_from_slice(extra);
        cellc(&dir, &args).ok();
        load(&dir.join(out))
    };
    let full = run("full.npy", &[], "full.npz");
    let first = run("first.npy", &[], "first.npz");
    // The state after the first half, by state name.
    let s: Vec<(String, ArrayData)> = vec![
        ("h".into(), get(&first, "h.last").data.clone()),
        ("C".into(), get(&first, "C.last").data.clone()),
    ];
    write_npz(&dir.join("s.npz"), &s).unwrap();
    let second = run("second.npy", &["--init", "s.npz"], "second.npz");
    let cold = run("second.npy", &[], "cold.npz");
    let h_full = as_f64(get(&full, "h"));
    let tail = h_full.slice(s![T.., .., ..]).to_owned().into_dyn();
    assert_close(
        "second half from the state = tail of the whole",
        &as_f64(get(&second, "h")),
        &tail,
        1e-5,
    );
    assert_close(
        "h.last",
        &as_f64(get(&second, "h.last")),
        &as_f64(get(&full, "h.last")),
        1e-5,
    );
    assert_close(
        "C.last",
        &as_f64(get(&second, "C.last")),
        &as_f64(get(&full, "C.last")),
        1e-5,
    );
    assert!(
        max_diff(&as_f64(get(&cold, "h")), &as_f64(get(&second, "h"))) > 1e-3,
        "--init changes the result"
    );
    // Against the reference, with only one of the states given (the other starts at zero).
    let h0 = rng.uniform::<f32>(&[B, H], 1.0);
    save_npz(&dir.join("h_only.npz"), &named(&[("h", &h0)]));
    let out = run("first.npy", &["--init", "h_only.npz"], "h_only_out.npz");
    let zeros = ArrayD::<f32>::zeros(IxDyn(&[B, H]));
    let first_x = x.slice(s![..T, .., ..]).to_owned().into_dyn();
    let (h_ref, _, c_ref) = lstm_ref(&p, &first_x, Some((&h0, &zeros)), None, false);
    assert_close("h from a given h", &as_f64(get(&out, "h")), &h_ref, 1e-4);
    assert_close(
        "C.last from a given h",
        &as_f64(get(&out, "C.last")),
        &c_ref,
        1e-4,
    );
}

#[test]
fn run_lengths_zero_the_outputs_past_each_length() {
    let dir = scratch("run-lengths");
    let mut rng = SplitMix64::new(7);
    let p = lstm_params(&mut rng, H, X);
    let batch = 4;
    let x = rng.uniform::<f32>(&[T, batch, X], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("x.npy"), &x);
    let lengths = [3i64, 0, 5, 1];
    let lens: Vec<usize> = lengths.iter().map(|&v| v as usize).collect();
    save_lengths(&dir.join("l64.npy"), &lengths);
    save_lengths_i32(&dir.join("l32.npy"), &[3, 0, 5, 1]);
    let (_, o64) = run_lstm(&dir, &["--lengths", "l64.npy"], "o64.npz");
    let (_, o32) = run_lstm(&dir, &["--lengths", "l32.npy"], "o32.npz");
    let (_, full) = run_lstm(&dir, &[], "full.npz");
    let (h_ref, h_last_ref, c_last_ref) = lstm_ref(&p, &x, None, Some(&lens), false);
    for (what, out) in [("int64 lengths", &o64), ("int32 lengths", &o32)] {
        let h = as_f64(get(out, "h"));
        assert_eq!(
            h.shape(),
            &[T, batch, H],
            "{what}: outputs keep all T steps"
        );
        assert_close(what, &h, &h_ref, 1e-4);
        assert_close(what, &as_f64(get(out, "h.last")), &h_last_ref, 1e-4);
        assert_close(what, &as_f64(get(out, "C.last")), &c_last_ref, 1e-4);
        let h_full = as_f64(get(&full, "h"));
        for (b, &len) in lens.iter().enumerate() {
            for t in 0..T {
                for j in 0..H {
                    if t < len {
                        assert_eq!(
                            h[[t, b, j]],
                            h_full[[t, b, j]],
                            "{what}: inside the length, as without lengths"
                        );
                    } else {
                        assert_eq!(
                            h[[t, b, j]],
                            0.0,
                            "{what}: h[{t}, {b}] is past length {len}: zero"
                        );
                    }
                }
            }
            // h.last is the value after the sequence's last valid step.
            let last = as_f64(get(out, "h.last"));
            for j in 0..H {
                let want = if len == 0 {
                    0.0
                } else {
                    h_full[[len - 1, b, j]]
                };
                assert_eq!(last[[b, j]], want, "{what}: h.last of sequence {b}");
            }
        }
    }
}

#[test]
fn run_length_zero_keeps_the_initial_state() {
    let dir = scratch("run-length-zero");
    let d = lstm_data(&dir, 8);
    let mut rng = SplitMix64::new(80);
    let h0 = rng.uniform::<f32>(&[B, H], 1.0);
    let c0 = rng.uniform::<f32>(&[B, H], 1.0);
    save_npz(&dir.join("s.npz"), &named(&[("h", &h0), ("C", &c0)]));
    save_lengths(&dir.join("l.npy"), &[0, T as i64]);
    let (_, out) = run_lstm(&dir, &["--init", "s.npz", "--lengths", "l.npy"], "out.npz");
    let h = as_f64(get(&out, "h"));
    assert!(
        h.slice(s![.., 0, ..]).iter().all(|&v| v == 0.0),
        "a length-0 sequence has all-zero outputs"
    );
    let h_last = as_f64(get(&out, "h.last"));
    let c_last = as_f64(get(&out, "C.last"));
    for j in 0..H {
        assert_eq!(
            h_last[[0, j]],
            f64::from(h0[[0, j]]),
            "h.last of a length-0 sequence is its initial state"
        );
        assert_eq!(
            c_last[[0, j]],
            f64::from(c0[[0, j]]),
            "C.last of a length-0 sequence is its initial state"
        );
    }
    let (h_ref, hl_ref, cl_ref) = lstm_ref(&d.p, &d.x, Some((&h0, &c0)), Some(&[0, T]), false);
    assert_close("h", &h, &h_ref, 1e-4);
    assert_close("h.last", &h_last, &hl_ref, 1e-4);
    assert_close("C.last", &c_last, &cl_ref, 1e-4);
}

#[test]
fn run_lengths_zero_intermediate_outputs_too() {
    // elman's `y` is an intermediate (a softmax, never zero inside a length).
    let dir = scratch("run-lengths-intermediate");
    let mut rng = SplitMix64::new(9);
    let (h, x, y) = (4, 3, 5);
    let p: Named = vec![
        ("U".into(), rng.uniform::<f32>(&[h, x], 0.7)),
        ("W".into(), rng.uniform::<f32>(&[h, h], 0.7)),
        ("V".into(), rng.uniform::<f32>(&[y, h], 0.7)),
    ];
    let xs = rng.uniform::<f32>(&[T, 3, x], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("x.npy"), &xs);
    save_lengths(&dir.join("l.npy"), &[2, 0, 5]);
    let m = model("elman");
    cellc(
        &dir,
        &[
            "run",
            &m,
            "--params",
            "p.npz",
            "--input",
            "x.npy",
            "--lengths",
            "l.npy",
            "-o",
            "o.npz",
        ],
    )
    .ok();
    let out = load(&dir.join("o.npz"));
    let (y_ref, h_ref, last_ref) = elman_ref(&p, &xs, Some(&[2, 0, 5]));
    let y_out = as_f64(get(&out, "y"));
    assert_close("y", &y_out, &y_ref, 1e-4);
    assert_close("h", &as_f64(get(&out, "h")), &h_ref, 1e-4);
    assert_close("h.last", &as_f64(get(&out, "h.last")), &last_ref, 1e-4);
    assert!(
        y_out.slice(s![2.., 0, ..]).iter().all(|&v| v == 0.0),
        "y past length 2 is zero"
    );
    assert!(
        y_out.slice(s![.., 1, ..]).iter().all(|&v| v == 0.0),
        "y of a length-0 sequence is zero"
    );
    assert!(
        (y_out.slice(s![1, 0, ..]).sum() - 1.0).abs() < 1e-5,
        "inside the length y is a distribution"
    );
}

#[test]
fn run_reverse_with_lengths() {
    let dir = scratch("run-reverse");
    let d = lstm_data(&dir, 10);
    let lens = [3usize, 5];
    save_lengths(&dir.join("l.npy"), &[3, 5]);
    let (_, out) = run_lstm(&dir, &["--reverse", "--lengths", "l.npy"], "rev.npz");
    let (h_ref, hl_ref, cl_ref) = lstm_ref(&d.p, &d.x, None, Some(&lens), true);
    let h = as_f64(get(&out, "h"));
    assert_close("h (reverse)", &h, &h_ref, 1e-4);
    assert_close(
        "h.last (reverse)",
        &as_f64(get(&out, "h.last")),
        &hl_ref,
        1e-4,
    );
    assert_close(
        "C.last (reverse)",
        &as_f64(get(&out, "C.last")),
        &cl_ref,
        1e-4,
    );
    assert!(
        h.slice(s![3.., 0, ..]).iter().all(|&v| v == 0.0),
        "past the length: zero"
    );
    // The same, from the binary alone: each sequence's valid part reversed in
    // time and run forwards gives the same values at mirrored positions.
    let m = model("lstm");
    for (b, &len) in lens.iter().enumerate() {
        let mut rev = ArrayD::<f32>::zeros(IxDyn(&[len, X]));
        for t in 0..len {
            rev.slice_mut(s![t, ..])
                .assign(&d.x.slice(s![len - 1 - t, b, ..]));
        }
        let input = format!("rev{b}.npy");
        let o = format!("fwd{b}.npz");
        save_npy(&dir.join(&input), &rev);
        cellc(
            &dir,
            &["run", &m, "--params", "p.npz", "--input", &input, "-o", &o],
        )
        .ok();
        let fwd = load(&dir.join(&o));
        let hf = as_f64(get(&fwd, "h"));
        for t in 0..len {
            for j in 0..H {
                let (a, e) = (h[[t, b, j]], hf[[len - 1 - t, 0, j]]);
                assert!(
                    (a - e).abs() < 1e-5,
                    "sequence {b}, position {t}: {a} vs {e}"
                );
            }
        }
        let hl = as_f64(get(&out, "h.last"));
        let hlf = as_f64(get(&fwd, "h.last"));
        for j in 0..H {
            assert!(
                (hl[[b, j]] - hlf[[0, j]]).abs() < 1e-5,
                "h.last of sequence {b}"
            );
        }
    }
    // Without lengths, reverse runs the whole sequence backwards.
    let (_, all) = run_lstm(&dir, &["--reverse"], "rev_all.npz");
    let (h_all, _, _) = lstm_ref(&d.p, &d.x, None, None, true);
    assert_close(
        "h (reverse, no lengths)",
        &as_f64(get(&all, "h")),
        &h_all,
        1e-4,
    );
}

#[test]
fn run_reverse_reads_two_steps_back_in_processing_order() {
    // higher_order_rnn reads h_{t-2}; with --reverse, "back" is later in time.
    let dir = scratch("run-reverse-lag2");
    let mut rng = SplitMix64::new(11);
    let p: Named = vec![
        ("U".into(), rng.uniform::<f32>(&[H, X], 0.8)),
        ("W_1".into(), rng.uniform::<f32>(&[H, H], 0.8)),
        ("W_2".into(), rng.uniform::<f32>(&[H, H], 0.8)),
        ("b".into(), rng.uniform::<f32>(&[H], 0.3)),
    ];
    let x = rng.uniform::<f32>(&[T, B, X], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("x.npy"), &x);
    let lens = [4usize, 5];
    save_lengths(&dir.join("l.npy"), &[4, 5]);
    let m = model("higher_order_rnn");
    cellc(
        &dir,
        &[
            "run",
            &m,
            "--params",
            "p.npz",
            "--input",
            "x.npy",
            "--reverse",
            "--lengths",
            "l.npy",
            "-o",
            "rev.npz",
        ],
    )
    .ok();
    let h = as_f64(get(&load(&dir.join("rev.npz")), "h"));
    for (b, &len) in lens.iter().enumerate() {
        let mut rev = ArrayD::<f32>::zeros(IxDyn(&[len, X]));
        for t in 0..len {
            rev.slice_mut(s![t, ..])
                .assign(&x.slice(s![len - 1 - t, b, ..]));
        }
        let (input, o) = (format!("rev{b}.npy"), format!("fwd{b}.npz"));
        save_npy(&dir.join(&input), &rev);
        cellc(
            &dir,
            &["run", &m, "--params", "p.npz", "--input", &input, "-o", &o],
        )
        .ok();
        let hf = as_f64(get(&load(&dir.join(&o)), "h"));
        for t in 0..len {
            for j in 0..H {
                let (a, e) = (h[[t, b, j]], hf[[len - 1 - t, 0, j]]);
                assert!(
                    (a - e).abs() < 1e-5,
                    "sequence {b}, position {t}: {a} vs {e}"
                );
            }
        }
        for t in len..T {
            assert!(h.slice(s![t, b, ..]).iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn run_learned_initial_state_and_its_override() {
    let dir = scratch("run-learned-init");
    let mut rng = SplitMix64::new(12);
    let p: Named = vec![
        ("h_0".into(), rng.uniform::<f32>(&[H], 1.0)),
        ("U".into(), rng.uniform::<f32>(&[H, X], 0.7)),
        ("W".into(), rng.uniform::<f32>(&[H, H], 0.7)),
        ("b".into(), rng.uniform::<f32>(&[H], 0.3)),
    ];
    let x = rng.uniform::<f32>(&[T, B, X], 1.0);
    save_npz(&dir.join("p.npz"), &p);
    save_npy(&dir.join("x.npy"), &x);
    save_lengths(&dir.join("l.npy"), &[0, T as i64]);
    let m = model("learned_init_rnn");
    let run = |extra: &[&str], o: &str| {
        let mut args = vec!["run", &m, "--params", "p.npz", "--input", "x.npy", "-o", o];
        args.extend_from_slice(extra);
        cellc(&dir, &args).ok();
        load(&dir.join(o))
    };
    // h_0 is the state before the first step, for every sequence of the batch.
    let h0 = vector(&p, "h_0");
    let init = Array2::from_shape_fn((B, H), |(_, j)| h0[j]);
    let learned = run(&[], "learned.npz");
    let (h_ref, last_ref) = tanh_rnn_ref(&p, &x, &init, None);
    assert_close("h from h_0", &as_f64(get(&learned, "h")), &h_ref, 1e-4);
    assert_close(
        "h.last from h_0",
        &as_f64(get(&learned, "h.last")),
        &last_ref,
        1e-4,
    );
    let names: BTreeSet<&str> = learned.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["h", "h.last"]));
    // A length-0 sequence ends where it starts: at h_0.
    let zero_len = run(&["--lengths", "l.npy"], "zero_len.npz");
    let last = as_f64(get(&zero_len, "h.last"));
    for j in 0..H {
        assert_eq!(last[[0, j]], h0[j], "h.last of a length-0 sequence is h_0");
    }
    // --init overrides h_0.
    let s = rng.uniform::<f32>(&[B, H], 1.0);
    save_npz(&dir.join("s.npz"), &named(&[("h", &s)]));
    let given = run(&["--init", "s.npz"], "given.npz");
    let (h_ref, last_ref) = tanh_rnn_ref(&p, &x, &to64(&s).into_dimensionality().unwrap(), None);
    assert_close("h from --init", &as_f64(get(&given, "h")), &h_ref, 1e-4);
    assert_close(
        "h.last from --init",
        &as_f64(get(&given, "h.last")),
        &last_ref,
        1e-4,
    );
    assert!(max_diff(&as_f64(get(&given, "h")), &as_f64(get(&learned, "h"))) > 1e-3);
    let given_zero = run(&["--init", "s.npz", "--lengths", "l.npy"], "given_zero.npz");
    let last = as_f64(get(&given_zero, "h.last"));
    for j in 0..H {
        assert_eq!(
            last[[0, j]],
            f64::from(s[[0, j]]),
            "the given state, not h_0"
        );
    }
}

#[test]
fn run_infers_dimensions_from_the_arrays() {
    let dir = scratch("run-infer");
    lstm_data(&dir, 13);
    // No -D at all: H and X come from the arrays.
    let (_, inferred) = run_lstm(&dir, &[], "inferred.npz");
    // -D that agrees with the arrays changes nothing.
    let (_, defined) = run_lstm(&dir, &["-D", "H=4", "-D", "X=3"], "defined.npz");
    assert_close(
        "same with -D",
        &as_f64(get(&defined, "h")),
        &as_f64(get(&inferred, "h")),
        0.0,
    );
    // Without -o, the summary tells the sizes it found.
    let m = model("lstm");
    let r = cellc(&dir, &["run", &m, "--params", "p.npz", "--input", "x.npy"]).ok();
    assert!(
        r.stdout.contains("H=4") && r.stdout.contains("X=3"),
        "{}",
        r.context()
    );
}

#[test]
fn run_binds_a_free_dimension_from_the_array() {
    let dir = scratch("run-free");
    let m = model("elman");
    for (y, seed) in [(5usize, 14u64), (7, 15)] {
        let mut rng = SplitMix64::new(seed);
        let p: Named = vec![
            ("U".into(), rng.uniform::<f32>(&[H, X], 0.7)),
            ("W".into(), rng.uniform::<f32>(&[H, H], 0.7)),
            ("V".into(), rng.uniform::<f32>(&[y, H], 0.7)),
        ];
        let x = rng.uniform::<f32>(&[T, B, X], 1.0);
        save_npz(&dir.join("p.npz"), &p);
        save_npy(&dir.join("x.npy"), &x);
        cellc(
            &dir,
            &[
                "run", &m, "--params", "p.npz", "--input", "x.npy", "-o", "o.npz",
            ],
        )
        .ok();
        let out = load(&dir.join("o.npz"));
        assert_eq!(get(&out, "y").shape(), &[T, B, y], "V_rows = {y} from V");
        let (y_ref, _, _) = elman_ref(&p, &x, None);
        assert_close("y", &as_f64(get(&out, "y")), &y_ref, 1e-4);
        // -D V_rows agreeing with the array is fine.
        let vr = format!("V_rows={y}");
        cellc(
            &dir,
            &[
                "run", &m, "--params", "p.npz", "--input", "x.npy", "-D", &vr, "-o", "o2.npz",
            ],
        )
        .ok();
    }
}

#[test]
fn run_with_generated_data_prints_a_summary() {
    let dir = scratch("run-generated");
    let r = cellc(&dir, &["run", &model("lstm"), "-D", "H=4", "-D", "X=3"]).ok();
    for name in ["h", "h.last", "C.last"] {
        assert!(
            r.stdout.contains(name),
            "the summary lists {name}\n{}",
            r.context()
        );
    }
    assert!(listing(&dir).is_empty(), "no file is written without -o");
    // Every model runs on generated data.
    for (name, path) in all_models() {
        let p = path.display().to_string();
        let sig = cellc(&dir, &["check", &p]).ok();
        let defines = small_defines(&sig.stdout);
        let mut args: Vec<&str> = vec!["run", &p];
        args.extend(defines.iter().map(String::as_str));
        let r = cellc(&dir, &args).ok();
        assert!(
            r.stdout.contains(".last"),
            "{name}: a summary\n{}",
            r.context()
        );
        // And with -o, every output and state is in the file.
        let o = format!("{name}.npz");
        args.extend(["-o", &o]);
        cellc(&dir, &args).ok();
        let out = load(&dir.join(&o));
        assert!(
            out.keys().any(|k| k == "h.last"),
            "{name}: {:?}",
            out.keys()
        );
        for (k, a) in &out {
            let want = if k.ends_with(".last") { 2 } else { 3 };
            assert_eq!(
                a.shape().len(),
                want,
                "{name}: {k} has shape {:?}",
                a.shape()
            );
        }
    }
}

#[test]
fn run_reads_compressed_npz_and_ignores_readout_arrays() {
    let dir = scratch("run-compressed");
    let d = lstm_data(&dir, 16);
    let (_, plain) = run_lstm(&dir, &[], "plain.npz");
    // What numpy.savez_compressed writes: deflated members.
    let members: Vec<(&str, Vec<u8>)> =
        d.p.iter()
            .map(|(n, a)| (n.as_str(), npy_bytes(&dir, a)))
            .collect();
    save_zip(&dir.join("pz.npz"), &members, true);
    let m = model("lstm");
    cellc(
        &dir,
        &[
            "run", &m, "--params", "pz.npz", "--input", "x.npy", "-o", "z.npz",
        ],
    )
    .ok();
    assert_close(
        "compressed params",
        &as_f64(get(&load(&dir.join("z.npz")), "h")),
        &as_f64(get(&plain, "h")),
        0.0,
    );
    // A checkpoint's read-out head (`readout.*`) is not a parameter of the cell.
    let mut p = d.p.clone();
    p.push(("readout.W".into(), ArrayD::zeros(IxDyn(&[2, H]))));
    p.push(("readout.b".into(), ArrayD::zeros(IxDyn(&[2]))));
    save_npz(&dir.join("ckpt.npz"), &p);
    cellc(
        &dir,
        &[
            "run", &m, "--params", "ckpt.npz", "--input", "x.npy", "-o", "r.npz",
        ],
    )
    .ok();
    assert_close(
        "readout ignored",
        &as_f64(get(&load(&dir.join("r.npz")), "h")),
        &as_f64(get(&plain, "h")),
        0.0,
    );
}

#[test]
fn run_output_over_an_existing_file_replaces_it() {
    let dir = scratch("run-overwrite");
    lstm_data(&dir, 17);
    fs::write(dir.join("out.npz"), b"old contents").unwrap();
    let (_, out) = run_lstm(&dir, &[], "out.npz");
    assert!(out.contains_key("h"));
    assert_eq!(
        listing(&dir).len(),
        3,
        "no temporary file is left: {:?}",
        listing(&dir)
    );
}

/// Runs `cellc ARGS` in `dir`, stdout kept as bytes.
fn raw(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the cellc binary runs")
}

#[test]
fn run_writes_its_npz_to_dev_stdout_through_a_pipe() {
    let dir = scratch("run-stdout");
    let m = model("lstm");
    // `-o -` is stdout too, and creates no file named `-`.
    let dash = raw(&dir, &["run", &m, "-D", "X=3", "-D", "H=4", "-o", "-"]);
    assert!(dash.status.success() && dash.stdout.starts_with(b"PK"));
    assert!(!dir.join("-").exists(), "no file named `-`");
    let out = raw(
        &dir,
        &["run", &m, "-D", "X=3", "-D", "H=4", "-o", "/dev/stdout"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `Command::output` gives the child a pipe for stdout.
    assert!(out.stdout.starts_with(b"PK"), "a zip archive on stdout");
    fs::write(dir.join("piped.npz"), &out.stdout).unwrap();
    let back = read_npz(&dir.join("piped.npz")).unwrap();
    assert!(back.iter().any(|(name, _)| name == "h"), "{:?}", back.len());
}

#[cfg(unix)]
#[test]
fn run_output_over_an_existing_file_keeps_its_mode_and_refuses_a_read_only_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("run-modes");
    let m = model("lstm");
    let args = ["run", m.as_str(), "-D", "X=3", "-D", "H=4", "-o", "out.npz"];
    fs::write(dir.join("out.npz"), b"old").unwrap();
    fs::set_permissions(dir.join("out.npz"), fs::Permissions::from_mode(0o640)).unwrap();
    let out = raw(&dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = fs::metadata(dir.join("out.npz"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o640, "the mode is kept");
    assert_ne!(fs::read(dir.join("out.npz")).unwrap(), b"old");

    fs::write(dir.join("out.npz"), b"old").unwrap();
    fs::set_permissions(dir.join("out.npz"), fs::Permissions::from_mode(0o444)).unwrap();
    let out = raw(&dir, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("read-only") && err.contains("out.npz"),
        "{err}"
    );
    assert_eq!(
        fs::read(dir.join("out.npz")).unwrap(),
        b"old",
        "nothing changed"
    );
    assert_eq!(
        listing(&dir).len(),
        1,
        "no temporary file: {:?}",
        listing(&dir)
    );
}

/// `-o` is refused before any work when it would destroy one of the command's
/// own inputs (by name or through a link), or names an `.npz` archive `.npy`.
#[cfg(unix)]
#[test]
fn output_over_an_input_or_with_an_npy_name_is_refused() {
    let m = model("lstm");
    let run = ["run", m.as_str(), "--params", "p.npz", "--input", "x.npy"];
    let with = |extra: &[&'static str]| [&run[..], extra].concat();
    let link = |dir: &Path| std::os::unix::fs::symlink("p.npz", dir.join("link.npz")).unwrap();
    let cotangent = |dir: &Path| {
        fs::copy(dir.join("p.npz"), dir.join("dy.npz"))
            .map(|_| ())
            .unwrap()
    };
    let cell = m.clone();
    let grad = [
        "grad",
        m.as_str(),
        "--params",
        "p.npz",
        "--input",
        "x.npy",
        "--cotangent",
        "dy.npz",
        "-o",
        "dy.npz",
    ];
    assert_error_cases(
        lstm_files,
        vec![
            fails(
                "-o the parameter file",
                &with(&["-o", "p.npz"]),
                &["p.npz", "--params"],
            ),
            fails(
                "-o a link to the parameters",
                &with(&["-o", "link.npz"]),
                &["link.npz", "--params"],
            )
            .with(link),
            fails("-o the cotangent file", &grad, &["dy.npz", "--cotangent"]).with(cotangent),
            fails(
                "-o an .npy name",
                &with(&["-o", "out.npy"]),
                &["out.npy", ".npz", "out.npz"],
            ),
            fails("-o the input itself", &with(&["-o", "x.npy"]), &["x.npy"]),
            fails(
                "-o the cell file",
                &["run", "my.cell", "-D", "X=3", "-D", "H=4", "-o", "my.cell"],
                &["my.cell", "cell file"],
            )
            .with(move |dir| fs::copy(&cell, dir.join("my.cell")).map(|_| ()).unwrap()),
        ],
    );
}

/// Text for stdout into a pipe that closes early (`| head -1`) is a clean
/// error, never a panic; and `graph --unroll` is bounded by the nodes it would
/// build, not by T alone.
#[test]
fn stdout_closed_early_is_an_error_and_unrolling_is_bounded_in_nodes() {
    use std::io::Read;
    let dir = scratch("broken-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(["graph", &model("lstm"), "--unroll", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here: the rest of the text meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write to stdout") && !err.contains("panicked"),
        "{err}"
    );

    let r = cellc(&dir, &["graph", &model("lstm"), "--unroll", "100000"]);
    assert_eq!(r.code, Some(1), "{}", r.context());
    assert!(
        r.stderr.contains("nodes") && r.stderr.contains("at most --unroll"),
        "{}",
        r.context()
    );
    let r = cellc(
        &dir,
        &["graph", &model("lstm"), "--unroll", "20000", "--grad"],
    );
    assert_eq!(r.code, Some(1), "{}", r.context());
}

/// An interrupted write leaves neither the target nor its temporary file: the
/// signal arrives while the temporary file exists (the test waits for it),
/// and the process still ends by that signal.
#[cfg(unix)]
#[test]
fn an_interrupted_write_leaves_no_file() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("interrupted");
    // An elementwise cell, so the run is quick and the output large.
    fs::write(
        dir.join("big.cell"),
        "cell big(x: [X]) {\n state h: [X]\n h_t = tanh(h_{t-1} + x_t)\n output h\n}\n",
    )
    .unwrap();
    let is_temp = |n: &String| n.contains(".tmp-");
    for (signal, name) in [(15, "TERM"), (2, "INT")] {
        let mut seen = false;
        // A faster disk than expected finishes the write before it is seen:
        // then try again with more to write.
        for batch in ["64", "128", "256"] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_cellc"))
                .args([
                    "run", "big.cell", "-D", "X=4096", "--seq", "64", "--batch", batch,
                ])
                .args(["-o", "out.npz"])
                .current_dir(&*dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if listing(&dir).iter().any(is_temp) {
                    Command::new("kill")
                        .args([format!("-{name}"), child.id().to_string()])
                        .status()
                        .unwrap();
                    break None;
                }
            };
            match status {
                Some(status) => {
                    assert!(status.success(), "the run itself works");
                    let _ = fs::remove_file(dir.join("out.npz"));
                }
                None => {
                    let status = child.wait().unwrap();
                    // Either the signal ended it, or the write finished first.
                    if status.success() {
                        let _ = fs::remove_file(dir.join("out.npz"));
                        continue;
                    }
                    assert_eq!(status.signal(), Some(signal), "ended by SIG{name}");
                    let left: Vec<String> = listing(&dir)
                        .into_iter()
                        .filter(|n| n != "big.cell")
                        .collect();
                    assert!(
                        left.is_empty(),
                        "after SIG{name}, nothing is left: {left:?}"
                    );
                    seen = true;
                    break;
                }
            }
        }
        assert!(seen, "SIG{name} never arrived during a write");
    }
}

// ---------------------------------------------------------------------------
// Errors: one clear message, exit status 1, the directory left as it was
// ---------------------------------------------------------------------------
//
// Each table runs its cases through `common::errors`, which checks for every
// case: the exit status, no panic, nothing on stdout, exactly one error
// message holding the needles, and every file below the case's directory
// unchanged (no output, no temporary file).

/// `run lstm --params P --input x.npy` with the given parameter file.
fn lstm_args<'a>(m: &'a str, params: &'a str) -> Vec<&'a str> {
    vec!["run", m, "--params", params, "--input", "x.npy"]
}

/// A `run` case: `ARGS -o out.npz` fails, as `assert_run_fails` runs it.
fn run_fails(name: &str, args: &[&str], needles: &[&str]) -> ErrorCase {
    let mut all = args.to_vec();
    all.extend(["-o", "out.npz"]);
    fails(name, &all, needles)
}

/// The LSTM data set every `run` error table starts from.
fn lstm_files(dir: &Path) {
    lstm_data(dir, 20);
}

/// Writes `FILE`: the LSTM's parameters with `change` made.
fn lstm_params_with(file: &'static str, change: impl Fn(&mut Named) + 'static) -> impl Fn(&Path) {
    move |dir| {
        let mut p = lstm_data(dir, 20).p;
        change(&mut p);
        save_npz(&dir.join(file), &p);
    }
}

/// Makes the parameter `name` the array `a`.
fn replace(name: &'static str, a: ArrayD<f32>) -> impl Fn(&mut Named) {
    move |p| p.iter_mut().find(|(n, _)| n == name).unwrap().1 = a.clone()
}

/// Writes `FILE`: the LSTM's parameters, with `name` of another dtype.
fn lstm_params_as(file: &'static str, name: &'static str, a: ArrayData) -> impl Fn(&Path) {
    move |dir| {
        let mut p: Vec<(String, ArrayData)> = lstm_data(dir, 20)
            .p
            .iter()
            .map(|(n, a)| (n.clone(), ArrayData::F32(a.clone())))
            .collect();
        p.iter_mut().find(|(n, _)| n == name).unwrap().1 = a.clone();
        write_npz(&dir.join(file), &p).unwrap();
    }
}

fn zeros(shape: &[usize]) -> ArrayD<f32> {
    ArrayD::zeros(IxDyn(shape))
}

/// Writes an `.npy` of zeros of `shape`.
fn zeros_npy(file: &'static str, shape: &[usize]) -> impl Fn(&Path) + use<> {
    let shape = shape.to_vec();
    move |dir| save_npy(&dir.join(file), &zeros(&shape))
}

#[test]
fn run_rejects_parameters_that_do_not_fit_the_cell() {
    let m = model("lstm");
    let bad = lstm_args(&m, "bad.npz");
    assert_error_cases(
        lstm_files,
        vec![
            // Names the array and its expected shape.
            run_fails("a parameter left out", &bad, &["b_o", "missing", "[H]|[4]"]).with(
                lstm_params_with("bad.npz", |p| p.retain(|(n, _)| n != "b_o")),
            ),
            // Names the array, and which parameters the cell does have.
            run_fails("a parameter the cell lacks", &bad, &["W_extra", "W_f"]).with(
                lstm_params_with("bad.npz", |p| {
                    p.push(("W_extra".into(), zeros(&[H, H])));
                }),
            ),
            // A bias one too long: it contradicts H from the weights.
            run_fails("a bias one too long", &bad, &["b_o", "H", "4"])
                .with(lstm_params_with("bad.npz", replace("b_o", zeros(&[H + 1])))),
            run_fails("a weight with a column too many", &bad, &["W_o", "H+X"]).with(
                lstm_params_with("bad.npz", replace("W_o", zeros(&[H, H + X + 1]))),
            ),
            run_fails("a weight transposed", &bad, &["W_i"]).with(lstm_params_with(
                "bad.npz",
                replace("W_i", zeros(&[H + X, H])),
            )),
            run_fails("a bias of two axes", &bad, &["b_f", "[H]"])
                .with(lstm_params_with("bad.npz", replace("b_f", zeros(&[H, 1])))),
            run_fails("a weight flattened", &bad, &["W_f", "[H, H+X]"]).with(lstm_params_with(
                "bad.npz",
                replace("W_f", zeros(&[H * (H + X)])),
            )),
            run_fails("an int64 parameter", &bad, &["b_f", "int64", "float"]).with(lstm_params_as(
                "bad.npz",
                "b_f",
                ArrayData::Int(ArrayD::zeros(IxDyn(&[H]))),
            )),
            // Under --dtype f64, what is expected is float64.
            run_fails(
                "an int64 parameter under --dtype f64",
                &[&bad[..], &["--dtype", "f64"]].concat(),
                &["b_f", "int64", "float64"],
            )
            .with(lstm_params_as(
                "bad.npz",
                "b_f",
                ArrayData::Int(ArrayD::zeros(IxDyn(&[H]))),
            )),
            run_fails("a bool parameter", &bad, &["W_C", "bool", "float"]).with(lstm_params_as(
                "bad.npz",
                "W_C",
                ArrayData::Bool(ArrayD::from_elem(IxDyn(&[H, H + X]), true)),
            )),
        ],
    );
}

fn context_files(dir: &Path, seed: u64, t_x: usize, t_c: usize) {
    let mut rng = SplitMix64::new(seed);
    save_npz(&dir.join("p.npz"), &context_data(&mut rng, 4, 3, 2, 5));
    let x = rng.uniform::<f32>(&[t_x, B, 3], 1.0);
    let c = rng.uniform::<f32>(&[t_c, B, 2], 1.0);
    save_npz(&dir.join("xs.npz"), &named(&[("x", &x), ("c", &c)]));
    save_npz(
        &dir.join("wrong_name.npz"),
        &named(&[("x", &x), ("context", &c)]),
    );
    save_npz(&dir.join("only_x.npz"), &named(&[("x", &x)]));
    save_npy(&dir.join("x.npy"), &x);
}

/// The context RNN's files, every input `T` steps long.
fn context_files_of_t(dir: &Path) {
    context_files(dir, 25, T, T);
}

#[test]
fn run_rejects_inputs_that_do_not_fit_the_cell() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    let context_rnn = model("context_rnn");
    let c = context_rnn.as_str();
    let lstm_input = |file: &'static str| ["run", m, "--params", "p.npz", "--input", file];
    let context =
        |flag: &'static str, file: &'static str| ["run", c, "--params", "p.npz", flag, file];
    assert_error_cases(
        lstm_files,
        vec![
            run_fails(
                "an input of the wrong width",
                &lstm_input("x5.npy"),
                &["`x`|x5.npy", "X"],
            )
            .with(zeros_npy("x5.npy", &[T, B, X + 2])),
            run_fails(
                "an input of one axis",
                &lstm_input("x1.npy"),
                &["`x`|x1.npy", "[T, B, X]"],
            )
            .with(zeros_npy("x1.npy", &[X])),
            run_fails(
                "an input of four axes",
                &lstm_input("x4.npy"),
                &["`x`|x4.npy", "[T, B, X]"],
            )
            .with(zeros_npy("x4.npy", &[T, B, 1, X])),
            run_fails(
                "an int64 input",
                &lstm_input("xi.npy"),
                &["xi.npy|`x`", "int64", "float"],
            )
            .with(|dir| {
                write_npy(
                    &dir.join("xi.npy"),
                    &ArrayData::Int(ArrayD::zeros(IxDyn(&[T, B, X]))),
                )
                .unwrap()
            }),
            run_fails(
                "an input array named as no input",
                &context("--inputs", "wrong_name.npz"),
                &["context", "input"],
            )
            .with(context_files_of_t),
            // An input left out is named too.
            run_fails(
                "an input left out",
                &context("--inputs", "only_x.npz"),
                &["`c`", "missing"],
            )
            .with(context_files_of_t),
            // A one-input cell with a wrongly named array in --inputs.
            run_fails(
                "a one-input cell's input array wrongly named",
                &["run", m, "--params", "p.npz", "--inputs", "xs.npz"],
                &["`input`", "x)|`x`|: x"],
            )
            .with(|dir| {
                let d = lstm_data(dir, 25);
                save_npz(&dir.join("xs.npz"), &named(&[("input", &d.x)]));
            }),
            run_fails(
                "--input for a cell with two inputs",
                &context("--input", "x.npy"),
                &["--input", "--inputs"],
            )
            .with(context_files_of_t),
            run_fails(
                "inputs that disagree on the steps",
                &context("--inputs", "xs.npz"),
                &["`x`", "`c`", "7", "6"],
            )
            .with(|dir| context_files(dir, 27, 7, 6)),
            run_fails(
                "inputs that disagree on the batch",
                &context("--inputs", "xs.npz"),
                &["`x`", "`c`", "batch"],
            )
            .with(|dir| {
                let mut rng = SplitMix64::new(28);
                save_npz(&dir.join("p.npz"), &context_data(&mut rng, 4, 3, 2, 5));
                let x = rng.uniform::<f32>(&[T, 2, 3], 1.0);
                let c = rng.uniform::<f32>(&[T, 3, 2], 1.0);
                save_npz(&dir.join("xs.npz"), &named(&[("x", &x), ("c", &c)]));
            }),
        ],
    );
}

#[test]
fn run_rejects_files_it_cannot_read() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    let base = ["run", m, "--params", "p.npz", "--input", "x.npy"];
    let with = |flag: &'static str, file: &'static str| [&base[..], &[flag, file]].concat();
    let input = |file: &'static str| ["run", m, "--params", "p.npz", "--input", file];
    let params = |file: &'static str| lstm_args(m, file);
    // The LSTM's files, and files that are not NumPy at all.
    let common = |dir: &Path| {
        lstm_files(dir);
        fs::write(dir.join("text.npy"), "x = [1, 2, 3]\n").unwrap();
        fs::write(dir.join("text.npz"), "W_f = [[1, 2], [3, 4]]\n").unwrap();
        fs::write(dir.join("empty.npz"), "").unwrap();
    };
    /// Writes `to`: the first `keep(len)` bytes of `from`.
    fn cut(from: &'static str, to: &'static str, keep: fn(usize) -> usize) -> impl Fn(&Path) {
        move |dir| {
            let bytes = fs::read(dir.join(from)).unwrap();
            fs::write(dir.join(to), &bytes[..keep(bytes.len())]).unwrap();
        }
    }
    let truncated = "truncated|incomplete|cut short";
    assert_error_cases(
        common,
        vec![
            run_fails(
                "a text file as --input",
                &input("text.npy"),
                &["text.npy", "NumPy|npy"],
            ),
            run_fails(
                "a text file as --params",
                &params("text.npz"),
                &["text.npz", "npz|zip|NumPy"],
            ),
            run_fails(
                "an empty file as --params",
                &params("empty.npz"),
                &["empty.npz"],
            ),
            run_fails(
                "a text file as --inputs",
                &["run", m, "--params", "p.npz", "--inputs", "text.npz"],
                &["text.npz"],
            ),
            run_fails(
                "a text file as --init",
                &with("--init", "text.npz"),
                &["text.npz"],
            ),
            run_fails(
                "a text file as --lengths",
                &with("--lengths", "text.npy"),
                &["text.npy"],
            ),
            // An .npy where an .npz is expected, and the other way round.
            run_fails("an .npy as --params", &params("x.npy"), &["x.npy", "npz"]),
            run_fails("an .npz as --input", &input("p.npz"), &["p.npz"]),
            run_fails(
                "an .npy cut short in its data",
                &input("cut.npy"),
                &["cut.npy", "truncated"],
            )
            .with(cut("x.npy", "cut.npy", |n| n - 10)),
            run_fails(
                "an .npy cut short in its header",
                &input("head.npy"),
                &["head.npy", "truncated"],
            )
            .with(cut("x.npy", "head.npy", |_| 20)),
            // An archive that is whole, holding a member whose data is cut short.
            run_fails(
                "an .npz member cut short",
                &params("cut.npz"),
                &["W_C", "cut.npz", "truncated"],
            )
            .with(|dir| {
                let d = lstm_data(dir, 20);
                let members: Vec<(&str, Vec<u8>)> =
                    d.p.iter()
                        .map(|(n, a)| {
                            let mut b = npy_bytes(dir, a);
                            if n == "W_C" {
                                b.truncate(b.len() - 8);
                            }
                            (n.as_str(), b)
                        })
                        .collect();
                save_zip(&dir.join("cut.npz"), &members, false);
            }),
            // A download cut short: the end of the zip archive is missing. The
            // message should say that the file is truncated (or incomplete), not
            // only that it is "not an npz file" with the zip library's jargon.
            run_fails(
                "an .npz cut in half",
                &params("half.npz"),
                &["half.npz", truncated],
            )
            .with(cut("p.npz", "half.npz", |n| n / 2)),
            run_fails(
                "an .npz without its last bytes",
                &params("tail.npz"),
                &["tail.npz", truncated],
            )
            .with(cut("p.npz", "tail.npz", |n| n - 5)),
            run_fails("no such --params", &params("nope.npz"), &["nope.npz"]),
            run_fails("no such --input", &input("nope.npy"), &["nope.npy"]),
            run_fails(
                "no such --inputs",
                &["run", m, "--params", "p.npz", "--inputs", "nope.npz"],
                &["nope.npz"],
            ),
            run_fails(
                "no such --init",
                &with("--init", "nope_s.npz"),
                &["nope_s.npz"],
            ),
            run_fails(
                "no such --lengths",
                &with("--lengths", "nope_l.npy"),
                &["nope_l.npy"],
            ),
            run_fails(
                "no such cell file",
                &["run", "nope.cell", "--params", "p.npz", "--input", "x.npy"],
                &["nope.cell"],
            ),
        ],
    );
}

#[test]
fn run_rejects_lengths_out_of_range_or_not_integers() {
    let m = model("lstm");
    let args = [
        "run",
        m.as_str(),
        "--params",
        "p.npz",
        "--input",
        "x.npy",
        "--lengths",
        "l.npy",
    ];
    let lengths = |name: &str, needles: &[&str], write: fn(&Path)| {
        run_fails(name, &args, needles).with(move |dir| write(&dir.join("l.npy")))
    };
    assert_error_cases(
        lstm_files,
        vec![
            lengths("a negative length", &["--lengths", "-1"], |p| {
                save_lengths(p, &[-1, 2])
            }),
            lengths("a length longer than T", &["--lengths", "6"], |p| {
                save_lengths(p, &[2, T as i64 + 1])
            }),
            lengths("float64 lengths", &["--lengths", "float64|integer"], |p| {
                save_npy_f64(p, &ArrayD::from_elem(IxDyn(&[B]), 2.0))
            }),
            lengths("float32 lengths", &["--lengths"], |p| {
                save_npy(p, &ArrayD::from_elem(IxDyn(&[B]), 2.0))
            }),
            lengths("more lengths than the batch", &["--lengths", "3"], |p| {
                save_lengths(p, &[1, 2, 3])
            }),
            lengths("fewer lengths than the batch", &["--lengths", "1"], |p| {
                save_lengths(p, &[1])
            }),
            lengths("lengths of two axes", &["--lengths", "[B]"], |p| {
                write_npy(p, &ArrayData::Int(ArrayD::zeros(IxDyn(&[B, 1])))).unwrap()
            }),
            lengths("a negative int32 length", &["--lengths", "-2"], |p| {
                save_lengths_i32(p, &[3, -2])
            }),
            // A uint64 length is an integer, but far outside 0..=T: like every
            // bad length, an error naming --lengths.
            lengths(
                "a uint64 length beyond int64",
                &["--lengths", "l.npy"],
                |p| {
                    let data: Vec<u8> = [u64::MAX - 1, 2]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect();
                    save_raw_npy(p, "<u8", &[B], &data);
                },
            ),
        ],
    );
}

#[test]
fn run_rejects_initial_states_that_are_no_state_or_do_not_fit() {
    let m = model("lstm");
    let args = [
        "run",
        m.as_str(),
        "--params",
        "p.npz",
        "--input",
        "x.npy",
        "--init",
        "s.npz",
    ];
    let init = |name: &str, needles: &[&str], states: Vec<(&'static str, Vec<usize>)>| {
        run_fails(name, &args, needles).with(move |dir| {
            let arrays: Named = states
                .iter()
                .map(|(n, shape)| (n.to_string(), zeros(shape)))
                .collect();
            save_npz(&dir.join("s.npz"), &arrays);
        })
    };
    assert_error_cases(
        lstm_files,
        vec![
            // `c` is not `C`: names are case-sensitive.
            init(
                "a state name in the wrong case",
                &["`c`", "state"],
                vec![("h", vec![B, H]), ("c", vec![B, H])],
            ),
            init(
                "a final state's name",
                &["h.last", "state"],
                vec![("h.last", vec![B, H])],
            ),
            init(
                "a state of the wrong size",
                &["`h`", "H|[B, H]"],
                vec![("h", vec![B, H + 1])],
            ),
            init(
                "a state for the wrong batch",
                &["`C`", "B"],
                vec![("C", vec![B + 1, H])],
            ),
        ],
    );
}

#[test]
fn run_rejects_sizes_that_contradict_the_arrays() {
    let m = model("lstm");
    let e = model("elman");
    let base = ["run", m.as_str(), "--params", "p.npz", "--input", "x.npy"];
    let define = |d: &'static str| [&base[..], &["-D", d]].concat();
    assert_error_cases(
        lstm_files,
        vec![
            // Both sources are named: the -D, and the array.
            run_fails(
                "-D H against the weights",
                &define("H=5"),
                &["H=5", "W_|b_"],
            ),
            run_fails(
                "-D X against the weights and input",
                &define("X=7"),
                &["X=7", "W_|`x`"],
            ),
            // -D of a dimension the cell does not have.
            run_fails("-D of a dimension the cell lacks", &define("Q=3"), &["Q"]),
            // X is 3 by the weights, 2 by the input: both named.
            run_fails(
                "an input against the weights",
                &["run", &m, "--params", "p.npz", "--input", "x2.npy"],
                &["`x`|x2.npy", "W_"],
            )
            .with(zeros_npy("x2.npy", &[T, B, X - 1])),
            // A free dimension given by -D and by the array.
            run_fails(
                "-D of a free dimension against its array",
                &[
                    "run", &e, "--params", "p.npz", "--input", "x.npy", "-D", "V_rows=6",
                ],
                &["V_rows=6", "`V`"],
            )
            .with(|dir| {
                let mut rng = SplitMix64::new(38);
                let p: Named = vec![
                    ("U".into(), rng.uniform::<f32>(&[H, X], 0.7)),
                    ("W".into(), rng.uniform::<f32>(&[H, H], 0.7)),
                    ("V".into(), rng.uniform::<f32>(&[5, H], 0.7)),
                ];
                save_npz(&dir.join("p.npz"), &p);
                save_npy(&dir.join("x.npy"), &rng.uniform::<f32>(&[T, B, X], 1.0));
            }),
        ],
    );
}

#[test]
fn run_creates_nothing_where_it_cannot_write_the_output() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    let to = |target: &'static str| {
        [
            "run", m, "--params", "p.npz", "--input", "x.npy", "-o", target,
        ]
    };
    assert_error_cases(
        lstm_files,
        vec![
            fails(
                "an output in a missing directory",
                &to("nodir/out.npz"),
                &["nodir"],
            ),
            fails(
                "an output two missing directories down",
                &to("a/b/out.npz"),
                &["a"],
            ),
            // Also with generated data, where nothing is read first.
            fails(
                "generated data into a missing directory",
                &["run", m, "-D", "H=2", "-D", "X=2", "-o", "nodir/out.npz"],
                &["nodir"],
            ),
            // No temporary file is left, beside it or in it.
            fails("an output onto a directory", &to("sub"), &["sub"])
                .with(|dir| fs::create_dir(dir.join("sub")).unwrap()),
        ],
    );
}

#[test]
fn nan_or_infinity_is_not_an_error_but_a_warning() {
    let dir = scratch("nan");
    let d = lstm_data(&dir, 41);
    let mut x = d.x.clone();
    x[[1, 0, 0]] = f32::NAN;
    save_npy(&dir.join("xnan.npy"), &x);
    let m = model("lstm");
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "p.npz", "--input", "xnan.npy", "-o", "o.npz",
        ],
    )
    .ok();
    assert!(r.stderr.contains("warning"), "{}", r.context());
    assert!(
        r.stderr.contains("`x`") || r.stderr.contains("xnan.npy"),
        "names the array\n{}",
        r.context()
    );
    let h = as_f64(get(&load(&dir.join("o.npz")), "h"));
    assert!(
        h.slice(s![1.., 0, ..]).iter().all(|v| v.is_nan()),
        "NaN propagates in its sequence"
    );
    assert!(
        h.slice(s![.., 1, ..]).iter().all(|v| v.is_finite()),
        "and only there"
    );
    assert!(
        h.slice(s![0, 0, ..]).iter().all(|v| v.is_finite()),
        "not before it"
    );
    // Infinity in a parameter: the warning names the parameter.
    let mut p = d.p.clone();
    p.iter_mut().find(|(n, _)| n == "b_C").unwrap().1[[0]] = f32::INFINITY;
    save_npz(&dir.join("pinf.npz"), &p);
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "pinf.npz", "--input", "x.npy", "-o", "o2.npz",
        ],
    )
    .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("b_C"),
        "{}",
        r.context()
    );
    assert!(dir.join("o2.npz").exists());
    // NaN in an initial state too.
    let mut s = ArrayD::<f32>::zeros(IxDyn(&[B, H]));
    s[[0, 0]] = f32::NAN;
    save_npz(&dir.join("s.npz"), &named(&[("C", &s)]));
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "p.npz", "--input", "x.npy", "--init", "s.npz", "-o", "o3.npz",
        ],
    )
    .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("`C`"),
        "{}",
        r.context()
    );
    // Finite data: no warning.
    let r = cellc(
        &dir,
        &[
            "run", &m, "--params", "p.npz", "--input", "x.npy", "-o", "o4.npz",
        ],
    )
    .ok();
    assert!(!r.stderr.contains("warning"), "{}", r.context());
}

#[test]
fn a_failed_run_leaves_an_existing_output_intact() {
    let lstm = model("lstm");
    let m = lstm.as_str();
    // An old `out.npz` beside the files each failure needs; the table checks
    // that its bytes, like every other file's, are as they were.
    let common = |dir: &Path| {
        let d = lstm_data(dir, 42);
        let p: Named = d.p.iter().filter(|(n, _)| n != "W_f").cloned().collect();
        save_npz(&dir.join("missing.npz"), &p);
        save_lengths(&dir.join("l.npy"), &[9, 9]);
        fs::write(
            dir.join("bad.cell"),
            "cell bad(x: [X]) {\n  state h: [H]\n  output h\n}\n",
        )
        .unwrap();
        fs::write(dir.join("out.npz"), b"the previous result").unwrap();
    };
    assert_error_cases(
        common,
        vec![
            run_fails("a parameter left out", &lstm_args(m, "missing.npz"), &[]),
            run_fails(
                "lengths beyond T",
                &[&lstm_args(m, "p.npz")[..], &["--lengths", "l.npy"]].concat(),
                &[],
            ),
            run_fails(
                "no such input",
                &["run", m, "--params", "p.npz", "--input", "nope.npy"],
                &[],
            ),
            run_fails(
                "-D against the weights",
                &[&lstm_args(m, "p.npz")[..], &["-D", "H=9"]].concat(),
                &[],
            ),
            run_fails(
                "a cell that does not check",
                &["run", "bad.cell", "--params", "p.npz", "--input", "x.npy"],
                &[],
            ),
        ],
    );
}
