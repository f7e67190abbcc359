//! The crate's one seeded random generator (SplitMix64), for generated data,
//! initialisation and tests. Deterministic across platforms and releases, so
//! that a seed names the same numbers forever; no crate is needed for it.

use ndarray::{ArrayD, IxDyn};
use num_traits::{Float, FromPrimitive};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea and Flood, 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The generator for a user's seed (`--seed`).
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: seed ^ GOLDEN,
        }
    }

    /// The generator whose internal state is `state`, as written in the
    /// algorithm's reference code.
    pub fn from_state(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), on the 2^53 grid.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller, one value per pair of draws).
    pub fn standard_normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// An array uniform in [-k, k).
    pub fn uniform<F: Float + FromPrimitive>(&mut self, shape: &[usize], k: f64) -> ArrayD<F> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            F::from_f64(self.symmetric() * k).unwrap_or_else(F::zero)
        })
    }

    /// An array of standard normal values.
    pub fn normal<F: Float + FromPrimitive>(&mut self, shape: &[usize]) -> ArrayD<F> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || {
            F::from_f64(self.standard_normal()).unwrap_or_else(F::zero)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs of the reference implementation from state 0.
        let mut r = SplitMix64::from_state(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn unit_values_stay_in_range() {
        let mut r = SplitMix64::new(7);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
    }
}
