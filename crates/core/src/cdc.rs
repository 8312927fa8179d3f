//! The pure reduction of change events: which event of each key wins, and what it does.
//!
//! Change events carry a key, an operation (insert, update, delete, or a table-level truncate)
//! and a sequence — one column or several compared lexicographically (`MySQL`'s
//! `(file, pos, row)`). Reducing a set of events against the per-key state of earlier runs
//! gives, for every key, at most one action: upsert its after-image, or delete it.
//!
//! # Guarantees
//! - **Latest wins**: per key the event with the highest sequence applies, whatever order the
//!   events arrive in (files, runs, replays): the result depends only on the set of events.
//! - **Replay-safe**: an exact duplicate — same key, sequence, operation and after-image — is
//!   ignored; two *different* events with the same key and sequence are an error naming both
//!   (unless the tie policy lets a delete win).
//! - **Never regresses**: an event at or below the key's applied sequence (or below a table
//!   truncate) is ignored as stale; a delete leaves a tombstone, so a late update cannot
//!   resurrect the key while the tombstone lives.
//!
//! No I/O: the CDC crate reads events and state and writes the outcome around this.

use std::collections::HashMap;
use std::fmt;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{HashOptions, RowHasher};
use crate::key::{FingerprintMap, KeyFingerprint, KeyHasher, KeyOptions, describe_row};
use crate::watermark::WatermarkValue;

/// What an event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOp {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
    /// Every row of the table removed.
    Truncate,
}

impl fmt::Display for EventOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventOp::Insert => "insert",
            EventOp::Update => "update",
            EventOp::Delete => "delete",
            EventOp::Truncate => "truncate",
        })
    }
}

/// Which event wins when two different events of a key share a sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TiePolicy {
    /// Fail, naming both events (default).
    #[default]
    Error,
    /// A delete wins over an insert or update of the same sequence.
    DeleteWins,
}

/// How change events are laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSpec {
    /// The key columns.
    pub key: Vec<String>,
    /// The operation column.
    pub op_column: String,
    /// The sequence columns, compared lexicographically.
    pub sequence: Vec<String>,
    /// Operation values meaning insert.
    pub insert: Vec<String>,
    /// Operation values meaning update.
    pub update: Vec<String>,
    /// Operation values meaning delete.
    pub delete: Vec<String>,
    /// Operation values meaning a table truncate (none by default).
    pub truncate: Vec<String>,
    /// Compare operation values ignoring case.
    pub case_insensitive: bool,
    /// Equal key and sequence, different events.
    pub tie: TiePolicy,
    /// How values are read (the zone of naive timestamps).
    pub hash: HashOptions,
}

impl Default for EventSpec {
    fn default() -> Self {
        EventSpec {
            key: vec!["id".into()],
            op_column: "operation".into(),
            sequence: vec!["sequence_num".into()],
            insert: vec!["INSERT".into()],
            update: vec!["UPDATE".into()],
            delete: vec!["DELETE".into()],
            truncate: Vec::new(),
            case_insensitive: false,
            tie: TiePolicy::Error,
            hash: HashOptions::default(),
        }
    }
}

impl EventSpec {
    /// The operation of a value, if it is one.
    pub fn op(&self, value: &str) -> Option<EventOp> {
        let matches = |values: &[String]| {
            values.iter().any(|v| if self.case_insensitive { v.eq_ignore_ascii_case(value) } else { v == value })
        };
        if matches(&self.insert) {
            Some(EventOp::Insert)
        } else if matches(&self.update) {
            Some(EventOp::Update)
        } else if matches(&self.delete) {
            Some(EventOp::Delete)
        } else if matches(&self.truncate) {
            Some(EventOp::Truncate)
        } else {
            None
        }
    }

    /// The columns that are not row data: the operation and sequence columns.
    pub fn meta_columns(&self) -> Vec<&str> {
        let mut columns = vec![self.op_column.as_str()];
        columns.extend(self.sequence.iter().map(String::as_str));
        columns
    }
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The key's fingerprint (0 for truncates).
    pub key: KeyFingerprint,
    /// The sequence.
    pub sequence: WatermarkValue,
    /// What it does.
    pub op: EventOp,
    /// The spec-v1 hash of the after-image (the row's data columns).
    pub image: u128,
    /// Which batch it came from (index into the caller's batches).
    pub batch: usize,
    /// Its row in that batch.
    pub row: usize,
}

/// Where a batch of events came from, to name its rows in errors: the file and the row of the
/// file the batch starts at.
#[derive(Clone, Copy, Debug)]
pub struct EventOrigin<'a> {
    /// The file (or any label).
    pub source: &'a str,
    /// The batch's first row within it.
    pub first_row: u64,
}

/// Checks the events of one batch — every operation known, no null key (except in a truncate),
/// no null sequence — and returns each row's key fingerprint (0 for truncates) and operation.
/// Errors name the file and row. Cheaper than [`decode_events`]: no sequence values, no
/// after-image hashes.
pub fn check_events(
    batch: &RecordBatch,
    spec: &EventSpec,
    origin: EventOrigin<'_>,
) -> Result<Vec<(KeyFingerprint, EventOp)>> {
    let source = origin.source;
    let schema = batch.schema();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::column_not_found(name, schema.fields().iter().map(|f| f.name())))
    };
    let ops = column(&spec.op_column)?;
    let ops = match ops.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            arrow_cast::cast(ops, &DataType::Utf8)?
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "{source}: the operation column `{}` is {other}, not a string",
                spec.op_column
            )));
        }
    };
    let ops = ops.as_string::<i32>();
    let sequences = spec.sequence.iter().map(|c| column(c).cloned()).collect::<Result<Vec<_>>>()?;
    let keys = KeyHasher::new(&spec.key, &KeyOptions { allow_null_keys: true, hash: spec.hash.clone() })?;
    keys.check_schema(&schema)?;
    let fingerprints = keys.fingerprints(batch)?;
    let key_columns: Vec<_> = spec.key.iter().map(|k| column(k).cloned()).collect::<Result<_>>()?;
    let file_row = |row: usize| origin.first_row + row as u64;
    // Interning the few distinct operation values: one comparison per value, not per row.
    let mut known: Vec<(&str, EventOp)> = Vec::new();
    let mut checked = Vec::with_capacity(batch.num_rows());
    for (row, fingerprint) in fingerprints.into_iter().enumerate() {
        if ops.is_null(row) {
            return Err(Error::InvalidInput(format!(
                "{source} row {}: the operation `{}` is null",
                file_row(row),
                spec.op_column
            )));
        }
        let text = ops.value(row);
        let op = if let Some((_, op)) = known.iter().find(|(value, _)| *value == text) {
            *op
        } else {
            let op = spec.op(text).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{source} row {}: unknown operation `{text}` in `{}` (expected one of {})",
                    file_row(row),
                    spec.op_column,
                    [&spec.insert, &spec.update, &spec.delete, &spec.truncate]
                        .iter()
                        .flat_map(|v| v.iter())
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            known.push((text, op));
            op
        };
        if let Some((name, _)) = spec.sequence.iter().zip(&sequences).find(|(_, array)| array.is_null(row)) {
            return Err(Error::InvalidInput(format!("{source} row {}: the sequence `{name}` is null", file_row(row))));
        }
        if op != EventOp::Truncate {
            if let Some(column) =
                key_columns.iter().zip(&spec.key).find(|(array, _)| array.is_null(row)).map(|(_, name)| name)
            {
                return Err(Error::NullKey {
                    column: format!("{column} ({source})"),
                    row: usize::try_from(file_row(row)).unwrap_or(usize::MAX),
                });
            }
        }
        checked.push((if op == EventOp::Truncate { 0 } else { fingerprint }, op));
    }
    Ok(checked)
}

/// Decodes the events of one batch (`index` is its position among the caller's batches) whose
/// after-images are the `data_columns`: [`check_events`], plus each event's sequence and
/// after-image hash.
pub fn decode_events(
    batch: &RecordBatch,
    index: usize,
    spec: &EventSpec,
    data_columns: &[String],
    origin: EventOrigin<'_>,
) -> Result<Vec<Event>> {
    let checked = check_events(batch, spec, origin)?;
    let zone = spec.hash.zone()?;
    let sequences: Vec<&ArrayRef> = spec.sequence.iter().filter_map(|c| batch.column_by_name(c)).collect();
    let images = RowHasher::new(data_columns, &spec.hash)?.hash_batch(batch)?.into_rows();
    let mut events = Vec::with_capacity(checked.len());
    for (row, (key, op)) in checked.into_iter().enumerate() {
        let mut parts = Vec::with_capacity(sequences.len());
        for array in &sequences {
            // Nulls were refused by check_events.
            parts.push(
                WatermarkValue::from_array(array.as_ref(), row, zone.as_ref())?.unwrap_or(WatermarkValue::int64(0)),
            );
        }
        let sequence = if parts.len() == 1 {
            parts.pop().unwrap_or(WatermarkValue::int64(0))
        } else {
            WatermarkValue::Tuple { values: parts }
        };
        events.push(Event { key, sequence, op, image: images[row], batch: index, row });
    }
    Ok(events)
}

/// What earlier runs applied to a key: its last applied event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The sequence of the last applied event.
    pub sequence: WatermarkValue,
    /// Its operation.
    pub op: EventOp,
    /// Its after-image hash (to tell a replay from a conflicting event of the same sequence).
    pub image: u128,
    /// For a deleted key: when the tombstone was written (Unix seconds).
    pub tombstone: Option<i64>,
}

/// The outcome of reducing events.
#[derive(Clone, Debug, Default)]
pub struct Reduction {
    /// Per key the winning event, when it applies (stale and duplicate events removed).
    pub winners: FingerprintMap<Event>,
    /// The highest truncate of these events that applies, if any.
    pub truncate: Option<WatermarkValue>,
    /// Events at or below their key's applied sequence (or a truncate), ignored.
    pub stale: u64,
    /// Exact replays, ignored.
    pub duplicates: u64,
    /// Events of a key that a later event of the same reduction overrides.
    pub superseded: u64,
}

/// The per-key state a reduction reads: what earlier runs applied.
pub trait KeyStates {
    /// The state of a key, if earlier runs applied something to it.
    fn get(&self, key: KeyFingerprint) -> Option<KeyState>;
}

impl<S: std::hash::BuildHasher> KeyStates for HashMap<KeyFingerprint, KeyState, S> {
    fn get(&self, key: KeyFingerprint) -> Option<KeyState> {
        HashMap::get(self, &key).cloned()
    }
}

/// Two events of one key with the same sequence: the same event again, or which one wins.
pub(crate) enum Tie {
    /// An exact replay: ignore the newcomer.
    Replay,
    /// The newcomer wins.
    Newcomer,
    /// The incumbent stays.
    Incumbent,
}

pub(crate) fn tie(incumbent: (EventOp, u128), newcomer: (EventOp, u128), policy: TiePolicy) -> Option<Tie> {
    let replay = incumbent.0 == newcomer.0
        && (incumbent.1 == newcomer.1 || matches!(incumbent.0, EventOp::Delete | EventOp::Truncate));
    if replay {
        return Some(Tie::Replay);
    }
    match (policy, incumbent.0, newcomer.0) {
        (TiePolicy::DeleteWins, EventOp::Delete, _) => Some(Tie::Incumbent),
        (TiePolicy::DeleteWins, _, EventOp::Delete) => Some(Tie::Newcomer),
        _ => None,
    }
}

/// Reduces events (in any order) against the per-key state and the table's truncate marker
/// `truncated`. `describe` names an event in errors (e.g. `file row 12 (id=5, update at 7)`).
///
/// Truncate events among `events` move the marker: every other event at or below it is stale.
/// Two deletes of a key at one sequence are one event (their before-images may differ).
pub fn reduce(
    events: impl IntoIterator<Item = Event>,
    state: &dyn KeyStates,
    truncated: Option<&WatermarkValue>,
    policy: TiePolicy,
    describe: &dyn Fn(&Event) -> String,
) -> Result<Reduction> {
    let mut reduction = Reduction::default();
    let mut rows: Vec<Event> = Vec::new();
    let mut truncate = truncated.cloned();
    for event in events {
        if event.op == EventOp::Truncate {
            if truncate.as_ref().is_none_or(|t| event.sequence > *t) {
                truncate = Some(event.sequence.clone());
                reduction.truncate = Some(event.sequence.clone());
            } else {
                reduction.stale += 1;
            }
            continue;
        }
        rows.push(event);
    }
    let conflict = |incumbent: String, newcomer: &Event| {
        Error::InvalidInput(format!(
            "two different events with the same key and sequence {}: {incumbent} and {} \
             (set the tie policy delete_wins if a delete should win)",
            newcomer.sequence,
            describe(newcomer)
        ))
    };
    let mut live = 0u64;
    // Per key, an unsettled tie at its winning sequence: the winner's description and the rival.
    let mut conflicts: FingerprintMap<(String, Event)> = FingerprintMap::default();
    for event in rows {
        if truncate.as_ref().is_some_and(|t| event.sequence <= *t) {
            reduction.stale += 1;
            continue;
        }
        if let Some(applied) = state.get(event.key) {
            match event.sequence.cmp(&applied.sequence) {
                std::cmp::Ordering::Less => {
                    reduction.stale += 1;
                    continue;
                }
                std::cmp::Ordering::Equal => match tie((applied.op, applied.image), (event.op, event.image), policy) {
                    Some(Tie::Replay) => {
                        reduction.duplicates += 1;
                        continue;
                    }
                    Some(Tie::Incumbent) => {
                        reduction.superseded += 1;
                        continue;
                    }
                    Some(Tie::Newcomer) => {}
                    None => {
                        return Err(conflict(format!("the {} applied by an earlier run", applied.op), &event));
                    }
                },
                std::cmp::Ordering::Greater => {}
            }
        }
        live += 1;
        match reduction.winners.entry(event.key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(event);
            }
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                let current = slot.get();
                match event.sequence.cmp(&current.sequence) {
                    std::cmp::Ordering::Greater => {
                        conflicts.remove(&event.key);
                        slot.insert(event);
                    }
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        match tie((current.op, current.image), (event.op, event.image), policy) {
                            Some(Tie::Replay) => {
                                reduction.duplicates += 1;
                                live -= 1;
                            }
                            Some(Tie::Incumbent) => {}
                            Some(Tie::Newcomer) => {
                                // A delete that wins settles every tie at its sequence.
                                conflicts.remove(&event.key);
                                slot.insert(event);
                            }
                            None => {
                                // An error only if nothing later settles it (a higher sequence
                                // of the key, or a delete that wins): whatever the order.
                                let incumbent = describe(current);
                                conflicts.entry(event.key).or_insert((incumbent, event));
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some((_, (incumbent, event))) = conflicts.iter().min_by_key(|(key, _)| **key) {
        return Err(conflict(incumbent.clone(), event));
    }
    reduction.superseded += live - reduction.winners.len() as u64;
    Ok(reduction)
}

/// `file row N (key=value, …, op at sequence)` for an event of `batch`, which starts at `origin`.
pub fn describe_event(origin: EventOrigin<'_>, batch: &RecordBatch, event: &Event, key: &[String]) -> String {
    format!(
        "{} row {} ({}, {} at {})",
        origin.source,
        origin.first_row + event.row as u64,
        describe_row(batch, event.row, key),
        event.op,
        event.sequence
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn events(rows: &[(i64, &str, i64, &str)]) -> (RecordBatch, Vec<Event>) {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
            ("operation", Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef),
            ("sequence_num", Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
            ("name", Arc::new(StringArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())) as ArrayRef),
        ])
        .unwrap();
        let spec = EventSpec::default();
        let decoded = decode_events(
            &batch,
            0,
            &spec,
            &["id".into(), "name".into()],
            EventOrigin { source: "events", first_row: 0 },
        )
        .unwrap();
        (batch, decoded)
    }

    fn winners(reduction: &Reduction) -> Vec<(i64, EventOp)> {
        let mut out: Vec<(i64, EventOp)> = reduction
            .winners
            .values()
            .map(|e| {
                (
                    match &e.sequence {
                        WatermarkValue::Int64 { value } => *value,
                        _ => 0,
                    },
                    e.op,
                )
            })
            .collect();
        out.sort_by_key(|w| w.0);
        out
    }

    #[test]
    fn latest_per_key_wins_in_any_order() {
        let (_, mut decoded) =
            events(&[(1, "INSERT", 1, "a"), (1, "UPDATE", 3, "c"), (1, "UPDATE", 2, "b"), (2, "DELETE", 5, "")]);
        let state: HashMap<u128, KeyState> = HashMap::new();
        let forward = reduce(decoded.clone(), &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        decoded.reverse();
        let backward = reduce(decoded, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        assert_eq!(winners(&forward), [(3, EventOp::Update), (5, EventOp::Delete)]);
        assert_eq!(winners(&forward), winners(&backward));
    }

    #[test]
    fn replays_are_ignored_and_conflicts_named() {
        let (_, decoded) = events(&[(1, "UPDATE", 3, "c"), (1, "UPDATE", 3, "c")]);
        let state: HashMap<u128, KeyState> = HashMap::new();
        let reduction = reduce(decoded, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        assert_eq!((reduction.winners.len(), reduction.duplicates), (1, 1));
        let (batch, decoded) = events(&[(1, "UPDATE", 3, "c"), (1, "DELETE", 3, "")]);
        let describe =
            |e: &Event| describe_event(EventOrigin { source: "events", first_row: 0 }, &batch, e, &["id".into()]);
        let error = reduce(decoded.clone(), &state, None, TiePolicy::Error, &describe).unwrap_err();
        assert!(error.to_string().contains("id=1") && error.to_string().contains("row 1"), "{error}");
        let reduction = reduce(decoded, &state, None, TiePolicy::DeleteWins, &describe).unwrap();
        assert_eq!(winners(&reduction), [(3, EventOp::Delete)]);
    }

    /// Ties are settled by the set of events, not by the order they come in (found by the
    /// `cdc_reduce` fuzz target: a tie below the key's latest event failed in one order only).
    #[test]
    fn ties_are_settled_whatever_the_order() {
        let state: HashMap<u128, KeyState> = HashMap::new();
        let orders = |decoded: &[Event]| -> Vec<Vec<Event>> {
            let mut all = vec![decoded.to_vec()];
            for rotation in 1..decoded.len() {
                let mut rotated = decoded.to_vec();
                rotated.rotate_left(rotation);
                all.push(rotated);
            }
            let mut reversed = decoded.to_vec();
            reversed.reverse();
            all.push(reversed);
            all
        };
        // A tie below the key's latest event does not matter.
        let (_, decoded) = events(&[(2, "DELETE", 4, ""), (2, "INSERT", 4, "x"), (2, "INSERT", 6, "y")]);
        for order in orders(&decoded) {
            let reduction = reduce(order, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
            assert_eq!(winners(&reduction), [(6, EventOp::Insert)]);
        }
        // At the latest sequence: an error in every order, unless a delete may win.
        let (_, decoded) = events(&[(2, "INSERT", 4, "x"), (2, "UPDATE", 4, "y"), (2, "DELETE", 4, "")]);
        for order in orders(&decoded) {
            assert!(reduce(order.clone(), &state, None, TiePolicy::Error, &|_| String::new()).is_err());
            let reduction = reduce(order, &state, None, TiePolicy::DeleteWins, &|_| String::new()).unwrap();
            assert_eq!(winners(&reduction), [(4, EventOp::Delete)]);
        }
        let (_, decoded) = events(&[(2, "INSERT", 4, "x"), (2, "UPDATE", 4, "y")]);
        for order in orders(&decoded) {
            assert!(reduce(order, &state, None, TiePolicy::DeleteWins, &|_| String::new()).is_err());
        }
    }

    #[test]
    fn stale_events_and_tombstones() {
        let (_, decoded) = events(&[(1, "UPDATE", 2, "late"), (2, "UPDATE", 9, "new")]);
        let mut state: HashMap<u128, KeyState> = HashMap::new();
        state.insert(
            decoded[0].key,
            KeyState { sequence: WatermarkValue::int64(5), op: EventOp::Delete, image: 0, tombstone: Some(0) },
        );
        let reduction = reduce(decoded, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        assert_eq!((winners(&reduction), reduction.stale), (vec![(9, EventOp::Update)], 1));
    }

    #[test]
    fn replays_of_applied_events_are_told_from_conflicts() {
        let (batch, decoded) = events(&[(1, "UPDATE", 5, "c"), (2, "UPDATE", 5, "other"), (3, "DELETE", 5, "x")]);
        let applied = |event: &Event, op: EventOp, image: u128| {
            (event.key, KeyState { sequence: WatermarkValue::int64(5), op, image, tombstone: None })
        };
        let state: HashMap<u128, KeyState> = [
            applied(&decoded[0], EventOp::Update, decoded[0].image),
            applied(&decoded[1], EventOp::Update, 42),
            applied(&decoded[2], EventOp::Delete, 7),
        ]
        .into_iter()
        .collect();
        let describe =
            |e: &Event| describe_event(EventOrigin { source: "events", first_row: 0 }, &batch, e, &["id".into()]);
        let error = reduce(decoded.clone(), &state, None, TiePolicy::Error, &describe).unwrap_err();
        assert!(error.to_string().contains("id=2") && error.to_string().contains("earlier run"), "{error}");
        let replayed =
            reduce([decoded[0].clone(), decoded[2].clone()], &state, None, TiePolicy::Error, &describe).unwrap();
        assert_eq!((replayed.winners.len(), replayed.duplicates), (0, 2), "a delete's before-image does not matter");
    }

    #[test]
    fn superseded_events_are_counted() {
        let (_, decoded) =
            events(&[(1, "INSERT", 1, "a"), (1, "UPDATE", 2, "b"), (1, "UPDATE", 2, "b"), (2, "INSERT", 1, "x")]);
        let state: HashMap<u128, KeyState> = HashMap::new();
        let reduction = reduce(decoded, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        assert_eq!((reduction.winners.len(), reduction.superseded, reduction.duplicates), (2, 1, 1));
    }

    #[test]
    fn truncate_ignores_older_events() {
        let spec = EventSpec { truncate: vec!["TRUNCATE".into()], ..EventSpec::default() };
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None, Some(2)])) as ArrayRef),
            ("operation", Arc::new(StringArray::from(vec!["INSERT", "TRUNCATE", "INSERT"])) as ArrayRef),
            ("sequence_num", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ])
        .unwrap();
        let decoded =
            decode_events(&batch, 0, &spec, &["id".into()], EventOrigin { source: "events", first_row: 0 }).unwrap();
        let state: HashMap<u128, KeyState> = HashMap::new();
        let reduction = reduce(decoded, &state, None, TiePolicy::Error, &|_| String::new()).unwrap();
        assert_eq!(reduction.truncate, Some(WatermarkValue::int64(2)));
        assert_eq!((winners(&reduction), reduction.stale), (vec![(3, EventOp::Insert)], 1));
    }

    #[test]
    fn bad_events_name_the_row() {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef),
            ("operation", Arc::new(StringArray::from(vec!["UPSERT", "INSERT"])) as ArrayRef),
            ("sequence_num", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ])
        .unwrap();
        let error = decode_events(
            &batch,
            0,
            &EventSpec::default(),
            &["id".into()],
            EventOrigin { source: "f.parquet", first_row: 10 },
        )
        .unwrap_err();
        assert!(error.to_string().contains("UPSERT") && error.to_string().contains("row 10"), "{error}");
        let lenient = EventSpec { insert: vec!["INSERT".into(), "UPSERT".into()], ..EventSpec::default() };
        let error =
            decode_events(&batch, 0, &lenient, &["id".into()], EventOrigin { source: "f.parquet", first_row: 10 })
                .unwrap_err();
        assert!(matches!(error, Error::NullKey { row: 11, .. }), "{error}");
    }
}
