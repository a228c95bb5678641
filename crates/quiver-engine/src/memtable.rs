//! The mutable segment: the newest version of every id written since the last seal,
//! deletes included (as LSN-stamped tombstones, so an older batch applied late cannot
//! resurrect a deleted id). It lives in memory only; the WAL makes it durable.
//!
//! Every applied write gets a sequence number per node (one per chunk, or one for a
//! document embedded whole or a delete), the row keys of the memtable's HNSW graph:
//! the graph only grows, so an overwritten version keeps its nodes and searches skip
//! them because its id's entry now starts at a newer sequence number. The metadata
//! index works the same way: it indexes every node of every applied version, and a
//! filter's rows are checked against the newest write of their id.

use std::collections::HashMap;
use std::sync::Arc;

use quiver_core::{DocChunk, Metadata};
use quiver_index::{MemFields, VectorSource};

use crate::dense::VecIndex;

/// A document version held in memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemDoc {
    pub(crate) text: String,
    pub(crate) metadata_json: String,
    pub(crate) vector: Vec<f32>,
    /// Chunks in text order; empty for a document embedded whole.
    pub(crate) chunks: Vec<DocChunk>,
}

impl MemDoc {
    /// Graph nodes the document takes: one per chunk, or one.
    pub(crate) fn nodes(&self) -> usize {
        self.chunks.len().max(1)
    }

    /// The vector of node `chunk` (the document's own without chunks).
    pub(crate) fn node_vector(&self, chunk: usize) -> &[f32] {
        match self.chunks.get(chunk) {
            Some(c) => &c.vector,
            None => &self.vector,
        }
    }
}

/// The newest write of one id: a document, or a delete (`doc == None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemEntry {
    pub(crate) lsn: u64,
    /// Sequence number of the write's first node (graph row key).
    pub(crate) seq: u64,
    pub(crate) doc: Option<MemDoc>,
}

/// Newest version per id, with running totals for the seal threshold.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    entries: HashMap<String, MemEntry>,
    /// Id and chunk number of every node of every applied write, indexed by
    /// sequence number.
    by_seq: Vec<(Arc<str>, u32)>,
    live: usize,
    /// Nodes of the documents in `live`.
    live_nodes: usize,
    bytes: usize,
    /// HNSW graph over the documents, keyed by sequence number.
    graph: Option<Arc<VecIndex>>,
    /// Metadata index over the documents, keyed by sequence number.
    fields: MemFields,
}

fn doc_bytes(id: &str, doc: &Option<MemDoc>) -> usize {
    // Rough heap footprint; it only decides when to seal.
    64 + id.len()
        + doc.as_ref().map_or(0, |d| {
            d.text.len()
                + d.metadata_json.len()
                + (d.vector.len() + d.chunks.iter().map(|c| c.vector.len()).sum::<usize>()) * 4
        })
}

impl Memtable {
    /// An empty memtable with its own graph.
    pub(crate) fn with_graph(graph: VecIndex) -> Self {
        Memtable {
            graph: Some(Arc::new(graph)),
            ..Memtable::default()
        }
    }

    /// The memtable's graph (absent only in unit tests).
    pub(crate) fn graph(&self) -> Option<&Arc<VecIndex>> {
        self.graph.as_ref()
    }

    /// Records `doc` (or a delete) for `id` at `lsn` unless a newer write of `id` is
    /// already here. Equal LSNs replace: later documents of one batch win. Returns the
    /// sequence number of the write's first node when it was applied; its nodes are
    /// numbered on from there.
    pub(crate) fn apply(&mut self, id: &str, lsn: u64, doc: Option<MemDoc>) -> Option<u64> {
        if let Some(old) = self.entries.get(id) {
            if old.lsn > lsn {
                return None;
            }
        }
        let seq = self.by_seq.len() as u64;
        let nodes = doc.as_ref().map_or(1, MemDoc::nodes);
        let shared: Arc<str> = Arc::from(id);
        // Chunk numbers fit u32: a chunk holds at least one byte of a text under 4 GiB.
        self.by_seq
            .extend((0..nodes as u32).map(|c| (Arc::clone(&shared), c)));
        if let Some(d) = &doc {
            // Unreadable metadata matches no condition, so it is left out.
            if let Ok(m) = serde_json::from_str::<Metadata>(&d.metadata_json) {
                for node in seq..seq + nodes as u64 {
                    self.fields.add(node, &m);
                }
            }
        }
        let node_count = |d: &Option<MemDoc>| d.as_ref().map_or(0, MemDoc::nodes);
        self.bytes += doc_bytes(id, &doc);
        self.live += usize::from(doc.is_some());
        self.live_nodes += node_count(&doc);
        if let Some(old) = self
            .entries
            .insert(id.to_string(), MemEntry { lsn, seq, doc })
        {
            self.bytes -= doc_bytes(id, &old.doc);
            self.live -= usize::from(old.doc.is_some());
            self.live_nodes -= node_count(&old.doc);
        }
        Some(seq)
    }

    /// The metadata index (rows are sequence numbers, stale versions included).
    pub(crate) fn fields(&self) -> &MemFields {
        &self.fields
    }

    /// The id and current document of node `seq`, if its write is still the newest of
    /// its id and not a delete.
    pub(crate) fn current(&self, seq: u64) -> Option<(&str, &MemDoc)> {
        self.node(seq).map(|(id, d, _)| (&**id, d))
    }

    /// The id (shared: a query keeps it past the state lock without copying), current
    /// document and chunk number of node `seq`, if its write is still the newest of its
    /// id and not a delete.
    pub(crate) fn node(&self, seq: u64) -> Option<(&Arc<str>, &MemDoc, u32)> {
        let (id, chunk) = self.by_seq.get(usize::try_from(seq).ok()?)?;
        let entry = self.entries.get(&**id)?;
        (entry.seq + u64::from(*chunk) == seq)
            .then_some(entry.doc.as_ref())
            .flatten()
            .map(|d| (id, d, *chunk))
    }

    /// Nodes of the documents held (chunks, or one per document embedded whole).
    pub(crate) fn live_nodes(&self) -> usize {
        self.live_nodes
    }

    /// Graph nodes so far (overwritten versions included).
    pub(crate) fn writes(&self) -> usize {
        self.by_seq.len()
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

impl VectorSource for Memtable {
    fn vector(&self, seq: u64) -> Option<&[f32]> {
        self.node(seq).map(|(_, d, c)| d.node_vector(c as usize))
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
            chunks: Vec::new(),
        })
    }

    #[test]
    fn newest_lsn_wins() {
        let mut m = Memtable::default();
        assert_eq!(m.apply("a", 5, doc("five")), Some(0));
        assert!(
            m.apply("a", 4, doc("four")).is_none(),
            "older write must not win"
        );
        assert_eq!(m.get("a").unwrap().doc, doc("five"));
        assert_eq!(m.current(0).unwrap().0, "a");
        assert_eq!(m.apply("a", 6, None), Some(1));
        assert!(m.current(0).is_none() && m.current(1).is_none());
        assert!(
            m.apply("a", 5, doc("again")).is_none(),
            "a delete is newer than an old upsert"
        );
        assert_eq!((m.len(), m.live()), (1, 0));
        assert_eq!(m.apply("b", 7, doc("b")), Some(2));
        assert_eq!((m.len(), m.live(), m.writes()), (2, 1, 3));
        assert_eq!(m.vector(2), Some(&[0.0f32][..]));
    }

    #[test]
    fn chunks_take_one_node_each_and_go_together() {
        let chunk = |x: f32| DocChunk {
            start: 0,
            end: 1,
            vector: vec![x],
        };
        let mut m = Memtable::default();
        let long = MemDoc {
            text: "t".into(),
            metadata_json: "{}".into(),
            vector: vec![1.0],
            chunks: vec![chunk(1.0), chunk(2.0), chunk(3.0)],
        };
        assert_eq!(m.apply("a", 1, Some(long)), Some(0));
        assert_eq!(m.apply("b", 2, doc("b")), Some(3));
        assert_eq!((m.writes(), m.live(), m.live_nodes()), (4, 2, 4));
        assert_eq!(m.vector(2), Some(&[3.0f32][..]));
        assert_eq!(m.node(1).map(|(id, _, c)| (&**id, c)), Some(("a", 1)));
        // Replacing `a` with a whole document retires all three chunk nodes.
        assert_eq!(m.apply("a", 3, doc("a")), Some(4));
        assert!((0..3).all(|s| m.node(s).is_none()));
        assert_eq!((m.writes(), m.live(), m.live_nodes()), (5, 2, 2));
        assert_eq!(m.current(4).map(|(id, _)| id), Some("a"));
    }
}
