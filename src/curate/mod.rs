//! Curation: from events to debiased preference triplets.
//!
//! `window` counts views and remixes inside each image's observation window and closes
//! generation sessions behind the watermark; `phash` keeps reposts and near-duplicates out of
//! pairs; `pairs` decides which image of a session the community preferred, with a Bayesian
//! confidence (and `fallback`, when configured, across a creator's sessions of one prompt cluster);
//! `prompt` clusters near-duplicate prompts so that `triplets` can cap them; and
//! `evaluate` measures the result against the simulator's ground truth. The same core serves
//! the batch command here and the streaming consumer.

pub mod admit;
pub mod config;
pub mod curator;
pub mod emit;
mod error;
pub mod evaluate;
pub mod fallback;
pub mod pairs;
pub mod partition;
pub mod paths;
pub mod phash;
pub mod prompt;
pub mod recall;
pub mod triplets;
pub mod window;

mod batch;

pub use batch::{CurateOptions, CurateSummary, CuratedBefore, curate};
pub use config::{CurateConfig, ImageDedup, Split};
pub use error::CurateError;
pub use paths::{PathStyle, PicturePaths};
pub use triplets::Triplet;
