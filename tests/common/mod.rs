//! Helpers shared by the gradient tests: a deterministic generator, loading a
//! model, and a random problem (data and cotangents) for a cell.
#![allow(dead_code)] // each test file uses its own subset

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::graph::dim::Bindings;
use cellc::graph::step::StepGraph;
use cellc::runtime::backward::Cotangents;
use cellc::runtime::types::{Sequences, size};
use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// SplitMix64, uniform in [-1, 1).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    pub fn array(&mut self, shape: &[usize], scale: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.next() * scale)
    }
}

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
    let mut rng = Rng(seed);
    let params = step
        .params
        .iter()
        .map(|p| {
            let shape: Vec<usize> = p.dims.iter().map(|d| size(d, &b)).collect();
            (p.name.clone(), rng.array(&shape, 0.8))
        })
        .collect();
    let inputs = step
        .inputs
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                rng.array(&[t, batch, size(&i.size, &b)], 1.0),
            )
        })
        .collect();
    let init = if give_init {
        step.states
            .iter()
            .map(|s| (s.name.clone(), rng.array(&[batch, size(&s.size, &b)], 0.5)))
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
                Some(rng.array(&shape, 1.0))
            })
            .collect(),
        last: step
            .states
            .iter()
            .map(|s| {
                let a = rng.array(&[batch, size(&s.size, &b)], 1.0);
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
