//! Observation windows: who viewed and remixed each image inside
//! `[published_at, published_at + window]`, and when a generation session can be closed.
//!
//! Event time drives everything. The watermark is the newest event time minus the allowed
//! lateness; a session closes once its last image's window (plus the grace for further images of
//! the session) lies behind the watermark. Only counts inside the window matter, so an image's
//! age at the end of the stream no longer decides how many remixes it has. State is bounded by
//! open windows: closed images are remembered only long enough to recognise late events.

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use crate::events::dedup::PrehashedHasher;
use crate::events::timestamp::MICROS_PER_HOUR;
use crate::events::{Event, Publish, Reason, Rejection, SourcePosition};
use crate::hashing::{FastMap, fast_map};

use super::recall::day_of;

use super::config::{CurateConfig, SpamRule};

mod record;
pub use record::{ClosedImage, ClosedSession, ImageRecord, UnclaimedEvent};
use record::{OpenCounts, OpenImage};

/// What happened to one valid event.
#[derive(Debug, PartialEq)]
pub enum Observation {
    /// Counted in an open window (or opened one, for a publish).
    Counted,
    /// Valid, but outside its image's window: it changes no pair.
    OutsideWindow,
    /// Its image is not known yet; held until the image's publish arrives or cannot any more.
    Buffered,
    /// Refused (late, image published twice…): the caller dead-letters it.
    Rejected(Rejection),
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WindowCounts {
    pub counted: u64,
    pub outside_window: u64,
    pub buffered: u64,
    pub late: u64,
    pub unknown_image: u64,
    pub open_images: u64,
    pub open_sessions: u64,
    pub closed_sessions: u64,
}

#[derive(Serialize, Deserialize)]
struct OpenSession {
    images: Vec<u128>,
    close_at: i64,
    /// UTC day of its earliest publish: the `dt=` of its triplets.
    day: i64,
}

type SessionKey = (String, String);

#[derive(Serialize, Deserialize)]
struct Orphan {
    ts: i64,
    is_remix: bool,
    user: u64,
    raw: Vec<u8>,
    position: SourcePosition,
}

#[derive(Serialize, Deserialize)]
pub struct Windows {
    window: i64,
    lateness: i64,
    grace: i64,
    spam: SpamRule,
    newest: i64,
    /// Keyed by a seeded 128-bit hash of the image id: a lookup touches no heap string (the
    /// comparison of string keys was an eighth of the hot path, all cache misses), and 128
    /// bits leave collisions out of reach, crafted ids included.
    open_images: HashMap<u128, OpenCounts, BuildHasherDefault<PrehashedHasher>>,
    open_slots: Vec<Option<OpenImage>>,
    free_slots: Vec<u32>,
    key_seed: u64,
    sessions: FastMap<SessionKey, OpenSession>,
    /// Candidate closing times; stale entries (the session grew since) are skipped.
    closing: BinaryHeap<Reverse<(i64, SessionKey)>>,
    /// Closed images, kept until no event could still fall inside their window: published_at.
    /// Closed images by xxh3 of their id → published_at, remembered `remember_closed_hours`
    /// so that views still arriving for them (feeds show images for days) are recognised as
    /// outside their window rather than mistaken for events of an unknown image.
    closed_images: HashMap<u64, i64, BuildHasherDefault<PrehashedHasher>>,
    closed_sessions: HashSet<SessionKey>,
    forget: VecDeque<(i64, Vec<u64>, SessionKey)>,
    remember: i64,
    /// Keyed by an xxh3 of the user id already.
    users: HashMap<u64, (u32, u32), BuildHasherDefault<PrehashedHasher>>,
    orphans: HashMap<String, Vec<Orphan>>,
    orphan_expiry: BinaryHeap<Reverse<(i64, String)>>,
    /// Open sessions by `day`, to know which days can receive no further triplets.
    open_days: BTreeMap<i64, u32>,
    /// Every session of a day before this one has closed and no new one may open.
    final_before: i64,
    /// Closed and given up on since the caller last collected them (`advance`).
    ready_closed: Vec<ClosedSession>,
    ready_unclaimed: Vec<UnclaimedEvent>,
    counts: WindowCounts,
}

fn hours(h: f64) -> i64 {
    (h * MICROS_PER_HOUR as f64) as i64
}

fn open_key(seed: u64, image_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(image_id.as_bytes(), seed)
}

/// A seed nobody outside can guess, kept with the state so that a restored snapshot finds its
/// open images again.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x0be7_u64)
}

fn image_key(image_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(image_id.as_bytes())
}

pub fn user_key(user_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_id.as_bytes())
}

impl Windows {
    pub fn new(config: &CurateConfig) -> Self {
        Self {
            window: hours(config.window_hours),
            lateness: hours(config.allowed_lateness_hours),
            grace: hours(config.session_grace_hours),
            spam: config.spam.clone(),
            newest: i64::MIN,
            open_images: HashMap::default(),
            open_slots: Vec::new(),
            free_slots: Vec::new(),
            key_seed: random_seed(),
            sessions: fast_map(),
            closing: BinaryHeap::new(),
            closed_images: HashMap::default(),
            closed_sessions: HashSet::new(),
            forget: VecDeque::new(),
            remember: hours(config.remember_closed_hours),
            users: HashMap::default(),
            orphans: HashMap::new(),
            orphan_expiry: BinaryHeap::new(),
            open_days: BTreeMap::new(),
            final_before: i64::MIN,
            ready_closed: Vec::new(),
            ready_unclaimed: Vec::new(),
            counts: WindowCounts::default(),
        }
    }

    /// Days (see `recall::day_of`) before this one are final: all their sessions have closed,
    /// and a publish dated on them is refused as late. Never decreases.
    pub fn final_before(&self) -> i64 {
        self.final_before
    }

    pub fn watermark(&self) -> i64 {
        self.newest.saturating_sub(self.lateness)
    }

    pub fn counts(&self) -> WindowCounts {
        WindowCounts {
            open_images: self.open_images.len() as u64,
            open_sessions: self.sessions.len() as u64,
            ..self.counts.clone()
        }
    }

    /// Folds one valid event in. `raw` and `position` are only used if the event must wait
    /// for its image's publish.
    pub fn observe(
        &mut self,
        event: &Event<'_>,
        raw: &[u8],
        position: impl FnOnce() -> SourcePosition,
    ) -> Observation {
        let ts = event.ts().as_micros();
        if ts > self.newest {
            self.newest = ts;
            self.close_due();
        }
        let observation = match event {
            Event::Publish(p) => self.publish(p),
            Event::View(v) => {
                let user = user_key(&v.viewer_id);
                self.users.entry(user).or_default().0 += 1;
                self.interaction(&v.image_id, ts, false, user, raw, position)
            }
            Event::Remix(r) => {
                let user = user_key(&r.remixer_id);
                self.users.entry(user).or_default().1 += 1;
                self.interaction(&r.image_id, ts, true, user, raw, position)
            }
        };
        match &observation {
            Observation::Counted => self.counts.counted += 1,
            Observation::OutsideWindow => self.counts.outside_window += 1,
            Observation::Buffered => self.counts.buffered += 1,
            Observation::Rejected(r) if r.reason == Reason::Late => self.counts.late += 1,
            Observation::Rejected(_) => {}
        }
        observation
    }

    fn publish(&mut self, p: &Publish<'_>) -> Observation {
        let image_id = p.image_id.as_ref();
        let open_key = open_key(self.key_seed, image_id);
        if self.open_images.contains_key(&open_key)
            || self.closed_images.contains_key(&image_key(image_id))
        {
            return Observation::Rejected(Rejection::new(
                Reason::InvalidValue,
                format!("image {image_id} was already published"),
            ));
        }
        let key = (p.creator_id.to_string(), p.generation_id.to_string());
        if self.closed_sessions.contains(&key) {
            return Observation::Rejected(Rejection::new(
                Reason::Late,
                format!("generation session {} of {} already closed", key.1, key.0),
            ));
        }
        let record = ImageRecord::from_publish(p);
        let published = record.published_at.as_micros();
        let day = day_of(published);
        if day < self.final_before {
            return Observation::Rejected(Rejection::new(
                Reason::Late,
                format!(
                    "published on {}, whose triplets were already written",
                    record.published_at.date_string()
                ),
            ));
        }
        let close_at = published + self.grace + self.window;
        let session = self.sessions.entry(key.clone()).or_insert_with(|| {
            *self.open_days.entry(day).or_default() += 1;
            OpenSession {
                images: Vec::new(),
                close_at,
                day,
            }
        });
        if day < session.day {
            // An earlier image arrived after a later one: the session moves to its day.
            release_day(&mut self.open_days, session.day);
            *self.open_days.entry(day).or_default() += 1;
            session.day = day;
        }
        session.images.push(open_key);
        session.close_at = session.close_at.max(close_at);
        let close_at = session.close_at;
        self.closing.push(Reverse((close_at, key)));
        let mut counts = OpenCounts {
            published,
            views: 0,
            slot: 0,
        };
        let mut remixers = Vec::new();
        if let Some(orphans) = self.orphans.remove(image_id) {
            for orphan in orphans {
                self.counts.buffered -= 1;
                if !in_window(orphan.ts, published, self.window) {
                    self.counts.outside_window += 1;
                    continue;
                }
                match orphan.is_remix {
                    true => remixers.push(orphan.user),
                    false => counts.views += 1,
                }
                self.counts.counted += 1;
            }
        }
        counts.slot = self.store_open(OpenImage { record, remixers });
        self.open_images.insert(open_key, counts);
        Observation::Counted
    }

    fn interaction(
        &mut self,
        image_id: &str,
        ts: i64,
        is_remix: bool,
        user: u64,
        raw: &[u8],
        position: impl FnOnce() -> SourcePosition,
    ) -> Observation {
        if let Some(open) = self.open_images.get_mut(&open_key(self.key_seed, image_id)) {
            if !in_window(ts, open.published, self.window) {
                return Observation::OutsideWindow;
            }
            if !is_remix {
                open.views += 1;
            } else if let Some(Some(image)) = self.open_slots.get_mut(open.slot as usize) {
                image.remixers.push(user);
            }
            return Observation::Counted;
        }
        if let Some(&published) = self.closed_images.get(&image_key(image_id)) {
            return if in_window(ts, published, self.window) {
                Observation::Rejected(Rejection::new(
                    Reason::Late,
                    format!("{image_id}'s window closed before this event arrived"),
                ))
            } else {
                Observation::OutsideWindow
            };
        }
        // The publish may still come (it can be delivered late); it cannot be later than `ts`,
        // so once `ts + window + grace` is behind the watermark no window could take the event.
        let expires = ts + self.window + self.grace;
        self.orphan_expiry
            .push(Reverse((expires, image_id.to_owned())));
        self.orphans
            .entry(image_id.to_owned())
            .or_default()
            .push(Orphan {
                ts,
                is_remix,
                user,
                raw: raw[..raw
                    .len()
                    .min(crate::events::dead_letter::MAX_KEPT_RAW_BYTES)]
                    .to_vec(),
                position: position(),
            });
        Observation::Buffered
    }
}

fn release_day(open_days: &mut BTreeMap<i64, u32>, day: i64) {
    if let Some(count) = open_days.get_mut(&day) {
        *count -= 1;
        if *count == 0 {
            open_days.remove(&day);
        }
    }
}

fn in_window(ts: i64, published: i64, window: i64) -> bool {
    ts >= published && ts <= published + window
}

mod closing;
mod open;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Remix, Timestamp, View};

    const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    fn config() -> CurateConfig {
        CurateConfig {
            window_hours: 10.0,
            allowed_lateness_hours: 1.0,
            session_grace_hours: 2.0,
            ..CurateConfig::default()
        }
    }

    fn at(h: f64) -> Timestamp {
        Timestamp::from_micros(T0 + hours(h))
    }

    fn publish(image: &'static str, generation: &'static str, h: f64) -> Event<'static> {
        Event::Publish(Box::new(Publish {
            event_id: format!("p-{image}").into(),
            ts: at(h),
            image_id: image.into(),
            creator_id: "c1".into(),
            generation_id: generation.into(),
            prompt: "a fox".into(),
            image_uri: format!("{image}.png").into(),
            model: "m".into(),
            creator_followers: 3,
        }))
    }

    fn view(image: &'static str, user: &'static str, h: f64) -> Event<'static> {
        Event::View(View {
            event_id: "v".into(),
            ts: at(h),
            image_id: image.into(),
            viewer_id: user.into(),
        })
    }

    fn remix(image: &'static str, user: &'static str, h: f64) -> Event<'static> {
        Event::Remix(Remix {
            event_id: "r".into(),
            ts: at(h),
            image_id: image.into(),
            remixer_id: user.into(),
            remix_image_id: "x".into(),
        })
    }

    fn pos() -> SourcePosition {
        SourcePosition::File {
            path: "t".into(),
            line: 1,
        }
    }

    fn observe(w: &mut Windows, e: Event<'static>) -> Observation {
        w.observe(&e, b"{}", pos)
    }

    #[test]
    fn counts_only_inside_the_window_edges_included() {
        let mut w = Windows::new(&config());
        assert_eq!(
            observe(&mut w, publish("i1", "g1", 0.0)),
            Observation::Counted
        );
        assert_eq!(observe(&mut w, view("i1", "u1", 0.0)), Observation::Counted);
        assert_eq!(
            observe(&mut w, view("i1", "u2", 10.0)),
            Observation::Counted
        );
        assert_eq!(
            observe(&mut w, view("i1", "u3", 10.001)),
            Observation::OutsideWindow
        );
        // Nothing closes before window + grace + lateness have passed in event time.
        observe(&mut w, view("i1", "u4", 12.9));
        assert!(w.advance().0.is_empty());
        observe(&mut w, view("i1", "u5", 13.0));
        let (closed, _) = w.advance();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].images[0].views, 2);
    }

    #[test]
    fn late_events_for_a_closed_window_are_refused_as_late() {
        let mut w = Windows::new(&config());
        observe(&mut w, publish("i1", "g1", 0.0));
        observe(&mut w, view("i9", "u1", 20.0));
        assert_eq!(w.advance().0.len(), 1);
        match observe(&mut w, view("i1", "u2", 5.0)) {
            Observation::Rejected(r) => assert_eq!(r.reason, Reason::Late),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            observe(&mut w, view("i1", "u2", 15.0)),
            Observation::OutsideWindow
        );
        match observe(&mut w, publish("i2", "g1", 1.0)) {
            Observation::Rejected(r) => assert_eq!(r.reason, Reason::Late, "session closed"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_before_their_publish_wait_for_it_or_expire() {
        let mut w = Windows::new(&config());
        assert_eq!(
            observe(&mut w, view("i1", "u1", 1.0)),
            Observation::Buffered
        );
        assert_eq!(
            observe(&mut w, view("i2", "u1", 1.0)),
            Observation::Buffered
        );
        observe(&mut w, publish("i1", "g1", 0.5));
        observe(&mut w, view("i3", "u1", 30.0));
        let (closed, expired) = w.advance();
        assert_eq!(
            closed[0].images[0].views, 1,
            "the buffered view joined its window"
        );
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].letter.reason, Reason::UnknownImage);
        assert_eq!(expired[0].kind, crate::events::EventKind::View);
        assert_eq!(w.counts().buffered, 1, "i3's own view still waits");
        assert_eq!(w.drain_buffered().len(), 1);
    }

    #[test]
    fn spam_remixers_do_not_count_as_remixes() {
        let mut w = Windows::new(&config());
        observe(&mut w, publish("i1", "g1", 0.0));
        for i in 0..10 {
            observe(&mut w, view("i1", "spammer", 0.1 * f64::from(i)));
            observe(&mut w, remix("i1", "spammer", 0.1 * f64::from(i)));
        }
        observe(&mut w, view("i1", "fan", 1.0));
        observe(&mut w, remix("i1", "fan", 1.1));
        observe(&mut w, view("i9", "x", 40.0));
        let (closed, _) = w.advance();
        let image = &closed[0].images[0];
        assert_eq!(
            (image.views, image.remixes, image.spam_remixes),
            (11, 1, 10)
        );
    }

    #[test]
    fn views_long_after_the_window_are_outside_it_not_unknown() {
        let mut w = Windows::new(&config());
        observe(&mut w, publish("i1", "g1", 0.0));
        observe(&mut w, view("i9", "x", 30.0));
        assert_eq!(w.advance().0.len(), 1);
        // Feeds keep showing images for days; such views are not orphans.
        observe(&mut w, view("i8", "x", 40.0));
        w.advance();
        assert_eq!(
            observe(&mut w, view("i1", "u1", 40.0)),
            Observation::OutsideWindow
        );
    }

    #[test]
    fn a_second_publish_of_one_image_is_refused() {
        let mut w = Windows::new(&config());
        observe(&mut w, publish("i1", "g1", 0.0));
        assert!(matches!(
            observe(&mut w, publish("i1", "g2", 0.1)),
            Observation::Rejected(_)
        ));
    }

    #[test]
    fn a_day_is_final_once_its_sessions_closed_and_the_watermark_left_it() {
        let mut w = Windows::new(&config());
        observe(&mut w, publish("i1", "g1", 20.0));
        observe(&mut w, view("i1", "u1", 30.0));
        w.advance();
        assert_eq!(
            w.final_before(),
            day_of(T0),
            "day 0's session is still open"
        );
        observe(&mut w, publish("i2", "g2", 23.5));
        observe(&mut w, view("i9", "u1", 40.0));
        let (closed, _) = w.advance();
        assert_eq!(closed.len(), 2);
        assert_eq!(w.final_before(), day_of(T0) + 1);
        match observe(&mut w, publish("i3", "g3", 23.9)) {
            Observation::Rejected(r) => assert_eq!(r.reason, Reason::Late, "{}", r.detail),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            observe(&mut w, publish("i4", "g4", 24.5)),
            Observation::Counted
        );
    }
}
