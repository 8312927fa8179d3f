//! SCD type 2 history: the versions of one key, as a pure function of the set of its events.
//!
//! ```text
//! events of a key (any order, replays included) ─► sorted by sequence, ties resolved
//!   ─► fold: a change of the tracked columns opens a version, a change of the others updates the
//!      open one in place, a delete closes it (or opens a deleted marker)
//! ```
//!
//! The history depends on the *set* of events only, never on the order they arrived in: a late
//! event is spliced in at its place — the version it falls into is split and the versions
//! around it are re-bounded — exactly as if it had come on time. Columns outside the tracked
//! ones are type 1 within a version: an in-place update overwrites them.
//!
//! Versions name events by the caller's indexes, so the caller builds the rows (valid-from and
//! valid-to times, images) from its own batches.

use serde::{Deserialize, Serialize};

use crate::cdc::{EventOp, TiePolicy};
use crate::error::{Error, Result};
use crate::watermark::WatermarkValue;

/// What a delete does to the history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardDeletes {
    /// Close the current version (default).
    #[default]
    Close,
    /// Close it and open a deleted-marker version (the delete's image, flagged deleted), which
    /// stays current until the key comes back.
    Marker,
}

/// One event of a key, as the history reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// Its sequence (the total order of events).
    pub sequence: WatermarkValue,
    /// Insert, update or delete (a truncate is not a key's event).
    pub op: EventOp,
    /// Hash of its whole image: an equal one at an equal sequence is a replay.
    pub image: u128,
    /// Hash of its tracked columns: a change of these opens a version.
    pub tracked: u128,
}

/// One version of a key: events by the caller's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// The event that opened it (its sequence and time are the version's start).
    pub open: usize,
    /// The event whose image the version holds (the last in-place update, or `open`).
    pub image: usize,
    /// The event that closed it; `None` while it is current.
    pub close: Option<usize>,
    /// A deleted marker ([`HardDeletes::Marker`]).
    pub deleted: bool,
}

/// The history of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// The versions, oldest first.
    pub versions: Vec<Version>,
    /// The events the history stands on (replays and tie losers removed), by sequence: what a
    /// caller keeps to rebuild the history when a late event comes.
    pub kept: Vec<usize>,
    /// Exact replays dropped.
    pub duplicates: u64,
    /// Events that lost a tie to a delete ([`TiePolicy::DeleteWins`]).
    pub superseded: u64,
}

/// The history of one key from its events (`events[i]` is the caller's event `i`), in any
/// order. Of two exact replays the lower index stays, so a caller that lists the events it kept
/// before first keeps them. Two different events at one sequence are an error naming both
/// (`describe(i)`), unless `tie` lets a delete win.
pub fn history(
    events: &[HistoryEvent],
    hard_deletes: HardDeletes,
    tie: TiePolicy,
    describe: &dyn Fn(usize) -> String,
) -> Result<KeyHistory> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| events[a].sequence.cmp(&events[b].sequence).then(a.cmp(&b)));
    let mut out = KeyHistory::default();
    // Events of one sequence are settled as a set: replays of the kept one dropped, a delete
    // winning under `DeleteWins`, two different events an error — in whatever order they came.
    for group in order.chunk_by(|&a, &b| events[a].sequence == events[b].sequence) {
        let mut kept = group[0];
        let mut duplicates = 0;
        let mut conflict: Option<(usize, usize)> = None;
        for &index in &group[1..] {
            let (incumbent, event) = (&events[kept], &events[index]);
            match crate::cdc::tie((incumbent.op, incumbent.image), (event.op, event.image), tie) {
                Some(crate::cdc::Tie::Replay) => duplicates += 1,
                Some(crate::cdc::Tie::Incumbent) => {}
                Some(crate::cdc::Tie::Newcomer) => {
                    kept = index;
                    conflict = None;
                }
                None => {
                    conflict.get_or_insert((kept, index));
                }
            }
        }
        if let Some((first, second)) = conflict {
            return Err(Error::InvalidInput(format!(
                "two different events with the same key and sequence {}: {} and {} \
                 (set the tie policy delete_wins if a delete should win)",
                events[first].sequence,
                describe(first),
                describe(second)
            )));
        }
        out.duplicates += duplicates;
        out.superseded += (group.len() - 1) as u64 - duplicates;
        out.kept.push(kept);
    }
    out.versions = fold(events, &out.kept, hard_deletes);
    Ok(out)
}

/// The versions of events already sorted and free of ties.
fn fold(events: &[HistoryEvent], sorted: &[usize], hard_deletes: HardDeletes) -> Vec<Version> {
    let mut versions: Vec<Version> = Vec::new();
    // The version still open, by position in `versions`.
    let mut open: Option<usize> = None;
    for &index in sorted {
        let event = &events[index];
        let current = open.map(|at| versions[at]);
        if event.op == EventOp::Delete {
            let Some(at) = open else { continue };
            if versions[at].deleted {
                continue;
            }
            versions[at].close = Some(index);
            open = None;
            if hard_deletes == HardDeletes::Marker {
                versions.push(Version { open: index, image: index, close: None, deleted: true });
                open = Some(versions.len() - 1);
            }
            continue;
        }
        match current {
            Some(version) if !version.deleted && events[version.image].tracked == event.tracked => {
                if let Some(at) = open {
                    versions[at].image = index;
                }
            }
            _ => {
                if let Some(at) = open {
                    versions[at].close = Some(index);
                }
                versions.push(Version { open: index, image: index, close: None, deleted: false });
                open = Some(versions.len() - 1);
            }
        }
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: i64, op: EventOp, tracked: u128, rest: u128) -> HistoryEvent {
        HistoryEvent { sequence: WatermarkValue::int64(sequence), op, image: tracked * 1000 + rest, tracked }
    }

    fn spans(events: &[HistoryEvent], history: &KeyHistory) -> Vec<(i64, Option<i64>, u128, bool)> {
        let seq = |i: usize| match &events[i].sequence {
            WatermarkValue::Int64 { value } => *value,
            other => panic!("{other:?}"),
        };
        history.versions.iter().map(|v| (seq(v.open), v.close.map(seq), events[v.image].image, v.deleted)).collect()
    }

    #[test]
    fn tracked_changes_open_versions_others_update_in_place() {
        use EventOp::{Delete, Insert, Update};
        let events = [
            event(1, Insert, 1, 0),
            event(2, Update, 1, 5), // only an untracked column: in place
            event(3, Update, 2, 5),
            event(4, Delete, 2, 5),
            event(6, Insert, 3, 0),
        ];
        let history = history(&events, HardDeletes::Close, TiePolicy::Error, &|i| i.to_string()).unwrap();
        assert_eq!(
            spans(&events, &history),
            vec![(1, Some(3), 1005, false), (3, Some(4), 2005, false), (6, None, 3000, false)]
        );
        let marked = super::history(&events, HardDeletes::Marker, TiePolicy::Error, &|i| i.to_string()).unwrap();
        assert_eq!(
            spans(&events, &marked),
            vec![
                (1, Some(3), 1005, false),
                (3, Some(4), 2005, false),
                (4, Some(6), 2005, true),
                (6, None, 3000, false)
            ]
        );
    }

    #[test]
    fn a_late_event_splits_the_version_it_falls_into() {
        use EventOp::{Insert, Update};
        let on_time = [event(1, Insert, 1, 0), event(5, Update, 3, 0), event(3, Update, 2, 0)];
        let history = history(&on_time, HardDeletes::Close, TiePolicy::Error, &|i| i.to_string()).unwrap();
        assert_eq!(
            spans(&on_time, &history),
            vec![(1, Some(3), 1000, false), (3, Some(5), 2000, false), (5, None, 3000, false)]
        );
        assert_eq!(history.kept, vec![0, 2, 1]);
    }

    #[test]
    fn replays_are_dropped_and_conflicts_named() {
        use EventOp::{Delete, Update};
        let events = [event(1, Update, 1, 0), event(1, Update, 1, 0), event(2, Update, 2, 0)];
        let history = history(&events, HardDeletes::Close, TiePolicy::Error, &|i| i.to_string()).unwrap();
        assert_eq!((history.duplicates, history.kept.clone()), (1, vec![0, 2]));

        let conflict = [event(1, Update, 1, 0), event(1, Update, 2, 0)];
        let error =
            super::history(&conflict, HardDeletes::Close, TiePolicy::Error, &|i| format!("event {i}")).unwrap_err();
        assert!(error.to_string().contains("event 0 and event 1"), "{error}");

        let delete = [event(1, Update, 1, 0), event(1, Delete, 0, 0)];
        let history = super::history(&delete, HardDeletes::Close, TiePolicy::DeleteWins, &|i| i.to_string()).unwrap();
        assert_eq!((history.superseded, history.kept.clone(), history.versions.len()), (1, vec![1], 0));
    }

    #[test]
    fn ties_are_settled_as_a_set_whatever_the_order() {
        use EventOp::{Delete, Insert, Update};
        let group = [event(4, Insert, 1, 0), event(4, Update, 2, 0), event(4, Delete, 0, 0)];
        for rotation in 0..group.len() {
            let mut events = group.to_vec();
            events.rotate_left(rotation);
            let strict = history(&events, HardDeletes::Close, TiePolicy::Error, &|i| i.to_string());
            assert!(strict.is_err(), "rotation {rotation}");
            let settled = history(&events, HardDeletes::Close, TiePolicy::DeleteWins, &|i| i.to_string()).unwrap();
            assert_eq!(settled.kept.iter().map(|&i| events[i].op).collect::<Vec<_>>(), [Delete], "rotation {rotation}");
            assert_eq!((settled.superseded, settled.duplicates), (2, 0));
        }
    }

    proptest::proptest! {
        /// The history is a function of the set of events: every arrival order (replays
        /// included) gives the same versions.
        #[test]
        fn every_arrival_order_gives_the_same_history(
            raw in proptest::collection::vec((0i64..12, 0u8..3, 0u128..3, 0u128..2), 1..14),
            seed in proptest::prelude::any::<u64>(),
            marker in proptest::prelude::any::<bool>(),
        ) {
            // One event per sequence (ties are tested above), some of them replayed.
            let mut seen = std::collections::BTreeSet::new();
            let mut events: Vec<HistoryEvent> = raw
                .into_iter()
                .filter(|(s, ..)| seen.insert(*s))
                .map(|(s, op, tracked, rest)| {
                    let op = [EventOp::Insert, EventOp::Update, EventOp::Delete][usize::from(op)];
                    event(s, op, tracked, rest)
                })
                .collect();
            let replays: Vec<HistoryEvent> = events.iter().step_by(3).cloned().collect();
            events.extend(replays);
            let hard = if marker { HardDeletes::Marker } else { HardDeletes::Close };
            let expected = history(&events, hard, TiePolicy::Error, &|i| i.to_string()).unwrap();
            let mut shuffled = events.clone();
            // A seeded Fisher-Yates shuffle.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
            }
            let got = history(&shuffled, hard, TiePolicy::Error, &|i| i.to_string()).unwrap();
            proptest::prop_assert_eq!(spans(&shuffled, &got), spans(&events, &expected));
        }
    }
}
