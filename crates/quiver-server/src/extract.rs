//! Path extractors that validate before the handler (and its body extractor) runs:
//! a bad path (invalid percent-encoding, non-UTF-8) or an invalid collection name is a
//! JSON 400 before a byte of the body is read or the name is used for anything.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;

/// `{name}` of a collection route, checked against `^[A-Za-z0-9_-]{1,64}$`.
#[derive(Debug)]
pub struct CollectionPath(pub String);

/// `{name}` and `{id}` of a document route; the name is checked.
#[derive(Debug)]
pub struct DocumentPath {
    pub name: String,
    pub id: String,
}

#[derive(Deserialize)]
struct NameParams {
    name: String,
}

#[derive(Deserialize)]
struct DocParams {
    name: String,
    id: String,
}

async fn params<T, S>(parts: &mut Parts, state: &S) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    match Path::<T>::from_request_parts(parts, state).await {
        Ok(Path(v)) => Ok(v),
        Err(e) => Err(ApiError::bad_request(format!(
            "invalid path: {}",
            e.body_text()
        ))),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CollectionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let p: NameParams = params(parts, state).await?;
        collection_name(&p.name)?;
        Ok(CollectionPath(p.name))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DocumentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let p: DocParams = params(parts, state).await?;
        collection_name(&p.name)?;
        Ok(DocumentPath {
            name: p.name,
            id: p.id,
        })
    }
}

/// Checks a collection name (`^[A-Za-z0-9_-]{1,64}$`) and returns it.
pub fn collection_name(name: &str) -> Result<&str, ApiError> {
    quiver_core::validate_name(name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))?;
    Ok(name)
}
