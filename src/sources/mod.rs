//! Where events come from: the built-in community simulator, JSON-lines files, and Kafka.

pub mod file;
pub mod kafka;
pub mod simulator;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
