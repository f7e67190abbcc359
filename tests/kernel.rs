//! The kernel interface: the time-loop drivers run any `StepKernel`, read
//! parameters (and inputs, when every sequence is at the same position) in
//! place, and give what the interpreter's own entry points give.

mod common;

use cellc::autodiff::StepAdjoint;
use cellc::graph::step::ArgKind;
use cellc::graph::step::StepGraph;
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{backward, run_backward};
use cellc::runtime::forward::{forward, initial_history, run_forward};
use cellc::runtime::kernel::{Interpreted, KernelError, StepKernel, interpreted_bptt};
use cellc::runtime::types::Sequences;
use common::{load, model_path, problem};
use ndarray::{ArrayViewD, ArrayViewMutD};

/// The interpreter, watched: counts calls and checks that every parameter
/// argument is the caller's own buffer and every input a view into the
/// caller's input array, not a copy.
struct Watched<'g> {
    inner: Interpreted<'g>,
    params: Vec<(usize, *const f64)>,
    inputs: Vec<(usize, std::ops::Range<usize>)>,
    calls: usize,
}

impl<'g> Watched<'g> {
    fn new(inner: Interpreted<'g>, kinds: &[ArgKind], seq: &Sequences<f64>) -> Watched<'g> {
        let mut params = Vec::new();
        let mut inputs = Vec::new();
        for (a, kind) in kinds.iter().enumerate() {
            match *kind {
                ArgKind::Param(p) => params.push((a, seq.params[p].as_ptr())),
                ArgKind::Input(i) => {
                    let x = &seq.inputs[i];
                    let start = x.as_ptr() as usize;
                    inputs.push((a, start..start + x.len() * 8));
                }
                ArgKind::State { .. } => {}
            }
        }
        Watched {
            inner,
            params,
            inputs,
            calls: 0,
        }
    }
}

impl StepKernel<f64> for Watched<'_> {
    fn arg_shapes(&self) -> &[Vec<usize>] {
        <Interpreted as StepKernel<f64>>::arg_shapes(&self.inner)
    }
    fn result_shapes(&self) -> &[Vec<usize>] {
        <Interpreted as StepKernel<f64>>::result_shapes(&self.inner)
    }
    fn run(
        &mut self,
        args: &[ArrayViewD<'_, f64>],
        results: &mut [ArrayViewMutD<'_, f64>],
    ) -> Result<(), KernelError> {
        for (a, ptr) in &self.params {
            assert_eq!(args[*a].as_ptr(), *ptr, "parameter argument {a} was copied");
        }
        for (a, range) in &self.inputs {
            let p = args[*a].as_ptr() as usize;
            assert!(range.contains(&p), "input argument {a} was copied");
        }
        self.calls += 1;
        self.inner.run(args, results)
    }
}

/// BPTT's two interpreter kernels, watched.
fn watched_bptt<'g>(
    adj: &'g StepAdjoint,
    step: &StepGraph,
    seq: &Sequences<f64>,
) -> (Watched<'g>, Watched<'g>) {
    let (f, b) = interpreted_bptt(adj, &seq.bindings, seq.batch).unwrap();
    (
        Watched::new(f, &step.arg_kinds, seq),
        Watched::new(b, &step.arg_kinds, seq),
    )
}

#[test]
fn drivers_read_parameters_and_aligned_inputs_in_place_and_match_the_interpreter() {
    for model in ["lstm", "gru", "higher_order_rnn", "learned_init_rnn"] {
        let step = load(&model_path(model));
        let adj = differentiate_step(&step).unwrap();
        for reverse in [false, true] {
            let p = problem(&step, 4, None, reverse, false, 3);
            let (b, batch) = (&p.seq.bindings, p.seq.batch);

            let mut k = Watched::new(
                Interpreted::new(&step.graph, b, batch).unwrap(),
                &step.arg_kinds,
                &p.seq,
            );
            let (traj, residuals) =
                run_forward(&step, &mut k, &p.seq, initial_history(&step, &p.seq)).unwrap();
            assert_eq!(k.calls, 4);
            assert!(residuals.is_empty(), "the plain step saves nothing");
            let reference = forward(&step, &p.seq).unwrap();
            assert_eq!(traj.outputs, reference.outputs, "{model}");
            assert_eq!(traj.last, reference.last, "{model}");

            let (mut fk, mut bk) = watched_bptt(&adj, &step, &p.seq);
            let (_, g) = run_backward(
                &step,
                &mut fk,
                &mut bk,
                &p.seq,
                &p.cot,
                initial_history(&step, &p.seq),
            )
            .unwrap();
            assert_eq!((fk.calls, bk.calls), (4, 4));
            let reference = backward(&step, &adj, &p.seq, &p.cot).unwrap();
            assert_eq!(g.params, reference.params, "{model}");
            assert_eq!(g.inputs, reference.inputs, "{model}");
            assert_eq!(g.init, reference.init, "{model}");
        }
    }
}

#[test]
fn history_and_residuals_are_flat_buffers_over_the_whole_run() {
    let step = load(&model_path("higher_order_rnn"));
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 5, Some(vec![5, 2, 0]), false, true, 9);
    let mut k = Interpreted::new(&adj.forward, &p.seq.bindings, p.seq.batch).unwrap();
    let (traj, residuals) =
        run_forward(&step, &mut k, &p.seq, initial_history(&step, &p.seq)).unwrap();
    let depth = step.max_lag().max(1) as usize;
    for (s, h) in traj.history.iter().enumerate() {
        assert_eq!(h.shape()[0], depth + 5, "state {s}: [K + T, B, n]");
        // The last value is each sequence's state after its own last step.
        for b in 0..3 {
            let len = [5, 2, 0][b];
            assert_eq!(
                traj.last[s].row(b),
                h.index_axis(ndarray::Axis(0), depth - 1 + len).row(b)
            );
        }
    }
    assert_eq!(residuals.len(), adj.n_residuals);
    for r in &residuals {
        assert_eq!(r.shape()[0], 5, "[T, ...]");
    }
}

#[test]
fn a_result_buffer_of_the_wrong_shape_is_an_error() {
    let step = load(&model_path("elman"));
    let p = problem(&step, 2, None, false, false, 1);
    let mut k = Interpreted::new(&step.graph, &p.seq.bindings, p.seq.batch).unwrap();
    let shapes = <Interpreted as StepKernel<f64>>::arg_shapes(&k).to_vec();
    let args: Vec<ndarray::ArrayD<f64>> = shapes
        .iter()
        .map(|s| ndarray::ArrayD::zeros(ndarray::IxDyn(s)))
        .collect();
    let views: Vec<ArrayViewD<f64>> = args.iter().map(|a| a.view()).collect();
    // Every result buffer of the right shape but the first.
    let mut bufs: Vec<ndarray::ArrayD<f64>> = <Interpreted as StepKernel<f64>>::result_shapes(&k)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shape = if i == 0 { vec![1] } else { s.clone() };
            ndarray::ArrayD::zeros(ndarray::IxDyn(&shape))
        })
        .collect();
    let mut outs: Vec<ArrayViewMutD<f64>> = bufs.iter_mut().map(|b| b.view_mut()).collect();
    let e = k.run(&views, &mut outs).unwrap_err();
    assert!(e.to_string().starts_with("result 0 has shape"), "{e}");
    // Too few buffers.
    let e = k.run(&views, &mut outs[1..]).unwrap_err();
    assert!(e.to_string().contains("result buffers given"), "{e}");
}

#[test]
fn truncated_bptt_runs_any_kernels_and_matches_the_interpreter() {
    use cellc::runtime::truncated::{run_truncated, truncated_bptt};
    let step = load(&model_path("higher_order_rnn"));
    let adj = differentiate_step(&step).unwrap();
    let p = problem(&step, 5, None, false, false, 4);
    let (mut fk, mut bk) = watched_bptt(&adj, &step, &p.seq);
    // Truncated BPTT hands each chunk its own gathered inputs and the one copy
    // of the parameters it moves from chunk to chunk: no pointer checks here.
    for k in [&mut fk, &mut bk] {
        k.params.clear();
        k.inputs.clear();
    }
    let got = run_truncated(&step, &mut fk, &mut bk, &p.seq, &p.cot, 2).unwrap();
    // Chunks of 2, 2 and 1 steps: one forward and one adjoint call per step.
    assert_eq!((fk.calls, bk.calls, got.chunks), (5, 5, 3));
    let want = truncated_bptt(&step, &adj, &p.seq, &p.cot, 2).unwrap();
    assert_eq!(got.gradients.params, want.gradients.params);
    assert_eq!(got.outputs, want.outputs);
    assert_eq!(got.last, want.last);
}
