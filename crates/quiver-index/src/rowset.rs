//! Sets of allowed rows: the one document set a query's filter compiles into, shared by
//! the HNSW search and the BM25 search.
//!
//! Rows are `u64` keys chosen by the caller (the engine uses its row numbers). A
//! [`RowSet`] is a plain bitset, so keys should be dense: memory is one bit per key up to
//! the largest key inserted.

use quiver_core::{Filter, Metadata};

/// A predicate over row keys, asked during a search before a row may become a hit.
pub trait RowFilter: Send + Sync {
    /// Whether `row` may appear in results.
    fn allows(&self, row: u64) -> bool;
}

impl<F: Fn(u64) -> bool + Send + Sync> RowFilter for F {
    fn allows(&self, row: u64) -> bool {
        self(row)
    }
}

/// A bitset of row keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    words: Vec<u64>,
    len: usize,
}

impl RowSet {
    /// The empty set.
    pub fn new() -> Self {
        RowSet::default()
    }

    /// Every row in `0..n`.
    pub fn full(n: u64) -> Self {
        RowSet::new().complement(n)
    }

    /// The set whose bit `r % 64` of word `r / 64` says whether row `r` is in it.
    pub fn from_words(words: Vec<u64>) -> Self {
        let mut set = RowSet { words, len: 0 };
        set.recount();
        set
    }

    /// Evaluates `filter` once per row and keeps the rows it matches.
    pub fn compile<'a, I>(filter: &Filter, rows: I) -> Self
    where
        I: IntoIterator<Item = (u64, &'a Metadata)>,
    {
        rows.into_iter()
            .filter(|(_, metadata)| filter.matches(metadata))
            .map(|(row, _)| row)
            .collect()
    }

    fn slot(row: u64) -> (usize, u64) {
        // Keys beyond the address space cannot be stored; callers use dense keys.
        let word = usize::try_from(row / 64).unwrap_or(usize::MAX);
        (word, 1u64 << (row % 64))
    }

    /// Adds `row`; returns whether it was new.
    pub fn insert(&mut self, row: u64) -> bool {
        let (word, bit) = Self::slot(row);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(fresh);
        fresh
    }

    /// Adds every row of `rows` (faster than inserting them one by one).
    pub fn add_all(&mut self, rows: impl IntoIterator<Item = u64>) {
        for row in rows {
            let (word, bit) = Self::slot(row);
            if word >= self.words.len() {
                self.words.resize(word + 1, 0);
            }
            self.words[word] |= bit;
        }
        self.recount();
    }

    /// Adds every row of `rows`: the words are sized once for the largest row, then
    /// each row sets its bit without a bounds branch (what a posting list costs to read).
    pub fn add_rows(&mut self, rows: &[u32]) {
        let Some(&max) = rows.iter().max() else {
            return;
        };
        let need = max as usize / 64 + 1;
        if self.words.len() < need {
            self.words.resize(need, 0);
        }
        let words = &mut self.words[..need];
        for &row in rows {
            words[row as usize / 64] |= 1u64 << (row % 64);
        }
        self.recount();
    }

    /// Removes `row`; returns whether it was present.
    pub fn remove(&mut self, row: u64) -> bool {
        let (word, bit) = Self::slot(row);
        match self.words.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `row` is in the set.
    pub fn contains(&self, row: u64) -> bool {
        let (word, bit) = Self::slot(row);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Removes every row of `other` (for example the deleted rows).
    pub fn subtract(&mut self, other: &RowSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
        self.recount();
    }

    /// Keeps only the rows `other` holds too.
    pub fn intersect(&mut self, other: &RowSet) {
        self.words.truncate(other.words.len());
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= o;
        }
        self.recount();
    }

    /// Adds every row of `other`.
    pub fn union(&mut self, other: &RowSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
        self.recount();
    }

    /// The rows of `0..n` this set does not hold.
    pub fn complement(&self, n: u64) -> RowSet {
        let words = usize::try_from(n.div_ceil(64)).unwrap_or(usize::MAX);
        let mut out: Vec<u64> = (0..words)
            .map(|i| !self.words.get(i).copied().unwrap_or(0))
            .collect();
        if !n.is_multiple_of(64) {
            if let Some(last) = out.last_mut() {
                *last &= (1u64 << (n % 64)) - 1;
            }
        }
        let mut set = RowSet { words: out, len: 0 };
        set.recount();
        set
    }

    fn recount(&mut self) {
        self.len = self.words.iter().map(|w| w.count_ones() as usize).sum();
    }

    /// Number of rows in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no row.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let base = i as u64 * 64;
            let mut rest = w;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = u64::from(rest.trailing_zeros());
                    rest &= rest - 1;
                    base + bit
                })
            })
        })
    }
}

impl FromIterator<u64> for RowSet {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut set = RowSet::new();
        for row in iter {
            set.insert(row);
        }
        set
    }
}

impl RowFilter for RowSet {
    fn allows(&self, row: u64) -> bool {
        self.contains(row)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_operations() {
        let mut s: RowSet = [1, 5, 64, 200].into_iter().collect();
        assert_eq!(s.len(), 4);
        assert!(s.contains(64) && !s.contains(63) && !s.contains(10_000));
        assert!(!s.insert(5));
        assert!(s.remove(5) && !s.remove(5));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 64, 200]);
        s.subtract(&[1, 200, 300].into_iter().collect());
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![64]);
        assert_eq!(s.len(), 1);
        assert_eq!(RowSet::full(3).iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        let mut t: RowSet = [3].into_iter().collect();
        t.add_rows(&[700, 3, 64, 0]);
        t.add_rows(&[]);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![0, 3, 64, 700]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn intersect_union_and_complement() {
        let rows = |s: &RowSet| s.iter().collect::<Vec<_>>();
        let mut a: RowSet = [1, 63, 64, 130].into_iter().collect();
        let b: RowSet = [63, 130, 500].into_iter().collect();
        let mut u = a.clone();
        u.union(&b);
        assert_eq!((rows(&u), u.len()), (vec![1, 63, 64, 130, 500], 5));
        a.intersect(&b);
        assert_eq!((rows(&a), a.len()), (vec![63, 130], 2));
        let c = a.complement(131);
        assert_eq!(c.len(), 129);
        assert!(!c.contains(63) && !c.contains(130) && c.contains(0) && !c.contains(131));
        assert_eq!(RowSet::new().complement(64).len(), 64);
        assert!(RowSet::full(10).complement(10).is_empty());
    }

    #[test]
    fn compiles_a_filter() {
        let docs: Vec<Metadata> = (0..10)
            .map(|i| match json!({ "n": i }) {
                serde_json::Value::Object(m) => m,
                _ => unreachable!(),
            })
            .collect();
        let f = Filter::parse(&json!({"must": [{"key": "n", "range": {"gte": 7}}]})).unwrap();
        let set = RowSet::compile(&f, docs.iter().enumerate().map(|(i, m)| (i as u64, m)));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![7, 8, 9]);
    }
}
