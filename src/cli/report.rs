//! What a command gives: arrays written to an `.npz` (atomically) or
//! summarised on stdout, and the text a command prints (a cell's signature).

use super::Failure;
use crate::data::{self, ArrayData};
use crate::graph::dim::Bindings;
use crate::graph::op::Real;
use crate::graph::step::{Init, StepGraph};
use crate::runtime::types::Sequences;
use ndarray::ArrayD;
use std::path::Path;

/// The cell's signature, as `cellc check` prints it.
pub fn signature(step: &StepGraph, bindings: &Bindings) -> String {
    use std::fmt::Write;
    let concrete = |dims: &[crate::graph::dim::Dim]| -> String {
        let vals: Option<Vec<String>> = dims
            .iter()
            .map(|d| d.eval(bindings).ok().map(|v| v.to_string()))
            .collect();
        match vals {
            Some(v) if !dims.iter().all(|d| d.as_const().is_some()) => {
                format!(" = [{}]", v.join(", "))
            }
            _ => String::new(),
        }
    };
    let shape = |dims: &[crate::graph::dim::Dim]| crate::graph::dim::shape_string(dims);
    let mut out = String::new();
    let _ = writeln!(out, "cell {}", step.name);
    for i in &step.inputs {
        let d = [i.size.clone()];
        let _ = writeln!(out, "  input  {}: {}{}", i.name, shape(&d), concrete(&d));
    }
    for s in &step.states {
        let d = [s.size.clone()];
        let init = match s.init {
            Init::Zero => "0".to_string(),
            Init::Param(p) => format!("param {}", step.params[p].name),
        };
        let lag = if s.max_lag > 1 {
            format!(" (read up to t-{})", s.max_lag)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  state  {}: {}{} = {init}{lag}",
            s.name,
            shape(&d),
            concrete(&d)
        );
    }
    for p in &step.params {
        let how = if p.declared { "" } else { "  (inferred)" };
        let _ = writeln!(
            out,
            "  param  {}: {}{}{how}",
            p.name,
            shape(&p.dims),
            concrete(&p.dims)
        );
    }
    for o in &step.outputs {
        let _ = writeln!(
            out,
            "  output {}: {}{}",
            o.name,
            shape(&o.ty.dims),
            concrete(&o.ty.dims)
        );
    }
    let named: Vec<String> = step
        .dims
        .iter()
        .filter(|d| !d.free)
        .map(|d| d.name.clone())
        .collect();
    let _ = writeln!(
        out,
        "  dims   {}",
        if named.is_empty() {
            "(none)".into()
        } else {
            named.join(", ")
        }
    );
    for d in step.dims.iter().filter(|d| d.free) {
        let _ = writeln!(out, "  free   {}: {}", d.name, d.origin);
    }
    out
}

/// Moved, not copied: an output can be the largest array of a run.
pub(super) fn to_array_data<F: Real + 'static>(a: ArrayD<F>) -> ArrayData {
    if std::any::type_name::<F>() == "f32" {
        ArrayData::F32(super::load::cast(a))
    } else {
        ArrayData::F64(super::load::cast(a))
    }
}

/// Fails before any work when `-o` points into a directory that does not exist.
pub(super) fn check_output_dir(out: Option<&Path>) -> Result<(), Failure> {
    if let Some(p) = out {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(Failure(format!(
                "error: cannot write `{}`: directory `{}` does not exist",
                p.display(),
                dir.display()
            )));
        }
        data::check_writable(p)?;
    }
    Ok(())
}

/// Writes the arrays to `out` (atomically), or prints a summary of them.
pub(super) fn deliver<F>(
    step: &StepGraph,
    seq: &Sequences<F>,
    arrays: &[(String, ArrayData)],
    out: Option<&Path>,
) -> Result<(), Failure> {
    match out {
        Some(p) => {
            data::write_npz(p, arrays)?;
            eprintln!("wrote {} arrays to {}", arrays.len(), p.display());
        }
        None => print!("{}", summary(step, seq, arrays)),
    }
    Ok(())
}

fn summary<F>(step: &StepGraph, seq: &Sequences<F>, arrays: &[(String, ArrayData)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut dims: Vec<String> = seq
        .bindings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    dims.sort();
    let _ = writeln!(
        out,
        "cell {}: T={} B={} {}{}",
        step.name,
        seq.steps,
        seq.batch,
        dims.join(" "),
        if seq.reverse { " (reverse)" } else { "" }
    );
    for (name, a) in arrays {
        let vals: Vec<f64> = match a {
            ArrayData::F32(x) => x.iter().map(|v| *v as f64).collect(),
            ArrayData::F64(x) => x.iter().copied().collect(),
            _ => vec![],
        };
        if vals.is_empty() {
            let _ = writeln!(
                out,
                "  {name:<10} {:<14} (empty)",
                format!("{:?}", a.shape())
            );
            continue;
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sd = (vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        let head: Vec<String> = vals.iter().take(4).map(|v| format!("{v:.4}")).collect();
        let _ = writeln!(
            out,
            "  {name:<10} {:<14} mean {mean:+.4}  std {sd:.4}  [{}{}]",
            format!("{:?}", a.shape()),
            head.join(", "),
            if vals.len() > 4 { ", …" } else { "" }
        );
    }
    out
}
