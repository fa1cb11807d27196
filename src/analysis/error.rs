use crate::store::{CatalogError, ObjectError};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("triplet file {url} is not readable Parquet: {source}")]
    BadTriplets {
        url: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("SQL: {0}")]
    Query(#[source] polars::error::PolarsError),
    #[error("writing the result as {format}: {source}")]
    Output {
        format: &'static str,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("drawing the plot {figure}: {message}")]
    Plot {
        figure: &'static str,
        message: String,
    },
    #[error("writing the result: {0}")]
    Io(#[from] std::io::Error),
}
