//! Sets of loaded ranges: which cursor values a table already holds.
//!
//! A loader records every window it committed in an [`IntervalSet`], so that a backfill of a range
//! that is already loaded can be refused (it would duplicate rows), and so that a sequence loader
//! knows which ids are held back as gaps.
//!
//! # Guarantees
//! - The set is kept canonical: disjoint intervals in ascending order, none touching another, so
//!   two sets holding the same points compare equal whatever order they were built in (for
//!   discrete domains such as integers; dense domains may keep two intervals with no point of the
//!   domain between them).
//! - Membership, coverage and gaps are exact for open, closed and unbounded ends.

use std::cmp::Ordering;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::watermark::WatermarkValue;

/// A totally ordered domain for intervals, possibly discrete.
pub trait IntervalDomain: Ord + Clone {
    /// The next value, for discrete domains; `None` for dense ones (and at the maximum).
    fn successor(&self) -> Option<Self> {
        None
    }
}

impl IntervalDomain for i64 {
    fn successor(&self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl IntervalDomain for WatermarkValue {
    fn successor(&self) -> Option<Self> {
        WatermarkValue::successor(self)
    }
}

/// One interval with independent lower and upper bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval<T> {
    /// The lower end.
    pub lower: Bound<T>,
    /// The upper end.
    pub upper: Bound<T>,
}

impl<T: IntervalDomain> Interval<T> {
    /// `[lower, upper]`.
    pub fn closed(lower: T, upper: T) -> Self {
        Interval { lower: Bound::Included(lower), upper: Bound::Included(upper) }
    }

    /// `(lower, upper]`: the shape of a load window.
    pub fn left_open(lower: T, upper: T) -> Self {
        Interval { lower: Bound::Excluded(lower), upper: Bound::Included(upper) }
    }

    /// Whether `value` lies inside.
    pub fn contains(&self, value: &T) -> bool {
        let above = match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => value >= lower,
            Bound::Excluded(lower) => value > lower,
        };
        let below = match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(upper) => value <= upper,
            Bound::Excluded(upper) => value < upper,
        };
        above && below
    }

    /// Whether the interval holds no point.
    pub fn is_empty(&self) -> bool {
        match (&self.lower, &self.upper) {
            (Bound::Included(lower), Bound::Included(upper)) => lower > upper,
            (Bound::Included(lower) | Bound::Excluded(lower), Bound::Excluded(upper))
            | (Bound::Excluded(lower), Bound::Included(upper)) => lower >= upper,
            _ => false,
        }
    }

    /// The canonical form in a discrete domain: `[lower, upper)` where successors exist.
    fn normalised(self) -> Self {
        let lower = match self.lower {
            Bound::Excluded(value) => match value.successor() {
                Some(next) => Bound::Included(next),
                None => Bound::Excluded(value),
            },
            other => other,
        };
        let upper = match self.upper {
            Bound::Included(value) => match value.successor() {
                Some(next) => Bound::Excluded(next),
                None => Bound::Included(value),
            },
            other => other,
        };
        Interval { lower, upper }
    }
}

/// Orders lower bounds: unbounded first, and `[x` before `(x`.
fn cmp_lower<T: Ord>(a: &Bound<T>, b: &Bound<T>) -> Ordering {
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => Ordering::Equal,
        (Bound::Unbounded, _) => Ordering::Less,
        (_, Bound::Unbounded) => Ordering::Greater,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => x.cmp(y),
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(Ordering::Less),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(Ordering::Greater),
    }
}

/// Orders upper bounds: unbounded last, and `x)` before `x]`.
fn cmp_upper<T: Ord>(a: &Bound<T>, b: &Bound<T>) -> Ordering {
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => Ordering::Equal,
        (Bound::Unbounded, _) => Ordering::Greater,
        (_, Bound::Unbounded) => Ordering::Less,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => x.cmp(y),
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(Ordering::Greater),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(Ordering::Less),
    }
}

/// Whether an interval ending at `upper` and one starting at `lower` leave no point between them.
fn touches<T: Ord>(upper: &Bound<T>, lower: &Bound<T>) -> bool {
    match (upper, lower) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Excluded(u), Bound::Excluded(l)) => l < u,
        (Bound::Included(u) | Bound::Excluded(u), Bound::Included(l)) | (Bound::Included(u), Bound::Excluded(l)) => {
            l <= u
        }
    }
}

/// The complement of an upper bound as a lower bound (`x]` → `(x`), and vice versa.
fn after<T: Clone>(upper: &Bound<T>) -> Option<Bound<T>> {
    match upper {
        Bound::Unbounded => None,
        Bound::Included(x) => Some(Bound::Excluded(x.clone())),
        Bound::Excluded(x) => Some(Bound::Included(x.clone())),
    }
}

fn before<T: Clone>(lower: &Bound<T>) -> Option<Bound<T>> {
    match lower {
        Bound::Unbounded => None,
        Bound::Included(x) => Some(Bound::Excluded(x.clone())),
        Bound::Excluded(x) => Some(Bound::Included(x.clone())),
    }
}

/// A set of disjoint intervals.
///
/// ```
/// use highwater_core::interval::{Interval, IntervalSet};
///
/// let mut loaded = IntervalSet::new();
/// loaded.insert(Interval::closed(1_i64, 10));
/// loaded.insert(Interval::closed(11, 20)); // integers: [1, 10] and [11, 20] join
/// loaded.insert(Interval::closed(31, 40));
/// assert_eq!(loaded.len(), 2);
/// assert!(loaded.covers(&Interval::closed(5, 15)));
/// assert_eq!(loaded.gaps(&Interval::closed(15, 35)), vec![Interval::closed(21, 30).canonical()]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntervalSet<T> {
    intervals: Vec<Interval<T>>,
}

impl<T> Default for IntervalSet<T> {
    fn default() -> Self {
        IntervalSet { intervals: Vec::new() }
    }
}

impl<T: IntervalDomain> Interval<T> {
    /// The canonical form this interval takes inside an [`IntervalSet`].
    #[must_use]
    pub fn canonical(self) -> Self {
        self.normalised()
    }
}

impl<T: IntervalDomain> IntervalSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        IntervalSet::default()
    }

    /// The intervals, ascending and disjoint.
    pub fn intervals(&self) -> &[Interval<T>] {
        &self.intervals
    }

    /// The number of disjoint intervals.
    pub fn len(&self) -> usize {
        self.intervals.len()
    }

    /// Whether the set holds no point.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Adds an interval, merging it with every interval it overlaps or touches. The intervals it
    /// meets are found by binary search, so building a set in ascending order costs O(log n)
    /// per interval.
    pub fn insert(&mut self, interval: Interval<T>) {
        let mut merged = interval.normalised();
        if merged.is_empty() {
            return;
        }
        // Stored intervals are ascending, disjoint and never touch: the ones `merged` meets form
        // one run, `first..last`.
        let first = self.intervals.partition_point(|existing| !touches(&existing.upper, &merged.lower));
        let last = first + self.intervals[first..].partition_point(|existing| touches(&merged.upper, &existing.lower));
        if first < last {
            if cmp_lower(&self.intervals[first].lower, &merged.lower) == Ordering::Less {
                merged.lower = self.intervals[first].lower.clone();
            }
            if cmp_upper(&self.intervals[last - 1].upper, &merged.upper) == Ordering::Greater {
                merged.upper = self.intervals[last - 1].upper.clone();
            }
        }
        self.intervals.splice(first..last, std::iter::once(merged));
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: &IntervalSet<T>) {
        for interval in &other.intervals {
            self.insert(interval.clone());
        }
    }

    /// Whether `value` is in the set (binary search).
    pub fn contains(&self, value: &T) -> bool {
        let after = self.intervals.partition_point(|i| match &i.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => lower <= value,
            Bound::Excluded(lower) => lower < value,
        });
        after > 0 && self.intervals[after - 1].contains(value)
    }

    /// Whether every point of `interval` is in the set.
    pub fn covers(&self, interval: &Interval<T>) -> bool {
        self.gaps(interval).is_empty()
    }

    /// Whether some point of `interval` is in the set.
    pub fn intersects(&self, interval: &Interval<T>) -> bool {
        let interval = interval.clone().normalised();
        if interval.is_empty() {
            return false;
        }
        self.intervals.iter().any(|existing| {
            let lower = if cmp_lower(&existing.lower, &interval.lower) == Ordering::Less {
                &interval.lower
            } else {
                &existing.lower
            };
            let upper = if cmp_upper(&existing.upper, &interval.upper) == Ordering::Less {
                &existing.upper
            } else {
                &interval.upper
            };
            !Interval { lower: lower.clone(), upper: upper.clone() }.is_empty()
        })
    }

    /// The parts of `interval` not in the set, ascending.
    pub fn gaps(&self, interval: &Interval<T>) -> Vec<Interval<T>> {
        let interval = interval.clone().normalised();
        if interval.is_empty() {
            return Vec::new();
        }
        let mut gaps = Vec::new();
        // The lower end of the stretch not yet accounted for; `None` once past the end.
        let mut uncovered = Some(interval.lower.clone());
        for existing in &self.intervals {
            let clipped = Interval {
                lower: max_lower(&existing.lower, &interval.lower),
                upper: min_upper(&existing.upper, &interval.upper),
            };
            if clipped.is_empty() {
                continue;
            }
            let Some(lower) = uncovered.take() else { break };
            if let Some(upper) = before(&clipped.lower) {
                let gap = Interval { lower, upper }.normalised();
                if !gap.is_empty() {
                    gaps.push(gap);
                }
            }
            uncovered = after(&clipped.upper);
        }
        if let Some(lower) = uncovered {
            let gap = Interval { lower, upper: interval.upper }.normalised();
            if !gap.is_empty() {
                gaps.push(gap);
            }
        }
        gaps
    }
}

fn max_lower<T: Ord + Clone>(a: &Bound<T>, b: &Bound<T>) -> Bound<T> {
    if cmp_lower(a, b) == Ordering::Less { b.clone() } else { a.clone() }
}

fn min_upper<T: Ord + Clone>(a: &Bound<T>, b: &Bound<T>) -> Bound<T> {
    if cmp_upper(a, b) == Ordering::Less { a.clone() } else { b.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_shaped_intervals_join() {
        let mut set = IntervalSet::new();
        set.insert(Interval::left_open(WatermarkValue::int64(0), WatermarkValue::int64(10)));
        set.insert(Interval::left_open(WatermarkValue::int64(10), WatermarkValue::int64(20)));
        assert_eq!(set.len(), 1);
        assert!(!set.contains(&WatermarkValue::int64(0)));
        assert!(set.contains(&WatermarkValue::int64(20)));
    }

    #[test]
    fn gaps_between_and_around() {
        let mut set = IntervalSet::new();
        set.insert(Interval::closed(5_i64, 9));
        set.insert(Interval::closed(20, 25));
        assert_eq!(
            set.gaps(&Interval::closed(0, 30)),
            vec![
                Interval::closed(0, 4).canonical(),
                Interval::closed(10, 19).canonical(),
                Interval::closed(26, 30).canonical()
            ]
        );
        assert!(set.gaps(&Interval::closed(6, 8)).is_empty());
        assert!(set.intersects(&Interval::closed(9, 12)));
        assert!(!set.intersects(&Interval::closed(10, 19)));
    }
}
