//! `cargo bench`: forward and forward+BPTT of a few models at small sizes
//! (T = 20, B = 4, every dimension 32), through the library path that
//! `cellc bench` times (`cellc::bench`), so the two measure the same work.
//! Both back ends: the JIT (with input-only work hoisted, as `cellc run`
//! does) and the interpreter.

use cellc::bench::{Kernels, Mode, Plan, Workload, generated_sequences};
use cellc::graph::dim::Bindings;
use cellc::graph::step::StepGraph;
use cellc::runtime::backend::Backend;
use criterion::{Criterion, criterion_group, criterion_main};

const MODELS: &[&str] = &["elman", "lstm", "gru", "torch_lstm", "layernorm_lstm"];
const STEPS: usize = 20;
const BATCH: usize = 4;
const SIZE: usize = 32;

fn load(model: &str) -> StepGraph {
    let path = format!("{}/models/{model}.cell", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("a model file");
    cellc::pipeline::check_source(&text)
        .unwrap_or_else(|f| panic!("{}", f.render(&path)))
        .step
}

fn bench_model(c: &mut Criterion, model: &str) {
    let step = load(model);
    let defines: Bindings = step.dims.iter().map(|d| (d.name.clone(), SIZE)).collect();
    let seq = generated_sequences::<f32>(&step, &defines, STEPS, BATCH, 0).expect("data");
    let mut group = c.benchmark_group(model);
    for (backend, label) in [(Backend::Jit, "jit"), (Backend::Interp, "interp")] {
        for (name, mode) in [("fwd", Mode::Forward), ("fwdbwd", Mode::ForwardBackward)] {
            let plan = Plan::new(backend, &step, mode).expect("plan");
            let mut kernels =
                Kernels::<f32>::new(backend, &step, &plan, &seq.bindings, STEPS, seq.batch)
                    .expect("kernels");
            let work = Workload::new(plan.loop_step(&step), &seq, plan.adjoint.as_ref())
                .expect("workload");
            group.bench_function(format!("{label} {name}"), |b| {
                b.iter(|| work.call(&mut kernels).expect("a call"))
            });
        }
    }
    group.finish();
}

fn models(c: &mut Criterion) {
    for model in MODELS {
        bench_model(c, model);
    }
}

criterion_group!(benches, models);
criterion_main!(benches);
