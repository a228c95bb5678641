//! The bounded two-level queue and the worker thread that drains it, shared by the embedding
//! and reranking services.
//!
//! Requests are split into items (one text each). Items wait in one of two FIFO queues,
//! queries before bulk; an item only batches with items of the same group (same task for
//! embeddings, same query for reranking). The worker takes the oldest item of the most urgent
//! non-empty queue and builds a batch around it with [`batch::pick`]. The queue holds at most
//! `max_queued_items`; a submit that would overflow it fails at once with
//! [`EmbedError::Overloaded`], so callers shed load instead of piling up.

use std::collections::{HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::batch;
use super::pending::{Pending, Request};
use super::stats::BatchStats;
use super::{Priority, ServiceConfig};
use crate::{EmbedError, Result};

/// What the worker runs: one call per batch, all texts sharing one group.
pub(crate) trait BatchModel: Send + Sync + 'static {
    type Group: PartialEq + Clone + Send + 'static;
    type Output: Send + 'static;
    /// Returns one output per text, in order.
    fn run(&self, group: &Self::Group, texts: &[&str]) -> Result<Vec<Self::Output>>;
}

/// One text of a request, waiting to run.
struct Item<M: BatchModel> {
    seq: u64,
    text: String,
    tokens: usize,
    group: M::Group,
    request: Arc<Request<M::Output>>,
    /// Position of the output in the request.
    index: usize,
}

/// A text to queue: its position in the request, the text and its token count.
pub(crate) type Input = (usize, String, usize);

struct State<M: BatchModel> {
    /// Indexed by `Priority as usize`: queries first.
    queues: [VecDeque<Item<M>>; 2],
    next_seq: u64,
    stopping: bool,
}

impl<M: BatchModel> State<M> {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn purge_dead(&mut self) {
        for queue in &mut self.queues {
            queue.retain(|item| !item.request.is_dead());
        }
    }
}

struct Shared<M: BatchModel> {
    model: M,
    config: ServiceConfig,
    stats: BatchStats,
    state: Mutex<State<M>>,
    work: Condvar,
}

impl<M: BatchModel> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The queue plus its worker thread; stopping it (drop) fails whatever is still queued.
pub(crate) struct Batcher<M: BatchModel> {
    shared: Arc<Shared<M>>,
    worker: Option<JoinHandle<()>>,
}

impl<M: BatchModel> Batcher<M> {
    pub(crate) fn start(model: M, config: ServiceConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            model,
            config,
            stats: BatchStats::default(),
            state: Mutex::new(State {
                queues: [VecDeque::new(), VecDeque::new()],
                next_seq: 0,
                stopping: false,
            }),
            work: Condvar::new(),
        });
        let for_worker = Arc::clone(&shared);
        let name = shared.config.model_name.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(shared.config.threads)
            .thread_name(move |i| format!("quiver-model-{name}-{i}"))
            .build()
            .map_err(|e| EmbedError::Inference(format!("cannot start model threads: {e}")))?;
        // The worker drives batches from inside the pool, so every parallel step of a
        // forward pass (products, attention heads) runs on the model's threads.
        let worker = std::thread::Builder::new()
            .name(format!("quiver-model-{}", shared.config.model_name))
            .spawn(move || pool.install(|| work(&for_worker)))
            .map_err(|e| EmbedError::Inference(format!("cannot start model worker: {e}")))?;
        Ok(Self {
            shared,
            worker: Some(worker),
        })
    }

    pub(crate) fn model(&self) -> &M {
        &self.shared.model
    }

    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.shared.config
    }

    pub(crate) fn stats(&self) -> &BatchStats {
        &self.shared.stats
    }

    /// Number of items waiting (not counting the batch running now).
    pub(crate) fn queued(&self) -> usize {
        self.shared.lock().queued()
    }

    /// Queues `inputs` for a request whose known outputs are already in `outputs`.
    pub(crate) fn submit(
        &self,
        outputs: Vec<Option<M::Output>>,
        inputs: Vec<Input>,
        group: M::Group,
        priority: Priority,
    ) -> Result<Pending<M::Output>> {
        let config = &self.shared.config;
        if inputs.len() > config.max_queued_items {
            return Err(EmbedError::InvalidInput(format!(
                "{} texts in one request exceed the queue capacity of {}",
                inputs.len(),
                config.max_queued_items
            )));
        }
        let request = Request::new(outputs);
        if inputs.is_empty() {
            return Ok(Pending::new(request));
        }
        let mut state = self.shared.lock();
        if state.stopping {
            return Err(stopped(config));
        }
        if state.queued() + inputs.len() > config.max_queued_items {
            // Withdrawn requests may still hold places; reclaim them before refusing.
            state.purge_dead();
            let pending = state.queued();
            if pending + inputs.len() > config.max_queued_items {
                return Err(EmbedError::Overloaded {
                    model: config.model_name.clone(),
                    pending,
                });
            }
        }
        for (index, text, tokens) in inputs {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.queues[priority as usize].push_back(Item {
                seq,
                text,
                tokens,
                group: group.clone(),
                request: Arc::clone(&request),
                index,
            });
        }
        drop(state);
        self.shared.work.notify_one();
        Ok(Pending::new(request))
    }
}

impl<M: BatchModel> Drop for Batcher<M> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        if let Some(worker) = self.worker.take() {
            // A worker that panicked has nothing left to clean up.
            let _ = worker.join();
        }
    }
}

impl<M: BatchModel> std::fmt::Debug for Batcher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.shared.config)
            .field("queued", &self.queued())
            .finish()
    }
}

fn stopped(config: &ServiceConfig) -> EmbedError {
    EmbedError::NotAvailable {
        name: config.model_name.clone(),
        reason: "the model service is shutting down".to_string(),
    }
}

/// The worker: take a batch, run it outside the lock, deliver, repeat until stopped.
fn work<M: BatchModel>(shared: &Shared<M>) {
    while let Some(items) = next_batch(shared) {
        shared.stats.record(items.iter().map(|i| i.tokens));
        run_batch(&shared.model, items);
    }
}

/// Blocks until there is a batch to run; `None` once stopping (after failing what is left).
fn next_batch<M: BatchModel>(shared: &Shared<M>) -> Option<Vec<Item<M>>> {
    let mut state = shared.lock();
    loop {
        if state.stopping {
            for item in state.queues.iter_mut().flat_map(|q| q.drain(..)) {
                item.request.fail(stopped(&shared.config));
            }
            return None;
        }
        for queue in &mut state.queues {
            queue.retain(|item| !item.request.is_dead());
            if let Some(oldest) = queue.front() {
                let group = oldest.group.clone();
                return Some(take_batch(queue, &group, &shared.config));
            }
        }
        state = shared
            .work
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// Removes the batch built around the queue's oldest item, shortest item first.
fn take_batch<M: BatchModel>(
    queue: &mut VecDeque<Item<M>>,
    group: &M::Group,
    config: &ServiceConfig,
) -> Vec<Item<M>> {
    let candidates: Vec<&Item<M>> = queue.iter().filter(|i| &i.group == group).collect();
    let tokens: Vec<usize> = candidates.iter().map(|i| i.tokens).collect();
    let picked = batch::pick(&tokens, config.max_batch_tokens, config.max_batch_items);
    let order: Vec<u64> = picked.iter().map(|&c| candidates[c].seq).collect();
    let wanted: HashSet<u64> = order.iter().copied().collect();
    let (mut taken, kept): (Vec<Item<M>>, Vec<Item<M>>) =
        queue.drain(..).partition(|i| wanted.contains(&i.seq));
    *queue = VecDeque::from(kept);
    taken.sort_by_key(|i| order.iter().position(|&s| s == i.seq));
    taken
}

/// Runs one batch. When it fails and mixes several requests, each request is retried on its
/// own so one caller's bad input cannot fail another's texts.
fn run_batch<M: BatchModel>(model: &M, items: Vec<Item<M>>) {
    let Some(group) = items.first().map(|i| i.group.clone()) else {
        return;
    };
    match call(model, &group, &items) {
        Ok(outputs) => deliver(items, outputs),
        Err(error) => {
            let mut rest = items;
            let single = rest
                .iter()
                .all(|i| Arc::ptr_eq(&i.request, &rest[0].request));
            if single {
                rest[0].request.fail(error);
                return;
            }
            while let Some(first) = rest.first() {
                let request = Arc::clone(&first.request);
                let (mine, others): (Vec<_>, Vec<_>) = rest
                    .into_iter()
                    .partition(|i| Arc::ptr_eq(&i.request, &request));
                rest = others;
                match call(model, &group, &mine) {
                    Ok(outputs) => deliver(mine, outputs),
                    Err(error) => request.fail(error),
                }
            }
        }
    }
}

fn call<M: BatchModel>(model: &M, group: &M::Group, items: &[Item<M>]) -> Result<Vec<M::Output>> {
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    // A panicking model must not take the worker (and every later request) down with it.
    let outputs = catch_unwind(AssertUnwindSafe(|| model.run(group, &texts)))
        .map_err(|_| EmbedError::Inference("the model panicked".to_string()))??;
    if outputs.len() != texts.len() {
        return Err(EmbedError::Inference(format!(
            "the model returned {} outputs for {} inputs",
            outputs.len(),
            texts.len()
        )));
    }
    Ok(outputs)
}

fn deliver<M: BatchModel>(items: Vec<Item<M>>, outputs: Vec<M::Output>) {
    for (item, output) in items.into_iter().zip(outputs) {
        item.request.fill(item.index, output);
    }
}
