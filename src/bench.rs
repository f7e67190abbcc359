//! Timing a cell's kernels: what `cellc bench` and `cargo bench`
//! (`benches/models.rs`) share, so that both measure the same work.
//!
//! Enters: a checked step graph (and its BPTT adjoint for forward+backward),
//! `-D` bindings, T, B and a seed; kernels made by the caller (the choice of
//! back end is the command's). Leaves: generated sequences, one "call" (the
//! whole sequence forward, or forward then BPTT with a cotangent of ones on
//! every output), the timings of repeated calls, and the matrix-product FLOPs
//! of a call ([`crate::graph::flops`]).

use crate::autodiff::StepAdjoint;
use crate::data::generate::{self, Generate, GenerateError};
use crate::data::matching::{self, DataError};
use crate::graph::dim::Bindings;
use crate::graph::flops::matrix_flops;
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use crate::pipeline::Hoisting;
use crate::runtime::backend::{Backend, bptt_kernels, kernel};
use crate::runtime::backward::{check_cotangents, run_backward};
use crate::runtime::forward::{initial_history, run_forward};
use crate::runtime::hoisted::{Chunked, through_hoisted, with_hoisted};
use crate::runtime::kernel::{KernelError, StepKernel};
use crate::runtime::types::{Cotangents, Sequences};
use crate::schedule::Hoisted;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// What one timed call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The whole sequence forward.
    Forward,
    /// Forward (saving residuals), then BPTT back over the whole sequence.
    ForwardBackward,
}

impl Mode {
    /// The name the command line and the JSON report use.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Forward => "fwd",
            Mode::ForwardBackward => "fwdbwd",
        }
    }
}

/// Why a workload could not be generated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Random parameters and inputs for `steps` × `batch`, exactly as `cellc run`
/// generates them when no file is given (same seed, same numbers), checked
/// against the cell.
pub fn generated_sequences<F: Real>(
    step: &StepGraph,
    defines: &Bindings,
    steps: usize,
    batch: usize,
    seed: u64,
) -> Result<Sequences<F>, WorkloadError> {
    let how = Generate { steps, batch, seed };
    let (params, inputs) = generate::fill_missing::<F>(step, defines, None, None, how)?;
    Ok(matching::prepare(
        step,
        params,
        inputs,
        Vec::new(),
        None,
        defines,
        false,
    )?)
}

/// The kernels of one call: the step's (forward), or BPTT's forward step and
/// adjoint step (forward+backward), of the loop's step when input-only work
/// is hoisted (the JIT), with the kernels of that work over all T·B rows.
/// Boxed so that any back end fits.
pub struct Kernels<'a, F> {
    pub forward: Box<dyn StepKernel<F> + 'a>,
    /// Present for [`Mode::ForwardBackward`].
    pub adjoint: Option<Box<dyn StepKernel<F> + 'a>>,
    /// The split, with the kernels of its pre graph and (backward) of the
    /// pre graph's adjoint.
    pub hoisted: Option<HoistedKernels<'a, F>>,
}

pub struct HoistedKernels<'a, F> {
    pub split: &'a Hoisted,
    pub pre: Chunked<'a, F>,
    pub pre_adjoint: Option<Chunked<'a, F>>,
}

/// What a bench runs: the cell's step, or with hoisting the loop's step and
/// its BPTT (made by [`Plan::new`], which a bench times as compilation).
pub struct Plan {
    pub hoisting: Option<Hoisting>,
    /// BPTT of the step the loop runs (forward+backward only).
    pub adjoint: Option<StepAdjoint>,
}

impl Plan {
    /// The plan of `backend`: the JIT hoists input-only work when there is
    /// some, as `cellc run` and `cellc grad` do; the interpreter does not.
    pub fn new(
        backend: Backend,
        step: &StepGraph,
        mode: Mode,
    ) -> Result<Plan, crate::pipeline::PassError> {
        let hoisting = match backend {
            Backend::Jit => crate::pipeline::hoisting(step)?,
            Backend::Interp => None,
        };
        let adjoint = match mode {
            Mode::Forward => None,
            Mode::ForwardBackward => Some(crate::pipeline::differentiate_step(
                hoisting.as_ref().map_or(step, |h| &h.split.step),
            )?),
        };
        Ok(Plan { hoisting, adjoint })
    }

    /// The step the time loop runs.
    pub fn loop_step<'a>(&'a self, step: &'a StepGraph) -> &'a StepGraph {
        self.hoisting.as_ref().map_or(step, |h| &h.split.step)
    }
}

impl<'a, F: Real + 'static> Kernels<'a, F> {
    /// The kernels of `backend` for `plan` (of `step`), for sequences of
    /// `steps` × `batch`.
    pub fn new(
        backend: Backend,
        step: &'a StepGraph,
        plan: &'a Plan,
        bindings: &Bindings,
        steps: usize,
        batch: usize,
    ) -> Result<Kernels<'a, F>, KernelError> {
        let loop_step = plan.loop_step(step);
        let (forward, adjoint) = match &plan.adjoint {
            None => (kernel(backend, &loop_step.graph, bindings, batch)?, None),
            Some(adj) => {
                let (f, a) = bptt_kernels(backend, adj, bindings, batch)?;
                (f, Some(a))
            }
        };
        let rows = steps * batch;
        let hoisted = match &plan.hoisting {
            Some(h) if rows > 0 => Some(HoistedKernels {
                split: &h.split,
                pre: Chunked::new(backend, &h.split.pre, bindings, rows)?,
                pre_adjoint: match plan.adjoint {
                    Some(_) => Some(Chunked::new(backend, &h.pre_adjoint, bindings, rows)?),
                    None => None,
                },
            }),
            _ => None,
        };
        Ok(Kernels {
            forward,
            adjoint,
            hoisted,
        })
    }
}

/// What one call reads: the sequences, and for forward+backward the
/// cotangent (ones on every output: the gradient of the sum of all outputs,
/// as `cellc grad` without `--cotangent`).
pub struct Workload<'a, F> {
    pub step: &'a StepGraph,
    pub seq: &'a Sequences<F>,
    pub cotangents: Option<Cotangents<F>>,
}

impl<'a, F: Real> Workload<'a, F> {
    /// The workload of `mode` for the step the loop runs; for
    /// forward+backward, `adj` is the adjoint the kernels were made from
    /// (checked against the cotangents).
    pub fn new(
        step: &'a StepGraph,
        seq: &'a Sequences<F>,
        adj: Option<&StepAdjoint>,
    ) -> Result<Workload<'a, F>, KernelError> {
        let cotangents = match adj {
            None => None,
            Some(adj) => {
                let cot = matching::ones_cotangents(step, seq);
                check_cotangents(step, adj, &cot)?;
                Some(cot)
            }
        };
        Ok(Workload {
            step,
            seq,
            cotangents,
        })
    }

    /// One call: the whole sequence forward, or forward then backward, with
    /// the hoisted work before and after the loop when there is some. What
    /// it computes is dropped; the work is what is measured.
    pub fn call(&self, kernels: &mut Kernels<'_, F>) -> Result<(), KernelError> {
        let seq: Cow<'_, Sequences<F>> = match &mut kernels.hoisted {
            Some(h) => Cow::Owned(with_hoisted(h.split, &mut h.pre, self.seq)?),
            None => Cow::Borrowed(self.seq),
        };
        let history = initial_history(self.step, &seq);
        match (&mut kernels.adjoint, &self.cotangents) {
            (Some(adjoint), Some(cot)) => {
                let (_, g) = run_backward(
                    self.step,
                    kernels.forward.as_mut(),
                    adjoint.as_mut(),
                    &seq,
                    cot,
                    history,
                )?;
                if let Some(h) = &mut kernels.hoisted
                    && let Some(pre_adjoint) = &mut h.pre_adjoint
                {
                    through_hoisted(h.split, pre_adjoint, self.seq, g)?;
                }
            }
            _ => {
                run_forward(self.step, kernels.forward.as_mut(), &seq, history)?;
            }
        }
        Ok(())
    }
}

/// The matrix-product FLOPs of one call: T times those of the step graph
/// (forward), or of BPTT's forward step plus its adjoint step.
pub fn flops_per_call(
    step: &StepGraph,
    adj: Option<&StepAdjoint>,
    bindings: &Bindings,
    steps: usize,
    batch: usize,
) -> Result<u128, String> {
    let per_step = match adj {
        None => matrix_flops(&step.graph, bindings, batch)?,
        Some(adj) => matrix_flops(&adj.forward, bindings, batch)?.saturating_add(matrix_flops(
            &adj.backward,
            bindings,
            batch,
        )?),
    };
    Ok(per_step.saturating_mul(steps as u128))
}

/// How many calls to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeats {
    /// Exactly this many.
    Exactly(usize),
    /// At least [`MIN_CALLS`] and at least [`MIN_TIME`] of timed calls,
    /// stopping at [`MAX_CALLS`], or once [`MAX_TIME`] is timed after at
    /// least three (so a slow configuration still ends).
    Auto,
}

/// Warm-up: at least one call, and calls until this much time has passed.
pub const WARMUP: Duration = Duration::from_millis(200);
pub const MIN_CALLS: usize = 10;
pub const MIN_TIME: Duration = Duration::from_secs(1);
pub const MAX_CALLS: usize = 10_000;
pub const MAX_TIME: Duration = Duration::from_secs(30);

/// The time of each timed call, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Timings {
    pub calls: Vec<Duration>,
    pub warmup_calls: usize,
}

impl Timings {
    pub fn median(&self) -> Duration {
        let mut sorted = self.calls.clone();
        sorted.sort();
        let n = sorted.len();
        match n {
            0 => Duration::ZERO,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        }
    }
    pub fn min(&self) -> Duration {
        self.calls.iter().copied().min().unwrap_or_default()
    }
    pub fn mean(&self) -> Duration {
        match self.calls.len() {
            0 => Duration::ZERO,
            n => self.calls.iter().sum::<Duration>() / n as u32,
        }
    }
}

/// Warms up, then times `call` as `repeats` says.
pub fn time_calls<E>(
    mut call: impl FnMut() -> Result<(), E>,
    repeats: Repeats,
) -> Result<Timings, E> {
    let start = Instant::now();
    let mut warmup_calls = 0;
    while warmup_calls == 0 || start.elapsed() < WARMUP {
        call()?;
        warmup_calls += 1;
    }
    let mut calls = Vec::new();
    let mut timed = Duration::ZERO;
    loop {
        let more = match repeats {
            Repeats::Exactly(n) => calls.len() < n,
            Repeats::Auto => {
                let n = calls.len();
                n < MAX_CALLS
                    && !(n >= 3 && timed >= MAX_TIME)
                    && (n < MIN_CALLS || timed < MIN_TIME)
            }
        };
        if !more {
            break;
        }
        let t = Instant::now();
        call()?;
        let took = t.elapsed();
        timed += took;
        calls.push(took);
    }
    Ok(Timings {
        calls,
        warmup_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{check_source, differentiate_step};

    const IRNN: &str = "cell irnn(x: [X]) {
        state h: [H]
        param U: [H, X], W: [H, H], b: [H]
        h_t = relu(U @ x + W @ h[t-1] + b)
        output h
    }";

    #[test]
    fn an_rnn_does_two_products_forward_and_four_backward() {
        let step = check_source(IRNN).unwrap().step;
        let adj = differentiate_step(&step).unwrap();
        let (h, x, t, b) = (3u128, 2u128, 5usize, 4usize);
        let bindings: Bindings = [("H".to_string(), 3), ("X".to_string(), 2)].into();
        // Forward, per step and sequence: U·x (2·H·X) and W·h (2·H·H).
        let forward = 2 * h * (x + h) * b as u128 * t as u128;
        assert_eq!(flops_per_call(&step, None, &bindings, t, b), Ok(forward));
        // Backward: dU = Σ_b da⊗x, dW = Σ_b da⊗h, dx = Uᵀda, dh = Wᵀda, each
        // as many as its forward product; so forward+backward is three times
        // the forward, as `peers.py` counts.
        assert_eq!(
            flops_per_call(&step, Some(&adj), &bindings, t, b),
            Ok(3 * forward)
        );
    }

    #[test]
    fn a_call_runs_forward_and_backward() {
        let step = check_source(IRNN).unwrap().step;
        let defines: Bindings = [("H".to_string(), 3), ("X".to_string(), 2)].into();
        let seq = generated_sequences::<f32>(&step, &defines, 4, 2, 0).unwrap();
        for backend in [Backend::Interp, Backend::Jit] {
            for mode in [Mode::Forward, Mode::ForwardBackward] {
                let plan = Plan::new(backend, &step, mode).unwrap();
                // The JIT hoists `U·x` out of the loop; the interpreter does not.
                assert_eq!(plan.hoisting.is_some(), backend == Backend::Jit);
                let mut kernels =
                    Kernels::new(backend, &step, &plan, &seq.bindings, 4, seq.batch).unwrap();
                let work =
                    Workload::new(plan.loop_step(&step), &seq, plan.adjoint.as_ref()).unwrap();
                let t = time_calls(|| work.call(&mut kernels), Repeats::Exactly(3)).unwrap();
                assert_eq!(t.calls.len(), 3);
                assert!(t.warmup_calls >= 1);
                assert!(t.min() <= t.median() && t.median() <= *t.calls.iter().max().unwrap());
            }
        }
    }

    #[test]
    fn unbound_dimensions_are_named() {
        let step = check_source(IRNN).unwrap().step;
        let defines: Bindings = [("H".to_string(), 3)].into();
        let e = generated_sequences::<f32>(&step, &defines, 4, 2, 0).unwrap_err();
        assert!(e.to_string().contains("-D X=SIZE"), "{e}");
    }
}
