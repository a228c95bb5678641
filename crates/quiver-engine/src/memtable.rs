//! The mutable segment: the newest version of every id written since the last seal,
//! deletes included (as LSN-stamped tombstones, so an older batch applied late cannot
//! resurrect a deleted id). It lives in memory only; the WAL makes it durable.

use std::collections::HashMap;

/// A document version held in memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemDoc {
    pub(crate) text: String,
    pub(crate) metadata_json: String,
    pub(crate) vector: Vec<f32>,
}

/// The newest write of one id: a document, or a delete (`doc == None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemEntry {
    pub(crate) lsn: u64,
    pub(crate) doc: Option<MemDoc>,
}

/// Newest version per id, with running totals for the seal threshold.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    entries: HashMap<String, MemEntry>,
    live: usize,
    bytes: usize,
}

fn doc_bytes(id: &str, doc: &Option<MemDoc>) -> usize {
    // Rough heap footprint; it only decides when to seal.
    64 + id.len()
        + doc.as_ref().map_or(0, |d| {
            d.text.len() + d.metadata_json.len() + d.vector.len() * 4
        })
}

impl Memtable {
    /// Records `doc` (or a delete) for `id` at `lsn` unless a newer write of `id` is
    /// already here. Equal LSNs replace: later documents of one batch win.
    pub(crate) fn apply(&mut self, id: &str, lsn: u64, doc: Option<MemDoc>) -> bool {
        if let Some(old) = self.entries.get(id) {
            if old.lsn > lsn {
                return false;
            }
        }
        self.bytes += doc_bytes(id, &doc);
        self.live += usize::from(doc.is_some());
        if let Some(old) = self.entries.insert(id.to_string(), MemEntry { lsn, doc }) {
            self.bytes -= doc_bytes(id, &old.doc);
            self.live -= usize::from(old.doc.is_some());
        }
        true
    }

    /// Inserts an entry only if `id` has none (used to fold a frozen table back in).
    pub(crate) fn insert_if_absent(&mut self, id: &str, entry: &MemEntry) {
        if !self.entries.contains_key(id) {
            self.apply(id, entry.lsn, entry.doc.clone());
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&MemEntry> {
        self.entries.get(id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &MemEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Entries (documents and deletes).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries holding a document.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(t: &str) -> Option<MemDoc> {
        Some(MemDoc {
            text: t.into(),
            metadata_json: "{}".into(),
            vector: vec![0.0],
        })
    }

    #[test]
    fn newest_lsn_wins() {
        let mut m = Memtable::default();
        assert!(m.apply("a", 5, doc("five")));
        assert!(!m.apply("a", 4, doc("four")), "older write must not win");
        assert_eq!(m.get("a").unwrap().doc, doc("five"));
        assert!(m.apply("a", 6, None));
        assert!(
            !m.apply("a", 5, doc("again")),
            "a delete is newer than an old upsert"
        );
        assert_eq!((m.len(), m.live()), (1, 0));
        assert!(m.apply("b", 7, doc("b")));
        assert_eq!((m.len(), m.live()), (2, 1));
        let before = m.bytes();
        m.insert_if_absent(
            "b",
            &MemEntry {
                lsn: 1,
                doc: doc("old"),
            },
        );
        assert_eq!(m.get("b").unwrap().lsn, 7);
        assert_eq!(m.bytes(), before);
    }
}
