//! Documents as the engine stores them: id, text, metadata and vector, and, for a
//! text longer than one model input, the vectors of its chunks.

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Metadata is a JSON object; keys are field names, values any JSON.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// One document. The id is the upsert key: the newest write of an id wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub metadata: Metadata,
    pub vector: Vec<f32>,
    /// Chunks of a text embedded piece by piece (see `ChunkingConfig`), in text order;
    /// empty when the document is searched by `vector` alone. With chunks, `vector` is
    /// the first chunk's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<DocChunk>,
}

/// One chunk of a document: a byte range of its text and that range's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocChunk {
    /// Byte offset of the chunk's first byte in the document's text.
    pub start: usize,
    /// Byte offset one past the chunk's last byte.
    pub end: usize,
    pub vector: Vec<f32>,
}

/// Checks a vector's length and that every component is finite.
pub fn validate_vector(vector: &[f32], dim: usize) -> Result<()> {
    if vector.len() != dim {
        return Err(CoreError::DimensionMismatch {
            expected: dim,
            got: vector.len(),
        });
    }
    if let Some((index, &value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CoreError::NonFiniteVector { index, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_checks() {
        assert_eq!(validate_vector(&[1.0, 2.0], 2), Ok(()));
        assert_eq!(
            validate_vector(&[1.0], 2),
            Err(CoreError::DimensionMismatch {
                expected: 2,
                got: 1
            })
        );
        assert!(matches!(
            validate_vector(&[1.0, f32::NAN], 2),
            Err(CoreError::NonFiniteVector { index: 1, .. })
        ));
        assert!(validate_vector(&[f32::INFINITY, 0.0], 2).is_err());
    }
}
