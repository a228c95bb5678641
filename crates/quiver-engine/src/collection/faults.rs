//! Injected failures for tests (feature `fault-injection`): the next seals fail as if
//! the disk refused their segment.

use std::sync::atomic::{AtomicUsize, Ordering};

use quiver_storage::StorageError;

use super::Collection;
use crate::Result;

#[derive(Debug, Default)]
pub(super) struct Faults {
    seals: AtomicUsize,
}

impl Faults {
    /// Fails while injected seal failures remain, using one up.
    pub(super) fn seal(&self) -> Result<()> {
        let left = self
            .seals
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if left.is_ok() {
            return Err(StorageError::io(
                std::path::Path::new("segments"),
                std::io::Error::other("injected seal failure"),
            )
            .into());
        }
        Ok(())
    }
}

impl Collection {
    /// The next `n` seals fail before writing their segment.
    pub fn inject_seal_failures(&self, n: usize) {
        self.inner.faults.seals.store(n, Ordering::Release);
    }
}
