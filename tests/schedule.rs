//! The schedule's passes on the model library. So far: time dependence, which
//! says of every node whether it is computed once, before the time loop (for
//! all T·B rows at once), in it, or after it.

mod common;

use cellc::graph::op::Op;
use cellc::schedule::{Phase, classify};
use std::collections::BTreeMap;

/// The phase of every labelled node of a model (`a_t` → `a`), by label.
fn phases(name: &str) -> BTreeMap<String, Phase> {
    let step = common::load(&common::model_path(name));
    let classes = classify(&step);
    step.graph
        .node_ids()
        .filter_map(|n| {
            let label = step.graph.node(n).label.clone()?;
            Some((label, classes.phase(n)))
        })
        .collect()
}

/// Elman: `a_t = U·x_t + W·h_{t-1}` is the recurrence; its input half `U·x_t`
/// is hoisted; the output projection `y_t = softmax(V·h_t)` feeds no state and
/// goes after the loop.
#[test]
fn elman_hoists_the_input_product_and_defers_the_output() {
    let step = common::load(&common::model_path("elman"));
    let classes = classify(&step);
    let p = phases("elman");
    assert_eq!(p["a"], Phase::InLoop, "{p:?}");
    assert_eq!(p["h"], Phase::InLoop, "{p:?}");
    assert_eq!(p["y"], Phase::AfterLoop, "{p:?}");
    // The two products: `U·x_t` before the loop, `W·h_{t-1}` in it, `V·h_t` after.
    let mut products: Vec<Phase> = step
        .graph
        .node_ids()
        .filter(|&n| step.graph.node(n).op == Op::MatVec)
        .map(|n| classes.phase(n))
        .collect();
    products.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(
        products,
        [Phase::AfterLoop, Phase::BeforeLoop, Phase::InLoop],
        "V·h after, U·x before, W·h in"
    );
}

/// PyTorch's LSTM layout: `weight_ih·x_t + bias_ih` is before the loop (it is
/// parsed as the left operand of the sum), the rest of `z_t` in it.
#[test]
fn torch_lstm_hoists_the_input_projection_with_its_bias() {
    let step = common::load(&common::model_path("torch_lstm"));
    let classes = classify(&step);
    let before: Vec<&Op> = step
        .graph
        .node_ids()
        .filter(|&n| classes.phase(n) == Phase::BeforeLoop)
        .map(|n| &step.graph.node(n).op)
        .collect();
    assert!(before.contains(&&Op::MatVec), "{before:?}");
    assert!(
        before.iter().any(|op| matches!(op, Op::Binary(_))),
        "the bias is added before the loop: {before:?}"
    );
    let p = phases("torch_lstm");
    assert_eq!(p["z"], Phase::InLoop, "{p:?}");
    assert_eq!(p["c"], Phase::InLoop, "{p:?}");
    assert_eq!(p["h"], Phase::InLoop, "{p:?}");
}

/// In every model: parameters are computed once, inputs before the loop, state
/// reads in it, every state's next value in it; and a node's phase is never
/// earlier than an operand's (nothing hoisted above what it reads).
#[test]
fn every_model_classifies_consistently() {
    use cellc::graph::step::ArgKind;
    let rank = |p: Phase| match p {
        Phase::Once => 0,
        Phase::BeforeLoop => 1,
        Phase::InLoop | Phase::AfterLoop => 2,
    };
    for name in common::model_names() {
        let step = common::load(&common::model_path(&name));
        let classes = classify(&step);
        let g = &step.graph;
        for n in g.node_ids() {
            if let Op::Arg(a) = g.node(n).op {
                let want = match step.arg_kinds[a] {
                    ArgKind::Param(_) => Phase::Once,
                    ArgKind::Input(_) => Phase::BeforeLoop,
                    // A state read that feeds no state (read by outputs only).
                    ArgKind::State { .. } if !classes.feeds_state[n.index()] => Phase::AfterLoop,
                    ArgKind::State { .. } => Phase::InLoop,
                };
                assert_eq!(classes.phase(n), want, "{name}: argument {a}");
            }
            for o in g.operands(n) {
                assert!(
                    rank(classes.phase(o)) <= rank(classes.phase(n)),
                    "{name}: a node before its operand"
                );
                if classes.feeds_state[n.index()] {
                    assert!(
                        classes.feeds_state[o.index()],
                        "{name}: feeds_state flows back"
                    );
                }
            }
        }
        for r in &g.results[..step.states.len()] {
            let p = classes.phase(r.node);
            assert!(
                p == Phase::InLoop || p == Phase::BeforeLoop || p == Phase::Once,
                "{name}: state `{}` is computed after the loop",
                r.name
            );
        }
    }
}

/// The fused plan of every model's step, and of BPTT's forward and adjoint
/// steps, as `cellc graph --schedule [--grad]` prints them: which nodes are
/// runtime calls (products, reductions, concatenations), which elementwise
/// nodes share a loop, and which values go to memory.
#[test]
fn schedule_snapshots() {
    insta::glob!("../models", "*.cell", |path| {
        let step = common::load(path.to_str().unwrap());
        let adj = cellc::pipeline::differentiate_step(&step).unwrap();
        let show = |g: &cellc::graph::Graph, title: &str| cellc::schedule::fuse(g).print(g, title);
        // As the back end compiles them: shared subexpressions, no dead code.
        let share = |g: &cellc::graph::Graph| cellc::opt::share(g).unwrap();
        let mut out = show(&share(&step.graph), "step");
        out.push('\n');
        out.push_str(&show(&share(&adj.forward), "forward step"));
        out.push('\n');
        out.push_str(&show(&share(&adj.backward), "adjoint step"));
        insta::assert_snapshot!("schedule", out);
    });
}

/// Fusion puts the LSTM's four gate products before one loop that computes
/// every gate and both states: one pass over the products' results.
#[test]
fn the_lstm_step_is_products_then_one_loop() {
    let step = common::load(&common::model_path("lstm"));
    let g = cellc::opt::share(&step.graph).unwrap();
    let plan = cellc::schedule::fuse(&g);
    let kinds: Vec<String> = plan
        .items
        .iter()
        .map(|i| match i {
            cellc::schedule::Item::Call(n) => g.node(*n).op.name(),
            cellc::schedule::Item::Loop(_) => "loop".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["concat", "matvec", "matvec", "matvec", "matvec", "loop"],
        "{}",
        plan.print(&g, "lstm")
    );
}
