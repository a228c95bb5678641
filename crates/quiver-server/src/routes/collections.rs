//! `PUT|GET|DELETE /collections/{name}` and `GET /collections`.
//!
//! Model and index settings are parsed and validated here; the engine does not carry
//! them yet, so [`engine_config`] is the one place that refuses them (422) until it does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use quiver_core::CollectionConfig;
use quiver_engine::Collection;

use crate::app::{blocking, AppState};
use crate::dto::{
    CollectionConfigView, CollectionInfo, CollectionList, CollectionSummary, CreateCollection,
    Deleted,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::CollectionPath;
use crate::limits::JsonBody;

/// Embedding and reranker models this server can run (none until models are wired in).
pub const AVAILABLE_MODELS: [&str; 0] = [];
/// Longest accepted `task` instruction, in bytes.
pub const MAX_TASK_BYTES: usize = 2048;

/// The models this server can run, for error messages.
pub fn available_models() -> String {
    if AVAILABLE_MODELS.is_empty() {
        "none (this server has no models loaded)".to_string()
    } else {
        AVAILABLE_MODELS.join(", ")
    }
}

/// The 422 for a model this server cannot run.
pub fn model_unavailable(field: &str, model: &str) -> ApiError {
    ApiError::unprocessable(format!(
        "{field} {model:?} is not available; available models: {}",
        available_models()
    ))
}

/// Checks the shape of every field, then turns the request into the engine's settings.
/// Ranges are the engine's ([`CollectionConfig::validate`]); models are refused here
/// until the server loads them.
pub fn engine_config(req: &CreateCollection) -> Result<CollectionConfig, ApiError> {
    if let Some(t) = &req.task {
        if t.len() > MAX_TASK_BYTES {
            return Err(ApiError::bad_request(format!(
                "task must be at most {MAX_TASK_BYTES} bytes"
            )));
        }
    }
    for (field, model) in [
        ("embedding_model", &req.embedding_model),
        ("reranker_model", &req.reranker_model),
    ] {
        if let Some(m) = model {
            if !AVAILABLE_MODELS.contains(&m.as_str()) {
                return Err(model_unavailable(field, m));
            }
        }
    }
    let Some(dim) = req.dim else {
        return Err(ApiError::bad_request(
            "dim is required when no embedding_model is set",
        ));
    };
    let mut config = CollectionConfig::new(dim);
    config.distance = req.distance.into();
    config.embedding_model = req.embedding_model.clone();
    config.reranker_model = req.reranker_model.clone();
    config.index_dim = req.index_dim;
    config.task = req.task.clone();
    if let Some(r) = req.rescore {
        config.rescore = r;
    }
    if let Some(a) = req.analyzer {
        config.analyzer = a.into();
    }
    if let Some(h) = &req.hnsw {
        config.hnsw.m = h.m.unwrap_or(config.hnsw.m);
        config.hnsw.ef_construction = h.ef_construction.unwrap_or(config.hnsw.ef_construction);
        config.hnsw.ef_search = h.ef_search.unwrap_or(config.hnsw.ef_search);
    }
    config
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(config)
}

pub(crate) fn info(c: &Collection) -> CollectionInfo {
    let stats = c.stats();
    CollectionInfo {
        name: c.name().to_string(),
        config: CollectionConfigView::from(c.config()),
        count: c.count(),
        segments: stats.segments,
        memtable_entries: stats.memtable_entries,
        last_lsn: stats.last_lsn,
        checkpoint_lsn: stats.checkpoint_lsn,
        read_only: c.is_read_only(),
    }
}

/// Create a collection.
#[utoipa::path(put, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = CreateCollection,
    responses((status = 201, body = CollectionInfo), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
    JsonBody(req): JsonBody<CreateCollection>,
) -> Result<(StatusCode, Json<CollectionInfo>), ApiError> {
    let config = engine_config(&req)?;
    let db = state.db.clone();
    let created = blocking(move || {
        let c = db.create_collection(&name, config)?;
        Ok(info(&c))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List collections.
#[utoipa::path(get, path = "/collections", tag = "collections",
    responses((status = 200, body = CollectionList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<CollectionList>, ApiError> {
    let db = state.db.clone();
    let collections = blocking(move || {
        Ok(db
            .list_collections()
            .into_iter()
            .filter_map(|n| db.collection(&n).ok())
            .map(|c| CollectionSummary {
                name: c.name().to_string(),
                dim: c.config().dim,
                distance: c.config().distance.into(),
                count: c.count(),
            })
            .collect())
    })
    .await?;
    Ok(Json(CollectionList { collections }))
}

/// Describe a collection.
#[utoipa::path(get, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path)),
    responses((status = 200, body = CollectionInfo), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
) -> Result<Json<CollectionInfo>, ApiError> {
    let info = state.with_collection(&name, |c| Ok(info(c))).await?;
    Ok(Json(info))
}

/// Delete a collection and all its data.
#[utoipa::path(delete, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
) -> Result<Json<Deleted>, ApiError> {
    let db = state.db.clone();
    blocking(move || Ok(db.drop_collection(&name)?)).await?;
    Ok(Json(Deleted { deleted: true }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dto::HnswParams;

    #[test]
    fn config_rules() {
        let ok = CreateCollection {
            dim: Some(4),
            ..Default::default()
        };
        assert_eq!(engine_config(&ok).unwrap().dim, 4);
        let no_dim = CreateCollection::default();
        assert_eq!(engine_config(&no_dim).unwrap_err().status, 400);
        let model = CreateCollection {
            embedding_model: Some("Qwen/Qwen3-Embedding-0.6B".into()),
            ..Default::default()
        };
        let e = engine_config(&model).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.contains("available models"), "{}", e.message);
        let bad_m = CreateCollection {
            dim: Some(4),
            hnsw: Some(HnswParams {
                m: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(engine_config(&bad_m).unwrap_err().status, 400);
        let bad_ix = CreateCollection {
            dim: Some(4),
            index_dim: Some(5),
            ..Default::default()
        };
        assert_eq!(engine_config(&bad_ix).unwrap_err().status, 400);
        let zero = CreateCollection {
            dim: Some(0),
            ..Default::default()
        };
        assert_eq!(engine_config(&zero).unwrap_err().status, 400);
    }
}
