//! Model endpoints in the shapes existing tools already speak: `POST /embed` and
//! `POST /rerank` as text-embeddings-inference answers them, and `POST /v1/embeddings`
//! as the OpenAI embeddings API does (with `dimensions` for Matryoshka truncation).
//!
//! `POST /` answers as text-embeddings-inference's root route does: a body with `query`
//! and `texts` is a rerank request, any other an embed request.
//!
//! A request may name its model (`model`); otherwise the `[models]` defaults of
//! `server.toml` apply, and without a default the one installed model that can serve
//! the request (so a stock TEI or OpenAI client, which names none, just works). Models
//! load from `<data_dir>/models` on first use. Vectors are always unit length, before and
//! after truncation to `dimensions`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use quiver_embed::{truncate_normalize, ModelRegistry, Priority, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{blocking, AppState};
use crate::config::LimitsConfig;
use crate::error::{model_error, ApiError, ErrorBody};
use crate::limits::JsonBody;
use crate::routes::collections::MAX_TASK_BYTES;

/// One text or a list of texts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
    /// Pre-tokenized input (OpenAI): refused, the server tokenizes.
    Tokens(Vec<serde_json::Value>),
}

/// `POST /embed` (text-embeddings-inference shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    /// Vectors are always unit length; `false` is refused.
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Accepted for compatibility: inputs beyond the model's window are always cut.
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<String>,
    /// Keep the first `dimensions` components (Matryoshka) and renormalize.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Quiver: the embedding model (default: `[models] embedding`).
    #[serde(default)]
    pub model: Option<String>,
    /// Quiver: embed as queries with this instruction (default: as documents).
    #[serde(default)]
    pub task: Option<String>,
}

/// `POST /rerank` (text-embeddings-inference shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Vec<String>,
    /// Return logits instead of probabilities.
    #[serde(default)]
    pub raw_scores: bool,
    /// Echo each text in its result.
    #[serde(default)]
    pub return_text: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<String>,
    /// Quiver: the reranker (default: `[models] reranker`).
    #[serde(default)]
    pub model: Option<String>,
    /// Quiver: the reranker's task instruction.
    #[serde(default)]
    pub instruction: Option<String>,
}

/// One text's score, best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankOut {
    pub index: usize,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `POST /v1/embeddings` (OpenAI shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiRequest {
    pub input: Inputs,
    /// Default: `[models] embedding`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// `float` (default) or `base64` (little-endian f32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// A vector as a list of numbers or base64 of its little-endian f32 bytes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingOut {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingOut,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiResponse {
    pub object: &'static str,
    pub data: Vec<OpenAiEmbedding>,
    pub model: String,
    pub usage: OpenAiUsage,
}

/// The texts of `inputs`, checked against the batch and text limits.
fn texts(inputs: Inputs, field: &str, limits: &LimitsConfig) -> Result<Vec<String>, ApiError> {
    let texts = match inputs {
        Inputs::One(t) => vec![t],
        Inputs::Many(v) => v,
        Inputs::Tokens(_) => {
            return Err(ApiError::bad_request(format!(
                "{field} must be a string or a list of strings; token ids are not accepted"
            )))
        }
    };
    check_texts(&texts, field, limits)?;
    Ok(texts)
}

fn check_texts(texts: &[String], field: &str, limits: &LimitsConfig) -> Result<(), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::bad_request(format!("{field} is empty")));
    }
    if texts.len() > limits.max_batch {
        return Err(ApiError::too_large(format!(
            "{} texts in {field} exceed the batch limit of {}",
            texts.len(),
            limits.max_batch
        )));
    }
    if let Some(i) = texts.iter().position(|t| t.len() > limits.max_text_bytes) {
        return Err(ApiError::too_large(format!(
            "{field}[{i}] is longer than the limit of {} bytes",
            limits.max_text_bytes
        )));
    }
    Ok(())
}

fn check_instruction(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(t) if t.trim().is_empty() || t.len() > MAX_TASK_BYTES => Err(ApiError::bad_request(
            format!("{field} must be non-empty and at most {MAX_TASK_BYTES} bytes"),
        )),
        _ => Ok(()),
    }
}

/// The request's model, else the configured default, else the only installed model of
/// `role`; a 422 saying how to choose one otherwise.
fn model_for(state: &AppState, asked: Option<String>, role: Role) -> Result<String, ApiError> {
    let (default, key) = match role {
        Role::Embedding => (&state.default_models.embedding, "embedding"),
        Role::Reranking => (&state.default_models.reranker, "reranker"),
    };
    if let Some(name) = asked.or_else(|| default.clone()) {
        return Ok(name);
    }
    let installed = state.models.installed(role).map_err(model_error)?;
    match installed.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ApiError::unprocessable(format!(
            "no {key} model named and none installed: pass \"model\" after `quiver models pull`, \
             or set [models] {key} in server.toml"
        ))),
        many => Err(ApiError::unprocessable(format!(
            "no {key} model named and {} installed ({}): pass \"model\", or set [models] {key} \
             in server.toml",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// Embeds `texts` with model `name`, truncated to `dimensions`; also counts tokens.
fn embed(
    models: &ModelRegistry,
    name: &str,
    texts: &[String],
    task: Option<&str>,
    dimensions: Option<usize>,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let service = models.embedder(name).map_err(model_error)?;
    let width = service.width();
    let dim = dimensions.unwrap_or(width);
    if dim == 0 || dim > width {
        return Err(ApiError::bad_request(format!(
            "dimensions must be in 1..={width} for {name}"
        )));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // A single text is interactive work; a batch is bulk and yields to queries.
    let priority = if refs.len() == 1 {
        Priority::Query
    } else {
        Priority::Bulk
    };
    let mut tokens = 0;
    for t in &refs {
        tokens += service.model().count_tokens(t, task).map_err(model_error)?;
    }
    let vectors = service
        .embed(&refs, task, priority)
        .map_err(model_error)?
        .iter()
        .map(|v| truncate_normalize(v, dim))
        .collect::<Result<Vec<_>, _>>()
        .map_err(model_error)?;
    Ok((vectors, tokens))
}

/// Embed texts (text-embeddings-inference compatible).
#[utoipa::path(post, path = "/embed", tag = "models",
    request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn embed_tei(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    embed_texts(state, req).await
}

async fn embed_texts(state: AppState, req: EmbedRequest) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    if req.normalize == Some(false) {
        return Err(ApiError::unprocessable(
            "normalize: false is not supported: Quiver's vectors are always unit length",
        ));
    }
    check_instruction("task", &req.task)?;
    let texts = texts(req.inputs, "inputs", &state.limits)?;
    let name = model_for(&state, req.model, Role::Embedding)?;
    let models = state.models.clone();
    let (vectors, _) =
        blocking(move || embed(&models, &name, &texts, req.task.as_deref(), req.dimensions))
            .await?;
    Ok(Json(vectors))
}

/// Score texts against a query (text-embeddings-inference compatible), best first.
#[utoipa::path(post, path = "/rerank", tag = "models",
    request_body = RerankRequest,
    responses((status = 200, body = Vec<RankOut>), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn rerank_tei(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RerankRequest>,
) -> Result<Json<Vec<RankOut>>, ApiError> {
    rerank_texts(state, req).await
}

/// Embed or rerank as text-embeddings-inference's root route does: a body with `query`
/// and `texts` is a `/rerank` request, any other an `/embed` request.
#[utoipa::path(post, path = "/", tag = "models",
    request_body(content = serde_json::Value,
        description = "an `/embed` body, or a `/rerank` body (`query` and `texts`)"),
    responses((status = 200, description = "as `/embed` or `/rerank` answers"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn root_tei(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let rerank = body.get("query").is_some() && body.get("texts").is_some();
    let invalid = |e: serde_json::Error| ApiError::invalid_json(format!("invalid request: {e}"));
    if rerank {
        let req = serde_json::from_value(body).map_err(invalid)?;
        Ok(rerank_texts(state, req).await?.into_response())
    } else {
        let req = serde_json::from_value(body).map_err(invalid)?;
        Ok(embed_texts(state, req).await?.into_response())
    }
}

async fn rerank_texts(state: AppState, req: RerankRequest) -> Result<Json<Vec<RankOut>>, ApiError> {
    check_instruction("instruction", &req.instruction)?;
    check_texts(std::slice::from_ref(&req.query), "query", &state.limits)?;
    check_texts(&req.texts, "texts", &state.limits)?;
    let name = model_for(&state, req.model, Role::Reranking)?;
    let models = state.models.clone();
    let (query, texts, instruction) = (req.query, req.texts, req.instruction);
    let scores = blocking(move || {
        let service = models.reranker(&name).map_err(model_error)?;
        let docs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let scores = service
            .score(&query, &docs, instruction.as_deref())
            .map_err(model_error)?;
        Ok((scores, texts))
    })
    .await?;
    let (scores, texts) = scores;
    let mut out: Vec<RankOut> = scores
        .into_iter()
        .zip(texts)
        .enumerate()
        .map(|(index, (p, text))| RankOut {
            index,
            score: if req.raw_scores { logit(p) } else { p },
            text: req.return_text.then_some(text),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    Ok(Json(out))
}

/// The reranker's probability of "relevant" as the logit it came from.
fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

/// Create embeddings (OpenAI compatible).
#[utoipa::path(post, path = "/v1/embeddings", tag = "models",
    request_body = OpenAiRequest,
    responses((status = 200, body = OpenAiResponse), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn embeddings_openai(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<OpenAiRequest>,
) -> Result<Json<OpenAiResponse>, ApiError> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format must be \"float\" or \"base64\", not {other:?}"
            )))
        }
    };
    let texts = texts(req.input, "input", &state.limits)?;
    let name = model_for(&state, req.model, Role::Embedding)?;
    let models = state.models.clone();
    let model = name.clone();
    let dimensions = req.dimensions;
    let (vectors, tokens) =
        blocking(move || embed(&models, &name, &texts, None, dimensions)).await?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| OpenAiEmbedding {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingOut::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingOut::Float(v)
            },
        })
        .collect();
    Ok(Json(OpenAiResponse {
        object: "list",
        data,
        model,
        usage: OpenAiUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_inverts_the_sigmoid() {
        for x in [-3.0f32, 0.0, 2.5] {
            let p = 1.0 / (1.0 + (-x).exp());
            assert!((logit(p) - x).abs() < 1e-4);
        }
    }

    #[test]
    fn inputs_are_checked() {
        let limits = LimitsConfig {
            max_batch: 2,
            max_text_bytes: 3,
            ..LimitsConfig::default()
        };
        let many = |v: &[&str]| Inputs::Many(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(texts(many(&["a", "b"]), "in", &limits).unwrap().len(), 2);
        assert_eq!(texts(many(&[]), "in", &limits).unwrap_err().status, 400);
        assert_eq!(
            texts(many(&["a", "b", "c"]), "in", &limits)
                .unwrap_err()
                .status,
            413
        );
        assert_eq!(
            texts(many(&["abcd"]), "in", &limits).unwrap_err().status,
            413
        );
        let tokens = Inputs::Tokens(vec![serde_json::json!(1)]);
        assert_eq!(texts(tokens, "in", &limits).unwrap_err().status, 400);
    }
}
