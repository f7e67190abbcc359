//! The runtime: NumPy data in and out, binding dimensions to sizes, and the time
//! loop that drives a step graph over sequences (forward, and backward in part 2).

pub mod backward;
pub mod bind;
pub mod data;
pub mod forward;
pub mod kernel;
pub mod npy;
pub mod training;
pub mod types;
