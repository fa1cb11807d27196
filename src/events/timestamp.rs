//! Event time as microseconds since the Unix epoch, UTC.
//!
//! RFC 3339 is parsed and printed by hand: it sits on the hot path of every event, and a fixed
//! layout is several times faster than a general-purpose date parser.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0}")]
pub struct TimestampError(&'static str);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_hours_f64(hours: f64) -> i64 {
        (hours * MICROS_PER_HOUR as f64).round() as i64
    }

    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    pub fn hours_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / MICROS_PER_HOUR as f64
    }

    /// Days since the epoch, floored; used for date partitions.
    pub fn day_number(self) -> i64 {
        self.0.div_euclid(MICROS_PER_DAY)
    }

    pub fn now() -> Self {
        let micros = chrono::Utc::now().timestamp_micros();
        Self(micros)
    }

    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// `YYYY-MM-DD` of the UTC day.
    pub fn date_string(self) -> String {
        let (y, m, d) = civil_from_days(self.day_number());
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; the offset is folded into UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(TimestampError("too short"));
        }
        let year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(TimestampError("bad separators"));
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(TimestampError("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError("no such time of day"));
        }
        let mut pos = 19;
        let mut fraction_micros = 0i64;
        if b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                if pos - start < 6 {
                    fraction_micros = fraction_micros * 10 + i64::from(b[pos] - b'0');
                }
                pos += 1;
            }
            let count = pos - start;
            if count == 0 || count > 9 {
                return Err(TimestampError("bad fraction"));
            }
            for _ in count..6 {
                fraction_micros *= 10;
            }
        }
        let offset_seconds = match b.get(pos) {
            Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if pos + 6 == b.len() && b[pos + 3] == b':' => {
                let oh = digits(b, pos + 1, 2)?;
                let om = digits(b, pos + 4, 2)?;
                if oh > 23 || om > 59 {
                    return Err(TimestampError("bad offset"));
                }
                let seconds = oh * 3600 + om * 60;
                if *sign == b'+' { seconds } else { -seconds }
            }
            _ => return Err(TimestampError("missing or trailing offset")),
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
        Ok(Self(seconds * MICROS_PER_SECOND + fraction_micros))
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, as the simulator and most producers emit).
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let micros_of_day = self.0.rem_euclid(MICROS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = micros_of_day / MICROS_PER_SECOND;
        let millis = (micros_of_day % MICROS_PER_SECOND) / 1000;
        let (hh, mm, ss) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let mut buf = [0u8; 24];
        put_digits(&mut buf[0..4], y);
        buf[4] = b'-';
        put_digits(&mut buf[5..7], m);
        buf[7] = b'-';
        put_digits(&mut buf[8..10], d);
        buf[10] = b'T';
        put_digits(&mut buf[11..13], hh);
        buf[13] = b':';
        put_digits(&mut buf[14..16], mm);
        buf[16] = b':';
        put_digits(&mut buf[17..19], ss);
        buf[19] = b'.';
        put_digits(&mut buf[20..23], millis);
        buf[23] = b'Z';
        out.extend_from_slice(&buf);
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        self.write_rfc3339(&mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

fn digits(b: &[u8], start: usize, len: usize) -> Result<i64, TimestampError> {
    let slice = b
        .get(start..start + len)
        .ok_or(TimestampError("too short"))?;
    let mut value = 0i64;
    for &c in slice {
        if !c.is_ascii_digit() {
            return Err(TimestampError("expected a digit"));
        }
        value = value * 10 + i64::from(c - b'0');
    }
    Ok(value)
}

fn put_digits(out: &mut [u8], mut value: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_chrono_on_round_trip_and_offsets() {
        for text in [
            "2026-01-01T00:00:00Z",
            "2024-02-29T23:59:59.999999Z",
            "1970-01-01T00:00:00.5Z",
            "2026-11-26T10:45:00+02:00",
            "2026-11-26T10:45:00.123456789-05:30",
        ] {
            let ours = Timestamp::parse_rfc3339(text).unwrap();
            let theirs = chrono::DateTime::parse_from_rfc3339(text).unwrap();
            assert_eq!(ours.as_micros(), theirs.timestamp_micros(), "{text}");
        }
        let t = Timestamp::parse_rfc3339("2026-03-04T05:06:07.089Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-04T05:06:07.089Z");
        assert_eq!(t.date_string(), "2026-03-04");
    }

    #[test]
    fn rejects_impossible_dates_and_garbage() {
        for text in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00.Z",
            "yesterday",
            "",
        ] {
            assert!(Timestamp::parse_rfc3339(text).is_err(), "{text}");
        }
    }
}
