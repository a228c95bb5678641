//! Request limits that are checked before any real work: body size (from
//! `Content-Length` before reading, and again while reading), JSON nesting depth (on
//! the raw bytes, before serde builds anything), UTF-8 validity, and the depth of
//! metadata filters. Per-field limits (batch size, text length, top_k) are checked by
//! the routes against [`LimitsConfig`].

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::app::AppState;
use crate::config::LimitsConfig;
use crate::error::ApiError;

/// Middleware: refuses a body whose declared length is over the limit, and sheds load
/// past `max_concurrent_requests`, before the handler runs.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Snapshot uploads stream to disk and have their own, larger bound.
    let max = if req.uri().path().ends_with("/snapshots/restore") {
        state.limits.max_snapshot_bytes
    } else {
        state.limits.max_body_bytes as u64
    };
    if let Some(len) = declared_length(req.headers()) {
        if len > max {
            return ApiError::too_large(format!("request body is larger than {max} bytes"))
                .into_response();
        }
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry shortly",
        )
        .into_response();
    };
    next.run(req).await
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_too_large(max: usize) -> ApiError {
    ApiError::too_large(format!("request body is larger than {max} bytes"))
}

/// A JSON request body, read within the size limit, checked for content type, UTF-8
/// and nesting depth, then deserialized. Every failure is an [`ApiError`].
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        let bytes = read_limited(req, state.limits.max_body_bytes).await?;
        let value = parse_json(&bytes, &state.limits)?;
        Ok(JsonBody(value))
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {ct:?}"),
        ))
    }
}

/// The whole body, refused with 413 once it passes `max` bytes.
pub(crate) async fn read_limited(req: Request, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = req.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("could not read body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(body_too_large(max));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// UTF-8, depth, then serde; in that order so a hostile body is refused cheaply.
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    limits: &LimitsConfig,
) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::bad_request(format!(
            "request body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )));
    }
    let depth = json_depth(bytes);
    if depth > limits.max_json_depth {
        return Err(ApiError::bad_request(format!(
            "JSON nests {depth} levels deep; the limit is {}",
            limits.max_json_depth
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(format!("invalid JSON: {e}")))
}

/// Deepest nesting of arrays and objects in `bytes`, ignoring brackets inside
/// strings. Works on malformed input too (it never fails, only counts).
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Nesting of `must` / `should` / `must_not` groups in a filter (the top level is 1).
pub fn filter_depth(filter: &Value) -> usize {
    let Value::Object(map) = filter else {
        return 0;
    };
    let mut deepest = 0;
    for key in ["must", "should", "must_not"] {
        if let Some(Value::Array(items)) = map.get(key) {
            for item in items {
                deepest = deepest.max(filter_depth(item));
            }
        }
    }
    let is_group = ["must", "should", "must_not"]
        .iter()
        .any(|k| map.contains_key(*k));
    deepest + usize::from(is_group)
}

/// Conditions in a filter, groups and nested ones included, each value of an `any`
/// counting as one: what a filter costs to compile grows with it.
pub fn filter_conditions(filter: &Value) -> usize {
    let Value::Object(map) = filter else {
        return 0;
    };
    let lists = ["must", "should", "must_not"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_array))
        .flatten()
        .map(|item| 1 + filter_conditions(item))
        .sum::<usize>();
    let values = map
        .get("any")
        .and_then(Value::as_array)
        .map_or(0, |v| v.len().saturating_sub(1));
    lists + values
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(b"1"), 0);
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(json_depth(br#"{"a":"[[[[{{{{\"[["}"#), 1);
        assert_eq!(json_depth(&[b'['; 100]), 100);
        assert_eq!(json_depth(b"]]]]["), 1);
    }

    #[test]
    fn parse_rejects_in_order() {
        let limits = LimitsConfig {
            max_json_depth: 3,
            ..LimitsConfig::default()
        };
        let bad_utf8 = parse_json::<Value>(b"{\"a\":\"\xff\"}", &limits).unwrap_err();
        assert!(bad_utf8.message.contains("UTF-8"), "{}", bad_utf8.message);
        let deep = parse_json::<Value>(b"[[[[1]]]]", &limits).unwrap_err();
        assert!(deep.message.contains("4 levels"), "{}", deep.message);
        let malformed = parse_json::<Value>(b"{\"a\":", &limits).unwrap_err();
        assert_eq!(malformed.code, "invalid_json");
        let ok: Value = parse_json(b"[[[1]]]", &limits).unwrap();
        assert_eq!(ok, json!([[[1]]]));
    }

    #[test]
    fn filter_conditions_count_every_test_and_any_value() {
        assert_eq!(filter_conditions(&json!({})), 0);
        let f = json!({"must": [{"key": "a", "match": 1}, {"key": "b", "any": [1, 2, 3]}],
            "should": [{"must_not": [{"key": "c", "range": {"gt": 1}}]}]});
        assert_eq!(filter_conditions(&f), 2 + 2 + 2);
    }

    #[test]
    fn filter_depth_counts_groups() {
        assert_eq!(filter_depth(&json!({})), 0);
        assert_eq!(
            filter_depth(&json!({"must": [{"key": "a", "match": 1}]})),
            1
        );
        let nested = json!({"must": [{"should": [{"must_not": [{"key": "a", "match": 1}]}]}]});
        assert_eq!(filter_depth(&nested), 3);
    }
}
