//! HNSW recall through the engine: a few thousand clustered vectors spread over several
//! sealed segments and the memtable, some deleted, queried with and without a metadata
//! filter; recall@10 against `search_exact_filtered` must reach 0.95. Also with
//! background compactions (merged graphs grown from their largest input's), and the
//! Matryoshka path (graphs over a prefix, exact rescoring at full length).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use quiver_core::{CollectionConfig, Distance, Document, Filter, Metadata, SyncPolicy};
use quiver_engine::{Collection, CollectionOptions, Database, DbOptions, Query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DIM: usize = 32;
const DOCS: usize = 3_000;
const CLUSTERS: usize = 24;
const QUERIES: usize = 60;
const K: usize = 10;

/// Seals every 700 rows; with `compaction`, segments under 1,600 live rows are merged in
/// the background (growing the largest input's graph).
fn opts(compaction: bool) -> DbOptions {
    DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            seal_rows: 700,
            background_compaction: compaction,
            compact_small_rows: 1_600,
            // Merge while writes go on, so the tests meet compactions mid-write.
            compact_quiet: Duration::ZERO,
            ..CollectionOptions::default()
        },
    }
}

/// Gaussian-ish noise from the sum of uniforms (no extra dependency).
fn noise(rng: &mut StdRng) -> f32 {
    (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.5
}

/// Component `i` of a point: cluster centre plus noise, with variance decaying along
/// the vector like Matryoshka embeddings (the leading components carry the most).
fn point(rng: &mut StdRng, centre: &[f32], spread: f32) -> Vec<f32> {
    centre
        .iter()
        .enumerate()
        .map(|(i, c)| (c + spread * noise(rng)) / (1.0 + i as f32 / 8.0))
        .collect()
}

fn load(c: &Collection, rng: &mut StdRng) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    for chunk in (0..DOCS).collect::<Vec<_>>().chunks(250) {
        let docs: Vec<Document> = chunk
            .iter()
            .map(|&i| {
                let mut metadata = Metadata::new();
                metadata.insert("bucket".into(), json!(i % 3));
                Document {
                    chunks: Vec::new(),
                    id: format!("d{i}"),
                    text: String::new(),
                    metadata,
                    vector: point(rng, &centres[i % CLUSTERS], 0.35),
                }
            })
            .collect();
        c.upsert(docs).unwrap();
    }
    let gone: Vec<String> = (0..DOCS).step_by(7).map(|i| format!("d{i}")).collect();
    c.delete(&gone).unwrap();
    centres
}

fn recall(c: &Collection, queries: &[Vec<f32>], filter: Option<&Filter>) -> f64 {
    let mut found = 0usize;
    let mut wanted = 0usize;
    for q in queries {
        let truth: HashSet<String> = c
            .search_exact_filtered(q, K, filter)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let mut query = Query::dense(q.clone(), K);
        query.filter = filter.cloned();
        let got = c.query(&query).unwrap().hits;
        assert!(got.len() <= K);
        if let Some(f) = filter {
            assert!(got.iter().all(|h| f.matches(&h.metadata)));
        }
        found += got.iter().filter(|h| truth.contains(&h.id)).count();
        wanted += truth.len();
    }
    found as f64 / wanted as f64
}

fn run(config: CollectionConfig, label: &str, min: f64, compaction: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts(compaction)).unwrap();
    let c = db.create_collection("r", config).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let centres = load(&c, &mut rng);
    assert!(c.wait_idle(std::time::Duration::from_secs(120)));
    let stats = c.stats();
    if compaction {
        assert!(stats.maintenance.compactions >= 1, "{stats:?}");
        assert!(stats.segments >= 1, "{stats:?}");
    } else {
        assert!(stats.segments >= 3, "{stats:?}");
    }
    assert!(stats.memtable_entries > 0, "{stats:?}");
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|i| point(&mut rng, &centres[i % CLUSTERS], 0.5))
        .collect();
    let filter = Filter::parse(&json!({"should": [
        {"key": "bucket", "match": 0}, {"key": "bucket", "match": 2}
    ]}))
    .unwrap();
    let plain = recall(&c, &queries, None);
    let filtered = recall(&c, &queries, Some(&filter));
    println!(
        "{label}: recall@{K} over {} segments + memtable: {plain:.3} unfiltered, {filtered:.3} filtered",
        stats.segments
    );
    assert!(plain >= min, "{label}: recall {plain}");
    assert!(filtered >= min, "{label}: filtered recall {filtered}");
}

#[test]
fn hnsw_recall_matches_exact_search() {
    let config = CollectionConfig {
        distance: Distance::L2,
        ..CollectionConfig::new(DIM)
    };
    run(config, "hnsw", 0.95, false);
}

/// Background compactions grow the largest input's graph with the others' rows and
/// leave deleted rows out: the merged graphs search as well as built ones.
#[test]
fn compacted_graphs_keep_recall() {
    let config = CollectionConfig {
        distance: Distance::L2,
        ..CollectionConfig::new(DIM)
    };
    run(config, "compacted", 0.95, true);
}

#[test]
fn matryoshka_prefix_with_rescoring_keeps_recall() {
    let config = CollectionConfig {
        index_dim: Some(DIM / 2),
        rescore: 100,
        ..CollectionConfig::new(DIM)
    };
    run(config, "matryoshka", 0.95, true);
}
