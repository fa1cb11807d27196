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
pub mod options;
pub mod preprocess;
pub mod spec;
pub mod tokenize;

pub use evaluate::{EvalOptions, EvalSummary, evaluate};
pub use fit::train;
pub use model::RewardModel;
pub use options::{ModelChoice, TrainOptions, TrainSummary};
pub use spec::{ClipSpec, Trainable};

/// What went wrong in training, evaluating or scoring, by cause; each carries what a caller
/// needs to report or act on it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    // ---- Finding and reading a model directory.
    #[error("model directory {url} does not exist")]
    ModelDirMissing { url: String },
    #[error("model directory {url} is not a directory")]
    ModelDirNotADirectory { url: String },
    #[error(
        "{url} is neither a model directory (no config.json) nor a `train --out` directory \
         (no model/config.json); pass train's OUT or OUT/model"
    )]
    NotAModel { url: String },
    /// A file of the model directory (or of the files held in memory) is absent.
    #[error("model file {path} is missing")]
    MissingFile { path: String },
    /// `config.json` cannot be used (it does not read, or describes a model the code cannot
    /// build).
    #[error("config.json: {0}")]
    BadConfig(#[from] spec::ConfigProblem),
    #[error("tokenizer.json: {source}")]
    BadTokenizer {
        #[source]
        source: tokenizers::Error,
    },
    #[error("tokenizer.json has no {token} token")]
    TokenizerLacksToken { token: &'static str },
    #[error("a context length of {tokens} tokens: the start and end tokens need 2")]
    ContextTooShort { tokens: usize },
    #[error("the tokenizer has {tokenizer} tokens, the text tower {text_tower}")]
    VocabularyMismatch { tokenizer: usize, text_tower: usize },
    #[error("tokenizing {prompt:?}: {source}")]
    Tokenize {
        prompt: String,
        #[source]
        source: tokenizers::Error,
    },
    #[error("building tokenizer: {source}")]
    BuildTokenizer {
        #[source]
        source: tokenizers::Error,
    },

    // ---- Making and writing weights.
    #[error("writing safetensors: {source}")]
    WriteSafetensors {
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("drawing random weights with deviation {std}: {source}")]
    RandomInit {
        std: f64,
        #[source]
        source: rand_distr::NormalError,
    },
    /// A thread panicked while holding the lock on the model's `what`.
    #[error("{what} poisoned")]
    LockPoisoned { what: &'static str },

    // ---- Checkpoints of a run.
    #[error("checkpoint {url}: {source}")]
    BadCheckpoint {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("checkpoint {url} lacks {key}")]
    CheckpointIncomplete { url: String, key: String },
    /// Resuming would continue another run's data order; the run must start afresh or match.
    #[error(
        "the checkpoint in {out} was made with seed {seed}, batch size {batch_size}, trainable \
         {trainable}; pass the same or start afresh with --no-resume"
    )]
    CheckpointMismatch {
        out: String,
        seed: u64,
        batch_size: usize,
        trainable: Trainable,
    },
    #[error("no trainable weights: trainable {trainable} selects none of the model's")]
    NoTrainableWeights { trainable: Trainable },

    // ---- Training data.
    #[error("training data: no {split} triplets under {location}")]
    NoTriplets { split: String, location: String },
    #[error("training data: {url}: {source}")]
    BadTriplets {
        url: String,
        #[source]
        source: polars::error::PolarsError,
    },

    // ---- From the layers below.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Object(#[from] crate::store::ObjectError),
    #[error(transparent)]
    Catalog(#[from] crate::store::CatalogError),
}
