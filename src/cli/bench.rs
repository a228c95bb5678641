//! `quiver bench ir|ann|embed|ingest|db|filter`: the benchmark harness (crate `quiver-bench`).
//!
//! Each subcommand prints a Markdown report (our figure, the peer's, the ratio) on stdout
//! and, with `--out FILE.json`, writes the full JSON report. Peers run through
//! `scripts/peers/run` (or `$QUIVER_PEERS_SCRIPT`), so `--peers` is meant to be used from the
//! repository root.

use std::path::PathBuf;

use anyhow::{bail, Result};
use quiver_bench::ann::{AnnOptions, Source};
use quiver_bench::db::DbOptions;
use quiver_bench::embed::EmbedOptions;
use quiver_bench::filter::FilterOptions;
use quiver_bench::ingest::{IngestOptions, Sizes, Target};
use quiver_bench::ir::IrOptions;
use quiver_bench::peers::Peers;
use quiver_bench::Report;

const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
const DEFAULT_DATASET: &str = "tests/data/cranfield";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    bench: Bench,
}

/// Options every bench shares.
#[derive(Debug, Clone, clap::Args)]
struct Common {
    /// Data directory whose models/ holds the models.
    #[arg(long, env = "QUIVER_STORAGE_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Also run the peers (scripts/peers/run) and print ours / peer / ratio.
    #[arg(long)]
    peers: bool,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// Retrieval quality (nDCG@10, Recall@100, MRR@10) and latency on a BEIR dataset.
    Ir {
        #[command(flatten)]
        common: Common,
        /// Directory with corpus.jsonl, queries.jsonl and qrels/test.tsv.
        #[arg(long, default_value = DEFAULT_DATASET)]
        dataset: PathBuf,
        /// Embedding model.
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// Reranker model (adds the hybrid_rerank mode).
        #[arg(long)]
        reranker: Option<String>,
        /// CI size: every document, the first 50 queries, no peers.
        #[arg(long)]
        quick: bool,
        /// Dense weight of hybrid_weighted.
        #[arg(long, default_value_t = 0.5)]
        alpha: f32,
        /// Documents embedded per batch.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Model weight precision: none (float32) or int8.
        #[arg(long, default_value = "none", value_parser = ["none", "int8"])]
        quantize: String,
        /// Float32 products: high (on AMX where the CPU has it) or highest.
        #[arg(long, default_value = "high", value_parser = ["high", "highest"])]
        matmul_precision: String,
        /// Join every K documents into one long one (a long document is as relevant
        /// as its best part): measures what truncation at the model's input limit loses.
        #[arg(long, value_name = "K", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        merge_docs: u16,
        /// Embed every text whole (truncated at the model's input limit) instead of
        /// cutting long ones into chunks as a collection does by default.
        #[arg(long)]
        no_chunking: bool,
    },
    /// HNSW recall@10 and QPS over an ef sweep, against hnswlib and faiss.
    Ann {
        #[command(flatten)]
        common: Common,
        /// Base vectors (.fvecs or .npy); without it, vectors are generated or embedded.
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Query vectors (default: the last --queries rows of --vectors).
        #[arg(long)]
        query_vectors: Option<PathBuf>,
        /// Embed this BEIR dataset's documents and queries with --model.
        #[arg(long, conflicts_with = "vectors")]
        dataset: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// Generated: number of base vectors.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Generated: dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Generated: clusters.
        #[arg(long, default_value_t = 500)]
        clusters: usize,
        /// Queries (generated, or held out of --vectors).
        #[arg(long, default_value_t = 1_000)]
        queries: usize,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// ef values to sweep, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,16,32,64,128,256,512")]
        efs: Vec<usize>,
        /// Threads of the multi-threaded runs (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// SVG recall-vs-QPS plot (default: next to --out, else bench-ann.svg).
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Embedder tokens/s and reranker pairs/s over batch sizes and lengths.
    Embed {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        #[arg(long)]
        reranker: Option<String>,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        batches: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "32,128,256")]
        lengths: Vec<usize>,
        /// Minimum measuring time per cell.
        #[arg(long, default_value_t = 2.0)]
        min_seconds: f64,
        /// Rounds over the grid, alternating with the peer; each side's fastest counts.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Our model weight precision: none (float32) or int8; the peer runs float32.
        #[arg(long, default_value = "none", value_parser = ["none", "int8"])]
        quantize: String,
        /// Our float32 products: high (on AMX where the CPU has it) or highest.
        #[arg(long, default_value = "high", value_parser = ["high", "highest"])]
        matmul_precision: String,
    },
    /// Documents/s and batch latency over HTTP, per WAL sync policy, with supplied vectors
    /// and with embedding; hnswlib's build rate, Chroma and LanceDB as peers.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Measure this running server instead of spawning one per policy.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "QUIVER_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Base vectors (.fvecs or .npy); without it, clustered vectors are generated.
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Vectors posted: generated, or the first N of --vectors; 0 skips [default:
        /// 300000, --quick 20000].
        #[arg(long, alias = "docs")]
        n: Option<usize>,
        /// Generated: dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Generated: clusters.
        #[arg(long, default_value_t = 500)]
        clusters: usize,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// Documents per upsert request with supplied vectors.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Concurrent upsert clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// WAL sync policies to spawn the server with [default: always,interval, --quick
        /// always].
        #[arg(long, value_delimiter = ',')]
        policies: Option<Vec<String>>,
        /// Texts for server-side embedding come from this BEIR corpus.
        #[arg(long, default_value = DEFAULT_DATASET)]
        dataset: PathBuf,
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// Documents posted for server-side embedding; 0 skips [default: 512, --quick 64].
        #[arg(long)]
        embed_docs: Option<usize>,
        /// Documents per request for server-side embedding.
        #[arg(long, default_value_t = 256)]
        embed_batch: usize,
        /// The spawned server's storage.seal_rows [default: the server's, --quick 5000].
        #[arg(long)]
        seal_rows: Option<usize>,
        /// A couple of minutes: 20,000 vectors, WAL always, 64 embedded documents, seals
        /// every 5,000 rows (flags given explicitly still apply).
        #[arg(long)]
        quick: bool,
    },
    /// Database level over HTTP: a real server's ingest, QPS, latency and recall@10 over an
    /// ef sweep, disk and RSS; Chroma and LanceDB as peers.
    Db {
        #[command(flatten)]
        common: Common,
        /// Base vectors (.fvecs or .npy); without it, clustered vectors are generated.
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Query vectors (default: the last --queries rows of --vectors).
        #[arg(long)]
        query_vectors: Option<PathBuf>,
        /// Generated: number of base vectors.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Generated: dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Generated: clusters.
        #[arg(long, default_value_t = 500)]
        clusters: usize,
        /// Queries (generated, or held out of --vectors).
        #[arg(long, default_value_t = 1_000)]
        queries: usize,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// Per-query ef values to sweep, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
        efs: Vec<usize>,
        /// Concurrent upsert clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Documents per upsert request.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Concurrent clients of the multi-client query runs.
        #[arg(long, default_value_t = 4)]
        query_clients: usize,
        /// The server's WAL sync policy: always, interval or never.
        #[arg(long, default_value = "always")]
        wal_sync: String,
        /// CI size: 3,000 generated vectors of dim 64 (unless --vectors), 100 queries,
        /// ef 16 and 128, no peers.
        #[arg(long)]
        quick: bool,
    },
    /// Dense queries with metadata filters at 0.1%, 1%, 10% and 50% selectivity: latency
    /// and recall@10 against exact filtered search, against Chroma and LanceDB.
    Filter {
        #[command(flatten)]
        common: Common,
        /// Generated: number of documents.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Generated: dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Generated: clusters.
        #[arg(long, default_value_t = 500)]
        clusters: usize,
        /// Queries per filter.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        /// Concurrent upsert clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Documents per upsert request.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// The server's WAL sync policy: always, interval or never.
        #[arg(long, default_value = "always")]
        wal_sync: String,
        /// CI size: 20,000 documents of dim 64, 50 queries, no peers.
        #[arg(long)]
        quick: bool,
    },
}

fn peers(on: bool) -> Option<Peers> {
    on.then(Peers::default)
}

fn finish(report: Report, out: Option<&std::path::Path>) -> Result<()> {
    println!("{}", report.markdown);
    if let Some(path) = out {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The model precision `--quantize` and `--matmul-precision` (already checked by clap)
/// name.
fn precision(quantize: &str, matmul: &str) -> quiver_embed::Precision {
    match (quantize, matmul) {
        ("int8", _) => quiver_embed::Precision::Int8,
        (_, "highest") => quiver_embed::Precision::F32Highest,
        _ => quiver_embed::Precision::F32,
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.bench {
        Bench::Ir {
            common,
            dataset,
            model,
            reranker,
            quick,
            alpha,
            batch,
            quantize,
            matmul_precision,
            merge_docs,
            no_chunking,
        } => {
            let mut o = IrOptions::new(dataset, model);
            o.precision = precision(&quantize, &matmul_precision);
            o.merge_docs = usize::from(merge_docs);
            o.chunking = !no_chunking;
            o.reranker = reranker;
            o.data_dir = common.data_dir.clone();
            o.quick = quick;
            o.peers = peers(common.peers && !quick);
            o.alpha = alpha;
            o.batch = batch;
            finish(quiver_bench::ir::run(&o)?, common.out.as_deref())
        }
        Bench::Ann {
            common,
            vectors,
            query_vectors,
            dataset,
            model,
            n,
            dim,
            clusters,
            queries,
            m,
            ef_construction,
            efs,
            threads,
            svg,
        } => {
            let source = match (vectors, dataset) {
                (Some(base), _) => Source::Files {
                    base,
                    queries: query_vectors,
                    held_out: queries,
                },
                (None, Some(dataset)) => Source::Model {
                    dataset,
                    model,
                    data_dir: common.data_dir.clone(),
                },
                (None, None) => Source::Generated {
                    n,
                    queries,
                    dim,
                    clusters,
                    seed: 7,
                },
            };
            if efs.is_empty() {
                bail!("--efs needs at least one value");
            }
            let mut o = AnnOptions::new(source);
            o.m = m;
            o.ef_construction = ef_construction;
            o.efs = efs;
            if let Some(t) = threads {
                o.threads = t.max(1);
            }
            o.peers = peers(common.peers);
            o.svg = Some(svg.unwrap_or_else(|| match &common.out {
                Some(out) => out.with_extension("svg"),
                None => PathBuf::from("bench-ann.svg"),
            }));
            finish(quiver_bench::ann::run(&o)?, common.out.as_deref())
        }
        Bench::Embed {
            common,
            model,
            reranker,
            batches,
            lengths,
            min_seconds,
            rounds,
            quantize,
            matmul_precision,
        } => {
            let mut o = EmbedOptions::new(model);
            o.rounds = rounds;
            o.precision = precision(&quantize, &matmul_precision);
            o.reranker = reranker;
            o.data_dir = common.data_dir.clone();
            o.batches = batches;
            o.lengths = lengths;
            o.min_seconds = min_seconds;
            o.peers = peers(common.peers);
            finish(quiver_bench::embed::run(&o)?, common.out.as_deref())
        }
        Bench::Ingest {
            common,
            url,
            api_key,
            vectors,
            n,
            dim,
            clusters,
            m,
            ef_construction,
            batch,
            clients,
            policies,
            dataset,
            model,
            embed_docs,
            embed_batch,
            seal_rows,
            quick,
        } => {
            let target = match url {
                Some(u) => Target::Url(u),
                None => Target::Spawn {
                    exe: std::env::current_exe()?,
                    data_dir: common.data_dir.clone(),
                },
            };
            let mut o = IngestOptions::new(target, dataset, model);
            o.sizes = Sizes::resolve(quick, n, policies, embed_docs, seal_rows)?;
            o.vectors = vectors;
            o.dim = dim;
            o.clusters = clusters;
            o.m = m;
            o.ef_construction = ef_construction;
            o.batch = batch.max(1);
            o.clients = clients.max(1);
            o.embed_batch = embed_batch.max(1);
            o.api_key = api_key;
            o.peers = peers(common.peers);
            finish(quiver_bench::ingest::run(&o)?, common.out.as_deref())
        }
        Bench::Db {
            common,
            vectors,
            query_vectors,
            n,
            dim,
            clusters,
            queries,
            m,
            ef_construction,
            efs,
            clients,
            batch,
            query_clients,
            wal_sync,
            quick,
        } => {
            quiver_bench::server::policy_env(&wal_sync)?;
            let (n, dim, clusters, queries, efs) = if quick {
                (3_000, 64, 30, 100, vec![16, 128])
            } else {
                (n, dim, clusters, queries, efs)
            };
            if efs.is_empty() {
                bail!("--efs needs at least one value");
            }
            let source = match vectors {
                Some(base) => Source::Files {
                    base,
                    queries: query_vectors,
                    held_out: queries,
                },
                None => Source::Generated {
                    n,
                    queries,
                    dim,
                    clusters,
                    seed: 7,
                },
            };
            let mut o = DbOptions::new(source, std::env::current_exe()?);
            o.m = m;
            o.ef_construction = ef_construction;
            o.efs = efs;
            o.clients = clients.max(1);
            o.batch = batch.max(1);
            o.query_clients = query_clients.max(1);
            o.wal_sync = wal_sync;
            o.peers = peers(common.peers && !quick);
            finish(quiver_bench::db::run(&o)?, common.out.as_deref())
        }
        Bench::Filter {
            common,
            n,
            dim,
            clusters,
            queries,
            m,
            ef_construction,
            clients,
            batch,
            wal_sync,
            quick,
        } => {
            quiver_bench::server::policy_env(&wal_sync)?;
            let (n, dim, clusters, queries) = if quick {
                (20_000, 64, 50, 50)
            } else {
                (n, dim, clusters, queries)
            };
            let o = FilterOptions {
                source: Source::Generated {
                    n,
                    queries,
                    dim,
                    clusters,
                    seed: 7,
                },
                exe: std::env::current_exe()?,
                m,
                ef_construction,
                clients: clients.max(1),
                batch: batch.max(1),
                wal_sync,
                peers: peers(common.peers && !quick),
            };
            finish(quiver_bench::filter::run(&o)?, common.out.as_deref())
        }
    }
}
