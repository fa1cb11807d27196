//! What analysts read: SQL over the curated dataset and the catalog (`query`), and the
//! dataset's report.

mod error;
pub mod output;
pub mod report;
pub mod tables;

pub use error::AnalysisError;
pub use output::{Format, write_frame};
pub use report::{ReportOptions, ReportSummary, report};
pub use tables::{QueryTables, TRIPLETS};
