//! Reopen time and resident memory of a collection held in sealed segments.
//!
//! `cargo bench --bench reopen` builds (once) a collection of 500,000 seeded random
//! 64-dim vectors sealed into 10 segments (M 16, ef_construction 16: a cheap graph,
//! since only its layout matters here), then, in a fresh process so the build leaves
//! no heap behind, reopens it and reports:
//!
//! - the reopen wall time (files in the page cache: a warm reopen);
//! - VmRSS, RssAnon and RssFile (from `/proc/self/status`) before the open, right
//!   after it, and after 1,000 dense queries (top 10, the collection's `ef_search`);
//! - the segment files' size, per file name, summed over segments;
//! - "RSS growth at open / segment files" (issue target: at most 10%) and "resident
//!   per vector after queries / (vector bytes + 4 x 2M link bytes)" (target: at most
//!   1.3), where resident per vector is the RSS growth since before the open divided
//!   by the vector count (so the bench binary's own pages do not count);
//! - how long the storage part of the open takes: `Segment::open` of every segment
//!   directory, timed on its own after the measured run.
//!
//! Settings (environment):
//! - `QUIVER_BENCH_DIR`: scratch directory that keeps the built collection between
//!   runs (a sub-directory per size), so reruns only reopen. Without it the data goes
//!   to a temporary directory removed at the end.
//! - `QUIVER_BENCH_QUICK=1`: 20,000 vectors in 10 segments (a minute or two).
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs a tiny smoke size.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use quiver_core::{CollectionConfig, Document, Metadata, SyncPolicy};
use quiver_engine::{CollectionOptions, Database, DbOptions, Query, SEGMENTS_DIR};
use quiver_storage::segment::Segment;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Set in the child process: the collection directory's root to measure.
const MEASURE_ENV: &str = "QUIVER_REOPEN_MEASURE";
/// Written into a data directory once it is completely built.
const READY_FILE: &str = "BENCH_READY";
const COLLECTION: &str = "bench";

/// The data set and the measurement.
#[derive(Debug, Clone, Copy)]
struct Plan {
    vectors: usize,
    segments: usize,
    dim: usize,
    m: usize,
    ef_construction: usize,
    queries: usize,
    batch: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let full = std::env::args().any(|a| a == "--bench");
        let quick = std::env::var("QUIVER_BENCH_QUICK").is_ok_and(|v| v == "1");
        let (vectors, segments, dim, queries) = match (full, quick) {
            (false, _) => (2_000, 4, 16, 50),
            (true, true) => (20_000, 10, 64, 1_000),
            (true, false) => (500_000, 10, 64, 1_000),
        };
        Plan {
            vectors,
            segments,
            dim,
            m: 16,
            ef_construction: 16,
            queries,
            batch: 1_000,
        }
    }

    /// Sub-directory name: every setting that changes the data.
    fn tag(&self) -> String {
        format!(
            "reopen-{}x{}-s{}-m{}-efc{}",
            self.vectors, self.dim, self.segments, self.m, self.ef_construction
        )
    }

    fn config(&self) -> CollectionConfig {
        let mut config = CollectionConfig::new(self.dim);
        config.hnsw.m = self.m;
        config.hnsw.ef_construction = self.ef_construction;
        config
    }
}

/// No syncing, no automatic seals and no compaction: the bench seals explicitly so
/// the segment count is exact, and compaction would merge the segments it measures.
fn options() -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: usize::MAX,
            seal_bytes: usize::MAX,
            background_compaction: false,
            ..CollectionOptions::default()
        },
    }
}

fn random_vector(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Builds the collection in `dir`: `plan.vectors` documents, sealed into
/// `plan.segments` segments of equal size.
fn build(dir: &Path, plan: &Plan) -> Result<(), String> {
    let t = Instant::now();
    let db = Database::open(dir, options()).map_err(|e| e.to_string())?;
    let c = db
        .create_collection(COLLECTION, plan.config())
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(7);
    let per_segment = plan.vectors.div_ceil(plan.segments);
    let mut next = 0;
    while next < plan.vectors {
        let seg_end = (next + per_segment).min(plan.vectors);
        while next < seg_end {
            let end = (next + plan.batch).min(seg_end);
            let docs: Vec<Document> = (next..end)
                .map(|n| Document {
                    chunks: Vec::new(),
                    id: format!("doc-{n:08}"),
                    text: String::new(),
                    metadata: Metadata::new(),
                    vector: random_vector(&mut rng, plan.dim),
                })
                .collect();
            c.upsert(docs).map_err(|e| e.to_string())?;
            next = end;
        }
        c.seal().map_err(|e| e.to_string())?;
        eprintln!(
            "  built {next} / {} ({:.0} s)",
            plan.vectors,
            t.elapsed().as_secs_f64()
        );
    }
    c.sync().map_err(|e| e.to_string())?;
    let segments = c.stats().segments;
    if segments != plan.segments {
        return Err(format!(
            "built {segments} segments, wanted {}",
            plan.segments
        ));
    }
    drop(c);
    drop(db);
    println!(
        "built {} vectors in {} segments: {:.1} s",
        plan.vectors,
        plan.segments,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Resident memory of this process, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
}

impl Rss {
    /// Reads `/proc/self/status`; all zero where it does not exist.
    fn now() -> Rss {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Rss {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Resident bytes of this process's file mappings under `dir`, summed per file name,
/// from `/proc/self/smaps` (empty where it does not exist). Unlike RssFile, this
/// leaves out the bench binary's own code pages.
fn mapped_under(dir: &Path) -> Vec<(String, u64)> {
    let smaps = fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut by_name: Vec<(String, u64)> = Vec::new();
    let mut current: Option<String> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, device, inode, path.
            current = line
                .find(prefix.as_str())
                .map(|at| &line[at..])
                .and_then(|path| Path::new(path).file_name())
                .map(|n| n.to_string_lossy().into_owned());
        } else if first == "Rss:" {
            let kb = words
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0);
            if let Some(name) = &current {
                match by_name.iter_mut().find(|(n, _)| n == name) {
                    Some((_, total)) => *total += kb * 1024,
                    None => by_name.push((name.clone(), kb * 1024)),
                }
            }
        }
    }
    by_name.sort_by_key(|e| std::cmp::Reverse(e.1));
    by_name
}

fn print_mapped(label: &str, mapped: &[(String, u64)]) {
    let total: u64 = mapped.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = mapped
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {:.1}", mib(*n)))
        .collect();
    println!(
        "  {label:<26} {:>8.1} MiB  ({})",
        mib(total),
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    );
}

/// Bytes per file name, largest first.
type SizesByName = Vec<(String, u64)>;

/// Sizes of the segment files summed per file name, and the segment directories.
fn segment_files(segments_dir: &Path) -> Result<(SizesByName, Vec<PathBuf>), String> {
    let mut by_name: Vec<(String, u64)> = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = Vec::new();
    for entry in fs::read_dir(segments_dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            dirs.push(path.clone());
            stack.push(path);
        }
    }
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let meta = entry.metadata().map_err(|e| e.to_string())?;
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += meta.len(),
                None => by_name.push((name, meta.len())),
            }
        }
    }
    by_name.sort_by_key(|e| std::cmp::Reverse(e.1));
    Ok((by_name, dirs))
}

/// The measured run, in a process that has done nothing else yet.
fn measure(root: &Path, plan: &Plan) -> Result<(), String> {
    // Query vectors are made before the first reading so they are part of the baseline.
    let mut rng = StdRng::seed_from_u64(11);
    let queries: Vec<Vec<f32>> = (0..plan.queries)
        .map(|_| random_vector(&mut rng, plan.dim))
        .collect();

    let before = Rss::now();
    let t = Instant::now();
    let db = Database::open(root, options()).map_err(|e| e.to_string())?;
    let c = db.collection(COLLECTION).map_err(|e| e.to_string())?;
    let open_secs = t.elapsed().as_secs_f64();
    let opened = Rss::now();
    let root_dir = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mapped_open = mapped_under(&root_dir);

    let stats = c.stats();
    if c.count() != plan.vectors || stats.segments != plan.segments {
        return Err(format!(
            "reopened {} vectors in {} segments, built {} in {}",
            c.count(),
            stats.segments,
            plan.vectors,
            plan.segments
        ));
    }
    let t = Instant::now();
    let mut hits = 0;
    for q in &queries {
        let res = c
            .query(&Query::dense(q.clone(), 10))
            .map_err(|e| e.to_string())?;
        hits += res.hits.len();
    }
    let query_secs = t.elapsed().as_secs_f64();
    if hits != 10 * plan.queries {
        return Err(format!("{hits} hits from {} queries", plan.queries));
    }
    let queried = Rss::now();
    let mapped_queried = mapped_under(&root_dir);

    let segments_dir = c.dir().join(SEGMENTS_DIR);
    let (files, dirs) = segment_files(&segments_dir)?;
    let files_total: u64 = files.iter().map(|(_, n)| n).sum();
    let hnsw = &c.config().hnsw;

    println!(
        "reopen: {} vectors x {} dims (cosine) in {} sealed segments, M {}, ef_construction {}, ef_search {}",
        plan.vectors, plan.dim, stats.segments, hnsw.m, hnsw.ef_construction, hnsw.ef_search
    );
    println!(
        "  rows mapped {}, WAL records replayed {}",
        stats.mapped_rows, stats.replayed_records
    );
    println!(
        "segment files: {:.1} MiB in all ({:.0} B per vector)",
        mib(files_total),
        files_total as f64 / plan.vectors as f64
    );
    for (name, bytes) in &files {
        println!(
            "  {name:<24} {:>10.1} MiB {:>8.1} B/vector",
            mib(*bytes),
            *bytes as f64 / plan.vectors as f64
        );
    }
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "RSS (MiB)", "VmRSS", "RssAnon", "RssFile"
    );
    let after = format!("after {} queries", plan.queries);
    for (label, r) in [
        ("before open", before),
        ("after open", opened),
        (after.as_str(), queried),
    ] {
        println!(
            "{label:<28} {:>12.1} {:>12.1} {:>12.1}",
            mib(r.total),
            mib(r.anon),
            mib(r.file)
        );
    }
    println!("resident pages of the collection's own file mappings (from /proc/self/smaps):");
    print_mapped("after open", &mapped_open);
    print_mapped(&after, &mapped_queried);
    println!();
    println!("reopen wall time: {:.1} ms", open_secs * 1e3);
    println!(
        "{} dense queries (top 10): {:.1} ms, {:.0} queries/s",
        plan.queries,
        query_secs * 1e3,
        plan.queries as f64 / query_secs
    );

    let growth_open = opened.total.saturating_sub(before.total);
    let growth_queries = queried.total.saturating_sub(before.total);
    let per_vector = growth_queries as f64 / plan.vectors as f64;
    let budget = (plan.dim * 4 + 4 * 2 * hnsw.m) as f64;
    println!(
        "RSS growth at open / segment files: {:.1} MiB / {:.1} MiB = {:.1}% (target <= 10%)",
        mib(growth_open),
        mib(files_total),
        100.0 * growth_open as f64 / files_total.max(1) as f64
    );
    println!(
        "resident per vector after queries: {per_vector:.0} B (RSS growth since before open / vectors; whole VmRSS: {:.0} B)",
        queried.total as f64 / plan.vectors as f64
    );
    println!(
        "resident per vector / (vector bytes {} + 4 x 2M link bytes {}) = {:.2} (target <= 1.3)",
        plan.dim * 4,
        8 * hnsw.m,
        per_vector / budget
    );

    drop(c);
    drop(db);
    storage_open_time(&dirs)
}

/// Times `Segment::open` alone (checksums and structure checks of the storage files,
/// no graph), to show its share of the reopen time.
fn storage_open_time(dirs: &[PathBuf]) -> Result<(), String> {
    let t = Instant::now();
    let mut rows = 0;
    for dir in dirs {
        rows += Segment::open(dir).map_err(|e| e.to_string())?.len();
    }
    println!(
        "of which storage (Segment::open of {} segments, {rows} rows, measured apart): {:.1} ms",
        dirs.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn run(plan: &Plan) -> Result<(), String> {
    let scratch = std::env::var_os("QUIVER_BENCH_DIR").map(PathBuf::from);
    let temp = match scratch {
        Some(_) => None,
        None => Some(tempfile::tempdir().map_err(|e| e.to_string())?),
    };
    let base = match (&scratch, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => return Err("no scratch directory".into()),
    };
    let root = base.join(plan.tag());
    if root.join(READY_FILE).exists() {
        println!("reusing the collection in {}", root.display());
    } else {
        if root.exists() {
            fs::remove_dir_all(&root).map_err(|e| e.to_string())?;
        }
        fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        build(&root, plan)?;
        fs::write(root.join(READY_FILE), plan.tag()).map_err(|e| e.to_string())?;
    }
    // Measure in a fresh process: the build's freed heap would otherwise count.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .args(std::env::args().skip(1))
        .env(MEASURE_ENV, &root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("measuring process failed: {status}"));
    }
    Ok(())
}

fn main() {
    let plan = Plan::from_env();
    let res = match std::env::var_os(MEASURE_ENV) {
        Some(root) => measure(Path::new(&root), &plan),
        None => run(&plan),
    };
    if let Err(e) = res {
        eprintln!("reopen bench failed: {e}");
        std::process::exit(1);
    }
}
