//! Checks that need the index's insides: scores equal tantivy's own BM25 query to the
//! bit at the default k1 and b, and indexes of the earlier `en` pipeline keep it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use tantivy::query::{BooleanQuery, BoostQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Index};

use super::*;

/// Every (segment, doc) tantivy's BooleanQuery of boosted TermQuerys scores, with its score.
fn tantivy_scores(index: &TextIndex, query: &str) -> HashMap<(usize, DocId), f32> {
    let clauses: Vec<(Occur, Box<dyn Query>)> = index
        .query_terms(query)
        .into_iter()
        .map(|(t, count)| {
            let term = TermQuery::new(t, IndexRecordOption::WithFreqs);
            let q: Box<dyn Query> = if count == 1 {
                Box::new(term)
            } else {
                Box::new(BoostQuery::new(Box::new(term), count as f32))
            };
            (Occur::Should, q)
        })
        .collect();
    let searcher = index.reader.searcher();
    let weight = BooleanQuery::new(clauses)
        .weight(EnableScoring::enabled_from_searcher(&searcher))
        .unwrap();
    let mut out = HashMap::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        weight
            .for_each(segment, &mut |doc, score| {
                out.insert((ord, doc), score);
            })
            .unwrap();
    }
    out
}

fn our_scores(index: &TextIndex, query: &str) -> HashMap<(usize, DocId), f32> {
    let searcher = index.reader.searcher();
    let q = Bm25Query::new(&searcher, index.text, index.query_terms(query), index.bm25).unwrap();
    let mut out = HashMap::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        q.for_each(segment, &mut |doc, score| {
            out.insert((ord, doc), score);
        })
        .unwrap();
    }
    out
}

#[test]
fn default_scores_equal_tantivys_bm25_to_the_bit() {
    let index = TextIndex::in_memory(Analyzer::En).unwrap();
    let words = [
        "wing",
        "flow",
        "boundary",
        "layer",
        "shock",
        "heat",
        "plate",
        "pressure",
        "speed",
        "supersonic",
        "the",
        "of",
        "model",
    ];
    // Lengths up to 200 tokens, past where tantivy's field norms stop being exact.
    for i in 0..300usize {
        let len = 1 + (i * 37) % 200;
        let text: Vec<&str> = (0..len)
            .map(|j| words[(i * 7 + j * j) % words.len()])
            .collect();
        index
            .upsert(&format!("d{i}"), i as u64, &text.join(" "))
            .unwrap();
        // Several segments, and deleted documents that still count in the statistics.
        if i % 100 == 99 {
            index.commit(i as u64).unwrap();
        }
        if i % 17 == 0 && i > 0 {
            index.delete(&format!("d{}", i - 1)).unwrap();
        }
    }
    index.commit(1000).unwrap();
    for query in [
        "wing",
        "boundary layer flow",
        "shock shock heat plate of the wing",
        "supersonic pressure speed model flow flow flow",
        "missing words only",
    ] {
        let theirs = tantivy_scores(&index, query);
        let ours = our_scores(&index, query);
        assert_eq!(ours.len(), theirs.len(), "{query}");
        for (doc, score) in &theirs {
            assert_eq!(ours[doc].to_bits(), score.to_bits(), "{query} {doc:?}");
        }
    }
}

/// An index built with `pipeline` holding `text` as key 1, reopened as an `en` index.
fn reopened_en_index(pipeline: Pipeline, text: &str) -> (tempfile::TempDir, TextIndex) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::create_dir_all(&path).unwrap();
    {
        let index =
            TextIndex::from_index(Index::create_in_dir(&path, schema(pipeline)).unwrap()).unwrap();
        index.upsert("a", 1, text).unwrap();
        index.commit(1).unwrap();
    }
    let index = TextIndex::open_or_create(&path, Analyzer::En).unwrap();
    assert_eq!(index.pipeline, pipeline);
    (dir, index)
}

#[test]
fn an_index_of_the_earlier_en_pipeline_keeps_it() {
    let (dir, index) = reopened_en_index(Pipeline::En1, "John's state-of-the-art wing");
    assert_eq!(index.analyzer(), Analyzer::En);
    // Its documents hold `john` and `s`; the query is split the same way.
    assert_eq!(index.search("John's", 10, None).unwrap()[0].key, 1);
    assert_eq!(Pipeline::En1.tokens("John's"), ["john", "s"]);

    let fresh = TextIndex::open_or_create(&dir.path().join("new"), Analyzer::En).unwrap();
    assert_eq!(fresh.pipeline, Pipeline::En3);
    fresh
        .upsert("b", 2, "John's dogs' state-of-the-art compressors.Dash")
        .unwrap();
    fresh.commit(1).unwrap();
    assert_eq!(fresh.search("john", 10, None).unwrap()[0].key, 2);
    assert_eq!(fresh.search("dog art", 10, None).unwrap()[0].key, 2);
    assert_eq!(fresh.search("compressor", 10, None).unwrap()[0].key, 2);
    // `s` is no longer a word of it.
    assert!(fresh.search("s", 10, None).unwrap().is_empty());
}

#[test]
fn an_index_of_the_en_pipeline_without_period_splits_keeps_it() {
    let (_dir, index) = reopened_en_index(Pipeline::En2, "compressors.Dash");
    // The document holds one joined word, and the query is analyzed the same way.
    assert!(index.search("compressor", 10, None).unwrap().is_empty());
    assert_eq!(
        index.search("compressors.Dash", 10, None).unwrap()[0].key,
        1
    );
    assert_eq!(
        Pipeline::En3.tokens("compressors.Dash U.S.A."),
        ["compressor", "dash", "u.s.a"]
    );
}

#[test]
fn highlights_mark_the_words_that_match_in_characters() {
    let en = TextIndex::in_memory(Analyzer::En).unwrap();
    let text = "Über flows: the Flow separated, and the flowing wake";
    let marked: Vec<String> = en
        .highlighter("flow separation of the wake")
        .mark(text)
        .iter()
        .map(|[a, b]| text.chars().skip(*a).take(b - a).collect())
        .collect();
    // Words with the query's stems match ("flows", "Flow", "flowing"; "separated" and
    // "separation"), stop words ("the", "and") do not.
    assert_eq!(marked, ["flows", "Flow", "separated", "flowing", "wake"]);
    // Offsets count characters: "Über" is 4 characters and 5 bytes.
    assert_eq!(en.highlighter("flow").mark(text)[0], [5, 10]);
    assert!(en.highlighter("the and").mark(text).is_empty());
    assert!(en.highlighter("").mark(text).is_empty());

    let cjk = TextIndex::in_memory(Analyzer::Cjk).unwrap();
    let text = "我们去公园散步，公园很大";
    let got = cjk.highlighter("公园").mark(text);
    // The query's unigrams and bigram mark each run once, merged.
    assert_eq!(got, [[3, 5], [8, 10]]);
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // one passage per call is the point here
fn passages_score_on_the_documents_scale() {
    let index = TextIndex::in_memory(Analyzer::En).unwrap();
    let texts = [
        "shock waves over a supersonic wing",
        "heat transfer through a flat plate",
        "the boundary layer of a wing in supersonic flow",
        "pressure on the plate",
    ];
    for (i, t) in texts.iter().enumerate() {
        index.upsert(&format!("d{i}"), i as u64, t).unwrap();
    }
    index.commit(10).unwrap();
    let query = "supersonic wing flow";
    let docs: HashMap<String, f32> = index
        .search(query, 10, None)
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect();
    let mut scorer = index.passage_scorer(query).unwrap();
    // A passage holding a whole short document scores as the document does (lengths
    // under 40 tokens are exact in both).
    for (i, t) in texts.iter().enumerate() {
        let whole = scorer.score(t, &[0..t.len()])[0];
        let want = docs.get(&format!("d{i}")).copied().unwrap_or(0.0);
        assert!((whole - want).abs() < 1e-5, "{t}: {whole} vs {want}");
    }
    // Chunks of one text: a token counts where it lies whole, so "supersonic" cut in
    // half counts in neither half, and a chunk without the query's words scores 0.
    let text = texts[2];
    let cut = text.find("supersonic").unwrap() + 5;
    let scores = scorer.score(text, &[0..cut, cut..text.len(), 0..3, 0..text.len()]);
    assert!(scores[0] > 0.0 && scores[1] > 0.0, "{scores:?}");
    assert_eq!(scores[2], 0.0);
    assert!(scores[3] > scores[0] && scores[3] > scores[1]);
    let wing_only = scorer.score("wing", &[0..4])[0];
    let mut other = index.passage_scorer("wing").unwrap();
    assert!((other.score("wing", &[0..4])[0] - wing_only).abs() < 1e-6);
    assert!(index.passage_scorer("").unwrap().score(text, &[0..9])[0] == 0.0);
}
