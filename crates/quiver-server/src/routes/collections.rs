//! `PUT|GET|PATCH|DELETE /collections/{name}` and `GET /collections`.
//!
//! Model and index settings are parsed and validated here: [`load_models`] loads the
//! named models through the shared registry (422 naming the directory when one is
//! missing), [`engine_config`] checks `dim` against the embedding model's width.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::path::Path;

use quiver_core::{ChunkingConfig, CollectionConfig, MAX_CHUNK_TOKENS};
use quiver_embed::{resolve, ModelRegistry};
use quiver_engine::Collection;

use crate::app::{blocking, AppState};
use crate::dto::{
    ChunkingParams, ChunkingRequest, CollectionConfigView, CollectionInfo, CollectionList,
    CollectionSummary, CreateCollection, Deleted, Flushed, MaintenanceView, UpdateCollection,
};
use crate::error::{model_error, ApiError, ErrorBody};
use crate::extract::CollectionPath;
use crate::limits::JsonBody;

/// Longest accepted `task` instruction, in bytes.
pub const MAX_TASK_BYTES: usize = 2048;
/// Shortest Matryoshka cut of a Qwen3 embedding a collection may store.
pub const MIN_MATRYOSHKA_DIM: usize = 32;

/// What the collection's embedding model allows for `dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelWidth {
    /// Full output width of the model.
    pub width: usize,
    /// Trained for Matryoshka cuts (Qwen3); BERT-family models are not, so their
    /// vectors are stored whole.
    pub matryoshka: bool,
    /// Text tokens one input holds: the longest chunk.
    pub text_capacity: usize,
}

/// Loads the request's models through the registry (so a missing one is a 422 naming
/// where to place it) and reports the embedding model's width.
pub fn load_models(
    req: &CreateCollection,
    registry: &ModelRegistry,
    data_dir: &Path,
) -> Result<Option<ModelWidth>, ApiError> {
    if let Some(m) = &req.reranker_model {
        registry.reranker(m).map_err(model_error)?;
    }
    let Some(m) = &req.embedding_model else {
        return Ok(None);
    };
    let service = registry.embedder(m).map_err(model_error)?;
    let (width, text_capacity) = (service.width(), service.model().text_capacity());
    let family = resolve::resolve(m, data_dir)
        .ok()
        .and_then(|loc| resolve::read_architecture(&loc.path.join("config.json")))
        .map(|a| a.model_type);
    Ok(Some(ModelWidth {
        width,
        matryoshka: family.as_deref() != Some("bert"),
        text_capacity,
    }))
}

/// `dim` for a collection with an embedding model: defaults to the model's width;
/// Matryoshka models accept 32..=width, others exactly their width.
fn model_dim(req: &CreateCollection, model: ModelWidth) -> Result<usize, ApiError> {
    let ModelWidth {
        width, matryoshka, ..
    } = model;
    let dim = req.dim.unwrap_or(width);
    let ok = if matryoshka {
        (MIN_MATRYOSHKA_DIM.min(width)..=width).contains(&dim)
    } else {
        dim == width
    };
    if ok {
        return Ok(dim);
    }
    Err(ApiError::bad_request(if matryoshka {
        format!(
            "dim {dim} is outside {}..={width} for this embedding model",
            MIN_MATRYOSHKA_DIM.min(width)
        )
    } else {
        format!("dim must equal the embedding model's width {width}, got {dim}")
    }))
}

/// The chunking `request` asks for: on by default with an embedding model taking
/// `capacity` text tokens per input (see `ChunkingConfig::for_model`), refused without
/// one.
fn chunking(
    request: Option<&ChunkingRequest>,
    capacity: Option<usize>,
) -> Result<Option<ChunkingConfig>, ApiError> {
    let params = match request {
        Some(ChunkingRequest::Switch(false)) => return Ok(None),
        Some(ChunkingRequest::Switch(true)) | None => ChunkingParams::default(),
        Some(ChunkingRequest::Params(p)) => p.clone(),
    };
    let Some(capacity) = capacity else {
        if request.is_some() {
            return Err(ApiError::bad_request(
                "chunking needs an embedding_model: chunks are embedded on ingest",
            ));
        }
        return Ok(None);
    };
    // A model may take more than any chunk can hold.
    let capacity = capacity.min(MAX_CHUNK_TOKENS);
    let defaults = match params.max_tokens {
        Some(max) => ChunkingConfig {
            max_tokens: max,
            overlap_tokens: max / 8,
            ..ChunkingConfig::for_model(capacity)
        },
        None => ChunkingConfig::for_model(capacity),
    };
    let config = ChunkingConfig {
        max_tokens: defaults.max_tokens,
        overlap_tokens: params.overlap_tokens.unwrap_or(defaults.overlap_tokens),
        strategy: params.strategy.map_or(defaults.strategy, Into::into),
    };
    config
        .validate(capacity)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Some(config))
}

/// Checks the shape of every field, then turns the request into the engine's settings.
/// Ranges are the engine's ([`CollectionConfig::validate`]); `model` is what
/// [`load_models`] found for the embedding model.
pub fn engine_config(
    req: &CreateCollection,
    model: Option<ModelWidth>,
) -> Result<CollectionConfig, ApiError> {
    if let Some(t) = &req.task {
        if t.len() > MAX_TASK_BYTES {
            return Err(ApiError::bad_request(format!(
                "task must be at most {MAX_TASK_BYTES} bytes"
            )));
        }
    }
    let dim = match (model, req.dim) {
        (Some(m), _) => model_dim(req, m)?,
        (None, Some(dim)) if req.embedding_model.is_none() => dim,
        (None, None) if req.embedding_model.is_none() => {
            return Err(ApiError::bad_request(
                "dim is required when no embedding_model is set",
            ))
        }
        (None, _) => {
            return Err(ApiError::internal(
                "the embedding model was not loaded before the collection settings",
            ))
        }
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
    if let Some(p) = &req.bm25 {
        config.bm25.k1 = p.k1.unwrap_or(config.bm25.k1);
        config.bm25.b = p.b.unwrap_or(config.bm25.b);
    }
    config.chunking = chunking(req.chunking.as_ref(), model.map(|m| m.text_capacity))?;
    config
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(config)
}

pub(crate) fn info(c: &Collection) -> CollectionInfo {
    let stats = c.stats();
    CollectionInfo {
        name: c.name().to_string(),
        config: CollectionConfigView::from(&c.config()),
        count: c.count(),
        segments: stats.segments,
        memtable_entries: stats.memtable_entries,
        last_lsn: stats.last_lsn,
        checkpoint_lsn: stats.checkpoint_lsn,
        read_only: c.is_read_only(),
        maintenance: MaintenanceView {
            queued_memtables: stats.maintenance.queued_memtables,
            sealing: stats.maintenance.sealing,
            compacting: stats.maintenance.compacting,
            seals: stats.maintenance.seals,
            failed_seals: stats.maintenance.failed_seals,
            compactions: stats.maintenance.compactions,
            write_stalls: stats.maintenance.write_stalls,
            write_stall_seconds: stats.maintenance.write_stall_time.as_secs_f64(),
        },
        disk_bytes: c.disk_bytes(),
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
    let db = state.db.clone();
    let models = state.models.clone();
    let created = blocking(move || {
        // Loading a model reads its weights: done here, off the async threads.
        let model = load_models(&req, &models, db.root())?;
        let config = engine_config(&req, model)?;
        let c = db.create_collection(&name, config)?;
        Ok(info(&c))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Change a collection's settings: only `chunking`, and only while the collection is
/// empty (409 otherwise, saying how to re-embed).
#[utoipa::path(patch, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path)),
    request_body = UpdateCollection,
    responses((status = 200, body = CollectionInfo), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
    JsonBody(req): JsonBody<UpdateCollection>,
) -> Result<Json<CollectionInfo>, ApiError> {
    let db = state.db.clone();
    let models = state.models.clone();
    let updated = blocking(move || {
        let c = db.collection(&name)?;
        let Some(request) = &req.chunking else {
            return Err(ApiError::bad_request(
                "nothing to change: send the new chunking",
            ));
        };
        let capacity = match &c.config().embedding_model {
            Some(m) => Some(
                models
                    .embedder(m)
                    .map_err(model_error)?
                    .model()
                    .text_capacity(),
            ),
            None => None,
        };
        c.set_chunking(chunking(Some(request), capacity)?)?;
        Ok(info(&c))
    })
    .await?;
    Ok(Json(updated))
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
                embedding_model: c.config().embedding_model.clone(),
                reranker_model: c.config().reranker_model.clone(),
                segments: c.stats().segments,
                disk_bytes: c.disk_bytes(),
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

/// Seal the in-memory segment into an immutable, indexed segment now and commit the
/// text index, instead of waiting for `storage.seal_rows`: for the end of a bulk load,
/// or before measuring search speed.
#[utoipa::path(post, path = "/collections/{name}/flush", tag = "collections",
    params(("name" = String, Path)),
    responses((status = 200, body = Flushed), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn flush(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
) -> Result<Json<Flushed>, ApiError> {
    let sealed = state
        .with_collection(&name, |c| {
            let sealed = c.seal()?;
            c.commit_text()?;
            Ok(sealed)
        })
        .await?;
    Ok(Json(Flushed { sealed }))
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
    use crate::dto::{Bm25Params, HnswParams};

    #[test]
    fn config_rules() {
        let ok = CreateCollection {
            dim: Some(4),
            ..Default::default()
        };
        assert_eq!(engine_config(&ok, None).unwrap().dim, 4);
        let no_dim = CreateCollection::default();
        assert_eq!(engine_config(&no_dim, None).unwrap_err().status, 400);
        let model = CreateCollection {
            embedding_model: Some("org/m".into()),
            ..Default::default()
        };
        let qwen = ModelWidth {
            width: 64,
            matryoshka: true,
            text_capacity: 510,
        };
        let bert = ModelWidth {
            width: 32,
            matryoshka: false,
            text_capacity: 510,
        };
        assert_eq!(engine_config(&model, Some(qwen)).unwrap().dim, 64);
        assert_eq!(engine_config(&model, Some(bert)).unwrap().dim, 32);
        let cut = |dim| CreateCollection {
            dim: Some(dim),
            ..model.clone()
        };
        assert_eq!(engine_config(&cut(32), Some(qwen)).unwrap().dim, 32);
        assert_eq!(engine_config(&cut(31), Some(qwen)).unwrap_err().status, 400);
        assert_eq!(engine_config(&cut(65), Some(qwen)).unwrap_err().status, 400);
        assert_eq!(engine_config(&cut(16), Some(bert)).unwrap_err().status, 400);
        let bad_m = CreateCollection {
            dim: Some(4),
            hnsw: Some(HnswParams {
                m: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(engine_config(&bad_m, None).unwrap_err().status, 400);
        let bad_ix = CreateCollection {
            dim: Some(4),
            index_dim: Some(5),
            ..Default::default()
        };
        assert_eq!(engine_config(&bad_ix, None).unwrap_err().status, 400);
        let zero = CreateCollection {
            dim: Some(0),
            ..Default::default()
        };
        assert_eq!(engine_config(&zero, None).unwrap_err().status, 400);

        let bm25 = |k1, b| CreateCollection {
            dim: Some(4),
            bm25: Some(Bm25Params { k1, b }),
            ..Default::default()
        };
        let c = engine_config(&bm25(Some(0.9), None), None).unwrap();
        assert_eq!((c.bm25.k1, c.bm25.b), (0.9, 0.75));
        let c = engine_config(&bm25(None, Some(0.0)), None).unwrap();
        assert_eq!((c.bm25.k1, c.bm25.b), (1.2, 0.0));
        for (k1, b, field) in [(Some(-1.0), None, "bm25.k1"), (None, Some(1.01), "bm25.b")] {
            let err = engine_config(&bm25(k1, b), None).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(field), "{}", err.message);
        }
    }
}
