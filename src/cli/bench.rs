//! `cellc bench`: the time from a cell's text to callable kernels, then the
//! time of repeated calls on generated data, reported as text or as one JSON
//! object. The measuring itself is the library's (`crate::bench`), shared with
//! `cargo bench`, including the choice of what runs for a back end
//! (`bench::Plan`: the JIT hoists input-only work, as `run` and `grad` do);
//! this file words the errors and writes the report.

use super::load::{DEFAULT_SEED, check_text, read_text};
use super::report::emit;
use super::{Backend, BenchArgs, BenchMode, DType, Failure};
use crate::bench::{
    Kernels, Mode, Plan, Repeats, Timings, Workload, flops_per_call, generated_sequences,
    time_calls,
};
use crate::data::bind;
use crate::data::generate::{self, GenerateError};
use crate::data::matching::DataError;
use crate::graph::op::Real;
use crate::runtime::memory::{self, Pass};
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) fn cmd_bench(path: &Path, a: &BenchArgs) -> Result<(), Failure> {
    match a.dtype {
        DType::F32 => bench::<f32>(path, a),
        DType::F64 => bench::<f64>(path, a),
    }
}

/// Runs `f`, adding the wall time it took to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *total += start.elapsed();
    out
}

fn bench<F: Real + 'static>(path: &Path, a: &BenchArgs) -> Result<(), Failure> {
    let mode = match a.mode {
        BenchMode::Fwd => Mode::Forward,
        BenchMode::Fwdbwd => Mode::ForwardBackward,
    };
    let seed = a.seed.unwrap_or(DEFAULT_SEED);
    let text = read_text(path)?;
    let defs = bind::defines(&a.define)?;
    // The compile time is the path from text to callable kernels: parse and
    // check, differentiate (fwdbwd), make the kernels. Binding sizes and
    // checking memory between them are not part of it.
    let mut compile = Duration::ZERO;
    let (step, src) = timed(&mut compile, || check_text(path, &text))?;
    let bindings =
        generate::generation_bindings::<F>(&step, &defs, None, None).map_err(|e| match e {
            GenerateError::Bind(b) => src.locate(&b),
            e => Failure::from(e),
        })?;
    if mode == Mode::ForwardBackward {
        super::commands::compile_fits(&step, "bench", a.max_memory)?;
    }
    let backend = a.backend.into();
    // Differentiated (and hoisted, for the JIT) as `run` and `grad` do.
    let plan = timed(&mut compile, || Plan::new(backend, &step, mode))?;
    let adj = match mode {
        Mode::Forward => None,
        // The cell's own BPTT, for the memory estimate and the FLOP count.
        Mode::ForwardBackward => Some(crate::pipeline::differentiate_step(&step)?),
    };
    let pass = adj.as_ref().map_or(Pass::Run, Pass::Grad);
    let mut estimate = memory::estimate(&step, pass, &bindings, a.seq, a.batch, size_of::<F>());
    // A bench writes no archive.
    estimate.parts.retain(|(part, _)| *part != "writing");
    memory::check("bench", estimate, memory::available(a.max_memory).as_ref())?;
    let _ = a.threads; // Threads come with the parallel kernels.
    let mut kernels = timed(&mut compile, || {
        Kernels::<F>::new(backend, &step, &plan, &bindings, a.seq, a.batch)
    })?;
    let seq = generated_sequences::<F>(&step, &defs, a.seq, a.batch, seed).map_err(|e| {
        use crate::bench::WorkloadError as W;
        match e {
            W::Generate(GenerateError::Bind(b)) | W::Data(DataError::Bind(b)) => src.locate(&b),
            e => Failure::from(e),
        }
    })?;
    let work = Workload::new(plan.loop_step(&step), &seq, plan.adjoint.as_ref())?;
    let repeats = a.repeats.map_or(Repeats::Auto, Repeats::Exactly);
    let timings = time_calls(|| work.call(&mut kernels), repeats)?;
    let flops = flops_per_call(&step, adj.as_ref(), &seq.bindings, a.seq, a.batch)
        .map_err(|e| Failure(format!("error: cannot count the FLOPs: {e}")))?;
    let dims: Vec<(String, usize)> = step
        .dims
        .iter()
        .filter_map(|d| seq.bindings.get(&d.name).map(|&v| (d.name.clone(), v)))
        .collect();
    let report = Report {
        cell: &step.name,
        mode,
        a,
        seed,
        dims,
        compile,
        timings: &timings,
        flops,
    };
    emit(&if a.json { report.json() } else { report.text() })
}

/// What a bench measured, for printing.
struct Report<'a> {
    cell: &'a str,
    mode: Mode,
    a: &'a BenchArgs,
    seed: u64,
    dims: Vec<(String, usize)>,
    compile: Duration,
    timings: &'a Timings,
    flops: u128,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Report<'_> {
    fn backend(&self) -> &'static str {
        match self.a.backend {
            Backend::Interp => "interp",
            Backend::Jit => "jit",
        }
    }
    fn dtype(&self) -> &'static str {
        match self.a.dtype {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }
    /// Rows of sequences stepped per second: T·B per median call.
    fn steps_per_s(&self) -> f64 {
        (self.a.seq as f64 * self.a.batch as f64) / self.timings.median().as_secs_f64()
    }
    fn gflops(&self) -> f64 {
        self.flops as f64 / self.timings.median().as_secs_f64() / 1e9
    }

    fn text(&self) -> String {
        let t = self.timings;
        let dims: Vec<String> = self.dims.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let threads = match self.a.threads {
            1 => "1 thread".to_string(),
            n => format!("{n} threads"),
        };
        let compiled = match self.mode {
            Mode::Forward => "parse, check, kernel",
            Mode::ForwardBackward => "parse, check, differentiate, kernels",
        };
        let mut out = format!(
            "bench {} ({}, {}, {}, {threads}): T={} B={} {}\n",
            self.cell,
            self.mode.name(),
            self.backend(),
            self.dtype(),
            self.a.seq,
            self.a.batch,
            dims.join(" ")
        );
        let rows = [
            (
                "compile",
                format!("{:.3} ms ({compiled})", ms(self.compile)),
            ),
            (
                "time per call",
                format!(
                    "median {:.3} ms  min {:.3} ms  mean {:.3} ms  ({} calls after {} warm-up)",
                    ms(t.median()),
                    ms(t.min()),
                    ms(t.mean()),
                    t.calls.len(),
                    t.warmup_calls
                ),
            ),
            (
                "throughput",
                format!("{:.0} steps·batch/s", self.steps_per_s()),
            ),
            (
                "matrix products",
                format!(
                    "{:.3} GFLOP/s  ({} FLOP per call)",
                    self.gflops(),
                    self.flops
                ),
            ),
        ];
        for (name, value) in rows {
            out.push_str(&format!("{name:<16} {value}\n"));
        }
        out
    }

    fn json(&self) -> String {
        let t = self.timings;
        let mut fields: Vec<(String, String)> = vec![
            ("cell".into(), json_string(self.cell)),
            ("mode".into(), json_string(self.mode.name())),
            ("backend".into(), json_string(self.backend())),
            ("dtype".into(), json_string(self.dtype())),
            ("threads".into(), self.a.threads.to_string()),
            ("seq".into(), self.a.seq.to_string()),
            ("batch".into(), self.a.batch.to_string()),
            ("seed".into(), self.seed.to_string()),
            ("median_ms".into(), json_ms(t.median())),
            ("min_ms".into(), json_ms(t.min())),
            ("mean_ms".into(), json_ms(t.mean())),
            ("compile_ms".into(), json_ms(self.compile)),
            ("gflops".into(), json_number(self.gflops())),
            ("flops_per_call".into(), self.flops.to_string()),
            ("steps_per_s".into(), json_number(self.steps_per_s())),
            ("calls".into(), t.calls.len().to_string()),
            ("warmup_calls".into(), t.warmup_calls.to_string()),
        ];
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|(n, v)| format!("{}:{v}", json_string(n)))
            .collect();
        // Each dimension also at the top level, by its name, unless that name
        // is one of the report's own keys (then it is only in `dims`).
        let top: Vec<(String, String)> = self
            .dims
            .iter()
            .filter(|(n, _)| n != "dims" && !fields.iter().any(|(k, _)| k == n))
            .map(|(n, v)| (n.clone(), v.to_string()))
            .collect();
        fields.push(("dims".into(), format!("{{{}}}", dims.join(","))));
        fields.extend(top);
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_string(k)))
            .collect();
        format!("{{{}}}\n", body.join(","))
    }
}

/// A JSON number; `null` for what JSON cannot write (a call too fast for
/// the clock gives an infinite rate).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        // Rust writes an f64 in plain decimal, which JSON accepts.
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Milliseconds to the nanosecond, without float noise (`0.094982`, not
/// `0.09498200000000001`).
fn json_ms(d: Duration) -> String {
    let s = format!("{:.6}", ms(d));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn json_numbers_are_finite_or_null() {
        assert_eq!(json_number(1.5), "1.5");
        assert_eq!(json_number(1e-7), "0.0000001");
        assert_eq!(json_number(f64::INFINITY), "null");
        assert_eq!(json_ms(Duration::from_nanos(94_982)), "0.094982");
        assert_eq!(json_ms(Duration::from_millis(12)), "12");
    }
}
