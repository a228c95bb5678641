//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! | metric | type | labels |
//! |--------|------|--------|
//! | `quiver_http_requests_total` | counter | `method`, `route`, `status` |
//! | `quiver_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `quiver_collection_documents` | gauge | `collection` |
//! | `quiver_collection_segments` | gauge | `collection` |
//! | `quiver_collection_memtable_entries` | gauge | `collection` |
//! | `quiver_collection_read_only` | gauge (0/1) | `collection` |
//!
//! `route` is the matched route template (`/collections/{name}`), never the raw path,
//! so label cardinality stays bounded; unmatched paths share `route="unmatched"`.
//! Collection gauges are refreshed from the engine at scrape time; WAL sync latency,
//! model batch counters and background maintenance come from [`crate::collectors`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use quiver_embed::ModelRegistry;
use quiver_engine::Database;

use crate::app::AppState;
use crate::collectors;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabels {
    collection: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~6.5 s in powers of two.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    /// Filled once at construction; the families inside are shared handles.
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    documents: Family<CollectionLabels, Gauge>,
    segments: Family<CollectionLabels, Gauge>,
    memtable: Family<CollectionLabels, Gauge>,
    read_only: Family<CollectionLabels, Gauge>,
}

impl Metrics {
    /// Every metric, the model counters read from `models` and the maintenance ones
    /// from `db`'s collections.
    pub fn new(models: Arc<ModelRegistry>, db: Arc<Database>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collectors::WalSyncs));
        registry.register_collector(Box::new(collectors::ModelBatches(models)));
        registry.register_collector(Box::new(collectors::Maintenance(db)));
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let documents = Family::<CollectionLabels, Gauge>::default();
        let segments = Family::<CollectionLabels, Gauge>::default();
        let memtable = Family::<CollectionLabels, Gauge>::default();
        let read_only = Family::<CollectionLabels, Gauge>::default();
        registry.register(
            "quiver_http_requests",
            "HTTP requests answered",
            requests.clone(),
        );
        registry.register(
            "quiver_http_request_duration_seconds",
            "Time from request to response head",
            latency.clone(),
        );
        registry.register(
            "quiver_collection_documents",
            "Visible documents",
            documents.clone(),
        );
        registry.register(
            "quiver_collection_segments",
            "Live immutable segments",
            segments.clone(),
        );
        registry.register(
            "quiver_collection_memtable_entries",
            "Documents and deletes in the mutable segment",
            memtable.clone(),
        );
        registry.register(
            "quiver_collection_read_only",
            "1 when a failed WAL sync turned the collection read-only",
            read_only.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            documents,
            segments,
            memtable,
            read_only,
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// Refreshes the collection gauges from `db` (blocking: takes engine locks).
    pub fn refresh(&self, db: &Database) {
        for family in [
            &self.documents,
            &self.segments,
            &self.memtable,
            &self.read_only,
        ] {
            family.clear();
        }
        for name in db.list_collections() {
            let Ok(c) = db.collection(&name) else {
                continue;
            };
            let labels = CollectionLabels { collection: name };
            let stats = c.stats();
            let set = |f: &Family<CollectionLabels, Gauge>, v: usize| {
                f.get_or_create(&labels)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(&self.documents, c.count());
            set(&self.segments, stats.segments);
            set(&self.memtable, stats.memtable_entries);
            set(&self.read_only, usize::from(c.is_read_only()));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: counts and times every request by matched route.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    let metrics: &Arc<Metrics> = &state.metrics;
    metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
