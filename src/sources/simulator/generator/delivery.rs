//! Delivery faults: what real producers and transports do to a line between the event and the
//! topic (late delivery, a second delivery on a producer retry, corruption), at the scenario's
//! rates.

use rand::Rng;

use super::{Action, Generator};
use crate::events::Event;
use crate::events::timestamp::{MICROS_PER_HOUR, MICROS_PER_SECOND};

use crate::sinks::EventSink;

impl Generator<'_> {
    /// Formats the event and delivers it now, later (late delivery), twice (producer retry) or
    /// corrupted, as the scenario's delivery-fault rates say.
    pub(super) fn emit<S: EventSink>(
        &mut self,
        now: i64,
        key: &str,
        event: &Event<'_>,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        let s = self.scenario;
        self.line.clear();
        if event.write_json_line(&mut self.line).is_err() {
            // Serialising plain strings and numbers cannot fail; skip rather than panic if it did.
            return Ok(());
        }
        self.line.pop();
        if s.corrupt_line_rate > 0.0 && self.rng.random::<f64>() < s.corrupt_line_rate {
            self.counts.corrupt_lines += 1;
            corrupt(&mut self.rng, &mut self.line);
        }
        if s.duplicate_delivery_rate > 0.0 && self.rng.random::<f64>() < s.duplicate_delivery_rate {
            self.counts.duplicate_deliveries += 1;
            let delay = self.rng.random_range(0..10 * 60 * MICROS_PER_SECOND);
            let action = Action::Deliver {
                key: key.to_owned(),
                line: self.line.clone(),
            };
            self.schedule(now + delay, action);
        }
        if s.late_delivery_rate > 0.0 && self.rng.random::<f64>() < s.late_delivery_rate {
            self.counts.late_deliveries += 1;
            let max = (s.late_delivery_max_hours * MICROS_PER_HOUR as f64) as i64;
            let delay = self.rng.random_range(0..max.max(1));
            let action = Action::Deliver {
                key: key.to_owned(),
                line: self.line.clone(),
            };
            self.schedule(now + delay, action);
            return Ok(());
        }
        self.counts.lines += 1;
        sink.deliver(key, &self.line)
    }
}

/// The faults real producers and transports introduce, one per corrupted line.
fn corrupt<R: Rng>(rng: &mut R, line: &mut Vec<u8>) {
    match rng.random_range(0..5) {
        0 => {
            let keep = rng.random_range(0..line.len().max(1));
            line.truncate(keep);
        }
        1 => replace(line, b"\"v\":1", b"\"v\":\"1\""),
        2 => {
            for kind in [&b"\"publish\""[..], b"\"view\"", b"\"remix\""] {
                replace(line, kind, b"\"like\"");
            }
        }
        3 => {
            let at = rng.random_range(0..line.len().max(1));
            line.insert(at.min(line.len()), 0);
        }
        _ => replace(
            line,
            b"\"ts\":\"",
            b"\"ts\":\"1970-01-01T00:00:00Z\",\"was\":\"",
        ),
    }
}

fn replace(line: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    if let Some(at) = line.windows(from.len()).position(|w| w == from) {
        line.splice(at..at + from.len(), to.iter().copied());
    }
}
