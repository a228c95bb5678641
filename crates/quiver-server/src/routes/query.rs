//! `POST /collections/{name}/query`.
//!
//! The whole request shape is validated first ([`plan`]): mode, top_k, ef, filter
//! (depth, then syntax), fusion and rerank settings. Then, against the collection:
//! text without a vector is embedded for dense and hybrid search (instruction: the
//! request's `task`, else the collection's, else the default), the engine searches, and
//! with `rerank` the fused top `candidates` are rescored by the collection's reranker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use quiver_core::CollectionConfig;
use quiver_core::Filter;
use quiver_embed::ModelRegistry;
use quiver_engine::models::{embed_query, rerank, RerankedHit};
use quiver_engine::{Explain, Fusion, Query, QueryMode, StageHit, DEFAULT_RRF_K};

use crate::app::AppState;
use crate::config::LimitsConfig;
use crate::dto::{
    ExplainOut, FusionMethod, QueryHit, QueryMode as ModeDto, QueryRequest, QueryResponse, Rerank,
    RerankOut, StageOut,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::CollectionPath;
use crate::limits::{filter_depth, JsonBody};
use crate::routes::collections::MAX_TASK_BYTES;

/// Hits returned when the request names no `top_k`.
pub const DEFAULT_TOP_K: usize = 10;
/// Default weight of the dense list in weighted fusion.
pub const DEFAULT_ALPHA: f32 = 0.5;
/// Fused candidates the reranker scores when the request names no number.
pub const DEFAULT_RERANK_CANDIDATES: usize = 50;

/// Reranking asked for by a query.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankPlan {
    /// Fused candidates to score.
    pub candidates: usize,
    pub instruction: Option<String>,
}

/// A validated query: what the engine runs, plus the model steps around it.
#[derive(Debug)]
pub struct Plan {
    pub query: Query,
    /// Text alone with no `mode`: hybrid if the collection embeds, else sparse.
    pub auto_mode: bool,
    /// Instruction for embedding the query text.
    pub task: Option<String>,
    pub rerank: Option<RerankPlan>,
}

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

fn rerank_requested(
    req: &QueryRequest,
    limits: &LimitsConfig,
) -> Result<Option<RerankPlan>, ApiError> {
    let default = RerankPlan {
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
            Ok(Some(RerankPlan {
                candidates: o.candidates.unwrap_or(default.candidates),
                instruction: o.instruction.clone(),
            }))
        }
    }
}

/// Validates every field, then decides what can run. A vector alone runs dense; text
/// and a vector run hybrid; text alone is settled against the collection
/// ([`Plan::auto_mode`]), unless `mode` says otherwise.
pub fn plan(req: QueryRequest, limits: &LimitsConfig) -> Result<Plan, ApiError> {
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
    let no_text = req.text.as_deref().is_none_or(|t| t.trim().is_empty());
    if mode != QueryMode::Dense && no_text {
        return Err(ApiError::bad_request(
            "sparse and hybrid queries need a non-empty text",
        ));
    }
    if mode == QueryMode::Dense && req.vector.is_none() && no_text {
        return Err(ApiError::bad_request(
            "a dense query needs a vector or a non-empty text",
        ));
    }
    Ok(Plan {
        auto_mode: req.mode.is_none() && req.vector.is_none(),
        task: req.task,
        rerank,
        query: Query {
            mode,
            vector: req.vector,
            text: req.text,
            top_k,
            filter,
            fusion,
            ef: req.ef,
            explain: req.explain,
        },
    })
}

/// Embeds the query text when the mode needs a vector and none was sent. Checks the
/// collection's models before any of them runs.
fn prepare(
    plan: &mut Plan,
    config: &CollectionConfig,
    models: &ModelRegistry,
) -> Result<(), ApiError> {
    if plan.rerank.is_some() && config.reranker_model.is_none() {
        return Err(ApiError::unprocessable(
            "rerank needs a reranker_model on the collection; this collection has none",
        ));
    }
    if plan.rerank.is_some()
        && plan
            .query
            .text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err(ApiError::bad_request("rerank needs the query text"));
    }
    let q = &mut plan.query;
    if plan.auto_mode && config.embedding_model.is_some() {
        q.mode = QueryMode::Hybrid;
    }
    if q.mode == QueryMode::Sparse || q.vector.is_some() {
        return Ok(());
    }
    if config.embedding_model.is_none() {
        return Err(ApiError::unprocessable(format!(
            "{:?} search needs a query vector: this collection has no embedding_model; \
             send a vector, or use mode \"sparse\"",
            q.mode
        )));
    }
    let text = q.text.as_deref().unwrap_or_default();
    q.vector = Some(embed_query(models, config, text, plan.task.as_deref())?);
    Ok(())
}

/// What [`run`] found, with the time of the model steps.
struct Answer {
    hits: Vec<QueryHit>,
    engine: quiver_engine::QueryTimings,
    embed: Duration,
    rerank: Duration,
}

fn hit_out(h: quiver_engine::QueryHit, rerank: Option<RerankOut>) -> QueryHit {
    let explain = h.explain.map(explain).map(|mut e| {
        e.rerank = rerank;
        e
    });
    QueryHit {
        id: h.id,
        score: rerank.map_or(h.score, |r| r.score),
        text: h.text,
        metadata: h.metadata,
        explain,
    }
}

/// Embeds, searches and reranks one query against collection `c`.
fn run(
    mut plan: Plan,
    c: &quiver_engine::Collection,
    models: &ModelRegistry,
) -> Result<Answer, ApiError> {
    let t0 = Instant::now();
    prepare(&mut plan, c.config(), models)?;
    let embed = t0.elapsed();
    let top_k = plan.query.top_k;
    if let Some(r) = &plan.rerank {
        plan.query.top_k = top_k.max(r.candidates);
    }
    let result = c.query(&plan.query)?;
    let t1 = Instant::now();
    let hits = match (&plan.rerank, &c.config().reranker_model) {
        (Some(r), Some(model)) => {
            let text = plan.query.text.as_deref().unwrap_or_default();
            let reranked = rerank(
                models,
                model,
                text,
                r.instruction.as_deref(),
                result.hits,
                top_k,
            )?;
            reranked
                .into_iter()
                .map(
                    |RerankedHit {
                         hit,
                         score,
                         rank_before,
                     }| {
                        hit_out(hit, Some(RerankOut { score, rank_before }))
                    },
                )
                .collect()
        }
        _ => result.hits.into_iter().map(|h| hit_out(h, None)).collect(),
    };
    Ok(Answer {
        hits,
        engine: result.timings,
        embed,
        rerank: if plan.rerank.is_some() {
            t1.elapsed()
        } else {
            Duration::ZERO
        },
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
        rerank: None,
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
    let p = plan(req, &state.limits)?;
    let models = state.models.clone();
    let answer = state
        .with_collection(&name, move |c| run(p, c, &models))
        .await?;
    let t = answer.engine;
    let timings_ms = BTreeMap::from([
        ("embed".to_string(), ms(answer.embed)),
        ("filter".to_string(), ms(t.filter)),
        ("dense".to_string(), ms(t.dense)),
        ("sparse".to_string(), ms(t.sparse)),
        ("fusion".to_string(), ms(t.fusion)),
        ("fetch".to_string(), ms(t.fetch)),
        ("rerank".to_string(), ms(answer.rerank)),
        ("total".to_string(), ms(start.elapsed())),
    ]);
    Ok(Json(QueryResponse {
        hits: answer.hits,
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
        assert_eq!((p.query.top_k, p.query.mode), (3, QueryMode::Dense));
        let p = plan(req(json!({"text": "hi"})), &limits).unwrap();
        assert_eq!((p.query.mode, p.auto_mode), (QueryMode::Sparse, true));
        let p = plan(req(json!({"text": "hi", "vector": [1.0]})), &limits).unwrap();
        assert_eq!((p.query.mode, p.auto_mode), (QueryMode::Hybrid, false));
        assert_eq!(
            plan(req(json!({"vector": [1.0]})), &limits)
                .unwrap()
                .query
                .top_k,
            10
        );
        let p = plan(req(json!({"text": "hi", "rerank": true})), &limits).unwrap();
        assert_eq!(p.rerank.unwrap().candidates, 50);
        let r = json!({"enabled": true, "candidates": 7, "instruction": "find"});
        let p = plan(req(json!({"text": "hi", "rerank": r})), &limits).unwrap();
        assert_eq!(
            p.rerank,
            Some(RerankPlan {
                candidates: 7,
                instruction: Some("find".into())
            })
        );
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
