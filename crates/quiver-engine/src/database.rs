//! The database: a data directory of named collections.
//!
//! Names are validated before they touch a path. A collection directory is built
//! under a hidden temp name (`.creating-<name>-…`) and renamed into place when
//! complete, so a crash never leaves half a collection under a real name; a drop
//! renames the directory away (`.dropped-<name>-…`) before deleting it. Start-up
//! deletes both kinds of leftovers.
//!
//! An exclusive lock on `<data>/LOCK`, held for the life of the `Database`, keeps a
//! second process from opening the same directory; the OS drops it when the process
//! dies, so a crash never leaves a stale lock behind.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_core::{validate_name, CollectionConfig};
use quiver_storage::manifest::Manifest;
use quiver_storage::{fsutil, StorageError};

use crate::collection::SEGMENTS_DIR;
use crate::{config_file, Collection, DbOptions, EngineError, Result};

/// File in the data directory that carries the process lock.
pub const LOCK_FILE: &str = "LOCK";

/// Sub-directory of the data directory that holds collections.
pub const COLLECTIONS_DIR: &str = "collections";

/// Distinguishes hidden directories made by one process.
static HIDDEN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn hidden_name(prefix: &str, name: &str) -> String {
    format!(
        ".{prefix}-{name}-{}-{}",
        std::process::id(),
        HIDDEN_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An open data directory.
#[derive(Debug)]
pub struct Database {
    pub(crate) root: PathBuf,
    pub(crate) opts: DbOptions,
    pub(crate) collections: Mutex<BTreeMap<String, Arc<Collection>>>,
    /// Held open for its exclusive lock.
    _lock: fs::File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |e| StorageError::io(path, e)
}

/// Takes the exclusive process lock on `root/LOCK`.
fn lock_data_dir(root: &Path) -> Result<fs::File> {
    let path = root.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(EngineError::Locked(root.display().to_string())),
        Err(fs::TryLockError::Error(e)) => Err(StorageError::io(&path, e).into()),
    }
}

impl Database {
    /// Opens (creating if needed) the data directory `root` and every collection in it.
    pub fn open(root: &Path, opts: DbOptions) -> Result<Database> {
        let dir = root.join(COLLECTIONS_DIR);
        fsutil::create_dir_durable(&dir)?;
        let lock = lock_data_dir(root)?;
        fsutil::remove_temp_files(&dir)?;
        // Finish or undo an interrupted restore before any collection opens.
        crate::snapshot::recover(root)?;
        let mut collections = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map_err(io(&path))?.is_dir();
            if name.starts_with(".creating-") || name.starts_with(".dropped-") {
                // An interrupted create or drop: never a live collection.
                if is_dir {
                    fs::remove_dir_all(&path).map_err(io(&path))?;
                } else {
                    fs::remove_file(&path).map_err(io(&path))?;
                }
                fsutil::fsync_dir(&dir)?;
                continue;
            }
            if !is_dir || validate_name(&name).is_err() {
                tracing::warn!(path = %path.display(), "ignoring entry that is not a collection");
                continue;
            }
            let collection = Collection::open(&path, opts.collection.clone())?;
            collections.insert(name, Arc::new(collection));
        }
        Ok(Database {
            root: root.to_path_buf(),
            opts,
            collections: Mutex::new(collections),
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn collections_dir(&self) -> PathBuf {
        self.root.join(COLLECTIONS_DIR)
    }

    /// Creates collection `name` with `config`.
    pub fn create_collection(
        &self,
        name: &str,
        config: CollectionConfig,
    ) -> Result<Arc<Collection>> {
        validate_name(name)?;
        config.validate()?;
        let mut map = self.collections.lock();
        let parent = self.collections_dir();
        let target = parent.join(name);
        if map.contains_key(name) || target.exists() {
            return Err(EngineError::AlreadyExists(format!("collection {name:?}")));
        }
        let tmp = parent.join(hidden_name("creating", name));
        let built = (|| -> Result<()> {
            fs::create_dir(&tmp).map_err(io(&tmp))?;
            config_file::store(&tmp, &config)?;
            Manifest::default().store(&tmp)?;
            fs::create_dir(tmp.join(SEGMENTS_DIR)).map_err(io(&tmp))?;
            fsutil::fsync_dir(&tmp)?;
            fs::rename(&tmp, &target).map_err(io(&target))?;
            fsutil::fsync_dir(&parent)?;
            Ok(())
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let collection = Arc::new(Collection::open(&target, self.opts.collection.clone())?);
        map.insert(name.to_string(), Arc::clone(&collection));
        Ok(collection)
    }

    /// Names of every collection, sorted.
    pub fn list_collections(&self) -> Vec<String> {
        self.collections.lock().keys().cloned().collect()
    }

    /// The open collection `name`.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        validate_name(name)?;
        self.collections
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("collection {name:?}")))
    }

    /// Deletes collection `name` and all its data. Handles to it that are still held
    /// elsewhere stop working (their files are gone).
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let mut map = self.collections.lock();
        let collection = map
            .remove(name)
            .ok_or_else(|| EngineError::NotFound(format!("collection {name:?}")))?;
        // Stops its compaction thread when this was the last handle.
        drop(collection);
        let parent = self.collections_dir();
        let target = parent.join(name);
        let away = parent.join(hidden_name("dropped", name));
        fs::rename(&target, &away).map_err(io(&target))?;
        fsutil::fsync_dir(&parent)?;
        fs::remove_dir_all(&away).map_err(io(&away))?;
        Ok(())
    }
}
