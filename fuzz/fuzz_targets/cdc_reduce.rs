//! `cdc::reduce` over arbitrary events, key state and truncate marker, fed in the given order,
//! reversed, rotated and shuffled: the outcome depends only on the set of events. When all
//! orders succeed, every order has the same winners (sequence, op and after-image per key) and
//! the same truncate, and both equal an order-free model of "latest wins". A tie — two
//! different events of one key at one sequence — at the sequence that would win (or against
//! the applied state) fails in every order; without any tie, no order fails; and every order
//! fails or none does (a tie a later event of its key supersedes, or one a delete settles under
//! `delete_wins`, fails in none: the order dependence this target found, fixed in `reduce`).
#![no_main]

use std::collections::{BTreeMap, HashMap};

use arbitrary::{Result, Unstructured};
use highwater_core::cdc::{Event, EventOp, KeyState, Reduction, TiePolicy, reduce};
use highwater_core::key::KeyFingerprint;
use highwater_core::watermark::{TimestampUnit, WatermarkValue};
use libfuzzer_sys::fuzz_target;

const UNITS: [TimestampUnit; 4] =
    [TimestampUnit::Second, TimestampUnit::Millisecond, TimestampUnit::Microsecond, TimestampUnit::Nanosecond];

/// A sequence from a small domain, so that equal sequences (also across timestamp units) are
/// common.
fn sequence(u: &mut Unstructured<'_>, kind: u8) -> Result<WatermarkValue> {
    Ok(match kind {
        0 => WatermarkValue::int64(u.int_in_range(0..=6)?),
        1 => {
            // The same instant in another unit: 1 s = 1000 ms = …
            let unit = *u.choose(&UNITS)?;
            let seconds: i64 = u.int_in_range(0..=4)?;
            let scale = match unit {
                TimestampUnit::Second => 1,
                TimestampUnit::Millisecond => 1_000,
                TimestampUnit::Microsecond => 1_000_000,
                TimestampUnit::Nanosecond => 1_000_000_000,
            };
            let extra = if u.ratio(1, 4)? { 1 } else { 0 };
            WatermarkValue::timestamp(seconds * scale + extra, unit)
        }
        _ => WatermarkValue::Tuple {
            values: vec![
                WatermarkValue::Utf8 { value: ["a", "b"][u.choose_index(2)?].into() },
                WatermarkValue::int64(u.int_in_range(0..=3)?),
            ],
        },
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<EventOp> {
    Ok(*u.choose(&[EventOp::Insert, EventOp::Update, EventOp::Delete])?)
}

struct Case {
    events: Vec<Event>,
    state: HashMap<KeyFingerprint, KeyState>,
    truncated: Option<WatermarkValue>,
    policy: TiePolicy,
    rotation: usize,
    shuffle: Vec<usize>,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let kind = u.int_in_range(0..=2)?;
    let count = u.int_in_range(0..=24)?;
    let mut events = Vec::with_capacity(count);
    for row in 0..count {
        let op = if u.ratio(1, 16)? { EventOp::Truncate } else { op(u)? };
        let key = if op == EventOp::Truncate { 0 } else { u.int_in_range(1..=5)? };
        let sequence = sequence(u, kind)?;
        let image = u.int_in_range(0..=2)?;
        events.push(Event { key, sequence, op, image, batch: row % 3, row });
    }
    let mut state = HashMap::new();
    for key in 1..=5u128 {
        if u.ratio(1, 3)? {
            let op = op(u)?;
            let tombstone = if op == EventOp::Delete { Some(0) } else { None };
            state.insert(key, KeyState { sequence: sequence(u, kind)?, op, image: u.int_in_range(0..=2)?, tombstone });
        }
    }
    let truncated = if u.ratio(1, 5)? { Some(sequence(u, kind)?) } else { None };
    let policy = if u.arbitrary()? { TiePolicy::DeleteWins } else { TiePolicy::Error };
    let rotation = if count == 0 { 0 } else { u.choose_index(count)? };
    let mut shuffle: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = u.int_in_range(0..=i)?;
        shuffle.swap(i, j);
    }
    Ok(Case { events, state, truncated, policy, rotation, shuffle })
}

/// What an event does, as the outcome sees it: two deletes of one sequence are one event, so a
/// delete's after-image does not count.
type Outcome = (WatermarkValue, EventOp, Option<u128>);

fn outcome(sequence: &WatermarkValue, op: EventOp, image: u128) -> Outcome {
    (sequence.clone(), op, (op != EventOp::Delete).then_some(image))
}

/// Whether two events of one key at one sequence are a tie the policy does not settle.
fn conflict(a: (EventOp, u128), b: (EventOp, u128), policy: TiePolicy) -> bool {
    let same = a.0 == b.0 && (a.1 == b.1 || a.0 == EventOp::Delete);
    let settled = policy == TiePolicy::DeleteWins && (a.0 == EventOp::Delete || b.0 == EventOp::Delete);
    !same && !settled
}

/// The model: per key the winning outcome, the truncate, and whether a tie must fail
/// (`Some(true)`), must not (`Some(false)`) or may fail depending on the order (`None`).
struct Model {
    winners: BTreeMap<KeyFingerprint, Outcome>,
    truncate: Option<WatermarkValue>,
    must_fail: Option<bool>,
}

fn model(case: &Case) -> Model {
    let highest = case.events.iter().filter(|e| e.op == EventOp::Truncate).map(|e| &e.sequence).max();
    let truncate = highest.filter(|h| case.truncated.as_ref().is_none_or(|t| *h > t)).cloned();
    let marker = [highest, case.truncated.as_ref()].into_iter().flatten().max();
    let mut by_key: BTreeMap<KeyFingerprint, Vec<&Event>> = BTreeMap::new();
    for event in &case.events {
        if event.op != EventOp::Truncate && marker.is_none_or(|t| event.sequence > *t) {
            by_key.entry(event.key).or_default().push(event);
        }
    }
    let (mut mandatory, mut any_tie) = (false, false);
    let mut winners = BTreeMap::new();
    for (key, events) in by_key {
        let state = case.state.get(&key);
        // Against the applied state: older is stale; a tie fails whatever else there is.
        let mut live = Vec::new();
        for event in events {
            let Some(applied) = state else {
                live.push(event);
                continue;
            };
            match event.sequence.cmp(&applied.sequence) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Greater => live.push(event),
                std::cmp::Ordering::Equal => {
                    let (a, b) = ((applied.op, applied.image), (event.op, event.image));
                    if conflict(a, b, case.policy) {
                        mandatory = true;
                    } else if a.0 != EventOp::Delete && b.0 == EventOp::Delete && case.policy == TiePolicy::DeleteWins {
                        // A delete wins over the applied insert or update.
                        live.push(event);
                    }
                    // Else a replay of the applied event, or the applied delete wins: ignored.
                }
            }
        }
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                if a.sequence == b.sequence && conflict((a.op, a.image), (b.op, b.image), case.policy) {
                    any_tie = true;
                }
            }
        }
        let Some(top) = live.iter().map(|e| &e.sequence).max() else { continue };
        let top: Vec<&&Event> = live.iter().filter(|e| e.sequence == *top).collect();
        let delete = top.iter().find(|e| e.op == EventOp::Delete);
        let winner = match delete {
            Some(delete) if case.policy == TiePolicy::DeleteWins => delete,
            _ => {
                if top.iter().any(|b| conflict((top[0].op, top[0].image), (b.op, b.image), case.policy)) {
                    mandatory = true;
                }
                top[0]
            }
        };
        winners.insert(key, outcome(&winner.sequence, winner.op, winner.image));
    }
    let must_fail = if mandatory {
        Some(true)
    } else if any_tie {
        None
    } else {
        Some(false)
    };
    Model { winners, truncate, must_fail }
}

fn run(case: &Case, order: &[usize]) -> highwater_core::Result<Reduction> {
    let events = order.iter().map(|i| case.events[*i].clone());
    reduce(events, &case.state, case.truncated.as_ref(), case.policy, &|e: &Event| format!("row {}", e.row))
}

fn winners(reduction: &Reduction) -> BTreeMap<KeyFingerprint, Outcome> {
    reduction.winners.iter().map(|(key, e)| (*key, outcome(&e.sequence, e.op, e.image))).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = case(&mut u) else { return };
    let n = case.events.len();
    let given: Vec<usize> = (0..n).collect();
    let reversed: Vec<usize> = (0..n).rev().collect();
    let rotated: Vec<usize> = (0..n).map(|i| (i + case.rotation) % n).collect();
    let orders = [&given, &reversed, &rotated, &case.shuffle];
    let results: Vec<_> = orders.iter().map(|order| run(&case, order)).collect();
    let model = model(&case);
    let failing: Vec<bool> = results.iter().map(Result::is_err).collect();
    assert!(
        failing.iter().all(|f| *f == failing[0]),
        "orders given, reversed, rotated, shuffled fail: {failing:?}; events {:?}, state {:?}, truncated {:?}, {:?}",
        case.events,
        case.state,
        case.truncated,
        case.policy
    );
    for (order, result) in orders.iter().zip(&results) {
        match result {
            Ok(reduction) => {
                assert_ne!(model.must_fail, Some(true), "order {order:?} succeeds despite a tie that must fail");
                assert_eq!(winners(reduction), model.winners, "order {order:?}: winners differ from the model");
                assert_eq!(reduction.truncate, model.truncate, "order {order:?}: truncate differs from the model");
                for (key, event) in &reduction.winners {
                    assert_eq!(*key, event.key);
                }
            }
            Err(error) => {
                assert_ne!(model.must_fail, Some(false), "order {order:?} fails without any tie: {error}");
                let message = error.to_string();
                assert!(message.contains("same key and sequence"), "{message}");
            }
        }
    }
});
