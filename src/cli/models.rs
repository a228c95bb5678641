//! `quiver models pull|list`: manage the model files under `<data>/models/`.
//!
//! These commands work on the data directory directly (no server needed), so a model can
//! be placed before the server that uses it starts.

use std::path::PathBuf;

use anyhow::Result;
use quiver_embed::resolve::{self, PullOptions};
use quiver_server::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// Data directory (default: storage.data_dir from ./server.toml, else `data`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Download a model (e.g. Qwen/Qwen3-Embedding-0.6B) into <data>/models/.
    Pull {
        /// Model name, `org/name`.
        name: String,
    },
    /// List installed models (data directory and Hugging Face cache).
    List,
}

pub fn run(args: Args) -> Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => Config::load(None, std::env::vars())?.storage.data_dir,
    };
    match args.command {
        Command::Pull { name } => {
            let options = PullOptions {
                endpoint: None,
                progress: true,
            };
            let location = resolve::pull_with(&name, &data_dir, &options)?;
            println!("{} ready at {}", location.name, location.path.display());
        }
        Command::List => {
            let models = resolve::list(&data_dir)?;
            if models.is_empty() {
                println!(
                    "no models installed under {}",
                    data_dir.join("models").display()
                );
            }
            for m in models {
                let arch = m
                    .architecture
                    .map(|a| {
                        let hidden = a
                            .hidden_size
                            .map(|h| format!(" hidden {h}"))
                            .unwrap_or_default();
                        let layers = a
                            .num_layers
                            .map(|l| format!(" layers {l}"))
                            .unwrap_or_default();
                        format!("{}{hidden}{layers}", a.model_type)
                    })
                    .unwrap_or_else(|| "unknown architecture".into());
                println!(
                    "{}\t{}\t{:.1} MiB\t{}",
                    m.location.name,
                    arch,
                    m.size_bytes as f64 / (1 << 20) as f64,
                    m.location.path.display()
                );
            }
        }
    }
    Ok(())
}
