//! `quiver snapshot create|list|download|delete|restore`: snapshots of one collection
//! (`--collection NAME`) or, without it, of the whole database. Downloads and uploads
//! stream to and from a file with a progress bar on stderr.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use quiver_client::{Client, ClientError};

use super::{print_json, Conn};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    /// The collection; without it, commands act on whole-database snapshots.
    #[arg(long, short, global = true)]
    collection: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Take a snapshot now (writes continue meanwhile).
    Create {
        /// Snapshot name; default snapshot-<unix ms>.
        #[arg(long)]
        name: Option<String>,
        /// Compress the archive with zstd.
        #[arg(long)]
        zstd: bool,
    },
    /// List stored snapshots.
    List,
    /// Save a stored snapshot to a file.
    Download {
        snapshot: String,
        /// Output file (default: <snapshot>.snapshot).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a stored snapshot.
    Delete { snapshot: String },
    /// Restore from a stored snapshot, or from an archive file with --file.
    Restore {
        /// Stored snapshot name (omit with --file).
        snapshot: Option<String>,
        /// Upload this archive file instead.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Collection to restore into (default: the snapshot's own).
        #[arg(long)]
        target: Option<String>,
    },
}

fn base(collection: Option<&str>) -> String {
    match collection {
        Some(c) => format!("/collections/{c}/snapshots"),
        None => "/snapshots".to_string(),
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

pub fn run(args: Args) -> Result<()> {
    let client = args.conn.client();
    let base = base(args.collection.as_deref());
    match args.action {
        Action::Create { name, zstd } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if zstd {
                body.insert("compress".into(), json!("zstd"));
            }
            print_json(&client.call("POST", &base, Some(&Value::Object(body)))?)
        }
        Action::List => print_json(&client.call("GET", &base, None)?),
        Action::Delete { snapshot } => {
            print_json(&client.call("DELETE", &format!("{base}/{snapshot}"), None)?)
        }
        Action::Download { snapshot, output } => {
            let path = format!("{base}/{snapshot}");
            let out = output.unwrap_or_else(|| PathBuf::from(format!("{snapshot}.snapshot")));
            let resp = client
                .stream("GET", &path)
                .call()
                .map_err(|e| ClientError::from_ureq("GET", &path, e))?;
            let len = resp
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let pb = bar(len, "download");
            let mut file =
                File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut reader = pb.wrap_read(resp.into_reader());
            let n = std::io::copy(&mut reader, &mut file)?;
            file.flush()?;
            file.sync_all()?;
            pb.finish_and_clear();
            if len != 0 && n != len {
                return Err(anyhow!("download ended after {n} of {len} bytes"));
            }
            print_json(&json!({"snapshot": snapshot, "file": out, "bytes": n}))
        }
        Action::Restore {
            snapshot,
            file,
            target,
        } => {
            let path = format!("{base}/restore");
            match (snapshot, file) {
                (Some(s), None) => {
                    let mut body = Map::new();
                    body.insert("snapshot".into(), json!(s));
                    if let Some(t) = target {
                        body.insert("target".into(), json!(t));
                    }
                    print_json(&client.call("POST", &path, Some(&Value::Object(body)))?)
                }
                (None, Some(f)) => upload(&client, &path, &f, target.as_deref()),
                _ => Err(anyhow!("give either a stored snapshot name or --file")),
            }
        }
    }
}

fn upload(client: &Client, path: &str, file: &PathBuf, target: Option<&str>) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata()?.len();
    let pb = bar(len, "upload");
    let mut req = client
        .stream("POST", path)
        .set("Content-Type", "application/octet-stream")
        .set("Content-Length", &len.to_string());
    if let Some(t) = target {
        req = req.query("target", t);
    }
    let reader: Box<dyn Read + Send> = Box::new(pb.wrap_read(f));
    let resp = req
        .send(reader)
        .map_err(|e| ClientError::from_ureq("POST", path, e));
    pb.finish_and_clear();
    let v: Value = resp?.into_json()?;
    print_json(&v)
}
