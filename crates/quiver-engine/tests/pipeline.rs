//! `QueryPipeline` on a collection without models: mode choice, the refusals that
//! depend on the collection's models (and their order), `exact` passed through, and
//! the engine's timings reported. Embedding and reranking with real model files are
//! covered by the HTTP tests (`tests/api_models.rs` at the workspace root).

#![allow(clippy::unwrap_used)]

use quiver_core::{CollectionConfig, Document, Metadata, SyncPolicy};
use quiver_embed::{ModelRegistry, ServiceConfig};
use quiver_engine::{
    CollectionOptions, Database, DbOptions, EngineError, QueryMode, QueryPipeline, RerankRequest,
    SearchRequest,
};

fn docs() -> Vec<Document> {
    ["red apple", "green pear", "red cherry", "blue plum"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            Document {
                chunks: Vec::new(),
                id: format!("d{i}"),
                text: (*t).into(),
                metadata: Metadata::new(),
                vector: v,
            }
        })
        .collect()
}

#[test]
fn pipeline_chooses_modes_and_refuses_what_the_collection_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        collection: CollectionOptions {
            sync: SyncPolicy::Never,
            ..CollectionOptions::default()
        },
    };
    let db = Database::open(&dir.path().join("db"), opts).unwrap();
    let c = db
        .create_collection("plain", CollectionConfig::new(4))
        .unwrap();
    c.upsert(docs()).unwrap();
    c.seal().unwrap();
    c.commit_text().unwrap();
    let models = ModelRegistry::new(dir.path(), ServiceConfig::default());
    let p = QueryPipeline::new(&models);

    // Text alone on a collection without a model: sparse.
    let text = SearchRequest {
        text: Some("red".into()),
        ..SearchRequest::new(10)
    };
    let r = p.run(&c, &text).unwrap();
    let mut ids: Vec<String> = r.hits.iter().map(|h| h.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["d0", "d2"]);
    assert_eq!(r.timings.engine.dense, std::time::Duration::ZERO);

    // A vector alone: dense, exact or not, cut to top_k.
    for exact in [false, true] {
        let dense = SearchRequest {
            vector: Some(vec![0.1, 0.0, 1.0, 0.0]),
            exact,
            ..SearchRequest::new(2)
        };
        let r = p.run(&c, &dense).unwrap();
        assert_eq!(r.hits.len(), 2);
        assert_eq!(r.hits[0].id, "d2");
        assert!(r.timings.engine.dense_index > std::time::Duration::ZERO);
    }

    // Dense from text needs an embedding model: unsupported, not bad input.
    let dense_text = SearchRequest {
        mode: Some(QueryMode::Dense),
        ..text.clone()
    };
    assert!(matches!(
        p.run(&c, &dense_text),
        Err(EngineError::Unsupported(_))
    ));
    // Rerank needs a reranker; that is checked before the missing query text.
    let rerank = SearchRequest {
        vector: Some(vec![1.0, 0.0, 0.0, 0.0]),
        rerank: Some(RerankRequest::default()),
        ..SearchRequest::new(2)
    };
    assert!(matches!(
        p.run(&c, &rerank),
        Err(EngineError::Unsupported(_))
    ));
    // Malformed requests are bad input before anything runs.
    let nothing = SearchRequest::new(3);
    assert!(p.run(&c, &nothing).unwrap_err().is_invalid_input());

    // A reranker that is not installed: the model error, and the search depth rule.
    let mut with_reranker = CollectionConfig::new(4);
    with_reranker.reranker_model = Some("test/not-installed".into());
    let r = db.create_collection("rr", with_reranker).unwrap();
    r.upsert(docs()).unwrap();
    r.commit_text().unwrap();
    let no_text = SearchRequest {
        vector: Some(vec![1.0, 0.0, 0.0, 0.0]),
        rerank: Some(RerankRequest::default()),
        ..SearchRequest::new(2)
    };
    assert!(p.run(&r, &no_text).unwrap_err().is_invalid_input());
    let with_text = SearchRequest {
        text: Some("red".into()),
        ..no_text
    };
    assert!(matches!(p.run(&r, &with_text), Err(EngineError::Model(_))));
}
