//! `quiver collections list|create|get|delete`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{print_json, Conn};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List collections.
    List,
    /// Create a collection.
    Create(Box<CreateArgs>),
    /// Describe a collection.
    Get { name: String },
    /// Delete a collection and all its documents.
    Delete { name: String },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    name: String,
    /// Vector length (required without --embedding-model).
    #[arg(long)]
    dim: Option<usize>,
    /// cosine, dot or l2.
    #[arg(long, default_value = "cosine")]
    distance: String,
    #[arg(long)]
    embedding_model: Option<String>,
    /// Matryoshka prefix length to index.
    #[arg(long)]
    index_dim: Option<usize>,
    /// Query instruction for the embedding model.
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    reranker_model: Option<String>,
    /// en, simple or cjk.
    #[arg(long)]
    analyzer: Option<String>,
    /// HNSW links per node.
    #[arg(long)]
    m: Option<usize>,
    #[arg(long)]
    ef_construction: Option<usize>,
    #[arg(long)]
    ef_search: Option<usize>,
    /// Longest chunk long texts are cut into, in the model's tokens (default: the
    /// model's input, at most 512).
    #[arg(long, conflicts_with = "no_chunking")]
    chunk_tokens: Option<usize>,
    /// Tokens each chunk repeats from the one before (default: an eighth).
    #[arg(long, conflicts_with = "no_chunking")]
    chunk_overlap: Option<usize>,
    /// Embed every text whole, truncated at the model's input, instead of in chunks.
    #[arg(long)]
    no_chunking: bool,
}

/// An object of the `fields` that were given, or null when none was.
fn given(fields: &[(&str, Option<usize>)]) -> Value {
    let set: Map<String, Value> = fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), json!(v))))
        .collect();
    if set.is_empty() {
        Value::Null
    } else {
        Value::Object(set)
    }
}

/// The request body; options left out are left to the server's defaults.
fn create_body(a: &CreateArgs) -> Value {
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            body.insert(k.to_string(), v);
        }
    };
    put("dim", json!(a.dim));
    put("distance", json!(a.distance));
    put("embedding_model", json!(a.embedding_model));
    put("index_dim", json!(a.index_dim));
    put("task", json!(a.task));
    put("reranker_model", json!(a.reranker_model));
    put("analyzer", json!(a.analyzer));
    put(
        "hnsw",
        given(&[
            ("m", a.m),
            ("ef_construction", a.ef_construction),
            ("ef_search", a.ef_search),
        ]),
    );
    if a.no_chunking {
        put("chunking", json!(false));
    } else {
        put(
            "chunking",
            given(&[
                ("max_tokens", a.chunk_tokens),
                ("overlap_tokens", a.chunk_overlap),
            ]),
        );
    }
    Value::Object(body)
}

pub fn run(args: Args) -> Result<()> {
    let client = args.conn.client();
    let answer = match &args.action {
        Action::List => client.call("GET", "/collections", None)?,
        Action::Create(a) => client.call(
            "PUT",
            &format!("/collections/{}", a.name),
            Some(&create_body(a)),
        )?,
        Action::Get { name } => client.call("GET", &format!("/collections/{name}"), None)?,
        Action::Delete { name } => client.call("DELETE", &format!("/collections/{name}"), None)?,
    };
    print_json(&answer)
}
