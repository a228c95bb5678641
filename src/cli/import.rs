//! `quiver import <collection> <file>`: uploads a JSONL file in batches, with a
//! progress bar showing documents per second.
//!
//! Each line is a Quiver document, `{"id", "text", "metadata", "vector"}`, or a BEIR
//! corpus entry, `{"_id", "title", "text", "metadata"}`. A BEIR title is prepended to
//! the text (the way BEIR evaluations embed passages) and kept as metadata `title`.
//! Numeric ids are turned into strings. Blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use super::Conn;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    collection: String,
    /// JSONL file.
    file: PathBuf,
    /// Documents per request (at most the server's limits.max_batch).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Turns one parsed line into a document body for the API.
pub fn to_document(line: Value) -> Result<Value> {
    let Value::Object(mut obj) = line else {
        bail!("not a JSON object");
    };
    let beir = obj.contains_key("_id");
    let id = obj
        .remove(if beir { "_id" } else { "id" })
        .as_ref()
        .and_then(id_string)
        .context("missing a string or number id")?;
    let mut text = match obj.remove("text") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(_) => bail!("text is not a string"),
    };
    let mut metadata = match obj.remove("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => bail!("metadata is not an object"),
    };
    if beir {
        if let Some(Value::String(title)) = obj.remove("title") {
            if !title.is_empty() {
                text = if text.is_empty() {
                    title.clone()
                } else {
                    format!("{title}\n{text}")
                };
                metadata.insert("title".into(), json!(title));
            }
        }
    }
    let mut doc = json!({"id": id, "text": text, "metadata": metadata});
    if let Some(v) = obj.remove("vector") {
        doc["vector"] = v;
    }
    Ok(doc)
}

fn count_lines(path: &PathBuf) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut n = 0;
    for line in BufReader::new(file).lines() {
        if !line?.trim().is_empty() {
            n += 1;
        }
    }
    Ok(n)
}

pub fn run(args: Args) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let total = count_lines(&args.file)?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} docs, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = args.conn.client();
    let path = format!("/collections/{}/documents", args.collection);
    let file = File::open(&args.file)?;
    let start = Instant::now();
    let (mut batch, mut sent, mut last_lsn) = (Vec::new(), 0u64, 0u64);
    let mut flush = |batch: &mut Vec<Value>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let body = json!({"documents": std::mem::take(batch)});
        let answer = client.call("POST", &path, Some(&body))?;
        last_lsn = answer["lsn"].as_u64().unwrap_or(last_lsn);
        sent += n;
        bar.inc(n);
        Ok(())
    };
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: invalid JSON", args.file.display(), i + 1))?;
        let doc =
            to_document(parsed).with_context(|| format!("{}:{}", args.file.display(), i + 1))?;
        batch.push(doc);
        if batch.len() == args.batch_size {
            flush(&mut batch)?;
        }
    }
    flush(&mut batch)?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "imported {sent} documents into {} in {secs:.2}s ({:.0} docs/s), last lsn {last_lsn}",
        args.collection,
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_line_shapes() {
        let q = to_document(json!({"id": 7, "text": "t", "vector": [1.0]})).unwrap();
        assert_eq!(
            q,
            json!({"id": "7", "text": "t", "metadata": {}, "vector": [1.0]})
        );
        let b = to_document(json!({"_id": "d1", "title": "T", "text": "body"})).unwrap();
        assert_eq!(
            b,
            json!({"id": "d1", "text": "T\nbody", "metadata": {"title": "T"}})
        );
        assert!(to_document(json!({"text": "no id"})).is_err());
        assert!(to_document(json!([1])).is_err());
    }
}
