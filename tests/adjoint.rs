//! Snapshots of what autodiff derives for every model: the forward step with
//! the residuals it saves, the adjoint step (with its node-count ratio to the
//! step in the title), and the backward equations `cellc bptt` prints.

use cellc::check::check_source;
use cellc::derivation::{Style, bptt_equations};
use cellc::graph::print;
use cellc::pipeline::differentiate_step;

#[test]
fn adjoint_snapshots() {
    insta::glob!("../models", "*.cell", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let step = check_source(&text).unwrap().step;
        let adj = differentiate_step(&step).unwrap();
        let ratio = adj.ratio(&step);
        assert!(
            ratio <= 3.0,
            "{}: adjoint/step ratio {ratio:.2}",
            path.display()
        );
        let mut out = format!(
            "adjoint step: {} ops, step: {} ops, ratio {ratio:.2}; {} residuals saved per step ({} numbers per sequence)\n\n",
            adj.backward.op_count(),
            step.graph.op_count(),
            adj.n_residuals,
            adj.saved_per_step(&step)
        );
        out.push_str(&print::text(
            &adj.forward,
            &format!("forward step {}", step.name),
        ));
        out.push('\n');
        out.push_str(&print::text(
            &adj.backward,
            &format!("adjoint step {}", step.name),
        ));
        insta::assert_snapshot!("adjoint", out);
        insta::assert_snapshot!("bptt", bptt_equations(&step, &adj, Style::Text));
    });
}
