//! Numeric tolerance: two values closer than a bound are equal (datacompy's rule).
//!
//! Unlike [`Quantize`](super::Quantize), which rounds before hashing and so can split two close
//! values across a rounding boundary, a tolerance compares the values themselves; it therefore
//! needs both rows and cannot be kept in a snapshot index.

use serde::{Deserialize, Serialize};

/// Equal when `|a - b| <= absolute + relative * |b|`; null equals only null, NaN equals NaN,
/// an infinity equals only the same infinity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tolerance {
    /// The absolute part of the bound.
    pub absolute: f64,
    /// The part of the bound relative to the new value.
    pub relative: f64,
}

impl Tolerance {
    /// Whether `old` and `new` are equal within this tolerance.
    pub fn accepts(&self, old: Option<f64>, new: Option<f64>) -> bool {
        match (old, new) {
            (None, None) => true,
            (Some(a), Some(b)) if a.is_nan() || b.is_nan() => a.is_nan() && b.is_nan(),
            (Some(a), Some(b)) if a.is_infinite() || b.is_infinite() => a.total_cmp(&b).is_eq(),
            (Some(a), Some(b)) => (a - b).abs() <= self.absolute + self.relative * b.abs(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_nulls_nans_and_infinities() {
        let t = Tolerance { absolute: 0.01, relative: 0.0 };
        assert!(t.accepts(Some(1.0), Some(1.005)));
        assert!(!t.accepts(Some(1.0), Some(1.02)));
        assert!(t.accepts(None, None));
        assert!(!t.accepts(None, Some(1.0)));
        assert!(t.accepts(Some(f64::NAN), Some(f64::NAN)));
        assert!(!t.accepts(Some(f64::NAN), Some(1.0)));
        assert!(t.accepts(Some(f64::INFINITY), Some(f64::INFINITY)));
        assert!(!t.accepts(Some(f64::INFINITY), Some(f64::NEG_INFINITY)));
        let relative = Tolerance { absolute: 0.0, relative: 0.1 };
        assert!(relative.accepts(Some(100.0), Some(109.0)));
        assert!(!relative.accepts(Some(100.0), Some(89.0)));
    }
}
