//! Property tests of the invariants highwater-core promises (DESIGN.md, "Row hashing spec v1";
//! watermark order; interval sets). CI runs them with a fixed `PROPTEST_RNG_SEED`.

use std::ops::Bound;
use std::sync::Arc;

use highwater_core::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use highwater_core::arrow::cast::cast;
use highwater_core::arrow::schema::DataType;
use highwater_core::hash::{HashOptions, RowHasher, canonical_bytes, column_seed};
use highwater_core::interval::{Interval, IntervalDomain, IntervalSet};
use highwater_core::watermark::{TimestampUnit, WatermarkKind, WatermarkValue};
use highwater_core::zone::Zone;
use proptest::prelude::*;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A row of the test table: the shapes that matter (ints, strings, floats, booleans, instants).
type Row = (Option<i64>, Option<String>, Option<f64>, Option<bool>, Option<i64>);

fn small_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["[a-c]{0,3}", "[ -~]{0,20}", "\\PC{0,5}"])
}

fn float() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        (-3i32..3).prop_map(f64::from),
        any::<f64>()
    ])
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::of(prop_oneof![-3i64..3, any::<i64>()]),
        small_string(),
        float(),
        prop::option::of(any::<bool>()),
        prop::option::of(-2_000_000i64..2_000_000),
    )
}

fn columns(rows: &[Row]) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("id", Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()) as ArrayRef),
        ("name", Arc::new(rows.iter().map(|r| r.1.clone()).collect::<StringArray>())),
        ("amount", Arc::new(rows.iter().map(|r| r.2).collect::<Float64Array>())),
        ("active", Arc::new(rows.iter().map(|r| r.3).collect::<BooleanArray>())),
        ("at", Arc::new(rows.iter().map(|r| r.4).collect::<TimestampMicrosecondArray>().with_timezone("UTC"))),
    ]
}

fn batch(columns: Vec<(&'static str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn hasher() -> RowHasher {
    RowHasher::new(["id", "name", "amount", "active", "at"], &HashOptions::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Hashing twice gives the same hashes, and so does any column order.
    #[test]
    fn hashing_is_deterministic_and_column_order_invariant(
        rows in prop::collection::vec(row(), 0..40),
        order in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let straight = batch(columns(&rows));
        let all = columns(&rows);
        let shuffled = batch(order.iter().map(|&i| all[i].clone()).collect());
        let hasher = hasher();
        let first = hasher.hash_batch(&straight).unwrap();
        prop_assert_eq!(first.rows().to_vec(), hasher.hash_batch(&straight).unwrap().into_rows());
        prop_assert_eq!(first.rows().to_vec(), hasher.hash_batch(&shuffled).unwrap().into_rows());
    }

    /// Two rows hash equal exactly when every column's canonical encoding is equal; the
    /// column-wise fast paths agree with the reference encoder value by value.
    #[test]
    fn hashes_follow_canonical_values(rows in prop::collection::vec(row(), 2..12)) {
        let batch = batch(columns(&rows));
        let hasher = hasher();
        let hashes = hasher.hash_batch(&batch).unwrap();
        let options = HashOptions::default();
        let names: Vec<&str> = hasher.columns().collect();
        let encoded: Vec<Vec<Vec<u8>>> = (0..rows.len())
            .map(|row| {
                names.iter().map(|name| canonical_bytes(batch.column_by_name(name).unwrap().as_ref(), row, &options).unwrap()).collect()
            })
            .collect();
        for row in 0..rows.len() {
            for (column, name) in names.iter().enumerate() {
                prop_assert_eq!(hashes.value_hash(row, column), xxh3_64_with_seed(&encoded[row][column], column_seed(name)));
            }
            for other in 0..rows.len() {
                prop_assert_eq!(encoded[row] == encoded[other], hashes.rows()[row] == hashes.rows()[other],
                    "rows {} and {}: {:?} / {:?}", row, other, rows[row], rows[other]);
            }
        }
    }

    /// Dictionary, view, large and plain layouts of the same strings hash equal; so do integer
    /// widths.
    #[test]
    fn layouts_hash_equal(pairs in prop::collection::vec((small_string(), prop::option::of(any::<i32>())), 0..30)) {
        let plain: ArrayRef = Arc::new(pairs.iter().map(|p| p.0.clone()).collect::<StringArray>());
        let narrow: ArrayRef = Arc::new(pairs.iter().map(|p| p.1).collect::<Int32Array>());
        let wide = cast(&narrow, &DataType::Int64).unwrap();
        let hasher = RowHasher::new(["s", "i"], &HashOptions::default()).unwrap();
        let expected = hasher.hash_batch(&RecordBatch::try_from_iter([("s", Arc::clone(&plain)), ("i", narrow)]).unwrap()).unwrap();
        let layouts = [
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::LargeUtf8)),
        ];
        for layout in &layouts {
            let strings = cast(&plain, layout).unwrap();
            let batch = RecordBatch::try_from_iter([("i", Arc::clone(&wide)), ("s", strings)]).unwrap();
            prop_assert_eq!(expected.rows().to_vec(), hasher.hash_batch(&batch).unwrap().into_rows(), "layout {}", layout);
        }
    }
}

fn watermark() -> impl Strategy<Value = WatermarkValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(WatermarkValue::int64),
        // Years 1900..9999, in every unit that holds them, with sub-second parts.
        (
            -2_208_988_800i64..253_402_300_799,
            0i64..1_000_000_000,
            prop_oneof![
                Just(TimestampUnit::Second),
                Just(TimestampUnit::Millisecond),
                Just(TimestampUnit::Microsecond),
                Just(TimestampUnit::Nanosecond)
            ],
            prop_oneof![Just("UTC"), Just("+02:00"), Just("Europe/Berlin")]
        )
            .prop_filter("nanoseconds end in 2262", |(seconds, _, unit, _)| *unit != TimestampUnit::Nanosecond
                || *seconds < 9_000_000_000)
            .prop_map(|(seconds, nanos, unit, zone)| {
                let per_second = (1_000_000_000 / unit.nanos()) as i64;
                let value = seconds * per_second + nanos / unit.nanos() as i64;
                WatermarkValue::Timestamp { value, unit, timezone: Some(zone.into()) }
            }),
        (-700_000i32..2_900_000).prop_map(WatermarkValue::date),
        "[a-z0-9.]{0,8}".prop_map(|value| WatermarkValue::Utf8 { value }),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop::collection::vec(inner, 1..4).prop_map(|values| WatermarkValue::Tuple { values })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The order is total: antisymmetric, transitive, consistent with equality.
    #[test]
    fn watermark_order_is_total(a in watermark(), b in watermark(), c in watermark()) {
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        prop_assert_eq!(a == b, a.cmp(&b) == std::cmp::Ordering::Equal);
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        let mut sorted = [a.clone(), b.clone(), c.clone()];
        sorted.sort();
        prop_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    }

    /// serde and the display form both round trip.
    #[test]
    fn watermark_round_trips(value in watermark()) {
        let json = serde_json::to_string(&value).unwrap();
        let back: WatermarkValue = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &value);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
        if !matches!(value, WatermarkValue::Tuple { .. } | WatermarkValue::Utf8 { .. }) {
            let parsed = WatermarkValue::parse(&value.to_string(), &value.kind(), &Zone::UTC).unwrap();
            prop_assert_eq!(parsed, value.clone());
            let seed = value.to_seed_string(&Zone::parse("+05:30").unwrap());
            prop_assert_eq!(WatermarkValue::parse(&seed, &value.kind(), &Zone::parse("+05:30").unwrap()).unwrap(), value);
        }
    }

    /// Timestamp text of any precision floors to the unit.
    #[test]
    fn timestamp_parse_floors(seconds in -1_000_000_000i64..1_000_000_000, nanos in 0u32..1_000_000_000) {
        let text = format!("{}.{nanos:09}Z", chrono::DateTime::from_timestamp(seconds, 0).unwrap().naive_utc().format("%Y-%m-%dT%H:%M:%S"));
        let kind = WatermarkKind::Timestamp { unit: TimestampUnit::Millisecond, timezone: None };
        let parsed = WatermarkValue::parse(&text, &kind, &Zone::UTC).unwrap();
        prop_assert_eq!(parsed.timestamp_nanos(), Some(i128::from(seconds) * 1_000_000_000 + i128::from(nanos / 1_000_000 * 1_000_000)));
    }
}

/// A dense domain: integers standing for reals, with no successor (so `(1, 2)` is not empty).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Dense(i64);

impl IntervalDomain for Dense {}

fn bound<T: Clone>(value: Option<(bool, T)>) -> Bound<T> {
    match value {
        None => Bound::Unbounded,
        Some((true, v)) => Bound::Included(v),
        Some((false, v)) => Bound::Excluded(v),
    }
}

/// One end of an interval: `None` unbounded, else (inclusive, value).
type End = Option<(bool, i64)>;
/// An interval as generated: (lower end, upper end).
type Spec = (End, End);

fn interval() -> impl Strategy<Value = Spec> {
    let end = prop::option::weighted(0.9, (any::<bool>(), 0i64..20));
    (end.clone(), end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Membership, coverage and gaps agree with a pointwise model, for integers (discrete) and
    /// for a dense domain (even endpoints, odd probe points between them).
    #[test]
    fn interval_sets_match_a_pointwise_model(intervals in prop::collection::vec(interval(), 0..6), probe in interval()) {
        let mut discrete = IntervalSet::new();
        let mut dense = IntervalSet::new();
        let make = |(lo, hi): &Spec| Interval { lower: bound(*lo), upper: bound(*hi) };
        let make_dense = |(lo, hi): &Spec| Interval {
            lower: bound(lo.map(|(i, v)| (i, Dense(v * 2)))),
            upper: bound(hi.map(|(i, v)| (i, Dense(v * 2)))),
        };
        for i in &intervals {
            discrete.insert(make(i));
            dense.insert(make_dense(i));
        }
        let probe_discrete = make(&probe);
        let probe_dense = make_dense(&probe);
        let gaps = discrete.gaps(&probe_discrete);
        let dense_gaps = dense.gaps(&probe_dense);
        for point in -3i64..=44 {
            let member = intervals.iter().any(|i| make(i).contains(&point));
            prop_assert_eq!(discrete.contains(&point), member, "discrete point {}", point);
            let in_probe = probe_discrete.contains(&point);
            prop_assert_eq!(gaps.iter().any(|g| g.contains(&point)), in_probe && !member, "gap at {}", point);

            let dense_member = intervals.iter().any(|i| make_dense(i).contains(&Dense(point)));
            prop_assert_eq!(dense.contains(&Dense(point)), dense_member, "dense point {}", point);
            let in_dense_probe = probe_dense.contains(&Dense(point));
            prop_assert_eq!(dense_gaps.iter().any(|g| g.contains(&Dense(point))), in_dense_probe && !dense_member, "dense gap at {}", point);
        }
        prop_assert_eq!(discrete.covers(&probe_discrete), gaps.is_empty());
        // Endpoints lie in 0..20, so points -3..=44 witness every intersection.
        prop_assert_eq!(discrete.intersects(&probe_discrete), (-3i64..=44).any(|p| probe_discrete.contains(&p) && discrete.contains(&p)));
        // Canonical: disjoint, ascending, and independent of insertion order.
        let mut reversed = IntervalSet::new();
        for i in intervals.iter().rev() {
            reversed.insert(make(i));
        }
        prop_assert_eq!(&reversed, &discrete);
        let json = serde_json::to_string(&discrete).unwrap();
        prop_assert_eq!(serde_json::from_str::<IntervalSet<i64>>(&json).unwrap(), discrete);
    }
}

#[test]
fn view_of_long_strings_hashes_like_plain() {
    let long = "a string much longer than the twelve bytes a view inlines";
    let plain: ArrayRef = Arc::new(StringArray::from(vec![Some(long), None, Some("")]));
    let view = cast(&plain, &DataType::Utf8View).unwrap();
    let hasher = RowHasher::new(["s"], &HashOptions::default()).unwrap();
    let a = hasher.hash_batch(&RecordBatch::try_from_iter([("s", plain)]).unwrap()).unwrap();
    let b = hasher.hash_batch(&RecordBatch::try_from_iter([("s", view)]).unwrap()).unwrap();
    assert_eq!(a.rows(), b.rows());
    assert!(a.rows()[1] != a.rows()[2], "null and empty string differ");
}
