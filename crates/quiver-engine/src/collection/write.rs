//! The write path: validate, log one WAL record per batch, apply to the memtable,
//! the text index and the memtable's HNSW graph.
//!
//! Nothing is written before the whole batch validates, so a bad document leaves the
//! collection and its WAL untouched. Application compares LSNs: a batch that reaches
//! the memtable after a newer write of the same id (concurrent writers) is ignored for
//! that id, in the memtable and the text index alike (both under the state lock). The
//! graph insert runs after the state lock is released, still inside the writers' gate.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use quiver_index::TextIndex;

use quiver_core::{normalize, validate_vector, DocChunk, Document};
use quiver_storage::wal::WalRecord;
use quiver_storage::StorageError;

use super::{text, Collection, Inner, State};
use crate::dense::VecIndex;
use crate::memtable::MemDoc;
use crate::record::{self, WalDoc, KIND_DELETE, KIND_UPSERT, KIND_UPSERT_V1};
use crate::{EngineError, Result};

impl Collection {
    /// Inserts or replaces `docs` (by id; within a batch the last copy of an id wins)
    /// and returns the LSN of the batch's WAL record once it is as durable as the
    /// sync policy promises. Cosine collections store normalized vectors. An empty
    /// batch writes nothing and returns the current LSN.
    ///
    /// When the memtable is full and the previous one is still being sealed, the call
    /// first waits for that seal (see `seal`); it never waits for a graph build.
    pub fn upsert(&self, docs: Vec<Document>) -> Result<u64> {
        self.inner.make_room();
        let lsn = self.inner.upsert(docs)?;
        self.inner.commit_text_if_due();
        self.inner.freeze_if_full();
        Ok(lsn)
    }

    /// Deletes `ids` (missing ids are fine) and returns the LSN of the WAL record.
    /// An empty list writes nothing and returns the current LSN.
    pub fn delete(&self, ids: &[String]) -> Result<u64> {
        self.inner.make_room();
        let lsn = self.inner.delete(ids)?;
        self.inner.commit_text_if_due();
        self.inner.freeze_if_full();
        Ok(lsn)
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(EngineError::InvalidInput(
            "document id must not be empty".into(),
        ));
    }
    Ok(())
}

/// Chunks must be ranges of the text on character boundaries, in text order.
fn check_chunks(doc: &Document) -> Result<()> {
    let mut prev_start = 0;
    for c in &doc.chunks {
        let inside = c.start <= c.end
            && c.start >= prev_start
            && doc.text.is_char_boundary(c.start)
            && doc.text.is_char_boundary(c.end);
        if !inside {
            return Err(EngineError::InvalidInput(format!(
                "document {:?}: chunk {}..{} is not an ordered range of its {}-byte text on \
                 character boundaries",
                doc.id,
                c.start,
                c.end,
                doc.text.len()
            )));
        }
        prev_start = c.start;
    }
    Ok(())
}

impl Inner {
    /// Validates and converts a batch before anything is written.
    fn prepare(&self, docs: Vec<Document>) -> Result<Vec<WalDoc>> {
        let dim = self.config.dim;
        let normalizes = self.config.distance.normalizes();
        let checked = |id: &str, mut v: Vec<f32>| -> Result<Vec<f32>> {
            validate_vector(&v, dim)
                .map_err(|e| EngineError::InvalidInput(format!("document {id:?}: {e}")))?;
            if normalizes {
                normalize(&mut v);
            }
            Ok(v)
        };
        docs.into_iter()
            .map(|doc| {
                check_id(&doc.id)?;
                check_chunks(&doc)?;
                let metadata_json = serde_json::to_string(&doc.metadata)
                    .map_err(|e| EngineError::InvalidInput(format!("metadata: {e}")))?;
                let mut vector = checked(&doc.id, doc.vector)?;
                let mut chunks: Vec<DocChunk> = doc
                    .chunks
                    .into_iter()
                    .map(|c| {
                        Ok(DocChunk {
                            vector: checked(&doc.id, c.vector)?,
                            ..c
                        })
                    })
                    .collect::<Result<_>>()?;
                if chunks.len() == 1 {
                    // One chunk is the document embedded whole: searched by that
                    // chunk's vector, stored as a document without chunks.
                    vector = chunks.remove(0).vector;
                }
                Ok(WalDoc {
                    id: doc.id,
                    text: doc.text,
                    metadata_json,
                    vector,
                    chunks,
                })
            })
            .collect()
    }

    fn upsert(&self, docs: Vec<Document>) -> Result<u64> {
        self.check_writable()?;
        let docs = self.prepare(docs)?;
        if docs.is_empty() {
            return Ok(self.wal.last_lsn());
        }
        let _writing = self.counters.writing();
        let payload = record::encode(&docs)?;
        // Shared gate across append + apply: a seal cannot freeze the memtable
        // between the two, so its checkpoint never skips an applied record.
        let _gate = self.gate.read();
        let lsn = self.wal.append(KIND_UPSERT, &payload)?;
        let applied = {
            let mut st = self.state.write();
            let applied = apply_upsert(&mut st, lsn, docs, Some(&self.text));
            (st.active.graph().cloned(), applied)
        };
        self.after_apply(applied.0, applied.1);
        Ok(lsn)
    }

    fn delete(&self, ids: &[String]) -> Result<u64> {
        self.check_writable()?;
        for id in ids {
            check_id(id)?;
        }
        if ids.is_empty() {
            return Ok(self.wal.last_lsn());
        }
        let _writing = self.counters.writing();
        let payload = record::encode(&ids)?;
        let _gate = self.gate.read();
        let lsn = self.wal.append(KIND_DELETE, &payload)?;
        let n = apply_delete(&mut self.state.write(), lsn, ids, Some(&self.text));
        self.text_pending.fetch_add(n as u64, Ordering::AcqRel);
        Ok(lsn)
    }

    /// Counts the text updates and adds the new versions to the memtable's graph.
    fn after_apply(&self, graph: Option<Arc<VecIndex>>, applied: Applied) {
        self.text_pending
            .fetch_add(applied.rows.len() as u64, Ordering::AcqRel);
        if let Some(g) = graph {
            insert_rows(&g, &applied.rows);
        }
    }
}

/// Adds rows to a memtable graph; a failure only costs recall until the next seal
/// (the graph cannot reject vectors the batch validation accepted).
pub(super) fn insert_rows(graph: &VecIndex, rows: &[(u64, Vec<f32>)]) {
    let result = if rows.len() > 64 {
        let refs: Vec<(u64, &[f32])> = rows.iter().map(|(r, v)| (*r, v.as_slice())).collect();
        graph.insert_batch(&refs)
    } else {
        rows.iter().try_for_each(|(r, v)| graph.insert(*r, v))
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "memtable graph insert failed");
    }
}

/// The writes of one record that were applied: memtable sequence numbers and vectors
/// of the new document versions, for the graph.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub(super) rows: Vec<(u64, Vec<f32>)>,
}

/// Marks every segment row of `id` deleted: the memtable now holds a newer write.
fn supersede(st: &State, id: &str) {
    for seg in st.segments.iter() {
        if let Some(row) = seg.segment().find(id) {
            seg.mark_deleted(row);
        }
    }
}

fn newer_in_memtable(st: &State, id: &str, lsn: u64) -> bool {
    st.active.get(id).is_some_and(|e| e.lsn > lsn)
}

pub(super) fn apply_upsert(
    st: &mut State,
    lsn: u64,
    docs: Vec<WalDoc>,
    text_index: Option<&TextIndex>,
) -> Applied {
    let mut applied = Applied::default();
    for d in docs {
        if newer_in_memtable(st, &d.id, lsn) {
            continue;
        }
        supersede(st, &d.id);
        if let Some(t) = text_index {
            text::apply(t, &d.id, Some(&d.text));
        }
        let doc = MemDoc {
            text: d.text,
            metadata_json: d.metadata_json,
            vector: d.vector,
            chunks: d.chunks,
        };
        let vectors: Vec<Vec<f32>> = (0..doc.nodes())
            .map(|c| doc.node_vector(c).to_vec())
            .collect();
        if let Some(seq) = st.active.apply(&d.id, lsn, Some(doc)) {
            applied.rows.extend((seq..).zip(vectors));
        }
    }
    applied
}

/// Applies deletes; returns how many reached the memtable.
pub(super) fn apply_delete(
    st: &mut State,
    lsn: u64,
    ids: &[String],
    text_index: Option<&TextIndex>,
) -> usize {
    let mut n = 0;
    for id in ids {
        if newer_in_memtable(st, id, lsn) {
            continue;
        }
        supersede(st, id);
        if let Some(t) = text_index {
            text::apply(t, id, None);
        }
        st.active.apply(id, lsn, None);
        n += 1;
    }
    n
}

/// Applies one recovered WAL record (to the text index too when `text_index` is
/// given); returns how many documents or deletes it held and the graph rows to add.
pub(super) fn replay(
    st: &mut State,
    rec: &WalRecord,
    wal_dir: &Path,
    text_index: Option<&TextIndex>,
) -> Result<(usize, Applied)> {
    match rec.kind {
        KIND_UPSERT | KIND_UPSERT_V1 => {
            let docs = record::decode_upsert(rec.kind, &rec.payload)?;
            let n = docs.len();
            Ok((n, apply_upsert(st, rec.lsn, docs, text_index)))
        }
        KIND_DELETE => {
            let ids: Vec<String> = record::decode(&rec.payload)?;
            apply_delete(st, rec.lsn, &ids, text_index);
            Ok((ids.len(), Applied::default()))
        }
        other => Err(StorageError::Corruption {
            file: wal_dir.to_path_buf(),
            offset: 0,
            reason: format!("record at LSN {} has unknown kind {other}", rec.lsn),
        }
        .into()),
    }
}
