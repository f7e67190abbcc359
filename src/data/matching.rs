//! Named arrays in, checked sequences out: which array is which parameter,
//! input or initial state, whether its shape fits the cell, and what every
//! dimension is. Every error names the array and says what was expected.

use super::bind::{self, BindError, Constraint, bind_step};
use crate::graph::dim::{Bindings, shape_string};
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use crate::runtime::types::{Cotangents, Sequences, output_shape, size};
use ndarray::{Array2, Array3, ArrayD, Axis, Ix2, Ix3};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("parameter `{name}` is missing: expected an array of shape {expected}")]
    MissingParam { name: String, expected: String },
    #[error("`{name}` is not a parameter of cell `{cell}` (its parameters: {known})")]
    ExtraParam {
        name: String,
        cell: String,
        known: String,
    },
    #[error(
        "input `{name}` is missing: expected an array of shape [T, B, {size}] (or [T, {size}])"
    )]
    MissingInput { name: String, size: String },
    #[error("`{name}` is not an input of cell `{cell}` (its inputs: {known})")]
    ExtraInput {
        name: String,
        cell: String,
        known: String,
    },
    #[error("`{name}` is not a state of cell `{cell}` (its states: {known})")]
    ExtraState {
        name: String,
        cell: String,
        known: String,
    },
    #[error("{what} `{name}` has shape {found:?}, expected {expected}")]
    Rank {
        what: &'static str,
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error(
        "input `{name}` has {found} steps and batch {found_batch}, but `{first}` has {steps} and {batch}"
    )]
    InputsDisagree {
        name: String,
        found: usize,
        found_batch: usize,
        first: String,
        steps: usize,
        batch: usize,
    },
    #[error(
        "`{name}` in the cotangent file is no output and no final state `NAME.last` (expected: {known})"
    )]
    ExtraCotangent { name: String, known: String },
    #[error("--lengths: {0}")]
    Lengths(String),
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// Named arrays as they come from files.
pub type Named<F> = Vec<(String, ArrayD<F>)>;

/// The constraints a parameter named `name` of `shape` puts on the cell's
/// dimensions, and its index; an error when the cell has no such parameter or
/// its rank differs.
fn param_shape(
    step: &StepGraph,
    name: &str,
    shape: &[usize],
) -> Result<(usize, Vec<Constraint>), DataError> {
    let Some(p) = step.param_index(name) else {
        return Err(DataError::ExtraParam {
            name: name.to_string(),
            cell: step.name.clone(),
            known: step
                .params
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let dims = &step.params[p].dims;
    if shape.len() != dims.len() {
        return Err(DataError::Rank {
            what: "parameter",
            name: name.to_string(),
            found: shape.to_vec(),
            expected: shape_string(dims),
        });
    }
    let constraints = dims
        .iter()
        .enumerate()
        .map(|(axis, d)| Constraint {
            expr: d.clone(),
            actual: shape[axis],
            source: format!(
                "parameter `{name}` {shape:?}, axis {axis} of {}",
                shape_string(dims)
            ),
        })
        .collect();
    Ok((p, constraints))
}

/// An error naming the first parameter of the cell that `given` says is not.
fn all_params_given(step: &StepGraph, given: impl Fn(usize) -> bool) -> Result<(), DataError> {
    match (0..step.params.len()).find(|&p| !given(p)) {
        Some(p) => Err(DataError::MissingParam {
            name: step.params[p].name.clone(),
            expected: shape_string(&step.params[p].dims),
        }),
        None => Ok(()),
    }
}

/// The constraint input `i` (named `name`) of `shape`, `[T, B, n]` or `[T, n]`,
/// puts on its size; an error for another rank.
fn input_shape(
    step: &StepGraph,
    i: usize,
    name: &str,
    shape: &[usize],
) -> Result<Constraint, DataError> {
    let size = &step.inputs[i].size;
    let full: Vec<usize> = match shape {
        [t, n] => vec![*t, 1, *n],
        [_, _, _] => shape.to_vec(),
        _ => {
            return Err(DataError::Rank {
                what: "input",
                name: name.to_string(),
                found: shape.to_vec(),
                expected: format!("[T, B, {size}] or [T, {size}]"),
            });
        }
    };
    Ok(Constraint {
        expr: size.clone(),
        actual: full[2],
        source: format!("input `{name}` [T, B, {size}] = {full:?}"),
    })
}

/// What `prepare` checks of parameters and inputs that their shapes alone
/// decide, for arrays not read yet (from their files' headers): names, ranks,
/// every parameter given, and the dimensions they bind, against each other
/// and `defines`. `params` is `None` when they are generated. An input the
/// cell lacks is left for `prepare` to name.
pub fn check_shapes(
    step: &StepGraph,
    defines: &Bindings,
    params: Option<&[(String, Vec<usize>)]>,
    inputs: &[(String, Vec<usize>)],
) -> Result<(), DataError> {
    let mut param_constraints = Vec::new();
    let mut given = vec![false; step.params.len()];
    for (name, shape) in params.unwrap_or_default() {
        let (p, c) = param_shape(step, name, shape)?;
        param_constraints.extend(c);
        given[p] = true;
    }
    if params.is_some() {
        all_params_given(step, |p| given[p])?;
    }
    let mut constraints = Vec::new();
    for (name, shape) in inputs {
        if let Some(i) = step.inputs.iter().position(|s| s.name == *name) {
            constraints.push(input_shape(step, i, name, shape)?);
        }
    }
    // Inputs first, as prepare binds them: a wrong parameter is then the one named.
    constraints.extend(param_constraints);
    let dims: Vec<String> = step.dims.iter().map(|d| d.name.clone()).collect();
    bind::bind_partial(&dims, defines, &constraints)?;
    Ok(())
}

/// Matches arrays to the cell by name and binds its dimensions. Every
/// parameter given must be one of the cell's.
pub fn prepare<F: Real>(
    step: &StepGraph,
    params: Named<F>,
    inputs: Named<F>,
    init: Named<F>,
    lengths: Option<Vec<i64>>,
    defines: &Bindings,
    reverse: bool,
) -> Result<Sequences<F>, DataError> {
    // Inputs and initial states are bound first, so that a parameter of the
    // wrong shape is the array named in the error, not a source of it.
    let mut constraints = Vec::new();
    let mut param_constraints = Vec::new();
    let list = |names: Vec<&str>| names.join(", ");

    // Parameters.
    let mut by_param: Vec<Option<ArrayD<F>>> = vec![None; step.params.len()];
    for (name, a) in params {
        let (p, c) = param_shape(step, &name, a.shape())?;
        param_constraints.extend(c);
        by_param[p] = Some(a);
    }
    all_params_given(step, |p| by_param[p].is_some())?;

    // Inputs: [T, B, n], or [T, n] for one sequence.
    let mut by_input: Vec<Option<Array3<F>>> = vec![None; step.inputs.len()];
    let mut first: Option<(String, usize, usize)> = None;
    for (name, a) in inputs {
        let Some(i) = step.inputs.iter().position(|s| s.name == name) else {
            return Err(DataError::ExtraInput {
                name,
                cell: step.name.clone(),
                known: list(step.inputs.iter().map(|s| s.name.as_str()).collect()),
            });
        };
        let constraint = input_shape(step, i, &name, a.shape())?;
        let a = match a.ndim() {
            2 => a.insert_axis(Axis(1)),
            _ => a,
        };
        let a = a.into_dimensionality::<Ix3>().expect("three axes");
        let (t, b, n) = a.dim();
        match &first {
            None => first = Some((name.clone(), t, b)),
            Some((f, ft, fb)) if (*ft, *fb) != (t, b) => {
                return Err(DataError::InputsDisagree {
                    name,
                    found: t,
                    found_batch: b,
                    first: f.clone(),
                    steps: *ft,
                    batch: *fb,
                });
            }
            _ => {}
        }
        debug_assert_eq!(constraint.actual, n);
        constraints.push(constraint);
        by_input[i] = Some(a);
    }
    for (i, a) in by_input.iter().enumerate() {
        if a.is_none() {
            return Err(DataError::MissingInput {
                name: step.inputs[i].name.clone(),
                size: step.inputs[i].size.to_string(),
            });
        }
    }
    let (_, steps, batch) = first.expect("a cell has at least one input");

    // Initial states: [B, n].
    let mut by_state: Vec<Option<Array2<F>>> = vec![None; step.states.len()];
    for (name, a) in init {
        let Some(s) = step.states.iter().position(|s| s.name == name) else {
            return Err(DataError::ExtraState {
                name,
                cell: step.name.clone(),
                known: list(step.states.iter().map(|s| s.name.as_str()).collect()),
            });
        };
        let size = &step.states[s].size;
        let found = a.shape().to_vec();
        // A vector is one sequence's state, accepted when B = 1.
        let a = if a.ndim() == 1 && batch == 1 {
            a.insert_axis(Axis(0))
        } else {
            a
        };
        if a.ndim() != 2 || a.shape()[0] != batch {
            return Err(DataError::Rank {
                what: "initial state",
                name,
                found,
                expected: format!("[B, {size}] with B = {batch}"),
            });
        }
        let a = a.into_dimensionality::<Ix2>().expect("two axes");
        constraints.push(Constraint {
            expr: size.clone(),
            actual: a.dim().1,
            source: format!("initial state `{name}` {:?}", a.shape()),
        });
        by_state[s] = Some(a);
    }

    constraints.extend(param_constraints);
    let bindings = bind_step(step, defines, &constraints, true)?;

    let lengths = match lengths {
        None => None,
        Some(l) => {
            if l.len() != batch {
                return Err(DataError::Lengths(format!(
                    "{} lengths given for a batch of {batch}",
                    l.len()
                )));
            }
            let mut out = Vec::with_capacity(batch);
            for (b, &v) in l.iter().enumerate() {
                if v < 0 || v as usize > steps {
                    return Err(DataError::Lengths(format!(
                        "length {v} of sequence {b} is outside 0..={steps}"
                    )));
                }
                out.push(v as usize);
            }
            Some(out)
        }
    };
    Ok(Sequences {
        params: by_param.into_iter().map(|a| a.expect("checked")).collect(),
        inputs: by_input.into_iter().map(|a| a.expect("checked")).collect(),
        init: by_state,
        lengths,
        reverse,
        bindings,
        steps,
        batch,
        fill: Vec::new(),
    })
}

/// Matches a cotangent file to the cell: one `[T, B, ...]` array per output
/// name, `NAME.last` `[B, n]` per state; any other name is an error, and what
/// is left out is zero.
pub fn cotangents<F: Real>(
    step: &StepGraph,
    seq: &Sequences<F>,
    named: Named<F>,
) -> Result<Cotangents<F>, DataError> {
    let mut outputs: Vec<Option<ArrayD<F>>> = vec![None; step.outputs.len()];
    let mut last: Vec<Option<Array2<F>>> = vec![None; step.states.len()];
    for (name, a) in named {
        if let Some(o) = step.outputs.iter().position(|o| o.name == name) {
            let mut shape = vec![seq.steps, seq.batch];
            shape.extend(
                step.outputs[o]
                    .ty
                    .dims
                    .iter()
                    .map(|d| size(d, &seq.bindings)),
            );
            // A scalar output travels as `[T, B, 1]`, like any other output.
            let a = if shape.len() == 2 && a.shape() == [seq.steps, seq.batch, 1] {
                a.index_axis_move(Axis(2), 0)
            } else {
                a
            };
            if a.shape() != shape.as_slice() {
                let dims = &step.outputs[o].ty.dims;
                let (shown, layout) = if dims.is_empty() {
                    (
                        vec![seq.steps, seq.batch, 1],
                        "[T, B, 1]: a scalar output".to_string(),
                    )
                } else {
                    (
                        shape.clone(),
                        format!("[T, B, {}]", shape_string(dims).trim_matches(['[', ']'])),
                    )
                };
                return Err(DataError::Rank {
                    what: "cotangent of output",
                    name,
                    found: a.shape().to_vec(),
                    expected: format!("{shown:?} ({layout})"),
                });
            }
            outputs[o] = Some(a);
        } else if let Some(s) = name
            .strip_suffix(".last")
            .and_then(|n| step.states.iter().position(|s| s.name == n))
        {
            let n = size(&step.states[s].size, &seq.bindings);
            if a.shape() != [seq.batch, n] {
                return Err(DataError::Rank {
                    what: "cotangent",
                    name,
                    found: a.shape().to_vec(),
                    expected: format!("[{}, {n}] ([B, {}])", seq.batch, step.states[s].size),
                });
            }
            last[s] = Some(a.into_dimensionality::<Ix2>().expect("checked"));
        } else {
            let mut known: Vec<String> = step.outputs.iter().map(|o| o.name.clone()).collect();
            known.extend(step.states.iter().map(|s| format!("{}.last", s.name)));
            return Err(DataError::ExtraCotangent {
                name,
                known: known.join(", "),
            });
        }
    }
    Ok(Cotangents { outputs, last })
}

/// Ones for every output and no cotangent for final states: the gradient of
/// the sum of all outputs.
pub fn ones_cotangents<F: Real>(step: &StepGraph, seq: &Sequences<F>) -> Cotangents<F> {
    let outputs = (0..step.outputs.len())
        .map(|o| {
            let shape = output_shape(step, o, &[seq.steps, seq.batch], &seq.bindings);
            Some(ArrayD::from_elem(ndarray::IxDyn(&shape), F::one()))
        })
        .collect();
    Cotangents {
        outputs,
        last: vec![None; step.states.len()],
    }
}
