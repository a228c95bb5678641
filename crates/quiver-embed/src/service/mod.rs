//! The batching services that share one loaded model between every caller.
//!
//! [`EmbedService`] owns one [`TextEmbedder`](crate::TextEmbedder) and [`RerankService`] one
//! [`Reranker`](crate::Reranker); each runs the model on its own worker thread behind a
//! bounded queue. Callers block on [`EmbedService::embed`] or take a [`Pending`] from
//! `submit` and `.await` it. Query traffic goes before bulk ingest, batches are length-sorted
//! and bounded by a padded-token budget, a full queue answers
//! [`EmbedError::Overloaded`](crate::EmbedError::Overloaded) at once, and repeated query
//! embeddings come from a small LRU cache.

mod batch;
mod cache;
mod embed;
mod pending;
mod queue;
mod rerank;
mod stats;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use embed::EmbedService;
pub use pending::Pending;
pub use rerank::RerankService;
pub use stats::ServiceStats;

/// How urgent a request is; every queued query item runs before any bulk item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Interactive work (search queries, reranking): runs first; embeddings are cached.
    Query = 0,
    /// Ingest of documents: runs when no query is waiting.
    Bulk = 1,
}

/// Limits of one model service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Name used in errors and the worker thread's name.
    pub model_name: String,
    /// Largest padded batch, in tokens (`items × longest item`); a single longer text still
    /// runs, alone.
    pub max_batch_tokens: usize,
    /// Most texts in one batch.
    pub max_batch_items: usize,
    /// Most texts waiting in the queue; beyond it submits fail with `Overloaded`.
    pub max_queued_items: usize,
    /// Query embeddings kept in the LRU cache (0 disables it).
    pub cache_entries: usize,
    /// Threads of the model's own pool, which its batches run on (0: one per core).
    /// The pool is the model's alone, so graph builds on the shared pool never queue
    /// behind a batch, nor a batch behind them.
    pub threads: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            model_name: "model".to_string(),
            // 8 x 512 padded tokens: large enough to keep the matmuls efficient on CPU,
            // small enough that a query waits at most one such batch.
            max_batch_tokens: 4096,
            max_batch_items: 64,
            max_queued_items: 4096,
            cache_entries: 1024,
            threads: 0,
        }
    }
}
