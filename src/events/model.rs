//! The three event kinds of the community feed, as validated values.
//!
//! Strings borrow from the input line where JSON needs no unescaping: the hot path then copies
//! nothing but the fields a consumer decides to keep.

use std::borrow::Cow;

use serde::Serialize;

use super::Timestamp;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Publish,
    View,
    Remix,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [EventKind::Publish, EventKind::View, EventKind::Remix];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Publish => "publish",
            EventKind::View => "view",
            EventKind::Remix => "remix",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "publish" => Some(EventKind::Publish),
            "view" => Some(EventKind::View),
            "remix" => Some(EventKind::Remix),
            _ => None,
        }
    }
}

/// A creator publishes one image of a generation session (images made from one prompt at once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Publish<'a> {
    pub event_id: Cow<'a, str>,
    pub ts: Timestamp,
    pub image_id: Cow<'a, str>,
    pub creator_id: Cow<'a, str>,
    pub generation_id: Cow<'a, str>,
    pub prompt: Cow<'a, str>,
    pub image_uri: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub creator_followers: u64,
}

impl Publish<'_> {
    /// The same event, owning its text (to outlive the buffer it was parsed from).
    pub fn into_owned(self) -> Publish<'static> {
        Publish {
            event_id: self.event_id.into_owned().into(),
            ts: self.ts,
            image_id: self.image_id.into_owned().into(),
            creator_id: self.creator_id.into_owned().into(),
            generation_id: self.generation_id.into_owned().into(),
            prompt: self.prompt.into_owned().into(),
            image_uri: self.image_uri.into_owned().into(),
            model: self.model.into_owned().into(),
            creator_followers: self.creator_followers,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View<'a> {
    pub event_id: Cow<'a, str>,
    pub ts: Timestamp,
    pub image_id: Cow<'a, str>,
    pub viewer_id: Cow<'a, str>,
}

/// `image_id` is the source being remixed; `remix_image_id` is the new image it produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remix<'a> {
    pub event_id: Cow<'a, str>,
    pub ts: Timestamp,
    pub image_id: Cow<'a, str>,
    pub remixer_id: Cow<'a, str>,
    pub remix_image_id: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// Boxed: a publish is several times larger than a view and ~2% of events, and every
    /// event is moved a few times on the hot path.
    Publish(Box<Publish<'a>>),
    View(View<'a>),
    Remix(Remix<'a>),
}

impl<'a> Event<'a> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Publish(_) => EventKind::Publish,
            Event::View(_) => EventKind::View,
            Event::Remix(_) => EventKind::Remix,
        }
    }

    pub fn event_id(&self) -> &str {
        match self {
            Event::Publish(e) => &e.event_id,
            Event::View(e) => &e.event_id,
            Event::Remix(e) => &e.event_id,
        }
    }

    pub fn ts(&self) -> Timestamp {
        match self {
            Event::Publish(e) => e.ts,
            Event::View(e) => e.ts,
            Event::Remix(e) => e.ts,
        }
    }

    /// The image the event is about (for a remix, the source image).
    pub fn image_id(&self) -> &str {
        match self {
            Event::Publish(e) => &e.image_id,
            Event::View(e) => &e.image_id,
            Event::Remix(e) => &e.image_id,
        }
    }

    /// Appends the event as one JSON line (`"v"` and `"kind"` first, then the fields, then `\n`).
    pub fn write_json_line(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        #[derive(Serialize)]
        struct Wire<'e, T: Serialize> {
            v: u32,
            kind: &'static str,
            #[serde(flatten)]
            body: &'e T,
        }
        let kind = self.kind().as_str();
        let v = SCHEMA_VERSION;
        match self {
            Event::Publish(body) => serde_json::to_writer(&mut *out, &Wire { v, kind, body })?,
            Event::View(body) => serde_json::to_writer(&mut *out, &Wire { v, kind, body })?,
            Event::Remix(body) => serde_json::to_writer(&mut *out, &Wire { v, kind, body })?,
        }
        out.push(b'\n');
        Ok(())
    }
}
