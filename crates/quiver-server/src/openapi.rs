//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the
//! handlers' `#[utoipa::path]` annotations and the DTOs' schemas.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::routes::{collections, documents, health, installed, models, query, snapshots};

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Quiver", description = "A vector database with built-in embedding"),
    paths(
        health::health,
        health::ready,
        health::metrics,
        collections::list,
        collections::create,
        collections::get,
        collections::update,
        collections::delete,
        collections::flush,
        documents::upsert,
        documents::page,
        documents::get,
        documents::delete,
        query::query,
        models::embed_tei,
        models::rerank_tei,
        models::root_tei,
        models::embeddings_openai,
        installed::list,
        snapshots::create,
        snapshots::list,
        snapshots::download,
        snapshots::delete,
        snapshots::restore,
        snapshots::create_db,
        snapshots::list_db,
        snapshots::download_db,
        snapshots::delete_db,
        snapshots::restore_db,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// Declares the bearer-key scheme the `security` requirement names.
#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The description as JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":{{\"code\":\"internal\",\"message\":\"{e}\"}}}}"))
}

pub(crate) async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/health", "get"),
            ("/ready", "get"),
            ("/metrics", "get"),
            ("/collections", "get"),
            ("/collections/{name}", "put"),
            ("/collections/{name}", "get"),
            ("/collections/{name}", "delete"),
            ("/collections/{name}/documents", "post"),
            ("/collections/{name}/documents/{id}", "get"),
            ("/collections/{name}/documents/{id}", "delete"),
            ("/collections/{name}/query", "post"),
            ("/embed", "post"),
            ("/rerank", "post"),
            ("/v1/embeddings", "post"),
            ("/collections/{name}/snapshots", "post"),
            ("/collections/{name}/snapshots", "get"),
            ("/collections/{name}/snapshots/{snapshot}", "get"),
            ("/collections/{name}/snapshots/{snapshot}", "delete"),
            ("/collections/{name}/snapshots/restore", "post"),
            ("/snapshots", "post"),
            ("/snapshots/restore", "post"),
            ("/snapshots/{snapshot}", "get"),
        ] {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in [
            "QueryRequest",
            "UpsertRequest",
            "CreateCollection",
            "Bm25Params",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(s), "schema {s} missing");
        }
    }
}
