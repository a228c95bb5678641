//! One caller's request while it is in the queue: the slots its outputs land in, and the
//! [`Pending`] handle the caller waits on, either blocking ([`Pending::wait`]) or as a
//! `Future` (`.await`), which lets an async handler wait without tying up a runtime thread
//! and needs no particular async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{EmbedError, Result};

/// Shared between the caller's [`Pending`] and the worker filling it.
#[derive(Debug)]
pub(crate) struct Request<T> {
    state: Mutex<State<T>>,
    done: Condvar,
    /// Set when the caller stopped waiting or the request failed: its queued items are
    /// skipped instead of run.
    dead: AtomicBool,
}

#[derive(Debug)]
struct State<T> {
    outputs: Vec<Option<T>>,
    remaining: usize,
    result: Option<Result<Vec<T>>>,
    finished: bool,
    waker: Option<Waker>,
}

impl<T> Request<T> {
    /// A request whose outputs are partly known (`None` marks what the model must compute).
    pub(crate) fn new(outputs: Vec<Option<T>>) -> Arc<Self> {
        let remaining = outputs.iter().filter(|o| o.is_none()).count();
        let request = Arc::new(Self {
            state: Mutex::new(State {
                outputs,
                remaining,
                result: None,
                finished: false,
                waker: None,
            }),
            done: Condvar::new(),
            dead: AtomicBool::new(false),
        });
        if remaining == 0 {
            request.finish_ok(&mut request.lock());
        }
        request
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic elsewhere cannot leave State half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Stores output `index`; completes the request when it was the last one missing.
    pub(crate) fn fill(&self, index: usize, value: T) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        if let Some(slot) = state.outputs.get_mut(index) {
            if slot.is_none() {
                *slot = Some(value);
                state.remaining -= 1;
            }
        }
        if state.remaining == 0 {
            self.finish_ok(&mut state);
        }
    }

    fn finish_ok(&self, state: &mut State<T>) {
        let outputs = std::mem::take(&mut state.outputs);
        let result = outputs
            .into_iter()
            .collect::<Option<Vec<T>>>()
            .ok_or_else(|| EmbedError::Inference("a batch output went missing".to_string()));
        self.complete(state, result);
    }

    /// Fails the request (first failure wins) and marks its remaining items for skipping.
    pub(crate) fn fail(&self, error: EmbedError) {
        self.dead.store(true, Ordering::Relaxed);
        let mut state = self.lock();
        if !state.finished {
            state.outputs.clear();
            self.complete(&mut state, Err(error));
        }
    }

    fn complete(&self, state: &mut State<T>, result: Result<Vec<T>>) {
        state.finished = true;
        state.result = Some(result);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        self.done.notify_all();
    }
}

/// A request in flight. Wait for it with [`Pending::wait`] or `.await` it; dropping it
/// withdraws whatever part of the request has not run yet.
#[derive(Debug)]
#[must_use = "a dropped Pending withdraws its request"]
pub struct Pending<T> {
    request: Arc<Request<T>>,
}

impl<T> Pending<T> {
    pub(crate) fn new(request: Arc<Request<T>>) -> Self {
        Self { request }
    }

    /// Blocks until every output is computed (in the order the inputs were given) or the
    /// request failed.
    pub fn wait(self) -> Result<Vec<T>> {
        let mut state = self.request.lock();
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            state = self
                .request
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The result if it is ready, without blocking; `None` while still running.
    pub fn try_take(&mut self) -> Option<Result<Vec<T>>> {
        self.request.lock().result.take()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<Vec<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.request.lock();
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None if state.finished => Poll::Ready(Err(EmbedError::InvalidInput(
                "request polled after it completed".to_string(),
            ))),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        self.request.dead.store(true, Ordering::Relaxed);
    }
}
