//! Training policy on top of the runtime's gradients: what an optimiser does
//! with them. Today gradient clipping ([`clip`]); the loop, optimisers,
//! losses, heads and initialisers come here next. The runtime computes
//! gradients and knows nothing of this module.

pub mod clip;
