//! The server under test, shared by `bench ingest` and `bench db`: a spawned `quiver serve`
//! on a scratch directory, upserting vectors into it over HTTP from several clients with
//! each request timed, and waiting for its background sealing and compaction to settle.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quiver_client::Client;
use serde::Serialize;
use serde_json::{json, Value};

use crate::vectors::Vectors;
use crate::{BenchError, Result};

/// How often [`settle`] asks for the collection's state.
const POLL: Duration = Duration::from_millis(250);
/// The collection's state must hold still this long to count as settled.
const SETTLE_QUIET: Duration = Duration::from_secs(3);

/// `QUIVER_STORAGE_WAL_SYNC` value for a policy name.
pub fn policy_env(name: &str) -> Result<&'static str> {
    match name {
        "always" => Ok("always"),
        "interval" => Ok("{ interval_ms = 50 }"),
        "never" => Ok("never"),
        other => Err(BenchError::InvalidInput(format!(
            "unknown policy {other:?} (always, interval, never)"
        ))),
    }
}

/// A spawned server, killed on drop.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) url: String,
    /// The server's scratch data directory, removed on drop.
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `exe serve` on a fresh scratch directory with WAL sync `policy`; the models of
/// `data_dir/models`, when it exists, are linked into it.
pub(crate) fn spawn(
    exe: &Path,
    data_dir: &Path,
    policy: &str,
    seal_rows: Option<usize>,
) -> Result<Spawned> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let models =
        std::path::absolute(data_dir.join("models")).map_err(|e| BenchError::io(data_dir, e))?;
    if models.is_dir() {
        #[cfg(unix)]
        std::os::unix::fs::symlink(&models, dir.path().join("models"))
            .map_err(|e| BenchError::io(&models, e))?;
    }
    let mut command = Command::new(exe);
    if let Some(rows) = seal_rows {
        command.env("QUIVER_STORAGE_SEAL_ROWS", rows.to_string());
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("QUIVER_STORAGE_WAL_SYNC", policy_env(policy)?)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", exe.display())))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| BenchError::io(exe, e))?;
    }
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(BenchError::Server(format!(
            "server did not start (first line {line:?})"
        )));
    };
    Ok(Spawned {
        url: addr.to_string(),
        child,
        dir,
    })
}

/// The upsert body for rows `first..first + count`: ids are the row numbers, metadata
/// `{"i": row, "group": row % 10}` (what the peers store too).
pub(crate) fn batch_body(base: &Vectors, first: usize, count: usize, meta: Metadata<'_>) -> Value {
    let docs: Vec<Value> = (first..first + count)
        .map(|i| {
            json!({
                "id": i.to_string(),
                "vector": base.row(i),
                "metadata": meta(i),
            })
        })
        .collect();
    json!({ "documents": docs })
}

/// The metadata document `i` is upserted with.
pub(crate) type Metadata<'a> = &'a (dyn Fn(usize) -> Value + Sync);

/// `{"i": i, "group": i % 10}`: the metadata of `bench ingest` and `bench db`.
pub(crate) fn plain_metadata(i: usize) -> Value {
    json!({"i": i, "group": i % 10})
}

/// One upsert request: when it was sent (seconds after the first) and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchTime {
    pub start_s: f64,
    pub ms: f64,
}

/// A finished load: seconds from the first request to the last answer, and every
/// request's timing in batch order.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub seconds: f64,
    pub batches: Vec<BatchTime>,
}

impl Loaded {
    /// Each request's latency.
    pub fn latencies(&self) -> Vec<Duration> {
        self.batches
            .iter()
            .map(|b| Duration::from_secs_f64(b.ms / 1e3))
            .collect()
    }
}

/// Creates `collection` (cosine, HNSW `m` and `ef_construction` from `hnsw`) and upserts
/// `base` into it, saying so under `label`.
pub(crate) fn create_and_upsert(
    http: &Client,
    collection: &str,
    base: &Vectors,
    hnsw: (usize, usize),
    (batch, clients): (usize, usize),
    label: &str,
    meta: Metadata<'_>,
) -> Result<Loaded> {
    let body = json!({"dim": base.dim, "distance": "cosine",
        "hnsw": {"m": hnsw.0, "ef_construction": hnsw.1}});
    http.call("PUT", &format!("/collections/{collection}"), Some(&body))?;
    eprintln!(
        "{label}: upserting {} vectors ({clients} clients, batches of {batch})",
        base.len()
    );
    upsert_all(http, collection, base, batch, clients, meta)
}

/// Upserts every row of `base` into `collection` from `clients` threads, `batch` rows per
/// request, taking the batches in order from a shared counter.
pub(crate) fn upsert_all(
    http: &Client,
    collection: &str,
    base: &Vectors,
    batch: usize,
    clients: usize,
    meta: Metadata<'_>,
) -> Result<Loaded> {
    let batch = batch.max(1);
    let batches = base.len().div_ceil(batch);
    let next = AtomicUsize::new(0);
    let path = format!("/collections/{collection}/documents");
    let start = Instant::now();
    let timed = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= batches {
                            return Ok(mine);
                        }
                        let first = b * batch;
                        let body = batch_body(base, first, batch.min(base.len() - first), meta);
                        let sent = Instant::now();
                        http.call("POST", &path, Some(&body))?;
                        let time = BatchTime {
                            start_s: (sent - start).as_secs_f64(),
                            ms: sent.elapsed().as_secs_f64() * 1e3,
                        };
                        mine.push((b, time));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(BenchError::Server("client thread panicked".into())))
            })
            .collect::<Result<Vec<Vec<(usize, BatchTime)>>>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut all: Vec<(usize, BatchTime)> = timed.into_iter().flatten().collect();
    all.sort_by_key(|(b, _)| *b);
    Ok(Loaded {
        seconds,
        batches: all.into_iter().map(|(_, t)| t).collect(),
    })
}

/// What [`settle`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// Seconds until the poll that last saw `GET /collections/{name}` change (0 when it
    /// never changed).
    pub changed_after: f64,
    /// Seconds waited in all, the quiet period included.
    pub waited: f64,
    /// False when the limit ran out first.
    pub settled: bool,
    /// The collection's state at the first poll and at the last.
    pub first: Value,
    pub last: Value,
}

/// Whether a collection's info shows background work queued or running.
fn busy(info: &Value) -> bool {
    let m = &info["maintenance"];
    m["queued_memtables"].as_u64().unwrap_or(0) > 0
        || m["sealing"].as_bool().unwrap_or(false)
        || m["compacting"].as_bool().unwrap_or(false)
}

/// Polls `GET /collections/{collection}` until it counts `n` documents, shows no seal or
/// compaction queued or running, and its answer has not changed for a few seconds
/// (segments, memtable rows, checkpoint: whatever the server reports), or `limit` passes.
pub(crate) fn settle(
    http: &Client,
    collection: &str,
    n: usize,
    limit: Duration,
) -> Result<Settled> {
    let path = format!("/collections/{collection}");
    let start = Instant::now();
    let first = http.call("GET", &path, None)?;
    let (mut info, mut changed_after, mut quiet_since) = (first.clone(), 0.0, Instant::now());
    let settled = loop {
        if info["count"].as_u64() == Some(n as u64)
            && !busy(&info)
            && quiet_since.elapsed() >= SETTLE_QUIET
        {
            break true;
        }
        if start.elapsed() > limit {
            break false;
        }
        std::thread::sleep(POLL);
        let now = http.call("GET", &path, None)?;
        if now != info {
            quiet_since = Instant::now();
            changed_after = start.elapsed().as_secs_f64();
        }
        info = now;
    };
    Ok(Settled {
        changed_after,
        waited: start.elapsed().as_secs_f64(),
        settled,
        first,
        last: info,
    })
}

/// The plain top-level fields of a collection's info (`count 5, segments 1, ...`) and
/// those of its `maintenance` object, leaving out its name and its configuration.
pub fn info_fields(info: &Value) -> String {
    let plain = |v: &Value| -> Vec<String> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| *k != "name" && !v.is_object() && !v.is_array())
            .map(|(k, v)| format!("{k} {v}"))
            .collect()
    };
    let mut fields = plain(info);
    fields.extend(plain(&info["maintenance"]));
    fields.join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn policies_map_to_config_values() {
        assert_eq!(policy_env("interval").unwrap(), "{ interval_ms = 50 }");
        assert_eq!(policy_env("always").unwrap(), "always");
        assert!(policy_env("sometimes").is_err());
    }

    #[test]
    fn batch_bodies_carry_ids_vectors_and_metadata() {
        let base = Vectors {
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
        };
        let b = batch_body(&base, 1, 2, &plain_metadata);
        let docs = b["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["id"], "1");
        assert_eq!(docs[1]["vector"][1].as_f64().unwrap() as f32, 0.8);
        assert_eq!(docs[1]["metadata"], json!({"i": 2, "group": 2}));
    }

    #[test]
    fn info_fields_keep_the_plain_values() {
        let info = json!({"name": "c", "config": {"dim": 4}, "count": 7, "segments": 1,
            "memtable_entries": 2, "read_only": false, "maintenance": {"seals": 3}});
        let s = info_fields(&info);
        assert!(s.contains("seals 3"), "{s}");
        assert!(busy(&json!({"maintenance": {"compacting": true}})));
        assert!(!busy(&info));
        assert!(
            s.contains("count 7") && s.contains("memtable_entries 2"),
            "{s}"
        );
        assert!(s.contains("read_only false") && !s.contains("dim") && !s.contains("name"));
        assert_eq!(info_fields(&json!(null)), "");
    }

    #[test]
    fn latencies_follow_the_batch_times() {
        let l = Loaded {
            seconds: 1.0,
            batches: vec![
                BatchTime {
                    start_s: 0.0,
                    ms: 250.0,
                },
                BatchTime {
                    start_s: 0.1,
                    ms: 1.5,
                },
            ],
        };
        assert_eq!(
            l.latencies(),
            vec![Duration::from_millis(250), Duration::from_micros(1500)]
        );
    }
}
