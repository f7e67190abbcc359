//! cellc: a compiler and runtime for recurrent neural-network cells.
//!
//! The pipeline, one module per stage, data flowing down:
//!
//! ```text
//! foundations    span, scalar (one definition per unary op), rng, diagnostic
//! cellc-rt       (crate rt/) the routines and matrix products generated code calls; the AOT time loop
//! .cell text
//!   └─ syntax    pest grammar → AST with spans; the table of language functions
//!   └─ check     names, time indices, shape inference → typed step graph
//!   └─ graph     the IR: ops, petgraph graph of one step, printer, verifier
//!   └─ unroll    step graph × T → unrolled graph
//!   └─ autodiff  reverse-mode rules → adjoint step graph (BPTT runs it backwards)
//!   └─ opt       named simplification passes
//!   └─ pipeline  the passes in order, the verifier after each
//!   └─ interp    ndarray reference evaluator — the oracle
//!   └─ schedule  the native back end's plan: hoisting over T·B rows, fused loops and calls
//!   └─ codegen   Cranelift code for schedules: fused loops, inline vector math, the JIT
//!   └─ runtime   the kernel interface (interpreted or native); the time loop forward and back
//!   └─ aot       `cellc compile`: an object file with C entry points, and its header
//!   └─ data      NumPy files, dimension binding, array matching, generated data
//!   └─ train     training policy on the gradients: clipping
//!   └─ bench     timing kernels on generated data; matrix FLOPs of a call
//!   └─ cli       the `cellc` command (`derivation` prints the BPTT equations)
//! ```
//!
//! From source text to outputs, through the library:
//!
//! ```
//! use cellc::pipeline::check_source;
//! use cellc::data::matching::prepare;
//! use cellc::runtime::forward::forward;
//! use ndarray::{ArrayD, IxDyn};
//!
//! let cell = "cell irnn(x: [X]) {
//!     state h: [H]
//!     param U: [H, X], W: [H, H], b: [H]
//!     h_t = relu(U @ x + W @ h[t-1] + b)
//!     output h
//! }";
//! let step = check_source(cell).expect("a valid cell").step;
//! let ones = |shape: &[usize]| ArrayD::<f64>::ones(IxDyn(shape));
//! let params = vec![
//!     ("U".to_string(), ones(&[2, 3])),
//!     ("W".to_string(), ones(&[2, 2])),
//!     ("b".to_string(), ones(&[2])),
//! ];
//! let inputs = vec![("x".to_string(), ones(&[4, 1, 3]))]; // T = 4, B = 1, X = 3
//! let seq = prepare(&step, params, inputs, vec![], None, &Default::default(), false).unwrap();
//! let run = forward(&step, &seq).unwrap();
//! // h_0 = relu(3 + 0 + 1) = 4 in each unit; h_1 = 3 + (4 + 4) + 1 = 12.
//! assert_eq!(run.outputs[0][[1, 0, 0]], 12.0);
//! ```

pub mod aot;
pub mod autodiff;
pub mod bench;
pub mod check;
pub mod cli;
pub mod codegen;
pub mod data;
pub mod derivation;
pub mod diagnostic;
pub mod graph;
pub mod interp;
pub mod opt;
pub mod pipeline;
pub mod rng;
pub mod runtime;
pub mod scalar;
pub mod schedule;
pub mod span;
pub mod syntax;
pub mod train;
pub mod unroll;
