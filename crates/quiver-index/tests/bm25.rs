//! BM25 full-text index: exact scores on a hand-checked corpus, analyzers, commit
//! payloads across reopen, upserts and deletes, filtering inside the search, and the
//! collection's own k1 and b.
#![allow(clippy::unwrap_used)]

use quiver_core::Bm25Config;
use quiver_index::{Analyzer, RowSet, TextIndex};

fn index_of(analyzer: Analyzer, docs: &[&str]) -> TextIndex {
    let index = TextIndex::in_memory(analyzer).unwrap();
    for (i, text) in docs.iter().enumerate() {
        index.upsert(&format!("d{i}"), i as u64, text).unwrap();
    }
    index.commit(1).unwrap();
    index
}

/// BM25 as tantivy defines it; documents here are short enough that tantivy's
/// length encoding is exact.
fn bm25(tf: f32, dl: f32, avgdl: f32, n_docs: f32, df: f32) -> f32 {
    bm25_with(1.2, 0.75, tf, dl, avgdl, n_docs, df)
}

fn bm25_with(k1: f32, b: f32, tf: f32, dl: f32, avgdl: f32, n_docs: f32, df: f32) -> f32 {
    let idf = (1.0 + (n_docs - df + 0.5) / (df + 0.5)).ln();
    idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl))
}

#[test]
fn scores_follow_the_bm25_formula() {
    let docs = [
        "apple banana",
        "apple apple cherry",
        "banana cherry date egg",
        "fig",
        "apple fig grape",
    ];
    let index = index_of(Analyzer::Simple, &docs);
    assert_eq!(index.num_docs(), 5);
    let avgdl = 13.0 / 5.0;

    let hits = index.search("apple", 10, None).unwrap();
    let expected = [
        (1u64, bm25(2.0, 3.0, avgdl, 5.0, 3.0)),
        (0, bm25(1.0, 2.0, avgdl, 5.0, 3.0)),
        (4, bm25(1.0, 3.0, avgdl, 5.0, 3.0)),
    ];
    assert_eq!(hits.len(), 3);
    for (hit, (key, score)) in hits.iter().zip(expected) {
        assert_eq!(hit.key, key);
        assert_eq!(hit.id, format!("d{key}"));
        assert!((hit.score - score).abs() < 1e-5, "{} vs {score}", hit.score);
    }

    // Two terms add up.
    let hits = index.search("Cherry, apple!", 10, None).unwrap();
    let d1 = bm25(2.0, 3.0, avgdl, 5.0, 3.0) + bm25(1.0, 3.0, avgdl, 5.0, 2.0);
    let d2 = bm25(1.0, 4.0, avgdl, 5.0, 2.0);
    assert_eq!(hits[0].key, 1);
    assert!((hits[0].score - d1).abs() < 1e-5);
    let h2 = hits.iter().find(|h| h.key == 2).unwrap();
    assert!((h2.score - d2).abs() < 1e-5);
    assert_eq!(hits.len(), 4);

    // A repeated query term counts as often as it is repeated.
    let hits = index.search("cherry apple cherry", 10, None).unwrap();
    let d1 = bm25(2.0, 3.0, avgdl, 5.0, 3.0) + 2.0 * bm25(1.0, 3.0, avgdl, 5.0, 2.0);
    let d2 = 2.0 * bm25(1.0, 4.0, avgdl, 5.0, 2.0);
    assert_eq!(hits[0].key, 1);
    assert!(
        (hits[0].score - d1).abs() < 1e-5,
        "{} vs {d1}",
        hits[0].score
    );
    let h2 = hits.iter().find(|h| h.key == 2).unwrap();
    assert!((h2.score - d2).abs() < 1e-5, "{} vs {d2}", h2.score);

    assert!(index.search("zebra", 10, None).unwrap().is_empty());
    assert!(index.search("", 10, None).unwrap().is_empty());
    assert_eq!(index.search("apple", 1, None).unwrap().len(), 1);
}

#[test]
fn k1_and_b_change_the_scores_as_the_formula_says() {
    let docs = [
        "apple apple apple apple pie",
        "apple pie",
        "cherry pie with cream on top",
    ];
    let avgdl = 13.0 / 3.0;
    let index = || index_of(Analyzer::Simple, &docs);
    let scores = |index: &TextIndex| {
        let mut hits = index.search("apple", 10, None).unwrap();
        hits.sort_by_key(|h| h.key);
        hits.iter().map(|h| h.score).collect::<Vec<f32>>()
    };

    // Defaults: the repeats win.
    let s = scores(&index());
    assert_eq!(index().bm25(), Bm25Config::default());
    assert!(s[0] > s[1], "{s:?}");

    for (k1, b) in [(0.0, 0.75), (1.2, 0.0), (2.0, 1.0), (0.5, 0.3)] {
        let custom = index().with_bm25(Bm25Config { k1, b });
        let s = scores(&custom);
        let want = [
            bm25_with(k1, b, 4.0, 5.0, avgdl, 3.0, 2.0),
            bm25_with(k1, b, 1.0, 2.0, avgdl, 3.0, 2.0),
        ];
        for (got, want) in s.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "k1 {k1} b {b}: {got} vs {want}");
        }
    }
    // k1 = 0: how often a document holds the word does not matter, nor does its length.
    let s = scores(&index().with_bm25(Bm25Config { k1: 0.0, b: 0.75 }));
    assert_eq!(s[0], s[1]);
    // b = 0 and a shorter document holding the word once more than a longer one: only
    // term frequency decides. b = 1 punishes length fully, and the short one wins.
    let docs = ["apple apple x x x x x x x x x x", "apple"];
    let long_first = |b: f32| {
        let index = index_of(Analyzer::Simple, &docs).with_bm25(Bm25Config { k1: 1.2, b });
        index.search("apple", 10, None).unwrap()[0].key == 0
    };
    assert!(long_first(0.0));
    assert!(!long_first(1.0));
}

#[test]
fn equal_scores_break_ties_by_key() {
    let index = index_of(Analyzer::Simple, &["same text", "same text", "same text"]);
    let keys: Vec<u64> = index
        .search("same", 10, None)
        .unwrap()
        .iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(keys, vec![0, 1, 2]);
}

#[test]
fn cjk_queries_find_cjk_documents() {
    let docs = [
        "今天天气很好，我们去公园散步。",
        "我喜欢用向量数据库做语义搜索。",
        "東京タワーは高いです",
        "한국어 문서 검색",
        "plain english text about databases",
    ];
    let index = index_of(Analyzer::Cjk, &docs);
    assert_eq!(index.search("数据库", 10, None).unwrap()[0].key, 1);
    assert_eq!(index.search("天气", 10, None).unwrap()[0].key, 0);
    assert_eq!(index.search("東京", 10, None).unwrap()[0].key, 2);
    assert_eq!(index.search("검색", 10, None).unwrap()[0].key, 3);
    assert_eq!(index.search("Databases", 10, None).unwrap()[0].key, 4);

    // A word tokenizer sees each sentence as one token and finds nothing.
    let words = index_of(Analyzer::Simple, &docs);
    assert!(words.search("数据库", 10, None).unwrap().is_empty());
}

#[test]
fn english_analyzer_stems_and_skips_stop_words() {
    let docs = [
        "She runs every morning",
        "I like to run",
        "bananas are yellow",
    ];
    let index = index_of(Analyzer::En, &docs);
    let mut keys: Vec<u64> = index
        .search("running", 10, None)
        .unwrap()
        .iter()
        .map(|h| h.key)
        .collect();
    keys.sort();
    assert_eq!(keys, vec![0, 1]);
    assert_eq!(index.search("banana", 10, None).unwrap()[0].key, 2);
    assert!(index.search("the are to", 10, None).unwrap().is_empty());
}

#[test]
fn commit_payload_lsn_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    {
        let index = TextIndex::open_or_create(&path, Analyzer::En).unwrap();
        assert_eq!(index.last_lsn().unwrap(), None);
        index.upsert("a", 0, "durable words").unwrap();
        index.commit(41).unwrap();
        index.upsert("b", 1, "more durable words").unwrap();
        index.commit(42).unwrap();
        // Uncommitted work is not covered by the recorded LSN and is lost.
        index.upsert("c", 2, "durable but never committed").unwrap();
    }
    let index = TextIndex::open_or_create(&path, Analyzer::En).unwrap();
    assert_eq!(index.last_lsn().unwrap(), Some(42));
    assert_eq!(index.analyzer(), Analyzer::En);
    assert_eq!(index.num_docs(), 2);
    assert_eq!(index.search("durable", 10, None).unwrap().len(), 2);
    drop(index);
    let err = TextIndex::open_or_create(&path, Analyzer::Cjk).unwrap_err();
    assert!(err.to_string().contains("analyzer"), "{err}");
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let index = TextIndex::in_memory(Analyzer::Simple).unwrap();
    index.upsert("x", 0, "old words").unwrap();
    index.upsert("y", 1, "other words").unwrap();
    index.commit(1).unwrap();
    index.upsert("x", 2, "new words").unwrap();
    index.commit(2).unwrap();
    assert_eq!(index.num_docs(), 2);
    assert!(index.search("old", 10, None).unwrap().is_empty());
    let hit = &index.search("new", 10, None).unwrap()[0];
    assert_eq!((hit.id.as_str(), hit.key), ("x", 2));
    index.delete("y").unwrap();
    index.commit(3).unwrap();
    let ids: Vec<String> = index
        .search("words", 10, None)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, vec!["x".to_string()]);
    assert_eq!(index.last_lsn().unwrap(), Some(3));
}

#[test]
fn filter_applies_before_the_top_k_cut() {
    // 200 documents; the allowed ones score worst (longest), yet all of them come back.
    let docs: Vec<String> = (0..200u64)
        .map(|i| {
            if i.is_multiple_of(50) {
                "target filler filler filler filler".to_string()
            } else {
                "target".to_string()
            }
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let index = index_of(Analyzer::Simple, &refs);
    let allowed: RowSet = [0, 50, 100, 150].into_iter().collect();
    let hits = index.search("target", 4, Some(&allowed)).unwrap();
    let keys: Vec<u64> = hits.iter().map(|h| h.key).collect();
    assert_eq!(keys, vec![0, 50, 100, 150]);
    let unfiltered = index.search("target", 4, None).unwrap();
    assert!(unfiltered.iter().all(|h| !h.key.is_multiple_of(50)));
}

/// Names of the files in `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Enough commits to start a background merge, then a drop right after the last one: the
/// drop waits for the merge, so nothing writes into the directory once it returns (a
/// dropped collection's directory is deleted right after).
#[test]
fn drop_waits_for_background_merges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    let index = TextIndex::open_or_create(&path, Analyzer::En).unwrap();
    let words = [
        "wing", "flutter", "shock", "boundary", "layer", "heat", "nozzle",
    ];
    for commit in 0..12u64 {
        for i in 0..1_500u64 {
            let key = commit * 10_000 + i;
            let text: Vec<&str> = (0..40).map(|j| words[((key + j) % 7) as usize]).collect();
            index
                .upsert(&format!("d{key}"), key, &text.join(" "))
                .unwrap();
        }
        index.commit(commit + 1).unwrap();
    }
    drop(index);
    let after_drop = listing(&path);
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(listing(&path), after_drop, "files changed after the drop");
    let index = TextIndex::open(&path).unwrap();
    assert_eq!(index.num_docs(), 12 * 1_500);
    assert_eq!(index.last_lsn().unwrap(), Some(12));
}

/// Copies every file of `from` into `to` (flat: a text index has no subdirectories).
fn copy_files(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn delete_evens(index: &TextIndex) {
    for key in (0..201).step_by(2) {
        index.delete(&format!("d{key}")).unwrap();
    }
}

/// A crash after a commit wrote its delete file but before it wrote meta.json leaves the
/// file behind; replaying the same operations names the next delete file the same way.
/// Opening must clear the leftover so that commit succeeds.
#[test]
fn reopen_after_a_crash_mid_commit_replays_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live"), dir.path().join("crashed"));
    {
        let index = TextIndex::open_or_create(&live, Analyzer::En).unwrap();
        // The two writer threads split 201 documents into at most two segments, so one
        // holds 101 or more and keeps both kinds after the even ones are deleted: it gets
        // a delete file (a segment left with no documents is dropped instead).
        for key in 0..201 {
            let text = if key % 2 == 0 { "even" } else { "odd" };
            index.upsert(&format!("d{key}"), key, text).unwrap();
        }
        index.commit(1).unwrap();
    }
    // `crashed` gets the state before the delete's commit...
    copy_files(&live, &crashed);
    {
        let index = TextIndex::open(&live).unwrap();
        delete_evens(&index);
        index.commit(2).unwrap();
    }
    // ...plus what that commit wrote before its meta.json: the delete file, and the
    // managed-file list that names it.
    let before = listing(&crashed);
    let leftovers: Vec<String> = listing(&live)
        .into_iter()
        .filter(|name| name.ends_with(".del") && !before.contains(name))
        .collect();
    assert!(!leftovers.is_empty(), "the delete wrote no .del file");
    for name in leftovers.iter().chain([&".managed.json".to_string()]) {
        std::fs::copy(live.join(name), crashed.join(name)).unwrap();
    }

    let index = TextIndex::open(&crashed).unwrap();
    assert_eq!(index.last_lsn().unwrap(), Some(1));
    delete_evens(&index);
    index.commit(2).unwrap();
    assert_eq!(index.num_docs(), 100);
    assert!(index.search("even", 10, None).unwrap().is_empty());
}
