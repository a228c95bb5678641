//! A pool of reusable values: the buffers a model's forward pass keeps between calls, so
//! a call does not page in fresh memory. One value per forward that ran at once.

use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct Pool<T>(Mutex<Vec<T>>);

impl<T: Default> Pool<T> {
    /// A value a finished call left, or a new one.
    pub(crate) fn take(&self) -> T {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Keeps `value` for a later call.
    pub(crate) fn put(&self, value: T) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}
