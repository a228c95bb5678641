//! [`RerankService`]: the batching front of one reranker.

use std::sync::Arc;

use super::pending::Pending;
use super::queue::{BatchModel, Batcher, Input};
use super::{Priority, ServiceConfig};
use crate::{Reranker, Result};

/// Documents batch together only when scored against the same query and instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RerankGroup {
    query: Arc<str>,
    instruction: Option<Arc<str>>,
}

struct RerankModel(Arc<dyn Reranker>);

impl BatchModel for RerankModel {
    type Group = RerankGroup;
    type Output = f32;

    fn run(&self, group: &RerankGroup, docs: &[&str]) -> Result<Vec<f32>> {
        self.0
            .score(&group.query, docs, group.instruction.as_deref())
    }
}

/// Shares one reranker between every caller through a batching worker thread. Reranking is
/// always interactive, so every request has query priority.
pub struct RerankService {
    batcher: Batcher<RerankModel>,
}

impl std::fmt::Debug for RerankService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RerankService")
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl RerankService {
    /// Starts the worker thread for `model`.
    pub fn new(model: Arc<dyn Reranker>, config: ServiceConfig) -> Result<Self> {
        Ok(Self {
            batcher: Batcher::start(RerankModel(model), config)?,
        })
    }

    /// Scores every document against `query` and blocks until done; scores in `0.0..=1.0`,
    /// in the documents' order.
    pub fn score(&self, query: &str, docs: &[&str], instruction: Option<&str>) -> Result<Vec<f32>> {
        self.submit(query, docs, instruction)?.wait()
    }

    /// Queues the pairs and returns at once; wait on (or `.await`) the [`Pending`].
    pub fn submit(
        &self,
        query: &str,
        docs: &[&str],
        instruction: Option<&str>,
    ) -> Result<Pending<f32>> {
        let model = &self.batcher.model().0;
        let inputs = docs
            .iter()
            .enumerate()
            .map(|(index, doc)| {
                let tokens = model.count_tokens(query, doc, instruction)?;
                Ok((index, (*doc).to_string(), tokens))
            })
            .collect::<Result<Vec<Input>>>()?;
        let group = RerankGroup {
            query: Arc::from(query),
            instruction: instruction.map(Arc::from),
        };
        let outputs = (0..docs.len()).map(|_| None).collect();
        self.batcher.submit(outputs, inputs, group, Priority::Query)
    }

    /// Batches, items and tokens run so far.
    pub fn stats(&self) -> super::ServiceStats {
        self.batcher.stats().snapshot()
    }

    /// The shared model itself.
    pub fn model(&self) -> &Arc<dyn Reranker> {
        &self.batcher.model().0
    }

    /// Documents waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.batcher.queued()
    }
}
