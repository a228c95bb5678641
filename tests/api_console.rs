//! What the web console reads, on a real server process: the page and its files at
//! `/console` (open without a key, with their content types), documents page by page in
//! id order across the memtable and sealed segments, the installed models with their
//! kinds, and each collection's models, segments and disk size in the listing.

#![allow(clippy::unwrap_used)]

mod common;

use common::{doc, install, request, spawn};
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_console_and_the_routes_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    install(&data, "bert");
    let s = spawn(&data, &[("QUIVER_SERVER_API_KEYS", "secret")]);
    let key = Some("secret");
    let call =
        |method: &str, path: &str, body: Option<&Value>| request(&s.addr, method, path, body, key);

    // The page and its files need no key; the API still does.
    for path in ["/console", "/console/"] {
        let r = request(&s.addr, "GET", path, None, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(r.text().contains("<html") || r.text().contains("<!doctype"));
    }
    request(&s.addr, "GET", "/console/no-such-file.js", None, None).expect_error(404);
    request(&s.addr, "GET", "/collections", None, None).expect_error(401);

    // Documents page by page, across a sealed segment and the memtable, in id order.
    let r = call("PUT", "/collections/docs", Some(&json!({"dim": 4})));
    assert_eq!(r.status, 201, "{}", r.text());
    let first: Vec<Value> = (0..30).map(|i| doc(&format!("d{i:02}"), i, 4)).collect();
    let r = call(
        "POST",
        "/collections/docs/documents",
        Some(&json!({"documents": first})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(call("POST", "/collections/docs/flush", None).status, 200);
    let later: Vec<Value> = (30..45).map(|i| doc(&format!("d{i:02}"), i, 4)).collect();
    let r = call(
        "POST",
        "/collections/docs/documents",
        Some(&json!({"documents": later})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call("DELETE", "/collections/docs/documents/d07", None).status,
        200
    );
    let mut seen = Vec::new();
    let mut path = "/collections/docs/documents?limit=10".to_string();
    loop {
        let page = call("GET", &path, None).json();
        let got = ids(&page);
        assert!(got.len() <= 10);
        assert!(
            page["documents"][0].get("vector").is_none(),
            "pages carry no vectors"
        );
        seen.extend(got);
        match page["next"].as_str() {
            Some(next) => path = format!("/collections/docs/documents?limit=10&after={next}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..45)
        .filter(|&i| i != 7)
        .map(|i| format!("d{i:02}"))
        .collect();
    assert_eq!(seen, want);
    let page = call("GET", "/collections/docs/documents?after=d40", None).json();
    assert_eq!(ids(&page), ["d41", "d42", "d43", "d44"]);
    assert_eq!(page["next"], Value::Null);
    call("GET", "/collections/docs/documents?limit=0", None).expect_error(400);
    call("GET", "/collections/docs/documents?limit=5000", None).expect_error(400);
    call("GET", "/collections/nope/documents", None).expect_error(404);

    // Installed models with their kind, width and size.
    let models = call("GET", "/models", None).json();
    let bert = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "test/bert")
        .unwrap()
        .clone();
    assert_eq!(bert["kind"], "embedding");
    assert_eq!(bert["dim"], 32);
    assert!(bert["bytes"].as_u64().unwrap() > 0);

    // The listing names each collection's models, segments and size on disk.
    let r = call(
        "PUT",
        "/collections/texts",
        Some(&json!({"embedding_model": "test/bert"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let list = call("GET", "/collections", None).json();
    let by_name = |n: &str| {
        list["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    let docs = by_name("docs");
    assert_eq!(docs["embedding_model"], Value::Null);
    assert_eq!(docs["segments"], 1);
    assert!(docs["disk_bytes"].as_u64().unwrap() > 0);
    assert_eq!(by_name("texts")["embedding_model"], "test/bert");
    let info = call("GET", "/collections/docs", None).json();
    assert!(info["disk_bytes"].as_u64().unwrap() > 0);
}
