//! The seed notes' central claim about RNN gradients, checked with cellc's own
//! BPTT: for a_t = U x_t + W h_{t-1} + b, h_t = f(a_t),
//!
//!   ∂a_t/∂a_{t-1} = W · diag(f'(a_{t-1})),
//!
//! so the gradient through k steps is a product of k such factors, which
//! vanishes or explodes with the spectrum of W.
//!
//! To read ∂a_t/∂a_{t-k} from BPTT, the probe cell adds an input e_t to a_t:
//! a_{t-k} depends on e_{t-k} with the identity, so the gradient of a_t with
//! respect to e_{t-k} is ∂a_t/∂a_{t-k}. `cargo test --release --test vanishing
//! -- --nocapture` prints the table quoted in docs/bptt.md.

use cellc::check::check_source;
use cellc::data::matching::prepare;
use cellc::graph::dim::Bindings;
use cellc::pipeline::differentiate_step;
use cellc::runtime::backward::{Cotangents, backward};
use cellc::runtime::forward::forward;
use ndarray::{Array2, ArrayD, IxDyn, array};

const PROBE: &str = "
cell probe(x: [X], e: [H]) {
    state h: [H]
    param U: [H, X], W: [H, H], b: [H]
    a_t = U · x_t + W · h_{t-1} + b + e_t
    h_t = tanh(a_t)
    output a
}";

const H: usize = 4;
const X: usize = 3;
const T: usize = 12;

/// A fixed orthogonal matrix (Gram–Schmidt of a fixed matrix), scaled by ρ:
/// every singular value of W is ρ.
fn w(rho: f64) -> Array2<f64> {
    let m: Array2<f64> = array![
        [0.9, -0.3, 0.5, 0.1],
        [0.2, 0.8, -0.4, 0.6],
        [-0.7, 0.1, 0.3, 0.9],
        [0.4, 0.5, 0.8, -0.2]
    ];
    let mut q = Array2::<f64>::zeros((H, H));
    for j in 0..H {
        let mut v = m.column(j).to_owned();
        for k in 0..j {
            let qk = q.column(k).to_owned();
            v = &v - &(&qk * qk.dot(&v));
        }
        let n = v.dot(&v).sqrt();
        q.column_mut(j).assign(&(v / n));
    }
    q * rho
}

struct Run {
    /// a_t for every step, [T, H].
    a: Array2<f64>,
    /// jac[k] = ∂a_{T-1}/∂a_{T-1-k} read from BPTT, [H, H].
    jac: Vec<Array2<f64>>,
}

fn run(rho: f64, input_scale: f64) -> Run {
    let step = check_source(PROBE).unwrap().step;
    let adj = differentiate_step(&step).unwrap();
    let dims: Bindings = [("H".to_string(), H), ("X".to_string(), X)].into();
    let x = ArrayD::from_shape_fn(IxDyn(&[T, 1, X]), |i| {
        input_scale * (((i[0] * 7 + i[2] * 3) % 11) as f64 / 5.0 - 1.0)
    });
    let params = vec![
        (
            "U".to_string(),
            ArrayD::from_shape_fn(IxDyn(&[H, X]), |i| 0.5 - 0.2 * (i[0] + i[1]) as f64),
        ),
        ("W".to_string(), w(rho).into_dyn()),
        (
            "b".to_string(),
            ArrayD::from_shape_fn(IxDyn(&[H]), |i| input_scale * 0.01 * i[0] as f64),
        ),
    ];
    let inputs = vec![
        ("x".to_string(), x),
        ("e".to_string(), ArrayD::zeros(IxDyn(&[T, 1, H]))),
    ];
    let seq = prepare(&step, params, inputs, vec![], None, &dims, false).unwrap();
    let traj = forward(&step, &seq).unwrap();
    let a = traj.outputs[0]
        .clone()
        .into_shape_with_order((T, H))
        .unwrap();
    let mut jac = vec![Array2::zeros((H, H)); T];
    for i in 0..H {
        let mut c = ArrayD::zeros(IxDyn(&[T, 1, H]));
        c[[T - 1, 0, i]] = 1.0;
        let cot = Cotangents {
            outputs: vec![Some(c)],
            last: vec![None],
        };
        let g = backward(&step, &adj, &seq, &cot).unwrap();
        let de = &g.inputs[1];
        for (k, j) in jac.iter_mut().enumerate() {
            j.row_mut(i)
                .assign(&de.slice(ndarray::s![T - 1 - k, 0, ..]));
        }
    }
    Run { a, jac }
}

fn frobenius(m: &Array2<f64>) -> f64 {
    m.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn one_step_factor_is_w_times_diag_of_f_prime() {
    for rho in [0.5, 1.0, 1.5] {
        let r = run(rho, 1.0);
        let w = w(rho);
        // The product of factors W · diag(1 - tanh²(a_s)) for s = T-2 down to T-1-k.
        let mut product = Array2::<f64>::eye(H);
        for k in 1..T {
            let s = T - 1 - k;
            let fprime = r.a.row(s).mapv(|v| 1.0 - v.tanh().powi(2));
            let factor = &w * &fprime.insert_axis(ndarray::Axis(0));
            product = product.dot(&factor);
            for (p, q) in product.iter().zip(r.jac[k].iter()) {
                assert!(
                    (p - q).abs() <= 1e-12 * (1.0 + p.abs()),
                    "rho {rho}, k {k}: product of factors {p}, BPTT {q}"
                );
            }
        }
    }
}

#[test]
fn gradient_through_k_steps_vanishes_or_explodes_with_the_spectrum_of_w() {
    let mut table = format!(
        "‖∂a_t/∂a_(t-k)‖_F through k steps (t = {}, H = {H}; W = ρ·Q, Q orthogonal)\n",
        T - 1
    );
    table += &format!(
        "{:>3} {:>12} {:>12} {:>12}\n",
        "k", "ρ = 0.5", "ρ = 1.0", "ρ = 1.5"
    );
    let runs: Vec<Run> = [0.5, 1.0, 1.5].iter().map(|&rho| run(rho, 0.001)).collect();
    for k in 1..T {
        table += &format!(
            "{k:>3} {:>12.3e} {:>12.3e} {:>12.3e}\n",
            frobenius(&runs[0].jac[k]),
            frobenius(&runs[1].jac[k]),
            frobenius(&runs[2].jac[k])
        );
    }
    print!("{table}");
    // docs/bptt.md shows this table: it must be the one computed here.
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bptt.md")).unwrap();
    assert!(
        docs.contains(&table),
        "docs/bptt.md must show the table exactly as computed:\n{table}"
    );
    // With inputs of size 1 the units saturate (tanh' ≪ 1): the factors shrink
    // whatever ρ is, which is the other half of the notes' argument.
    let saturated: Vec<Run> = [0.5, 1.0, 1.5].iter().map(|&rho| run(rho, 1.0)).collect();
    println!("the same with inputs of size 1 (saturating units):");
    for k in [1, 5, 10] {
        println!(
            "{k:>3} {:>12.3e} {:>12.3e} {:>12.3e}",
            frobenius(&saturated[0].jac[k]),
            frobenius(&saturated[1].jac[k]),
            frobenius(&saturated[2].jac[k])
        );
    }
    let ratio = |r: &Run| frobenius(&r.jac[10]) / frobenius(&r.jac[1]);
    // In the nearly linear regime (small inputs, tanh' ≈ 1) the norm scales as ρ^k.
    assert!(
        ratio(&runs[0]) < 0.5f64.powi(9) * 1.01,
        "ρ = 0.5 must vanish"
    );
    assert!(
        (ratio(&runs[1]) - 1.0).abs() < 0.05,
        "ρ = 1 must keep the norm (within tanh' < 1)"
    );
    assert!(
        ratio(&runs[2]) > 1.5f64.powi(9) * 0.9,
        "ρ = 1.5 must explode"
    );
}
