//! Metrics read at scrape time from counters kept below the server, so the storage and
//! model crates need no metrics library:
//!
//! | metric | type | labels | source |
//! |--------|------|--------|--------|
//! | `quiver_wal_sync_duration_seconds` | histogram | | every WAL fdatasync |
//! | `quiver_model_batch_items` | histogram | `model`, `role` | texts per model batch |
//! | `quiver_model_tokens_total` | counter | `model`, `role` | input tokens, unpadded |
//! | `quiver_model_padded_tokens_total` | counter | `model`, `role` | tokens computed |
//! | `quiver_collection_frozen_memtables` | gauge | `collection` | full memtables waiting for their seal (0 or 1) |
//! | `quiver_collection_maintenance_running` | gauge (0/1) | `collection`, `task` | a `seal` or `compaction` runs now |
//! | `quiver_collection_seals_total` | counter | `collection`, `outcome` | seals, `ok` or `failed` |
//! | `quiver_collection_seal_seconds_total` | counter | `collection` | time spent sealing |
//! | `quiver_collection_compactions_total` | counter | `collection` | compactions finished |
//! | `quiver_collection_compaction_seconds_total` | counter | `collection` | time spent in finished compactions |
//! | `quiver_collection_write_stalls_total` | counter | `collection` | writes that waited for a seal |
//! | `quiver_collection_write_stall_seconds_total` | counter | `collection` | time writes waited for seals |
//!
//! `role` is `embed` or `rerank`; a model appears once it has loaded. The collection
//! counters start at zero each time the collection opens.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use quiver_embed::{ModelRegistry, ServiceStats};
use quiver_engine::{Database, MaintenanceStats};
use quiver_storage::wal::SYNC_SECONDS;

/// WAL fdatasync latency, across every collection.
#[derive(Debug)]
pub struct WalSyncs;

impl Collector for WalSyncs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = SYNC_SECONDS.snapshot();
        encoder
            .encode_descriptor(
                "quiver_wal_sync_duration_seconds",
                "Time one fdatasync of a WAL file took",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
    }
}

/// A counter read from a model's stats: name, help, value.
type CounterSpec = (&'static str, &'static str, fn(&ServiceStats) -> u64);

/// Batches and tokens of every loaded model.
#[derive(Debug)]
pub struct ModelBatches(pub Arc<ModelRegistry>);

impl Collector for ModelBatches {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let labels = |role: &'static str, name: &str| {
            [("model", name.to_string()), ("role", role.to_string())]
        };
        let mut family = encoder.encode_descriptor(
            "quiver_model_batch_items",
            "Texts (or query-document pairs) per model batch",
            None,
            MetricType::Histogram,
        )?;
        for (role, name, s) in &stats {
            let b = &s.batch_items;
            family
                .encode_family(&labels(role, name))?
                .encode_histogram::<NoLabelSet>(b.sum, b.count, &b.buckets, None)?;
        }
        let counters: [CounterSpec; 2] = [
            (
                "quiver_model_tokens",
                "Input tokens run through the model",
                |s| s.tokens,
            ),
            (
                "quiver_model_padded_tokens",
                "Tokens the model computed, padding included",
                |s| s.padded_tokens,
            ),
        ];
        for (metric, help, value) in counters {
            let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Counter)?;
            for (role, name, s) in &stats {
                family
                    .encode_family(&labels(role, name))?
                    .encode_counter::<NoLabelSet, _, u64>(&value(s), None)?;
            }
        }
        Ok(())
    }
}

/// A per-collection value read from its maintenance stats: name, help, type, value.
type MaintenanceSpec = (
    &'static str,
    &'static str,
    MetricType,
    fn(&MaintenanceStats) -> f64,
);

/// Background seals and compactions of every open collection.
#[derive(Debug)]
pub struct Maintenance(pub Arc<Database>);

impl Collector for Maintenance {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(String, MaintenanceStats)> = self
            .0
            .list_collections()
            .into_iter()
            .filter_map(|name| {
                let c = self.0.collection(&name).ok()?;
                Some((name, c.stats().maintenance))
            })
            .collect();
        let specs: [MaintenanceSpec; 6] = [
            (
                "quiver_collection_frozen_memtables",
                "Full memtables waiting for their seal",
                MetricType::Gauge,
                |m| m.queued_memtables as f64,
            ),
            (
                "quiver_collection_seal_seconds",
                "Time spent sealing memtables into segments",
                MetricType::Counter,
                |m| m.seal_time.as_secs_f64(),
            ),
            (
                "quiver_collection_compactions",
                "Compactions finished",
                MetricType::Counter,
                |m| m.compactions as f64,
            ),
            (
                "quiver_collection_compaction_seconds",
                "Time spent in finished compactions",
                MetricType::Counter,
                |m| m.compaction_time.as_secs_f64(),
            ),
            (
                "quiver_collection_write_stalls",
                "Writes that waited for a seal to make room",
                MetricType::Counter,
                |m| m.write_stalls as f64,
            ),
            (
                "quiver_collection_write_stall_seconds",
                "Time writes waited for a seal to make room",
                MetricType::Counter,
                |m| m.write_stall_time.as_secs_f64(),
            ),
        ];
        for (metric, help, kind, value) in specs {
            let mut family = encoder.encode_descriptor(metric, help, None, kind)?;
            for (name, m) in &stats {
                let labels = [("collection", name.clone())];
                let mut enc = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => {
                        enc.encode_counter::<NoLabelSet, _, u64>(&value(m), None)?
                    }
                    _ => enc.encode_gauge(&value(m))?,
                }
            }
        }
        type Split = fn(&MaintenanceStats) -> [(&'static str, u64); 2];
        let split: [(&str, &str, MetricType, &str, Split); 2] = [
            (
                "quiver_collection_seals",
                "Seals of memtables into segments, by outcome",
                MetricType::Counter,
                "outcome",
                |m| [("ok", m.seals), ("failed", m.failed_seals)],
            ),
            (
                "quiver_collection_maintenance_running",
                "1 while a seal or compaction of the collection runs",
                MetricType::Gauge,
                "task",
                |m| {
                    [
                        ("seal", m.sealing.into()),
                        ("compaction", m.compacting.into()),
                    ]
                },
            ),
        ];
        for (metric, help, kind, label, values) in split {
            let mut family = encoder.encode_descriptor(metric, help, None, kind)?;
            for (name, m) in &stats {
                for (value_label, v) in values(m) {
                    let labels = [("collection", name.clone()), (label, value_label.into())];
                    let mut enc = family.encode_family(&labels)?;
                    match kind {
                        MetricType::Counter => {
                            enc.encode_counter::<NoLabelSet, _, u64>(&v, None)?
                        }
                        _ => enc.encode_gauge(&i64::try_from(v).unwrap_or(i64::MAX))?,
                    }
                }
            }
        }
        Ok(())
    }
}
