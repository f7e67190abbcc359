//! The `cellc` command: the stages above wired to files, as the command-line
//! contract (`cellc-cli.md`) lays out. Everything here is I/O and argument
//! handling; no stage logic lives in this module.

use crate::data::bind;
use crate::data::generate::{self, Generate};
use crate::data::matching::{self, Named};
use crate::data::{self, ArrayData, NpyArray};
use crate::diagnostic::render_all;
use crate::graph::dim::Bindings;
use crate::graph::op::Real;
use crate::graph::print;
use crate::graph::step::{Init, StepGraph};
use crate::runtime::forward;
use crate::runtime::types::Sequences;
use clap::{Parser, Subcommand, ValueEnum};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "cellc",
    version,
    about = "A compiler and runtime for recurrent neural-network cells"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Dot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EqFormat {
    Text,
    Latex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DType {
    F32,
    F64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Jit,
    Interp,
}

/// Where the data of a run comes from (shared by `run` and `grad`).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Parameters by name (`.npz`); generated at random when left out.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// The input sequence `[T, B, X]` or `[T, X]` (`.npy`), for a cell with one input.
    #[arg(long, conflicts_with = "inputs")]
    pub input: Option<PathBuf>,
    /// One array per input name (`.npz`).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Initial states `[B, n]` by state name (`.npz`).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Each sequence's length, integers `[B]` (`.npy`).
    #[arg(long)]
    pub lengths: Option<PathBuf>,
    /// Run each sequence from its last valid step back to its first.
    #[arg(long)]
    pub reverse: bool,
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
    #[arg(long, value_enum, default_value = "interp")]
    pub backend: Backend,
    /// Bind a dimension: `-D H=128`.
    #[arg(short = 'D', value_parser = parse_define)]
    pub define: Vec<(String, usize)>,
    /// Steps of generated input (when no input is given).
    #[arg(long, default_value_t = 10)]
    pub seq: usize,
    /// Batch of generated input (when no input is given).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Seed of generated parameters and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check a cell; print its signature.
    Check {
        cell: PathBuf,
        #[arg(short = 'D', value_parser = parse_define)]
        define: Vec<(String, usize)>,
    },
    /// Print the graph of one step, or of T unrolled steps.
    Graph {
        cell: PathBuf,
        #[arg(long)]
        unroll: Option<usize>,
        /// With the gradient (BPTT) graph.
        #[arg(long)]
        grad: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Run the cell over a sequence.
    Run {
        cell: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the outputs (`.npz`); a summary is printed when left out.
        #[arg(short = 'o')]
        output: Option<PathBuf>,
    },
    /// Backpropagation through time (part 2).
    Grad {
        cell: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        cotangent: Option<PathBuf>,
        #[arg(short = 'o')]
        output: Option<PathBuf>,
    },
    /// Print the backward (BPTT) equations the compiler derived.
    Bptt {
        cell: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: EqFormat,
    },
    /// Compile to a native object file (part 3).
    Compile {
        cell: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Time the compiled kernels (part 3).
    Bench {
        cell: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Train the cell on a generated task (later part).
    Train {
        cell: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

fn parse_define(s: &str) -> Result<(String, usize), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write -D NAME=SIZE"))?;
    let v: usize = value
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: the size must be a non-negative integer"))?;
    Ok((name.trim().to_string(), v))
}

/// A failure of the command, already phrased for the user.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(format!("error: {e}"))
    }
}

/// Runs the command; returns the process exit status.
pub fn main_with(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Check { cell, define } => cmd_check(&cell, &define),
        Command::Graph {
            cell,
            unroll,
            grad,
            format,
        } => cmd_graph(&cell, unroll, grad, format),
        Command::Run { cell, data, output } => match data.dtype {
            DType::F32 => cmd_run::<f32>(&cell, &data, output.as_deref()),
            DType::F64 => cmd_run::<f64>(&cell, &data, output.as_deref()),
        },
        Command::Grad {
            cell,
            data,
            cotangent,
            output,
        } => match data.dtype {
            DType::F32 => cmd_grad::<f32>(&cell, &data, cotangent.as_deref(), output.as_deref()),
            DType::F64 => cmd_grad::<f64>(&cell, &data, cotangent.as_deref(), output.as_deref()),
        },
        Command::Bptt { cell, format } => cmd_bptt(&cell, format),
        Command::Compile { .. } | Command::Bench { .. } => Err(Failure(
            "error: native code generation is not available yet (part 3)".into(),
        )),
        Command::Train { .. } => Err(Failure("error: `cellc train` is not available yet".into())),
    };
    match result {
        Ok(()) => 0,
        Err(Failure(msg)) => {
            eprintln!("{}", msg.trim_end());
            1
        }
    }
}

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
    let checked = crate::check::check_source(&text).map_err(|f| Failure(f.render(&file)))?;
    let source = crate::syntax::normalize_source(&text);
    if !checked.warnings.is_empty() {
        eprint!("{}", render_all(&checked.warnings, &file, &source));
    }
    Ok(checked.step)
}

fn dim_names(step: &StepGraph) -> Vec<String> {
    step.dims.iter().map(|d| d.name.clone()).collect()
}

fn cmd_check(path: &Path, define: &[(String, usize)]) -> Result<(), Failure> {
    let step = load_cell(path)?;
    let defs = bind::defines(define)?;
    // Checks the names and sizes given.
    bind::bind_partial(&dim_names(&step), &defs, &[])?;
    print!("{}", signature(&step, &defs));
    Ok(())
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

fn cmd_graph(
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
                let adj = crate::autodiff::differentiate_step(&step)?;
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
                        crate::opt::op_count(&adj.backward),
                        crate::opt::op_count(&step.graph),
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
                let g = crate::unroll::unroll(&step, t)?;
                let cot: Vec<crate::graph::dim::Type> = g
                    .results
                    .iter()
                    .map(|r| crate::graph::dim::Type::new(true, g.node(r.node).ty.dims.clone()))
                    .collect();
                let adj = crate::opt::simplify(&crate::autodiff::adjoint(&g, &cot)?)?;
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
            crate::unroll::unroll(&step, t)?,
            format!("unrolled {} T={t}", step.name),
        ),
    };
    match format {
        Format::Text => print!("{}", print::text(&graph, &title)),
        Format::Dot => print!("{}", print::dot(&graph, &title)),
    }
    Ok(())
}

/// Converts a file's array to the run's float type, saying so when it converts.
fn to_float<F: Real>(what: &str, a: NpyArray, quiet: bool) -> Result<ArrayD<F>, Failure> {
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
            Ok(x.mapv(|v| F::from_f32(v).unwrap_or_else(F::nan)))
        }
        ArrayData::F64(x) => {
            if want != "f64" {
                conv(&a.dtype);
            }
            Ok(x.mapv(|v| F::from_f64(v).unwrap_or_else(F::nan)))
        }
        ArrayData::Int(_) | ArrayData::Bool(_) => Err(Failure(format!(
            "error: {what} has dtype {}; expected {want_np} (or another float type)",
            a.dtype
        ))),
    }
}

fn read_named<F: Real>(path: &Path, what: &str) -> Result<Named<F>, Failure> {
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
pub fn load_data<F: Real>(step: &StepGraph, d: &DataArgs) -> Result<Sequences<F>, Failure> {
    if d.backend == Backend::Jit {
        return Err(Failure(
            "error: --backend jit is not available yet (native code generation is part 3); use --backend interp".into(),
        ));
    }
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
    Ok(matching::prepare(
        step, params, inputs, init, lengths, &defs, d.reverse,
    )?)
}

fn to_array_data<F: Real>(a: ArrayD<F>) -> ArrayData {
    if std::any::type_name::<F>() == "f32" {
        ArrayData::F32(a.mapv(|v| v.to_f32().unwrap_or(f32::NAN)))
    } else {
        ArrayData::F64(a.mapv(|v| v.to_f64().unwrap_or(f64::NAN)))
    }
}

/// Fails before any work when `-o` points into a directory that does not exist.
fn check_output_dir(out: Option<&Path>) -> Result<(), Failure> {
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
    }
    Ok(())
}

fn cmd_run<F: Real>(path: &Path, d: &DataArgs, out: Option<&Path>) -> Result<(), Failure> {
    let step = load_cell(path)?;
    check_output_dir(out)?;
    let seq = load_data::<F>(&step, d)?;
    let traj = forward::forward(&step, &seq)?;
    let mut arrays: Vec<(String, ArrayData)> = Vec::new();
    for (o, sig) in step.outputs.iter().enumerate() {
        // Every output is `[T, B, n]`; a scalar one has n = 1.
        let mut a = traj.outputs[o].clone();
        if a.ndim() == 2 {
            a = a.insert_axis(ndarray::Axis(2));
        }
        arrays.push((sig.name.clone(), to_array_data(a)));
    }
    for (s, sig) in step.states.iter().enumerate() {
        arrays.push((
            format!("{}.last", sig.name),
            to_array_data(traj.last[s].clone().into_dyn()),
        ));
    }
    deliver(&step, &seq, &arrays, out)
}

fn cmd_bptt(path: &Path, format: EqFormat) -> Result<(), Failure> {
    let step = load_cell(path)?;
    let adj = crate::autodiff::differentiate_step(&step)?;
    let style = match format {
        EqFormat::Text => crate::derivation::Style::Text,
        EqFormat::Latex => crate::derivation::Style::Latex,
    };
    print!("{}", crate::derivation::bptt_equations(&step, &adj, style));
    Ok(())
}

fn cmd_grad<F: Real>(
    path: &Path,
    d: &DataArgs,
    cotangent: Option<&Path>,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let step = load_cell(path)?;
    check_output_dir(out)?;
    let seq = load_data::<F>(&step, d)?;
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
    let adj = crate::autodiff::differentiate_step(&step)?;
    let g = crate::runtime::backward::backward(&step, &adj, &seq, &cot)?;
    let mut arrays: Vec<(String, ArrayData)> = Vec::new();
    for (p, sig) in step.params.iter().enumerate() {
        arrays.push((sig.name.clone(), to_array_data(g.params[p].clone())));
    }
    for (i, sig) in step.inputs.iter().enumerate() {
        arrays.push((
            sig.name.clone(),
            to_array_data(g.inputs[i].clone().into_dyn()),
        ));
    }
    for (s, sig) in step.states.iter().enumerate() {
        arrays.push((
            format!("{}.init", sig.name),
            to_array_data(g.init[s].clone().into_dyn()),
        ));
    }
    deliver(&step, &seq, &arrays, out)
}

/// Writes the arrays to `out` (atomically), or prints a summary of them.
fn deliver<F>(
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
