//! Where a record enters curation, for the batch command and the stream alike: the intake
//! decides valid, duplicate or dead; the windows count a valid event or refuse it; whatever is
//! refused, or buffered and never claimed, becomes a dead letter with the intake's counts kept
//! balanced (one valid event, one dead letter).

use crate::events::{DeadLetter, Event, Intake, Outcome, SourcePosition};

use super::window::{ClosedSession, Observation, UnclaimedEvent, Windows};

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
            if let Observation::Rejected(rejection) = windows.observe(&event, payload, &position) {
                // Refused after intake: `lines = valid + duplicates + dead letters` must hold.
                intake.reject_after_intake(event.kind(), rejection.reason);
                letters.push(DeadLetter::new(payload, raw_len, rejection, position()));
            }
            Some(event)
        }
        Outcome::Duplicate => None,
        Outcome::Dead(letter) => {
            letters.push(letter);
            None
        }
    }
}

/// Buffered events the windows gave up on: valid when taken in, dead letters now.
pub fn settle_unclaimed(
    intake: &mut Intake,
    unclaimed: Vec<UnclaimedEvent>,
    letters: &mut Vec<DeadLetter>,
) {
    for UnclaimedEvent { kind, letter } in unclaimed {
        intake.reject_after_intake(kind, letter.reason);
        letters.push(letter);
    }
}

/// The input is over (a batch's last line, a stream's `--until-idle`): buffered events that
/// met no publish become dead letters, and every session the windows hold closes. What closed
/// is final, whatever its day.
pub fn end_of_input(
    intake: &mut Intake,
    windows: &mut Windows,
    letters: &mut Vec<DeadLetter>,
) -> Vec<ClosedSession> {
    let (closed, unclaimed) = windows.advance();
    settle_unclaimed(intake, unclaimed, letters);
    let unclaimed = windows.drain_buffered();
    settle_unclaimed(intake, unclaimed, letters);
    closed
}
