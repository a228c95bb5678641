//! Checks that need the index's insides: indexes of the earlier `en` pipeline keep it.
#![allow(clippy::unwrap_used)]

use tantivy::Index;

use super::*;

#[test]
fn an_index_of_the_earlier_en_pipeline_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::create_dir_all(&path).unwrap();
    {
        let index =
            TextIndex::from_index(Index::create_in_dir(&path, schema(Pipeline::En1)).unwrap())
                .unwrap();
        index
            .upsert("a", 1, "John's state-of-the-art wing")
            .unwrap();
        index.commit(1).unwrap();
    }
    let index = TextIndex::open_or_create(&path, Analyzer::En).unwrap();
    assert_eq!(index.pipeline, Pipeline::En1);
    assert_eq!(index.analyzer(), Analyzer::En);
    // Its documents hold `john` and `s`; the query is split the same way.
    assert_eq!(index.search("John's", 10, None).unwrap()[0].key, 1);
    assert_eq!(Pipeline::En1.tokens("John's"), ["john", "s"]);

    let fresh = TextIndex::open_or_create(&dir.path().join("new"), Analyzer::En).unwrap();
    assert_eq!(fresh.pipeline, Pipeline::En2);
    fresh
        .upsert("b", 2, "John's dogs' state-of-the-art")
        .unwrap();
    fresh.commit(1).unwrap();
    assert_eq!(fresh.search("john", 10, None).unwrap()[0].key, 2);
    assert_eq!(fresh.search("dog art", 10, None).unwrap()[0].key, 2);
    // `s` is no longer a word of it.
    assert!(fresh.search("s", 10, None).unwrap().is_empty());
}
