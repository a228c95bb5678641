//! Tokenizer loading and encoding on top of the `tokenizers` crate.
//!
//! [`TextTokenizer`] wraps one `tokenizer.json` with a fixed truncation length. Truncation
//! happens before the post-processor runs, as in the `tokenizers` library itself, so the
//! special tokens the post-processor adds (the `<|endoftext|>` the Qwen3 embedder appends,
//! BERT's `[CLS]` / `[SEP]`) always survive: the text is cut to `max_length - added` ids,
//! keeping the first ones.

use std::path::{Path, PathBuf};

use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

use crate::{EmbedError, Result};

/// A loaded tokenizer that truncates every encoding to at most `max_length` ids.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from `path`. Truncation and padding settings stored in the
    /// file are dropped: Quiver pads itself and truncates to `max_length`.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        if !path.is_file() {
            return Err(EmbedError::ModelFile {
                path: path.to_path_buf(),
                reason: "tokenizer file is missing".into(),
            });
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| EmbedError::ModelFile {
            path: path.to_path_buf(),
            reason: format!("cannot parse tokenizer: {e}"),
        })?;
        inner.with_padding(None);
        // Truncation is applied by `encode`, so that `encode_plain` needs no second copy.
        inner
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut tok = Self {
            inner,
            path: path.to_path_buf(),
            max_length: 0,
        };
        tok.set_max_length(max_length)?;
        Ok(tok)
    }

    /// Changes the truncation length (in ids, special tokens included).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<()> {
        let added = self.added();
        if max_length <= added {
            return Err(EmbedError::InvalidInput(format!(
                "max length {max_length} leaves no room for text after {added} special tokens"
            )));
        }
        self.max_length = max_length;
        Ok(())
    }

    /// Number of ids the post-processor adds to one sequence.
    fn added(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false))
    }

    /// The truncation length in ids.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// How many text tokens one input holds: the truncation length less the special
    /// tokens the post-processor adds. The longest chunk a model can embed whole.
    pub fn text_capacity(&self) -> usize {
        self.max_length - self.added()
    }

    /// Byte spans in `text` of each token of its untruncated encoding, without special
    /// tokens; what [`crate::chunk_tokens`] cuts by.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.get_offsets().to_vec())
    }

    /// Makes every encoding end with `token` (the Qwen3 embedding variant appends
    /// `<|endoftext|>`), unless the file's own post-processor already appends it, as the
    /// tokenizers shipped with Qwen3-Embedding checkpoints do.
    pub fn append_token(mut self, token: &str) -> Result<Self> {
        let id = self.token_id(token)?;
        let probe = self.encode("a")?;
        if probe.last() == Some(&id) {
            return Ok(self);
        }
        let template = TemplateProcessing::builder()
            .try_single(format!("$A:0 {token}:0"))
            .and_then(|b| b.try_pair(format!("$A:0 $B:1 {token}:1")))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?
            .special_tokens(vec![(token.to_string(), id)])
            .build()
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        self.inner.with_post_processor(Some(template));
        let max = self.max_length;
        self.set_max_length(max)?;
        Ok(self)
    }

    /// Encodes `text` with the post-processor's special tokens, truncated to `max_length`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let err = |e: tokenizers::Error| EmbedError::Tokenizer(e.to_string());
        let mut enc = self.inner.encode_fast(text, false).map_err(err)?;
        enc.truncate(self.text_capacity(), 0, TruncationDirection::Right);
        let enc = self.inner.post_process(enc, None, true).map_err(err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes `text` with neither special tokens nor truncation (prompt pieces).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of one token of the vocabulary (special tokens included).
    pub fn token_id(&self, token: &str) -> Result<u32> {
        self.inner
            .token_to_id(token)
            .ok_or_else(|| EmbedError::ModelFile {
                path: self.path.clone(),
                reason: format!("token {token:?} is not in the vocabulary"),
            })
    }

    /// The file this tokenizer came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
