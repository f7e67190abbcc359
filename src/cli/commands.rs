//! One function per command: load what it takes, run the stages, report.

use super::load::{load_cell, load_data, read_named};
use super::report::{check_output_dir, deliver, signature, to_array_data};
use super::{DataArgs, EqFormat, Failure, Format};
use crate::data::ArrayData;
use crate::data::bind;
use crate::data::matching;
use crate::graph::op::Real;
use crate::graph::print;
use crate::graph::step::StepGraph;
use crate::runtime::forward;
use crate::runtime::memory::Pass;
use crate::runtime::types::Trajectory;
use std::path::Path;

fn dim_names(step: &StepGraph) -> Vec<String> {
    step.dims.iter().map(|d| d.name.clone()).collect()
}

pub(super) fn cmd_check(path: &Path, define: &[(String, usize)]) -> Result<(), Failure> {
    let step = load_cell(path)?;
    let defs = bind::defines(define)?;
    // Checks the names and sizes given.
    bind::bind_partial(&dim_names(&step), &defs, &[])?;
    print!("{}", signature(&step, &defs));
    Ok(())
}

pub(super) fn cmd_graph(
    path: &Path,
    unroll: Option<usize>,
    grad: bool,
    format: Format,
) -> Result<(), Failure> {
    let step = load_cell(path)?;
    let show = |g: &crate::graph::Graph, title: &str| match format {
        Format::Text => print::text(g, title),
        Format::Dot => print::dot(g, title),
    };
    if grad {
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
        print!("{out}");
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
        Format::Text => print!("{}", print::text(&graph, &title)),
        Format::Dot => print!("{}", print::dot(&graph, &title)),
    }
    Ok(())
}

pub(super) fn cmd_run<F: Real + 'static>(
    path: &Path,
    d: &DataArgs,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let step = load_cell(path)?;
    check_output_dir(out)?;
    let seq = load_data::<F>(&step, d, Pass::Run)?;
    let traj = forward::forward(&step, &seq)?;
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
        arrays.push((sig.name.clone(), to_array_data(a)));
    }
    for (sig, a) in step.states.iter().zip(last) {
        arrays.push((format!("{}.last", sig.name), to_array_data(a.into_dyn())));
    }
    deliver(&step, &seq, &arrays, out)
}

pub(super) fn cmd_bptt(path: &Path, format: EqFormat) -> Result<(), Failure> {
    let step = load_cell(path)?;
    let adj = crate::pipeline::differentiate_step(&step)?;
    let style = match format {
        EqFormat::Text => crate::derivation::Style::Text,
        EqFormat::Latex => crate::derivation::Style::Latex,
    };
    print!("{}", crate::derivation::bptt_equations(&step, &adj, style));
    Ok(())
}

pub(super) fn cmd_grad<F: Real + 'static>(
    path: &Path,
    d: &DataArgs,
    cotangent: Option<&Path>,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let step = load_cell(path)?;
    check_output_dir(out)?;
    // Differentiated first: the memory estimate counts its residuals.
    let adj = crate::pipeline::differentiate_step(&step)?;
    let seq = load_data::<F>(&step, d, Pass::Grad(&adj))?;
    let cot = match cotangent {
        Some(p) => {
            let named = read_named::<F>(p, "cotangent")?;
            matching::cotangents(&step, &seq, named)?
        }
        None => {
            eprintln!(
                "note: no --cotangent: using ones for every output (the gradient of the sum of all outputs)"
            );
            matching::ones_cotangents(&step, &seq)
        }
    };
    let g = crate::runtime::backward::backward(&step, &adj, &seq, &cot)?;
    drop(cot);
    let mut arrays: Vec<(String, ArrayData)> = Vec::new();
    for (sig, a) in step.params.iter().zip(g.params) {
        arrays.push((sig.name.clone(), to_array_data(a)));
    }
    for (sig, a) in step.inputs.iter().zip(g.inputs) {
        arrays.push((sig.name.clone(), to_array_data(a.into_dyn())));
    }
    for (sig, a) in step.states.iter().zip(g.init) {
        arrays.push((format!("{}.init", sig.name), to_array_data(a.into_dyn())));
    }
    deliver(&step, &seq, &arrays, out)
}
