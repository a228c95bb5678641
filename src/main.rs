//! The `quiver` binary: server and command-line client in one.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "quiver", version, about = "A vector database with built-in embedding")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Version) | None => println!("quiver {}", env!("CARGO_PKG_VERSION")),
    }
}
