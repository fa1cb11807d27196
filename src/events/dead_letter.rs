//! Input that could not become an event, kept with its reason and where it came from.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a record was rejected. Stable snake_case names: they are metric labels and catalog values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    PayloadTooLarge,
    InvalidUtf8,
    MalformedJson,
    WrongType,
    MissingField,
    UnknownKind,
    UnsupportedVersion,
    InvalidId,
    InvalidTimestamp,
    TimestampOutOfRange,
    PromptTooLong,
    UnsafeUri,
    InvalidValue,
    /// Arrived after its image's observation window closed (set by curation, not by parsing).
    Late,
    /// Refers to an image whose publish event was never seen.
    UnknownImage,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::MalformedJson => "malformed_json",
            Reason::WrongType => "wrong_type",
            Reason::MissingField => "missing_field",
            Reason::UnknownKind => "unknown_kind",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::InvalidId => "invalid_id",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::PromptTooLong => "prompt_too_long",
            Reason::UnsafeUri => "unsafe_uri",
            Reason::InvalidValue => "invalid_value",
            Reason::Late => "late",
            Reason::UnknownImage => "unknown_image",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection before it is attached to a source position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Where a record came from, precise enough to find it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SourcePosition {
    File {
        path: String,
        line: u64,
    },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePosition::File { path, line } => write!(f, "{path}:{line}"),
            SourcePosition::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}/{partition}/{offset}"),
        }
    }
}

/// Raw bytes kept with a dead letter are capped so one hostile payload cannot bloat the store;
/// `raw_len` still records the original size.
pub const MAX_KEPT_RAW_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub raw: Vec<u8>,
    pub raw_len: u64,
    pub reason: Reason,
    pub detail: String,
    pub position: SourcePosition,
}

impl DeadLetter {
    pub fn new(raw: &[u8], raw_len: u64, rejection: Rejection, position: SourcePosition) -> Self {
        let kept = &raw[..raw.len().min(MAX_KEPT_RAW_BYTES)];
        Self {
            raw: kept.to_vec(),
            raw_len,
            reason: rejection.reason,
            detail: rejection.detail,
            position,
        }
    }
}
