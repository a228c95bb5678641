//! `POST /collections/{name}/documents` (upsert a batch), `GET` of the same path (the
//! documents page by page, in id order) and `GET|DELETE /collections/{name}/documents/{id}`.
//!
//! The whole batch is checked against the limits (batch size, id and text length,
//! finite vectors) before the engine sees it; documents without a vector are then
//! embedded with the collection's model, and the engine writes one WAL record for the
//! batch (vectors included) and answers with its LSN.

use axum::extract::{Query, State};
use axum::Json;
use quiver_engine::document_chunks;
use quiver_engine::models::{embed_documents, NewDocument};

use crate::app::AppState;
use crate::config::LimitsConfig;
use crate::dto::{
    ChunkOut, DeleteResponse, DocumentBrief, DocumentIn, DocumentOut, DocumentPage, GetQuery,
    PageQuery, UpsertRequest, UpsertResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{CollectionPath, DocumentPath};
use crate::limits::JsonBody;

fn check_id(id: &str, limits: &LimitsConfig) -> Result<(), ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_request("document id must not be empty"));
    }
    if id.len() > limits.max_id_bytes {
        return Err(ApiError::bad_request(format!(
            "document id is {} bytes; the limit is {}",
            id.len(),
            limits.max_id_bytes
        )));
    }
    Ok(())
}

/// Checks a batch and turns it into engine documents; those without a vector are
/// embedded later, so every size limit is enforced here, before any model runs.
/// Nothing is written unless every document passes.
pub fn prepare(docs: Vec<DocumentIn>, limits: &LimitsConfig) -> Result<Vec<NewDocument>, ApiError> {
    if docs.len() > limits.max_batch {
        return Err(ApiError::too_large(format!(
            "batch holds {} documents; the limit is {}",
            docs.len(),
            limits.max_batch
        )));
    }
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            check_id(&d.id, limits).map_err(|e| at(i, e))?;
            if d.text.len() > limits.max_text_bytes {
                return Err(at(
                    i,
                    ApiError::too_large(format!(
                        "text is {} bytes; the limit is {}",
                        d.text.len(),
                        limits.max_text_bytes
                    )),
                ));
            }
            let finite = d
                .vector
                .as_ref()
                .map(|v| v.iter().position(|x| !x.is_finite()));
            if let Some(Some(j)) = finite {
                return Err(at(
                    i,
                    ApiError::bad_request(format!("vector component {j} is not a finite number")),
                ));
            }
            Ok(NewDocument {
                id: d.id,
                text: d.text,
                metadata: d.metadata,
                vector: d.vector,
            })
        })
        .collect()
}

/// Prefixes an error with the index of the document that caused it.
fn at(i: usize, mut e: ApiError) -> ApiError {
    e.message = format!("documents[{i}]: {}", e.message);
    e
}

/// Insert or replace documents.
#[utoipa::path(post, path = "/collections/{name}/documents", tag = "documents",
    params(("name" = String, Path)),
    request_body = UpsertRequest,
    responses((status = 200, body = UpsertResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn upsert(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
    JsonBody(req): JsonBody<UpsertRequest>,
) -> Result<Json<UpsertResponse>, ApiError> {
    let docs = prepare(req.documents, &state.limits)?;
    let upserted = docs.len();
    let models = state.models.clone();
    let lsn = state
        .with_collection(&name, move |c| {
            let config = c.config();
            if config.embedding_model.is_none() {
                if let Some(i) = docs.iter().position(|d| d.vector.is_none()) {
                    return Err(at(
                        i,
                        ApiError::unprocessable(
                            "vector is required: this collection has no embedding_model",
                        ),
                    ));
                }
            }
            // Embedding first, then one upsert: the WAL record carries the vectors.
            let docs = embed_documents(&models, &config, docs)?;
            Ok(c.upsert(docs)?)
        })
        .await?;
    Ok(Json(UpsertResponse { lsn, upserted }))
}

/// Documents per page when the request names no `limit`.
const DEFAULT_PAGE: usize = 50;
/// The largest page.
const MAX_PAGE: usize = 1000;

/// List documents page by page, in byte order of their ids.
#[utoipa::path(get, path = "/collections/{name}/documents", tag = "documents",
    params(("name" = String, Path), PageQuery),
    responses((status = 200, body = DocumentPage), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn page(
    State(state): State<AppState>,
    CollectionPath(name): CollectionPath,
    Query(q): Query<PageQuery>,
) -> Result<Json<DocumentPage>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let page = state
        .with_collection(&name, move |c| Ok(c.page(q.after.as_deref(), limit)?))
        .await?;
    Ok(Json(DocumentPage {
        documents: page
            .documents
            .into_iter()
            .map(|d| DocumentBrief {
                id: d.id,
                text: d.text,
                metadata: d.metadata,
            })
            .collect(),
        next: page.next,
    }))
}

/// Fetch one document.
#[utoipa::path(get, path = "/collections/{name}/documents/{id}", tag = "documents",
    params(("name" = String, Path), ("id" = String, Path), GetQuery),
    responses((status = 200, body = DocumentOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    DocumentPath { name, id }: DocumentPath,
    Query(q): Query<GetQuery>,
) -> Result<Json<DocumentOut>, ApiError> {
    check_id(&id, &state.limits)?;
    let doc = state
        .with_collection(&name, move |c| {
            c.get(&id)?
                .ok_or_else(|| ApiError::not_found(format!("document {id:?}")))
        })
        .await?;
    let chunks = q.chunks.then(|| {
        document_chunks(&doc)
            .into_iter()
            .map(ChunkOut::from)
            .collect()
    });
    Ok(Json(DocumentOut {
        id: doc.id,
        text: doc.text,
        metadata: doc.metadata,
        vector: doc.vector,
        chunks,
    }))
}

/// Delete one document; 404 (and nothing written) when it does not exist.
#[utoipa::path(delete, path = "/collections/{name}/documents/{id}", tag = "documents",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeleteResponse), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    DocumentPath { name, id }: DocumentPath,
) -> Result<Json<DeleteResponse>, ApiError> {
    check_id(&id, &state.limits)?;
    let lsn = state
        .with_collection(&name, move |c| {
            if c.get(&id)?.is_none() {
                return Err(ApiError::not_found(format!("document {id:?}")));
            }
            Ok(c.delete(&[id])?)
        })
        .await?;
    Ok(Json(DeleteResponse { lsn, deleted: true }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str, vector: Option<Vec<f32>>) -> DocumentIn {
        DocumentIn {
            id: id.into(),
            text: text.into(),
            metadata: Default::default(),
            vector,
        }
    }

    #[test]
    fn batch_checks() {
        let limits = LimitsConfig {
            max_batch: 2,
            max_text_bytes: 4,
            max_id_bytes: 3,
            ..LimitsConfig::default()
        };
        let ok = prepare(vec![doc("a", "abcd", Some(vec![1.0]))], &limits).unwrap();
        assert_eq!(ok[0].id, "a");
        let no_vector = prepare(vec![doc("a", "abcd", None)], &limits).unwrap();
        assert_eq!(no_vector[0].vector, None);
        let v = || Some(vec![1.0]);
        let cases = [
            (
                vec![doc("a", "", v()), doc("b", "", v()), doc("c", "", v())],
                413,
            ),
            (vec![doc("a", "abcde", v())], 413),
            (vec![doc("", "", v())], 400),
            (vec![doc("abcd", "", v())], 400),
            (vec![doc("a", "", Some(vec![f32::INFINITY]))], 400),
        ];
        for (batch, status) in cases {
            assert_eq!(prepare(batch, &limits).unwrap_err().status, status);
        }
    }
}
