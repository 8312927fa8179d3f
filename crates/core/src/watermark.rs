//! Watermarks: how far a table has loaded, as a totally ordered value.
//!
//! A [`WatermarkValue`] is an integer (sequence ids), an instant (timestamp cursors of any unit
//! and zone), a date, a string, or a tuple of these compared lexicographically (multi-column CDC
//! positions such as `MySQL`'s `(file, pos, row)`).
//!
//! # Guarantees
//! - **Total order.** Any two values compare. Timestamps compare as instants: `10:00+02:00` in
//!   seconds equals `08:00Z` in microseconds. Values of different kinds order by kind
//!   (integer < timestamp < date < string < tuple); a loader never mixes kinds — it refuses a
//!   watermark of another kind with [`Error::WatermarkTypeMismatch`].
//! - **Round trips.** The serde form and the display form (`2024-01-15T10:30:00Z`) parse back to
//!   an equal value. The seed's naive string form (`2024-01-15 10:30:00`) round trips in any
//!   fixed-offset zone; in zones with daylight saving time the repeated hour is ambiguous and
//!   reads as its earlier instant.
//! - **Floors, never rounds up.** Text more precise than the cursor's unit is truncated toward
//!   the past, which keeps an exclusive bound exact for every value the column can hold.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::zone::{Zone, naive_from_nanos};

/// The unit of a timestamp watermark, as persisted (`"s"`, `"ms"`, `"us"`, `"ns"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimestampUnit {
    /// Seconds.
    #[serde(rename = "s")]
    Second,
    /// Milliseconds.
    #[serde(rename = "ms")]
    Millisecond,
    /// Microseconds.
    #[serde(rename = "us")]
    Microsecond,
    /// Nanoseconds.
    #[serde(rename = "ns")]
    Nanosecond,
}

impl TimestampUnit {
    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i128 {
        match self {
            TimestampUnit::Second => 1_000_000_000,
            TimestampUnit::Millisecond => 1_000_000,
            TimestampUnit::Microsecond => 1_000,
            TimestampUnit::Nanosecond => 1,
        }
    }

    fn fraction_digits(self) -> usize {
        match self {
            TimestampUnit::Second => 0,
            TimestampUnit::Millisecond => 3,
            TimestampUnit::Microsecond => 6,
            TimestampUnit::Nanosecond => 9,
        }
    }
}

impl From<TimeUnit> for TimestampUnit {
    fn from(unit: TimeUnit) -> Self {
        match unit {
            TimeUnit::Second => TimestampUnit::Second,
            TimeUnit::Millisecond => TimestampUnit::Millisecond,
            TimeUnit::Microsecond => TimestampUnit::Microsecond,
            TimeUnit::Nanosecond => TimestampUnit::Nanosecond,
        }
    }
}

impl From<TimestampUnit> for TimeUnit {
    fn from(unit: TimestampUnit) -> Self {
        match unit {
            TimestampUnit::Second => TimeUnit::Second,
            TimestampUnit::Millisecond => TimeUnit::Millisecond,
            TimestampUnit::Microsecond => TimeUnit::Microsecond,
            TimestampUnit::Nanosecond => TimeUnit::Nanosecond,
        }
    }
}

/// The kind of a watermark: what a cursor column's values are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatermarkKind {
    /// Any signed or small unsigned integer column.
    Int64,
    /// A timestamp column; `timezone` is the column's zone, or for a naive column the declared
    /// zone its wall-clock values were read in.
    Timestamp {
        /// The column's unit.
        unit: TimestampUnit,
        /// The display zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// A `Date32`/`Date64` column.
    Date,
    /// A string column.
    Utf8,
    /// Several cursor columns, compared lexicographically.
    Tuple {
        /// The element kinds.
        elements: Vec<WatermarkKind>,
    },
}

impl WatermarkKind {
    /// The watermark kind of a cursor column of type `data_type`. Naive timestamps take the zone
    /// they are declared in (`naive_zone`), and are refused without one.
    pub fn from_data_type(column: &str, data_type: &DataType, naive_zone: Option<&Zone>) -> Result<Self> {
        use DataType as D;
        Ok(match data_type {
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 => WatermarkKind::Int64,
            D::Timestamp(unit, Some(zone)) => {
                WatermarkKind::Timestamp { unit: (*unit).into(), timezone: Some(zone.to_string()) }
            }
            D::Timestamp(unit, None) => {
                let zone = naive_zone.ok_or_else(|| Error::NaiveTimestamp { column: column.to_owned() })?;
                WatermarkKind::Timestamp { unit: (*unit).into(), timezone: Some(zone.to_string()) }
            }
            D::Date32 | D::Date64 => WatermarkKind::Date,
            D::Utf8 | D::LargeUtf8 | D::Utf8View => WatermarkKind::Utf8,
            D::Dictionary(_, value) => WatermarkKind::from_data_type(column, value, naive_zone)?,
            other => {
                return Err(Error::UnsupportedType { column: column.to_owned(), data_type: other.clone() });
            }
        })
    }

    /// The kind's name in messages: `int64`, `timestamp`, `date`, `utf8`, `(int64, utf8)`.
    pub fn name(&self) -> String {
        match self {
            WatermarkKind::Int64 => "int64".into(),
            WatermarkKind::Timestamp { .. } => "timestamp".into(),
            WatermarkKind::Date => "date".into(),
            WatermarkKind::Utf8 => "utf8".into(),
            WatermarkKind::Tuple { elements } => {
                format!("({})", elements.iter().map(WatermarkKind::name).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// A watermark: the greatest cursor value a table has loaded.
///
/// Equality is by value (timestamps by instant), consistent with the total order.
///
/// ```
/// use highwater_core::watermark::{TimestampUnit, WatermarkKind, WatermarkValue};
/// use highwater_core::zone::Zone;
///
/// let kind = WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: Some("UTC".into()) };
/// let seed = WatermarkValue::parse("2024-01-15 10:30:00", &kind, &Zone::UTC)?;
/// let later = WatermarkValue::parse("2024-01-15T12:30:00+02:00", &kind, &Zone::UTC)?;
/// assert_eq!(seed, later); // the same instant
/// assert_eq!(seed.to_string(), "2024-01-15T10:30:00Z");
/// assert_eq!(seed.to_seed_string(&Zone::UTC), "2024-01-15 10:30:00");
/// # Ok::<(), highwater_core::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatermarkValue {
    /// An integer position (a sequence id).
    Int64 {
        /// The value.
        value: i64,
    },
    /// An instant: `value` units since the Unix epoch, UTC.
    Timestamp {
        /// Units since 1970-01-01T00:00:00Z.
        value: i64,
        /// The unit of `value`.
        unit: TimestampUnit,
        /// The zone used to display it (the column's zone); it does not change the instant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// A calendar date: days since 1970-01-01.
    Date {
        /// Days since the epoch.
        days: i32,
    },
    /// A string position, compared byte-wise.
    Utf8 {
        /// The value.
        value: String,
    },
    /// A multi-column position, compared element by element.
    Tuple {
        /// The elements.
        values: Vec<WatermarkValue>,
    },
}

impl WatermarkValue {
    /// An integer watermark.
    pub fn int64(value: i64) -> Self {
        WatermarkValue::Int64 { value }
    }

    /// A UTC timestamp watermark.
    pub fn timestamp(value: i64, unit: TimestampUnit) -> Self {
        WatermarkValue::Timestamp { value, unit, timezone: Some("UTC".into()) }
    }

    /// A date watermark.
    pub fn date(days: i32) -> Self {
        WatermarkValue::Date { days }
    }

    /// The instant of a timestamp watermark in nanoseconds since the epoch.
    pub fn timestamp_nanos(&self) -> Option<i128> {
        match self {
            WatermarkValue::Timestamp { value, unit, .. } => Some(i128::from(*value) * unit.nanos()),
            _ => None,
        }
    }

    /// The kind of this value (a timestamp's unit and zone as stored).
    pub fn kind(&self) -> WatermarkKind {
        match self {
            WatermarkValue::Int64 { .. } => WatermarkKind::Int64,
            WatermarkValue::Timestamp { unit, timezone, .. } => {
                WatermarkKind::Timestamp { unit: *unit, timezone: timezone.clone() }
            }
            WatermarkValue::Date { .. } => WatermarkKind::Date,
            WatermarkValue::Utf8 { .. } => WatermarkKind::Utf8,
            WatermarkValue::Tuple { values } => {
                WatermarkKind::Tuple { elements: values.iter().map(WatermarkValue::kind).collect() }
            }
        }
    }

    /// Fails unless this value can be compared meaningfully with cursor values of `kind`
    /// (timestamps of any unit and zone are comparable with each other).
    pub fn check_kind(&self, kind: &WatermarkKind) -> Result<()> {
        let compatible = match (self, kind) {
            (WatermarkValue::Int64 { .. }, WatermarkKind::Int64)
            | (WatermarkValue::Timestamp { .. }, WatermarkKind::Timestamp { .. })
            | (WatermarkValue::Date { .. }, WatermarkKind::Date)
            | (WatermarkValue::Utf8 { .. }, WatermarkKind::Utf8) => true,
            (WatermarkValue::Tuple { values }, WatermarkKind::Tuple { elements }) => {
                values.len() == elements.len() && values.iter().zip(elements).all(|(v, k)| v.check_kind(k).is_ok())
            }
            _ => false,
        };
        if compatible {
            Ok(())
        } else {
            Err(Error::WatermarkTypeMismatch { expected: kind.name(), found: self.kind().name() })
        }
    }

    /// The cursor value of `array[row]`, or `None` when it is null. Naive timestamps are read in
    /// `naive_zone`.
    pub fn from_array(array: &dyn Array, row: usize, naive_zone: Option<&Zone>) -> Result<Option<Self>> {
        use DataType as D;
        if array.is_null(row) {
            return Ok(None);
        }
        let value = match array.data_type() {
            D::Int8 => Self::int64(array.as_primitive::<Int8Type>().value(row).into()),
            D::Int16 => Self::int64(array.as_primitive::<Int16Type>().value(row).into()),
            D::Int32 => Self::int64(array.as_primitive::<Int32Type>().value(row).into()),
            D::Int64 => Self::int64(array.as_primitive::<Int64Type>().value(row)),
            D::UInt8 => Self::int64(array.as_primitive::<UInt8Type>().value(row).into()),
            D::UInt16 => Self::int64(array.as_primitive::<UInt16Type>().value(row).into()),
            D::UInt32 => Self::int64(array.as_primitive::<UInt32Type>().value(row).into()),
            D::Timestamp(unit, zone) => {
                let raw = crate::hash::timestamp_raw(array, *unit, row);
                let unit = TimestampUnit::from(*unit);
                if let Some(zone) = zone {
                    WatermarkValue::Timestamp { value: raw, unit, timezone: Some(zone.to_string()) }
                } else {
                    let declared = naive_zone.ok_or_else(|| Error::NaiveTimestamp { column: "cursor".into() })?;
                    let utc = declared.local_to_utc_nanos(i128::from(raw) * unit.nanos(), "cursor", row)?;
                    WatermarkValue::Timestamp {
                        value: utc.div_euclid(unit.nanos()) as i64,
                        unit,
                        timezone: Some(declared.to_string()),
                    }
                }
            }
            D::Date32 => Self::date(array.as_primitive::<Date32Type>().value(row)),
            D::Date64 => {
                let millis = array.as_primitive::<arrow_array::types::Date64Type>().value(row);
                Self::date(millis.div_euclid(86_400_000) as i32)
            }
            D::Utf8 => WatermarkValue::Utf8 { value: array.as_string::<i32>().value(row).to_owned() },
            D::LargeUtf8 => WatermarkValue::Utf8 { value: array.as_string::<i64>().value(row).to_owned() },
            D::Utf8View => WatermarkValue::Utf8 { value: array.as_string_view().value(row).to_owned() },
            D::Dictionary(..) => {
                let dictionary = array.as_any_dictionary();
                let index = crate::hash::key_at(dictionary.keys(), row);
                return Self::from_array(dictionary.values().as_ref(), index, naive_zone);
            }
            other => {
                return Err(Error::UnsupportedType { column: "cursor".into(), data_type: other.clone() });
            }
        };
        Ok(Some(value))
    }

    /// Parses `input` as a value of `kind`. Timestamps accept `2024-01-15`,
    /// `2024-01-15 10:30[:00[.123456]]` (also with `T`), optionally followed by `Z`, `UTC` or an
    /// offset (`+02:00`); without one the text is a wall-clock time in `zone`. Tuples are
    /// comma-separated, optionally in parentheses.
    pub fn parse(input: &str, kind: &WatermarkKind, zone: &Zone) -> Result<Self> {
        let fail = |reason: &str| Error::ParseWatermark {
            input: input.to_owned(),
            expected: kind.name(),
            reason: reason.to_owned(),
        };
        let text = input.trim();
        match kind {
            WatermarkKind::Int64 => text.parse::<i64>().map(Self::int64).map_err(|e| fail(&e.to_string())),
            WatermarkKind::Utf8 => Ok(WatermarkValue::Utf8 { value: input.to_owned() }),
            WatermarkKind::Date => {
                let (date, time, offset) = split_date_time(text).ok_or_else(|| fail("expected YYYY-MM-DD"))?;
                if offset.is_some() || time.is_some_and(|t| t != NaiveTime::MIN) {
                    return Err(fail("a date watermark cannot carry a time of day"));
                }
                let days = date.signed_duration_since(NaiveDate::default()).num_days();
                i32::try_from(days).map(Self::date).map_err(|_| fail("date out of range"))
            }
            WatermarkKind::Timestamp { unit, timezone } => {
                let (date, time, offset) =
                    split_date_time(text).ok_or_else(|| fail("expected YYYY-MM-DD[ HH:MM[:SS[.fraction]]][zone]"))?;
                let naive = date.and_time(time.unwrap_or(NaiveTime::MIN));
                let local_nanos = naive_to_nanos(&naive);
                let utc_nanos = match offset {
                    Some(seconds) => local_nanos - i128::from(seconds) * 1_000_000_000,
                    None => zone.local_to_utc_nanos(local_nanos, "watermark", 0).map_err(|e| fail(&e.to_string()))?,
                };
                let value =
                    i64::try_from(utc_nanos.div_euclid(unit.nanos())).map_err(|_| fail("out of range for the unit"))?;
                Ok(WatermarkValue::Timestamp { value, unit: *unit, timezone: timezone.clone() })
            }
            WatermarkKind::Tuple { elements } => {
                let inner = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(text);
                let parts: Vec<&str> = inner.split(',').collect();
                if parts.len() != elements.len() {
                    return Err(fail(&format!("expected {} comma-separated parts", elements.len())));
                }
                let values = parts
                    .iter()
                    .zip(elements)
                    .map(|(part, kind)| Self::parse(part.trim(), kind, zone))
                    .collect::<Result<_>>()?;
                Ok(WatermarkValue::Tuple { values })
            }
        }
    }

    /// The seed's string form: timestamps as naive wall-clock text in `zone`
    /// (`2024-01-15 10:30:00[.fraction]`), dates as `2024-01-15`, integers in decimal.
    pub fn to_seed_string(&self, zone: &Zone) -> String {
        match self {
            WatermarkValue::Timestamp { value, unit, .. } => {
                let utc = i128::from(*value) * unit.nanos();
                let local = utc + i128::from(zone.offset_seconds_at(utc)) * 1_000_000_000;
                format_naive(local, *unit, " ")
            }
            WatermarkValue::Tuple { values } => {
                format!("({})", values.iter().map(|v| v.to_seed_string(zone)).collect::<Vec<_>>().join(", "))
            }
            other => other.to_string(),
        }
    }

    /// This value minus a lookback: timestamps by a duration, dates by whole days (rounded up),
    /// integers by a count. Saturates at the type's minimum.
    pub fn minus(&self, lookback: &Lookback) -> Result<Self> {
        match (self, lookback) {
            (WatermarkValue::Int64 { value }, Lookback::Count(count)) => {
                Ok(Self::int64(value.saturating_sub(i64::try_from(*count).unwrap_or(i64::MAX))))
            }
            (WatermarkValue::Timestamp { value, unit, timezone }, Lookback::Time(duration)) => {
                let units = duration.as_nanos().div_ceil(unit.nanos() as u128) as i128;
                let value = (i128::from(*value) - units).max(i128::from(i64::MIN)) as i64;
                Ok(WatermarkValue::Timestamp { value, unit: *unit, timezone: timezone.clone() })
            }
            (WatermarkValue::Date { days }, Lookback::Time(duration)) => {
                let back = duration.as_nanos().div_ceil(86_400_000_000_000);
                Ok(Self::date(days.saturating_sub(i32::try_from(back).unwrap_or(i32::MAX))))
            }
            (value, lookback) => Err(Error::InvalidInput(format!(
                "a lookback of {lookback} does not apply to a {} watermark",
                value.kind().name()
            ))),
        }
    }

    /// The next representable value after this one, where there is one (integers, dates, and
    /// timestamps at their unit's resolution).
    pub fn successor(&self) -> Option<Self> {
        match self {
            WatermarkValue::Int64 { value } => value.checked_add(1).map(Self::int64),
            WatermarkValue::Date { days } => days.checked_add(1).map(Self::date),
            WatermarkValue::Timestamp { value, unit, timezone } => value
                .checked_add(1)
                .map(|value| WatermarkValue::Timestamp { value, unit: *unit, timezone: timezone.clone() }),
            WatermarkValue::Utf8 { .. } | WatermarkValue::Tuple { .. } => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            WatermarkValue::Int64 { .. } => 0,
            WatermarkValue::Timestamp { .. } => 1,
            WatermarkValue::Date { .. } => 2,
            WatermarkValue::Utf8 { .. } => 3,
            WatermarkValue::Tuple { .. } => 4,
        }
    }
}

impl Ord for WatermarkValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use WatermarkValue as W;
        match (self, other) {
            (W::Int64 { value: a }, W::Int64 { value: b }) => a.cmp(b),
            (W::Timestamp { .. }, W::Timestamp { .. }) => self.timestamp_nanos().cmp(&other.timestamp_nanos()),
            (W::Date { days: a }, W::Date { days: b }) => a.cmp(b),
            (W::Utf8 { value: a }, W::Utf8 { value: b }) => a.as_bytes().cmp(b.as_bytes()),
            (W::Tuple { values: a }, W::Tuple { values: b }) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for WatermarkValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for WatermarkValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for WatermarkValue {}

/// ISO 8601 with the zone (`2024-01-15T10:30:00Z`, `2024-01-15T12:30:00+02:00`); dates
/// `2024-01-15`; tuples `(a, b)`.
impl fmt::Display for WatermarkValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatermarkValue::Int64 { value } => write!(f, "{value}"),
            WatermarkValue::Timestamp { value, unit, timezone } => {
                let utc = i128::from(*value) * unit.nanos();
                let zone = timezone.as_deref().and_then(|z| Zone::parse(z).ok()).unwrap_or(Zone::UTC);
                let offset = zone.offset_seconds_at(utc);
                f.write_str(&format_naive(utc + i128::from(offset) * 1_000_000_000, *unit, "T"))?;
                if offset == 0 { f.write_str("Z") } else { f.write_str(&crate::zone::format_offset(offset)) }
            }
            WatermarkValue::Date { days } => {
                match NaiveDate::default().checked_add_signed(chrono::Duration::days((*days).into())) {
                    Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
                    None => write!(f, "date({days})"),
                }
            }
            WatermarkValue::Utf8 { value } => f.write_str(value),
            WatermarkValue::Tuple { values } => {
                f.write_str("(")?;
                for (index, value) in values.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// How far before the watermark a run starts reading again, to catch rows that committed late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookback {
    /// A span of time, for timestamp and date cursors.
    Time(#[serde(with = "duration_serde")] Duration),
    /// A number of positions, for integer cursors.
    Count(u64),
}

impl fmt::Display for Lookback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookback::Time(duration) => write!(f, "{duration:?}"),
            Lookback::Count(count) => write!(f, "{count} positions"),
        }
    }
}

/// Durations persist as whole nanoseconds: an encoding of our own.
mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_nanos)
    }
}

/// The lower end of a load window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "bound", content = "value", rename_all = "snake_case")]
pub enum StartBound {
    /// Everything (a first run).
    Unbounded,
    /// Values strictly greater (an imported watermark, as the seed used `>`).
    Exclusive(WatermarkValue),
    /// Values greater or equal (after our own commits: rows at the boundary are deduplicated
    /// against the boundary state instead of skipped).
    Inclusive(WatermarkValue),
}

/// The window `(start, end]` a run loads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Where it starts.
    pub start: StartBound,
    /// The inclusive end; `None` when open-ended.
    pub end: Option<WatermarkValue>,
}

impl Window {
    /// A window over everything.
    pub fn all() -> Self {
        Window { start: StartBound::Unbounded, end: None }
    }

    /// Whether `value` falls inside the window.
    pub fn contains(&self, value: &WatermarkValue) -> bool {
        let above_start = match &self.start {
            StartBound::Unbounded => true,
            StartBound::Exclusive(start) => value > start,
            StartBound::Inclusive(start) => value >= start,
        };
        above_start && self.end.as_ref().is_none_or(|end| value <= end)
    }

    /// Whether no value can fall inside the window.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (StartBound::Exclusive(start), Some(end)) => end <= start,
            (StartBound::Inclusive(start), Some(end)) => end < start,
            _ => false,
        }
    }
}

/// Splits `YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][Z|UTC|±HH[:MM]]` into its parts; the offset in
/// seconds east of UTC.
fn split_date_time(text: &str) -> Option<(NaiveDate, Option<NaiveTime>, Option<i32>)> {
    let date_text = text.get(..10)?;
    // Strictly `YYYY-MM-DD`: chrono alone would also take signs and space padding.
    let shape =
        date_text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shape {
        return None;
    }
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d").ok()?;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return Some((date, None, None));
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    let (time_text, offset) = split_offset(rest)?;
    let time = ["%H:%M:%S%.f", "%H:%M"].iter().find_map(|format| NaiveTime::parse_from_str(time_text, format).ok())?;
    Some((date, Some(time), offset))
}

fn split_offset(text: &str) -> Option<(&str, Option<i32>)> {
    let text = text.trim_end();
    for suffix in ["Z", "z", " UTC", "UTC"] {
        if let Some(time) = text.strip_suffix(suffix) {
            return Some((time.trim_end(), Some(0)));
        }
    }
    if let Some(position) = text.rfind(['+', '-']) {
        let (time, offset) = text.split_at(position);
        return Some((time.trim_end(), Some(crate::zone::parse_offset(offset)?)));
    }
    Some((text, None))
}

fn naive_to_nanos(naive: &NaiveDateTime) -> i128 {
    let utc = naive.and_utc();
    i128::from(utc.timestamp()) * 1_000_000_000 + i128::from(utc.timestamp_subsec_nanos())
}

/// `YYYY-MM-DD{sep}HH:MM:SS[.fraction]` of a local nanosecond count, the fraction trimmed of
/// trailing zeros and never finer than the unit.
fn format_naive(local_nanos: i128, unit: TimestampUnit, separator: &str) -> String {
    let Some(naive) = naive_from_nanos(local_nanos) else {
        return format!("{local_nanos}ns");
    };
    let mut text = format!("{}{separator}{}", naive.format("%Y-%m-%d"), naive.format("%H:%M:%S"));
    let digits = unit.fraction_digits();
    let nanos = naive.and_utc().timestamp_subsec_nanos();
    if digits > 0 && nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction[..digits].trim_end_matches('0'));
    }
    text
}

/// Converts a timestamp value for display in examples and tests.
#[doc(hidden)]
pub fn datetime_of(value: &WatermarkValue) -> Option<DateTime<chrono::Utc>> {
    let nanos = value.timestamp_nanos()?;
    naive_from_nanos(nanos).map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros() -> WatermarkKind {
        WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: Some("UTC".into()) }
    }

    #[test]
    fn seed_strings_parse_in_the_declared_zone() {
        let utc = WatermarkValue::parse("2024-01-15 10:30:00", &micros(), &Zone::UTC).unwrap();
        assert_eq!(utc.timestamp_nanos(), Some(1_705_314_600_000_000_000));
        let berlin = WatermarkValue::parse("2024-01-15 11:30:00", &micros(), &Zone::parse("+01:00").unwrap()).unwrap();
        assert_eq!(utc, berlin);
        let date_only = WatermarkValue::parse("2024-01-15", &micros(), &Zone::UTC).unwrap();
        assert_eq!(date_only.to_seed_string(&Zone::UTC), "2024-01-15 00:00:00");
        let explicit =
            WatermarkValue::parse("2024-01-15T10:30:00.5Z", &micros(), &Zone::parse("+05:00").unwrap()).unwrap();
        assert_eq!(explicit.to_string(), "2024-01-15T10:30:00.5Z");
    }

    #[test]
    fn finer_text_floors_to_the_unit() {
        let millis = WatermarkKind::Timestamp { unit: TimestampUnit::Millisecond, timezone: None };
        let value = WatermarkValue::parse("1969-12-31 23:59:59.9999", &millis, &Zone::UTC).unwrap();
        assert_eq!(value, WatermarkValue::Timestamp { value: -1, unit: TimestampUnit::Millisecond, timezone: None });
    }

    #[test]
    fn bad_text_names_input_and_kind() {
        let error = WatermarkValue::parse("yesterday", &micros(), &Zone::UTC).unwrap_err();
        assert!(error.to_string().contains("yesterday") && error.to_string().contains("timestamp"), "{error}");
        assert!(WatermarkValue::parse("12x", &WatermarkKind::Int64, &Zone::UTC).is_err());
        assert!(WatermarkValue::parse("2024-01-15 10:00", &WatermarkKind::Date, &Zone::UTC).is_err());
    }

    #[test]
    fn timestamps_compare_as_instants() {
        let seconds =
            WatermarkValue::Timestamp { value: 1, unit: TimestampUnit::Second, timezone: Some("+02:00".into()) };
        let nanos = WatermarkValue::Timestamp { value: 1_000_000_000, unit: TimestampUnit::Nanosecond, timezone: None };
        assert_eq!(seconds, nanos);
        assert!(WatermarkValue::int64(5) < seconds, "kinds order by rank");
    }

    #[test]
    fn lookback_and_windows() {
        let end = WatermarkValue::parse("2024-01-15 10:30:00", &micros(), &Zone::UTC).unwrap();
        let start = end.minus(&Lookback::Time(Duration::from_secs(3600))).unwrap();
        assert_eq!(start.to_seed_string(&Zone::UTC), "2024-01-15 09:30:00");
        let window = Window { start: StartBound::Exclusive(start.clone()), end: Some(end.clone()) };
        assert!(!window.contains(&start) && window.contains(&end));
        assert_eq!(
            WatermarkValue::date(10).minus(&Lookback::Time(Duration::from_secs(3600))).unwrap(),
            WatermarkValue::date(9)
        );
        assert_eq!(WatermarkValue::int64(10).minus(&Lookback::Count(3)).unwrap(), WatermarkValue::int64(7));
        assert!(WatermarkValue::int64(10).minus(&Lookback::Time(Duration::from_secs(1))).is_err());
    }

    /// Regression (fuzz, `watermark_parse`): lenient date shapes were accepted, and offsets with
    /// seconds (local mean time before 1893) lost their seconds on display.
    #[test]
    fn strict_dates_and_offsets_with_seconds() {
        let kind =
            WatermarkKind::Timestamp { unit: TimestampUnit::Microsecond, timezone: Some("Europe/Berlin".into()) };
        assert!(WatermarkValue::parse("+1360- 6-3", &kind, &Zone::UTC).is_err());
        let old = WatermarkValue::parse("1360-06-03", &kind, &Zone::UTC).unwrap();
        assert_eq!(old.to_string(), "1360-06-03T00:53:28+00:53:28");
        assert_eq!(WatermarkValue::parse(&old.to_string(), &kind, &Zone::UTC).unwrap(), old);
    }

    #[test]
    fn tuples_order_lexicographically() {
        let kind =
            WatermarkKind::Tuple { elements: vec![WatermarkKind::Utf8, WatermarkKind::Int64, WatermarkKind::Int64] };
        let a = WatermarkValue::parse("(mysql-bin.000003, 154, 0)", &kind, &Zone::UTC).unwrap();
        let b = WatermarkValue::parse("mysql-bin.000003,1000,0", &kind, &Zone::UTC).unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "(mysql-bin.000003, 154, 0)");
    }
}
