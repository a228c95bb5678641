//! The peers of `quiver bench ingest`'s embedding runs, run by `scripts/peers/run
//! ingest-embed` on the very texts Quiver was sent (written as `texts.json`), each in a
//! Python process of its own, with the same model directory and as many threads as the
//! machine has cores:
//!
//! - sentence-transformers alone: `encode` over every text in its default batches of 32
//!   (no database: the ceiling for embedding these texts in PyTorch);
//! - Chroma, embedded: a collection whose embedding function is sentence-transformers'
//!   (`SentenceTransformerEmbeddingFunction`), the texts added in Quiver's request size.
//!
//! Model loading and a warm-up call are outside the clock for both.
//!
//! `embedding_peers` in the JSON: `{versions, <name>: {what, seconds, documents}}`.

use std::path::Path;

use serde_json::Value;

use crate::ingest_peers::entry;
use crate::peers::Peers;
use crate::report::{fmt_num, table, Comparison};
use crate::{BenchError, Result};

/// The peers, in report order.
pub const NAMES: [&str; 2] = ["sentence-transformers", "chroma"];

/// What one peer took to embed (and store) every text.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedPeer {
    pub name: String,
    /// What it ran, in its own words.
    pub what: String,
    pub documents: usize,
    pub seconds: f64,
}

impl EmbedPeer {
    pub fn docs_per_s(&self) -> f64 {
        self.documents as f64 / self.seconds.max(1e-9)
    }
}

/// Reads every peer of `answer`.
pub fn read(answer: &Value) -> Result<Vec<EmbedPeer>> {
    NAMES
        .iter()
        .map(|name| {
            let sys = entry(answer, name)?;
            Ok(EmbedPeer {
                name: name.to_string(),
                what: sys["what"].as_str().unwrap_or("?").to_string(),
                documents: sys["documents"].as_u64().unwrap_or(0) as usize,
                seconds: sys["seconds"].as_f64().unwrap_or(0.0),
            })
        })
        .collect()
}

/// Runs the peers on `texts` with the model in `model_dir`.
pub fn run(
    peers: &Peers,
    model_dir: &Path,
    texts: &[&str],
    batch: usize,
    threads: usize,
) -> Result<(Value, Vec<EmbedPeer>)> {
    let work = tempfile::tempdir().map_err(|e| BenchError::io(Path::new("temp dir"), e))?;
    let path = work.path().join("texts.json");
    let json = serde_json::to_vec(texts).map_err(|e| BenchError::Peer(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| BenchError::io(&path, e))?;
    let args = [
        "--model-dir".to_string(),
        model_dir.display().to_string(),
        "--batch".to_string(),
        batch.to_string(),
        "--threads".to_string(),
        threads.to_string(),
    ];
    let answer = peers.run("ingest-embed", work.path(), &args)?;
    let runs = read(&answer)?;
    Ok((answer, runs))
}

/// Quiver's embedding docs/s under each WAL policy against each peer's.
pub fn compare(ours: &[(String, f64)], peers: &[EmbedPeer]) -> Vec<Comparison> {
    ours.iter()
        .flat_map(|(policy, rate)| {
            peers.iter().map(move |p| {
                Comparison::new(
                    format!("embedding on ingest docs/s, WAL {policy}, vs {}", p.name),
                    *rate,
                    Some(p.docs_per_s()),
                )
            })
        })
        .collect()
}

/// The peers' figures as Markdown, with how they were measured.
pub fn markdown(peers: &[EmbedPeer]) -> String {
    let mut md = String::from(
        "\nEmbedding peers on the same texts and model, each in a Python process of its own \
         (model load and warm-up outside the clock):\n\n",
    );
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.what.clone(),
                p.documents.to_string(),
                format!("{:.2}", p.seconds),
                fmt_num(p.docs_per_s()),
            ]
        })
        .collect();
    md.push_str(&table(
        &["peer", "what", "documents", "seconds", "docs/s"],
        &rows,
    ));
    md
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn peers_are_read_and_compared_per_policy() {
        let answer = json!({
            "versions": {},
            "sentence-transformers": {"what": "encode", "documents": 100, "seconds": 4.0},
            "chroma": {"what": "add", "documents": 100, "seconds": 5.0},
        });
        let runs = read(&answer).unwrap();
        assert_eq!(runs[0].docs_per_s(), 25.0);
        let rows = compare(&[("always".to_string(), 50.0)], &runs);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1].metric,
            "embedding on ingest docs/s, WAL always, vs chroma"
        );
        assert_eq!(rows[1].ratio(), Some(2.5));
        let md = markdown(&runs);
        assert!(md.contains("| chroma | add | 100 | 5.00 | 20"), "{md}");
        let mut partial = answer.clone();
        partial.as_object_mut().unwrap().remove("chroma");
        assert!(read(&partial).is_err());
    }
}
