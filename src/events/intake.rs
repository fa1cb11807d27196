//! Every record that enters the system passes here and leaves as exactly one of: a valid event,
//! a duplicate, or a dead letter. The counters make "nothing is lost" checkable.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dead_letter::{DeadLetter, Reason, Rejection, SourcePosition};
use super::dedup::EventIdDedup;
use super::model::{Event, EventKind};
use super::validate::Validator;

pub enum Outcome<'a> {
    Valid(Event<'a>),
    Duplicate,
    Dead(DeadLetter),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IntakeCounts {
    pub lines: u64,
    pub valid: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub by_kind: BTreeMap<EventKind, u64>,
    pub by_reason: BTreeMap<Reason, u64>,
}

impl IntakeCounts {
    pub fn is_balanced(&self) -> bool {
        self.lines == self.valid + self.duplicates + self.dead_letters
    }

    /// Adds another intake's counts (e.g. another partition's).
    pub fn add(&mut self, other: &IntakeCounts) {
        self.lines += other.lines;
        self.valid += other.valid;
        self.duplicates += other.duplicates;
        self.dead_letters += other.dead_letters;
        for (kind, n) in &other.by_kind {
            *self.by_kind.entry(*kind).or_default() += n;
        }
        for (reason, n) in &other.by_reason {
            *self.by_reason.entry(*reason).or_default() += n;
        }
    }

    pub fn count_dead(&mut self, reason: Reason) {
        self.dead_letters += 1;
        *self.by_reason.entry(reason).or_default() += 1;
    }
}

pub struct Intake {
    validator: Validator,
    dedup: EventIdDedup,
    counts: IntakeCounts,
}

impl Intake {
    pub fn new(validator: Validator, dedup_horizon_hours: f64) -> Self {
        Self {
            validator,
            dedup: EventIdDedup::new(dedup_horizon_hours),
            counts: IntakeCounts::default(),
        }
    }

    /// What an intake remembers (recent event ids and its counts), for a state snapshot.
    pub fn memory(&self) -> (&EventIdDedup, &IntakeCounts) {
        (&self.dedup, &self.counts)
    }

    /// An intake that goes on from a snapshot's memory.
    pub fn restore(validator: Validator, dedup: EventIdDedup, counts: IntakeCounts) -> Self {
        Self {
            validator,
            dedup,
            counts,
        }
    }

    /// `raw_len` is the record's true size (a reader may have kept only a prefix of a huge
    /// record); `position` is built only for dead letters, keeping the hot path allocation-free.
    pub fn accept<'a>(
        &mut self,
        payload: &'a [u8],
        raw_len: u64,
        position: impl FnOnce() -> SourcePosition,
    ) -> Outcome<'a> {
        self.counts.lines += 1;
        let limit = self.validator.limits().max_payload_bytes as u64;
        let parsed = if raw_len > limit {
            Err(Rejection::new(
                Reason::PayloadTooLarge,
                format!("{raw_len} bytes, limit {limit}"),
            ))
        } else {
            self.validator.parse(payload)
        };
        match parsed {
            Ok(event) => {
                if self.dedup.first_sighting(event.event_id(), event.ts()) {
                    self.counts.valid += 1;
                    *self.counts.by_kind.entry(event.kind()).or_default() += 1;
                    Outcome::Valid(event)
                } else {
                    self.counts.duplicates += 1;
                    Outcome::Duplicate
                }
            }
            Err(rejection) => {
                self.counts.count_dead(rejection.reason);
                Outcome::Dead(DeadLetter::new(payload, raw_len, rejection, position()))
            }
        }
    }

    /// Records a rejection decided after intake (for example a `late` event in curation), so the
    /// balance `lines = valid + duplicates + dead_letters` keeps holding.
    pub fn reject_after_intake(&mut self, kind: EventKind, reason: Reason) {
        self.counts.valid = self.counts.valid.saturating_sub(1);
        if let Some(count) = self.counts.by_kind.get_mut(&kind) {
            *count = count.saturating_sub(1);
        }
        self.counts.count_dead(reason);
    }

    pub fn counts(&self) -> &IntakeCounts {
        &self.counts
    }

    pub fn into_counts(self) -> IntakeCounts {
        self.counts
    }
}
