//! The metadata index of a memtable: grows by one document at a time.
//!
//! Rows are the memtable's write sequence numbers. Nothing is ever removed: a row
//! whose document was overwritten or deleted stays indexed under its old values, and
//! the memtable drops it when it checks that a row is still the newest write of its id
//! (as it already does for the graph).

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use quiver_core::Metadata;

use super::{flatten, NumRange, Postings, Scalar};
use crate::RowSet;

/// One field's postings.
#[derive(Debug, Default)]
struct Field {
    strings: HashMap<String, Vec<u64>>,
    bools: [Vec<u64>; 2],
    /// `(order key of the value, row)`: see [`order_key`].
    numbers: BTreeSet<(u64, u64)>,
}

/// A memtable's metadata index.
#[derive(Debug, Default)]
pub struct MemFields {
    fields: HashMap<String, Field>,
}

/// Maps a float to an integer with the same order (negative numbers flip every bit,
/// positive ones only the sign), so numbers sort in a `BTreeSet` without a wrapper.
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn key_bound(b: Bound<f64>, row: u64) -> Bound<(u64, u64)> {
    // Rows complete the key: an inclusive bound takes every row of the value, an
    // exclusive one none of them.
    match b {
        Bound::Included(x) if row == 0 => Bound::Included((order_key(x), 0)),
        Bound::Included(x) => Bound::Included((order_key(x), u64::MAX)),
        Bound::Excluded(x) if row == 0 => Bound::Excluded((order_key(x), u64::MAX)),
        Bound::Excluded(x) => Bound::Excluded((order_key(x), 0)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl MemFields {
    /// An empty index.
    pub fn new() -> Self {
        MemFields::default()
    }

    /// Indexes `metadata` as row `row`.
    pub fn add(&mut self, row: u64, metadata: &Metadata) {
        flatten(metadata, |path, value| {
            let field = match self.fields.get_mut(path) {
                Some(f) => f,
                None => self.fields.entry(path.to_string()).or_default(),
            };
            match value {
                Scalar::Str(s) => match field.strings.get_mut(s) {
                    Some(rows) => rows.push(row),
                    None => {
                        field.strings.insert(s.to_string(), vec![row]);
                    }
                },
                Scalar::Bool(b) => field.bools[usize::from(b)].push(row),
                Scalar::Num(x) => {
                    field.numbers.insert((order_key(x), row));
                }
            }
        });
    }
}

impl Postings for MemFields {
    fn strings(&self, path: &str, value: &str, out: &mut RowSet) {
        let rows = self.fields.get(path).and_then(|f| f.strings.get(value));
        for &row in rows.into_iter().flatten() {
            out.insert(row);
        }
    }

    fn bools(&self, path: &str, value: bool, out: &mut RowSet) {
        if let Some(f) = self.fields.get(path) {
            for &row in &f.bools[usize::from(value)] {
                out.insert(row);
            }
        }
    }

    fn numbers(&self, path: &str, range: &NumRange, out: &mut RowSet) {
        let Some(f) = self.fields.get(path) else {
            return;
        };
        let lower = key_bound(range.lower, 0);
        let upper = key_bound(range.upper, 1);
        // `BTreeSet::range` panics when the start lies past the end, or on them being
        // equal and both excluded; either way nothing matches.
        if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
            (lower, upper)
        {
            let both_excluded = matches!((lower, upper), (Bound::Excluded(_), Bound::Excluded(_)));
            if a > b || (a == b && both_excluded) {
                return;
            }
        }
        for &(_, row) in f.numbers.range((lower, upper)) {
            out.insert(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_like_the_floats() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1e-300,
            0.0,
            1e-300,
            1.0,
            3.5,
            1e300,
        ];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} < {}", w[0], w[1]);
        }
    }
}
