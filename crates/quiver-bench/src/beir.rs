//! Loader for test collections in BEIR layout.
//!
//! | file             | format                                                        |
//! |------------------|---------------------------------------------------------------|
//! | `corpus.jsonl`   | one `{"_id", "title"?, "text"}` object per line               |
//! | `queries.jsonl`  | one `{"_id", "text"}` object per line                         |
//! | `qrels/test.tsv` | `query-id <TAB> corpus-id <TAB> score`, optional header line  |
//!
//! Ids may be JSON strings or numbers. Judgments are graded: the score is the gain used by
//! nDCG, and any score above zero counts as relevant for recall and MRR. A document's text
//! is its title, a newline and its body, the way `quiver import` reads BEIR corpora, so the
//! benchmark indexes exactly what a user importing the same file would.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{BenchError, Result};

/// Graded judgments of one query: document id to gain.
pub type Judgments = HashMap<String, i32>;

/// One document or query.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub text: String,
}

/// A loaded test collection.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Where it was loaded from.
    pub dir: PathBuf,
    pub docs: Vec<Entry>,
    /// Queries that have at least one relevant judgment, in file order.
    pub queries: Vec<Entry>,
    /// Judgments by query id.
    pub qrels: HashMap<String, Judgments>,
}

impl Dataset {
    /// Loads `dir/{corpus.jsonl, queries.jsonl, qrels/test.tsv}`.
    pub fn load(dir: &Path) -> Result<Dataset> {
        let docs = read_jsonl(&dir.join("corpus.jsonl"), true)?;
        let qrels = read_qrels(&dir.join("qrels").join("test.tsv"))?;
        let queries = read_jsonl(&dir.join("queries.jsonl"), false)?
            .into_iter()
            .filter(|q| qrels.get(&q.id).is_some_and(|j| j.values().any(|&g| g > 0)))
            .collect::<Vec<_>>();
        if docs.is_empty() || queries.is_empty() {
            return Err(BenchError::InvalidInput(format!(
                "{}: no documents or no judged queries",
                dir.display()
            )));
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            docs,
            queries,
            qrels,
        })
    }

    /// Keeps only the first `n` queries.
    pub fn truncate_queries(&mut self, n: usize) {
        self.queries.truncate(n);
    }

    /// Turns the corpus into `k` times fewer, `k` times longer documents, for measuring
    /// what truncation at a model's input limit loses: long document `j` of `g` joins
    /// documents `j`, `j + g`, `j + 2g`, ... (so neighbours in the file, often on one
    /// topic, land in different long documents and a relevant part sits at every
    /// position equally often), separated by blank lines, with id `merged-j`. A long
    /// document's gain for a query is the best gain of its parts. `k <= 1` changes nothing.
    pub fn merge_docs(&mut self, k: usize) {
        if k <= 1 {
            return;
        }
        let groups = self.docs.len().div_ceil(k);
        let mut texts = vec![Vec::with_capacity(k); groups];
        let mut owner = HashMap::with_capacity(self.docs.len());
        for (i, doc) in self.docs.drain(..).enumerate() {
            let j = i % groups;
            texts[j].push(doc.text);
            owner.insert(doc.id, format!("merged-{j}"));
        }
        self.docs = texts
            .into_iter()
            .enumerate()
            .map(|(j, parts)| Entry {
                id: format!("merged-{j}"),
                text: parts.join("\n\n"),
            })
            .collect();
        for judged in self.qrels.values_mut() {
            let mut merged = Judgments::new();
            for (id, gain) in judged.drain() {
                let Some(to) = owner.get(&id) else { continue };
                let best = merged.entry(to.clone()).or_insert(gain);
                *best = (*best).max(gain);
            }
            *judged = merged;
        }
    }

    /// The judgments of `query_id` (empty when it has none).
    pub fn judgments(&self, query_id: &str) -> &Judgments {
        static EMPTY: std::sync::OnceLock<Judgments> = std::sync::OnceLock::new();
        self.qrels
            .get(query_id)
            .unwrap_or_else(|| EMPTY.get_or_init(Judgments::new))
    }
}

fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| BenchError::io(path, e))
}

/// Reads a BEIR corpus or queries file; `with_title` prepends each title.
fn read_jsonl(path: &Path, with_title: bool) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line = line.map_err(|e| BenchError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| BenchError::data(path, i + 1, e.to_string()))?;
        let id = id_string(v.get("_id"))
            .ok_or_else(|| BenchError::data(path, i + 1, "missing a string or number _id"))?;
        let body = v.get("text").and_then(Value::as_str).unwrap_or_default();
        let title = v.get("title").and_then(Value::as_str).unwrap_or_default();
        let text = match (with_title && !title.is_empty(), body.is_empty()) {
            (true, true) => title.to_string(),
            (true, false) => format!("{title}\n{body}"),
            (false, _) => body.to_string(),
        };
        out.push(Entry { id, text });
    }
    Ok(out)
}

fn read_qrels(path: &Path) -> Result<HashMap<String, Judgments>> {
    let mut out: HashMap<String, Judgments> = HashMap::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line = line.map_err(|e| BenchError::io(path, e))?;
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if line.trim().is_empty() || (i == 0 && fields.first() == Some(&"query-id")) {
            continue;
        }
        let [q, d, score] = fields[..] else {
            return Err(BenchError::data(
                path,
                i + 1,
                "expected 3 tab-separated fields",
            ));
        };
        let gain: i32 = score.parse().map_err(|_| {
            BenchError::data(path, i + 1, format!("score {score:?} is not an integer"))
        })?;
        out.entry(q.to_string())
            .or_default()
            .insert(d.to_string(), gain);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn loads_titles_numeric_ids_and_graded_qrels() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "corpus.jsonl",
            "{\"_id\": 1, \"title\": \"Wings\", \"text\": \"lift\"}\n\n{\"_id\": \"b\", \"text\": \"drag\"}\n",
        );
        write(
            t.path(),
            "queries.jsonl",
            "{\"_id\": \"q1\", \"text\": \"lift?\"}\n{\"_id\": \"q2\", \"text\": \"none\"}\n",
        );
        write(
            t.path(),
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\t1\t3\nq1\tb\t0\nq2\tb\t-1\n",
        );
        let d = Dataset::load(t.path()).unwrap();
        assert_eq!(
            d.docs[0],
            Entry {
                id: "1".into(),
                text: "Wings\nlift".into()
            }
        );
        assert_eq!(d.docs[1].text, "drag");
        // q2 has no relevant judgment: not evaluated.
        assert_eq!(d.queries.len(), 1);
        assert_eq!(d.judgments("q1")["1"], 3);
        assert_eq!(d.judgments("q1")["b"], 0);
        assert!(d.judgments("zz").is_empty());
    }

    #[test]
    fn merged_documents_interleave_parts_and_keep_the_best_gain() {
        let doc = |id: &str| Entry {
            id: id.into(),
            text: format!("text {id}"),
        };
        let mut d = Dataset {
            docs: ["a", "b", "c", "d", "e"].map(doc).to_vec(),
            ..Dataset::default()
        };
        d.qrels.insert(
            "q".into(),
            [("a", 1), ("c", 2), ("b", 0), ("gone", 3)]
                .map(|(k, g)| (k.to_string(), g))
                .into(),
        );
        d.merge_docs(2);
        let ids: Vec<&str> = d.docs.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["merged-0", "merged-1", "merged-2"]);
        assert_eq!(d.docs[0].text, "text a\n\ntext d");
        assert_eq!(d.docs[2].text, "text c");
        let q = d.judgments("q");
        assert_eq!(q.len(), 3);
        assert_eq!((q["merged-0"], q["merged-1"], q["merged-2"]), (1, 0, 2));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "corpus.jsonl",
            "{\"_id\": \"a\", \"text\": \"x\"}\n{oops\n",
        );
        write(t.path(), "queries.jsonl", "");
        write(t.path(), "qrels/test.tsv", "");
        let e = Dataset::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("corpus.jsonl:2"), "{e}");
        write(
            t.path(),
            "corpus.jsonl",
            "{\"_id\": \"a\", \"text\": \"x\"}\n",
        );
        write(t.path(), "qrels/test.tsv", "q\ta\tbig\n");
        let e = Dataset::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("test.tsv:1"), "{e}");
    }
}
