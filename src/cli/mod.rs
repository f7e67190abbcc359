//! The `cellc` command: the stages above wired to files, as the command-line
//! contract (`cellc-cli.md`) lays out. Everything here is I/O and argument
//! handling; no stage logic lives in this module. This file holds the
//! arguments (clap) and the dispatch; `commands` has one function per
//! command, `load` reads what a command takes, `report` writes or prints
//! what it gives.

mod bench;
mod commands;
mod compile;
mod help;
mod load;
mod progress;
mod report;
mod signals;

pub use load::{Source, load_cell, load_checked, load_data};
pub use report::signature;

use commands::{cmd_bptt, cmd_check, cmd_grad, cmd_graph, cmd_run};

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cellc",
    version,
    about = "A compiler and runtime for recurrent neural-network cells",
    long_about = help::CELLC_LONG,
    after_help = help::CELLC_AFTER
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print no notes, no "wrote ..." line, no progress display
    /// (warnings, errors and stdout are kept)
    #[arg(verbatim_doc_comment, short, long, global = true)]
    pub quiet: bool,
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
pub enum Emit {
    Clif,
    Asm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Jit,
    Interp,
}

impl From<Backend> for crate::runtime::backend::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Jit => crate::runtime::backend::Backend::Jit,
            Backend::Interp => crate::runtime::backend::Backend::Interp,
        }
    }
}

/// The back end of `run`, `grad` and `bench` when `--backend` is left out:
/// one place, so that the JIT becomes the default everywhere at once.
pub const DEFAULT_BACKEND: &str = "jit";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// The whole sequence forward
    Fwd,
    /// Forward, then backpropagation through time with a cotangent of ones
    Fwdbwd,
}

/// The options of `cellc bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Bind a dimension, `-D H=128` (repeatable); every dimension of the cell
    /// must be bound (the data is generated)
    #[arg(verbatim_doc_comment, short = 'D', value_name = "NAME=SIZE", value_parser = parse_define)]
    pub define: Vec<(String, usize)>,
    /// Steps T of the generated sequences
    #[arg(long, value_name = "T", value_parser = parse_count)]
    pub seq: usize,
    /// Batch B of the generated sequences
    #[arg(long, value_name = "B", value_parser = parse_count)]
    pub batch: usize,
    /// What one timed call runs: `fwd`, the whole sequence forward; `fwdbwd`,
    /// forward then BPTT back (cotangent of ones on every output)
    #[arg(verbatim_doc_comment, long, value_enum, default_value = "fwd")]
    pub mode: BenchMode,
    /// Threads the back end may use, recorded in the report and passed to the
    /// back end (the interpreter runs on one thread whatever is given)
    #[arg(verbatim_doc_comment, long, value_name = "N", default_value = "1", value_parser = parse_positive)]
    pub threads: usize,
    /// Timed calls after warm-up; by default at least 10 and at least 1 s of
    /// calls (at most 10000 calls; after 3, at most 30 s)
    #[arg(verbatim_doc_comment, long, value_name = "R", value_parser = parse_positive)]
    pub repeats: Option<usize>,
    /// Print exactly one JSON object (one line) on stdout instead of text
    #[arg(long)]
    pub json: bool,
    /// The float type of the generated data and the kernels
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
    /// How each step runs: `jit`, native code compiled for the run's sizes;
    /// `interp`, the reference interpreter
    #[arg(verbatim_doc_comment, long, value_enum, default_value = DEFAULT_BACKEND)]
    pub backend: Backend,
    /// Seed of the generated parameters and inputs (0 when left out); the
    /// same seed gives the same numbers as `cellc run` with it
    #[arg(verbatim_doc_comment, long)]
    pub seed: Option<u64>,
    /// The most memory the bench may use (`2G`, `512M`, bytes); by default,
    /// what is free and what `ulimit -v` allows, less a tenth
    #[arg(verbatim_doc_comment, long, value_name = "SIZE", value_parser = crate::runtime::memory::parse_size)]
    pub max_memory: Option<u128>,
}

/// Where the data of a run comes from (shared by `run` and `grad`).
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Parameters by name (`.npz`); generated at random when left out
    /// (`readout.*` arrays of a training checkpoint are ignored)
    #[arg(verbatim_doc_comment, long, value_name = "P.npz")]
    pub params: Option<PathBuf>,
    /// The input sequence (`.npy`), `[T, B, X]` (time-major) or `[T, X]` for
    /// one sequence, for a cell with one input
    #[arg(
        verbatim_doc_comment,
        long,
        conflicts_with = "inputs",
        value_name = "X.npy"
    )]
    pub input: Option<PathBuf>,
    /// One array `[T, B, n]` per input name (`.npz`), for a cell with several
    /// inputs
    #[arg(verbatim_doc_comment, long, value_name = "XS.npz")]
    pub inputs: Option<PathBuf>,
    /// Initial states by state name, `[B, n]` each (`.npz`); a state left out
    /// starts as the cell says
    #[arg(verbatim_doc_comment, long, value_name = "S.npz")]
    pub init: Option<PathBuf>,
    /// Each sequence's length, integers `[B]` (`.npy`): past it a sequence's
    /// states stop changing and its outputs are zero
    #[arg(verbatim_doc_comment, long, value_name = "L.npy")]
    pub lengths: Option<PathBuf>,
    /// Run each sequence from its last valid step back to its first; outputs
    /// stay at their own time positions
    #[arg(verbatim_doc_comment, long)]
    pub reverse: bool,
    /// The float type of the run; files of the other float type are converted
    /// (with a note)
    #[arg(verbatim_doc_comment, long, value_enum, default_value = "f32")]
    pub dtype: DType,
    /// How each step runs: `jit`, native code compiled for the run's sizes;
    /// `interp`, the reference interpreter
    #[arg(verbatim_doc_comment, long, value_enum, default_value = DEFAULT_BACKEND)]
    pub backend: Backend,
    /// Bind a dimension, `-D H=128` (repeatable); the others are inferred from
    /// the arrays given
    #[arg(verbatim_doc_comment, short = 'D', value_name = "NAME=SIZE", value_parser = parse_define)]
    pub define: Vec<(String, usize)>,
    // Options, not defaults, so that a flag the run ignores can be warned
    // about (`load::DEFAULT_SEQ`, ... fill them in).
    /// Steps T of generated input (used when no input file is given; 10 when
    /// left out)
    #[arg(verbatim_doc_comment, long, value_name = "T", value_parser = parse_count)]
    pub seq: Option<usize>,
    /// Batch B of generated input (used when no input file is given; 2 when
    /// left out)
    #[arg(verbatim_doc_comment, long, value_name = "B", value_parser = parse_count)]
    pub batch: Option<usize>,
    /// Seed of generated parameters and inputs (0 when left out)
    #[arg(long)]
    pub seed: Option<u64>,
    /// The most memory the run may use (`2G`, `512M`, `1.5GB`, bytes); by
    /// default, what is free and what `ulimit -v` allows, less a tenth. A run
    /// estimated to need more is refused before it starts
    #[arg(verbatim_doc_comment, long, value_name = "SIZE", value_parser = crate::runtime::memory::parse_size)]
    pub max_memory: Option<u128>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check a cell; print its signature
    ///
    /// Prints the cell's inputs, its states with their initial values, its
    /// parameters with their shapes (declared or inferred), its outputs and its
    /// dimensions. Exits with status 0 when the cell is valid, 1 with located
    /// diagnostics when it is not.
    #[command(verbatim_doc_comment, after_help = help::CHECK_AFTER)]
    Check {
        /// The cell file (`.cell`)
        cell: PathBuf,
        /// Bind a dimension, `-D H=128` (repeatable); shapes are then also
        /// shown with their sizes
        #[arg(verbatim_doc_comment, short = 'D', value_name = "NAME=SIZE", value_parser = parse_define)]
        define: Vec<(String, usize)>,
    },
    /// Print the graph of one step, or of T unrolled steps
    ///
    /// Prints the computation graph the compiler built from the equations: of
    /// one step, or of T steps unrolled into one graph, optionally with its
    /// gradient (BPTT) graph.
    #[command(verbatim_doc_comment, after_help = help::GRAPH_AFTER)]
    Graph {
        /// The cell file (`.cell`)
        cell: PathBuf,
        /// Unroll T steps into one graph (at most 10000, or 1000 with --grad)
        #[arg(long, value_name = "T")]
        unroll: Option<usize>,
        /// Add the gradient: the forward step with the values it saves for
        /// BPTT, and the adjoint step (or the adjoint of the unrolled graph)
        #[arg(verbatim_doc_comment, long)]
        grad: bool,
        /// Print the schedule the native back end runs instead: the step's
        /// matrix products and other calls, and its elementwise work fused
        /// into loops (with --grad, of the forward and adjoint steps)
        #[arg(verbatim_doc_comment, long)]
        schedule: bool,
        /// `text` (stable: what the snapshot tests record) or `dot` (Graphviz)
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Run the cell over sequences
    ///
    /// Runs the cell forward over a batch of sequences with the reference
    /// interpreter. Arrays come from NumPy files; what is not given
    /// (parameters, inputs) is generated at random from --seed, its sizes bound
    /// by -D or by the arrays given.
    #[command(verbatim_doc_comment, after_help = help::RUN_AFTER)]
    Run {
        /// The cell file (`.cell`)
        cell: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the outputs (`.npz`; `-` for stdout); a summary is
        /// printed when left out
        #[arg(verbatim_doc_comment, short = 'o', value_name = "OUT.npz", value_parser = parse_output)]
        output: Option<PathBuf>,
    },
    /// Backpropagation through time: the gradients of a loss
    ///
    /// Runs the cell forward, then backpropagation through time (BPTT), as a
    /// vector-Jacobian product: the gradient of the loss Σ ⟨DY, output⟩ with
    /// respect to every parameter, input and initial state. The data are given
    /// or generated as for `cellc run`.
    #[command(verbatim_doc_comment, after_help = help::GRAD_AFTER)]
    Grad {
        /// The cell file (`.cell`)
        cell: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// The loss's gradient with respect to the outputs (`.npz`): by output
        /// name `[T, B, n]`, and `NAME.last` `[B, n]` for a state's final
        /// value; what is left out is zero. Without it: ones for every output
        #[arg(verbatim_doc_comment, long, value_name = "DY.npz")]
        cotangent: Option<PathBuf>,
        /// Where to write the gradients (`.npz`; `-` for stdout); a summary is
        /// printed when left out
        #[arg(verbatim_doc_comment, short = 'o', value_name = "G.npz", value_parser = parse_output)]
        output: Option<PathBuf>,
    },
    /// Print the backward (BPTT) equations the compiler derived
    ///
    /// Prints the adjoint step as equations in the cell's own names: what each
    /// step of backpropagation through time computes, from the last step back
    /// to the first.
    #[command(verbatim_doc_comment, after_help = help::BPTT_AFTER)]
    Bptt {
        /// The cell file (`.cell`)
        cell: PathBuf,
        /// `text` (Unicode, in the cell's notation) or `latex`
        #[arg(long, value_enum, default_value = "text")]
        format: EqFormat,
    },
    /// Compile the cell to a native object file and a C header
    ///
    /// Compiles the forward pass and backpropagation through time, for the
    /// sizes bound by -D and the batch given by --batch, to one
    /// position-independent object file with C entry points, and a C header
    /// that documents them. A C program links the object with the runtime
    /// library `libcellc_rt.a` (which `cargo build --release` writes to
    /// target/release/); the header gives the link line.
    #[command(verbatim_doc_comment, after_help = help::COMPILE_AFTER)]
    Compile {
        /// The cell file (`.cell`)
        cell: PathBuf,
        /// Bind a dimension, `-D H=128` (repeatable): every size is fixed
        /// at compile time
        #[arg(verbatim_doc_comment, short = 'D', value_name = "NAME=SIZE", value_parser = parse_define)]
        define: Vec<(String, usize)>,
        /// The object file to write
        #[arg(short = 'o', value_name = "KERNEL.o")]
        output: PathBuf,
        /// Also write the C header
        #[arg(long, value_name = "KERNEL.h")]
        header: Option<PathBuf>,
        /// The batch every call runs (sequences per call), fixed at compile
        /// time; the number of steps is given per call
        #[arg(verbatim_doc_comment, long, value_name = "B", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
        /// The element type of every array
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DType,
        /// The prefix of every exported symbol and header name (a C
        /// identifier); default: the cell's name
        #[arg(verbatim_doc_comment, long, value_name = "NAME")]
        prefix: Option<String>,
        /// Instead of the object, write the Cranelift IR (`clif`) or the
        /// machine code as Cranelift prints it (`asm`) of each step
        /// function to -o
        #[arg(verbatim_doc_comment, long, value_enum, value_name = "clif|asm")]
        emit: Option<Emit>,
    },
    /// Time the kernels on generated data
    ///
    /// Times one call (the whole sequence forward, or forward then BPTT) on
    /// random parameters and inputs (float32 unless --dtype f64) after
    /// warm-up (at least one call and 0.2 s), and prints the
    /// time per call, steps·batch per second and GFLOP/s (matrix products
    /// only), and the time from the cell's text to callable kernels. With
    /// --json, one JSON object.
    #[command(verbatim_doc_comment, after_help = help::BENCH_AFTER)]
    Bench {
        /// The cell file (`.cell`)
        cell: PathBuf,
        #[command(flatten)]
        args: BenchArgs,
    },
    /// Train the cell with a linear read-out (not built yet)
    ///
    /// Will train the cell and a linear read-out head on a generated task
    /// (adding, copy, charlm) or on your own data, with sgd, adam or rmsprop,
    /// logging the losses and writing a checkpoint that `cellc run --params`
    /// reads. Not built yet: today it exits with an error.
    #[command(verbatim_doc_comment, after_help = help::TRAIN_AFTER)]
    Train {
        /// The cell file (`.cell`)
        cell: PathBuf,
        /// The command's options: (--task adding|copy|charlm | --data
        /// TRAIN.npz [--test TEST.npz]) [-D NAME=SIZE ...] [--seq T] [--batch B]
        /// [--steps N] [--optimizer sgd|adam|rmsprop] [--lr LR] [--log LOG.csv]
        /// [-o CKPT.npz] ...
        #[arg(
            verbatim_doc_comment,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        rest: Vec<String>,
    },
}

fn parse_define(s: &str) -> Result<(String, usize), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: write -D NAME=SIZE"))?;
    if name.trim().is_empty() {
        return Err(format!(
            "`{s}`: the dimension's name is missing: write -D NAME=SIZE"
        ));
    }
    // The largest size is checked where the bindings are (`bind::defines`).
    let v = parse_digits(value.trim()).map_err(|e| format!("`{s}`: {e}"))?;
    Ok((name.trim().to_string(), v))
}

/// `-o PATH`, where `-` is stdout, as for other tools.
fn parse_output(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(if s == "-" { "/dev/stdout" } else { s }))
}

/// A count written in decimal digits only (no sign, no spaces).
fn parse_digits(value: &str) -> Result<usize, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the size must be a non-negative integer, in digits".into());
    }
    value.parse::<usize>().map_err(|_| {
        format!(
            "too large: a size is at most {} (2^63-1)",
            crate::graph::dim::MAX_SIZE
        )
    })
}

/// `--threads` or `--repeats`: at least 1.
fn parse_positive(value: &str) -> Result<usize, String> {
    match parse_digits(value)? {
        0 => Err("must be at least 1".into()),
        v => Ok(v),
    }
}

/// `--seq` or `--batch`: digits, at most the largest size.
fn parse_count(value: &str) -> Result<usize, String> {
    let v = parse_digits(value)?;
    let max = crate::graph::dim::MAX_SIZE;
    if v as u128 > max as u128 {
        return Err(format!("too large: a size is at most {max} (2^63-1)"));
    }
    Ok(v)
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
    signals::remove_temporaries_on_signal();
    report::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Check { cell, define } => cmd_check(&cell, &define),
        Command::Graph {
            cell,
            unroll,
            grad,
            schedule,
            format,
        } => cmd_graph(&cell, unroll, grad, schedule, format),
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
        Command::Bench { cell, args } => bench::cmd_bench(&cell, &args),
        Command::Compile {
            cell,
            define,
            output,
            header,
            batch,
            dtype,
            prefix,
            emit,
        } => compile::cmd_compile(&compile::CompileArgs {
            cell: &cell,
            define: &define,
            output: &output,
            header: header.as_deref(),
            batch: batch as usize,
            dtype,
            prefix: prefix.as_deref(),
            emit,
        }),
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
