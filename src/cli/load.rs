//! What a command takes: the cell file, read and checked, and the arrays of a
//! run, read from files (converted to the run's float type) or generated, then
//! matched to the cell.

use super::{DataArgs, Failure};
use crate::data::bind::{self, BindError};
use crate::data::generate::{self, Generate, GenerateError};
use crate::data::matching::{self, DataError, Named};
use crate::data::{self, ArrayData, NpyArray, NpyFile, NpyHeader, NpzFile};
use crate::diagnostic::Diagnostic;
use crate::diagnostic::render_all;
use crate::graph::dim::Bindings;
use crate::graph::op::Real;
use crate::graph::step::StepGraph;
use crate::runtime::memory::{self, Pass};
use crate::runtime::types::Sequences;
use ndarray::ArrayD;
use std::path::Path;

/// Reads, parses and checks a cell file; prints its warnings.
pub fn load_cell(path: &Path) -> Result<StepGraph, Failure> {
    Ok(load_checked(path)?.0)
}

/// A cell file's text, kept so that an error found after checking (a size
/// under the bindings) points at the declaration, as the checker's do.
pub struct Source {
    file: String,
    text: String,
}

impl Source {
    /// The error, at the declaration it is about when it names one.
    pub(super) fn locate(&self, e: &BindError) -> Failure {
        match e.bad_size().and_then(|b| b.span) {
            Some(span) => Failure(
                Diagnostic::error(e.to_string(), span)
                    .with_label("declared here")
                    .render(&self.file, &self.text),
            ),
            None => Failure(format!("error: {e}")),
        }
    }
}

/// [`load_cell`], with the cell's text.
pub fn load_checked(path: &Path) -> Result<(StepGraph, Source), Failure> {
    check_text(path, &read_text(path)?)
}

/// A cell file's text, refused with the place of the first byte that is not
/// UTF-8.
pub(super) fn read_text(path: &Path) -> Result<String, Failure> {
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
    Ok(text)
}

/// Parses and checks a cell's text (read from `path`); prints its warnings.
pub(super) fn check_text(path: &Path, text: &str) -> Result<(StepGraph, Source), Failure> {
    let file = path.display().to_string();
    let checked = crate::pipeline::check_source(text).map_err(|f| Failure(f.render(&file)))?;
    let source = crate::syntax::normalize_source(text);
    if !checked.warnings.is_empty() {
        eprint!("{}", render_all(&checked.warnings, &file, &source));
    }
    Ok((checked.step, Source { file, text: source }))
}

/// The arrays converted to the run's float type, collected so that one note
/// lists them all: by source dtype, the files, each with the names of the
/// arrays converted in it (none for a `.npy`).
#[derive(Default)]
pub(super) struct Converted(Vec<(String, String, Vec<String>)>);

impl Converted {
    fn add(&mut self, from: &str, file: &Path, name: Option<&str>) {
        let file = file.display().to_string();
        let i = match self.0.iter().position(|(d, f, _)| d == from && *f == file) {
            Some(i) => i,
            None => {
                self.0.push((from.to_string(), file, Vec::new()));
                self.0.len() - 1
            }
        };
        self.0[i].2.extend(name.map(str::to_string));
    }

    /// One line, e.g. "note: converted to float64: float32 arrays in
    /// `p.npz` (W, b) and `x.npy`"; nothing when nothing was converted.
    pub(super) fn note<F: Real>(&self) {
        if self.0.is_empty() {
            return;
        }
        // Each source dtype once, in the order first met.
        let mut dtypes: Vec<&str> = Vec::new();
        for (d, _, _) in &self.0 {
            if !dtypes.contains(&d.as_str()) {
                dtypes.push(d);
            }
        }
        let groups: Vec<String> = dtypes
            .iter()
            .map(|dtype| {
                let files: Vec<String> = self
                    .0
                    .iter()
                    .filter(|(d, _, _)| d == dtype)
                    .map(|(_, file, names)| match names.is_empty() {
                        true => format!("`{file}`"),
                        false => format!("`{file}` ({})", names.join(", ")),
                    })
                    .collect();
                let files = match files.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} and {last}", rest.join(", "))
                    }
                    _ => files.concat(),
                };
                format!("{dtype} arrays in {files}")
            })
            .collect();
        super::report::note(&format!(
            "converted to {}: {}",
            float_name::<F>(),
            groups.join("; ")
        ));
    }
}

fn float_name<F: Real>() -> &'static str {
    if std::any::type_name::<F>() == "f32" {
        "float32"
    } else {
        "float64"
    }
}

/// Converts a file's array to the run's float type, recording it in
/// `converted` when it converts.
fn to_float<F: Real>(
    what: &str,
    a: NpyArray,
    file: &Path,
    name: Option<&str>,
    converted: &mut Converted,
) -> Result<ArrayD<F>, Failure> {
    let want = std::any::type_name::<F>();
    let want_np = float_name::<F>();
    let mut conv = |from: &str| converted.add(from, file, name);
    match a.data {
        ArrayData::F32(x) => {
            if want != "f32" || a.dtype == "float16" {
                conv(&a.dtype);
            }
            Ok(super::report::cast(x))
        }
        ArrayData::F64(x) => {
            if want != "f64" {
                conv(&a.dtype);
            }
            Ok(super::report::cast(x))
        }
        ArrayData::Int(_) | ArrayData::Bool(_) => Err(Failure(format!(
            "error: {what} has dtype {}; expected {want_np} (or another float type)",
            a.dtype
        ))),
    }
}

pub(super) fn read_named<F: Real>(
    path: &Path,
    what: &str,
    converted: &mut Converted,
) -> Result<Named<F>, Failure> {
    read_opened(open_named::<F>(path, what)?, what, converted)
}

/// Opens an `.npz` and reads its headers; a dtype that is no float is refused
/// before any data is read.
fn open_named<F: Real>(path: &Path, what: &str) -> Result<NpzFile, Failure> {
    let file = NpzFile::open(path)?;
    for m in file.members() {
        let array = format!("{what} `{}` in `{}`", m.name(), path.display());
        expect_float::<F>(&array, m.header())?;
    }
    Ok(file)
}

fn read_opened<F: Real>(
    file: NpzFile,
    what: &str,
    converted: &mut Converted,
) -> Result<Named<F>, Failure> {
    let path = file.path().to_path_buf();
    let mut out = Vec::new();
    for (name, a) in file.read()? {
        let arr = to_float::<F>(
            &format!("{what} `{name}` in `{}`", path.display()),
            a,
            &path,
            Some(&name),
            converted,
        )?;
        out.push((name, arr));
    }
    Ok(out)
}

/// The error `to_float` gives for a dtype that is no float, from the header.
fn expect_float<F: Real>(what: &str, header: &NpyHeader) -> Result<(), Failure> {
    if header.is_float() {
        return Ok(());
    }
    let want = if std::any::type_name::<F>() == "f32" {
        "float32"
    } else {
        "float64"
    };
    Err(Failure(format!(
        "error: {what} has dtype {}; expected {want} (or another float type)",
        header.dtype()
    )))
}

/// The arrays' shapes, from their files' headers, checked against the cell
/// before any data is read (`readout.*` parameters are left out of run and
/// grad).
fn check_declared(
    step: &StepGraph,
    defs: &Bindings,
    params: Option<&[(String, Vec<usize>)]>,
    inputs: &[(String, Vec<usize>)],
) -> Result<(), Failure> {
    let params: Option<Vec<(String, Vec<usize>)>> = params.map(|ps| {
        ps.iter()
            .filter(|(name, _)| !name.starts_with("readout."))
            .cloned()
            .collect()
    });
    matching::check_shapes(step, defs, params.as_deref(), inputs)?;
    Ok(())
}

fn warn_non_finite<F: Real>(named: &[(String, ArrayD<F>)], what: &str) {
    for (name, a) in named {
        if a.iter().any(|v| !v.is_finite()) {
            eprintln!("warning: {what} `{name}` contains NaN or infinity; it will propagate");
        }
    }
}

/// Generated input's length and batch, and the seed, when not given.
const DEFAULT_SEQ: usize = 10;
const DEFAULT_BATCH: usize = 2;
pub(super) const DEFAULT_SEED: u64 = 0;

/// Warns about each flag the run will not use: `--seq` and `--batch` shape
/// generated input only, and `--seed` draws only what is generated.
fn warn_ignored(d: &DataArgs) {
    let given = match (&d.input, &d.inputs) {
        (Some(p), _) => format!("--input {}", p.display()),
        (None, Some(p)) => format!("--inputs {}", p.display()),
        (None, None) => return,
    };
    if d.seq.is_some() {
        eprintln!("warning: --seq is ignored: the sequence length comes from {given}");
    }
    if d.batch.is_some() {
        eprintln!("warning: --batch is ignored: the batch comes from {given}");
    }
    if let (Some(_), Some(p)) = (d.seed, &d.params) {
        eprintln!(
            "warning: --seed is ignored: nothing is generated (parameters come from --params {}, inputs from {given})",
            p.display()
        );
    }
}

/// Loads (or generates) everything a run needs and checks it against the cell.
/// A run estimated to need more memory than it may use (see
/// [`memory::available`]) is refused before anything is generated, and before
/// it runs.
pub fn load_data<F: Real + 'static>(
    step: &StepGraph,
    d: &DataArgs,
    src: &Source,
    pass: Pass<'_>,
) -> Result<Sequences<F>, Failure> {
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
    let mut converted = Converted::default();
    let generated = d.params.is_none() || (d.input.is_none() && d.inputs.is_none());
    // The arrays given: their headers first, checked against the cell, then
    // their data. They fix dimensions for what is generated.
    let params_file = match &d.params {
        Some(p) => Some(open_named::<F>(p, "parameter")?),
        None => None,
    };
    let input_file = match (&d.input, &d.inputs) {
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
            let file = NpyFile::open(p)?;
            expect_float::<F>(&format!("input `{}`", p.display()), file.header())?;
            Some(Ok(file))
        }
        (None, Some(p)) => Some(Err(open_named::<F>(p, "input")?)),
        (None, None) => None,
    };
    let declared = |f: &NpzFile| -> Vec<(String, Vec<usize>)> {
        f.members()
            .iter()
            .map(|m| (m.name().to_string(), m.header().shape().to_vec()))
            .collect()
    };
    let param_shapes = params_file.as_ref().map(declared);
    let input_shapes = match &input_file {
        Some(Ok(f)) => vec![(step.inputs[0].name.clone(), f.header().shape().to_vec())],
        Some(Err(f)) => declared(f),
        None => Vec::new(),
    };
    check_declared(step, &defs, param_shapes.as_deref(), &input_shapes)?;
    // What the files hold, as the run's float type, must fit before any of it
    // is read (the whole run's estimate follows once the sizes are known).
    let declared_bytes = |shapes: &[(String, Vec<usize>)]| {
        shapes
            .iter()
            .map(|(_, s)| s.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128)))
            .fold(0u128, u128::saturating_add)
            .saturating_mul(size_of::<F>() as u128)
    };
    let reading = memory::Estimate {
        parts: vec![
            (
                "parameters read",
                param_shapes.as_deref().map_or(0, declared_bytes),
            ),
            ("inputs read", declared_bytes(&input_shapes)),
        ],
    };
    memory::check(what, reading, limit.as_ref())?;
    let given_params: Option<Named<F>> = match params_file {
        Some(f) => Some(read_opened(f, "parameter", &mut converted)?),
        None => None,
    };
    let given_inputs: Option<Named<F>> = match input_file {
        Some(Ok(file)) => {
            let what = format!("input `{}`", d.input.as_ref().expect("--input").display());
            Some(vec![(
                step.inputs[0].name.clone(),
                to_float::<F>(
                    &what,
                    file.read()?,
                    d.input.as_deref().expect("--input"),
                    None,
                    &mut converted,
                )?,
            )])
        }
        Some(Err(f)) => Some(read_opened(f, "input", &mut converted)?),
        None => None,
    };
    warn_ignored(d);
    // What was not given is generated; the arrays given fix its dimensions.
    let how = Generate {
        steps: d.seq.unwrap_or(DEFAULT_SEQ),
        batch: d.batch.unwrap_or(DEFAULT_BATCH),
        seed: d.seed.unwrap_or(DEFAULT_SEED),
    };
    if generated {
        let bindings = generate::generation_bindings(
            step,
            &defs,
            given_params.as_ref(),
            given_inputs.as_ref(),
        )
        .map_err(|e| match e {
            GenerateError::Bind(b) => src.locate(&b),
            e => Failure::from(e),
        })?;
        // The sequences given fix T and B; generated ones take --seq, --batch.
        let (steps, batch) = match given_inputs.as_ref().and_then(|x| x.first()) {
            Some((_, x)) => match x.shape() {
                [t, b, _] => (*t, *b),
                [t, ..] => (*t, 1),
                [] => (0, 0),
            },
            None => (how.steps, how.batch),
        };
        fits(&bindings, steps, batch)?;
    }
    let (params, inputs) = generate::fill_missing(step, &defs, given_params, given_inputs, how)
        .map_err(|e| match e {
            GenerateError::Bind(b) => src.locate(&b),
            e => Failure::from(e),
        })?;
    if generated {
        super::report::note(&format!(
            "using generated {} (seed {})",
            match (d.params.is_none(), d.input.is_none() && d.inputs.is_none()) {
                (true, true) => "parameters and inputs",
                (true, false) => "parameters",
                _ => "inputs",
            },
            how.seed
        ));
    }
    let init: Named<F> = match &d.init {
        Some(p) => read_named(p, "initial state", &mut converted)?,
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
    converted.note::<F>();
    warn_non_finite(&params, "parameter");
    warn_non_finite(&inputs, "input");
    warn_non_finite(&init, "initial state");
    // A checkpoint's read-out head (`readout.*`) belongs to training, not to
    // the cell: run and grad leave it out.
    let params: Named<F> = params
        .into_iter()
        .filter(|(name, _)| !name.starts_with("readout."))
        .collect();
    let seq =
        matching::prepare(step, params, inputs, init, lengths, &defs, d.reverse).map_err(|e| {
            match e {
                DataError::Bind(b) => src.locate(&b),
                e => Failure::from(e),
            }
        })?;
    fits(&seq.bindings, seq.steps, seq.batch)?;
    Ok(seq)
}
