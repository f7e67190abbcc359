//! One function per command: load what it takes, run the stages, report.

use super::load::{Converted, load_cell, load_checked, load_data, read_named};
use super::progress::Progress;
use super::report::{check_output, deliver, emit, note, signature, to_array_data, warn_non_finite};
use super::{DataArgs, EqFormat, Failure, Format};
use crate::data::ArrayData;
use crate::data::bind;
use crate::data::matching;
use crate::graph::op::Real;
use crate::graph::print;
use crate::graph::step::StepGraph;
use crate::runtime::backend::{Backend, bptt_kernels, kernel};
use crate::runtime::backward::{check_cotangents, run_backward};
use crate::runtime::forward::{initial_history, run_forward};
use crate::runtime::hoisted::{Chunked, loop_of, through_hoisted};
use crate::runtime::memory::{self, Pass};
use crate::runtime::types::Trajectory;
use ndarray::ArrayD;
use std::path::Path;

pub(super) fn cmd_check(path: &Path, define: &[(String, usize)]) -> Result<(), Failure> {
    let (step, src) = load_checked(path)?;
    let defs = bind::defines(define)?;
    // Checks the names and values given, and every size under them.
    bind::bind_step(&step, &defs, &[], false).map_err(|e| src.locate(&e))?;
    emit(&signature(&step, &defs))
}

/// The most nodes `graph --unroll` builds (with `--grad`, a quarter of it:
/// the adjoint of an unrolled graph holds several times its nodes). A node
/// takes about 700 bytes while it is built and printed, so this bounds the
/// memory by the cell's size times T, not by T alone.
const UNROLLED_NODES: usize = 1_000_000;

fn check_unrolled_size(step: &StepGraph, t: usize, grad: bool) -> Result<(), Failure> {
    let per_step = step.graph.op_count().max(1);
    let limit = if grad {
        UNROLLED_NODES / 4
    } else {
        UNROLLED_NODES
    };
    let nodes = per_step.saturating_mul(t);
    if nodes > limit {
        return Err(Failure(format!(
            "error: --unroll {t} would build about {nodes} nodes ({per_step} per step){}; \
             at most {limit} are built: choose at most --unroll {}",
            if grad { " before its adjoint" } else { "" },
            (limit / per_step).max(1)
        )));
    }
    Ok(())
}

/// `cellc graph --schedule`: the fused plan of the step (and of BPTT's two
/// steps), as the native back end runs it.
fn print_schedule(
    step: &crate::graph::step::StepGraph,
    unroll: Option<usize>,
    grad: bool,
    format: Format,
) -> Result<(), Failure> {
    if unroll.is_some() {
        return Err(Failure(
            "error: --schedule prints the schedule of one step; leave out --unroll".into(),
        ));
    }
    if format != Format::Text {
        return Err(Failure("error: --schedule is printed as text only".into()));
    }
    // As the back end compiles them: shared subexpressions, no dead code.
    let share =
        |g: &crate::graph::Graph| crate::opt::share(g).map_err(|e| Failure(format!("error: {e}")));
    let plan = |g: &crate::graph::Graph, title: String| crate::schedule::fuse(g).print(g, &title);
    let out = if grad {
        compile_fits(step, "derivation", None)?;
        let adj = crate::pipeline::differentiate_step(step)?;
        let mut out = plan(
            &share(&adj.forward)?,
            format!("schedule of forward step {}", step.name),
        );
        out.push('\n');
        out.push_str(&plan(
            &share(&adj.backward)?,
            format!("schedule of adjoint step {}", step.name),
        ));
        out
    } else {
        plan(
            &share(&step.graph)?,
            format!("schedule of step {}", step.name),
        )
    };
    emit(&out)?;
    Ok(())
}

pub(super) fn cmd_graph(
    path: &Path,
    unroll: Option<usize>,
    grad: bool,
    schedule: bool,
    format: Format,
) -> Result<(), Failure> {
    let step = load_cell(path)?;
    if schedule {
        return print_schedule(&step, unroll, grad, format);
    }
    if let Some(t) = unroll {
        check_unrolled_size(&step, t, grad)?;
    }
    let show = |g: &crate::graph::Graph, title: &str| match format {
        Format::Text => print::text(g, title),
        Format::Dot => print::dot(g, title),
    };
    if grad {
        compile_fits(&step, "derivation", None)?;
        let out = match unroll {
            None => {
                let adj = crate::pipeline::differentiate_step(&step)?;
                let mut out = show(
                    &adj.forward,
                    &format!(
                        "forward step {} (saves {} residuals: {} numbers per step and sequence)",
                        step.name,
                        adj.n_residuals,
                        adj.saved_per_step(&step)
                    ),
                );
                if format == Format::Text {
                    out.push('\n');
                }
                out.push_str(&show(
                    &adj.backward,
                    &format!(
                        "adjoint step {} ({} ops; the step has {}: ratio {:.2})",
                        step.name,
                        adj.backward.op_count(),
                        step.graph.op_count(),
                        adj.ratio(&step)
                    ),
                ));
                out
            }
            Some(t) if t == 0 || t > 1000 => {
                return Err(Failure(
                    "error: --unroll with --grad takes 1 to 1000 steps".into(),
                ));
            }
            Some(t) => {
                let g = crate::pipeline::unrolled(&step, t)?;
                let adj = crate::pipeline::adjoint_of(&g)?;
                show(&adj, &format!("adjoint of unrolled {} T={t}", step.name))
            }
        };
        emit(&out)?;
        return Ok(());
    }
    let (graph, title) = match unroll {
        None => (step.graph.clone(), format!("step {}", step.name)),
        Some(0) => return Err(Failure("error: --unroll needs at least one step".into())),
        Some(t) if t > 10_000 => {
            return Err(Failure(
                "error: --unroll is for looking at small graphs: at most 10000 steps".into(),
            ));
        }
        Some(t) => (
            crate::pipeline::unrolled(&step, t)?,
            format!("unrolled {} T={t}", step.name),
        ),
    };
    match format {
        Format::Text => emit(&print::text(&graph, &title)),
        Format::Dot => emit(&print::dot(&graph, &title)),
    }
}

/// The native back end hoists input-only work out of the time loop, over
/// `rows` (T·B) rows; nothing is hoisted over none, nor by the interpreter.
fn hoisting_for(
    backend: Backend,
    step: &StepGraph,
    rows: usize,
) -> Result<Option<crate::pipeline::Hoisting>, Failure> {
    Ok(match backend {
        Backend::Jit if rows > 0 => crate::pipeline::hoisting(step)?,
        _ => None,
    })
}

pub(super) fn cmd_run<F: Real + 'static>(
    path: &Path,
    d: &DataArgs,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let (step, src) = load_checked(path)?;
    check_output(out, d, &[("cell file", Some(path))])?;
    let seq = load_data::<F>(&step, d, &src, Pass::Run)?;
    let backend = d.backend.into();
    let hoisting = hoisting_for(backend, &step, seq.steps * seq.batch)?;
    let split = hoisting.as_ref().map(|h| &h.split);
    let (loop_step, loop_seq) = loop_of(backend, &step, split, &seq)?;
    let kernel = kernel::<F>(backend, &loop_step.graph, &seq.bindings, seq.batch)?;
    let progress = Progress::new(seq.steps);
    let mut kernel = progress.ticking(kernel, "forward");
    let history = initial_history(loop_step, &loop_seq);
    let traj = run_forward(loop_step, &mut kernel, &loop_seq, history)?.0;
    drop(loop_seq);
    progress.finish();
    // The arrays are moved, not copied, and the history is let go: what a run
    // holds while it writes is no more than what it held while it ran.
    let Trajectory {
        outputs,
        last,
        history,
    } = traj;
    drop(history);
    let mut arrays: Vec<(String, ArrayData)> = Vec::new();
    for (sig, mut a) in step.outputs.iter().zip(outputs) {
        // Every output is `[T, B, n]`; a scalar one has n = 1.
        if a.ndim() == 2 {
            a = a.insert_axis(ndarray::Axis(2));
        }
        warn_non_finite("output", &sig.name, a.view());
        arrays.push((sig.name.clone(), to_array_data(a)));
    }
    for (sig, a) in step.states.iter().zip(last) {
        let name = format!("{}.last", sig.name);
        warn_non_finite("final state", &name, a.view().into_dyn());
        arrays.push((name, to_array_data(a.into_dyn())));
    }
    deliver(&step, &seq, &arrays, out)
}

/// Refuses a cell too large to derive and compile in the memory available,
/// before the work that would exhaust it (see `memory::compile_estimate`).
pub(super) fn compile_fits(
    step: &StepGraph,
    what: &'static str,
    max_memory: Option<u128>,
) -> Result<(), Failure> {
    let estimate = memory::compile_estimate(step, true);
    memory::check_cell(what, estimate, memory::available(max_memory).as_ref())?;
    Ok(())
}

pub(super) fn cmd_bptt(path: &Path, format: EqFormat) -> Result<(), Failure> {
    let step = load_cell(path)?;
    compile_fits(&step, "derivation", None)?;
    let adj = crate::pipeline::differentiate_step(&step)?;
    let style = match format {
        EqFormat::Text => crate::derivation::Style::Text,
        EqFormat::Latex => crate::derivation::Style::Latex,
    };
    emit(&crate::derivation::bptt_equations(&step, &adj, style))
}

pub(super) fn cmd_grad<F: Real + 'static>(
    path: &Path,
    d: &DataArgs,
    cotangent: Option<&Path>,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let (step, src) = load_checked(path)?;
    check_output(
        out,
        d,
        &[("cell file", Some(path)), ("--cotangent file", cotangent)],
    )?;
    compile_fits(&step, "grad", d.max_memory)?;
    // Differentiated first: the memory estimate counts its residuals (those
    // of every output, so an upper bound for any loss).
    let adj_all = crate::pipeline::differentiate_step(&step)?;
    let seq = load_data::<F>(&step, d, &src, Pass::Grad(&adj_all))?;
    let cot = match cotangent {
        Some(p) => {
            let mut converted = Converted::default();
            let named = read_named::<F>(p, "cotangent", &mut converted)?;
            converted.note::<F>();
            matching::cotangents(&step, &seq, named)?
        }
        None => {
            note(
                "no --cotangent: using ones for every output (the gradient of the sum of all outputs)",
            );
            matching::ones_cotangents(&step, &seq)
        }
    };
    let mut cot = cot;
    for (o, sig) in step.outputs.iter().enumerate() {
        if let Some(c) = &cot.outputs[o] {
            warn_non_finite("cotangent", &sig.name, c.view());
        }
    }
    for (s, sig) in step.states.iter().enumerate() {
        if let Some(c) = &cot.last[s] {
            warn_non_finite(
                "cotangent",
                &format!("{}.last", sig.name),
                c.view().into_dyn(),
            );
        }
    }
    // An output whose cotangent is absent or all zero is outside the loss: the
    // adjoint is derived without it, so it adds exactly nothing to the
    // gradient, even where its value is infinite (docs/bptt.md).
    for c in cot.outputs.iter_mut() {
        if c.as_ref().is_some_and(|c| c.iter().all(|v| v.is_zero())) {
            *c = None;
        }
    }
    let in_loss: Vec<bool> = cot.outputs.iter().map(Option::is_some).collect();
    let adj = if in_loss.iter().all(|&i| i) {
        adj_all
    } else {
        drop(adj_all);
        crate::pipeline::differentiate_step_for(&step, &in_loss)?
    };
    check_cotangents(&step, &adj, &cot)?;
    let backend = d.backend.into();
    // The gradients through the hoisted work are taken after BPTT.
    let hoisting = hoisting_for(backend, &step, seq.steps * seq.batch)?;
    let split = hoisting.as_ref().map(|h| &h.split);
    let (loop_step, loop_seq) = loop_of(backend, &step, split, &seq)?;
    let loop_adj = match &hoisting {
        Some(h) => crate::pipeline::differentiate_step_for(&h.split.step, &in_loss)?,
        None => adj,
    };
    let (forward, adjoint) = bptt_kernels::<F>(backend, &loop_adj, &seq.bindings, seq.batch)?;
    let progress = Progress::new(2 * seq.steps);
    let mut forward = progress.ticking(forward, "forward");
    let mut adjoint = progress.ticking(adjoint, "backward");
    let history = initial_history(loop_step, &loop_seq);
    let (traj, g) = run_backward(
        loop_step,
        &mut forward,
        &mut adjoint,
        &loop_seq,
        &cot,
        history,
    )?;
    drop(loop_seq);
    let g = match &hoisting {
        Some(h) => {
            let rows = seq.steps * seq.batch;
            let mut pre_adj = Chunked::<F>::new(backend, &h.pre_adjoint, &seq.bindings, rows)?;
            through_hoisted(&h.split, &mut pre_adj, &seq, g)?
        }
        None => g,
    };
    progress.finish();
    drop(cot);
    for (o, sig) in step.outputs.iter().enumerate() {
        warn_non_finite("output", &sig.name, traj.outputs[o].view());
    }
    for (s, sig) in step.states.iter().enumerate() {
        let name = format!("{}.last", sig.name);
        warn_non_finite("final state", &name, traj.last[s].view().into_dyn());
    }
    // The gradients are moved, not copied, and the trajectory let go first.
    drop(traj);
    let mut arrays: Vec<(String, ArrayD<F>)> = Vec::new();
    for (sig, a) in step.params.iter().zip(g.params) {
        arrays.push((sig.name.clone(), a));
    }
    for (sig, a) in step.inputs.iter().zip(g.inputs) {
        arrays.push((sig.name.clone(), a.into_dyn()));
    }
    for (sig, a) in step.states.iter().zip(g.init) {
        arrays.push((format!("{}.init", sig.name), a.into_dyn()));
    }
    let arrays: Vec<(String, ArrayData)> = arrays
        .into_iter()
        .map(|(name, a)| {
            warn_non_finite("gradient", &name, a.view());
            (name, to_array_data(a))
        })
        .collect();
    deliver(&step, &seq, &arrays, out)
}
