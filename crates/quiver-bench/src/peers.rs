//! Runs the peer script (`scripts/peers/run`, Python, pinned requirements in
//! `scripts/peers/requirements.txt`, its own virtual environment) and reads its answer.
//!
//! The harness writes the peer's input (documents, queries, vectors) into a work directory,
//! calls `run <bench> --work DIR ...`, and the script writes `DIR/peer.json`. The script's
//! stderr goes straight to the terminal so its progress and errors stay visible.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{BenchError, Result};

/// Where the peer runner is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// The runner script.
    pub script: PathBuf,
}

impl Default for Peers {
    /// `$QUIVER_PEERS_SCRIPT`, else `scripts/peers/run` under the current directory.
    fn default() -> Self {
        let script = std::env::var_os("QUIVER_PEERS_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("scripts/peers/run"));
        Peers { script }
    }
}

impl Peers {
    /// Runs `script <bench> --work <work> <args...>` and returns `work/peer.json`.
    pub fn run(&self, bench: &str, work: &Path, args: &[String]) -> Result<Value> {
        if !self.script.is_file() {
            return Err(BenchError::Peer(format!(
                "{} not found: run from the repository root or set QUIVER_PEERS_SCRIPT",
                self.script.display()
            )));
        }
        let status = Command::new(&self.script)
            .arg(bench)
            .arg("--work")
            .arg(work)
            .args(args)
            .status()
            .map_err(|e| {
                BenchError::Peer(format!("cannot start {}: {e}", self.script.display()))
            })?;
        if !status.success() {
            return Err(BenchError::Peer(format!(
                "{} {bench} failed: {status}",
                self.script.display()
            )));
        }
        let out = work.join("peer.json");
        let text = std::fs::read_to_string(&out).map_err(|e| BenchError::io(&out, e))?;
        serde_json::from_str(&text).map_err(|e| BenchError::Peer(format!("{}: {e}", out.display())))
    }
}

/// The HNSW settings a vector peer (`ann`, `db`) builds and sweeps with.
#[derive(Debug, Clone, Copy)]
pub struct HnswSweep<'a> {
    pub m: usize,
    pub ef_construction: usize,
    pub efs: &'a [usize],
    pub k: usize,
}

impl Peers {
    /// Runs a vector peer on `base` and `queries` (written as `.npy` into a scratch
    /// directory) with `sweep`'s settings followed by `extra` arguments.
    pub fn run_vectors(
        &self,
        bench: &str,
        base: &crate::vectors::Vectors,
        queries: &crate::vectors::Vectors,
        sweep: HnswSweep<'_>,
        extra: &[String],
    ) -> Result<Value> {
        let work = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
        base.write_npy(&work.path().join("base.npy"))?;
        queries.write_npy(&work.path().join("queries.npy"))?;
        let efs: Vec<String> = sweep.efs.iter().map(ToString::to_string).collect();
        let mut args = vec![
            "--m".into(),
            sweep.m.to_string(),
            "--ef-construction".into(),
            sweep.ef_construction.to_string(),
            "--efs".into(),
            efs.join(","),
            "--k".into(),
            sweep.k.to_string(),
        ];
        args.extend_from_slice(extra);
        self.run(bench, work.path(), &args)
    }
}

/// Writes `(id, text)` pairs as JSONL for the peer.
pub fn write_entries(path: &Path, entries: &[crate::beir::Entry]) -> Result<()> {
    let mut out = String::new();
    for e in entries {
        out.push_str(&serde_json::json!({"id": e.id, "text": e.text}).to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| BenchError::io(path, e))
}

/// The figure at `path` (JSON pointer) as a number.
pub fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_script_is_a_clear_error() {
        let p = Peers {
            script: PathBuf::from("/nonexistent/run"),
        };
        let e = p.run("ir", Path::new("/tmp"), &[]).unwrap_err().to_string();
        assert!(e.contains("QUIVER_PEERS_SCRIPT"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn reads_the_answer_file() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let script = t.path().join("run");
        std::fs::write(
            &script,
            "#!/bin/sh\necho '{\"bench\": \"'$1'\", \"x\": 2.5}' > \"$3/peer.json\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v = Peers { script }.run("ann", t.path(), &[]).unwrap();
        assert_eq!(v["bench"], "ann");
        assert_eq!(num(&v, "/x"), Some(2.5));
    }
}
