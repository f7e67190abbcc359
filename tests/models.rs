//! Every model of `models/` through the front half of the pipeline.
//!
//! * Snapshots per model and per stage (`tests/snapshots/models__*.snap`): the
//!   `cellc check` signature, the step graph, and the graph unrolled for T = 2.
//!   A snapshot is a claim that the graph is right: review a changed one against
//!   the model's equations before accepting it.
//! * The unrolled graph computes what the step loop computes: for every model,
//!   the unrolled graph of T = 3 steps, evaluated by the interpreter, gives the
//!   outputs at every step and the final states that `runtime::forward` gives,
//!   from the zero, learned or a supplied initial state (f64, 1e-12 relative).

mod common;

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::graph::dim::Bindings;
use cellc::graph::print;
use cellc::graph::step::{Init, StepGraph};
use cellc::interp;
use cellc::rng::SplitMix64;
use cellc::runtime::forward::forward;
use cellc::unroll::unroll;
use common::{assert_close, random};
use ndarray::{ArrayD, Axis, IxDyn};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Helpers

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Every `models/*.cell`, sorted by file name.
fn model_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(models_dir())
        .expect("models/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no models found in {}",
        models_dir().display()
    );
    files
}

fn load(path: &Path) -> StepGraph {
    let text = std::fs::read_to_string(path).expect("a readable model");
    match check_source(&text) {
        Ok(checked) => checked.step,
        Err(failed) => panic!(
            "{} does not check:\n{}",
            path.display(),
            failed.render(&path.display().to_string())
        ),
    }
}

/// Small, distinct sizes: X = 3, H = 4, every other dimension (named or free)
/// 5, 6, ... in the order the cell lists them.
fn small_bindings(step: &StepGraph) -> Bindings {
    let mut next = 5;
    let mut b = Bindings::new();
    for d in &step.dims {
        let v = match d.name.as_str() {
            "X" => 3,
            "H" => 4,
            _ => {
                next += 1;
                next - 1
            }
        };
        b.insert(d.name.clone(), v);
    }
    b
}

// ---------------------------------------------------------------------------
// Snapshots

#[test]
fn model_snapshots() {
    // Paths of the three-argument form are relative to this file's directory.
    insta::glob!("../models", "*.cell", |path| {
        let step = load(path);
        insta::assert_snapshot!(
            "signature",
            cellc::cli::signature(&step, &Default::default())
        );
        insta::assert_snapshot!(
            "step",
            print::text(&step.graph, &format!("step {}", step.name))
        );
        let unrolled = unroll(&step, 2).expect("unrolls");
        insta::assert_snapshot!(
            "unrolled",
            print::text(&unrolled, &format!("unrolled {} T=2", step.name))
        );
    });
}

#[test]
fn every_model_checks_without_warnings_and_verifies() {
    for path in model_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let checked = check_source(&text).unwrap_or_else(|f| {
            panic!(
                "{}:\n{}",
                path.display(),
                f.render(&path.display().to_string())
            )
        });
        assert!(
            checked.warnings.is_empty(),
            "{}: unexpected warnings {:?}",
            path.display(),
            checked.warnings
        );
        checked
            .step
            .graph
            .verify()
            .unwrap_or_else(|e| panic!("{}: step graph: {e}", path.display()));
        let unrolled = unroll(&checked.step, 3).expect("unrolls");
        unrolled
            .verify()
            .unwrap_or_else(|e| panic!("{}: unrolled graph: {e}", path.display()));
    }
}

// ---------------------------------------------------------------------------
// Unrolled graph = step loop

const STEPS: usize = 3;
const BATCH: usize = 2;

/// Runs `step` both ways on random data and compares. With `supplied`, every
/// state gets a random initial value at run time; otherwise it starts from its
/// declared initial value (zero, or the learned `NAME_0` broadcast over the
/// batch).
fn check_unrolled_matches_loop(path: &Path, seed: u64, supplied: bool) {
    let step = load(path);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let bindings = small_bindings(&step);
    let mut rng = SplitMix64::from_state(seed);

    let params = random::params(&step, &bindings, &mut rng, 0.6);
    let inputs = random::inputs(&step, &bindings, &mut rng, STEPS, BATCH);
    let supplied_init = random::states(&step, &bindings, &mut rng, BATCH, 0.8);
    let state_size = |s: usize| random::size(&step.states[s].size, &bindings);

    // The step loop.
    let seq = prepare(
        &step,
        params.clone(),
        inputs.clone(),
        if supplied {
            supplied_init.clone()
        } else {
            Vec::new()
        },
        None,
        &bindings,
        false,
    )
    .unwrap_or_else(|e| panic!("{name}: prepare: {e}"));
    assert_eq!(seq.bindings, bindings, "{name}: prepare bound other sizes");
    let traj = forward(&step, &seq).unwrap_or_else(|e| panic!("{name}: forward: {e}"));

    // The unrolled graph: params, x[t] per step, h[-1] per state.
    let graph = unroll(&step, STEPS).expect("unrolls");
    let mut args: Vec<ArrayD<f64>> = params.iter().map(|(_, a)| a.clone()).collect();
    for t in 0..STEPS {
        for (_, x) in &inputs {
            args.push(x.index_axis(Axis(0), t).to_owned());
        }
    }
    for (s, sig) in step.states.iter().enumerate() {
        let h0 = if supplied {
            supplied_init[s].1.clone()
        } else {
            match sig.init {
                Init::Zero => ArrayD::zeros(IxDyn(&[BATCH, state_size(s)])),
                Init::Param(p) => params[p]
                    .1
                    .broadcast(IxDyn(&[BATCH, state_size(s)]))
                    .expect("a learned initial state is a vector")
                    .to_owned(),
            }
        };
        args.push(h0);
    }
    let refs: Vec<&ArrayD<f64>> = args.iter().collect();
    let results = interp::eval(&graph, &refs, &bindings, BATCH)
        .unwrap_or_else(|e| panic!("{name}: unrolled graph: {e}"));

    let n_out = step.outputs.len();
    assert_eq!(
        results.len(),
        STEPS * n_out + step.states.len(),
        "{name}: result count"
    );
    for t in 0..STEPS {
        for (o, sig) in step.outputs.iter().enumerate() {
            let r = t * n_out + o;
            assert_eq!(graph.results[r].name, format!("{}[{t}]", sig.name));
            let want = traj.outputs[o].index_axis(Axis(0), t).to_owned();
            assert_close(
                &format!("{name}: {}[{t}]", sig.name),
                &results[r],
                &want,
                1e-12,
            );
        }
    }
    for (s, sig) in step.states.iter().enumerate() {
        let r = STEPS * n_out + s;
        assert_eq!(graph.results[r].name, format!("{}.last", sig.name));
        let want = traj.last[s].clone().into_dyn();
        assert_close(
            &format!("{name}: {}.last", sig.name),
            &results[r],
            &want,
            1e-12,
        );
    }
}

#[test]
fn unrolled_graph_matches_step_loop_for_every_model() {
    for (k, path) in model_files().iter().enumerate() {
        check_unrolled_matches_loop(path, 0x5eed + k as u64, false);
    }
}

#[test]
fn unrolled_graph_matches_step_loop_from_supplied_initial_state() {
    for (k, path) in model_files().iter().enumerate() {
        check_unrolled_matches_loop(path, 0xface + k as u64, true);
    }
}

/// The two models whose loop is least like "one step, one state": a read two
/// steps back and a learned initial state. Named here so that a failure says so.
#[test]
fn unrolled_graph_reads_two_back_and_learned_init() {
    let dir = models_dir();
    check_unrolled_matches_loop(&dir.join("higher_order_rnn.cell"), 7, false);
    check_unrolled_matches_loop(&dir.join("learned_init_rnn.cell"), 8, false);
    let step = load(&dir.join("higher_order_rnn.cell"));
    assert_eq!(
        step.states[0].max_lag, 2,
        "higher_order_rnn reads h_{{t-2}}"
    );
    let step = load(&dir.join("learned_init_rnn.cell"));
    assert!(matches!(step.states[0].init, Init::Param(p) if step.params[p].name == "h_0"));
}
