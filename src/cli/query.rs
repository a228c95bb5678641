//! `quiver query <collection> --text ... | --vector ...`.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::{print_json, Conn};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    collection: String,
    /// Query text.
    #[arg(long)]
    text: Option<String>,
    /// Query vector: a JSON array or comma-separated numbers.
    #[arg(long)]
    vector: Option<String>,
    /// dense, sparse or hybrid (default: chosen from what is given).
    #[arg(long)]
    mode: Option<String>,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Metadata filter as JSON.
    #[arg(long)]
    filter: Option<String>,
    /// HNSW search width for this query (default: the collection's ef_search).
    #[arg(long)]
    ef: Option<usize>,
    /// Rank by brute force over every document instead of the HNSW graphs (exact
    /// nearest neighbours, for measuring recall).
    #[arg(long)]
    exact: bool,
    /// Report per-stage ranks and scores (implies --json).
    #[arg(long)]
    explain: bool,
    /// Query instruction for the embedding model (default: the collection's).
    #[arg(long)]
    task: Option<String>,
    /// Rescore the fused candidates with the collection's reranker.
    #[arg(long)]
    rerank: bool,
    /// Candidates the reranker scores.
    #[arg(long, requires = "rerank")]
    candidates: Option<usize>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

/// Reads `[1, 2]` or `1,2`.
pub fn parse_vector(s: &str) -> Result<Vec<f32>> {
    let s = s.trim();
    if s.starts_with('[') {
        return serde_json::from_str(s).context("--vector is not a JSON array of numbers");
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f32>()
                .with_context(|| format!("--vector: {x:?} is not a number"))
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let mut body = Map::new();
    body.insert("top_k".into(), json!(args.top_k));
    if let Some(t) = &args.text {
        body.insert("text".into(), json!(t));
    }
    if let Some(v) = &args.vector {
        body.insert("vector".into(), json!(parse_vector(v)?));
    }
    if let Some(m) = &args.mode {
        body.insert("mode".into(), json!(m));
    }
    if let Some(f) = &args.filter {
        let f: Value = serde_json::from_str(f).context("--filter is not JSON")?;
        body.insert("filter".into(), f);
    }
    if let Some(ef) = args.ef {
        body.insert("ef".into(), json!(ef));
    }
    if args.exact {
        body.insert("exact".into(), json!(true));
    }
    if args.explain {
        body.insert("explain".into(), json!(true));
    }
    if let Some(t) = &args.task {
        body.insert("task".into(), json!(t));
    }
    if args.rerank {
        let mut rerank = json!({"enabled": true});
        if let Some(n) = args.candidates {
            rerank["candidates"] = json!(n);
        }
        body.insert("rerank".into(), rerank);
    }
    let client = args.conn.client();
    let answer = client.call(
        "POST",
        &format!("/collections/{}/query", args.collection),
        Some(&Value::Object(body)),
    )?;
    if args.json || args.explain {
        return print_json(&answer);
    }
    print!("{}", table(&answer));
    Ok(())
}

/// One line per hit (rank, score, id, the start of the text), then the timings.
fn table(answer: &Value) -> String {
    let mut out = String::new();
    let hits = answer["hits"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if hits.is_empty() {
        out.push_str("no hits\n");
    }
    for (rank, hit) in hits.iter().enumerate() {
        let text: String = hit["text"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(72)
            .collect();
        let text = text.replace('\n', " ");
        let id = hit["id"].as_str().unwrap_or("?");
        let score = hit["score"].as_f64().unwrap_or(f64::NAN);
        out.push_str(&format!("{:>3}. {score:>9.4}  {id:<12} {text}\n", rank + 1));
    }
    if let Some(t) = answer["timings_ms"].as_object() {
        let parts: Vec<String> = t
            .iter()
            .filter(|(_, v)| v.as_f64().is_some_and(|ms| ms > 0.0))
            .map(|(k, v)| format!("{k} {:.1}", v.as_f64().unwrap_or(0.0)))
            .collect();
        out.push_str(&format!("timings (ms): {}\n", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn table_lists_hits_in_order() {
        let answer = json!({"hits": [
            {"id": "a", "score": 0.5, "text": "first line\nsecond"},
            {"id": "b", "score": 0.25, "text": ""}],
            "timings_ms": {"dense": 1.26, "rerank": 0.0}});
        let t = super::table(&answer);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "  1.    0.5000  a            first line second");
        assert!(lines[1].starts_with("  2.    0.2500  b"));
        assert_eq!(lines[2], "timings (ms): dense 1.3");
        assert_eq!(super::table(&json!({"hits": []})), "no hits\n");
    }
}
