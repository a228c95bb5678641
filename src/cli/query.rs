//! `quiver query <collection> --text ... | --vector ...`.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use super::{print_json, Client, Conn};

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
    /// Report per-stage ranks and scores.
    #[arg(long)]
    explain: bool,
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
    if args.explain {
        body.insert("explain".into(), json!(true));
    }
    let client = Client::new(&args.conn);
    let answer = client.call(
        "POST",
        &format!("/collections/{}/query", args.collection),
        Some(&Value::Object(body)),
    )?;
    print_json(&answer)
}
