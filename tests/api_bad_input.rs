//! The bad-input corpus and authentication: every bad request gets its documented 4xx
//! in the error shape, and afterwards the server is healthy with no data lost.

#![allow(clippy::unwrap_used)]

mod common;

use common::{create, doc, raw, request, spawn, upsert, Server};
use serde_json::{json, Value};

const LIMITS: [(&str, &str); 7] = [
    ("QUIVER_LIMITS_MAX_BODY_BYTES", "65536"),
    ("QUIVER_LIMITS_MAX_BATCH", "8"),
    ("QUIVER_LIMITS_MAX_TEXT_BYTES", "1000"),
    ("QUIVER_LIMITS_MAX_TOP_K", "100"),
    ("QUIVER_LIMITS_MAX_JSON_DEPTH", "10"),
    ("QUIVER_LIMITS_MAX_FILTER_DEPTH", "3"),
    ("QUIVER_LIMITS_MAX_FILTER_CONDITIONS", "40"),
];

/// A raw request with a body and the given content type.
fn raw_post(s: &Server, path: &str, content_type: &str, body: &[u8]) -> common::Resp {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    raw(&s.addr, &bytes)
}

fn raw_get(s: &Server, path: &str) -> common::Resp {
    raw(
        &s.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn bad_input_corpus_gets_4xx_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(&tmp.path().join("data"), &LIMITS);
    create(&s, "c", 3);
    let docs: Vec<Value> = (0..5).map(|i| doc(&format!("d{i}"), i, 3)).collect();
    upsert(&s, "c", docs);
    let docs_path = "/collections/c/documents";
    let query_path = "/collections/c/query";

    let post = |path: &str, body: Value| s.req("POST", path, Some(&body));
    let one = |d: Value| json!({"documents": [d]});
    // (what, response, expected status)
    let mut cases: Vec<(&str, common::Resp, u16)> = vec![
        (
            "wrong vector length",
            post(docs_path, one(json!({"id": "n", "vector": [1.0, 2.0]}))),
            400,
        ),
        (
            "empty vector",
            post(docs_path, one(json!({"id": "n", "vector": []}))),
            400,
        ),
        (
            "string in vector",
            post(
                docs_path,
                one(json!({"id": "n", "vector": [1.0, "x", 2.0]})),
            ),
            400,
        ),
        (
            "missing vector",
            post(docs_path, one(json!({"id": "n", "text": "t"}))),
            422,
        ),
        (
            "empty id",
            post(docs_path, one(json!({"id": "", "vector": [1.0, 2.0, 3.0]}))),
            400,
        ),
        (
            "unknown field",
            post(
                docs_path,
                one(json!({"id": "n", "vector": [1.0, 2.0, 3.0], "vectr": 1})),
            ),
            400,
        ),
        (
            "text too long",
            post(
                docs_path,
                one(json!({"id": "n", "text": "x".repeat(1001), "vector": [1.0, 2.0, 3.0]})),
            ),
            413,
        ),
        (
            "batch over limit",
            post(
                docs_path,
                json!({"documents": (0..9).map(|i| doc(&format!("b{i}"), i, 3)).collect::<Vec<_>>()}),
            ),
            413,
        ),
        (
            "bad doc after good ones",
            post(
                docs_path,
                json!({"documents": [doc("g1", 1, 3), {"id": "g2", "vector": [1.0]}]}),
            ),
            400,
        ),
        (
            "unknown collection",
            post("/collections/nope/documents", one(doc("n", 1, 3))),
            404,
        ),
        (
            "query unknown collection",
            post(
                "/collections/nope/query",
                json!({"vector": [1.0, 2.0, 3.0]}),
            ),
            404,
        ),
        (
            "top_k 0",
            post(query_path, json!({"vector": [1.0, 2.0, 3.0], "top_k": 0})),
            400,
        ),
        (
            "top_k huge",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "top_k": 1_000_000_000u64}),
            ),
            400,
        ),
        (
            "top_k negative",
            post(query_path, json!({"vector": [1.0, 2.0, 3.0], "top_k": -1})),
            400,
        ),
        (
            "query wrong dim",
            post(query_path, json!({"vector": [1.0, 2.0]})),
            400,
        ),
        ("query nothing", post(query_path, json!({})), 400),
        (
            "query bad mode",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "mode": "magic"}),
            ),
            400,
        ),
        (
            "query bad filter",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "filter": {"must": [{"key": "n", "range": {"gt": "x"}}]}}),
            ),
            400,
        ),
        (
            "query filter too deep",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "filter": {"must": [{"must": [{"must": [{"must": [{"key": "n", "match": 1}]}]}]}]}}),
            ),
            400,
        ),
        (
            "query filter too wide",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "filter": {"must": [{"key": "n", "any": (0..50).collect::<Vec<_>>()}]}}),
            ),
            400,
        ),
        (
            "query text without model",
            post(query_path, json!({"text": "hi", "mode": "dense"})),
            422,
        ),
        (
            "query rerank without model",
            post(
                query_path,
                json!({"vector": [1.0, 2.0, 3.0], "rerank": true}),
            ),
            422,
        ),
        (
            "create without dim",
            s.req("PUT", "/collections/nodim", Some(&json!({}))),
            400,
        ),
        (
            "create dim 0",
            s.req("PUT", "/collections/zero", Some(&json!({"dim": 0}))),
            400,
        ),
        (
            "create bad distance",
            s.req(
                "PUT",
                "/collections/bad",
                Some(&json!({"dim": 3, "distance": "manhattan"})),
            ),
            400,
        ),
        (
            "create bad hnsw",
            s.req(
                "PUT",
                "/collections/bad",
                Some(&json!({"dim": 3, "hnsw": {"m": 1}})),
            ),
            400,
        ),
        (
            "create index_dim > dim",
            s.req(
                "PUT",
                "/collections/bad",
                Some(&json!({"dim": 3, "index_dim": 4})),
            ),
            400,
        ),
        (
            "create with model",
            s.req(
                "PUT",
                "/collections/m",
                Some(&json!({"embedding_model": "Qwen/Qwen3-Embedding-0.6B"})),
            ),
            422,
        ),
        (
            "create with reranker",
            s.req(
                "PUT",
                "/collections/m",
                Some(&json!({"dim": 3, "reranker_model": "Qwen/Qwen3-Reranker-0.6B"})),
            ),
            422,
        ),
        (
            "get missing doc",
            s.req("GET", "/collections/c/documents/none", None),
            404,
        ),
        ("unknown route", s.req("GET", "/collectionz", None), 404),
    ];
    // Non-finite numbers: JSON cannot say NaN; 1e999 overflows, 1e39 overflows f32.
    cases.push((
        "1e999 in vector",
        raw_post(
            &s,
            docs_path,
            "application/json",
            br#"{"documents":[{"id":"n","vector":[1e999,0,0]}]}"#,
        ),
        400,
    ));
    cases.push((
        "1e39 in vector",
        raw_post(
            &s,
            docs_path,
            "application/json",
            br#"{"documents":[{"id":"n","vector":[1e39,0,0]}]}"#,
        ),
        400,
    ));
    cases.push((
        "NaN literal",
        raw_post(
            &s,
            docs_path,
            "application/json",
            br#"{"documents":[{"id":"n","vector":[NaN,0,0]}]}"#,
        ),
        400,
    ));
    cases.push((
        "1e39 in query",
        raw_post(
            &s,
            query_path,
            "application/json",
            br#"{"vector":[1e39,0,0]}"#,
        ),
        400,
    ));
    // Malformed bodies.
    cases.push((
        "malformed JSON",
        raw_post(
            &s,
            docs_path,
            "application/json",
            br#"{"documents": [{"id": "#,
        ),
        400,
    ));
    cases.push((
        "empty body",
        raw_post(&s, docs_path, "application/json", b""),
        400,
    ));
    cases.push((
        "invalid UTF-8",
        raw_post(
            &s,
            docs_path,
            "application/json",
            b"{\"documents\":[{\"id\":\"\xff\xfe\",\"vector\":[1,2,3]}]}",
        ),
        400,
    ));
    cases.push((
        "wrong content type",
        raw_post(&s, docs_path, "text/plain", br#"{"documents":[]}"#),
        415,
    ));
    let deep = format!(
        r#"{{"documents":[{{"id":"n","vector":[1,2,3],"metadata":{{"a":{}}}}}]}}"#,
        nested(20)
    );
    cases.push((
        "JSON nested too deep",
        raw_post(&s, docs_path, "application/json", deep.as_bytes()),
        400,
    ));
    let very_deep = nested(30_000);
    cases.push((
        "JSON nested 30k deep",
        raw_post(&s, query_path, "application/json", very_deep.as_bytes()),
        400,
    ));
    let big = format!(
        r#"{{"documents":[{{"id":"n","text":"{}","vector":[1,2,3]}}]}}"#,
        "x".repeat(70_000)
    );
    cases.push((
        "body over limit",
        raw_post(&s, docs_path, "application/json", big.as_bytes()),
        413,
    ));
    // A body with no Content-Length (chunked) over the limit is cut off while reading.
    let mut chunked = b"POST /collections/c/documents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    cases.push(("chunked body over limit", raw(&s.addr, &chunked), 413));
    // Invalid names, in the path, percent-encoded or not.
    let long = "x".repeat(65);
    for (what, path) in [
        ("name '.'", "/collections/."),
        ("name '..'", "/collections/.."),
        ("name %2e%2e", "/collections/%2e%2e"),
        ("name a%2Fb", "/collections/a%2Fb"),
        ("name with NUL", "/collections/a%00b"),
        ("name 65 chars", &format!("/collections/{long}")),
        ("name invalid UTF-8", "/collections/%ff"),
        ("name with space", "/collections/a%20b"),
    ] {
        let r = raw(
            &s.addr,
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{{\"dim\":3}}").as_bytes(),
        );
        cases.push((what, r, 400));
        let r = raw_get(&s, path);
        // "." and ".." never reach the router as names: either 400 or no route.
        let expect = if r.status == 404 { 404 } else { 400 };
        cases.push((what, r, expect));
    }
    cases.push((
        "doc path a/b",
        raw_get(&s, "/collections/a/b/documents/x"),
        404,
    ));

    for (what, resp, status) in &cases {
        assert_eq!(resp.status, *status, "{what}: {}", resp.text());
        let v: Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", resp.text()));
        assert!(v["error"]["code"].is_string(), "{what}: {v}");
        assert!(v["error"]["message"].is_string(), "{what}: {v}");
    }

    // Nothing was written by any of them, and the server is fine.
    s.assert_healthy("c", 5);
    for i in 0..5 {
        let r = s.req("GET", &format!("/collections/c/documents/d{i}"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["metadata"]["n"], i);
    }
    for id in ["n", "g1", "b0"] {
        s.req("GET", &format!("/collections/c/documents/{id}"), None)
            .expect_error(404);
    }
    let list = s.req("GET", "/collections", None).json();
    assert_eq!(list["collections"].as_array().unwrap().len(), 1, "{list}");
    assert!(!tmp.path().join("data/collections/nodim").exists());
    // Good requests still work.
    upsert(&s, "c", vec![doc("after", 9, 3)]);
    s.assert_healthy("c", 6);
}

#[test]
fn keys_are_checked_before_anything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(
        &tmp.path().join("data"),
        &[
            ("QUIVER_SERVER_API_KEYS", "rw-secret"),
            ("QUIVER_SERVER_READ_ONLY_KEYS", "ro-secret"),
        ],
    );
    let rw = Some("rw-secret");
    let put = request(
        &s.addr,
        "PUT",
        "/collections/c",
        Some(&json!({"dim": 3})),
        rw,
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let up = request(
        &s.addr,
        "POST",
        "/collections/c/documents",
        Some(&json!({"documents": [doc("a", 1, 3)]})),
        rw,
    );
    assert_eq!(up.status, 200, "{}", up.text());

    let query = json!({"vector": [1.0, 2.0, 3.0]});
    let upsert_body = json!({"documents": [doc("b", 2, 3)]});
    let dim = json!({"dim": 3});
    let mutating: [(&str, &str, Option<&Value>); 5] = [
        ("PUT", "/collections/d", Some(&dim)),
        ("DELETE", "/collections/c", None),
        ("POST", "/collections/c/documents", Some(&upsert_body)),
        ("DELETE", "/collections/c/documents/a", None),
        ("PUT", "/collections/c", Some(&dim)),
    ];
    let reading: [(&str, &str, Option<&Value>); 6] = [
        ("GET", "/collections", None),
        ("GET", "/collections/c", None),
        ("GET", "/collections/c/documents/a", None),
        ("POST", "/collections/c/query", Some(&query)),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
    ];
    for (m, p, b) in mutating.iter().chain(reading.iter()) {
        let r = request(&s.addr, m, p, *b, None);
        assert_eq!(r.expect_error(401), "unauthorized", "{m} {p}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = request(&s.addr, m, p, *b, Some("wrong"));
        assert_eq!(r.expect_error(401), "unauthorized", "{m} {p}");
        let r = request(&s.addr, m, p, *b, Some("rw-secre"));
        assert_eq!(r.expect_error(401), "unauthorized", "{m} {p}");
    }
    for (m, p, b) in &mutating {
        let r = request(&s.addr, m, p, *b, Some("ro-secret"));
        assert_eq!(r.expect_error(403), "forbidden", "{m} {p}");
    }
    for (m, p, b) in &reading {
        let r = request(&s.addr, m, p, *b, Some("ro-secret"));
        assert_eq!(r.status, 200, "{m} {p}: {}", r.text());
    }
    // Auth comes before body checks: a huge or broken body without a key is a 401.
    let r = raw(&s.addr, b"POST /collections/c/documents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{");
    r.expect_error(401);
    let r = raw(&s.addr, b"PUT /collections/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\n{");
    r.expect_error(401);
    // Probes stay open.
    assert_eq!(request(&s.addr, "GET", "/health", None, None).status, 200);
    assert_eq!(request(&s.addr, "GET", "/ready", None, None).status, 200);
    // Nothing changed.
    let c = request(&s.addr, "GET", "/collections/c", None, rw).json();
    assert_eq!(c["count"], 1);
    let l = request(&s.addr, "GET", "/collections", None, rw).json();
    assert_eq!(l["collections"].as_array().unwrap().len(), 1);
}

#[test]
fn refuses_public_listen_without_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .current_dir(tmp.path())
        .env_remove("QUIVER_SERVER_API_KEYS")
        .env_remove("QUIVER_SERVER_ALLOW_INSECURE_PUBLIC")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen"), "{err}");
    assert!(out.stdout.is_empty());
    // With a key it starts; the explicit opt-out also lets it start.
    for env in [
        ("QUIVER_SERVER_API_KEYS", "k"),
        ("QUIVER_SERVER_ALLOW_INSECURE_PUBLIC", "true"),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(&data)
            .current_dir(tmp.path())
            .env(env.0, env.1)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            line.starts_with("listening on http://0.0.0.0:"),
            "{env:?}: {line:?}"
        );
    }
}

/// Filters over HTTP: unknown keys and values of another type match nothing (no error),
/// and a range bound that is not a number is a 400 that names the key.
#[test]
fn filters_answer_unknown_keys_and_type_mismatches_with_no_hits() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spawn(&tmp.path().join("data"), &LIMITS);
    create(&s, "f", 3);
    upsert(
        &s,
        "f",
        (0..6).map(|i| doc(&format!("d{i}"), i, 3)).collect(),
    );
    let hits = |filter: Value| {
        let r = s.req(
            "POST",
            "/collections/f/query",
            Some(&json!({"vector": [1.0, 2.0, 3.0], "top_k": 10, "filter": filter})),
        );
        assert_eq!(r.status, 200, "{filter}: {}", r.text());
        r.json()["hits"].as_array().unwrap().len()
    };
    assert_eq!(hits(json!({"must": [{"key": "nowhere", "match": 1}]})), 0);
    assert_eq!(hits(json!({"must": [{"key": "n.deeper", "match": 1}]})), 0);
    // `n` holds integers and `tag` strings: a test of the other type matches nothing.
    assert_eq!(hits(json!({"must": [{"key": "n", "match": "1"}]})), 0);
    assert_eq!(
        hits(json!({"must": [{"key": "tag", "range": {"gte": 0}}]})),
        0
    );
    assert_eq!(hits(json!({"must": [{"key": "tag", "match": "even"}]})), 3);
    assert_eq!(
        hits(json!({"must_not": [{"key": "nowhere", "match": 1}]})),
        6
    );
    let r = s.req(
        "POST",
        "/collections/f/query",
        Some(&json!({"vector": [1.0, 2.0, 3.0], "filter": {"must": [{"key": "price", "range": {"lt": "cheap"}}]}})),
    );
    assert_eq!(r.status, 400);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("\"price\""), "{message}");
    s.assert_healthy("f", 6);
}
