//! Loaded models by name, one instance per model shared by every collection that uses it.
//!
//! A name such as `Qwen/Qwen3-Embedding-0.6B` is resolved with [`crate::resolve`] (the data
//! directory first, then the Hugging Face cache), its `config.json` picks the architecture
//! (`qwen3` or `bert`), and the loaded model is wrapped in a batching service. Later
//! lookups of the same name get the same service.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::resolve::{self, read_architecture, InstalledModel};
use crate::{
    BertEmbedder, EmbedError, EmbedService, ModelOptions, Precision, Qwen3Embedder, Qwen3Reranker,
    RerankService, Result, ServiceConfig, ServiceStats, TextEmbedder,
};

/// What a model serves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Embedding,
    Reranking,
}

/// The role an installed model's checkpoint can serve: BERT checkpoints embed; a Qwen3
/// checkpoint reranks when its name says so (`Qwen3-Reranker-…`), else it embeds.
fn role_of(name: &str, model_type: &str) -> Option<Role> {
    match model_type {
        "bert" => Some(Role::Embedding),
        "qwen3" if name.to_ascii_lowercase().contains("rerank") => Some(Role::Reranking),
        "qwen3" => Some(Role::Embedding),
        _ => None,
    }
}

/// The models a process has loaded, keyed by name.
pub struct ModelRegistry {
    data_dir: PathBuf,
    service: ServiceConfig,
    precision: Precision,
    embedders: Mutex<HashMap<String, Arc<EmbedService>>>,
    rerankers: Mutex<HashMap<String, Arc<RerankService>>>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl ModelRegistry {
    /// A registry that finds models under `<data_dir>/models` (and the Hugging Face cache);
    /// every service it starts uses `service` limits.
    pub fn new(data_dir: &Path, service: ServiceConfig) -> Self {
        ModelRegistry {
            data_dir: data_dir.to_path_buf(),
            service,
            precision: Precision::F32,
            embedders: Mutex::new(HashMap::new()),
            rerankers: Mutex::new(HashMap::new()),
        }
    }

    /// Loads every model from now on at `precision` (models already loaded keep theirs).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    fn options(&self) -> ModelOptions {
        ModelOptions {
            precision: self.precision,
            ..ModelOptions::default()
        }
    }

    /// The embedding service for `name`, loading the model on first use.
    ///
    /// Loading happens under the registry's lock so two collections asking for the same
    /// model at once load it once.
    pub fn embedder(&self, name: &str) -> Result<Arc<EmbedService>> {
        let mut map = lock(&self.embedders);
        if let Some(service) = map.get(name) {
            return Ok(Arc::clone(service));
        }
        let dir = resolve::resolve(name, &self.data_dir)?.path;
        let model: Arc<dyn TextEmbedder> = match model_type(name, &dir)?.as_str() {
            "qwen3" => Arc::new(Qwen3Embedder::load_with(&dir, self.options())?),
            "bert" => Arc::new(BertEmbedder::load_with(&dir, self.options())?),
            other => return Err(unsupported(name, other, "qwen3 or bert")),
        };
        let service = Arc::new(EmbedService::new(model, self.config_for(name))?);
        map.insert(name.to_string(), Arc::clone(&service));
        Ok(service)
    }

    /// The reranking service for `name`, loading the model on first use.
    pub fn reranker(&self, name: &str) -> Result<Arc<RerankService>> {
        let mut map = lock(&self.rerankers);
        if let Some(service) = map.get(name) {
            return Ok(Arc::clone(service));
        }
        let dir = resolve::resolve(name, &self.data_dir)?.path;
        let kind = model_type(name, &dir)?;
        if kind != "qwen3" {
            return Err(unsupported(name, &kind, "qwen3"));
        }
        let model = Arc::new(Qwen3Reranker::load_with(&dir, self.options())?);
        let service = Arc::new(RerankService::new(model, self.config_for(name))?);
        map.insert(name.to_string(), Arc::clone(&service));
        Ok(service)
    }

    /// Names of the models loaded so far.
    pub fn loaded(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.embedders).keys().cloned().collect();
        names.extend(lock(&self.rerankers).keys().cloned());
        names.sort();
        names
    }

    /// Batch counters of every loaded model: `(role, name, stats)`, role being
    /// `"embed"` or `"rerank"`.
    pub fn stats(&self) -> Vec<(&'static str, String, ServiceStats)> {
        let mut out: Vec<_> = lock(&self.embedders)
            .iter()
            .map(|(name, s)| ("embed", name.clone(), s.stats()))
            .collect();
        out.extend(
            lock(&self.rerankers)
                .iter()
                .map(|(name, s)| ("rerank", name.clone(), s.stats())),
        );
        out
    }

    /// Names of the installed models that can serve `role`, as [`resolve::list`] finds
    /// them (the data directory first, then the Hugging Face cache), without duplicates.
    pub fn installed(&self, role: Role) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for m in resolve::list(&self.data_dir)? {
            let name = m.location.name;
            let fits = m
                .architecture
                .is_some_and(|a| role_of(&name, &a.model_type) == Some(role));
            if fits && !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Every installed model (as [`resolve::list`] finds them) with the role it can
    /// serve, `None` for a checkpoint of an architecture Quiver does not run.
    pub fn catalog(&self) -> Result<Vec<(InstalledModel, Option<Role>)>> {
        Ok(resolve::list(&self.data_dir)?
            .into_iter()
            .map(|m| {
                let role = m
                    .architecture
                    .as_ref()
                    .and_then(|a| role_of(&m.location.name, &a.model_type));
                (m, role)
            })
            .collect())
    }

    fn config_for(&self, name: &str) -> ServiceConfig {
        ServiceConfig {
            model_name: name.to_string(),
            ..self.service.clone()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while loading leaves the map itself consistent: keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn model_type(name: &str, dir: &Path) -> Result<String> {
    let config = dir.join("config.json");
    read_architecture(&config)
        .map(|a| a.model_type)
        .ok_or_else(|| EmbedError::ModelFile {
            path: config,
            reason: format!("cannot read model_type for {name}"),
        })
}

fn unsupported(name: &str, kind: &str, expected: &str) -> EmbedError {
    EmbedError::NotAvailable {
        name: name.to_string(),
        reason: format!("architecture {kind:?} is not supported here (expected {expected})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_architecture_and_name() {
        assert_eq!(role_of("a/b", "bert"), Some(Role::Embedding));
        assert_eq!(
            role_of("Qwen/Qwen3-Embedding-0.6B", "qwen3"),
            Some(Role::Embedding)
        );
        assert_eq!(
            role_of("Qwen/Qwen3-Reranker-0.6B", "qwen3"),
            Some(Role::Reranking)
        );
        assert_eq!(role_of("a/b", "llama"), None);
    }
}
