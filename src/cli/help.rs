//! The longer texts of `cellc --help`: what each command's output holds and
//! examples a new user can paste. Every example runs against the bundled
//! models (`tests/cli.rs` runs each line it finds under "Examples:"), with
//! `params.npz`, `x.npy`, `h0.npz`, `lengths.npy` and `dy.npz` standing for the
//! user's files of `models/lstm.cell` with `-D X=8 -D H=16`.

pub(super) const CELLC_LONG: &str = "\
A compiler and runtime for recurrent neural-network cells.

A cell is written as the equations of a paper in a `.cell` file. cellc checks
it, shows its graph and its derived backward equations, and runs it forward
(`run`) and backward (`grad`) over NumPy data: `.npy` for one array, `.npz` for
named arrays, float32 unless `--dtype f64`, sequences time-major `[T, B, n]`.
`bench` times the kernels on generated data.";

pub(super) const CELLC_AFTER: &str = "\
Examples:
  cellc check models/lstm.cell
  cellc run models/lstm.cell -D X=8 -D H=16 --seq 20 --batch 4
  cellc grad models/lstm.cell --params params.npz --input x.npy --cotangent dy.npz -o grads.npz
  cellc bench models/lstm.cell -D X=8 -D H=16 --seq 20 --batch 4 --repeats 5

`cellc COMMAND --help` shows a command's options, what it writes, and examples.";

pub(super) const CHECK_AFTER: &str = "\
Output: the signature, on stdout; nothing is written.

Examples:
  cellc check models/lstm.cell
  cellc check models/lstm.cell -D X=8 -D H=16";

pub(super) const GRAPH_AFTER: &str = "\
Output: the graph, on stdout; nothing is written.

Examples:
  cellc graph models/elman.cell
  cellc graph models/elman.cell --unroll 3
  cellc graph models/lstm.cell --grad
  cellc graph models/gru.cell --format dot > gru.dot";

pub(super) const RUN_AFTER: &str = "\
Output (-o OUT.npz): for each output of the cell, an array by its name,
`[T, B, n]`, zero past a sequence's length; for each state, its value after the
last step as `NAME.last`, `[B, n]`. Without -o, a summary of these arrays is
printed on stdout.

Examples:
  cellc run models/lstm.cell -D X=8 -D H=16 --seq 20 --batch 4
  cellc run models/lstm.cell --params params.npz --input x.npy -o out.npz
  cellc run models/lstm.cell --params params.npz --input x.npy --init h0.npz -o out.npz
  cellc run models/lstm.cell --params params.npz --input x.npy --lengths lengths.npy --reverse -o out.npz
  cellc run models/lstm.cell --params params.npz --input x.npy --dtype f64 -o out64.npz";

pub(super) const GRAD_AFTER: &str = "\
Output (-o G.npz): the gradient of the loss for every parameter, by its name
(a learned initial state `NAME_0` among them: its state's gradient summed over
the batch); for every input, by its name, `[T, B, n]`; for every state, of its
initial value, as `NAME.init`, `[B, n]`. Without -o, a summary of these arrays
is printed on stdout.

Examples:
  cellc grad models/lstm.cell -D X=8 -D H=16
  cellc grad models/lstm.cell --params params.npz --input x.npy --cotangent dy.npz -o grads.npz";

pub(super) const BPTT_AFTER: &str = "\
Output: the equations, on stdout; nothing is written.

Examples:
  cellc bptt models/lstm.cell
  cellc bptt models/gru.cell --format latex";

pub(super) const COMPILE_AFTER: &str = "\
Output: KERNEL.o, the object file, exporting PREFIX_forward, PREFIX_backward,
PREFIX_forward_workspace and PREFIX_backward_workspace; KERNEL.h, its C
header, which documents every argument, shape, error code and the link line
(cc -std=c99 main.c lstm.o -L target/release -lcellc_rt -lm -lpthread -ldl).
Each file is written whole or not at all.

Examples:
  cellc compile models/lstm.cell -D X=8 -D H=16 --batch 4 -o lstm.o --header lstm.h
  cellc compile models/lstm.cell -D X=8 -D H=16 --dtype f64 --prefix lstm64 -o lstm64.o --header lstm64.h
  cellc compile models/gru.cell -D X=8 -D H=16 --emit clif -o gru.clif";

pub(super) const BENCH_AFTER: &str = "\
Output: on stdout, the compile time (text to callable kernels), the time per
call (median, min, mean), steps·batch per second and GFLOP/s (matrix-product
FLOPs of a call over its median time); nothing is written. With --json, one
line holding one JSON object: `cell`, `mode`, `backend`, `dtype`, `threads`,
`seq`, `batch`, `seed`, `median_ms`, `min_ms`, `mean_ms`, `compile_ms`,
`gflops`, `flops_per_call`, `steps_per_s`, `calls`, `warmup_calls`, `dims` (the
bound dimensions by name) and each dimension again as a key of its own (`\"H\":
16`), except one whose name is already a key (it is then only in `dims`).

Examples:
  cellc bench models/lstm.cell -D X=8 -D H=16 --seq 20 --batch 4
  cellc bench models/torch_lstm.cell -D X=8 -D H=16 --seq 20 --batch 4 --mode fwdbwd --repeats 5 --json";

pub(super) const TRAIN_AFTER: &str = "\
Output (once built): CKPT.npz, every parameter of the cell by its name and the
read-out's as `readout.W`, `readout.b`; LOG.csv, the losses by step.

Example, once built:
  cellc train models/lstm.cell --task adding -D H=32 --steps 200 --log log.csv -o ckpt.npz";
