//! Counters of the batches a model service runs, read by the server's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use quiver_core::stats::{Histogram, Snapshot, COUNT_BOUNDS};

/// Updated by the worker before each batch runs.
#[derive(Debug)]
pub(crate) struct BatchStats {
    items: Histogram,
    tokens: AtomicU64,
    padded_tokens: AtomicU64,
}

impl Default for BatchStats {
    fn default() -> Self {
        BatchStats {
            items: Histogram::new(COUNT_BOUNDS),
            tokens: AtomicU64::new(0),
            padded_tokens: AtomicU64::new(0),
        }
    }
}

/// What one service has run since it started.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStats {
    /// Texts (or pairs) per batch; its count is the number of batches.
    pub batch_items: Snapshot,
    /// Tokens of the inputs, without padding.
    pub tokens: u64,
    /// Tokens the model computed: items × the longest item, per batch.
    pub padded_tokens: u64,
}

impl BatchStats {
    /// Records a batch whose items have the given token counts.
    pub(crate) fn record(&self, tokens: impl Iterator<Item = usize> + Clone) {
        let items = tokens.clone().count();
        let longest = tokens.clone().max().unwrap_or(0);
        let total: usize = tokens.sum();
        self.items.observe(items as f64);
        self.tokens.fetch_add(total as u64, Ordering::Relaxed);
        self.padded_tokens
            .fetch_add((items * longest) as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ServiceStats {
        ServiceStats {
            batch_items: self.items.snapshot(),
            tokens: self.tokens.load(Ordering::Relaxed),
            padded_tokens: self.padded_tokens.load(Ordering::Relaxed),
        }
    }
}
