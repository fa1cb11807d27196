//! Stages and how they run: configuration, the stage runner, and each stage's batch driver.

pub mod config;
pub mod run;
pub mod stream;
mod summary;
pub mod validate;

use std::path::Path;

pub use config::PipelineConfig;
pub use run::{PipelineSummary, RunOptions, StageOutcome, StageSummary, run_pipeline};

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
    Curate(#[from] crate::curate::CurateError),
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    #[error(transparent)]
    Objects(#[from] crate::store::ObjectError),
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
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
    /// A stage's summary that could not be recorded in the catalog.
    #[error("stage {stage}: recording its summary: {source}")]
    Record {
        stage: String,
        #[source]
        source: serde_json::Error,
    },
    /// A stage's blocking task panicked or was cancelled.
    #[error("stage {stage}: {source}")]
    Task {
        stage: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("ingest.source = \"kafka\" needs a [kafka] section (brokers, topic, group)")]
    NoKafkaSection,
    #[error("ingest.metrics_addr {0:?} is not an address to listen on (e.g. 0.0.0.0:9898)")]
    MetricsAddress(String),
    /// After a streaming ingest, batch curation of the same events must write the same files.
    #[error(
        "stage curate: {} of {files} files batch curation wrote are not those the streaming \
         ingest recorded (same events, same settings: they must be): {}",
        .differing.len(),
        .differing.join(", ")
    )]
    StreamDisagrees {
        files: usize,
        differing: Vec<String>,
    },
    #[error("stage train: the catalog lists no triplet files: run the curate stage first")]
    NoTripletFiles,
}

impl StageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
