//! The `cellc` command: the stages above wired to files, as the command-line
//! contract (`cellc-cli.md`) lays out. Everything here is I/O and argument
//! handling; no stage logic lives in this module. This file holds the
//! arguments (clap) and the dispatch; `commands` has one function per
//! command, `load` reads what a command takes, `report` writes or prints
//! what it gives.

mod commands;
mod load;
mod report;

pub use load::{load_cell, load_data};
pub use report::signature;

use commands::{cmd_bptt, cmd_check, cmd_grad, cmd_graph, cmd_run};

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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
    /// The most memory the run may use (`2G`, `512M`, `1.5GB`, bytes); by
    /// default, what is free and what `ulimit -v` allows, less a tenth. A run
    /// estimated to need more is refused before it starts.
    #[arg(long, value_name = "SIZE", value_parser = crate::runtime::memory::parse_size)]
    pub max_memory: Option<u128>,
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
