//! What a command gives: arrays written to an `.npz` (atomically) or
//! summarised on stdout, and the text a command prints (a cell's signature).

use super::{DataArgs, Failure};
use crate::data::{self, ArrayData};
use crate::graph::dim::Bindings;
use crate::graph::op::Real;
use crate::graph::step::{Init, StepGraph};
use crate::runtime::types::Sequences;
use ndarray::{ArrayD, ArrayViewD, Dimension};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use unicode_width::UnicodeWidthStr;

/// `--quiet`, set once by `main_with`: a process-wide setting, like a log
/// level, so that every place that prints a note need not be passed it.
static QUIET: AtomicBool = AtomicBool::new(false);

pub(super) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub(super) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints an informational line on stderr, unless `--quiet`.
pub(super) fn inform(line: &str) {
    if !quiet() {
        eprintln!("{line}");
    }
}

/// Writes a command's text to stdout. A closed pipe (`cellc graph … | head`)
/// is an error like any other write error, not a panic, as `print!` would.
pub(super) fn emit(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure(format!("error: cannot write to stdout: {e}")))
}

/// Prints `note: ...` on stderr, unless `--quiet`.
pub(super) fn note(message: &str) {
    inform(&format!("note: {message}"));
}

/// `s` padded with spaces to `width` columns. Columns, not bytes or chars:
/// a name such as `C̃` holds a combining mark that takes no column.
fn pad(s: &str, width: usize) -> String {
    let w = s.width();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// The widest of `items`, in columns.
fn widest<'a>(items: impl IntoIterator<Item = &'a str>) -> usize {
    items.into_iter().map(|s| s.width()).max().unwrap_or(0)
}

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
    // Shapes start in one column, after the longest name.
    let names = (step.inputs.iter().map(|i| i.name.as_str()))
        .chain(step.states.iter().map(|s| s.name.as_str()))
        .chain(step.params.iter().map(|p| p.name.as_str()))
        .chain(step.outputs.iter().map(|o| o.name.as_str()));
    let width = widest(names) + 1;
    let label = |name: &str| pad(&format!("{name}:"), width);
    let mut out = String::new();
    let _ = writeln!(out, "cell {}", step.name);
    for i in &step.inputs {
        let d = [i.size.clone()];
        let _ = writeln!(
            out,
            "  input  {} {}{}",
            label(&i.name),
            shape(&d),
            concrete(&d)
        );
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
            "  state  {} {}{} = {init}{lag}",
            label(&s.name),
            shape(&d),
            concrete(&d)
        );
    }
    for p in &step.params {
        let how = if p.declared { "" } else { "  (inferred)" };
        let _ = writeln!(
            out,
            "  param  {} {}{}{how}",
            label(&p.name),
            shape(&p.dims),
            concrete(&p.dims)
        );
    }
    for o in &step.outputs {
        let _ = writeln!(
            out,
            "  output {} {}{}",
            label(&o.name),
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

/// Moved, not copied: an output can be the largest array of a run.
pub(super) fn to_array_data<F: Real + 'static>(a: ArrayD<F>) -> ArrayData {
    if std::any::type_name::<F>() == "f32" {
        ArrayData::F32(cast(a))
    } else {
        ArrayData::F64(cast(a))
    }
}

/// Fails before any work when `-o` points into a directory that does not exist.
/// Refuses an output path before any work: into a directory that does not
/// exist, over a read-only file, over one of the command's own input files
/// (the run would destroy what it read), or with an `.npy` name for what is an
/// `.npz` archive of several arrays.
pub(super) fn check_output(
    out: Option<&Path>,
    data: &DataArgs,
    others: &[(&str, Option<&Path>)],
) -> Result<(), Failure> {
    let Some(p) = out else {
        return Ok(());
    };
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
    if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        return Err(Failure(format!(
            "error: cannot write `{}`: the output is several named arrays, an `.npz` archive; name it `{}`",
            p.display(),
            p.with_extension("npz").display()
        )));
    }
    let inputs = [
        ("--params file", data.params.as_deref()),
        ("--input file", data.input.as_deref()),
        ("--inputs file", data.inputs.as_deref()),
        ("--init file", data.init.as_deref()),
        ("--lengths file", data.lengths.as_deref()),
    ];
    for (what, input) in inputs.into_iter().chain(others.iter().copied()) {
        if let Some(input) = input
            && same_file(p, input)
        {
            return Err(Failure(format!(
                "error: cannot write `{}`: it is the {what} `{}`, which the run reads; choose another -o",
                p.display(),
                input.display()
            )));
        }
    }
    data::check_writable(p)?;
    Ok(())
}

/// Whether two paths name one existing regular file (links followed).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if !ma.is_file() || !mb.is_file() {
        // Devices (`/dev/stdout`) are written to, not replaced.
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
    }
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
            inform(&format!("wrote {} arrays to {}", arrays.len(), p.display()));
        }
        None => emit(&summary(step, seq, arrays))?,
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
    // Columns aligned on the longest name and shape.
    let shapes: Vec<String> = arrays
        .iter()
        .map(|(_, a)| format!("{:?}", a.shape()))
        .collect();
    let name_width = widest(arrays.iter().map(|(n, _)| n.as_str()));
    let shape_width = widest(shapes.iter().map(String::as_str));
    for ((name, a), shape) in arrays.iter().zip(&shapes) {
        let (name, shape) = (pad(name, name_width), pad(shape, shape_width));
        let vals: Vec<f64> = match a {
            ArrayData::F32(x) => x.iter().map(|v| *v as f64).collect(),
            ArrayData::F64(x) => x.iter().copied().collect(),
            _ => vec![],
        };
        if vals.is_empty() {
            let _ = writeln!(out, "  {name}  {shape}  (empty)");
            continue;
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sd = (vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        let head: Vec<String> = vals.iter().take(4).map(|v| format!("{v:.4}")).collect();
        let _ = writeln!(
            out,
            "  {name}  {shape}  mean {mean:+.4}  std {sd:.4}  [{}{}]",
            head.join(", "),
            if vals.len() > 4 { ", …" } else { "" }
        );
    }
    out
}

/// A warning naming an array that holds NaN or Inf (`what` says what it is:
/// output, final state, cotangent, gradient), with how many and where the
/// first is; `None` when every value is finite. Such values spread to
/// everything computed from them, so they are worth a line even in a summary.
pub(super) fn non_finite_warning<F: Real>(
    what: &str,
    name: &str,
    a: ArrayViewD<'_, F>,
) -> Option<String> {
    let (mut nan, mut inf, mut first) = (0usize, 0usize, None);
    for (i, v) in a.indexed_iter() {
        if v.is_finite() {
            continue;
        }
        if v.is_nan() {
            nan += 1;
        } else {
            inf += 1;
        }
        first.get_or_insert_with(|| i.slice().to_vec());
    }
    let counts = match (nan, inf) {
        (0, 0) => return None,
        (n, 0) => format!("{n} NaN"),
        (0, n) => format!("{n} Inf"),
        (n, m) => format!("{n} NaN and {m} Inf"),
    };
    let first = first.unwrap_or_default();
    let values = if nan + inf == 1 { "value" } else { "values" };
    Some(format!(
        "warning: {what} `{name}` holds {counts} {values} (first at {first:?})"
    ))
}

/// Prints [`non_finite_warning`] to stderr, if there is one.
pub(super) fn warn_non_finite<F: Real>(what: &str, name: &str, a: ArrayViewD<'_, F>) {
    if let Some(w) = non_finite_warning(what, name, a) {
        eprintln!("{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_counts_nan_and_inf_and_says_where_the_first_is() {
        let mut a = ArrayD::<f64>::zeros(ndarray::IxDyn(&[2, 3]));
        assert_eq!(non_finite_warning("output", "y", a.view()), None);
        a[[1, 0]] = f64::INFINITY;
        a[[1, 2]] = f64::NEG_INFINITY;
        assert_eq!(
            non_finite_warning("output", "y", a.view()).unwrap(),
            "warning: output `y` holds 2 Inf values (first at [1, 0])"
        );
        let mut one = a.clone();
        one[[1, 2]] = 0.0;
        assert_eq!(
            non_finite_warning("final state", "h.last", one.view()).unwrap(),
            "warning: final state `h.last` holds 1 Inf value (first at [1, 0])"
        );
        a[[0, 1]] = f64::NAN;
        assert_eq!(
            non_finite_warning("gradient", "W", a.view()).unwrap(),
            "warning: gradient `W` holds 1 NaN and 2 Inf values (first at [0, 1])"
        );
    }
}
