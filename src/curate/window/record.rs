//! What the windows hold and what leaves them: open images (their counts apart from their
//! records), closed sessions with their images' final in-window counts, and the buffered events
//! no publish claimed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::events::{DeadLetter, EventKind, Publish, Timestamp};

/// What curation keeps of a publish event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image_id: String,
    pub creator_id: String,
    pub generation_id: String,
    pub prompt: Arc<str>,
    pub image_uri: String,
    pub model: String,
    pub creator_followers: u64,
    pub published_at: Timestamp,
    pub publish_event_id: String,
}

impl ImageRecord {
    pub fn from_publish(p: &Publish<'_>) -> Self {
        Self {
            image_id: p.image_id.to_string(),
            creator_id: p.creator_id.to_string(),
            generation_id: p.generation_id.to_string(),
            prompt: Arc::from(p.prompt.as_ref()),
            image_uri: p.image_uri.to_string(),
            model: p.model.to_string(),
            creator_followers: p.creator_followers,
            published_at: p.ts,
            publish_event_id: p.event_id.to_string(),
        }
    }
}

/// An image whose window has closed, with its final in-window counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedImage {
    pub record: ImageRecord,
    pub views: u32,
    /// Remixes by users not judged spam remixers when the session closed.
    pub remixes: u32,
    pub spam_remixes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedSession {
    pub creator_id: String,
    pub generation_id: String,
    /// Ordered by publish time, then image id.
    pub images: Vec<ClosedImage>,
}

/// A buffered view or remix whose image was never published in time: a dead letter, and which
/// kind of valid event it was, so that the intake's counts stay balanced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnclaimedEvent {
    pub kind: EventKind,
    pub letter: DeadLetter,
}

/// What a view of an open image touches: 16 bytes beside its 16-byte key. The open-image
/// table is probed at random once per event; with whole records in its buckets (~250 bytes)
/// it spanned hundreds of megabytes and nearly every probe missed the cache more than once.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct OpenCounts {
    pub published: i64,
    pub views: u32,
    /// Where the image's record and remixers are in `open_slots`.
    pub slot: u32,
}

/// The rest of an open image, touched at its publish, its remixes and its close.
#[derive(Serialize, Deserialize)]
pub struct OpenImage {
    pub record: ImageRecord,
    pub remixers: Vec<u64>,
}
