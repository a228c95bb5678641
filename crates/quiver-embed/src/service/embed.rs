//! [`EmbedService`]: the batching front of one text embedder, with the query cache.

use std::sync::{Arc, Mutex, PoisonError};

use super::cache::Lru;
use super::pending::Pending;
use super::queue::{BatchModel, Batcher, Input};
use super::{Priority, ServiceConfig};
use crate::{Result, TextEmbedder};

/// Cache key: the query task (instruction) and the text.
type Key = (Option<Arc<str>>, String);

/// Texts batch together only with the same task; `cache` marks query-priority batches, whose
/// results go into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmbedGroup {
    task: Option<Arc<str>>,
    cache: bool,
}

struct EmbedModel {
    model: Arc<dyn TextEmbedder>,
    cache: Mutex<Lru<Key, Vec<f32>>>,
}

impl EmbedModel {
    fn cache(&self) -> std::sync::MutexGuard<'_, Lru<Key, Vec<f32>>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BatchModel for EmbedModel {
    type Group = EmbedGroup;
    type Output = Vec<f32>;

    fn run(&self, group: &EmbedGroup, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let vectors = self.model.embed(texts, group.task.as_deref())?;
        if group.cache && vectors.len() == texts.len() {
            let mut cache = self.cache();
            for (text, vector) in texts.iter().zip(&vectors) {
                cache.insert((group.task.clone(), (*text).to_string()), vector.clone());
            }
        }
        Ok(vectors)
    }
}

/// Shares one embedding model between every caller through a batching worker thread.
pub struct EmbedService {
    batcher: Batcher<EmbedModel>,
}

impl std::fmt::Debug for EmbedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedService")
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl EmbedService {
    /// Starts the worker thread for `model`.
    pub fn new(model: Arc<dyn TextEmbedder>, config: ServiceConfig) -> Result<Self> {
        let cache = Mutex::new(Lru::new(config.cache_entries));
        Ok(Self {
            batcher: Batcher::start(EmbedModel { model, cache }, config)?,
        })
    }

    /// Embeds `texts` (queries with instruction `task` if given, else documents) and blocks
    /// until done. Returns one vector of [`width`](Self::width) per text, in order.
    pub fn embed(
        &self,
        texts: &[&str],
        task: Option<&str>,
        priority: Priority,
    ) -> Result<Vec<Vec<f32>>> {
        self.submit(texts, task, priority)?.wait()
    }

    /// Queues `texts` and returns at once; wait on (or `.await`) the [`Pending`]. Fails
    /// immediately with `Overloaded` when the queue is full and with the model's error when
    /// a text cannot be tokenized. Query-priority texts seen recently come from the cache.
    pub fn submit(
        &self,
        texts: &[&str],
        task: Option<&str>,
        priority: Priority,
    ) -> Result<Pending<Vec<f32>>> {
        let model = self.batcher.model();
        let task: Option<Arc<str>> = task.map(Arc::from);
        let use_cache = priority == Priority::Query && self.batcher.config().cache_entries > 0;
        let mut outputs = Vec::with_capacity(texts.len());
        let mut inputs: Vec<Input> = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            let hit = if use_cache {
                model.cache().get(&(task.clone(), (*text).to_string()))
            } else {
                None
            };
            if hit.is_none() {
                let tokens = model.model.count_tokens(text, task.as_deref())?;
                inputs.push((index, (*text).to_string(), tokens));
            }
            outputs.push(hit);
        }
        let group = EmbedGroup {
            task,
            cache: use_cache,
        };
        self.batcher.submit(outputs, inputs, group, priority)
    }

    /// The model's full output width.
    pub fn width(&self) -> usize {
        self.batcher.model().model.width()
    }

    /// Batches, items and tokens run so far.
    pub fn stats(&self) -> super::ServiceStats {
        self.batcher.stats().snapshot()
    }

    /// The shared model itself.
    pub fn model(&self) -> &Arc<dyn TextEmbedder> {
        &self.batcher.model().model
    }

    /// Texts waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.batcher.queued()
    }

    /// Query embeddings held in the cache now.
    pub fn cached(&self) -> usize {
        self.batcher.model().cache().len()
    }
}
