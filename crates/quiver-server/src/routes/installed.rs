//! `GET /models`: the models installed under `<data_dir>/models` and in the Hugging
//! Face cache, with what each can serve, whether or not it is loaded yet.

use axum::extract::State;
use axum::Json;
use quiver_embed::Role;

use crate::app::{blocking, AppState};
use crate::dto::{ModelInfo, ModelList};
use crate::error::{model_error, ApiError, ErrorBody};

/// List installed models.
#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, body = ModelList), (status = 500, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let registry = state.models.clone();
    // A directory scan: off the async workers.
    let catalog = blocking(move || registry.catalog().map_err(model_error)).await?;
    let models = catalog
        .into_iter()
        .map(|(m, role)| ModelInfo {
            name: m.location.name,
            kind: role.map(|r| {
                match r {
                    Role::Embedding => "embedding",
                    Role::Reranking => "reranking",
                }
                .to_string()
            }),
            dim: m.architecture.as_ref().and_then(|a| a.hidden_size),
            max_tokens: m.architecture.as_ref().and_then(|a| a.max_positions),
            bytes: m.size_bytes,
        })
        .collect();
    Ok(Json(ModelList { models }))
}
