//! What a command takes: the cell file, read and checked, and the arrays of a
//! run, read from files (converted to the run's float type) or generated, then
//! matched to the cell.

use super::{Backend, DataArgs, Failure};
use crate::data::bind;
use crate::data::generate::{self, Generate};
use crate::data::matching::{self, Named};
use crate::data::{self, ArrayData, NpyArray};
use crate::diagnostic::render_all;
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use crate::runtime::memory::{self, Pass};
use crate::runtime::types::Sequences;
use ndarray::ArrayD;
use std::any::Any;
use std::path::Path;

/// Reads, parses and checks a cell file; prints its warnings.
pub fn load_cell(path: &Path) -> Result<StepGraph, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure(format!("error: cannot read `{}`: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // Say where: the line and column of the first byte that is not UTF-8.
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let good = std::str::from_utf8(good).unwrap_or("");
        let (line, col) = crate::diagnostic::line_col(good, good.len());
        let byte = e.as_bytes()[good.len()];
        Failure(format!(
            "error: `{}` is not UTF-8 text\n --> {}:{line}:{col}\n  = note: byte 0x{byte:02X} there starts no UTF-8 character; save the file as UTF-8",
            path.display(),
            path.display()
        ))
    })?;
    let file = path.display().to_string();
    let checked = crate::pipeline::check_source(&text).map_err(|f| Failure(f.render(&file)))?;
    let source = crate::syntax::normalize_source(&text);
    if !checked.warnings.is_empty() {
        eprint!("{}", render_all(&checked.warnings, &file, &source));
    }
    Ok(checked.step)
}

/// `x` as an array of `F`: moved when it already is one (a large array is not
/// copied), converted otherwise.
pub(super) fn cast<F: Real + 'static, G: Real + 'static>(x: ArrayD<G>) -> ArrayD<F> {
    let mut slot = Some(x);
    if let Some(same) = (&mut slot as &mut dyn Any).downcast_mut::<Option<ArrayD<F>>>()
        && let Some(x) = same.take()
    {
        return x;
    }
    match slot {
        Some(x) => x.mapv(|v| num_traits::NumCast::from(v).unwrap_or_else(F::nan)),
        None => ArrayD::zeros(ndarray::IxDyn(&[0])),
    }
}

/// Converts a file's array to the run's float type, saying so when it converts.
fn to_float<F: Real + 'static>(what: &str, a: NpyArray, quiet: bool) -> Result<ArrayD<F>, Failure> {
    let want = std::any::type_name::<F>();
    let want_np = if want == "f32" { "float32" } else { "float64" };
    let conv = |from: &str| {
        if !quiet {
            eprintln!("note: {what} is {from}; converted to {want_np}");
        }
    };
    match a.data {
        ArrayData::F32(x) => {
            if want != "f32" || a.dtype == "float16" {
                conv(&a.dtype);
            }
            Ok(cast(x))
        }
        ArrayData::F64(x) => {
            if want != "f64" {
                conv(&a.dtype);
            }
            Ok(cast(x))
        }
        ArrayData::Int(_) | ArrayData::Bool(_) => Err(Failure(format!(
            "error: {what} has dtype {}; expected {want_np} (or another float type)",
            a.dtype
        ))),
    }
}

pub(super) fn read_named<F: Real + 'static>(path: &Path, what: &str) -> Result<Named<F>, Failure> {
    let mut out = Vec::new();
    for (name, a) in data::read_npz(path)? {
        let arr = to_float::<F>(
            &format!("{what} `{name}` in `{}`", path.display()),
            a,
            false,
        )?;
        out.push((name, arr));
    }
    Ok(out)
}

fn warn_non_finite<F: Real>(named: &[(String, ArrayD<F>)], what: &str) {
    for (name, a) in named {
        if a.iter().any(|v| !v.is_finite()) {
            eprintln!("warning: {what} `{name}` contains NaN or infinity; it will propagate");
        }
    }
}

/// Loads (or generates) everything a run needs and checks it against the cell.
/// A run estimated to need more memory than it may use (see
/// [`memory::available`]) is refused before anything is generated, and before
/// it runs.
pub fn load_data<F: Real + 'static>(
    step: &StepGraph,
    d: &DataArgs,
    pass: Pass<'_>,
) -> Result<Sequences<F>, Failure> {
    if d.backend == Backend::Jit {
        return Err(Failure(
            "error: --backend jit is not available yet (native code generation is part 3); use --backend interp".into(),
        ));
    }
    // Taken before anything is read: what the process maps from here on is
    // the run's own, and the estimate counts it.
    let limit = memory::available(d.max_memory);
    let what = match pass {
        Pass::Run => "run",
        Pass::Grad(_) => "grad",
    };
    let fits = |bindings: &_, steps, batch| {
        let e = memory::estimate(step, pass, bindings, steps, batch, size_of::<F>());
        memory::check(what, e, limit.as_ref())
    };
    let defs = bind::defines(&d.define)?;
    let generated = d.params.is_none() || (d.input.is_none() && d.inputs.is_none());
    // The arrays given, read first: they fix dimensions for what is generated.
    let given_params: Option<Named<F>> = match &d.params {
        Some(p) => Some(read_named(p, "parameter")?),
        None => None,
    };
    let given_inputs: Option<Named<F>> = match (&d.input, &d.inputs) {
        (Some(p), _) => {
            if step.inputs.len() != 1 {
                return Err(Failure(format!(
                    "error: --input gives one array, but cell `{}` has {} inputs ({}): use --inputs XS.npz",
                    step.name,
                    step.inputs.len(),
                    step.inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let a = data::read_npy(p)?;
            let what = format!("input `{}`", p.display());
            Some(vec![(
                step.inputs[0].name.clone(),
                to_float::<F>(&what, a, false)?,
            )])
        }
        (None, Some(p)) => Some(read_named(p, "input")?),
        (None, None) => None,
    };
    // What was not given is generated; the arrays given fix its dimensions.
    let how = Generate {
        steps: d.seq,
        batch: d.batch,
        seed: d.seed,
    };
    if generated {
        let bindings = generate::generation_bindings(
            step,
            &defs,
            given_params.as_ref(),
            given_inputs.as_ref(),
        )?;
        // The sequences given fix T and B; generated ones take --seq, --batch.
        let (steps, batch) = match given_inputs.as_ref().and_then(|x| x.first()) {
            Some((_, x)) => match x.shape() {
                [t, b, _] => (*t, *b),
                [t, ..] => (*t, 1),
                [] => (0, 0),
            },
            None => (d.seq, d.batch),
        };
        fits(&bindings, steps, batch)?;
    }
    let (params, inputs) = generate::fill_missing(step, &defs, given_params, given_inputs, how)?;
    if generated {
        eprintln!(
            "note: using generated {} (seed {})",
            match (d.params.is_none(), d.input.is_none() && d.inputs.is_none()) {
                (true, true) => "parameters and inputs",
                (true, false) => "parameters",
                _ => "inputs",
            },
            d.seed
        );
    }
    let init: Named<F> = match &d.init {
        Some(p) => read_named(p, "initial state")?,
        None => Vec::new(),
    };
    let lengths = match &d.lengths {
        None => None,
        Some(p) => {
            let a = data::read_npy(p).map_err(|e| Failure(format!("error: --lengths: {e}")))?;
            match a.data {
                ArrayData::Int(x) if x.ndim() == 1 => Some(x.iter().copied().collect::<Vec<i64>>()),
                ArrayData::Int(x) => {
                    return Err(Failure(format!(
                        "error: --lengths: `{}` has shape {:?}, expected [B]",
                        p.display(),
                        x.shape()
                    )));
                }
                _ => {
                    return Err(Failure(format!(
                        "error: --lengths: `{}` has dtype {}, expected integers",
                        p.display(),
                        a.dtype
                    )));
                }
            }
        }
    };
    warn_non_finite(&params, "parameter");
    warn_non_finite(&inputs, "input");
    warn_non_finite(&init, "initial state");
    // A checkpoint's read-out head (`readout.*`) belongs to training, not to
    // the cell: run and grad leave it out.
    let params: Named<F> = params
        .into_iter()
        .filter(|(name, _)| !name.starts_with("readout."))
        .collect();
    let seq = matching::prepare(step, params, inputs, init, lengths, &defs, d.reverse)?;
    fits(&seq.bindings, seq.steps, seq.batch)?;
    Ok(seq)
}
