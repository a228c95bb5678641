//! The application: shared state, the router and its middleware stack, and the bridge
//! from async handlers to the blocking engine.
//!
//! Layers, outermost first: metrics (times everything, 401s included) -> auth (before
//! any other work) -> limits guard (declared body size, load shedding) -> handler
//! (which reads the body through [`crate::limits::JsonBody`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::Router;
use quiver_embed::ModelRegistry;
use quiver_engine::{Collection, Database};
use tokio::sync::Semaphore;

use crate::auth::KeySet;
use crate::config::{LimitsConfig, ModelsConfig};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::{auth, limits, metrics, routes};

/// Everything a handler may need; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Arc<Database>,
    pub limits: Arc<LimitsConfig>,
    pub keys: Arc<KeySet>,
    pub metrics: Arc<Metrics>,
    /// Embedding and reranker models, loaded on first use from `<data>/models`.
    pub models: Arc<ModelRegistry>,
    /// `[models]`: which models the model endpoints use when a request names none.
    pub default_models: Arc<ModelsConfig>,
    /// Permits for requests in flight; none left means 503 `overloaded`.
    pub in_flight: Arc<Semaphore>,
    /// Cleared when shutdown begins, so `/ready` turns 503 before the listener closes.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        db: Arc<Database>,
        limits: LimitsConfig,
        keys: KeySet,
        models: &ModelsConfig,
    ) -> Self {
        let permits = limits.max_concurrent_requests;
        let registry = Arc::new(
            ModelRegistry::new(db.root(), models.service()).with_precision(models.precision()),
        );
        AppState {
            metrics: Arc::new(Metrics::new(Arc::clone(&registry), Arc::clone(&db))),
            models: registry,
            default_models: Arc::new(models.clone()),
            db,
            limits: Arc::new(limits),
            keys: Arc::new(keys),
            in_flight: Arc::new(Semaphore::new(permits)),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs `f` with collection `name` on the blocking pool (engine calls may fsync).
    ///
    /// A storage failure on a collection that was dropped meanwhile is reported as
    /// 404, not 500: the request raced a delete, the server is fine.
    pub async fn with_collection<T, F>(&self, name: &str, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Collection) -> Result<T, ApiError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let name = name.to_string();
        blocking(move || {
            let c = db.collection(&name)?;
            match f(&c) {
                Err(e) if e.status.is_server_error() && !still_open(&db, &name, &c) => {
                    Err(ApiError::not_found(format!(
                        "collection {name:?} was deleted during the request"
                    )))
                }
                other => other,
            }
        })
        .await
    }
}

fn still_open(db: &Database, name: &str, c: &Arc<Collection>) -> bool {
    db.collection(name).is_ok_and(|now| Arc::ptr_eq(&now, c))
}

/// Runs blocking work off the async threads; a panic becomes a 500.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("request task failed: {e}"))),
    }
}

/// The full router with every route and layer.
pub fn router(state: AppState) -> Router {
    use routes::{collections, documents, health, models, query};
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/collections", get(collections::list))
        .route(
            "/collections/{name}",
            put(collections::create)
                .get(collections::get)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/collections/{name}/documents",
            post(documents::upsert).get(documents::page),
        )
        .route(
            "/collections/{name}/documents/{id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/collections/{name}/query", post(query::query))
        .route("/collections/{name}/flush", post(collections::flush))
        .route(
            "/collections/{name}/snapshots",
            post(routes::snapshots::create).get(routes::snapshots::list),
        )
        .route(
            "/collections/{name}/snapshots/restore",
            post(routes::snapshots::restore),
        )
        .route(
            "/collections/{name}/snapshots/{snapshot}",
            get(routes::snapshots::download).delete(routes::snapshots::delete),
        )
        .route(
            "/snapshots",
            post(routes::snapshots::create_db).get(routes::snapshots::list_db),
        )
        .route("/snapshots/restore", post(routes::snapshots::restore_db))
        .route(
            "/snapshots/{snapshot}",
            get(routes::snapshots::download_db).delete(routes::snapshots::delete_db),
        )
        .route("/", post(models::root_tei))
        .route("/embed", post(models::embed_tei))
        .route("/rerank", post(models::rerank_tei))
        .route("/v1/embeddings", post(models::embeddings_openai))
        .route("/models", get(routes::installed::list))
        .route("/console", get(routes::console::index))
        .route("/console/", get(routes::console::index))
        .route("/console/{file}", get(routes::console::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), limits::guard))
        .layer(from_fn_with_state(state.clone(), auth::require_key))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
