//! Core of AnomalyMatch: the vocabulary shared by all crates (labels, images, the traits that
//! connect backbones, augmentations, query strategies, oracles and image sources), label files,
//! datasets, metrics, the configuration idiom and core's sections, and the FixMatch trainer.
//!
//! AnomalyMatch (Gómez et al., arXiv 2505.03509) treats anomaly detection as binary
//! classification trained semi-supervised with FixMatch from a handful of labels, and improves
//! it with active learning.

pub mod atomic;
pub mod augmenter;
pub mod checkpoint;
pub mod class_file;
pub mod classifier;
pub mod config;
pub mod decode;
pub mod ema;
pub mod error;
pub mod fixmatch;
pub mod folder;
pub mod framing;
pub mod image;
pub mod image_store;
pub mod label;
pub mod label_file;
pub mod labelled;
pub mod loader;
pub mod lock;
pub mod metrics;
pub mod optim;
pub mod oracle;
pub mod pipeline;
pub mod pool;
pub mod printable;
pub mod progress;
pub mod query;
mod resample;
pub mod rng;
pub mod score;
pub mod scorer;
pub mod source;
pub mod stretch;
#[cfg(any(test, feature = "toy"))]
pub mod toy;
pub mod train_config;

pub use augmenter::{Augmenter, IdentityAugmenter};
pub use class_file::ClassTable;
pub use classifier::{Classifier, ModelSpec, NamedVar, VarRole};
pub use config::{Build, Check, Checked};
pub use decode::{ChannelMode, DecodeError};
pub use error::{Error, Result};
pub use fixmatch::{FixMatch, StepMetrics, TrainData};
pub use folder::FolderSource;
pub use framing::Crop;
pub use image::{ImageBatch, Images, Sample};
pub use image_store::ImageStore;
pub use label::Label;
pub use label_file::{LabelTable, MergeReport};
pub use labelled::LabelledSet;
pub use loader::{DataConfig, DataSpec, FailedImage, ImageLoader, LoadReport, Loaded};
pub use metrics::{ConfusionMatrix, RankingMetrics};
pub use oracle::{Answer, Candidate, Oracle, OracleOutcome};
pub use pool::UnlabelledPool;
pub use printable::printable;
pub use progress::Progress;
pub use query::{Embeddings, QueryInput, QueryStrategy};
pub use score::{Ranking, ScoreConfig, Views};
pub use scorer::{ScoreOptions, ScoredChunk, Scorer};
pub use source::{ImagePayload, ImageSource, SourceImage};
pub use stretch::Stretch;
pub use train_config::{Schedule, TrainConfig, WeakPass};
