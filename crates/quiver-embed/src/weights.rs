//! Finding and opening a checkpoint's safetensors weights: one `model.safetensors`, or a
//! `model.safetensors.index.json` whose `weight_map` names the shards. Every failure names
//! the file at fault (missing shard, unreadable header, tensor of the wrong shape).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::{EmbedError, Result};

/// Name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of a sharded checkpoint's index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

/// Opened weights of one checkpoint, viewed under an optional name prefix.
pub(crate) struct Weights {
    vb: VarBuilder<'static>,
    /// Tensor name (without prefix) to the shard that holds it, for error messages.
    holders: BTreeMap<String, PathBuf>,
    /// The single file, or the index of a sharded checkpoint.
    primary: PathBuf,
    prefix: String,
}

impl Weights {
    /// Opens the weights in `dir`, converting tensors to `dtype` as they are read.
    pub(crate) fn open(dir: &Path, dtype: DType) -> Result<Self> {
        let (primary, files, holders) = locate(dir)?;
        for file in &files {
            // Parse each header on its own first so that a bad shard is named.
            // SAFETY: the file is only read, and Quiver never rewrites a model file in
            // place (downloads land under a new name and are renamed).
            unsafe { candle_core::safetensors::MmapedSafetensors::new(file) }.map_err(|e| {
                EmbedError::ModelFile {
                    path: file.clone(),
                    reason: format!("not a readable safetensors file: {e}"),
                }
            })?;
        }
        // SAFETY: as above; tensors are copied out of the mapping as they are loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &Device::Cpu) }
            .map_err(|e| EmbedError::ModelFile {
                path: primary.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            vb,
            holders,
            primary,
            prefix: String::new(),
        })
    }

    /// Whether `name` (under the current prefix) exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(&self.full(name))
    }

    /// Views every later lookup under `prefix.` (e.g. `model` for reranker checkpoints).
    /// An empty prefix gives an unchanged view.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return Self {
                vb: self.vb.clone(),
                holders: self.holders.clone(),
                primary: self.primary.clone(),
                prefix: self.prefix.clone(),
            };
        }
        Self {
            vb: self.vb.pp(prefix),
            holders: self.holders.clone(),
            primary: self.primary.clone(),
            prefix: format!("{}{prefix}.", self.prefix),
        }
    }

    /// Reads tensor `name` and checks its shape.
    pub(crate) fn get<S: Into<candle_core::Shape>>(&self, shape: S, name: &str) -> Result<Tensor> {
        self.vb.get(shape, name).map_err(|e| self.error(name, e))
    }

    /// The tensor `name` of `shape` as f32 values, row-major.
    pub(crate) fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get(shape, name)?
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.error(name, e))
    }

    /// The file to blame for a failure about `name`.
    pub(crate) fn error(&self, name: &str, err: impl std::fmt::Display) -> EmbedError {
        let full = self.full(name);
        let path = self
            .holders
            .get(&full)
            .cloned()
            .unwrap_or_else(|| self.primary.clone());
        EmbedError::ModelFile {
            path,
            reason: format!("tensor {full}: {err}"),
        }
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Returns the primary file, the files to open, and which file holds each tensor.
type Located = (PathBuf, Vec<PathBuf>, BTreeMap<String, PathBuf>);

fn locate(dir: &Path) -> Result<Located> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok((single.clone(), vec![single], BTreeMap::new()));
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(EmbedError::ModelFile {
            path: single,
            reason: format!("missing (and no {INDEX_FILE} beside it)"),
        });
    }
    let bad = |reason: String| EmbedError::ModelFile {
        path: index.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&index).map_err(|e| bad(e.to_string()))?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut holders = BTreeMap::new();
    for (tensor, shard) in parsed.weight_map {
        // Shard names are plain file names; refuse anything that walks out of `dir`.
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(bad(format!(
                "shard name {shard:?} is not a plain file name"
            )));
        }
        let path = dir.join(&shard);
        if !files.contains(&path) {
            if !path.is_file() {
                return Err(EmbedError::ModelFile {
                    path,
                    reason: format!("shard listed in {INDEX_FILE} is missing"),
                });
            }
            files.push(path.clone());
        }
        holders.insert(tensor, path);
    }
    if files.is_empty() {
        return Err(bad("weight_map is empty".into()));
    }
    Ok((index, files, holders))
}
