//! The metadata index: per-field postings that turn a [`Filter`] into a [`RowSet`]
//! without reading any stored JSON.
//!
//! Every scalar in a document's metadata is indexed under its dotted path: objects are
//! walked (`{"a": {"b": 1}}` indexes `a.b`), arrays index each scalar element under the
//! array's own path (so `tags: ["x", "y"]` is found by `match "x"`), and each value
//! goes to the part of the field that fits its JSON type, so a field that holds strings
//! in some documents and numbers in others needs no declaration and is indexed whole:
//!
//! - strings: row lists per distinct value (`match`, `any`);
//! - booleans: one row list per value;
//! - numbers: `(value, row)` pairs in value order (`range`, and `match` on an integer,
//!   which JSON cannot tell from the float of the same value).
//!
//! What the index leaves out can never satisfy a condition: `null`, objects and arrays
//! inside arrays, and keys that are empty or contain a dot (a filter key splits on dots,
//! so it cannot name them). Compiling a filter costs the size of the postings it reads:
//! `must` intersects, `should` unites and `must_not` complements within the rows the
//! caller names. The one slower path is `match` on an integer of ±2^53 or beyond, where two
//! integers can share a float: the index yields the rows whose number has that float
//! value and the caller's `verify` evaluates the condition on each of those documents.
//!
//! [`MemFields`] grows with a memtable; [`SealedFields`] is built once for a segment and
//! saved beside it (file format in `sealed`).

mod memory;
mod sealed;

use std::ops::Bound;

use quiver_core::{Condition, Filter, MatchValue, Metadata, Range};
use serde_json::Value;

pub use memory::MemFields;
pub use sealed::SealedFields;

use crate::RowSet;

/// Integers smaller than this in magnitude convert to `f64` exactly, and no other
/// integer converts to the same float (`2^53 + 1` rounds to `2^53` itself).
const EXACT_INT: i64 = 1 << 53;

/// A scalar metadata value, as the index files it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    Num(f64),
}

/// Calls `f(path, value)` for every indexable scalar of `metadata` (see the module
/// docs for what counts).
pub fn flatten<'a>(metadata: &'a Metadata, mut f: impl FnMut(&str, Scalar<'a>)) {
    let mut path = String::new();
    walk(&mut path, metadata, &mut f);
}

fn walk<'a>(path: &mut String, object: &'a Metadata, f: &mut impl FnMut(&str, Scalar<'a>)) {
    for (key, value) in object {
        if key.is_empty() || key.contains('.') {
            continue;
        }
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(key);
        match value {
            Value::Object(inner) => walk(path, inner, f),
            Value::Array(items) => items
                .iter()
                .filter_map(scalar)
                .for_each(|s| f(path.as_str(), s)),
            other => {
                if let Some(s) = scalar(other) {
                    f(path.as_str(), s);
                }
            }
        }
        path.truncate(len);
    }
}

fn scalar(value: &Value) -> Option<Scalar<'_>> {
    match value {
        Value::String(s) => Some(Scalar::Str(s)),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n.as_f64().map(|x| Scalar::Num(plus_zero(x))),
        _ => None,
    }
}

/// `-0.0` and `0.0` are one number to a filter; the index keeps only the latter.
fn plus_zero(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// Numeric bounds of a `range` (or an exact `match`), the tightest of each side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumRange {
    pub lower: Bound<f64>,
    pub upper: Bound<f64>,
}

impl NumRange {
    fn of(r: &Range) -> Self {
        let lower = match (r.gt, r.gte) {
            (Some(gt), Some(gte)) if gt >= gte => Bound::Excluded(gt),
            (_, Some(gte)) => Bound::Included(gte),
            (Some(gt), None) => Bound::Excluded(gt),
            (None, None) => Bound::Unbounded,
        };
        let upper = match (r.lt, r.lte) {
            (Some(lt), Some(lte)) if lt <= lte => Bound::Excluded(lt),
            (_, Some(lte)) => Bound::Included(lte),
            (Some(lt), None) => Bound::Excluded(lt),
            (None, None) => Bound::Unbounded,
        };
        NumRange {
            lower: lower.map(plus_zero),
            upper: upper.map(plus_zero),
        }
    }

    fn exactly(x: f64) -> Self {
        NumRange {
            lower: Bound::Included(plus_zero(x)),
            upper: Bound::Included(plus_zero(x)),
        }
    }

    /// Whether `x` lies inside both bounds.
    pub fn contains(&self, x: f64) -> bool {
        let above = match self.lower {
            Bound::Included(b) => x >= b,
            Bound::Excluded(b) => x > b,
            Bound::Unbounded => true,
        };
        let below = match self.upper {
            Bound::Included(b) => x <= b,
            Bound::Excluded(b) => x < b,
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// Where a compiled filter reads its postings: a memtable's index or a segment's.
pub trait Postings {
    /// Adds the rows whose value at `path` is the string `value`.
    fn strings(&self, path: &str, value: &str, out: &mut RowSet);
    /// Adds the rows whose value at `path` is the boolean `value`.
    fn bools(&self, path: &str, value: bool, out: &mut RowSet);
    /// Adds the rows with a number at `path` inside `range`.
    fn numbers(&self, path: &str, range: &NumRange, out: &mut RowSet);
}

/// Compiles `filter` over rows `0..rows` of `index`. `verify(row, condition)` is asked
/// only on the slow path (see the module docs) and must evaluate the condition on the
/// row's stored metadata.
pub fn compile(
    filter: &Filter,
    index: &dyn Postings,
    rows: u64,
    verify: &dyn Fn(u64, &Condition) -> bool,
) -> RowSet {
    let cx = Compiler {
        index,
        rows,
        verify,
    };
    cx.group(filter)
}

struct Compiler<'a> {
    index: &'a dyn Postings,
    rows: u64,
    verify: &'a dyn Fn(u64, &Condition) -> bool,
}

impl Compiler<'_> {
    fn group(&self, f: &Filter) -> RowSet {
        let mut set: Option<RowSet> = None;
        for c in &f.must {
            let rows = self.condition(c);
            match &mut set {
                Some(s) => s.intersect(&rows),
                None => set = Some(rows),
            }
            if set.as_ref().is_some_and(RowSet::is_empty) {
                return RowSet::new();
            }
        }
        if !f.should.is_empty() {
            let mut any = RowSet::new();
            for c in &f.should {
                any.union(&self.condition(c));
            }
            match &mut set {
                Some(s) => s.intersect(&any),
                None => set = Some(any),
            }
        }
        let mut set = set.unwrap_or_else(|| RowSet::full(self.rows));
        if !f.must_not.is_empty() {
            let mut none = RowSet::new();
            for c in &f.must_not {
                none.union(&self.condition(c));
            }
            set.subtract(&none);
        }
        set
    }

    fn condition(&self, c: &Condition) -> RowSet {
        let mut out = RowSet::new();
        match c {
            Condition::Match { key, value } => self.matching(c, &key.to_string(), value, &mut out),
            Condition::Any { key, values } => {
                let path = key.to_string();
                for v in values {
                    self.matching(c, &path, v, &mut out);
                }
            }
            Condition::Range { key, range } => {
                self.index
                    .numbers(&key.to_string(), &NumRange::of(range), &mut out)
            }
            Condition::Group(g) => out = self.group(g),
        }
        out
    }

    fn matching(&self, c: &Condition, path: &str, value: &MatchValue, out: &mut RowSet) {
        match value {
            MatchValue::Str(s) => self.index.strings(path, s, out),
            MatchValue::Bool(b) => self.index.bools(path, *b, out),
            MatchValue::Int(i) if i.unsigned_abs() < EXACT_INT.unsigned_abs() => {
                self.index.numbers(path, &NumRange::exactly(*i as f64), out)
            }
            MatchValue::Int(i) => {
                let mut maybe = RowSet::new();
                self.index
                    .numbers(path, &NumRange::exactly(*i as f64), &mut maybe);
                for row in maybe.iter().filter(|&r| (self.verify)(r, c)) {
                    out.insert(row);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
