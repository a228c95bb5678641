//! Report output: the JSON document every run writes (`--out`) and the Markdown tables it
//! prints, with our figure, the peer's and their ratio side by side.
//!
//! JSON layout, one object per run:
//!
//! | key          | content                                                  |
//! |--------------|----------------------------------------------------------|
//! | `bench`      | `ir`, `ann`, `embed`, `ingest` or `db`                   |
//! | `machine`    | [`crate::machine::info`]                                 |
//! | `parameters` | what the run was asked to do                             |
//! | `results`    | the figures (layout per bench, see its module)           |
//! | `peers`      | the peer's figures and versions, `null` when not run     |
//! | `comparison` | rows of `{metric, ours, peer, ratio}`                    |

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use crate::{BenchError, Result};

/// One finished run.
#[derive(Debug, Clone)]
pub struct Report {
    pub json: Value,
    pub markdown: String,
}

impl Report {
    /// A report for `bench` with its parameters, results, peers and comparison rows.
    pub fn new(
        bench: &str,
        parameters: Value,
        results: Value,
        peers: Option<Value>,
        comparison: &[Comparison],
        markdown: String,
    ) -> Self {
        let machine = crate::machine::info();
        let header = format!(
            "## quiver bench {bench}\n\nMachine: {}\n\n",
            crate::machine::summary(&machine)
        );
        let mut md = header + &markdown;
        if !comparison.is_empty() {
            md.push_str("\n| metric | ours | peer | ours/peer |\n|---|---|---|---|\n");
            for c in comparison {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    c.metric,
                    fmt_num(c.ours),
                    c.peer.map_or("n/a".into(), fmt_num),
                    c.ratio().map_or("n/a".into(), |r| format!("{r:.3}")),
                ));
            }
        }
        Report {
            json: json!({
                "bench": bench,
                "machine": machine,
                "parameters": parameters,
                "results": results,
                "peers": peers,
                "comparison": comparison,
            }),
            markdown: md,
        }
    }

    /// Writes the JSON to `path`, creating its directory if needed.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.json)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        }
        std::fs::write(path, text + "\n").map_err(|e| BenchError::io(path, e))
    }
}

/// Our figure against the peer's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// What is compared, e.g. `bm25 nDCG@10 vs bm25s`.
    pub metric: String,
    pub ours: f64,
    pub peer: Option<f64>,
}

impl Comparison {
    pub fn new(metric: impl Into<String>, ours: f64, peer: Option<f64>) -> Self {
        Comparison {
            metric: metric.into(),
            ours,
            peer,
        }
    }

    /// ours / peer, when the peer's figure is known and non-zero.
    pub fn ratio(&self) -> Option<f64> {
        self.peer.filter(|p| *p != 0.0).map(|p| self.ours / p)
    }
}

/// A figure with precision that suits its size.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A Markdown table from a header and rows.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn report_carries_comparison_and_ratio() {
        let c = [
            Comparison::new("qps", 200.0, Some(100.0)),
            Comparison::new("x", 1.0, None),
        ];
        let r = Report::new("ann", json!({}), json!({"a": 1}), None, &c, String::new());
        assert_eq!(r.json["comparison"][0]["peer"], 100.0);
        assert_eq!(c[0].ratio(), Some(2.0));
        assert!(
            r.markdown.contains("| qps | 200 | 100 | 2.000 |"),
            "{}",
            r.markdown
        );
        assert!(r.markdown.contains("| x | 1.00 | n/a | n/a |"));
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        r.write_json(&p).unwrap();
        let back: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["results"]["a"], 1);
    }
}
