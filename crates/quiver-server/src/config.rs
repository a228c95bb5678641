//! The server's configuration: `server.toml`, overridden by `QUIVER_<SECTION>_<KEY>`
//! environment variables, overridden by command-line flags (applied by the binary).
//!
//! Overrides are applied to the parsed TOML table before it is turned into typed
//! settings, so every key of every section is overridable without a list to maintain.
//! Only variables naming a known section are read: `QUIVER_API_KEY` (the client's key)
//! and other `QUIVER_*` variables of the tools around the server are left alone.

use std::path::{Path, PathBuf};

use quiver_core::SyncPolicy;
use quiver_embed::{Precision, ServiceConfig};
use serde::Deserialize;

use crate::{Result, ServerError};

/// Everything `server.toml` can hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub models: ModelsConfig,
}

/// Sections that `QUIVER_<SECTION>_<KEY>` variables may address.
const SECTIONS: [&str; 4] = ["server", "storage", "limits", "models"];

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6433";

/// The `[server]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port` to listen on; port 0 picks a free port.
    pub listen: String,
    /// Keys allowed to read and write.
    pub api_keys: Keys,
    /// Keys allowed to read only.
    pub read_only_keys: Keys,
    /// Listen beyond loopback without any key. Off: the server refuses to start.
    pub allow_insecure_public: bool,
    /// Seconds to wait for in-flight requests after SIGINT/SIGTERM before syncing.
    pub shutdown_grace_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            api_keys: Keys::default(),
            read_only_keys: Keys::default(),
            allow_insecure_public: false,
            shutdown_grace_s: 30,
        }
    }
}

/// A list of keys; one key may be written as a plain string (handy in environment
/// variables: `QUIVER_SERVER_API_KEYS=secret`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "KeysRepr")]
pub struct Keys(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum KeysRepr {
    One(String),
    Many(Vec<String>),
}

impl From<KeysRepr> for Keys {
    fn from(r: KeysRepr) -> Self {
        match r {
            KeysRepr::One(k) if k.is_empty() => Keys(Vec::new()),
            KeysRepr::One(k) => Keys(vec![k]),
            KeysRepr::Many(v) => Keys(v),
        }
    }
}

/// The `[storage]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub wal_sync: SyncPolicy,
    pub wal_file_mb: u64,
    pub seal_rows: usize,
    pub compaction: bool,
    pub compaction_quiet_ms: u64,
    pub repair: bool,
    pub text_commit_ms: u64,
    pub text_commit_ops: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            wal_sync: SyncPolicy::Always,
            wal_file_mb: 64,
            seal_rows: 50_000,
            compaction: true,
            compaction_quiet_ms: 1000,
            repair: false,
            text_commit_ms: 1000,
            text_commit_ops: 100_000,
        }
    }
}

/// The `[limits]` section: request sizes enforced before any work is done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_text_bytes: usize,
    pub max_id_bytes: usize,
    pub max_top_k: usize,
    pub max_json_depth: usize,
    pub max_filter_depth: usize,
    pub max_filter_conditions: usize,
    pub max_concurrent_requests: usize,
    /// Largest snapshot archive a restore accepts (upload and unpacked size).
    pub max_snapshot_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 32 << 20,
            max_batch: 1024,
            max_text_bytes: 64 << 10,
            max_id_bytes: 512,
            max_top_k: 1000,
            max_json_depth: 32,
            max_filter_depth: 8,
            max_filter_conditions: 1024,
            max_concurrent_requests: 512,
            max_snapshot_bytes: 64 << 30,
        }
    }
}

/// The `[models]` section: defaults for the model endpoints and the batching of every
/// model the server loads (from `<data_dir>/models`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Embedding model for `/embed` and `/v1/embeddings` requests that name none.
    pub embedding: Option<String>,
    /// Reranker for `/rerank` requests that name none.
    pub reranker: Option<String>,
    /// Largest padded batch, in tokens (items × longest item).
    pub max_batch_tokens: usize,
    /// Most texts in one batch.
    pub max_batch_items: usize,
    /// Most texts waiting per model; beyond it requests get 503 `overloaded`.
    pub max_queued_items: usize,
    /// Query embeddings cached per model (0 disables the cache).
    pub query_cache_entries: usize,
    /// Threads of each model's own pool (0: one per core).
    pub threads: usize,
    /// Weight precision of every model loaded: `"none"` (float32, exact) or `"int8"`
    /// (weights quantized at load; faster where the CPU has AVX-512 VNNI, close but not
    /// equal to float32).
    pub quantize: Quantize,
    /// How float32 models compute their products: `"high"` runs products of 32+ rows on
    /// the AMX tile unit where the CPU has one, operands at about 16 significant bits;
    /// `"highest"` keeps full f32 operands everywhere.
    pub matmul_precision: MatmulPrecision,
}

/// `[models] matmul_precision`, named as PyTorch names its float32 matmul precisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    #[default]
    High,
    Highest,
}

/// `[models] quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantize {
    #[default]
    None,
    Int8,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let service = ServiceConfig::default();
        ModelsConfig {
            embedding: None,
            reranker: None,
            max_batch_tokens: service.max_batch_tokens,
            max_batch_items: service.max_batch_items,
            max_queued_items: service.max_queued_items,
            query_cache_entries: service.cache_entries,
            threads: service.threads,
            quantize: Quantize::None,
            matmul_precision: MatmulPrecision::High,
        }
    }
}

impl ModelsConfig {
    /// The precision models load with, from `quantize` and `matmul_precision`.
    pub fn precision(&self) -> Precision {
        match (self.quantize, self.matmul_precision) {
            (Quantize::Int8, _) => Precision::Int8,
            (Quantize::None, MatmulPrecision::High) => Precision::F32,
            (Quantize::None, MatmulPrecision::Highest) => Precision::F32Highest,
        }
    }

    /// The batching settings every model service starts with.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            max_batch_tokens: self.max_batch_tokens,
            max_batch_items: self.max_batch_items,
            max_queued_items: self.max_queued_items,
            cache_entries: self.query_cache_entries,
            threads: self.threads,
            ..ServiceConfig::default()
        }
    }
}

const ENV_PREFIX: &str = "QUIVER_";

impl Config {
    /// Reads `path` (a missing default `server.toml` is fine, a missing explicit file is
    /// not), then applies `QUIVER_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut table = match path {
            Some(p) => read_table(p)?,
            None if Path::new("server.toml").exists() => read_table(Path::new("server.toml"))?,
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                apply_override(&mut table, rest, &value).map_err(|m| {
                    ServerError::Config(format!("environment variable {name}: {m}"))
                })?;
            }
        }
        let config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ServerError::Config(format!("invalid configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects limits that would make every request fail.
    pub fn validate(&self) -> Result<()> {
        let l = &self.limits;
        let positive = [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_batch", l.max_batch),
            ("limits.max_text_bytes", l.max_text_bytes),
            ("limits.max_id_bytes", l.max_id_bytes),
            ("limits.max_top_k", l.max_top_k),
            ("limits.max_json_depth", l.max_json_depth),
            ("limits.max_filter_depth", l.max_filter_depth),
            ("limits.max_filter_conditions", l.max_filter_conditions),
            ("limits.max_concurrent_requests", l.max_concurrent_requests),
        ];
        let m = &self.models;
        let positive = positive.into_iter().chain([
            ("models.max_batch_tokens", m.max_batch_tokens),
            ("models.max_batch_items", m.max_batch_items),
            ("models.max_queued_items", m.max_queued_items),
        ]);
        for (key, value) in positive {
            if value == 0 {
                return Err(ServerError::Config(format!("{key} must be positive")));
            }
        }
        if l.max_snapshot_bytes == 0 {
            return Err(ServerError::Config(
                "limits.max_snapshot_bytes must be positive".into(),
            ));
        }
        if l.max_filter_depth > quiver_core::MAX_FILTER_DEPTH {
            return Err(ServerError::Config(format!(
                "limits.max_filter_depth may be at most {}",
                quiver_core::MAX_FILTER_DEPTH
            )));
        }
        let keys = self.server.api_keys.0.iter();
        if keys
            .chain(&self.server.read_only_keys.0)
            .any(|k| k.is_empty())
        {
            return Err(ServerError::Config("API keys must not be empty".into()));
        }
        Ok(())
    }
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ServerError::Config(format!("cannot read config file {}: {e}", path.display()))
    })?;
    toml::from_str(&text)
        .map_err(|e| ServerError::Config(format!("cannot parse {}: {e}", path.display())))
}

/// Sets `section.key` from `SECTION_KEY`; the value is read as TOML when it parses
/// (numbers, booleans, arrays, inline tables), otherwise as a plain string. Variables
/// naming no known section are ignored.
fn apply_override(
    table: &mut toml::Table,
    name: &str,
    raw: &str,
) -> std::result::Result<(), String> {
    let Some((section, key)) = name.split_once('_') else {
        return Ok(());
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if !SECTIONS.contains(&section.as_str()) {
        return Ok(());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let entry = table
        .entry(section.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(section_table) = entry.as_table_mut() else {
        return Err(format!("[{section}] is not a section"));
    };
    section_table.insert(key, value);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shipped_server_toml_parses_to_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../server.toml");
        let cfg = Config::load(Some(&path), vec![]).unwrap();
        let def = Config::default();
        assert_eq!(cfg.storage.data_dir, def.storage.data_dir);
        assert_eq!(cfg.storage.wal_sync, def.storage.wal_sync);
        assert_eq!(cfg.storage.seal_rows, def.storage.seal_rows);
        assert_eq!(cfg.server.listen, DEFAULT_LISTEN);
        assert_eq!(cfg.server.api_keys, Keys::default());
        assert!(!cfg.server.allow_insecure_public);
        assert_eq!(cfg.limits.max_body_bytes, def.limits.max_body_bytes);
        assert_eq!(cfg.limits.max_batch, def.limits.max_batch);
        assert_eq!(cfg.limits.max_top_k, def.limits.max_top_k);
        assert_eq!(cfg.limits.max_json_depth, def.limits.max_json_depth);
        assert_eq!(cfg.limits.max_filter_depth, def.limits.max_filter_depth);
        assert_eq!(cfg.models.embedding, None);
        assert_eq!(cfg.models.quantize, Quantize::None);
        assert_eq!(cfg.models.precision(), Precision::F32);
        assert_eq!(cfg.models.service(), def.models.service());
    }

    #[test]
    fn environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.toml");
        std::fs::write(
            &path,
            "[storage]\nseal_rows = 10\n[limits]\nmax_batch = 5\n",
        )
        .unwrap();
        let cfg = Config::load(
            Some(&path),
            vars(&[
                ("QUIVER_STORAGE_SEAL_ROWS", "99"),
                ("QUIVER_STORAGE_DATA_DIR", "/tmp/q"),
                ("QUIVER_STORAGE_WAL_SYNC", "{ interval_ms = 5 }"),
                ("QUIVER_LIMITS_MAX_TOP_K", "7"),
                ("QUIVER_MODELS_EMBEDDING", "org/model"),
                ("QUIVER_MODELS_QUANTIZE", "int8"),
                ("QUIVER_SERVER_API_KEYS", "secret"),
                ("QUIVER_SERVER_READ_ONLY_KEYS", "[\"r1\", \"r2\"]"),
                ("QUIVER_API_KEY", "client-side, ignored"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.storage.seal_rows, 99);
        assert_eq!(cfg.storage.data_dir, PathBuf::from("/tmp/q"));
        assert_eq!(cfg.storage.wal_sync, SyncPolicy::IntervalMs(5));
        assert_eq!(cfg.limits.max_batch, 5);
        assert_eq!(cfg.limits.max_top_k, 7);
        assert_eq!(cfg.models.embedding.as_deref(), Some("org/model"));
        assert_eq!(cfg.models.precision(), Precision::Int8);
        assert_eq!(cfg.server.api_keys, Keys(vec!["secret".into()]));
        assert_eq!(
            cfg.server.read_only_keys,
            Keys(vec!["r1".into(), "r2".into()])
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::load(None, vars(&[("QUIVER_STORAGE_NOPE", "1")])).is_err());
        assert!(Config::load(None, vars(&[("QUIVER_STORAGE_SEAL_ROWS", "many")])).is_err());
        assert!(Config::load(None, vars(&[("QUIVER_LIMITS_MAX_TOP_K", "0")])).is_err());
        assert!(Config::load(None, vars(&[("QUIVER_LIMITS_MAX_FILTER_DEPTH", "99")])).is_err());
        assert!(Config::load(None, vars(&[("QUIVER_SERVER_API_KEYS", "[\"\"]")])).is_err());
        let missing = Path::new("/nonexistent/quiver.toml");
        assert!(Config::load(Some(missing), vec![]).is_err());
    }
}
