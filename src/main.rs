//! The `quiver` binary: the server (`quiver serve`) and a command-line client for a
//! running server (`quiver collections|import|query`), plus `quiver models` for the
//! model files in the data directory.

mod cli;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quiver_server::{Config, Server};

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "A vector database with built-in embedding"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// List, create, describe or delete collections on a running server.
    Collections(cli::collections::Args),
    /// Upload a JSONL file of documents (or a BEIR corpus.jsonl) in batches.
    Import(cli::import::Args),
    /// Search a collection.
    Query(cli::query::Args),
    /// Download or list embedding and reranking models in the data directory.
    Models(cli::models::Args),
    /// Create, list, download, delete or restore snapshots on a running server.
    Snapshot(cli::snapshot::Args),
    /// Measure retrieval quality, ANN, embedding and ingest speed against peers.
    Bench(cli::bench::Args),
    /// Print the version and exit.
    Version,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (default: ./server.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, host:port (overrides server.listen; port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Log filter when RUST_LOG is unset: the HNSW library reports every graph it builds
/// at info level, which would drown Quiver's own lines.
const DEFAULT_LOG: &str = "info,hnsw_rs=warn";

fn main() -> ExitCode {
    // Logs go to stderr: stdout carries the bound address and command output.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Collections(args)) => cli::collections::run(args),
        Some(Command::Import(args)) => cli::import::run(args),
        Some(Command::Query(args)) => cli::query::run(args),
        Some(Command::Models(args)) => cli::models::run(args),
        Some(Command::Snapshot(args)) => cli::snapshot::run(args),
        Some(Command::Bench(args)) => cli::bench::run(args),
        Some(Command::Version) | None => {
            println!("quiver {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.storage.data_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server.local_addr()?;
        tracing::info!(%addr, data_dir = %config.storage.data_dir.display(), "serving");
        // One line on stdout, flushed, so scripts and tests can find the port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
        drop(out);
        server.run(quiver_server::shutdown_signal()).await?;
        Ok(())
    })
}
