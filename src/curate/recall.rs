//! Memories that forget: the near-duplicate index and the prompt clusterer must recognise what
//! they saw recently without growing with the whole stream.
//!
//! Two generations: lookups see both, inserts go to the newer, and once the newer one spans
//! `days` days of publishing the older is dropped. What is remembered therefore covers between
//! `days` and `2 * days` days, and memory is bounded by what two such spans publish. Rotation
//! depends only on the days of the items in processing order, so a batch run and a streaming
//! run over the same events forget at the same moments.

use crate::events::timestamp::MICROS_PER_DAY;

/// The UTC day number of a timestamp in microseconds.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_DAY)
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Recall<T> {
    /// 0 keeps everything.
    days: i64,
    started: Option<i64>,
    current: T,
    previous: Option<T>,
}

impl<T: Default> Recall<T> {
    pub fn new(days: u32) -> Self {
        Self {
            days: i64::from(days),
            started: None,
            current: T::default(),
            previous: None,
        }
    }

    /// Moves to `day` (the publish day of the next item); returns whether a generation was
    /// dropped. Days before the current generation's start never rotate.
    pub fn advance_to(&mut self, day: i64) -> bool {
        let Some(started) = self.started else {
            self.started = Some(day);
            return false;
        };
        if self.days == 0 || day < started + self.days {
            return false;
        }
        self.previous = Some(std::mem::take(&mut self.current));
        self.started = Some(day);
        true
    }

    /// Older generation first, so that "earliest seen" searches can stop at the first hit.
    pub fn generations(&self) -> impl Iterator<Item = &T> {
        self.previous.iter().chain(std::iter::once(&self.current))
    }

    pub fn previous(&self) -> Option<&T> {
        self.previous.as_ref()
    }

    pub fn current(&self) -> &T {
        &self.current
    }

    pub fn current_mut(&mut self) -> &mut T {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_between_one_and_two_spans() {
        let mut recall: Recall<Vec<i64>> = Recall::new(2);
        for day in 0..7 {
            recall.advance_to(day);
            recall.current_mut().push(day);
        }
        let seen: Vec<i64> = recall.generations().flatten().copied().collect();
        assert_eq!(
            seen,
            vec![4, 5, 6],
            "day 6 started a span; 4 and 5 are the one before"
        );
        recall.advance_to(3);
        assert_eq!(
            recall.generations().count(),
            2,
            "an older day does not rotate"
        );
    }

    #[test]
    fn zero_days_never_forgets() {
        let mut recall: Recall<Vec<i64>> = Recall::new(0);
        for day in 0..100 {
            recall.advance_to(day);
            recall.current_mut().push(day);
        }
        assert_eq!(recall.generations().flatten().count(), 100);
    }
}
