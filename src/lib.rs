//! cellc: a compiler and runtime for recurrent neural-network cells.
//!
//! The pipeline, one module per stage, data flowing down:
//!
//! ```text
//! .cell text
//!   └─ syntax    pest grammar → AST with spans
//!   └─ check     names, time indices, shape inference → typed step graph
//!   └─ graph     the IR: ops, petgraph graph of one step, printer, verifier
//!   └─ unroll    step graph × T → unrolled graph
//!   └─ autodiff  reverse-mode rules → adjoint step graph (part 2)
//!   └─ opt       named simplification passes (part 2)
//!   └─ interp    ndarray reference evaluator — the oracle
//!   └─ runtime   data (NumPy files), dimension binding, the time loop's driver
//!   └─ cli       the `cellc` command
//! ```

pub mod autodiff;
pub mod check;
pub mod cli;
pub mod derivation;
pub mod diagnostic;
pub mod graph;
pub mod interp;
pub mod opt;
pub mod runtime;
pub mod syntax;
pub mod unroll;
