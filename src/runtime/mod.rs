//! The runtime: the time loop that drives a step graph over sequences (forward,
//! and backward in part 2). Its data comes from `data`, which it does not import.

pub mod backward;
pub mod forward;
pub mod truncated;
pub mod types;
