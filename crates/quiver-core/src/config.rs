//! Configuration types shared by the engine, the server and the CLI.
//!
//! [`CollectionConfig`] is what `collection.json` stores. Its field names match the
//! HTTP API's collection body. Settings added after the first release carry serde
//! defaults and are left out of the serialized form while they hold their default, so
//! files written before they existed still load and still match their checksum.

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

/// How a collection's text is split into searchable words; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextAnalyzer {
    /// English: lowercase, stop words, stemming.
    #[default]
    En,
    /// Lowercased words, nothing else.
    Simple,
    /// Chinese/Japanese/Korean aware (character n-grams for CJK runs).
    Cjk,
}

/// HNSW graph settings of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HnswConfig {
    /// Links per node and layer.
    pub m: usize,
    /// Candidate list width while building.
    pub ef_construction: usize,
    /// Default candidate list width while searching.
    pub ef_search: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// BM25 settings of a collection's keyword search; query-time only, so any values work
/// with any existing text index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bm25Config {
    /// Term frequency saturation: 0 counts a word once however often a document holds
    /// it; larger values let repeats weigh more.
    pub k1: f32,
    /// Length normalization: 0 ignores document length, 1 scales fully by it.
    pub b: f32,
}

impl Default for Bm25Config {
    /// Lucene's and Elasticsearch's defaults.
    fn default() -> Self {
        Bm25Config { k1: 1.2, b: 0.75 }
    }
}

/// Where chunk boundaries may fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkStrategy {
    /// End chunks at paragraph breaks, else sentence ends, else between words, whichever
    /// comes latest while the chunk is at least half full; a hard cut only where a
    /// window holds none of them.
    #[default]
    Sentence,
    /// End every chunk after exactly `max_tokens` tokens.
    Tokens,
}

/// How texts longer than one model input are cut into overlapping chunks, counted in
/// the embedding model's own tokens (special tokens not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Longest chunk, in tokens.
    pub max_tokens: usize,
    /// Tokens each chunk repeats from the end of the one before it.
    #[serde(default)]
    pub overlap_tokens: usize,
    #[serde(default)]
    pub strategy: ChunkStrategy,
}

impl ChunkingConfig {
    /// What a collection gets unless it says otherwise: chunks as long as one input of
    /// a model taking `capacity` text tokens, at most [`DEFAULT_CHUNK_TOKENS`], an eighth
    /// of each repeated in the next.
    pub fn for_model(capacity: usize) -> Self {
        let max_tokens = capacity.min(DEFAULT_CHUNK_TOKENS);
        ChunkingConfig {
            max_tokens,
            overlap_tokens: max_tokens / 8,
            strategy: ChunkStrategy::Sentence,
        }
    }

    /// Rejects settings that cannot cut a text for a model taking `model_limit` text
    /// tokens per input.
    pub fn validate(&self, model_limit: usize) -> Result<()> {
        let bad = |msg: String| Err(CoreError::InvalidConfig(msg));
        if self.max_tokens == 0 || self.max_tokens > model_limit {
            return bad(format!(
                "chunking.max_tokens must be in 1..={model_limit} (the embedding model's \
                 input limit), got {}",
                self.max_tokens
            ));
        }
        if self.overlap_tokens >= self.max_tokens {
            return bad(format!(
                "chunking.overlap_tokens must be less than max_tokens ({}), got {}",
                self.max_tokens, self.overlap_tokens
            ));
        }
        Ok(())
    }
}

/// The longest default chunk. Models with long inputs (Qwen3 takes 8,192 tokens here)
/// would otherwise get chunks too coarse to point at a passage and slow to embed on a
/// CPU (attention grows with the square of the length).
pub const DEFAULT_CHUNK_TOKENS: usize = 512;

/// The longest chunk any collection may ask for; the model's own limit is checked
/// where the model is loaded.
pub const MAX_CHUNK_TOKENS: usize = 32_768;

/// Candidates rescored at full length when only a prefix is indexed.
pub const DEFAULT_RESCORE: usize = 100;
/// Upper bound for `rescore` (and for any candidate list a query may ask for).
pub const MAX_RESCORE: usize = 10_000;

fn default_rescore() -> usize {
    DEFAULT_RESCORE
}

fn is_default_rescore(v: &usize) -> bool {
    *v == DEFAULT_RESCORE
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A collection's settings, fixed at creation and stored in `collection.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Stored vector length.
    pub dim: usize,
    #[serde(default)]
    pub distance: Distance,
    /// Model that embeds texts sent without a vector (stored for the model layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
    /// Matryoshka prefix the HNSW graphs index; `None` indexes the full `dim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_dim: Option<usize>,
    /// Candidates rescored exactly at `dim` when `index_dim` is shorter.
    #[serde(
        default = "default_rescore",
        skip_serializing_if = "is_default_rescore"
    )]
    pub rescore: usize,
    /// Task instruction given to the embedding model (stored for the model layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Model that reranks fused candidates (stored for the model layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reranker_model: Option<String>,
    /// Analyzer of the full-text index.
    #[serde(default, skip_serializing_if = "is_default")]
    pub analyzer: TextAnalyzer,
    /// HNSW graph settings.
    #[serde(default, skip_serializing_if = "is_default")]
    pub hnsw: HnswConfig,
    /// BM25 scoring settings.
    #[serde(default, skip_serializing_if = "is_default")]
    pub bm25: Bm25Config,
    /// How texts embedded on ingest are cut into chunks; `None` embeds each text whole
    /// (truncated to the model's input limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<ChunkingConfig>,
}

impl CollectionConfig {
    /// A configuration with `dim` and default settings for the rest.
    pub fn new(dim: usize) -> Self {
        CollectionConfig {
            dim,
            distance: Distance::default(),
            embedding_model: None,
            index_dim: None,
            rescore: DEFAULT_RESCORE,
            task: None,
            reranker_model: None,
            analyzer: TextAnalyzer::default(),
            hnsw: HnswConfig::default(),
            bm25: Bm25Config::default(),
            chunking: None,
        }
    }

    /// The vector length the HNSW graphs hold.
    pub fn graph_dim(&self) -> usize {
        self.index_dim.unwrap_or(self.dim)
    }

    /// Rejects settings no collection can work with.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(CoreError::InvalidConfig(msg));
        if self.dim == 0 || self.dim > 65_536 {
            return bad(format!("dim must be in 1..=65536, got {}", self.dim));
        }
        if let Some(ix) = self.index_dim {
            if ix == 0 || ix > self.dim {
                return bad(format!("index_dim must be in 1..={}, got {ix}", self.dim));
            }
        }
        if self.rescore == 0 || self.rescore > MAX_RESCORE {
            return bad(format!(
                "rescore must be in 1..={MAX_RESCORE}, got {}",
                self.rescore
            ));
        }
        let h = &self.hnsw;
        if !(2..=128).contains(&h.m) {
            return bad(format!("hnsw.m must be in 2..=128, got {}", h.m));
        }
        for (name, v) in [
            ("hnsw.ef_construction", h.ef_construction),
            ("hnsw.ef_search", h.ef_search),
        ] {
            if v == 0 || v > 4096 {
                return bad(format!("{name} must be in 1..=4096, got {v}"));
            }
        }
        // Written so NaN fails too.
        if !(self.bm25.k1.is_finite() && self.bm25.k1 >= 0.0) {
            return bad(format!(
                "bm25.k1 must be a finite number >= 0, got {}",
                self.bm25.k1
            ));
        }
        if !(0.0..=1.0).contains(&self.bm25.b) {
            return bad(format!("bm25.b must be in 0..=1, got {}", self.bm25.b));
        }
        if let Some(c) = &self.chunking {
            if self.embedding_model.is_none() {
                return bad("chunking needs an embedding_model: chunks are embedded on \
                     ingest"
                    .into());
            }
            c.validate(MAX_CHUNK_TOKENS)?;
        }
        for (name, v) in [
            ("embedding_model", &self.embedding_model),
            ("reranker_model", &self.reranker_model),
            ("task", &self.task),
        ] {
            if v.as_ref().is_some_and(|s| s.trim().is_empty()) {
                return bad(format!("{name} must not be empty when given"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn old_files_load_and_defaults_stay_out_of_the_json() {
        let old: CollectionConfig = serde_json::from_str(r#"{"dim":8,"distance":"l2"}"#).unwrap();
        assert_eq!(old.rescore, DEFAULT_RESCORE);
        assert_eq!(old.hnsw, HnswConfig::default());
        assert_eq!(old.analyzer, TextAnalyzer::En);
        assert_eq!(old.bm25, Bm25Config { k1: 1.2, b: 0.75 });
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"dim":8,"distance":"l2"}"#
        );
    }

    #[test]
    fn full_shape_round_trips_and_validates() {
        let json = r#"{"dim":64,"distance":"cosine","embedding_model":"m","index_dim":32,
            "task":"t","reranker_model":"r","analyzer":"cjk",
            "hnsw":{"m":8,"ef_construction":100,"ef_search":40},"bm25":{"k1":0.9,"b":0.4}}"#;
        let c: CollectionConfig = serde_json::from_str(json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.graph_dim(), 32);
        assert_eq!(c.analyzer, TextAnalyzer::Cjk);
        assert_eq!(c.hnsw.m, 8);
        assert_eq!(c.bm25, Bm25Config { k1: 0.9, b: 0.4 });
        let back: CollectionConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        let mut bad = c.clone();
        bad.index_dim = Some(65);
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.hnsw.m = 1;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.rescore = 0;
        assert!(bad.validate().is_err());
        for (k1, b, field) in [
            (-0.1, 0.75, "bm25.k1"),
            (f32::NAN, 0.75, "bm25.k1"),
            (f32::INFINITY, 0.75, "bm25.k1"),
            (1.2, 1.5, "bm25.b"),
            (1.2, -0.1, "bm25.b"),
            (1.2, f32::NAN, "bm25.b"),
        ] {
            let mut bad = c.clone();
            bad.bm25 = Bm25Config { k1, b };
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{k1} {b}: {err}");
        }
        let mut edge = c;
        edge.bm25 = Bm25Config { k1: 0.0, b: 1.0 };
        edge.validate().unwrap();
        assert!(serde_json::from_str::<CollectionConfig>(r#"{"dim":4,"bogus":1}"#).is_err());
    }

    #[test]
    fn chunking_reads_with_defaults_and_refuses_what_cannot_cut() {
        let c: ChunkingConfig = serde_json::from_str(r#"{"max_tokens":200}"#).unwrap();
        assert_eq!(
            c,
            ChunkingConfig {
                max_tokens: 200,
                overlap_tokens: 0,
                strategy: ChunkStrategy::Sentence
            }
        );
        c.validate(254).unwrap();
        let c: ChunkingConfig =
            serde_json::from_str(r#"{"max_tokens":8,"overlap_tokens":7,"strategy":"tokens"}"#)
                .unwrap();
        c.validate(8).unwrap();
        for (max, overlap, field) in [
            (0, 0, "max_tokens"),
            (9, 0, "max_tokens"),
            (8, 8, "overlap_tokens"),
            (4, 9, "overlap_tokens"),
        ] {
            let c = ChunkingConfig {
                max_tokens: max,
                overlap_tokens: overlap,
                strategy: ChunkStrategy::Tokens,
            };
            let err = c.validate(8).unwrap_err().to_string();
            assert!(err.contains(field), "{max} {overlap}: {err}");
        }
        assert!(serde_json::from_str::<ChunkingConfig>(r#"{"max_tokens":8,"x":1}"#).is_err());
        assert!(serde_json::from_str::<ChunkingConfig>(r#"{"overlap_tokens":1}"#).is_err());
        // Defaults: the model's input up to 512 tokens, an eighth overlapping.
        let small = ChunkingConfig::for_model(254);
        assert_eq!((small.max_tokens, small.overlap_tokens), (254, 31));
        let long = ChunkingConfig::for_model(8191);
        assert_eq!((long.max_tokens, long.overlap_tokens), (512, 64));
        long.validate(8191).unwrap();
    }
}
