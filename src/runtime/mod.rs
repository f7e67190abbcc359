//! The runtime: the kernel interface, and the time-loop drivers that run a
//! step's kernels over sequences (forward, BPTT, truncated BPTT) on flat,
//! preallocated buffers. Its data comes from `data`, which it does not import.

pub mod backend;
pub mod backward;
pub mod forward;
pub mod hoisted;
pub mod kernel;
pub mod memory;
pub mod native;
pub mod truncated;
pub mod types;
