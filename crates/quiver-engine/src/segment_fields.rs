//! A sealed segment's metadata index (`segments/<id>/fields.qvf`, format in
//! `quiver_index::SealedFields`): built from the segment's documents when the segment
//! is written, saved beside it, and loaded when it opens.
//!
//! Like the graph file it is derived data: a missing or damaged file (a crash between
//! writing the segment and saving it, a segment from an earlier release) is rebuilt
//! from the documents with a warning, and a file that cannot be saved only costs the
//! rebuild at the next open.

use std::path::{Path, PathBuf};

use quiver_core::Metadata;
use quiver_index::SealedFields;
use quiver_storage::segment::Segment;

use crate::Result;

/// File name of a sealed segment's metadata index inside its directory.
pub const FIELDS_FILE: &str = "fields.qvf";

/// The metadata index file of the segment in `segment_dir`.
pub fn fields_path(segment_dir: &Path) -> PathBuf {
    segment_dir.join(FIELDS_FILE)
}

/// Loads the segment's saved index, or builds (and saves) it from its documents.
pub(crate) fn open_or_build(segment: &Segment) -> Result<SealedFields> {
    let path = fields_path(segment.dir());
    if path.exists() {
        match SealedFields::open(&path) {
            Ok(f) if f.rows() == segment.len() as u64 => return Ok(f),
            Ok(_) => {
                tracing::warn!(file = %path.display(), "metadata index of another segment; rebuilding")
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "rebuilding metadata index")
            }
        }
    }
    let fields = build(segment)?;
    if let Err(e) = fields.save(&path) {
        tracing::warn!(file = %path.display(), error = %e, "could not save metadata index; keeping it in memory");
    }
    Ok(fields)
}

fn build(segment: &Segment) -> Result<SealedFields> {
    let mut parsed: Vec<(u32, Metadata)> = Vec::with_capacity(segment.len());
    for row in 0..segment.len() {
        let doc = segment.doc(row)?;
        // Unreadable metadata matches no condition, so it is left out.
        if let (Ok(r), Ok(m)) = (u32::try_from(row), serde_json::from_str(doc.metadata_json)) {
            parsed.push((r, m));
        }
    }
    Ok(SealedFields::build(
        segment.len() as u64,
        parsed.iter().map(|(r, m)| (*r, m)),
    ))
}
