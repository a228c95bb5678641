//! Setup shared by the engine benches: database options that never sync or compact on
//! their own, and a loader that fills one collection with seeded random vectors.

use quiver_core::{Document, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, DbOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How many documents to load, and how.
pub struct Load {
    pub docs: usize,
    /// Documents written after the last explicit seal, so they stay in the WAL.
    pub tail: usize,
    pub dim: usize,
    pub batch: usize,
    /// Seal once `docs - tail` rows are in; without it only `seal_rows` seals.
    pub seal: bool,
}

/// Options with syncing and background compaction off, so the bench times only the
/// work it names; a collection seals by itself every `seal_rows` rows.
pub fn options(seal_rows: usize) -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows,
            seal_bytes: usize::MAX,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

/// Upserts `load.docs` documents in batches; the same seed gives the same vectors.
pub fn load(c: &Collection, load: &Load) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(7);
    let sealed = load.docs - load.tail;
    let mut i = 0;
    while i < load.docs {
        let end = (i + load.batch).min(load.docs);
        // A batch never straddles the seal point, so the tail is exact.
        let end = if i < sealed { end.min(sealed) } else { end };
        let docs: Vec<Document> = (i..end)
            .map(|n| Document {
                chunks: Vec::new(),
                id: format!("doc-{n:08}"),
                text: format!("document number {n} about topic {}", n % 97),
                metadata: Metadata::new(),
                vector: (0..load.dim).map(|_| rng.random_range(-1.0..1.0)).collect(),
            })
            .collect();
        c.upsert(docs).map_err(|e| e.to_string())?;
        i = end;
        if i == sealed && load.seal {
            c.seal().map_err(|e| e.to_string())?;
        }
    }
    c.sync().map_err(|e| e.to_string())
}
