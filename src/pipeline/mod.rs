//! Stages and how they run: configuration, the stage runner, and each stage's batch driver.

pub mod config;
pub mod run;
pub mod stream;
mod summary;
pub mod validate;

use std::path::Path;

pub use config::PipelineConfig;
pub use run::{PipelineSummary, StageOutcome, StageSummary, run_pipeline};

use crate::events::validate::LimitsError;
use crate::sources::SourceError;
use crate::sources::simulator::{ScenarioError, SimulatorError};
use crate::store::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Simulator(#[from] SimulatorError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Objects(#[from] crate::store::ObjectError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error("parquet: {0}")]
    Parquet(#[from] polars::error::PolarsError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown stage {name:?}; stages available: {available}")]
    UnknownStage { name: String, available: String },
    #[error("stage {stage}: {message}")]
    Failed { stage: String, message: String },
}

impl StageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
