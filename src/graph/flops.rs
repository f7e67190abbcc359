//! How much arithmetic a graph's matrix products do: the FLOP count that
//! `cellc bench` divides by time for GFLOP/s. Only matrix products count
//! (as `../shared/bench/peers.py` counts them), since they are what a
//! recurrent cell's time goes to; elementwise work is left out.
//!
//! Per node, with `B` the batch: `MatVec` and `MatTVec` of an `[m, n]`
//! matrix, `2·m·n`, times `B` when the result is batched (a batched vector,
//! or a batched matrix); `OuterSum` of `[m]` and `[n]` batches, `2·B·m·n`
//! (a multiply and an add per product term); `Outer`, `m·n` multiplies,
//! times `B` when batched.

use super::Graph;
use super::dim::Bindings;
use super::op::Op;

/// The matrix-product FLOPs of one evaluation of `g` under `bindings` for a
/// batch of `batch`, or the size that cannot be computed. Saturates rather
/// than wrapping.
pub fn matrix_flops(g: &Graph, bindings: &Bindings, batch: usize) -> Result<u128, String> {
    let mut total: u128 = 0;
    for n in g.node_ids() {
        let node = g.node(n);
        let (per_element, scale_by_batch) = match node.op {
            Op::MatVec | Op::MatTVec => {
                let matrix = g.node(g.operands(n)[0]).ty.dims.clone();
                (2 * product(&matrix, bindings)?, node.ty.batched)
            }
            // The result is the `[m, n]` of both.
            Op::OuterSum => (2 * product(&node.ty.dims, bindings)?, true),
            Op::Outer => (product(&node.ty.dims, bindings)?, node.ty.batched),
            _ => continue,
        };
        let count = if scale_by_batch {
            per_element.saturating_mul(batch as u128)
        } else {
            per_element
        };
        total = total.saturating_add(count);
    }
    Ok(total)
}

fn product(dims: &[super::dim::Dim], bindings: &Bindings) -> Result<u128, String> {
    dims.iter().try_fold(1u128, |acc, d| {
        let v = d.eval(bindings)?;
        if v < 0 {
            return Err(format!("size {d} is negative ({v})"));
        }
        Ok(acc.saturating_mul(v as u128))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::dim::{Dim, Type};
    use crate::graph::op::Binary;
    use crate::graph::{Arg, Builder};

    #[test]
    fn counts_each_product_by_hand() {
        let (h, x) = (Dim::sym("H"), Dim::sym("X"));
        let arg = |name: &str, batched, dims: Vec<Dim>| Arg {
            name: name.into(),
            ty: Type::new(batched, dims),
        };
        let mut b = Builder::new(vec![
            arg("W", false, vec![h.clone(), x.clone()]),
            arg("x", true, vec![x.clone()]),
            arg("h", true, vec![h.clone()]),
            arg("v", false, vec![x.clone()]),
        ]);
        let (w, xs, hs, v) = (b.arg(0), b.arg(1), b.arg(2), b.arg(3));
        let wx = b.node(Op::MatVec, &[w, xs]).unwrap(); // 2·H·X·B
        let wth = b.node(Op::MatTVec, &[w, hs]).unwrap(); // 2·H·X·B
        b.node(Op::OuterSum, &[hs, xs]).unwrap(); // 2·B·H·X
        b.node(Op::Outer, &[hs, xs]).unwrap(); // H·X·B
        b.node(Op::MatVec, &[w, v]).unwrap(); // 2·H·X, unbatched
        b.binary(Binary::Add, wx, wx).unwrap(); // elementwise: not counted
        b.binary(Binary::Mul, wth, wth).unwrap();
        let g = b.finish();
        let bindings: Bindings = [("H".to_string(), 3), ("X".to_string(), 2)].into();
        // H·X = 6, B = 4: 48 + 48 + 48 + 24 + 12.
        assert_eq!(matrix_flops(&g, &bindings, 4), Ok(180));
        // Without a batch size bound to anything, unbound dimensions say so.
        assert!(matrix_flops(&g, &Bindings::new(), 4).is_err());
    }
}
