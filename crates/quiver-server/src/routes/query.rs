//! `POST /collections/{name}/query`.
//!
//! The whole request shape is validated first ([`plan`]): mode, top_k, ef, filter
//! (depth, then syntax), fusion and rerank settings; then the engine runs it. Until
//! the server loads models, a query must bring its own vector for dense and hybrid
//! search (text alone runs sparse), and rerank is refused with 422.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use quiver_core::Filter;
use quiver_engine::{Explain, Fusion, Query, QueryMode, StageHit, DEFAULT_RRF_K};

use crate::app::AppState;
use crate::config::LimitsConfig;
use crate::dto::{
    ExplainOut, FusionMethod, QueryHit, QueryMode as ModeDto, QueryRequest, QueryResponse, Rerank,
    StageOut,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::CollectionPath;
use crate::limits::{filter_depth, JsonBody};
use crate::routes::collections::{available_models, MAX_TASK_BYTES};

/// Hits returned when the request names no `top_k`.
pub const DEFAULT_TOP_K: usize = 10;
/// Default weight of the dense list in weighted fusion.
pub const DEFAULT_ALPHA: f32 = 0.5;

fn check_sizes(req: &QueryRequest, limits: &LimitsConfig) -> Result<usize, ApiError> {
    let max_top_k = limits.max_top_k.min(quiver_engine::MAX_TOP_K);
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if top_k == 0 || top_k > max_top_k {
        return Err(ApiError::bad_request(format!(
            "top_k must be in 1..={max_top_k}, got {top_k}"
        )));
    }
    if let Some(ef) = req.ef {
        if ef == 0 || ef > 4096 {
            return Err(ApiError::bad_request(format!(
                "ef must be in 1..=4096, got {ef}"
            )));
        }
    }
    if let Some(text) = &req.text {
        if text.len() > limits.max_text_bytes {
            return Err(ApiError::too_large(format!(
                "text is {} bytes; the limit is {}",
                text.len(),
                limits.max_text_bytes
            )));
        }
    }
    if let Some(task) = &req.task {
        if task.trim().is_empty() || task.len() > MAX_TASK_BYTES {
            return Err(ApiError::bad_request(format!(
                "task must be non-empty and at most {MAX_TASK_BYTES} bytes"
            )));
        }
    }
    if let Some(v) = &req.vector {
        if v.is_empty() {
            return Err(ApiError::bad_request("vector must not be empty"));
        }
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return Err(ApiError::bad_request(format!(
                "vector component {j} is not a finite number"
            )));
        }
    }
    Ok(top_k)
}

fn parse_filter(req: &QueryRequest, limits: &LimitsConfig) -> Result<Option<Filter>, ApiError> {
    let Some(f) = &req.filter else {
        return Ok(None);
    };
    let depth = filter_depth(f);
    if depth > limits.max_filter_depth {
        return Err(ApiError::bad_request(format!(
            "filter nests {depth} groups deep; the limit is {}",
            limits.max_filter_depth
        )));
    }
    let parsed = Filter::parse(f).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((!parsed.is_empty()).then_some(parsed))
}

fn fusion(req: &QueryRequest) -> Result<Fusion, ApiError> {
    let Some(f) = &req.fusion else {
        return Ok(Fusion::default());
    };
    match f.method {
        FusionMethod::Rrf => {
            let k = f.k.unwrap_or(DEFAULT_RRF_K);
            if !(k.is_finite() && k > 0.0) || f.alpha.is_some() {
                return Err(ApiError::bad_request(
                    "fusion: rrf takes a positive k and no alpha",
                ));
            }
            Ok(Fusion::Rrf { k })
        }
        FusionMethod::Weighted => {
            let alpha = f.alpha.unwrap_or(DEFAULT_ALPHA);
            if !(0.0..=1.0).contains(&alpha) || f.k.is_some() {
                return Err(ApiError::bad_request(
                    "fusion: weighted takes an alpha in 0..=1 and no k",
                ));
            }
            Ok(Fusion::Weighted { alpha })
        }
    }
}

fn rerank_requested(req: &QueryRequest, limits: &LimitsConfig) -> Result<bool, ApiError> {
    match &req.rerank {
        None | Some(Rerank::Enabled(false)) => Ok(false),
        Some(Rerank::Enabled(true)) => Ok(true),
        Some(Rerank::Options(o)) => {
            if o.top_n.is_some_and(|n| n == 0 || n > limits.max_top_k) {
                return Err(ApiError::bad_request(format!(
                    "rerank.top_n must be in 1..={}",
                    limits.max_top_k
                )));
            }
            Ok(true)
        }
    }
}

/// Validates every field, then decides what can run. Text alone runs sparse; a vector
/// alone runs dense; both run hybrid, unless `mode` says otherwise.
pub fn plan(req: QueryRequest, limits: &LimitsConfig) -> Result<Query, ApiError> {
    let top_k = check_sizes(&req, limits)?;
    let filter = parse_filter(&req, limits)?;
    let fusion = fusion(&req)?;
    let rerank = rerank_requested(&req, limits)?;
    let mode = match (req.mode, &req.vector, &req.text) {
        (Some(ModeDto::Dense), ..) => QueryMode::Dense,
        (Some(ModeDto::Sparse), ..) => QueryMode::Sparse,
        (Some(ModeDto::Hybrid), ..) => QueryMode::Hybrid,
        (None, Some(_), Some(_)) => QueryMode::Hybrid,
        (None, Some(_), None) => QueryMode::Dense,
        (None, None, Some(_)) => QueryMode::Sparse,
        (None, None, None) => return Err(ApiError::bad_request("a query needs text or a vector")),
    };
    if mode != QueryMode::Dense && req.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "sparse and hybrid queries need a non-empty text",
        ));
    }
    if mode != QueryMode::Sparse && req.vector.is_none() {
        return Err(ApiError::unprocessable(format!(
            "{mode:?} search needs a query vector; embedding the text needs a model \
             (available models: {}); send a vector, or use mode \"sparse\"",
            available_models()
        )));
    }
    if rerank {
        return Err(ApiError::unprocessable(format!(
            "rerank needs a reranker model; available models: {}",
            available_models()
        )));
    }
    Ok(Query {
        mode,
        vector: req.vector,
        text: req.text,
        top_k,
        filter,
        fusion,
        ef: req.ef,
        explain: req.explain,
    })
}

fn stage(s: Option<StageHit>) -> Option<StageOut> {
    s.map(|h| StageOut {
        rank: h.rank,
        score: h.score,
    })
}

fn explain(e: Explain) -> ExplainOut {
    ExplainOut {
        dense: stage(e.dense),
        sparse: stage(e.sparse),
        fused: e.fused,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Search a collection.
#[utoipa::path(post, path = "/collections/{name}/query", tag = "query",
    params(("name" = String, Path)),
    request_body = QueryRequest,
    responses((status = 200, body = QueryResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn query(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<Json<QueryResponse>, ApiError> {
    let start = Instant::now();
    let q = plan(req, &state.limits)?;
    let result = state
        .with_collection(&name, move |c| Ok(c.query(&q)?))
        .await?;
    let t = result.timings;
    let timings_ms = BTreeMap::from([
        ("filter".to_string(), ms(t.filter)),
        ("dense".to_string(), ms(t.dense)),
        ("sparse".to_string(), ms(t.sparse)),
        ("fusion".to_string(), ms(t.fusion)),
        ("fetch".to_string(), ms(t.fetch)),
        ("total".to_string(), ms(start.elapsed())),
    ]);
    let hits = result
        .hits
        .into_iter()
        .map(|h| QueryHit {
            id: h.id,
            score: h.score,
            text: h.text,
            metadata: h.metadata,
            explain: h.explain.map(explain),
        })
        .collect();
    Ok(Json(QueryResponse { hits, timings_ms }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dto::{Fusion as FusionDto, RerankOptions};
    use serde_json::json;

    fn req(v: serde_json::Value) -> QueryRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn plans_and_refusals() {
        let limits = LimitsConfig {
            max_top_k: 50,
            max_filter_depth: 2,
            ..LimitsConfig::default()
        };
        let p = plan(req(json!({"vector": [1.0, 0.0], "top_k": 3})), &limits).unwrap();
        assert_eq!((p.top_k, p.mode), (3, QueryMode::Dense));
        let p = plan(req(json!({"text": "hi"})), &limits).unwrap();
        assert_eq!(p.mode, QueryMode::Sparse);
        let p = plan(req(json!({"text": "hi", "vector": [1.0]})), &limits).unwrap();
        assert_eq!(p.mode, QueryMode::Hybrid);
        assert_eq!(
            plan(req(json!({"vector": [1.0]})), &limits).unwrap().top_k,
            10
        );
        let status = |v| plan(req(v), &limits).unwrap_err().status.as_u16();
        assert_eq!(status(json!({"vector": [1.0], "top_k": 0})), 400);
        assert_eq!(status(json!({"vector": [1.0], "top_k": 51})), 400);
        assert_eq!(status(json!({})), 400);
        assert_eq!(status(json!({"vector": []})), 400);
        assert_eq!(status(json!({"vector": [1.0], "mode": "sparse"})), 400);
        assert_eq!(status(json!({"vector": [1.0], "ef": 0})), 400);
        assert_eq!(status(json!({"text": "hi", "mode": "dense"})), 422);
        assert_eq!(status(json!({"text": "hi", "mode": "hybrid"})), 422);
        assert_eq!(status(json!({"vector": [1.0], "rerank": true})), 422);
        assert_eq!(
            status(json!({"vector": [1.0], "filter": {"must": [{"key": "a"}]}})),
            400
        );
        let deep = json!({"must": [{"must": [{"must": [{"key": "a", "match": 1}]}]}]});
        assert_eq!(status(json!({"vector": [1.0], "filter": deep})), 400);
        let mut r = req(json!({"vector": [1.0]}));
        r.fusion = Some(FusionDto {
            method: FusionMethod::Weighted,
            k: None,
            alpha: Some(2.0),
        });
        assert_eq!(plan(r, &limits).unwrap_err().status, 400);
        let mut r = req(json!({"vector": [1.0]}));
        r.rerank = Some(Rerank::Options(RerankOptions { top_n: Some(0) }));
        assert_eq!(plan(r, &limits).unwrap_err().status, 400);
    }
}
