//! Where a record enters curation, for the batch command and the stream alike: the intake
//! decides valid, duplicate or dead; the windows count a valid event or refuse it; whatever is
//! refused, or buffered and never claimed, becomes a dead letter with the intake's counts kept
//! balanced (one valid event, one dead letter).
//!
//! The two halves can run on different threads (batch curation parses on one and windows on
//! the other): a refusal is then booked on a [`Rejections`] list and settled with the intake
//! at the end.

use crate::events::{DeadLetter, Event, EventKind, Intake, Outcome, Reason, SourcePosition};

use super::window::{Observation, UnclaimedEvent, Windows};

/// Where refusals after intake are booked, so that `lines = valid + duplicates + dead letters`
/// keeps holding.
pub trait Ledger {
    fn reject_after_intake(&mut self, kind: EventKind, reason: Reason);
}

impl Ledger for Intake {
    fn reject_after_intake(&mut self, kind: EventKind, reason: Reason) {
        Intake::reject_after_intake(self, kind, reason);
    }
}

/// Refusals booked away from the intake's thread; `settle` hands them over.
#[derive(Debug, Default)]
pub struct Rejections(Vec<(EventKind, Reason)>);

impl Ledger for Rejections {
    fn reject_after_intake(&mut self, kind: EventKind, reason: Reason) {
        self.0.push((kind, reason));
    }
}

impl Rejections {
    pub fn settle(self, intake: &mut Intake) {
        for (kind, reason) in self.0 {
            intake.reject_after_intake(kind, reason);
        }
    }
}

/// Takes a record the intake has judged through the windows. Returns the valid event (whether
/// the windows counted it or refused it), for callers that also keep their own tallies.
pub fn admit<'a>(
    intake: &mut Intake,
    windows: &mut Windows,
    outcome: Outcome<'a>,
    payload: &[u8],
    raw_len: u64,
    position: impl Fn() -> SourcePosition,
    letters: &mut Vec<DeadLetter>,
) -> Option<Event<'a>> {
    match outcome {
        Outcome::Valid(event) => {
            observe_valid(intake, windows, &event, payload, raw_len, position, letters);
            Some(event)
        }
        Outcome::Duplicate => None,
        Outcome::Dead(letter) => {
            letters.push(letter);
            None
        }
    }
}

/// The windows' half of `admit`: a valid event is counted, or refused as a dead letter.
pub fn observe_valid(
    ledger: &mut impl Ledger,
    windows: &mut Windows,
    event: &Event<'_>,
    payload: &[u8],
    raw_len: u64,
    position: impl Fn() -> SourcePosition,
    letters: &mut Vec<DeadLetter>,
) {
    if let Observation::Rejected(rejection) = windows.observe(event, payload, &position) {
        ledger.reject_after_intake(event.kind(), rejection.reason);
        letters.push(DeadLetter::new(payload, raw_len, rejection, position()));
    }
}

/// Buffered events the windows gave up on: valid when taken in, dead letters now.
pub fn settle_unclaimed(
    ledger: &mut impl Ledger,
    unclaimed: Vec<UnclaimedEvent>,
    letters: &mut Vec<DeadLetter>,
) {
    for UnclaimedEvent { kind, letter } in unclaimed {
        ledger.reject_after_intake(kind, letter.reason);
        letters.push(letter);
    }
}
