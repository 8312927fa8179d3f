//! Declared time zones for naive (zone-less) timestamps.
//!
//! A naive timestamp is a wall-clock reading; it names an instant only together with the zone it
//! was read in. highwater never guesses that zone: callers declare it (`"UTC"`, `"+02:00"`, or an
//! IANA name such as `"Europe/Berlin"` with the default `chrono-tz` feature). Local times that fall
//! twice (the hour after a DST change) resolve to the earlier instant; local times that do not
//! exist (the skipped hour) are an error.

use std::fmt;
use std::str::FromStr;

use arrow_array::timezone::Tz;
use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone};

use crate::error::{Error, Result};

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A time zone in which naive timestamps are read.
#[derive(Clone, Copy)]
pub struct Zone {
    kind: ZoneKind,
}

#[derive(Clone, Copy)]
enum ZoneKind {
    /// A fixed offset east of UTC in seconds (UTC itself is 0): no table lookups.
    Fixed(i32),
    /// A zone with rules (daylight saving time).
    Named(Tz),
}

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone { kind: ZoneKind::Fixed(0) };

    /// Parses `UTC`, `Z`, a fixed offset (`+02:00`, `-0530`, `+01`) or an IANA zone name.
    pub fn parse(name: &str) -> Result<Zone> {
        let trimmed = name.trim();
        if matches!(trimmed, "UTC" | "utc" | "Z" | "z" | "Etc/UTC" | "GMT") {
            return Ok(Zone::UTC);
        }
        if trimmed.starts_with(['+', '-']) {
            return parse_offset(trimmed)
                .map(|seconds| Zone { kind: ZoneKind::Fixed(seconds) })
                .ok_or_else(|| Error::InvalidTimezone { zone: name.to_owned(), reason: "expected ±HH:MM".into() });
        }
        let tz = Tz::from_str(trimmed)
            .map_err(|error| Error::InvalidTimezone { zone: name.to_owned(), reason: error.to_string() })?;
        Ok(Zone { kind: ZoneKind::Named(tz) })
    }

    /// Whether this zone is UTC.
    pub fn is_utc(&self) -> bool {
        matches!(self.kind, ZoneKind::Fixed(0))
    }

    /// Whether the offset never changes (UTC or a fixed offset): local order is instant order.
    pub fn is_fixed(&self) -> bool {
        matches!(self.kind, ZoneKind::Fixed(_))
    }

    /// Converts local nanoseconds since the epoch (the wall clock read as if it were UTC) into
    /// UTC nanoseconds. `column` and `row` only name the value in errors.
    pub fn local_to_utc_nanos(&self, local_nanos: i128, column: &str, row: usize) -> Result<i128> {
        match self.kind {
            ZoneKind::Fixed(offset) => Ok(local_nanos - i128::from(offset) * NANOS_PER_SECOND),
            ZoneKind::Named(tz) => {
                let naive = naive_from_nanos(local_nanos).ok_or_else(|| Error::OutOfRange {
                    column: column.to_owned(),
                    row,
                    detail: format!("{local_nanos} ns is outside the representable calendar"),
                })?;
                let offset = match tz.offset_from_local_datetime(&naive) {
                    LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _) => offset,
                    LocalResult::None => {
                        return Err(Error::NonexistentLocalTime {
                            column: column.to_owned(),
                            row,
                            local: naive.to_string(),
                            zone: self.to_string(),
                        });
                    }
                };
                Ok(local_nanos - i128::from(offset.fix().local_minus_utc()) * NANOS_PER_SECOND)
            }
        }
    }

    /// The offset from UTC, in seconds, at the given UTC instant.
    pub fn offset_seconds_at(&self, utc_nanos: i128) -> i32 {
        match self.kind {
            ZoneKind::Fixed(offset) => offset,
            ZoneKind::Named(tz) => naive_from_nanos(utc_nanos)
                .map_or(0, |naive| tz.offset_from_utc_datetime(&naive).fix().local_minus_utc()),
        }
    }
}

/// A naive date-time from nanoseconds since the epoch, if the calendar can represent it.
pub(crate) fn naive_from_nanos(nanos: i128) -> Option<NaiveDateTime> {
    let seconds = i64::try_from(nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
    let sub = nanos.rem_euclid(NANOS_PER_SECOND) as u32;
    DateTime::from_timestamp(seconds, sub).map(|utc| utc.naive_utc())
}

/// `±HH:MM`, or `±HH:MM:SS` when the offset has seconds (local mean time before 1900).
pub(crate) fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let magnitude = seconds.unsigned_abs();
    let (hours, minutes, rest) = (magnitude / 3600, (magnitude % 3600) / 60, magnitude % 60);
    if rest == 0 {
        format!("{sign}{hours:02}:{minutes:02}")
    } else {
        format!("{sign}{hours:02}:{minutes:02}:{rest:02}")
    }
}

/// Parses `±HH`, `±HHMM`, `±HH:MM` or `±HH:MM:SS` into seconds east of UTC.
pub(crate) fn parse_offset(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    // Only ASCII from here on, so the byte slicing below stays on character boundaries.
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let parts: Vec<&str> = if digits.contains(':') {
        digits.split(':').collect()
    } else if digits.len() == 4 {
        vec![&digits[..2], &digits[2..]]
    } else {
        vec![digits]
    };
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let value = |index: usize| parts.get(index).map_or(Some(0), |p| p.parse::<i32>().ok());
    let (hours, minutes, seconds) = (value(0)?, value(1)?, value(2)?);
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60 + seconds))
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ZoneKind::Fixed(0) => f.write_str("UTC"),
            ZoneKind::Fixed(offset) => f.write_str(&format_offset(offset)),
            #[cfg(feature = "chrono-tz")]
            ZoneKind::Named(tz) => write!(f, "{tz}"),
            // Without `chrono-tz` arrow's `Tz` is an offset (names are refused when parsed).
            #[cfg(not(feature = "chrono-tz"))]
            ZoneKind::Named(tz) => write!(f, "{tz:?}"),
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({self})")
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Zone {}

impl FromStr for Zone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Zone::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offsets_and_utc() {
        assert!(Zone::parse("UTC").unwrap().is_utc());
        assert!(Zone::parse("+00:00").unwrap().is_utc());
        let plus_two = Zone::parse("+02:00").unwrap();
        assert_eq!(plus_two.to_string(), "+02:00");
        assert_eq!(plus_two.local_to_utc_nanos(7_200 * NANOS_PER_SECOND, "c", 0).unwrap(), 0);
        assert_eq!(Zone::parse("-0530").unwrap().to_string(), "-05:30");
    }

    #[test]
    fn named_zone_with_daylight_saving() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        // 2024-07-01 12:00 local is 10:00 UTC (CEST, +2).
        let local =
            i128::from(NaiveDateTime::parse_from_str("2024-07-01 12:00:00", "%F %T").unwrap().and_utc().timestamp())
                * NANOS_PER_SECOND;
        let utc = berlin.local_to_utc_nanos(local, "c", 0).unwrap();
        assert_eq!(local - utc, 7_200 * NANOS_PER_SECOND);
        // 2024-03-31 02:30 does not exist in Berlin.
        let gap =
            i128::from(NaiveDateTime::parse_from_str("2024-03-31 02:30:00", "%F %T").unwrap().and_utc().timestamp())
                * NANOS_PER_SECOND;
        let error = berlin.local_to_utc_nanos(gap, "modified", 3).unwrap_err();
        assert!(error.to_string().contains("modified"), "{error}");
        // 2024-10-27 02:30 happens twice: the earlier instant (+2) is taken.
        let twice =
            i128::from(NaiveDateTime::parse_from_str("2024-10-27 02:30:00", "%F %T").unwrap().and_utc().timestamp())
                * NANOS_PER_SECOND;
        assert_eq!(twice - berlin.local_to_utc_nanos(twice, "c", 0).unwrap(), 7_200 * NANOS_PER_SECOND);
    }

    /// Regression (fuzz, `watermark_parse`): a multi-byte character after the sign panicked.
    #[test]
    fn offsets_parse_strictly() {
        assert_eq!(parse_offset("+05:30"), Some(19_800));
        assert_eq!(parse_offset("-0930"), Some(-34_200));
        assert_eq!(parse_offset("+00:53:28"), Some(3_208));
        assert_eq!(parse_offset("+\u{1965}\u{1965}"), None);
        assert_eq!(parse_offset("+24:00"), None);
        assert!(Zone::parse("+ᥥ").is_err());
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(matches!(Zone::parse("Mars/Olympus"), Err(Error::InvalidTimezone { .. })));
    }
}
