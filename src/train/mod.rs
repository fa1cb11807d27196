//! The reward model: CLIP fine-tuned with the Social Reward triplet loss on curated triplets,
//! evaluated by pairwise accuracy against its untrained (zero-shot) starting point, and used to
//! score images.
//!
//! Data flow: `data` reads triplet Parquet and images, `preprocess` and `tokenize` make model
//! inputs, `model` builds CLIP from a Hugging Face directory, `fit` trains and checkpoints,
//! `evaluate` measures, `bench` times.

pub mod bench;
pub mod clip;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod fit;
pub mod loss;
pub mod model;
pub mod preprocess;
pub mod spec;
pub mod tokenize;

pub use evaluate::{EvalOptions, EvalSummary, evaluate};
pub use fit::{ModelChoice, TrainOptions, TrainSummary, train};
pub use model::RewardModel;
pub use spec::{ClipSpec, Trainable};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("model: {0}")]
    Model(String),
    #[error(
        "{url} is neither a model directory (no config.json) nor a `train --out` directory \
         (no model/config.json); pass train's OUT or OUT/model"
    )]
    NotAModel { url: String },
    #[error("training data: {0}")]
    Data(String),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Object(#[from] crate::store::ObjectError),
    #[error(transparent)]
    Catalog(#[from] crate::store::CatalogError),
}
