//! WAL record payloads written by the engine. One record per write call, so a batch
//! is atomic on recovery: either every document of it is replayed or none.
//!
//! | kind | payload (bincode 2, standard config)                                  |
//! |-----:|------------------------------------------------------------------------|
//! | 1    | upsert, earlier releases: `Vec<{ id, text, metadata_json, vector }>`   |
//! | 2    | delete: `Vec<String>` of ids                                           |
//! | 3    | upsert: `Vec<WalDoc { id, text, metadata_json, vector, chunks }>`, each chunk `{ start, end, vector }` |
//!
//! Kind 3 is what upserts write; kind 1 is still read. A document and all of its chunks
//! travel in one record, so recovery replays or drops them together. Vectors are
//! stored as given after validation (and normalization for cosine), so recovery never
//! re-runs a model. Metadata travels as JSON text because bincode
//! cannot encode `serde_json::Value`. A future layout gets a new kind number; the WAL
//! header carries the file format version and every record its own checksum.

use quiver_core::DocChunk;
use quiver_storage::StorageError;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Record kind of an upsert batch written by earlier releases (no chunks).
pub(crate) const KIND_UPSERT_V1: u8 = 1;
/// Record kind of a delete batch.
pub(crate) const KIND_DELETE: u8 = 2;
/// Record kind of an upsert batch.
pub(crate) const KIND_UPSERT: u8 = 3;

/// One document as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WalDoc {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) metadata_json: String,
    pub(crate) vector: Vec<f32>,
    pub(crate) chunks: Vec<DocChunk>,
}

/// One document as kind 1 logged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WalDocV1 {
    id: String,
    text: String,
    metadata_json: String,
    vector: Vec<f32>,
}

/// The documents of an upsert record of either kind.
pub(crate) fn decode_upsert(kind: u8, payload: &[u8]) -> Result<Vec<WalDoc>> {
    if kind == KIND_UPSERT {
        return decode(payload);
    }
    let old: Vec<WalDocV1> = decode(payload)?;
    Ok(old
        .into_iter()
        .map(|d| WalDoc {
            id: d.id,
            text: d.text,
            metadata_json: d.metadata_json,
            vector: d.vector,
            chunks: Vec::new(),
        })
        .collect())
}

fn codec_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Codec(e.to_string())
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(codec_err)?)
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(codec_err)?;
    if used != bytes.len() {
        return Err(codec_err(format!("{} trailing bytes in record", bytes.len() - used)).into());
    }
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let docs = vec![WalDoc {
            id: "a".into(),
            text: "t".into(),
            metadata_json: "{\"k\":[1,2]}".into(),
            vector: vec![1.5, -0.0, f32::MAX],
            chunks: vec![DocChunk {
                start: 0,
                end: 1,
                vector: vec![2.0, 0.0, -1.0],
            }],
        }];
        let bytes = encode(&docs).unwrap();
        assert_eq!(decode_upsert(KIND_UPSERT, &bytes).unwrap(), docs);
        let old = vec![WalDocV1 {
            id: "a".into(),
            text: "t".into(),
            metadata_json: "{}".into(),
            vector: vec![1.0],
        }];
        let read = decode_upsert(KIND_UPSERT_V1, &encode(&old).unwrap()).unwrap();
        assert_eq!(
            (read[0].vector.as_slice(), read[0].chunks.len()),
            (&[1.0f32][..], 0)
        );
        let ids = vec!["x".to_string(), "y".to_string()];
        assert_eq!(decode::<Vec<String>>(&encode(&ids).unwrap()).unwrap(), ids);
        assert!(decode::<Vec<WalDoc>>(&bytes[..bytes.len() - 1]).is_err());
    }
}
