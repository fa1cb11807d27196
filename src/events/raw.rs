//! A record as read, before any check: every field optional, strings borrowed from the input
//! where they can be. Filled by the fast scanner or by serde, judged by the validator.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

/// Every field any kind may carry; which are required depends on `kind`.
#[derive(Deserialize, Default)]
pub(super) struct RawEvent<'a> {
    pub(super) v: Option<u32>,
    #[serde(borrow)]
    pub(super) kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) event_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) ts: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) image_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) creator_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) generation_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) prompt: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) image_uri: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) model: Option<Text<'a>>,
    pub(super) creator_followers: Option<u64>,
    #[serde(borrow)]
    pub(super) viewer_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) remixer_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) remix_image_id: Option<Text<'a>>,
}

#[cfg(test)]
impl RawEvent<'_> {
    /// Every field, for comparing two parsers.
    pub(super) fn describe(&self) -> String {
        let t = |v: &Option<Text<'_>>| v.as_ref().map(|t| t.0.to_string());
        format!(
            "{:?}",
            (
                self.v,
                t(&self.kind),
                t(&self.event_id),
                t(&self.ts),
                t(&self.image_id),
                t(&self.creator_id),
                t(&self.generation_id),
                (t(&self.prompt), t(&self.image_uri), t(&self.model)),
                self.creator_followers,
                t(&self.viewer_id),
                t(&self.remixer_id),
                t(&self.remix_image_id),
            )
        )
    }
}

/// A JSON string that borrows from the input unless it contained escapes. (serde's own
/// `Cow<str>` impl always allocates once wrapped in `Option`.)
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}
