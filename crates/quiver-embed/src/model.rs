//! The interfaces every model implements, so the batching service and the engine can
//! hold any embedder or reranker behind one type.

use crate::{EmbedError, Result};

/// A model that turns texts into unit vectors of its full width.
pub trait TextEmbedder: Send + Sync {
    /// Full output width (the largest Matryoshka dimension).
    fn width(&self) -> usize;
    /// Number of tokens `text` becomes (after the model's own truncation), as a query
    /// with `task` if given, else as a document.
    fn count_tokens(&self, text: &str, task: Option<&str>) -> Result<usize>;
    /// Embeds a batch. `task: Some(t)` embeds queries with instruction `t`; `None`
    /// embeds documents. Returns one L2-normalized vector of `width()` per text.
    fn embed(&self, texts: &[&str], task: Option<&str>) -> Result<Vec<Vec<f32>>>;
    /// Byte ranges of the tokens of `text` as a document (untruncated, no special
    /// tokens): what chunking cuts by (see [`crate::chunk_tokens`]).
    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>>;
    /// Text tokens one document input holds before truncation: the longest chunk.
    fn text_capacity(&self) -> usize;
}

/// A model that scores how well documents answer a query, in `0.0..=1.0`.
pub trait Reranker: Send + Sync {
    /// Number of tokens one (query, doc) pair becomes after truncation.
    fn count_tokens(&self, query: &str, doc: &str, instruction: Option<&str>) -> Result<usize>;
    /// Scores every document against `query`; `instruction: None` uses the default task.
    fn score(&self, query: &str, docs: &[&str], instruction: Option<&str>) -> Result<Vec<f32>>;
}

/// Matryoshka truncation: keeps the first `dim` components, then L2-normalizes.
pub fn truncate_normalize(vector: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 || dim > vector.len() {
        return Err(EmbedError::InvalidInput(format!(
            "dimension {dim} is outside 1..={}",
            vector.len()
        )));
    }
    let mut out = vector[..dim].to_vec();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_renormalizes() {
        let v = truncate_normalize(&[3.0, 4.0, 12.0], 2).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(truncate_normalize(&[1.0], 2).is_err());
        assert!(truncate_normalize(&[1.0], 0).is_err());
    }
}
