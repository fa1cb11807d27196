//! Every record that enters the system passes here and leaves as exactly one of: a valid event,
//! a duplicate, or a dead letter. The counters make "nothing is lost" checkable.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dead_letter::{DeadLetter, Reason, Rejection, SourcePosition};
use super::dedup::EventIdDedup;
use super::model::{Event, EventKind};
use super::validate::Validator;

/// A record that parsed as a valid event, with its id's hash for the de-duplication that
/// follows.
#[derive(Clone)]
pub struct ParsedEvent<'a> {
    pub event: Event<'a>,
    pub id_hash: u64,
}

/// What a record parses to before de-duplication.
pub type Parsed<'a> = Result<ParsedEvent<'a>, Rejection>;

/// The stateless half of intake: whether the record is a valid event at all. It needs no
/// memory of other records, so a consumer can run it on a thread of its own.
pub fn parse_record<'a>(validator: &Validator, payload: &'a [u8], raw_len: u64) -> Parsed<'a> {
    let limit = validator.limits().max_payload_bytes as u64;
    if raw_len > limit {
        return Err(Rejection::new(
            Reason::PayloadTooLarge,
            format!("{raw_len} bytes, limit {limit}"),
        ));
    }
    let event = validator.parse(payload)?;
    let id_hash = EventIdDedup::hash(event.event_id());
    Ok(ParsedEvent { event, id_hash })
}

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

/// How long event ids are remembered for de-duplication, in hours of event time: producers'
/// retries and redeliveries come within minutes; six hours leaves room for a replayed backlog.
pub const DEFAULT_DEDUP_HORIZON_HOURS: f64 = 6.0;

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
        let parsed = parse_record(&self.validator, payload, raw_len);
        self.accept_parsed(parsed, payload, raw_len, position)
    }

    /// `accept` over a run of records, with the same outcomes and counts record by record. All
    /// are parsed before any is de-duplicated, and the event-id memory's slots are fetched
    /// ahead, so that its cache misses overlap instead of stalling one event at a time.
    pub fn accept_run<'a>(
        &mut self,
        records: &[(&'a [u8], u64)],
        position: impl Fn(usize) -> SourcePosition,
    ) -> Vec<Outcome<'a>> {
        let parsed: Vec<Parsed<'a>> = records
            .iter()
            .map(|&(payload, raw_len)| {
                let parsed = parse_record(&self.validator, payload, raw_len);
                self.prefetch(&parsed);
                parsed
            })
            .collect();
        parsed
            .into_iter()
            .zip(records)
            .enumerate()
            .map(|(i, (parsed, &(payload, raw_len)))| {
                self.accept_parsed(parsed, payload, raw_len, || position(i))
            })
            .collect()
    }

    /// Fetches ahead the event-id memory's slot that `accept_parsed` will look at.
    pub fn prefetch(&self, parsed: &Parsed<'_>) {
        if let Ok(parsed) = parsed {
            self.dedup.prefetch(parsed.id_hash, parsed.event.ts());
        }
    }

    /// The stateful half of `accept`, for a record parsed by [`parse_record`] (possibly on
    /// another thread): counted, de-duplicated, or made a dead letter.
    pub fn accept_parsed<'a>(
        &mut self,
        parsed: Parsed<'a>,
        payload: &[u8],
        raw_len: u64,
        position: impl FnOnce() -> SourcePosition,
    ) -> Outcome<'a> {
        self.counts.lines += 1;
        match parsed {
            Ok(ParsedEvent { event, id_hash }) => self.count_valid(event, id_hash),
            Err(rejection) => {
                self.counts.count_dead(rejection.reason);
                Outcome::Dead(DeadLetter::new(payload, raw_len, rejection, position()))
            }
        }
    }

    fn count_valid<'a>(&mut self, event: Event<'a>, hash: u64) -> Outcome<'a> {
        if self.dedup.first_sighting_of(hash, event.ts()) {
            self.counts.valid += 1;
            *self.counts.by_kind.entry(event.kind()).or_default() += 1;
            Outcome::Valid(event)
        } else {
            self.counts.duplicates += 1;
            Outcome::Duplicate
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
