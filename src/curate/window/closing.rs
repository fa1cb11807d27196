//! Closing: sessions whose windows lie behind the watermark leave the open state with their
//! final counts (spam remixers' remixes set apart), buffered events that no publish can claim
//! become dead letters, and closed images are remembered only as long as events may still name
//! them.

use std::cmp::Reverse;

use crate::events::{DeadLetter, EventKind};

use super::*;

impl Windows {
    /// The sessions closed and the buffered events given up on (as `unknown_image` dead
    /// letters) since the last call, in the order they happened.
    pub fn advance(&mut self) -> (Vec<ClosedSession>, Vec<UnclaimedEvent>) {
        self.close_due();
        (
            std::mem::take(&mut self.ready_closed),
            std::mem::take(&mut self.ready_unclaimed),
        )
    }

    /// Closes every session whose windows lie behind the watermark, and gives up on buffered
    /// events no publish can claim any more. Called whenever the watermark moves, before the
    /// event that moved it is counted: what closes, and in which order, then depends only on
    /// the events, never on how often a caller collects them.
    pub(super) fn close_due(&mut self) {
        let watermark = self.watermark();
        let due = |next: Option<i64>| next.is_some_and(|at| at <= watermark);
        if !due(self.closing.peek().map(|r| r.0.0))
            && !due(self.orphan_expiry.peek().map(|r| r.0.0))
            && !due(self.forget.front().map(|f| f.0))
            && self.final_before >= day_of(watermark).min(self.open_from())
        {
            return;
        }
        let mut closed = Vec::new();
        while let Some(Reverse((close_at, _))) = self.closing.peek() {
            if *close_at > watermark {
                break;
            }
            let Some(Reverse((close_at, key))) = self.closing.pop() else {
                break;
            };
            let current = self.sessions.get(&key).map(|s| s.close_at);
            if current != Some(close_at) {
                continue;
            }
            if let Some(session) = self.close(key) {
                closed.push(session);
            }
        }
        closed.sort_by(|a, b| {
            (
                a.images.first().map(|i| i.record.published_at),
                &a.creator_id,
                &a.generation_id,
            )
                .cmp(&(
                    b.images.first().map(|i| i.record.published_at),
                    &b.creator_id,
                    &b.generation_id,
                ))
        });
        self.ready_closed.append(&mut closed);
        while let Some(Reverse((expires, _))) = self.orphan_expiry.peek() {
            if *expires > watermark {
                break;
            }
            let Some(Reverse((_, image_id))) = self.orphan_expiry.pop() else {
                break;
            };
            let expired = self.give_up_on(&image_id, "arrived in time");
            self.ready_unclaimed.extend(expired);
        }
        self.forget_old(watermark);
        let final_before = day_of(watermark).min(self.open_from());
        self.final_before = self.final_before.max(final_before);
    }

    /// The earliest day with an open session.
    fn open_from(&self) -> i64 {
        self.open_days.keys().next().copied().unwrap_or(i64::MAX)
    }

    /// End of a batch input: buffered events can no longer meet their publish.
    pub fn drain_buffered(&mut self) -> Vec<UnclaimedEvent> {
        let mut out = std::mem::take(&mut self.ready_unclaimed);
        let mut ids: Vec<String> = self.orphans.keys().cloned().collect();
        ids.sort();
        self.orphan_expiry.clear();
        for image_id in ids {
            out.extend(self.give_up_on(&image_id, "in the input"));
        }
        out
    }

    /// Buffered events of `image_id` become `unknown_image` dead letters.
    fn give_up_on(&mut self, image_id: &str, when: &str) -> Vec<UnclaimedEvent> {
        let orphans = self.orphans.remove(image_id).unwrap_or_default();
        self.counts.buffered -= orphans.len() as u64;
        self.counts.unknown_image += orphans.len() as u64;
        orphans
            .into_iter()
            .map(|orphan| {
                let rejection = Rejection::new(
                    Reason::UnknownImage,
                    format!("no publish event for {image_id} {when}"),
                );
                let raw_len = orphan.raw.len() as u64;
                UnclaimedEvent {
                    kind: match orphan.is_remix {
                        true => EventKind::Remix,
                        false => EventKind::View,
                    },
                    letter: DeadLetter::new(&orphan.raw, raw_len, rejection, orphan.position),
                }
            })
            .collect()
    }

    fn close(&mut self, key: SessionKey) -> Option<ClosedSession> {
        let session = self.sessions.remove(&key)?;
        release_day(&mut self.open_days, session.day);
        let mut images: Vec<ClosedImage> = Vec::with_capacity(session.images.len());
        for key in &session.images {
            let Some((counts, open)) = self.take_open(key) else {
                continue;
            };
            let spam_remixes = open
                .remixers
                .iter()
                .filter(|user| {
                    let (views, remixes) = self.users.get(user).copied().unwrap_or_default();
                    self.spam.is_spam(views, remixes)
                })
                .count() as u32;
            images.push(ClosedImage {
                views: counts.views,
                remixes: open.remixers.len() as u32 - spam_remixes,
                spam_remixes,
                record: open.record,
            });
        }
        images.sort_by(|a, b| {
            (a.record.published_at, &a.record.image_id)
                .cmp(&(b.record.published_at, &b.record.image_id))
        });
        let forget_at = session.close_at + self.remember;
        let mut keys = Vec::with_capacity(images.len());
        for image in &images {
            let id = image_key(&image.record.image_id);
            self.closed_images
                .insert(id, image.record.published_at.as_micros());
            keys.push(id);
        }
        self.forget.push_back((forget_at, keys, key.clone()));
        self.closed_sessions.insert(key.clone());
        self.counts.closed_sessions += 1;
        Some(ClosedSession {
            creator_id: key.0,
            generation_id: key.1,
            images,
        })
    }

    /// Sessions close in watermark order, so `forget` is sorted by time already.
    fn forget_old(&mut self, watermark: i64) {
        while let Some((at, _, _)) = self.forget.front() {
            if *at > watermark {
                break;
            }
            if let Some((_, images, key)) = self.forget.pop_front() {
                for id in images {
                    self.closed_images.remove(&id);
                }
                self.closed_sessions.remove(&key);
            }
        }
    }
}
