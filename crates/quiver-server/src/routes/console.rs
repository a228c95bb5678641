//! `GET /console`: the web console, a static page (`crates/quiver-server/console/`)
//! compiled into the binary, so a server needs no files beside it and the browser
//! fetches nothing from elsewhere. The page talks to the public API like any client,
//! with the key the user enters, so the files themselves are served without one.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

use crate::error::ApiError;

static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/console");

/// `GET /console` and `GET /console/`: the page.
pub async fn index() -> Response {
    asset("index.html")
}

/// `GET /console/{file}`: a script, style sheet or other file of the page.
pub async fn file(Path(file): Path<String>) -> Response {
    asset(&file)
}

fn asset(name: &str) -> Response {
    let Some(f) = ASSETS.get_file(name) else {
        return ApiError::not_found(format!("console has no file {name:?}")).into_response();
    };
    let mut resp = f.contents().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    // The files change with the binary; a reload after an upgrade must not mix versions.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_types() {
        assert!(ASSETS.get_file("index.html").is_some());
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a/b.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
