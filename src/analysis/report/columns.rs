//! A table's columns as plain Rust values, for the report's sums: a missing table or column
//! reads as empty, so that a report over a partial catalog still draws what it has.

use polars::prelude::*;

pub fn texts<'f>(frame: Option<&'f DataFrame>, name: &str) -> Vec<Option<&'f str>> {
    frame
        .and_then(|f| f.column(name).ok())
        .and_then(|c| c.str().ok())
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

pub fn ints(frame: Option<&DataFrame>, name: &str) -> Vec<Option<i64>> {
    frame
        .and_then(|f| f.column(name).ok())
        .and_then(|c| c.cast(&DataType::Int64).ok())
        .and_then(|c| c.i64().ok().map(|c| c.iter().collect()))
        .unwrap_or_default()
}

pub fn floats(frame: Option<&DataFrame>, name: &str) -> Vec<Option<f64>> {
    frame
        .and_then(|f| f.column(name).ok())
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().map(|c| c.iter().collect()))
        .unwrap_or_default()
}

/// Microseconds since the epoch of a datetime column.
pub fn times(frame: Option<&DataFrame>, name: &str) -> Vec<Option<i64>> {
    frame
        .and_then(|f| f.column(name).ok())
        .and_then(|c| c.datetime().ok())
        .map(|c| c.physical().iter().collect())
        .unwrap_or_default()
}

/// The UTC day of a time in microseconds, as `dt=` partitions name it.
pub fn day(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.date_naive().to_string())
}
