//! Configuration types shared by the engine, the server and the CLI.

use serde::{Deserialize, Serialize};

use crate::{CoreError, Distance, Result};

/// When the write-ahead log is forced to stable storage.
///
/// In `config` files it reads `"always"`, `"never"` or `{ interval_ms = 50 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// fdatasync before every acknowledgement; concurrent writers share one sync.
    #[default]
    Always,
    /// Acknowledge after the write; a background timer syncs every `interval_ms`.
    /// A crash may lose the writes of the last interval.
    IntervalMs(u64),
    /// Never sync explicitly (tests, bulk loads); the OS decides.
    Never,
}

/// A collection's settings, fixed at creation and stored in `collection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Stored vector length.
    pub dim: usize,
    #[serde(default)]
    pub distance: Distance,
}

impl CollectionConfig {
    /// A configuration with `dim` and default settings for the rest.
    pub fn new(dim: usize) -> Self {
        CollectionConfig {
            dim,
            distance: Distance::default(),
        }
    }

    /// Rejects settings no collection can work with.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 65_536 {
            return Err(CoreError::InvalidConfig(format!(
                "dim must be in 1..=65536, got {}",
                self.dim
            )));
        }
        Ok(())
    }
}
