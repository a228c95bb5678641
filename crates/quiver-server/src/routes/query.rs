//! `POST /collections/{name}/query`.
//!
//! The route converts: it enforces the server's limits and parses the request into the
//! engine's [`SearchRequest`] ([`plan`]: top_k, ef, sizes, filter depth then syntax,
//! fusion, rerank settings, then the request's own consistency), before the collection
//! is looked up. [`QueryPipeline`] does the rest (mode, query embedding, search,
//! rerank); the answer is converted back with its timings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use quiver_core::Filter;
use quiver_engine::{
    ChunkScore, Explain, Fusion, GroupBy, QueryMode, QueryPipeline, RerankRequest, SearchRequest,
    StageHit, DEFAULT_RERANK_CANDIDATES, DEFAULT_RRF_K,
};

use crate::app::AppState;
use crate::config::LimitsConfig;
use crate::dto::{
    ChunkOut, ChunkScoreName, ExplainOut, FusionMethod, GroupByName, QueryHit,
    QueryMode as ModeDto, QueryRequest, QueryResponse, Rerank, RerankOut, StageOut,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::CollectionPath;
use crate::limits::{filter_conditions, filter_depth, JsonBody};
use crate::routes::collections::MAX_TASK_BYTES;

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
    let conditions = filter_conditions(f);
    if conditions > limits.max_filter_conditions {
        return Err(ApiError::bad_request(format!(
            "filter holds {conditions} conditions; the limit is {}",
            limits.max_filter_conditions
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

fn rerank_requested(
    req: &QueryRequest,
    limits: &LimitsConfig,
) -> Result<Option<RerankRequest>, ApiError> {
    let default = RerankRequest {
        candidates: DEFAULT_RERANK_CANDIDATES.min(limits.max_top_k),
        instruction: None,
    };
    match &req.rerank {
        None | Some(Rerank::Enabled(false)) => Ok(None),
        Some(Rerank::Enabled(true)) => Ok(Some(default)),
        Some(Rerank::Options(o)) => {
            if o.candidates.is_some_and(|n| n == 0 || n > limits.max_top_k) {
                return Err(ApiError::bad_request(format!(
                    "rerank.candidates must be in 1..={}",
                    limits.max_top_k
                )));
            }
            if let Some(i) = &o.instruction {
                if i.trim().is_empty() || i.len() > MAX_TASK_BYTES {
                    return Err(ApiError::bad_request(format!(
                        "rerank.instruction must be non-empty and at most {MAX_TASK_BYTES} bytes"
                    )));
                }
            }
            if o.enabled == Some(false) {
                return Ok(None);
            }
            Ok(Some(RerankRequest {
                candidates: o.candidates.unwrap_or(default.candidates),
                instruction: o.instruction.clone(),
            }))
        }
    }
}

/// Validates every field against the server's limits and converts the request. The
/// engine's own checks of the request ([`SearchRequest::validate`]) run here too, so a
/// malformed query is refused before the collection is looked up.
///
/// The API has always reranked every hit it returns: a `top_k` above the candidate
/// count raises the candidates to `top_k`.
pub fn plan(req: QueryRequest, limits: &LimitsConfig) -> Result<SearchRequest, ApiError> {
    let top_k = check_sizes(&req, limits)?;
    let filter = parse_filter(&req, limits)?;
    let fusion = fusion(&req)?;
    let rerank = rerank_requested(&req, limits)?.map(|r| RerankRequest {
        candidates: r.candidates.max(top_k),
        ..r
    });
    let search = SearchRequest {
        mode: req.mode.map(|m| match m {
            ModeDto::Dense => QueryMode::Dense,
            ModeDto::Sparse => QueryMode::Sparse,
            ModeDto::Hybrid => QueryMode::Hybrid,
        }),
        vector: req.vector,
        text: req.text,
        top_k,
        filter,
        fusion,
        ef: req.ef,
        exact: req.exact,
        explain: req.explain,
        highlight: req.highlight,
        group_by: match req.group_by {
            GroupByName::Document => GroupBy::Document,
            GroupByName::Chunk => GroupBy::Chunk,
        },
        chunk_score: match req.chunk_score {
            ChunkScoreName::Max => ChunkScore::Max,
            ChunkScoreName::Sum => ChunkScore::Sum,
        },
        task: req.task,
        rerank,
    };
    search.validate()?;
    Ok(search)
}

fn hit_out(h: quiver_engine::QueryHit) -> QueryHit {
    QueryHit {
        id: h.id,
        score: h.score,
        text: h.text,
        metadata: h.metadata,
        explain: h.explain.map(explain),
        highlights: h.highlights,
        chunks: h.chunks.into_iter().map(ChunkOut::from).collect(),
    }
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
        rerank: e.rerank.map(|r| RerankOut {
            score: r.score,
            rank_before: r.rank_before,
        }),
        chunk: e.chunk,
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
    let search = plan(req, &state.limits)?;
    let models = state.models.clone();
    let answer = state
        .with_collection(&name, move |c| {
            Ok(QueryPipeline::new(&models).run(c, &search)?)
        })
        .await?;
    let t = answer.timings;
    let timings_ms = BTreeMap::from([
        ("embed".to_string(), ms(t.embed)),
        ("filter".to_string(), ms(t.engine.filter)),
        ("dense".to_string(), ms(t.engine.dense)),
        ("dense_index".to_string(), ms(t.engine.dense_index)),
        ("sparse".to_string(), ms(t.engine.sparse)),
        ("fusion".to_string(), ms(t.engine.fusion)),
        ("fetch".to_string(), ms(t.engine.fetch)),
        ("rerank".to_string(), ms(t.rerank)),
        ("total".to_string(), ms(start.elapsed())),
    ]);
    Ok(Json(QueryResponse {
        hits: answer.hits.into_iter().map(hit_out).collect(),
        timings_ms,
    }))
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
        assert_eq!((p.top_k, p.mode, p.exact), (3, None, false));
        let p = plan(req(json!({"text": "hi", "mode": "sparse"})), &limits).unwrap();
        assert_eq!(p.mode, Some(QueryMode::Sparse));
        let p = plan(req(json!({"vector": [1.0], "exact": true})), &limits).unwrap();
        assert!(p.exact);
        assert_eq!(
            plan(req(json!({"vector": [1.0]})), &limits).unwrap().top_k,
            10
        );
        let p = plan(req(json!({"text": "hi", "rerank": true})), &limits).unwrap();
        assert_eq!(p.rerank.unwrap().candidates, 50);
        let r = json!({"enabled": true, "candidates": 7, "instruction": "find"});
        let p = plan(req(json!({"text": "hi", "rerank": r})), &limits).unwrap();
        assert_eq!(
            p.rerank,
            Some(RerankRequest {
                candidates: 10,
                instruction: Some("find".into())
            }),
            "every returned hit is reranked: candidates rise to top_k"
        );
        let r = json!({"candidates": 7});
        let p = plan(req(json!({"text": "hi", "top_k": 3, "rerank": r})), &limits).unwrap();
        assert_eq!(p.rerank.unwrap().candidates, 7);
        let off = json!({"text": "hi", "rerank": {"enabled": false}});
        assert_eq!(plan(req(off), &limits).unwrap().rerank, None);
        let status = |v| plan(req(v), &limits).unwrap_err().status.as_u16();
        assert_eq!(status(json!({"vector": [1.0], "top_k": 0})), 400);
        assert_eq!(status(json!({"vector": [1.0], "top_k": 51})), 400);
        assert_eq!(status(json!({})), 400);
        assert_eq!(status(json!({"vector": []})), 400);
        assert_eq!(status(json!({"vector": [1.0], "mode": "sparse"})), 400);
        assert_eq!(status(json!({"vector": [1.0], "ef": 0})), 400);
        assert_eq!(
            status(json!({"text": "hi", "rerank": {"candidates": 51}})),
            400
        );
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
        r.rerank = Some(Rerank::Options(RerankOptions {
            candidates: Some(0),
            ..Default::default()
        }));
        assert_eq!(plan(r, &limits).unwrap_err().status, 400);
    }
}
