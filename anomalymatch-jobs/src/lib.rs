//! AnomalyMatch's jobs over one checked configuration: the engine under the `anomalymatch`
//! command, its labelling page and its bindings.
//!
//! The configuration file ([`config`]) assembles each component crate's section; it is parsed
//! and checked once into [`Settings`], whose sections can only be had checked, and the
//! components (loader, model, trainer, session) are built from them ([`components`]). Scoring
//! runs stream a source part by part and resume ([`score_run`], [`shard`]); what jobs write is
//! staged atomically ([`outputs`]). Jobs print nothing themselves: they tell a [`Report`] what
//! they did and what they worked around, and return typed results or a [`JobError`] that keeps
//! its causes.

pub mod benchmark;
pub mod components;
pub mod config;
pub mod discover;
pub mod error;
pub mod label;
pub mod merge;
pub mod outputs;
pub mod preset;
pub mod report;
pub mod score;
pub mod score_run;
pub mod scoring_model;
pub mod shard;
pub mod shared_session;
pub mod slurm;
pub mod train;

pub use config::{Config, Override, Settings, load};
pub use error::{JobError, Result};
pub use preset::Preset;
pub use report::{Report, Silent};
pub use shard::Shard;
