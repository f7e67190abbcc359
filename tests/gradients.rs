//! Gradients three ways, for every model: the BPTT loop (adjoint step run
//! backwards over saved residuals), reverse mode on the unrolled graph, and
//! central finite differences in f64.

mod common;

use cellc::autodiff::adjoint;
use cellc::graph::dim::Type;
use cellc::graph::step::{Init, StepGraph};
use cellc::interp;
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{Gradients, backward};
use cellc::runtime::forward::forward;
use common::{Problem, close, load, problem};
use ndarray::{Array2, ArrayD, Axis};

/// Σ ⟨cotangent, value⟩ over outputs and final states.
fn loss(step: &StepGraph, p: &Problem) -> f64 {
    let traj = forward(step, &p.seq).unwrap();
    let mut l = 0.0;
    for (o, c) in p.cot.outputs.iter().enumerate() {
        l += (&traj.outputs[o] * c.as_ref().unwrap()).sum();
    }
    for (s, c) in p.cot.last.iter().enumerate() {
        l += (&traj.last[s] * c.as_ref().unwrap()).sum();
    }
    l
}

/// Checks a few entries of every gradient against central differences.
fn check_fd(path: &str, step: &StepGraph, p: &mut Problem, g: &Gradients<f64>) {
    let eps = 1e-6;
    let mut checked = 0;
    let picks = |len: usize| -> Vec<usize> {
        if len <= 4 {
            (0..len).collect()
        } else {
            vec![0, len / 3, len / 2, len - 1]
        }
    };
    macro_rules! probe {
        ($arr:expr, $grad:expr, $what:expr) => {{
            let len = $arr.len();
            for i in picks(len) {
                let orig = $arr.as_slice_mut().unwrap()[i];
                $arr.as_slice_mut().unwrap()[i] = orig + eps;
                let up = loss(step, p);
                $arr.as_slice_mut().unwrap()[i] = orig - eps;
                let down = loss(step, p);
                $arr.as_slice_mut().unwrap()[i] = orig;
                let fd = (up - down) / (2.0 * eps);
                let an = $grad.as_slice().unwrap()[i];
                assert!(
                    close(fd, an, 1e-6, 1e-2),
                    "{path}: d{} [{i}]: finite differences {fd}, BPTT {an}",
                    $what
                );
                checked += 1;
            }
        }};
    }
    for k in 0..step.params.len() {
        probe!(p.seq.params[k], g.params[k], step.params[k].name);
    }
    for k in 0..step.inputs.len() {
        probe!(p.seq.inputs[k], g.inputs[k], step.inputs[k].name);
    }
    for k in 0..step.states.len() {
        if p.seq.init[k].is_some() {
            let grad = g.init[k].clone();
            let len = p.seq.init[k].as_ref().unwrap().len();
            for i in picks(len) {
                let orig = p.seq.init[k].as_ref().unwrap().as_slice().unwrap()[i];
                p.seq.init[k].as_mut().unwrap().as_slice_mut().unwrap()[i] = orig + eps;
                let up = loss(step, p);
                p.seq.init[k].as_mut().unwrap().as_slice_mut().unwrap()[i] = orig - eps;
                let down = loss(step, p);
                p.seq.init[k].as_mut().unwrap().as_slice_mut().unwrap()[i] = orig;
                let fd = (up - down) / (2.0 * eps);
                let an = grad.as_slice().unwrap()[i];
                assert!(
                    close(fd, an, 1e-6, 1e-2),
                    "{path}: d{}.init [{i}]: fd {fd}, BPTT {an}",
                    step.states[k].name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

fn models() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cell"))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn every_model_gradient_matches_finite_differences() {
    for path in models() {
        let step = load(&path);
        let adj = differentiate_step(&step).unwrap();
        for (lengths, reverse, give_init) in [
            (None, false, false),
            (None, false, true),
            (Some(vec![4, 2, 0]), false, true),
            (Some(vec![3, 4, 1]), true, true),
        ] {
            let mut p = problem(&step, 4, lengths, reverse, give_init, 7);
            let g = backward(&step, &adj, &p.seq, &p.cot).unwrap();
            check_fd(&path, &step, &mut p, &g);
        }
    }
}

#[test]
fn learned_initial_state_collects_the_batch_gradient() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/learned_init_rnn.cell");
    let step = load(path);
    let adj = differentiate_step(&step).unwrap();
    let mut p = problem(&step, 4, Some(vec![4, 1, 3]), false, false, 11);
    let g = backward(&step, &adj, &p.seq, &p.cot).unwrap();
    let Init::Param(h0) = step.states[0].init else {
        panic!("learned")
    };
    assert_eq!(g.params[h0], g.init[0].sum_axis(Axis(0)).into_dyn());
    check_fd(path, &step, &mut p, &g);
    // A supplied initial state takes the learned one's place: its gradient is zero.
    let p2 = problem(&step, 4, None, false, true, 11);
    let g2 = backward(&step, &adj, &p2.seq, &p2.cot).unwrap();
    assert!(g2.params[h0].iter().all(|v| *v == 0.0));
}

#[test]
fn bptt_loop_equals_reverse_mode_on_the_unrolled_graph() {
    let t = 3;
    for path in models() {
        let step = load(&path);
        let adj = differentiate_step(&step).unwrap();
        let p = problem(&step, t, None, false, true, 3);
        let g = backward(&step, &adj, &p.seq, &p.cot).unwrap();

        let unrolled = cellc::unroll::unroll(&step, t).unwrap();
        let cot_types: Vec<Type> = unrolled
            .results
            .iter()
            .map(|r| Type::new(true, unrolled.node(r.node).ty.dims.clone()))
            .collect();
        let ug = cellc::opt::simplify(&adjoint(&unrolled, &cot_types).unwrap()).unwrap();
        // Arguments: params, inputs per step, initial states, then cotangents of
        // outputs per step and of final states.
        let mut args: Vec<ArrayD<f64>> = p.seq.params.clone();
        for s in 0..t {
            for x in &p.seq.inputs {
                args.push(x.index_axis(Axis(0), s).to_owned().into_dyn());
            }
        }
        for init in &p.seq.init {
            args.push(init.clone().unwrap().into_dyn());
        }
        for s in 0..t {
            for c in &p.cot.outputs {
                args.push(c.as_ref().unwrap().index_axis(Axis(0), s).to_owned());
            }
        }
        for c in &p.cot.last {
            args.push(c.clone().unwrap().into_dyn());
        }
        let refs: Vec<&ArrayD<f64>> = args.iter().collect();
        let res = interp::eval(&ug, &refs, &p.seq.bindings, p.seq.batch).unwrap();
        let same = |a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str| {
            assert_eq!(a.shape(), b.shape(), "{path}: {what}");
            for (x, y) in a.iter().zip(b.iter()) {
                assert!(close(*x, *y, 1e-10, 1e-8), "{path}: {what}: {x} vs {y}");
            }
        };
        let np = step.params.len();
        for (k, r) in res.iter().enumerate().take(np) {
            // A learned initial state's gradient flows through h[-1] in the
            // unrolled graph, which this problem supplies.
            if step.states.iter().any(|s| s.init == Init::Param(k)) {
                continue;
            }
            same(r, &g.params[k], &step.params[k].name);
        }
        for s in 0..t {
            for (i, sig) in step.inputs.iter().enumerate() {
                let u = &res[np + s * step.inputs.len() + i];
                same(
                    u,
                    &g.inputs[i].index_axis(Axis(0), s).to_owned().into_dyn(),
                    &sig.name,
                );
            }
        }
        for (k, sig) in step.states.iter().enumerate() {
            let u = &res[np + t * step.inputs.len() + k];
            let want: Array2<f64> = g.init[k].clone();
            same(u, &want.into_dyn(), &format!("{}.init", sig.name));
        }
    }
}

#[test]
fn adjoint_step_stays_within_three_times_the_step() {
    for path in models() {
        let step = load(&path);
        let adj = differentiate_step(&step).unwrap();
        assert!(
            adj.ratio(&step) <= 3.0,
            "{path}: ratio {}",
            adj.ratio(&step)
        );
    }
}
