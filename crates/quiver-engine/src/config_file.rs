//! `collection.json`: a collection's fixed settings, replaced only atomically.
//!
//! ```json
//! {"format_version": 1, "config": {"dim": 384, "distance": "cosine"}, "crc32": 123}
//! ```
//!
//! | field            | meaning                                                   |
//! |------------------|-----------------------------------------------------------|
//! | `format_version` | layout of this file, currently 1                          |
//! | `config`         | [`CollectionConfig`]                                      |
//! | `crc32`          | crc32 of the compact JSON encoding of `config`            |
//!
//! JSON keeps the file readable by operators; the checksum still catches a damaged
//! or hand-edited file before the collection opens with the wrong settings.

use std::path::Path;

use quiver_core::CollectionConfig;
use quiver_storage::{fsutil, StorageError};
use serde::{Deserialize, Serialize};

use crate::Result;

/// File name of the configuration inside a collection directory.
pub const CONFIG_FILE: &str = "collection.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format_version: u32,
    config: CollectionConfig,
    crc32: u32,
}

fn checksum(config: &CollectionConfig) -> Result<u32> {
    let json = serde_json::to_vec(config).map_err(|e| StorageError::Codec(e.to_string()))?;
    Ok(crc32fast::hash(&json))
}

/// Atomically writes `dir/collection.json`.
pub(crate) fn store(dir: &Path, config: &CollectionConfig) -> Result<()> {
    let file = ConfigFile {
        format_version: VERSION,
        config: config.clone(),
        crc32: checksum(config)?,
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| StorageError::Codec(e.to_string()))?;
    fsutil::write_atomic(&dir.join(CONFIG_FILE), &json)?;
    Ok(())
}

/// Reads and checks `dir/collection.json`.
pub(crate) fn load(dir: &Path) -> Result<CollectionConfig> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
    let corrupt = |reason: String| StorageError::Corruption {
        file: path.clone(),
        offset: 0,
        reason,
    };
    let file: ConfigFile =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    if file.format_version != VERSION {
        return Err(StorageError::UnsupportedVersion {
            file: path.clone(),
            found: file.format_version,
            supported: VERSION,
        }
        .into());
    }
    if checksum(&file.config)? != file.crc32 {
        return Err(corrupt("checksum mismatch".into()).into());
    }
    file.config.validate()?;
    Ok(file.config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use quiver_core::Distance;

    #[test]
    fn roundtrip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CollectionConfig {
            distance: Distance::L2,
            ..CollectionConfig::new(8)
        };
        store(dir.path(), &cfg).unwrap();
        assert_eq!(load(dir.path()).unwrap(), cfg);
        // A file written before the index settings existed still loads.
        let old = r#"{"format_version": 1, "config": {"dim": 8, "distance": "l2"}, "crc32": CRC}"#
            .replace("CRC", &checksum(&cfg).unwrap().to_string());
        std::fs::write(dir.path().join(CONFIG_FILE), old).unwrap();
        assert_eq!(load(dir.path()).unwrap(), cfg);
        store(dir.path(), &cfg).unwrap();
        let path = dir.path().join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"dim\": 8", "\"dim\": 9")).unwrap();
        assert!(load(dir.path()).is_err());
    }
}
