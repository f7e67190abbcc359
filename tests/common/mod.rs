//! Helpers shared by the test files: the seeded generator, loading a model, a
//! random problem (data and cotangents) for a cell, scratch directories and
//! running the binary.
#![allow(dead_code)] // each test file uses its own subset

pub mod errors;

use cellc::check::check_source;
use cellc::graph::dim::Bindings;
use cellc::graph::step::StepGraph;
use cellc::rng::SplitMix64;
use cellc::runtime::backward::Cotangents;
use cellc::runtime::data::{Sequences, prepare, size};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let b = bindings(step);
    let batch = 3;
    // The raw state, as the SplitMix64 copy this replaced took it: same data.
    let mut rng = SplitMix64::from_state(seed);
    let params = step
        .params
        .iter()
        .map(|p| {
            let shape: Vec<usize> = p.dims.iter().map(|d| size(d, &b)).collect();
            (p.name.clone(), rng.uniform(&shape, 0.8))
        })
        .collect();
    let inputs = step
        .inputs
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                rng.uniform(&[t, batch, size(&i.size, &b)], 1.0),
            )
        })
        .collect();
    let init = if give_init {
        step.states
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    rng.uniform(&[batch, size(&s.size, &b)], 0.5),
                )
            })
            .collect()
    } else {
        vec![]
    };
    let seq = prepare(step, params, inputs, init, lengths, &b, reverse).unwrap();
    let cot = Cotangents {
        outputs: step
            .outputs
            .iter()
            .map(|o| {
                let mut shape = vec![t, batch];
                shape.extend(o.ty.dims.iter().map(|d| size(d, &b)));
                Some(rng.uniform(&shape, 1.0))
            })
            .collect(),
        last: step
            .states
            .iter()
            .map(|s| {
                let a = rng.uniform(&[batch, size(&s.size, &b)], 1.0);
                Some(a.into_dimensionality().unwrap())
            })
            .collect(),
    };
    Problem { seq, cot }
}

/// The path of a bundled model.
pub fn model_path(model: &str) -> String {
    format!("{}/models/{model}.cell", env!("CARGO_MANIFEST_DIR"))
}

/// Whether `a` and `b` agree to `rel`, relative to the larger of them or `floor`.
pub fn close(a: f64, b: f64, rel: f64, floor: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(floor)
}

/// A scratch directory for one test, removed when the test ends.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("cellc-test-{name}-{}", std::process::id()));
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
