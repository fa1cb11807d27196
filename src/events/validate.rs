//! The one place that decides what a valid event is.
//!
//! A record is parsed into a flat struct of optional fields first, so that a missing field, a
//! wrong type and an unknown kind each get their own precise reason instead of a generic serde
//! message, and then every field is checked against [`Limits`].

use std::borrow::Cow;

use serde::Deserialize;

use super::dead_letter::{Reason, Rejection};
use super::model::{Event, EventKind, Publish, Remix, SCHEMA_VERSION, View};
use super::raw::{RawEvent, Text};
use super::timestamp::{MICROS_PER_HOUR, Timestamp};

/// Bounds on what an event may contain. Every field has a documented default; a pipeline TOML
/// may override them under `[validation]`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Whole record, in bytes; larger records are rejected before parsing.
    pub max_payload_bytes: usize,
    /// Ids are 1..=max_id_len characters of `[A-Za-z0-9_.:-]`.
    pub max_id_len: usize,
    pub max_prompt_chars: usize,
    pub max_uri_len: usize,
    /// Earliest plausible event time (RFC 3339).
    pub min_ts: String,
    /// How far past the validator's clock an event time may be (clock skew between producers).
    pub max_future_skew_hours: f64,
    /// Follower counts beyond this are treated as corrupt.
    pub max_followers: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1 << 20,
            max_id_len: 128,
            max_prompt_chars: 2_000,
            max_uri_len: 2_048,
            min_ts: "2015-01-01T00:00:00Z".to_owned(),
            max_future_skew_hours: 24.0,
            max_followers: 10_000_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid validation limits: {0}")]
pub struct LimitsError(String);

/// Validates records against [`Limits`] with a fixed reference clock, so one run judges every
/// record by the same bounds.
#[derive(Debug, Clone)]
pub struct Validator {
    limits: Limits,
    min_ts: Timestamp,
    max_ts: Timestamp,
    fast_path: bool,
}

impl Validator {
    pub fn new(limits: Limits, now: Timestamp) -> Result<Self, LimitsError> {
        let min_ts = Timestamp::parse_rfc3339(&limits.min_ts)
            .map_err(|e| LimitsError(format!("min_ts: {e}")))?;
        if !limits.max_future_skew_hours.is_finite() || limits.max_future_skew_hours < 0.0 {
            return Err(LimitsError("max_future_skew_hours must be >= 0".into()));
        }
        let skew = (limits.max_future_skew_hours * MICROS_PER_HOUR as f64) as i64;
        Ok(Self {
            max_ts: now.plus_micros(skew),
            min_ts,
            limits,
            fast_path: true,
        })
    }

    /// Every record through serde_json, as before the fast path existed: `bench parse` uses
    /// it to measure what the fast path is worth in the same run.
    pub fn serde_only(mut self) -> Self {
        self.fast_path = false;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses and validates one record (one JSON line or one Kafka message payload).
    pub fn parse<'a>(&self, bytes: &'a [u8]) -> Result<Event<'a>, Rejection> {
        if bytes.len() > self.limits.max_payload_bytes {
            return Err(Rejection::new(
                Reason::PayloadTooLarge,
                format!(
                    "{} bytes, limit {}",
                    bytes.len(),
                    self.limits.max_payload_bytes
                ),
            ));
        }
        // Filled in place: RawEvent is a few hundred bytes, and moving it by value cost more
        // than scanning the record.
        let mut raw = RawEvent::default();
        if self.fast_path && super::scan::scan_into(bytes, &mut raw) {
            return self.check(&mut raw);
        }
        // serde_json validates UTF-8 in every string it keeps; a full pass up front would cost
        // ~3% of the hot path, so the bytes are checked only to name the reason of a failure.
        let mut raw: RawEvent<'a> =
            serde_json::from_slice(bytes).map_err(|e| match std::str::from_utf8(bytes) {
                Err(utf8) => Rejection::new(
                    Reason::InvalidUtf8,
                    format!("at byte {}", utf8.valid_up_to()),
                ),
                Ok(_) => classify_json_error(e),
            })?;
        self.check(&mut raw)
    }

    fn check<'a>(&self, raw: &mut RawEvent<'a>) -> Result<Event<'a>, Rejection> {
        let kind_name = required(raw.kind.take(), "kind")?;
        let kind = EventKind::from_name(&kind_name).ok_or_else(|| {
            Rejection::new(
                Reason::UnknownKind,
                format!("kind {:?}", truncate(&kind_name, 64)),
            )
        })?;
        match raw.v {
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(Rejection::new(
                    Reason::UnsupportedVersion,
                    format!("v {other}, expected {SCHEMA_VERSION}"),
                ));
            }
            None => return Err(missing("v")),
        }
        let event_id = self.id(raw.event_id.take(), "event_id")?;
        let ts = self.timestamp(raw.ts.take())?;
        let image_id = self.id(raw.image_id.take(), "image_id")?;
        Ok(match kind {
            EventKind::Publish => {
                let creator_followers = raw
                    .creator_followers
                    .ok_or_else(|| missing("creator_followers"))?;
                if creator_followers > self.limits.max_followers {
                    return Err(Rejection::new(
                        Reason::InvalidValue,
                        format!("creator_followers {creator_followers} is implausible"),
                    ));
                }
                Event::Publish(Box::new(Publish {
                    event_id,
                    ts,
                    image_id,
                    creator_id: self.id(raw.creator_id.take(), "creator_id")?,
                    generation_id: self.id(raw.generation_id.take(), "generation_id")?,
                    prompt: self.prompt(raw.prompt.take())?,
                    image_uri: self.uri(raw.image_uri.take())?,
                    model: self.id(raw.model.take(), "model")?,
                    creator_followers,
                }))
            }
            EventKind::View => Event::View(View {
                event_id,
                ts,
                image_id,
                viewer_id: self.id(raw.viewer_id.take(), "viewer_id")?,
            }),
            EventKind::Remix => {
                let remix_image_id = self.id(raw.remix_image_id.take(), "remix_image_id")?;
                if remix_image_id == image_id {
                    return Err(Rejection::new(
                        Reason::InvalidValue,
                        "an image cannot be a remix of itself",
                    ));
                }
                Event::Remix(Remix {
                    event_id,
                    ts,
                    image_id,
                    remixer_id: self.id(raw.remixer_id.take(), "remixer_id")?,
                    remix_image_id,
                })
            }
        })
    }

    fn id<'a>(&self, value: Option<Text<'a>>, field: &str) -> Result<Cow<'a, str>, Rejection> {
        let value = required(value, field)?;
        let ok_len = !value.is_empty() && value.len() <= self.limits.max_id_len;
        let ok_chars = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if ok_len && ok_chars {
            Ok(value)
        } else {
            Err(Rejection::new(
                Reason::InvalidId,
                format!(
                    "{field} {:?}: 1..={} of [A-Za-z0-9_.:-]",
                    truncate(&value, 64),
                    self.limits.max_id_len
                ),
            ))
        }
    }

    fn timestamp(&self, value: Option<Text<'_>>) -> Result<Timestamp, Rejection> {
        let text = required(value, "ts")?;
        let ts = Timestamp::parse_rfc3339(&text).map_err(|e| {
            Rejection::new(
                Reason::InvalidTimestamp,
                format!("ts {:?}: {e}", truncate(&text, 64)),
            )
        })?;
        if ts < self.min_ts || ts > self.max_ts {
            return Err(Rejection::new(
                Reason::TimestampOutOfRange,
                format!("ts {text} outside [{}, {}]", self.min_ts, self.max_ts),
            ));
        }
        Ok(ts)
    }

    fn prompt<'a>(&self, value: Option<Text<'a>>) -> Result<Cow<'a, str>, Rejection> {
        let prompt = required(value, "prompt")?;
        if prompt.trim().is_empty() {
            return Err(Rejection::new(Reason::InvalidValue, "prompt is empty"));
        }
        // Byte length bounds the char count from above: count chars only when it could matter.
        if prompt.len() > self.limits.max_prompt_chars
            && prompt.chars().count() > self.limits.max_prompt_chars
        {
            return Err(Rejection::new(
                Reason::PromptTooLong,
                format!("over {} characters", self.limits.max_prompt_chars),
            ));
        }
        if prompt
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Rejection::new(
                Reason::InvalidValue,
                "prompt contains control characters",
            ));
        }
        Ok(prompt)
    }

    fn uri<'a>(&self, value: Option<Text<'a>>) -> Result<Cow<'a, str>, Rejection> {
        let uri = required(value, "image_uri")?;
        if uri.len() > self.limits.max_uri_len {
            return Err(Rejection::new(
                Reason::UnsafeUri,
                format!("image_uri longer than {} bytes", self.limits.max_uri_len),
            ));
        }
        match unsafe_uri_reason(&uri) {
            None => Ok(uri),
            Some(why) => Err(Rejection::new(
                Reason::UnsafeUri,
                format!("image_uri {:?}: {why}", truncate(&uri, 64)),
            )),
        }
    }
}

/// Image URIs are object-store keys relative to the images root, or remote URLs. Anything that
/// could reach outside the root when joined to a local folder is refused.
fn unsafe_uri_reason(uri: &str) -> Option<&'static str> {
    if uri.is_empty() {
        return Some("empty");
    }
    if uri.chars().any(|c| c.is_control()) {
        return Some("control characters");
    }
    if uri.contains('\\') {
        return Some("backslash");
    }
    let lower = uri.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return Some("percent-encoded dot, slash or NUL");
    }
    let path = match lower.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "s3" | "gs" | "az" | "http" | "https") {
                return Some("scheme not allowed (s3, gs, az, http, https)");
            }
            match rest.split_once('/') {
                Some((host, path)) if !host.is_empty() => path,
                _ => return Some("URL without host and path"),
            }
        }
        None => {
            if uri.starts_with('/') || uri.starts_with('~') {
                return Some("absolute path");
            }
            let bytes = uri.as_bytes();
            if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
                return Some("drive letter");
            }
            uri
        }
    };
    if path.split('/').any(|segment| segment == "..") {
        return Some("parent-directory segment");
    }
    None
}

fn required<'a>(value: Option<Text<'a>>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    value.map(|t| t.0).ok_or_else(|| missing(field))
}

fn missing(field: &str) -> Rejection {
    Rejection::new(Reason::MissingField, format!("{field} is required"))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn classify_json_error(e: serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let reason = match e.classify() {
        Category::Data => Reason::WrongType,
        Category::Io | Category::Syntax | Category::Eof => Reason::MalformedJson,
    };
    Rejection::new(reason, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator() -> Validator {
        let now = Timestamp::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        Validator::new(Limits::default(), now).unwrap()
    }

    fn reason(line: &str) -> Option<Reason> {
        validator().parse(line.as_bytes()).err().map(|r| r.reason)
    }

    const VIEW: &str = r#"{"v":1,"kind":"view","event_id":"e1","ts":"2026-01-01T00:00:00Z","image_id":"i1","viewer_id":"u1"}"#;

    #[test]
    fn accepts_each_kind_and_borrows_plain_strings() {
        let event = validator().parse(VIEW.as_bytes()).unwrap();
        match &event {
            Event::View(v) => assert!(matches!(v.viewer_id, Cow::Borrowed("u1"))),
            other => panic!("unexpected {other:?}"),
        }
        let publish = r#"{"v":1,"kind":"publish","event_id":"e2","ts":"2026-01-01T00:00:00Z","image_id":"i1","creator_id":"c1","generation_id":"g1","prompt":"a \"quoted\" fox","image_uri":"images/i1.png","model":"sdxl-1.0","creator_followers":12}"#;
        let Event::Publish(p) = validator().parse(publish.as_bytes()).unwrap() else {
            panic!("not a publish")
        };
        assert_eq!(p.prompt, "a \"quoted\" fox");
        let remix = r#"{"v":1,"kind":"remix","event_id":"e3","ts":"2026-01-01T00:00:00Z","image_id":"i1","remixer_id":"u2","remix_image_id":"i9"}"#;
        assert_eq!(
            validator().parse(remix.as_bytes()).unwrap().kind(),
            EventKind::Remix
        );
    }

    #[test]
    fn round_trips_through_the_writer() {
        let event = validator().parse(VIEW.as_bytes()).unwrap();
        let mut line = Vec::new();
        event.write_json_line(&mut line).unwrap();
        assert_eq!(validator().parse(&line).unwrap(), event);
    }

    #[test]
    fn names_the_reason_for_each_defect() {
        let cases = [
            (r#"{"v":1,"kind":"view""#, Reason::MalformedJson),
            (r#"{"v":"1","kind":"view"}"#, Reason::WrongType),
            (
                r#"{"v":1,"kind":"like","event_id":"e1"}"#,
                Reason::UnknownKind,
            ),
            (r#"{"v":2,"kind":"view"}"#, Reason::UnsupportedVersion),
            (
                r#"{"v":1,"kind":"view","event_id":"e1","ts":"2026-01-01T00:00:00Z","image_id":"i1"}"#,
                Reason::MissingField,
            ),
            (
                r#"{"v":1,"kind":"view","event_id":"e 1","ts":"2026-01-01T00:00:00Z","image_id":"i1","viewer_id":"u1"}"#,
                Reason::InvalidId,
            ),
            (
                r#"{"v":1,"kind":"view","event_id":"e1","ts":"01/01/2026","image_id":"i1","viewer_id":"u1"}"#,
                Reason::InvalidTimestamp,
            ),
            (
                r#"{"v":1,"kind":"view","event_id":"e1","ts":"1970-01-01T00:00:00Z","image_id":"i1","viewer_id":"u1"}"#,
                Reason::TimestampOutOfRange,
            ),
            (
                r#"{"v":1,"kind":"view","event_id":"e1","ts":"2999-01-01T00:00:00Z","image_id":"i1","viewer_id":"u1"}"#,
                Reason::TimestampOutOfRange,
            ),
            (
                r#"{"v":1,"kind":"remix","event_id":"e1","ts":"2026-01-01T00:00:00Z","image_id":"i1","remixer_id":"u1","remix_image_id":"i1"}"#,
                Reason::InvalidValue,
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(reason(line), Some(expected), "{line}");
        }
        assert_eq!(
            validator().parse(b"{\"v\":1,\xff}").unwrap_err().reason,
            Reason::InvalidUtf8
        );
    }

    #[test]
    fn refuses_uris_that_escape_the_images_root() {
        for bad in [
            "../etc/passwd",
            "images/../../x.png",
            "/etc/passwd",
            "file:///etc/passwd",
            "C:\\x.png",
            "images/%2e%2e/x.png",
            "https://host/../x",
            "~/x.png",
        ] {
            assert!(unsafe_uri_reason(bad).is_some(), "{bad}");
        }
        for good in [
            "images/i1.png",
            "s3://bucket/images/i1.png",
            "https://cdn.example/i1.png",
            "a..b.png",
        ] {
            assert_eq!(unsafe_uri_reason(good), None, "{good}");
        }
    }
}
