//! Metrics read at scrape time from counters kept below the server, so the storage and
//! model crates need no metrics library:
//!
//! | metric | type | labels | source |
//! |--------|------|--------|--------|
//! | `quiver_wal_sync_duration_seconds` | histogram | | every WAL fdatasync |
//! | `quiver_model_batch_items` | histogram | `model`, `role` | texts per model batch |
//! | `quiver_model_tokens_total` | counter | `model`, `role` | input tokens, unpadded |
//! | `quiver_model_padded_tokens_total` | counter | `model`, `role` | tokens computed |
//!
//! `role` is `embed` or `rerank`; a model appears once it has loaded.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use quiver_embed::{ModelRegistry, ServiceStats};
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
