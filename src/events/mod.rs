//! The event model: what the community feed says, and the single place that decides whether a
//! record is a valid event, a duplicate, or a dead letter.

pub mod dead_letter;
pub mod dedup;
pub mod intake;
pub mod model;
mod raw;
mod scan;
pub mod timestamp;
pub mod validate;

pub use dead_letter::{DeadLetter, Reason, Rejection, SourcePosition};
pub use intake::{
    DEFAULT_DEDUP_HORIZON_HOURS, Intake, IntakeCounts, Outcome, Parsed, ParsedEvent, parse_record,
};
pub use model::{Event, EventKind, Publish, Remix, SCHEMA_VERSION, View};
pub use timestamp::Timestamp;
pub use validate::{Limits, Validator};
