//! The native back end's specification: for any cell, `--backend jit` computes
//! what the interpreter (the oracle) computes, forward and backward.
//!
//! Every case runs the same problem (parameters, inputs, initial states,
//! cotangents from one seed) through both back ends with the same drivers
//! (`run_forward`, `run_backward`) and compares outputs, final states and
//! every gradient:
//!
//! * every bundled model, in f64 (to 1e-12 of the largest entry: the two
//!   differ only in summation order and in fused rounding) and in f32 (to
//!   1e-4);
//! * with per-sequence lengths (one of them 0), `--reverse` and initial states
//!   given at run time;
//! * at odd sizes (H = 67, X = 33, B = 5, so no size is a multiple of a
//!   vector's width) and at B = 1;
//! * reads `k` steps back (`higher_order_rnn`), learned initial states
//!   (`learned_init_rnn`), reductions (`layernorm_lstm`, `elman`'s softmax).
//!
//! Each case also runs with the input-only work hoisted out of the loop
//! (`schedule::hoist`), as `run` and `grad` run the JIT.
//!
//! Random cells over the whole op set are checked the same way in
//! `tests/random_cells.rs` (property (f)).

mod common;

use cellc::data::matching::prepare;
use cellc::graph::dim::Bindings;
use cellc::graph::op::Real;
use cellc::graph::step::StepGraph;
use cellc::pipeline::differentiate_step;
use cellc::rng::SplitMix64;
use cellc::runtime::backend::{Backend, bptt_kernels, kernel};
use cellc::runtime::backward::{Cotangents, run_backward};
use cellc::runtime::forward::{initial_history, run_forward};
use cellc::runtime::hoisted::{Chunked, loop_of, through_hoisted};
use cellc::runtime::kernel::StepKernel;
use cellc::runtime::types::{Gradients, Sequences, Trajectory, size};
use common::{load, model_names, model_path, random};
use ndarray::ArrayD;

/// One problem of a cell, in f64.
struct Problem {
    seq: Sequences<f64>,
    cot: Cotangents<f64>,
}

struct Setup {
    t: usize,
    batch: usize,
    lengths: Option<Vec<i64>>,
    reverse: bool,
    give_init: bool,
    /// Sizes by name; the others are 2, 3, ... in the cell's order.
    sizes: &'static [(&'static str, usize)],
}

const SMALL: Setup = Setup {
    t: 4,
    batch: 3,
    lengths: None,
    reverse: false,
    give_init: false,
    sizes: &[],
};

fn bindings(step: &StepGraph, sizes: &[(&str, usize)]) -> Bindings {
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

fn problem(step: &StepGraph, s: &Setup, seed: u64) -> Problem {
    let b = bindings(step, s.sizes);
    let mut rng = SplitMix64::from_state(seed);
    let params = random::params(step, &b, &mut rng, 0.8);
    let inputs = random::inputs(step, &b, &mut rng, s.t, s.batch);
    let init = if s.give_init {
        random::states(step, &b, &mut rng, s.batch, 0.5)
    } else {
        vec![]
    };
    let seq = prepare(step, params, inputs, init, s.lengths.clone(), &b, s.reverse).unwrap();
    let cot = Cotangents {
        outputs: step
            .outputs
            .iter()
            .map(|o| {
                let mut shape = vec![s.t, s.batch];
                shape.extend(o.ty.dims.iter().map(|d| size(d, &b)));
                Some(rng.uniform(&shape, 1.0))
            })
            .collect(),
        last: random::states(step, &b, &mut rng, s.batch, 1.0)
            .into_iter()
            .map(|(_, a)| Some(a.into_dimensionality().unwrap()))
            .collect(),
    };
    Problem { seq, cot }
}

fn cast<F: Real>(a: &ArrayD<f64>) -> ArrayD<F> {
    a.mapv(|v| F::from_f64(v).unwrap())
}

/// The problem in the float type `F`.
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

/// Everything one back end computes for a problem, in f64, by name; with
/// `hoist`, as `cellc run`/`grad` run the JIT: input-only work over all rows
/// before the loop, and the gradients through it after.
fn results<F: Real>(
    step: &StepGraph,
    p: &Problem,
    backend: Backend,
    hoist: bool,
) -> Vec<(String, ArrayD<f64>)> {
    let (seq, cot) = in_type::<F>(p);
    let hoisting = if hoist {
        cellc::pipeline::hoisting(step).unwrap()
    } else {
        None
    };
    let split = hoisting.as_ref().map(|h| &h.split);
    let (loop_step, loop_seq) = loop_of(backend, step, split, &seq).unwrap();
    let mut k = kernel::<F>(backend, &loop_step.graph, &seq.bindings, seq.batch).unwrap();
    let (traj, _): (Trajectory<F>, _) = run_forward(
        loop_step,
        &mut k,
        &loop_seq,
        initial_history(loop_step, &loop_seq),
    )
    .unwrap();
    let adj = differentiate_step(loop_step).unwrap();
    let (mut fwd, mut bwd) = bptt_kernels::<F>(backend, &adj, &seq.bindings, seq.batch).unwrap();
    let (_, g): (_, Gradients<F>) = run_backward(
        loop_step,
        &mut fwd,
        &mut bwd,
        &loop_seq,
        &cot,
        initial_history(loop_step, &loop_seq),
    )
    .unwrap();
    let g = match &hoisting {
        Some(h) => {
            let rows = seq.steps * seq.batch;
            let mut pre_adj =
                Chunked::<F>::new(backend, &h.pre_adjoint, &seq.bindings, rows).unwrap();
            through_hoisted(&h.split, &mut pre_adj, &seq, g).unwrap()
        }
        None => g,
    };
    let up = |a: ArrayD<F>| a.mapv(|v| v.to_f64().unwrap());
    let mut out = Vec::new();
    for (o, a) in step.outputs.iter().zip(traj.outputs) {
        out.push((format!("output {}", o.name), up(a)));
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

/// The JIT equals the interpreter on `p`, in `F`, to `rtol` of each array's
/// largest entry: step by step, and with input-only work hoisted (on the
/// JIT, as `run` and `grad` do, and on the interpreter, which checks the
/// split itself).
fn agree<F: Real>(name: &str, step: &StepGraph, p: &Problem, rtol: f64) {
    let want = results::<F>(step, p, Backend::Interp, false);
    for (backend, hoist) in [
        (Backend::Jit, false),
        (Backend::Jit, true),
        (Backend::Interp, true),
    ] {
        let got = results::<F>(step, p, backend, hoist);
        compare(
            &format!("{name} {backend:?} hoisted {hoist}"),
            &want,
            &got,
            rtol,
        );
    }
}

fn compare(name: &str, want: &[(String, ArrayD<f64>)], got: &[(String, ArrayD<f64>)], rtol: f64) {
    for ((what, w), (_, g)) in want.iter().zip(got) {
        assert_eq!(w.shape(), g.shape(), "{name}: {what}");
        let scale = w
            .iter()
            .filter(|v| v.is_finite())
            .fold(1e-30f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        for (a, b) in w.iter().zip(g.iter()) {
            if a.is_finite() && b.is_finite() {
                worst = worst.max((a - b).abs());
            } else {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{name}: {what}: {b} where the interpreter has {a}"
                );
            }
        }
        assert!(
            worst <= rtol * scale,
            "{name}: {what} differs by {worst:e} (largest entry {scale:e})"
        );
    }
}

fn every_model(setup: &Setup, f32_too: bool) {
    for (k, name) in model_names().iter().enumerate() {
        let step = load(&model_path(name));
        let p = problem(&step, setup, 40 + k as u64);
        agree::<f64>(name, &step, &p, 1e-12);
        if f32_too {
            agree::<f32>(&format!("{name} (f32)"), &step, &p, 1e-4);
        }
    }
}

#[test]
fn every_model_forward_and_gradients_in_f64_and_f32() {
    every_model(&SMALL, true);
}

#[test]
fn every_model_with_lengths_reverse_and_given_initial_states() {
    every_model(
        &Setup {
            lengths: Some(vec![4, 0, 2]),
            reverse: true,
            give_init: true,
            ..SMALL
        },
        true,
    );
    every_model(
        &Setup {
            lengths: Some(vec![1, 3, 4]),
            ..SMALL
        },
        false,
    );
}

#[test]
fn odd_sizes_and_one_sequence() {
    let odd: &[(&str, usize)] = &[("H", 67), ("X", 33)];
    for name in [
        "lstm",
        "torch_lstm",
        "gru",
        "layernorm_lstm",
        "higher_order_rnn",
        "elman",
        "indrnn",
    ] {
        let step = load(&model_path(name));
        for batch in [5, 1] {
            let setup = Setup {
                t: 3,
                batch,
                sizes: odd,
                ..SMALL
            };
            let p = problem(&step, &setup, 7);
            agree::<f64>(&format!("{name} B={batch}"), &step, &p, 1e-12);
            agree::<f32>(&format!("{name} B={batch} (f32)"), &step, &p, 1e-4);
        }
    }
}

/// More rows than one call of a hoisted kernel takes (4096): the work before
/// and after the loop runs in chunks, and gives what the interpreter gives.
#[test]
fn many_rows_are_hoisted_in_chunks() {
    for name in ["torch_rnn", "elman"] {
        let step = load(&model_path(name));
        let setup = Setup {
            t: 700,
            batch: 7,
            lengths: Some(vec![700, 0, 650, 1, 699, 300, 700]),
            ..SMALL
        };
        let p = problem(&step, &setup, 11);
        agree::<f64>(name, &step, &p, 1e-12);
    }
}

/// The largest difference between the first output of `jit` run forward on
/// `seq` and the interpreter's.
fn jit_forward_error(step: &StepGraph, jit: &mut dyn StepKernel<f64>, seq: &Sequences<f64>) -> f64 {
    let mut k = kernel::<f64>(Backend::Interp, &step.graph, &seq.bindings, seq.batch).unwrap();
    let want = run_forward(step, &mut k, seq, initial_history(step, seq))
        .unwrap()
        .0;
    let got = run_forward(step, jit, seq, initial_history(step, seq))
        .unwrap()
        .0;
    (&want.outputs[0] - &got.outputs[0])
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
}

/// A kernel packs a parameter matrix once and reuses it while the matrix
/// stays at its address; given a matrix at another address, it packs that
/// one: one kernel run on two parameter sets gives each set's result.
#[test]
fn a_kernel_repacks_a_parameter_given_at_another_address() {
    let step = load(&model_path("torch_rnn"));
    let p1 = problem(&step, &SMALL, 1);
    let p2 = problem(&step, &SMALL, 2);
    let b = &p1.seq.bindings;
    let mut jit = kernel::<f64>(Backend::Jit, &step.graph, b, SMALL.batch).unwrap();
    for p in [&p1, &p2, &p1] {
        let diff = jit_forward_error(&step, &mut jit, &p.seq);
        assert!(diff < 1e-12, "{diff}");
    }
}

/// Parameters changed in place between runs (as a training step does) are
/// packed again: every run of one kernel gives the result of the values it
/// is given, at the same address.
#[test]
fn a_kernel_repacks_a_parameter_changed_in_place_between_runs() {
    let step = load(&model_path("torch_rnn"));
    let mut p = problem(&step, &SMALL, 3);
    let b = p.seq.bindings.clone();
    let mut jit = kernel::<f64>(Backend::Jit, &step.graph, &b, SMALL.batch).unwrap();
    let at: Vec<*const f64> = p.seq.params.iter().map(|a| a.as_ptr()).collect();
    for round in 0..3 {
        let diff = jit_forward_error(&step, &mut jit, &p.seq);
        assert!(diff < 1e-12, "round {round}: {diff}");
        for w in &mut p.seq.params {
            w.mapv_inplace(|v| -0.7 * v + 0.01);
        }
        let now: Vec<*const f64> = p.seq.params.iter().map(|a| a.as_ptr()).collect();
        assert_eq!(at, now, "changed in place");
    }
}
