//! AnomalyMatch in Rust: find rare objects in large image collections from a handful of labels,
//! with FixMatch semi-supervised learning, EfficientNet backbones and active learning
//! (Gómez et al., arXiv 2505.03509).
//!
//! This crate re-exports the workspace's crates under short names and offers binaries a global
//! allocator ([`allocator`]) and a thread set-up ([`threads`]) for fast CPU work.

pub use anomalymatch_active as active;
pub use anomalymatch_augment as augment;
pub use anomalymatch_core as core;
pub use anomalymatch_io as io;
pub use anomalymatch_jobs as jobs;
pub use anomalymatch_models as models;

pub mod allocator;
pub mod threads;
