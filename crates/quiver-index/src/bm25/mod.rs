//! Sparse search: a BM25 full-text index (tantivy) per collection.
//!
//! Each indexed document has three fields:
//!
//! | field | options | holds |
//! |-------|---------|-------|
//! | `id` | raw string, stored | the document id, the upsert and delete key |
//! | `key` | u64, fast, stored | the caller's row key, checked against the query's [`RowFilter`] |
//! | `text` | analyzed with the collection's [`Analyzer`] | the document text |
//!
//! Commits carry a payload, `{"format":1,"last_lsn":N}`, naming the last WAL record whose
//! writes the commit contains; after a crash, recovery replays the WAL from
//! [`TextIndex::last_lsn`] + 1.
//!
//! The `text` field's tokenizer name records the analyzer's pipeline version (see
//! [`Analyzer`]), so an index keeps analyzing queries as it analyzed its documents.
//! Scoring is BM25 with the collection's `k1` and `b` (module `score`).

mod analyzer;
mod passage;
mod score;
#[cfg(test)]
mod tests;
mod words;

use std::collections::BinaryHeap;
use std::path::Path;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use analyzer::{Analyzer, CjkTokenizer, Highlighter};
pub use passage::PassageScorer;
pub use words::WordTokenizer;

use analyzer::Pipeline;
use quiver_core::Bm25Config;
use score::{collection_stats, idf, Bm25Query};

use crate::{IndexError, Result, RowFilter};

/// Memory the writer may buffer before it flushes a segment, split over its threads.
const WRITER_BUDGET_BYTES: usize = 64 << 20;
const WRITER_THREADS: usize = 2;
const PAYLOAD_FORMAT: u32 = 1;

/// One full-text result.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    pub id: String,
    pub key: u64,
    pub score: f32,
}

#[derive(Serialize, Deserialize)]
struct CommitPayload {
    format: u32,
    last_lsn: u64,
}

/// A BM25 index over document texts.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    /// `None` only while the index is dropped (see its `Drop`).
    writer: Mutex<Option<IndexWriter<TantivyDocument>>>,
    pipeline: Pipeline,
    bm25: Bm25Config,
    id: Field,
    key: Field,
    text: Field,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("pipeline", &self.pipeline)
            .field("bm25", &self.bm25)
            .field("docs", &self.num_docs())
            .finish()
    }
}

impl Drop for TextIndex {
    /// Waits for background segment merges: dropping the writer alone leaves them running,
    /// writing into the directory after the index is gone (a dropped collection's files
    /// are then renamed and deleted under them). A failed merge needs nothing here: the
    /// next open removes whatever files it left.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.get_mut().take() {
            let _ = writer.wait_merging_threads();
        }
    }
}

fn schema(pipeline: Pipeline) -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field("id", STRING | STORED);
    builder.add_u64_field("key", FAST | STORED | INDEXED);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(pipeline.tokenizer_name())
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    builder.build()
}

/// A top-k candidate; ordered so the heap's top is the worst kept hit.
#[derive(PartialEq)]
struct Candidate {
    score: f32,
    key: u64,
    doc: DocAddress,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // "Greater" means worse: lower score, then higher key.
        other
            .score
            .total_cmp(&self.score)
            .then(self.key.cmp(&other.key))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TextIndex {
    /// Creates a new, empty index in `dir` (which must exist and hold no index).
    pub fn create(dir: &Path, analyzer: Analyzer) -> Result<Self> {
        let index = Index::create_in_dir(dir, schema(Pipeline::current(analyzer)))?;
        Self::from_index(index)
    }

    /// Opens the index in `dir`, or creates it there (creating `dir` too) if absent.
    /// An existing index keeps the analyzer it was created with, in the pipeline version
    /// it was created with; asking for another analyzer is an error rather than a silent
    /// mismatch between old and new documents.
    pub fn open_or_create(dir: &Path, analyzer: Analyzer) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        // tantivy writes meta.json last when it creates an index, so its presence means
        // an index exists here.
        if !dir.join("meta.json").exists() {
            return Self::create(dir, analyzer);
        }
        let opened = Self::open(dir)?;
        if opened.analyzer() != analyzer {
            return Err(IndexError::InvalidInput(format!(
                "text index in {} uses analyzer {:?}, not {:?}",
                dir.display(),
                opened.analyzer(),
                analyzer
            )));
        }
        Ok(opened)
    }

    /// Opens an existing index; its analyzer is read from the schema.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::from_index(Index::open_in_dir(dir)?)
    }

    /// An index held in memory only (tests, scratch work).
    pub fn in_memory(analyzer: Analyzer) -> Result<Self> {
        Self::from_index(Index::create_in_ram(schema(Pipeline::current(analyzer))))
    }

    /// Scores later searches with `bm25` (the default is k1 = 1.2, b = 0.75). Query-time
    /// only: nothing in the index depends on it.
    pub fn with_bm25(mut self, bm25: Bm25Config) -> Self {
        self.bm25 = bm25;
        self
    }

    fn from_index(index: Index) -> Result<Self> {
        for p in Pipeline::ALL {
            index.tokenizers().register(p.tokenizer_name(), p.build());
        }
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| IndexError::Corrupt {
                path: name.into(),
                reason: format!("text index schema lacks the {name:?} field"),
            })
        };
        let (id, key, text) = (field("id")?, field("key")?, field("text")?);
        let tokenizer = match schema.get_field_entry(text).field_type() {
            tantivy::schema::FieldType::Str(options) => options
                .get_indexing_options()
                .map(|i| i.tokenizer().to_owned()),
            _ => None,
        };
        let pipeline = tokenizer
            .as_deref()
            .and_then(Pipeline::from_tokenizer_name)
            .ok_or_else(|| IndexError::Corrupt {
                path: "text".into(),
                reason: format!("text field uses unknown tokenizer {tokenizer:?}"),
            })?;
        let writer = index.writer_with_num_threads(WRITER_THREADS, WRITER_BUDGET_BYTES)?;
        // A crash between a commit's delete files and its meta.json leaves those files
        // behind. Replaying the same operations gives the next commit the same opstamps,
        // hence the same file names, and tantivy refuses to overwrite them; the files are
        // registered as managed but unreferenced, so collecting them now clears the way.
        writer.garbage_collect_files().wait()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(TextIndex {
            index,
            reader,
            writer: Mutex::new(Some(writer)),
            pipeline,
            bm25: Bm25Config::default(),
            id,
            key,
            text,
        })
    }

    fn writer(&self) -> Result<MappedMutexGuard<'_, IndexWriter<TantivyDocument>>> {
        MutexGuard::try_map(self.writer.lock(), Option::as_mut)
            .map_err(|_| IndexError::InvalidInput("the text index is closed".into()))
    }

    /// The analyzer documents and queries go through.
    pub fn analyzer(&self) -> Analyzer {
        self.pipeline.analyzer()
    }

    /// The BM25 settings searches score with.
    pub fn bm25(&self) -> Bm25Config {
        self.bm25
    }

    /// Adds or replaces the document `id`. Visible to searches after [`Self::commit`].
    pub fn upsert(&self, id: &str, key: u64, text: &str) -> Result<()> {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, id);
        doc.add_u64(self.key, key);
        doc.add_text(self.text, text);
        let writer = self.writer()?;
        // The delete is ordered before the add, so it removes only older versions.
        writer.delete_term(Term::from_field_text(self.id, id));
        writer.add_document(doc)?;
        Ok(())
    }

    /// Removes the document `id` (if present) at the next commit.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.writer()?
            .delete_term(Term::from_field_text(self.id, id));
        Ok(())
    }

    /// Makes every change so far durable and visible, recording `lsn` as the last WAL
    /// record they cover.
    pub fn commit(&self, lsn: u64) -> Result<()> {
        let payload = serde_json::to_string(&CommitPayload {
            format: PAYLOAD_FORMAT,
            last_lsn: lsn,
        })
        .map_err(|e| IndexError::InvalidInput(e.to_string()))?;
        let mut writer = self.writer()?;
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The LSN recorded by the latest commit, `None` before the first one.
    pub fn last_lsn(&self) -> Result<Option<u64>> {
        let Some(payload) = self.index.load_metas()?.payload else {
            return Ok(None);
        };
        let parsed: CommitPayload =
            serde_json::from_str(&payload).map_err(|e| IndexError::Corrupt {
                path: "meta.json".into(),
                reason: format!("commit payload {payload:?}: {e}"),
            })?;
        if parsed.format != PAYLOAD_FORMAT {
            return Err(IndexError::Corrupt {
                path: "meta.json".into(),
                reason: format!("commit payload format {} is not supported", parsed.format),
            });
        }
        Ok(Some(parsed.last_lsn))
    }

    /// Documents visible to searches (committed, not deleted).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The query's distinct terms after analysis, each with how often the query holds
    /// it. BM25 sums over the query's terms with repeats (Lucene, Elasticsearch and
    /// bm25s alike), so a term the user repeats weighs that many times.
    fn query_terms(&self, query: &str) -> Vec<(Term, usize)> {
        let mut terms: Vec<Term> = self
            .pipeline
            .tokens(query)
            .iter()
            .map(|t| Term::from_field_text(self.text, t))
            .collect();
        terms.sort();
        let mut counted: Vec<(Term, usize)> = Vec::with_capacity(terms.len());
        for t in terms {
            match counted.last_mut() {
                Some((last, n)) if *last == t => *n += 1,
                _ => counted.push((t, 1)),
            }
        }
        counted
    }

    /// Marks where texts hold `query`'s words, through this index's own analyzer (so an
    /// index keeps matching the way it indexed); see [`Highlighter::mark`].
    pub fn highlighter(&self, query: &str) -> Highlighter {
        Highlighter::new(self.pipeline, query)
    }

    /// Scores passages of texts against `query` with this index's statistics and BM25
    /// settings (see [`PassageScorer`]); the statistics are those of the latest commit.
    pub fn passage_scorer(&self, query: &str) -> Result<PassageScorer> {
        let searcher = self.reader.searcher();
        let (docs, avgdl) = collection_stats(&searcher, self.text)?;
        let mut weights = std::collections::HashMap::new();
        for (term, count) in self.query_terms(query) {
            let weight = idf(searcher.doc_freq(&term)?, docs) * (1.0 + self.bm25.k1);
            if let Some(text) = term.value().as_str() {
                weights.insert(text.to_string(), weight * count as f32);
            }
        }
        // An empty index has no length to compare with; any positive mean will do.
        let avgdl = if avgdl.is_finite() && avgdl > 0.0 {
            avgdl
        } else {
            1.0
        };
        Ok(PassageScorer::new(
            weights,
            self.bm25,
            avgdl,
            self.pipeline.build(),
        ))
    }

    /// The `k` best documents for `query` by BM25, best first (ties: lower key first).
    ///
    /// The query text goes through the collection's analyzer and its terms are OR-ed; no
    /// query syntax is interpreted, so any user text is safe. When `filter` is given,
    /// every matching document's key is checked inside the scoring loop, before it can
    /// take one of the `k` places.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        filter: Option<&dyn RowFilter>,
    ) -> Result<Vec<TextHit>> {
        let terms = self.query_terms(query);
        if k == 0 || terms.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let query = Bm25Query::new(&searcher, self.text, terms, self.bm25)?;
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let keys = segment.fast_fields().u64("key")?;
            let alive = segment.alive_bitset();
            let ord = ord as u32;
            query.for_each(segment, &mut |doc, score| {
                if alive.is_some_and(|a| !a.is_alive(doc)) {
                    return;
                }
                let Some(key) = keys.first(doc) else { return };
                if filter.is_some_and(|f| !f.allows(key)) {
                    return;
                }
                heap.push(Candidate {
                    score,
                    key,
                    doc: DocAddress::new(ord, doc),
                });
                if heap.len() > k {
                    heap.pop();
                }
            })?;
        }
        let mut hits = Vec::with_capacity(heap.len());
        for c in heap.into_sorted_vec() {
            let doc: TantivyDocument = searcher.doc(c.doc)?;
            let id = doc
                .get_first(self.id)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            hits.push(TextHit {
                id,
                key: c.key,
                score: c.score,
            });
        }
        Ok(hits)
    }
}
