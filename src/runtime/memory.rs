//! Memory: what a run will hold, estimated from the step graph and the bound
//! sizes before anything big is allocated; how much the machine (or the user,
//! `--max-memory`) lets it hold; and the one fallible allocation the drivers
//! use for their big buffers.
//!
//! Rust aborts the process when an allocation fails, so a run that does not
//! fit must be refused before it starts ([`check`]), and the buffers that grow
//! with the sequence (histories, residuals, gradients, outputs) are allocated
//! by [`zeros`], which returns an error instead. Small per-step allocations of
//! the interpreter still abort if they fail; the headroom left by
//! [`available`] is what keeps them from failing.

use crate::autodiff::StepAdjoint;
use crate::graph::Graph;
use crate::graph::dim::{Bindings, Dim, Type};
use crate::graph::op::Op;
use crate::graph::step::StepGraph;
use ndarray::{Array, Dimension};
use std::fmt;

/// What a run will hold, in parts: `(name, bytes)`, in the order a message
/// lists them. Sizes are `u128` so that no product of sizes wraps; one that
/// cannot be computed at all is `u128::MAX`.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub parts: Vec<(&'static str, u128)>,
}

impl Estimate {
    pub fn total(&self) -> u128 {
        self.parts
            .iter()
            .fold(0u128, |a, (_, b)| a.saturating_add(*b))
    }
}

/// What a run computes: the forward pass, or BPTT (which saves residuals and
/// keeps a cotangent for every value it keeps).
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    Run,
    Grad(&'a StepAdjoint),
}

/// How much memory a run may use, and where that figure comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub bytes: u128,
    pub source: &'static str,
}

/// Why a run does not get the memory it needs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MemoryError {
    #[error(
        "this {what} needs {} ({}), more than the {} available ({}); {advice}",
        about(estimate.total()),
        estimate.parts.iter().map(|(n, b)| format!("{n} {}", bytes(*b))).collect::<Vec<_>>().join(", "),
        bytes(limit.bytes),
        limit.source
    )]
    TooMuch {
        what: &'static str,
        estimate: Estimate,
        limit: Limit,
        /// What the user can change.
        advice: &'static str,
    },
    #[error(
        "out of memory: cannot allocate {} for {what}; use shorter sequences or a smaller batch",
        bytes(*size)
    )]
    Allocation { what: String, size: u128 },
}

/// A zero array of `shape`, or an error naming `what` when the memory cannot
/// be had (where `Array::zeros` would abort the process).
pub fn zeros<F: Clone + num_traits::Zero, D: Dimension>(
    shape: D,
    what: &str,
) -> Result<Array<F, D>, MemoryError> {
    let elem = std::mem::size_of::<F>() as u128;
    let fail = |n: u128| MemoryError::Allocation {
        what: what.to_string(),
        size: n.saturating_mul(elem),
    };
    let n = shape
        .size_checked()
        .ok_or_else(|| fail(shape.slice().iter().map(|&d| d as u128).product()))?;
    let mut v: Vec<F> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| fail(n as u128))?;
    v.resize(n, F::zero());
    Array::from_shape_vec(shape, v).map_err(|_| fail(n as u128))
}

/// The number of elements of `ty` under `bindings`, with the batch axis if it
/// has one; `u128::MAX` when a size cannot be computed.
fn elements(ty: &Type, batch: usize, bindings: &Bindings) -> u128 {
    let lead = if ty.batched { batch as u128 } else { 1 };
    product(lead, &ty.dims, bindings)
}

fn product(lead: u128, dims: &[Dim], bindings: &Bindings) -> u128 {
    dims.iter().fold(lead, |acc, d| match d.eval(bindings) {
        Ok(v) => acc.saturating_mul(v.max(0) as u128),
        Err(_) => u128::MAX,
    })
}

/// Elements of every value the interpreter computes in one step of `g` (it
/// keeps them all until the step ends), and of the result buffers.
fn step_workspace(g: &Graph, batch: usize, bindings: &Bindings) -> u128 {
    let nodes = g
        .node_ids()
        .filter(|&n| !matches!(g.node(n).op, Op::Arg(_)))
        .map(|n| elements(&g.node(n).ty, batch, bindings));
    let results = g
        .results
        .iter()
        .map(|r| elements(&g.node(r.node).ty, batch, bindings));
    nodes.chain(results).fold(0, u128::saturating_add)
}

/// What a run of `steps` steps over `batch` sequences holds at its peak, in
/// bytes of `elem` bytes per number: every buffer of the drivers (the whole
/// sequence at once) and one step's interpreter values.
pub fn estimate(
    step: &StepGraph,
    pass: Pass<'_>,
    bindings: &Bindings,
    steps: usize,
    batch: usize,
    elem: usize,
) -> Estimate {
    let (t, b) = (steps as u128, batch as u128);
    let sum = |it: &mut dyn Iterator<Item = u128>| it.fold(0u128, u128::saturating_add);
    let params = sum(&mut step.params.iter().map(|p| product(1, &p.dims, bindings)));
    let inputs = sum(&mut step
        .inputs
        .iter()
        .map(|i| product(t * b, std::slice::from_ref(&i.size), bindings)));
    // As `forward::history_depth`, which this module does not import (the
    // drivers import it).
    let k = step.max_lag().max(1) as u128;
    let states = sum(&mut step
        .states
        .iter()
        .map(|s| product((k + t) * b, std::slice::from_ref(&s.size), bindings)));
    let outputs = sum(&mut step
        .outputs
        .iter()
        .map(|o| product(t * b, &o.ty.dims, bindings)));
    // Input scratch for iterations whose sequences are at different positions.
    let scratch = sum(&mut step
        .inputs
        .iter()
        .map(|i| product(b, std::slice::from_ref(&i.size), bindings)));
    // Final states (`NAME.last`) and their gradients (`NAME.init`).
    let last = sum(&mut step
        .states
        .iter()
        .map(|s| product(b, std::slice::from_ref(&s.size), bindings)));
    let bytes = |n: u128| n.saturating_mul(elem as u128);
    let mut parts = match pass {
        Pass::Run => vec![
            ("parameters", bytes(params)),
            ("inputs", bytes(inputs)),
            ("state histories", bytes(states)),
            ("outputs", bytes(outputs)),
            (
                "workspace",
                bytes(step_workspace(&step.graph, batch, bindings).saturating_add(scratch)),
            ),
            // The `.npz` is made in memory before it is written (or, with no
            // `-o`, each array is copied for its summary).
            ("writing", bytes(outputs.saturating_add(last))),
        ],
        Pass::Grad(adj) => {
            let n = step.graph.results.len();
            let residuals = sum(&mut adj.forward.results[n..].iter().map(|r| {
                elements(&adj.forward.node(r.node).ty, batch, bindings).saturating_mul(t)
            }));
            // The forward kernel's values are gone before the adjoint runs.
            let work = step_workspace(&adj.forward, batch, bindings)
                .max(step_workspace(&adj.backward, batch, bindings))
                .saturating_add(scratch.saturating_mul(2));
            vec![
                ("parameters", bytes(params)),
                ("inputs", bytes(inputs)),
                ("state histories", bytes(states)),
                ("residuals", bytes(residuals)),
                ("outputs", bytes(outputs)),
                // Of every state value kept, and of every output.
                ("cotangents", bytes(states.saturating_add(outputs))),
                // Of the parameters and the inputs.
                ("gradients", bytes(params.saturating_add(inputs))),
                ("workspace", bytes(work)),
                (
                    "writing",
                    bytes(params.saturating_add(inputs).saturating_add(last)),
                ),
            ]
        }
    };
    parts.extend(compile_estimate(step, matches!(pass, Pass::Grad(_))).parts);
    Estimate { parts }
}

/// What the program and the cell's own text, syntax tree and graphs hold
/// before any data (with `grad`, its adjoint too): a cell of thousands of
/// equations holds hundreds of megabytes. Checked before the adjoint is
/// derived, so that deriving it cannot exhaust the memory first.
pub fn compile_estimate(step: &StepGraph, grad: bool) -> Estimate {
    let per_op = if grad {
        GRAD_BYTES_PER_OP
    } else {
        RUN_BYTES_PER_OP
    };
    Estimate {
        parts: vec![
            ("program", PROGRAM),
            (
                "the compiled cell",
                (step.graph.op_count() as u128).saturating_mul(per_op),
            ),
        ],
    }
}

/// Resident bytes per op of the step graph, for the cell's syntax, checked
/// form and graphs (and, for `grad`, its adjoint and residual bookkeeping):
/// measured upper bounds, with `/usr/bin/time -v`, over a 100,000-term flat
/// sum (0.9 kB and 5.8 kB per op) and a 20,000-equation tanh chain (2.8 kB
/// and 12.9 kB per op). Negligible for cells of ordinary size (an LSTM step
/// has about 20 ops).
const RUN_BYTES_PER_OP: u128 = 4_000;
const GRAD_BYTES_PER_OP: u128 = 16_000;

/// The program itself: code, the cell's graphs, the allocator's slack. The
/// resident size of `cellc check` is about 5 MB; measured against runs of
/// torch_lstm, an estimate with 8 MB for this part was within 5% of the
/// largest resident size.
const PROGRAM: u128 = 8_000_000;

/// Refuses a cell too large to derive in `limit`: only a smaller cell (or a
/// larger limit) helps, not the data's sizes.
pub fn check_cell(
    what: &'static str,
    estimate: Estimate,
    limit: Option<&Limit>,
) -> Result<(), MemoryError> {
    check(what, estimate, limit).map_err(|e| match e {
        MemoryError::TooMuch {
            what,
            estimate,
            limit,
            ..
        } => MemoryError::TooMuch {
            what,
            estimate,
            limit,
            advice: "the cell itself is too large for the memory available (split it into smaller cells, or raise the limit)",
        },
        e => e,
    })
}

/// Refuses a run whose estimate exceeds `limit` (no limit: no refusal).
pub fn check(
    what: &'static str,
    estimate: Estimate,
    limit: Option<&Limit>,
) -> Result<(), MemoryError> {
    match limit {
        Some(l) if estimate.total() > l.bytes => Err(MemoryError::TooMuch {
            what,
            estimate,
            limit: l.clone(),
            advice: "choose smaller sizes, shorter sequences (--seq) or a smaller batch (--batch), or set the limit with --max-memory",
        }),
        _ => Ok(()),
    }
}

/// The memory a run may use: the user's figure when given, else what the
/// system says is free and what the address-space limit (`ulimit -v`) leaves,
/// the smaller, less a tenth for what the estimate does not count (the
/// program itself, the interpreter's temporaries). `None` where the system
/// says neither (not Linux): then no estimate is refused.
pub fn available(max_memory: Option<u128>) -> Option<Limit> {
    if let Some(bytes) = max_memory {
        return Some(Limit {
            bytes,
            source: "--max-memory",
        });
    }
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| kib_field(&t, "MemAvailable:"));
    let address = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| address_limit(&t))
        .map(|limit| {
            let mapped = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|t| kib_field(&t, "VmSize:"))
                .unwrap_or(0);
            limit.saturating_sub(mapped)
        });
    let (bytes, source) = match (free, address) {
        (Some(f), Some(a)) if a < f => (a, "address-space limit"),
        (Some(f), _) => (f, "free memory"),
        (None, Some(a)) => (a, "address-space limit"),
        (None, None) => return None,
    };
    Some(Limit {
        bytes: bytes - bytes / 10,
        source,
    })
}

/// A `NAME:   123 kB` line of `/proc/meminfo` or `/proc/self/status`, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u128 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max address space` in `/proc/self/limits`, in bytes
/// (`None` when unlimited).
fn address_limit(text: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Parses a size as `--max-memory` takes it: plain bytes, or a number with a
/// unit, `K`/`M`/`G`/`T` (also `KiB`, ...) in powers of 1024 and `KB`/`MB`/
/// `GB`/`TB` in powers of 1000, as GNU tools read them: `2G`, `512M`, `1.5GB`.
pub fn parse_size(s: &str) -> Result<u128, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let bad = || format!("`{s}`: write a size such as 2G, 512M, 1.5GB or 1000000 (bytes)");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KIB" => 1024.0,
        "M" | "MIB" => 1024f64.powi(2),
        "G" | "GIB" => 1024f64.powi(3),
        "T" | "TIB" => 1024f64.powi(4),
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if bytes < 1.0 {
        return Err(format!("`{s}`: the size must be at least one byte"));
    }
    if !bytes.is_finite() || bytes > 1e30 {
        return Err(format!("`{s}`: too large"));
    }
    Ok(bytes as u128)
}

/// A byte count for people: `196.6 MB` (powers of 1000, as the message's
/// reader compares them with what `free` or a file manager shows).
/// `about 1.2 GB`, or that the amount cannot be counted.
fn about(n: u128) -> String {
    match n {
        u128::MAX => "more than can be counted".into(),
        n => format!("about {}", bytes(n)),
    }
}

pub fn bytes(n: u128) -> String {
    if n == u128::MAX {
        return "more than can be counted".into();
    }
    if n < 1000 {
        return format!("{n} bytes");
    }
    let units = ["kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64 / 1000.0;
    let mut u = 0;
    while v >= 999.95 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytes(self.total()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_gnu_tools_read_them() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("4 KiB"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("2X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn byte_counts_read_in_powers_of_1000() {
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(196_608_000), "196.6 MB");
        assert_eq!(bytes(9_600_000_000), "9.6 GB");
        assert_eq!(bytes(999_990), "1.0 MB");
    }

    #[test]
    fn proc_files_are_read_in_bytes() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax address space         1024000000           unlimited            bytes\n";
        assert_eq!(address_limit(limits), Some(1_024_000_000));
        let unlimited =
            "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_limit(unlimited), None);
        let status = "Name:\tcellc\nVmSize:\t   12000 kB\n";
        assert_eq!(kib_field(status, "VmSize:"), Some(12000 * 1024));
    }

    #[test]
    fn an_impossible_allocation_is_an_error() {
        let e = zeros::<f64, _>(ndarray::IxDyn(&[1 << 40, 1 << 30]), "residuals").unwrap_err();
        assert!(e.to_string().contains("residuals"), "{e}");
        let a = zeros::<f32, _>(ndarray::Ix2(2, 3), "x").unwrap();
        assert_eq!(a.shape(), &[2, 3]);
    }
}
