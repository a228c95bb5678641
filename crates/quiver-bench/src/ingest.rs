//! `quiver bench ingest`: documents per second end to end over HTTP, against a real server.
//!
//! With a spawn target it starts the `quiver` binary (`serve --listen 127.0.0.1:0`) once
//! per WAL sync policy (`always`, `interval`, `never`, set through
//! `QUIVER_STORAGE_WAL_SYNC`) with a fresh temporary data directory whose `models/` links
//! to the real one; with a URL it measures that server as it is configured. Each run
//! creates two collections and posts the same documents to both, in batches, from several
//! client threads at once: one with vectors supplied by the client (random unit vectors),
//! one embedding the text on the server. The figure is documents / wall-clock seconds from
//! the first request to the last answer.
//!
//! `results.runs` rows: `{policy, mode, documents, seconds, docs_per_s}`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use quiver_client::Client;
use serde_json::{json, Value};

use crate::beir::Dataset;
use crate::report::{fmt_num, table, Report};
use crate::vectors::clustered;
use crate::{BenchError, Result};

/// Which server to measure.
#[derive(Debug, Clone)]
pub enum Target {
    /// An already running server.
    Url(String),
    /// Start `exe serve` per policy; models are linked from `data_dir/models`.
    Spawn { exe: PathBuf, data_dir: PathBuf },
}

/// What `quiver bench ingest` was asked to do.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub target: Target,
    /// Texts come from this BEIR corpus (cycled when more documents are asked for).
    pub dataset: PathBuf,
    /// Documents posted with supplied vectors.
    pub docs: usize,
    /// Documents posted for server-side embedding (0 skips that mode).
    pub embed_docs: usize,
    /// Model for server-side embedding.
    pub model: String,
    /// Length of supplied vectors.
    pub dim: usize,
    pub batch: usize,
    pub clients: usize,
    /// Policies to spawn with (`always`, `interval`, `never`).
    pub policies: Vec<String>,
    pub api_key: Option<String>,
}

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

pub(crate) fn spawn(exe: &Path, data_dir: &Path, policy: &str) -> Result<Spawned> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let models =
        std::path::absolute(data_dir.join("models")).map_err(|e| BenchError::io(data_dir, e))?;
    if models.is_dir() {
        #[cfg(unix)]
        std::os::unix::fs::symlink(&models, dir.path().join("models"))
            .map_err(|e| BenchError::io(&models, e))?;
    }
    let mut child = Command::new(exe)
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

/// Posts `docs` in batches from `clients` threads; returns seconds.
fn post_all(
    http: &Client,
    collection: &str,
    docs: &[Value],
    batch: usize,
    clients: usize,
) -> Result<f64> {
    let batches: Vec<&[Value]> = docs.chunks(batch.max(1)).collect();
    let next = AtomicUsize::new(0);
    let path = format!("/collections/{collection}/documents");
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = batches.get(i) else {
                        return Ok(());
                    };
                    http.call("POST", &path, Some(&json!({ "documents": b })))?;
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(BenchError::Server("client thread panicked".into())))
        })
    })?;
    Ok(start.elapsed().as_secs_f64())
}

fn documents(data: &Dataset, n: usize, vectors: Option<usize>, tag: &str) -> Vec<Value> {
    let vecs = vectors.map(|dim| clustered(11, n, 0, dim, 32, 0.6).0);
    (0..n)
        .map(|i| {
            let d = &data.docs[i % data.docs.len()];
            let mut doc = json!({"id": format!("{tag}-{i}"), "text": d.text});
            if let Some(v) = &vecs {
                doc["vector"] = json!(v.row(i));
            }
            doc
        })
        .collect()
}

/// One measured run against `http`.
fn measure(
    http: &Client,
    opts: &IngestOptions,
    data: &Dataset,
    policy: &str,
    rows: &mut Vec<Value>,
) -> Result<()> {
    let suffix = std::process::id();
    let mut modes = vec![("vectors", opts.docs)];
    if opts.embed_docs > 0 {
        modes.push(("embedding", opts.embed_docs));
    }
    for (mode, n) in modes {
        if n == 0 {
            continue;
        }
        let name = format!("bench_ingest_{mode}_{suffix}");
        let body = match mode {
            "vectors" => json!({"dim": opts.dim}),
            _ => json!({"embedding_model": opts.model}),
        };
        http.call("PUT", &format!("/collections/{name}"), Some(&body))?;
        let docs = documents(data, n, (mode == "vectors").then_some(opts.dim), mode);
        eprintln!("ingest: policy {policy}, {mode}: posting {n} documents");
        let seconds = post_all(http, &name, &docs, opts.batch, opts.clients)?;
        http.call("DELETE", &format!("/collections/{name}"), None)?;
        rows.push(json!({"policy": policy, "mode": mode, "documents": n, "seconds": seconds, "docs_per_s": n as f64 / seconds.max(1e-9)}));
    }
    Ok(())
}

/// Runs the benchmark.
pub fn run(opts: &IngestOptions) -> Result<Report> {
    let data = Dataset::load(&opts.dataset)?;
    let mut rows = Vec::new();
    match &opts.target {
        Target::Url(url) => measure(
            &Client::new(url, opts.api_key.clone()),
            opts,
            &data,
            "server's own",
            &mut rows,
        )?,
        Target::Spawn { exe, data_dir } => {
            if opts.embed_docs > 0 {
                crate::ir::require_model(data_dir, &opts.model)?;
            }
            for policy in &opts.policies {
                let server = spawn(exe, data_dir, policy)?;
                measure(
                    &Client::new(&server.url, None),
                    opts,
                    &data,
                    policy,
                    &mut rows,
                )?;
            }
        }
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r["policy"].as_str().unwrap_or("").to_string(),
                r["mode"].as_str().unwrap_or("").to_string(),
                r["documents"].to_string(),
                format!("{:.2}", r["seconds"].as_f64().unwrap_or(0.0)),
                fmt_num(r["docs_per_s"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    let mut md = format!(
        "HTTP ingest, batches of {}, {} concurrent clients, supplied vectors of dim {}, embedding model {}; no peer for this bench\n\n",
        opts.batch, opts.clients, opts.dim, opts.model
    );
    md.push_str(&table(
        &["WAL sync", "mode", "documents", "seconds", "docs/s"],
        &table_rows,
    ));
    let target = match &opts.target {
        Target::Url(u) => json!({"url": u}),
        Target::Spawn { .. } => json!("spawned"),
    };
    let parameters = json!({
        "target": target, "dataset": opts.dataset, "docs": opts.docs, "embed_docs": opts.embed_docs,
        "model": opts.model, "dim": opts.dim, "batch": opts.batch, "clients": opts.clients, "policies": opts.policies,
    });
    Ok(Report::new(
        "ingest",
        parameters,
        json!({"runs": rows}),
        None,
        &[],
        md,
    ))
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
    fn documents_cycle_texts_and_carry_vectors() {
        let data = Dataset {
            docs: vec![crate::beir::Entry {
                id: "a".into(),
                text: "x".into(),
            }],
            ..Dataset::default()
        };
        let d = documents(&data, 3, Some(4), "v");
        assert_eq!(d[2]["id"], "v-2");
        assert_eq!(d[2]["text"], "x");
        assert_eq!(d[1]["vector"].as_array().unwrap().len(), 4);
        assert!(documents(&data, 1, None, "e")[0].get("vector").is_none());
    }
}
