//! The schedule: how the native back end will run a step graph over a whole
//! sequence (loops over time and batch, hoisted products, fused phases).
//! Built pass by pass; so far the first pass, [`classify`], which says of
//! every node when it can be computed. Nothing runs on it yet.

mod classify;
mod fuse;
mod hoist;

pub use classify::{Classes, Phase, TimeDependence, classify};
pub use fuse::{Fused, Home, Item, Loop, fuse, is_elementwise};
pub use hoist::{Hoisted, hoist, hoisted_type};
