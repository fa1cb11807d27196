//! A fast path for the records producers actually write: one flat JSON object of plain strings
//! (no escapes) and unsigned integers. It returns `None` for anything else — escapes, nesting,
//! `null`, booleans, floats, duplicate keys, a wrong type, trailing bytes — and the caller then
//! parses with serde_json, which stays the single authority on what JSON means and on the
//! reason a record is rejected. Whatever this accepts, serde would have read to the same fields
//! (`tests::agrees_with_serde_on_every_line_it_accepts` checks it on real and mutated records).

use std::borrow::Cow;

use super::raw::{RawEvent, Text};

enum Value<'a> {
    Str(&'a str),
    Uint(u64),
}

struct Scanner<'a> {
    bytes: &'a [u8],
    /// The same record as text: validated once per record rather than once per string.
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// A string without escapes or control characters; `at` is past the opening quote.
    fn plain_string(&mut self) -> Option<&'a str> {
        let rest = &self.bytes[self.at..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' {
            return None;
        }
        if rest[..end].iter().any(|&b| b < 0x20) {
            return None;
        }
        // Quotes are ASCII, so both ends are character boundaries of the validated text.
        let text = self.text.get(self.at..self.at + end)?;
        self.at += end + 1;
        Some(text)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        self.skip_ws();
        match *self.bytes.get(self.at)? {
            b'"' => {
                self.at += 1;
                self.plain_string().map(Value::Str)
            }
            b'0'..=b'9' => {
                let start = self.at;
                let mut n: u64 = 0;
                while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.at) {
                    n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    self.at += 1;
                }
                // JSON has no leading zeros; fractions and exponents are serde's business.
                let digits = self.at - start;
                if (digits > 1 && self.bytes[start] == b'0')
                    || matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'))
                {
                    return None;
                }
                Some(Value::Uint(n))
            }
            _ => None,
        }
    }
}

fn set_text<'a>(slot: &mut Option<Text<'a>>, value: Value<'a>) -> Option<()> {
    match (slot.is_some(), value) {
        (false, Value::Str(s)) => {
            *slot = Some(Text(Cow::Borrowed(s)));
            Some(())
        }
        _ => None,
    }
}

fn set_uint<T: TryFrom<u64>>(slot: &mut Option<T>, value: Value<'_>) -> Option<()> {
    match (slot.is_some(), value) {
        (false, Value::Uint(n)) => {
            *slot = Some(T::try_from(n).ok()?);
            Some(())
        }
        _ => None,
    }
}

/// The fields of a plain record, or `None` when serde must decide.
#[cfg(test)]
pub(super) fn scan(bytes: &[u8]) -> Option<RawEvent<'_>> {
    let mut raw = RawEvent::default();
    scan_into(bytes, &mut raw).then_some(raw)
}

/// Fills `raw` (which must be empty) from a plain record; `false` when serde must decide, and
/// `raw` is then to be discarded.
pub(super) fn scan_into<'a>(bytes: &'a [u8], raw: &mut RawEvent<'a>) -> bool {
    scan_fields(bytes, raw).is_some()
}

fn scan_fields<'a>(bytes: &'a [u8], raw: &mut RawEvent<'a>) -> Option<()> {
    // JSON is UTF-8 throughout; a record that is not is serde's to reject.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner { bytes, text, at: 0 };
    s.eat(b'{')?;
    s.skip_ws();
    if s.bytes.get(s.at) == Some(&b'}') {
        s.at += 1;
    } else {
        loop {
            s.eat(b'"')?;
            let key = s.plain_string()?;
            s.eat(b':')?;
            let value = s.value()?;
            match key {
                "v" => set_uint(&mut raw.v, value)?,
                "kind" => set_text(&mut raw.kind, value)?,
                "event_id" => set_text(&mut raw.event_id, value)?,
                "ts" => set_text(&mut raw.ts, value)?,
                "image_id" => set_text(&mut raw.image_id, value)?,
                "creator_id" => set_text(&mut raw.creator_id, value)?,
                "generation_id" => set_text(&mut raw.generation_id, value)?,
                "prompt" => set_text(&mut raw.prompt, value)?,
                "image_uri" => set_text(&mut raw.image_uri, value)?,
                "model" => set_text(&mut raw.model, value)?,
                "creator_followers" => set_uint(&mut raw.creator_followers, value)?,
                "viewer_id" => set_text(&mut raw.viewer_id, value)?,
                "remixer_id" => set_text(&mut raw.remixer_id, value)?,
                "remix_image_id" => set_text(&mut raw.remix_image_id, value)?,
                // serde ignores keys it does not know, whatever their (plain) value.
                _ => {}
            }
            s.skip_ws();
            match s.bytes.get(s.at)? {
                b',' => s.at += 1,
                b'}' => {
                    s.at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    s.skip_ws();
    (s.at == bytes.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn serde_fields(bytes: &[u8]) -> Option<String> {
        serde_json::from_slice::<RawEvent<'_>>(bytes)
            .ok()
            .map(|r| r.describe())
    }

    #[test]
    fn reads_plain_records_and_defers_everything_else() {
        let plain = br#"{"v":1,"kind":"view","event_id":"e1","ts":"2026-01-01T00:00:00Z","image_id":"i1","viewer_id":"u1","extra":"x","n":5}"#;
        let raw = scan(plain).unwrap();
        assert_eq!(raw.v, Some(1));
        assert_eq!(raw.viewer_id.as_ref().unwrap().0, "u1");
        assert!(matches!(raw.kind.as_ref().unwrap().0, Cow::Borrowed(_)));
        for deferred in [
            &br#"{"v":1,"prompt":"a \"fox\""}"#[..],
            br#"{"v":1,"v":1}"#,
            br#"{"v":"1"}"#,
            br#"{"v":1.0}"#,
            br#"{"v":01}"#,
            br#"{"v":-1}"#,
            br#"{"v":null}"#,
            br#"{"extra":{"a":1}}"#,
            br#"{"v":1} x"#,
            br#"{"v":1,}"#,
            br#"{"v":99999999999}"#,
            b"{\"kind\":\"a\x01b\"}",
            b"{\"kind\":\"\xff\"}",
            b"[1]",
            b"",
        ] {
            assert!(
                scan(deferred).is_none(),
                "{}",
                String::from_utf8_lossy(deferred)
            );
        }
        assert!(scan(b" { } ").is_some());
    }

    #[test]
    fn agrees_with_serde_on_every_line_it_accepts() {
        let corpus = std::fs::read("tests/data/hostile.jsonl").unwrap();
        let mut lines: Vec<Vec<u8>> = corpus.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        lines.push(br#"{"v":1,"kind":"publish","event_id":"e2","ts":"2026-01-01T00:00:00Z","image_id":"i1","creator_id":"c1","generation_id":"g1","prompt":"a fox, 8k","image_uri":"images/i1.png","model":"sdxl-1.0","creator_followers":12}"#.to_vec());
        // Mutations of every line: byte flips, deletions, insertions of JSON punctuation.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let originals = lines.clone();
        for line in &originals {
            for _ in 0..150 {
                let mut m = line.clone();
                if m.is_empty() {
                    continue;
                }
                let at = rng.random_range(0..m.len());
                match rng.random_range(0..3) {
                    0 => m[at] = b"\"\\{}[],:0123456789 ex-.n\x00\xff"[rng.random_range(0..24)],
                    1 => {
                        m.remove(at);
                    }
                    _ => m.insert(at, b"\",:{}0 "[rng.random_range(0..7)]),
                }
                lines.push(m);
            }
        }
        let mut accepted = 0;
        for line in &lines {
            if let Some(fast) = scan(line) {
                accepted += 1;
                assert_eq!(
                    Some(fast.describe()),
                    serde_fields(line),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
        }
        assert!(accepted > 1000, "{accepted} of {}", lines.len());
    }
}
