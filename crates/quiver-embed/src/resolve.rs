//! Finding model files on disk and downloading them.
//!
//! A model is named like the hub names it, `org/name` (`Qwen/Qwen3-Embedding-0.6B`). Quiver
//! looks for it in two places, in this order:
//!
//! | place | directory |
//! | --- | --- |
//! | the data directory | `<data>/models/<org>--<name>/` |
//! | the Hugging Face cache | `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, then `models--<org>--<name>/snapshots/<rev>/` (`<rev>` from `refs/main`) |
//!
//! A directory holds a usable model when it has `config.json`, `tokenizer.json` and at least
//! one `*.safetensors` file. [`pull`] downloads those files (plus the small sentence-transformers
//! side files) into the data directory; it stages every file under
//! `<data>/models/.partial-<org>--<name>/` and renames each into place once complete, so an
//! interrupted pull never leaves a truncated weight file where [`resolve`] would find it.
//! Quiver writes no format of its own here: the files are the hub's, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{EmbedError, Result};

/// Files a model directory must hold (besides weights) for Quiver to load it.
pub const REQUIRED_FILES: [&str; 2] = ["config.json", "tokenizer.json"];

/// Small side files worth fetching when the repository has them: tokenizer settings and the
/// sentence-transformers pooling description.
const OPTIONAL_FILES: [&str; 7] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
];

/// Where a resolved model was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// `<data>/models/<org>--<name>/`.
    DataDir,
    /// A snapshot in the Hugging Face cache.
    HfCache,
}

/// A model directory that holds everything needed to load the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLocation {
    /// The model's name, `org/name`.
    pub name: String,
    /// The directory holding `config.json`, `tokenizer.json` and the weights.
    pub path: PathBuf,
    /// Which of the search places it came from.
    pub source: ModelSource,
}

/// The shape of a model as its `config.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// `model_type` (`qwen3`, `bert`, ...).
    pub model_type: String,
    /// `hidden_size`, if given.
    pub hidden_size: Option<u64>,
    /// `num_hidden_layers`, if given.
    pub num_layers: Option<u64>,
    /// `max_position_embeddings`: the longest input in tokens, if given.
    pub max_positions: Option<u64>,
}

/// One installed model, as [`list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    /// Where it is and which name it answers to.
    pub location: ModelLocation,
    /// `None` when `config.json` is unreadable or has no `model_type`.
    pub architecture: Option<Architecture>,
    /// Total bytes of the files in the directory (links followed).
    pub size_bytes: u64,
}

/// How [`pull_with`] reaches the hub.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Base URL of the hub; `None` uses `HF_ENDPOINT` or the public hub.
    pub endpoint: Option<String>,
    /// Draw a progress bar per file on the terminal.
    pub progress: bool,
}

/// Checks `org/name` and returns its two parts. Only the characters the hub allows are
/// accepted, and no part may start with a dot, so a name can never escape `<data>/models`.
pub fn split_name(name: &str) -> Result<(&str, &str)> {
    let bad = |why: &str| EmbedError::InvalidInput(format!("model name {name:?}: {why}"));
    let (org, model) = name
        .split_once('/')
        .ok_or_else(|| bad("expected org/name"))?;
    for part in [org, model] {
        if part.is_empty() || part.len() > 96 {
            return Err(bad("each part must be 1 to 96 characters"));
        }
        if part.starts_with('.') || part.contains("--") {
            return Err(bad("a part may not start with '.' or contain '--'"));
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad("only letters, digits, '-', '_' and '.' are allowed"));
        }
    }
    Ok((org, model))
}

/// The directory `name` is (or would be) installed in under `data_dir`.
pub fn model_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    let (org, model) = split_name(name)?;
    Ok(data_dir.join("models").join(format!("{org}--{model}")))
}

/// The Hugging Face hub cache directory the environment points at, if any can be named.
pub fn hf_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

/// Whether `dir` holds the required files and some weights.
pub fn is_complete(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|f| dir.join(f).is_file()) && has_weights(dir)
}

fn has_weights(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".safetensors") && e.path().is_file()
        })
    })
}

/// Finds `name` in the data directory, then in the Hugging Face cache the environment names.
pub fn resolve(name: &str, data_dir: &Path) -> Result<ModelLocation> {
    resolve_with(name, data_dir, hf_cache_dir().as_deref())
}

/// [`resolve`] with an explicit Hugging Face cache directory (`None`: data directory only).
pub fn resolve_with(name: &str, data_dir: &Path, hf_cache: Option<&Path>) -> Result<ModelLocation> {
    let local = model_dir(data_dir, name)?;
    if is_complete(&local) {
        return Ok(ModelLocation {
            name: name.to_string(),
            path: local,
            source: ModelSource::DataDir,
        });
    }
    if let Some(path) = hf_cache.and_then(|cache| hf_snapshot(cache, name)) {
        return Ok(ModelLocation {
            name: name.to_string(),
            path,
            source: ModelSource::HfCache,
        });
    }
    Err(EmbedError::NotAvailable {
        name: name.to_string(),
        reason: format!(
            "not installed; run `quiver models pull {name}`, or place {} in {}",
            needed_files(),
            local.display()
        ),
    })
}

fn needed_files() -> String {
    format!(
        "{} and the *.safetensors weights",
        REQUIRED_FILES.join(", ")
    )
}

/// The complete snapshot of `name` in a hub cache: the one `refs/main` points at, else the
/// most recently modified complete one.
fn hf_snapshot(cache: &Path, name: &str) -> Option<PathBuf> {
    let (org, model) = split_name(name).ok()?;
    let repo = cache.join(format!("models--{org}--{model}"));
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = fs::read_to_string(repo.join("refs").join("main")) {
        let rev = rev.trim();
        // A revision is a commit hash; anything else could point outside the cache.
        if !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let dir = snapshots.join(rev);
            if is_complete(&dir) {
                return Some(dir);
            }
        }
    }
    fs::read_dir(&snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_complete(p))
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Lists the models installed in `data_dir` and in the environment's Hugging Face cache.
pub fn list(data_dir: &Path) -> Result<Vec<InstalledModel>> {
    list_with(data_dir, hf_cache_dir().as_deref())
}

/// [`list`] with an explicit Hugging Face cache directory. Data-directory models come first,
/// each group sorted by name; incomplete directories are left out.
pub fn list_with(data_dir: &Path, hf_cache: Option<&Path>) -> Result<Vec<InstalledModel>> {
    let mut out = Vec::new();
    let mut local = Vec::new();
    for (dir_name, path) in subdirs(&data_dir.join("models")) {
        let Some((org, model)) = dir_name.split_once("--") else {
            continue;
        };
        let name = format!("{org}/{model}");
        if split_name(&name).is_ok() && is_complete(&path) {
            local.push(describe(name, path, ModelSource::DataDir));
        }
    }
    local.sort_by(|a, b| a.location.name.cmp(&b.location.name));
    out.extend(local);
    let mut cached = Vec::new();
    for (dir_name, _) in hf_cache.map(subdirs).unwrap_or_default() {
        let Some(rest) = dir_name.strip_prefix("models--") else {
            continue;
        };
        let Some((org, model)) = rest.split_once("--") else {
            continue;
        };
        let name = format!("{org}/{model}");
        if let Some(path) = hf_cache.and_then(|c| hf_snapshot(c, &name)) {
            cached.push(describe(name, path, ModelSource::HfCache));
        }
    }
    cached.sort_by(|a, b| a.location.name.cmp(&b.location.name));
    out.extend(cached);
    Ok(out)
}

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

fn describe(name: String, path: PathBuf, source: ModelSource) -> InstalledModel {
    InstalledModel {
        architecture: read_architecture(&path.join("config.json")),
        size_bytes: dir_size(&path),
        location: ModelLocation { name, path, source },
    }
}

/// Reads `model_type`, `hidden_size` and `num_hidden_layers` from a `config.json`.
pub fn read_architecture(config: &Path) -> Option<Architecture> {
    let text = fs::read_to_string(config).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Architecture {
        model_type: json.get("model_type")?.as_str()?.to_string(),
        hidden_size: json.get("hidden_size").and_then(|v| v.as_u64()),
        num_layers: json.get("num_hidden_layers").and_then(|v| v.as_u64()),
        max_positions: json.get("max_position_embeddings").and_then(|v| v.as_u64()),
    })
}

/// Bytes of every file below `dir`; links are followed, which is what a hub snapshot (links
/// into `blobs/`) needs to report its real size.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match fs::metadata(e.path()) {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Downloads `name` into `<data>/models/<org>--<name>/`, with a progress bar, unless it is
/// already complete there. Fails with [`EmbedError::NotAvailable`] when the hub cannot be
/// reached, saying which files to place in which directory instead.
pub fn pull(name: &str, data_dir: &Path) -> Result<ModelLocation> {
    pull_with(
        name,
        data_dir,
        &PullOptions {
            endpoint: None,
            progress: true,
        },
    )
}

/// [`pull`] with explicit options.
pub fn pull_with(name: &str, data_dir: &Path, options: &PullOptions) -> Result<ModelLocation> {
    let target = model_dir(data_dir, name)?;
    let location = ModelLocation {
        name: name.to_string(),
        path: target.clone(),
        source: ModelSource::DataDir,
    };
    if is_complete(&target) {
        return Ok(location);
    }
    let unreachable = |err: &dyn std::fmt::Display| EmbedError::NotAvailable {
        name: name.to_string(),
        reason: format!(
            "download failed ({err}); place {} in {}",
            needed_files(),
            target.display()
        ),
    };
    let staging = target.with_file_name(format!(
        ".partial-{}",
        target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut builder = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(staging.join(".hub"))
        .with_progress(options.progress);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder.build().map_err(|e| unreachable(&e))?;
    let repo = api.model(name.to_string());
    let info = repo.info().map_err(|e| unreachable(&e))?;
    let files = select_files(info.siblings.iter().map(|s| s.rfilename.as_str()));
    let missing_required: Vec<&str> = REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !files.iter().any(|g| g == f))
        .collect();
    if !missing_required.is_empty() || !files.iter().any(|f| f.ends_with(".safetensors")) {
        return Err(EmbedError::NotAvailable {
            name: name.to_string(),
            reason: format!(
                "the repository lacks {} (Quiver loads only safetensors weights with a \
                 tokenizer.json); place {} in {}",
                if missing_required.is_empty() {
                    "*.safetensors weights".to_string()
                } else {
                    missing_required.join(", ")
                },
                needed_files(),
                target.display()
            ),
        });
    }
    let io = |path: &Path, e: std::io::Error| EmbedError::ModelFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    for file in &files {
        let dest = target.join(file);
        if dest.is_file() {
            continue;
        }
        let pointer = repo.download(file).map_err(|e| unreachable(&e))?;
        // The cache entry is a link into blobs/; move the blob itself into place.
        let blob = fs::canonicalize(&pointer).map_err(|e| io(&pointer, e))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        fs::rename(&blob, &dest).map_err(|e| io(&dest, e))?;
    }
    // Staging only held hub bookkeeping by now; failing to remove it loses nothing.
    let _ = fs::remove_dir_all(&staging);
    if is_complete(&target) {
        Ok(location)
    } else {
        Err(EmbedError::ModelFile {
            path: target,
            reason: format!("incomplete after download; expected {}", needed_files()),
        })
    }
}

/// Which of a repository's files Quiver needs: the required and side files, and the
/// top-level safetensors weights (never ONNX, PyTorch pickles or other formats).
fn select_files<'a>(repo_files: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut files: Vec<String> = repo_files
        .filter(|f| {
            REQUIRED_FILES.contains(f)
                || OPTIONAL_FILES.contains(f)
                || (f.ends_with(".safetensors") && !f.contains('/'))
        })
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "resolve_tests.rs"]
mod tests;
