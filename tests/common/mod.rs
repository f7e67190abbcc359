//! Helpers shared by the test files: the seeded generator, loading a model, a
//! random problem (data and cotangents) for a cell, scratch directories and
//! running the binary.
#![allow(dead_code)] // each test file uses its own subset

pub mod errors;
pub mod npy;
pub mod random;
pub mod spec;

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::graph::dim::Bindings;
use cellc::graph::step::StepGraph;
use cellc::rng::SplitMix64;
use cellc::runtime::backward::Cotangents;
use cellc::runtime::types::{Sequences, size};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn load(path: &str) -> StepGraph {
    let text = std::fs::read_to_string(path).unwrap();
    check_source(&text)
        .unwrap_or_else(|f| panic!("{}", f.render(path)))
        .step
}

pub fn bindings(step: &StepGraph) -> Bindings {
    step.dims
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), 2 + i))
        .collect()
}

#[derive(Clone)]
pub struct Problem {
    pub seq: Sequences<f64>,
    pub cot: Cotangents<f64>,
}

pub fn problem(
    step: &StepGraph,
    t: usize,
    lengths: Option<Vec<i64>>,
    reverse: bool,
    give_init: bool,
    seed: u64,
) -> Problem {
    problem_with(
        step,
        &bindings(step),
        t,
        3,
        lengths,
        reverse,
        give_init,
        seed,
    )
}

/// [`problem`] at the given sizes and batch.
#[allow(clippy::too_many_arguments)]
pub fn problem_with(
    step: &StepGraph,
    b: &Bindings,
    t: usize,
    batch: usize,
    lengths: Option<Vec<i64>>,
    reverse: bool,
    give_init: bool,
    seed: u64,
) -> Problem {
    // The raw state, as the SplitMix64 copy this replaced took it: same data.
    let mut rng = SplitMix64::from_state(seed);
    let params = random::params(step, b, &mut rng, 0.8);
    let inputs = random::inputs(step, b, &mut rng, t, batch);
    let init = if give_init {
        random::states(step, b, &mut rng, batch, 0.5)
    } else {
        vec![]
    };
    let seq = prepare(step, params, inputs, init, lengths, b, reverse).unwrap();
    let cot = Cotangents {
        outputs: step
            .outputs
            .iter()
            .map(|o| {
                let mut shape = vec![t, batch];
                shape.extend(o.ty.dims.iter().map(|d| size(d, b)));
                Some(rng.uniform(&shape, 1.0))
            })
            .collect(),
        last: random::states(step, b, &mut rng, batch, 1.0)
            .into_iter()
            .map(|(_, a)| Some(a.into_dimensionality().unwrap()))
            .collect(),
    };
    Problem { seq, cot }
}

/// The path of a bundled model.
pub fn model_path(model: &str) -> String {
    format!("{}/models/{model}.cell", env!("CARGO_MANIFEST_DIR"))
}

/// A proptest configuration of `cases` cases, or as many as `PROPTEST_CASES`
/// says (for a longer hunt); shrinking a failure should not take longer than
/// the run itself.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        max_shrink_iters: 2_000,
        ..proptest::test_runner::Config::default()
    }
}

/// The names of every bundled model (`models/*.cell`), sorted.
pub fn model_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "cell")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

/// `max |got - want| <= rtol * max |want|` (with the scale at least 1e-300),
/// and equal shapes.
pub fn assert_close(what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    assert!(
        want.iter().all(|v| v.is_finite()),
        "{what}: the expected values are not all finite: {want}"
    );
    let scale = want.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want.iter())
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    assert!(
        err <= rtol * scale,
        "{what}: max error {err:e} > {rtol:e} × {scale:e}\n got: {got}\nwant: {want}"
    );
}

/// Whether `a` and `b` agree to `rel`, relative to the larger of them or `floor`.
pub fn close(a: f64, b: f64, rel: f64, floor: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(floor)
}

/// A fresh, empty directory for one test, removed when the test passes (kept
/// for inspection when it fails).
pub struct Scratch(pub PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A directory of its own for every call, even for one name: tests of one
/// binary run in parallel, and a table makes one per case.
pub fn scratch(name: &str) -> Scratch {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cellc-tests")
        .join(format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Runs the `cellc` binary in `dir`.
pub fn cellc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellc"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
