//! Filtered search against a naive reading of the filter JSON, over every document.
//!
//! The naive evaluator below interprets the JSON directly and shares no code with
//! `quiver_core::Filter`; proptest generates filters and queries.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use quiver_core::{Distance, Filter, Metadata};
use quiver_index::{exact_search, Analyzer, DenseIndex, HnswParams, RowSet, TextIndex};
use serde_json::{json, Value};

const N: usize = 80;
const DIM: usize = 8;
const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "omega", "sigma"];
const COLORS: [&str; 3] = ["red", "green", "blue"];

struct Corpus {
    metadata: Vec<Metadata>,
    vectors: Vec<Vec<f32>>,
    text: TextIndex,
    dense: DenseIndex,
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let mut metadata = Vec::new();
        let mut vectors = Vec::new();
        let text = TextIndex::in_memory(Analyzer::Simple).unwrap();
        let dense = DenseIndex::new(DIM, Distance::Cosine, HnswParams::default()).unwrap();
        for i in 0..N {
            let mut m = json!({
                "color": COLORS[i % 3],
                "n": i % 20,
                "flag": i.is_multiple_of(4),
                "tags": [COLORS[(i / 3) % 3], WORDS[i % 6]],
                "nested": {"x": i % 5},
            });
            if i.is_multiple_of(7) {
                m["score"] = json!(i as f64 / 10.0);
            }
            let Value::Object(m) = m else { unreachable!() };
            metadata.push(m);
            let mut v: Vec<f32> = (0..DIM)
                .map(|d| ((i * 31 + d * 17) % 23) as f32 - 11.0)
                .collect();
            quiver_core::normalize(&mut v);
            dense.insert(i as u64, &v).unwrap();
            vectors.push(v);
            let words: Vec<&str> = (0..1 + i % 4).map(|k| WORDS[(i + k * k) % 6]).collect();
            text.upsert(&format!("doc{i}"), i as u64, &words.join(" "))
                .unwrap();
        }
        text.commit(1).unwrap();
        Corpus {
            metadata,
            vectors,
            text,
            dense,
        }
    })
}

// ---- naive evaluator, straight from the JSON ----

fn lookup<'a>(m: &'a Metadata, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut v = m.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn values_of(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn naive_cond(c: &Value, m: &Metadata) -> bool {
    if c.get("must").is_some() || c.get("should").is_some() || c.get("must_not").is_some() {
        return naive(c, m);
    }
    let Some(found) = lookup(m, c["key"].as_str().unwrap()) else {
        return false;
    };
    let vals = values_of(found);
    if let Some(want) = c.get("match") {
        vals.iter().any(|v| scalar_eq(v, want))
    } else if let Some(list) = c.get("any") {
        vals.iter()
            .any(|v| list.as_array().unwrap().iter().any(|w| scalar_eq(v, w)))
    } else {
        let r = &c["range"];
        vals.iter().any(|v| {
            let Some(x) = v.as_f64() else { return false };
            r.get("gt").is_none_or(|b| x > b.as_f64().unwrap())
                && r.get("gte").is_none_or(|b| x >= b.as_f64().unwrap())
                && r.get("lt").is_none_or(|b| x < b.as_f64().unwrap())
                && r.get("lte").is_none_or(|b| x <= b.as_f64().unwrap())
        })
    }
}

fn naive(f: &Value, m: &Metadata) -> bool {
    let list = |name: &str| {
        f.get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let should = list("should");
    list("must").iter().all(|c| naive_cond(c, m))
        && (should.is_empty() || should.iter().any(|c| naive_cond(c, m)))
        && !list("must_not").iter().any(|c| naive_cond(c, m))
}

// ---- generators ----

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(COLORS.to_vec()).prop_map(|s| json!(s)),
        prop::sample::select(WORDS.to_vec()).prop_map(|s| json!(s)),
        (0i64..22).prop_map(|n| json!(n)),
        any::<bool>().prop_map(|b| json!(b)),
    ]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "color", "n", "flag", "tags", "nested.x", "score", "missing", "nested",
    ])
}

fn bound() -> impl Strategy<Value = Option<f64>> {
    prop::option::of((-2i32..44).prop_map(|x| f64::from(x) / 2.0))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        (key(), scalar()).prop_map(|(k, v)| json!({"key": k, "match": v})),
        (key(), prop::collection::vec(scalar(), 0..4))
            .prop_map(|(k, v)| json!({"key": k, "any": v})),
        (key(), bound(), bound(), bound(), bound())
            .prop_filter("a range needs a bound", |(_, a, b, c, d)| a
                .or(*b)
                .or(*c)
                .or(*d)
                .is_some())
            .prop_map(|(k, gt, gte, lt, lte)| {
                let mut r = serde_json::Map::new();
                for (name, b) in [("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)] {
                    if let Some(b) = b {
                        r.insert(name.into(), json!(b));
                    }
                }
                json!({"key": k, "range": r})
            }),
    ]
}

fn group(inner: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Value> {
    let list = move || prop::option::of(prop::collection::vec(inner.clone(), 0..3));
    (list(), list(), list()).prop_map(|(must, should, must_not)| {
        let mut g = serde_json::Map::new();
        for (name, l) in [("must", must), ("should", should), ("must_not", must_not)] {
            if let Some(l) = l {
                g.insert(name.into(), Value::Array(l));
            }
        }
        if g.is_empty() {
            // `{}` reads as a key condition without its key; spell the empty group out.
            g.insert("must".into(), json!([]));
        }
        Value::Object(g)
    })
}

fn filter_json() -> impl Strategy<Value = Value> {
    let cond = leaf().prop_recursive(3, 12, 3, group);
    group(cond)
}

proptest! {
    #[test]
    fn filtered_search_matches_naive_evaluation(
        f in filter_json(),
        words in prop::collection::vec(prop::sample::select(WORDS.to_vec()), 1..3),
        qi in 0usize..N,
        k in 1usize..40,
    ) {
        let c = corpus();
        let filter = Filter::parse(&f).unwrap();
        let set = RowSet::compile(&filter, c.metadata.iter().enumerate().map(|(i, m)| (i as u64, m)));
        let naive_rows: Vec<u64> = (0..N as u64).filter(|&i| naive(&f, &c.metadata[i as usize])).collect();
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), naive_rows.clone());

        // Exact dense path: filtering inside == scoring only the naive survivors.
        let q = &c.vectors[qi];
        let all = c.vectors.iter().enumerate().map(|(i, v)| (i as u64, v.as_slice()));
        let got = exact_search(Distance::Cosine, q, k, all, Some(&set));
        let survivors = naive_rows.iter().map(|&i| (i, c.vectors[i as usize].as_slice()));
        let want = exact_search(Distance::Cosine, q, k, survivors, None);
        prop_assert_eq!(&got, &want);

        // HNSW: every hit is allowed and the hit count is min(k, allowed).
        let hnsw = c.dense.search(q, k, Some(N), Some(&set)).unwrap();
        prop_assert!(hnsw.iter().all(|h| set.contains(h.row)));
        prop_assert_eq!(hnsw.len(), k.min(naive_rows.len()));

        // BM25: filtering inside == the full ranking restricted to naive survivors.
        let query = words.join(" ");
        let got: Vec<(u64, f32)> = c.text.search(&query, k, Some(&set)).unwrap()
            .into_iter().map(|h| (h.key, h.score)).collect();
        let want: Vec<(u64, f32)> = c.text.search(&query, N, None).unwrap()
            .into_iter().filter(|h| naive_rows.contains(&h.key)).take(k)
            .map(|h| (h.key, h.score)).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn parser_errors_name_the_place() {
    let cases = [
        (
            json!({"must": [{"key": "n", "range": {"gt": "5"}}]}),
            "must[0].range: gt of key \"n\" must be a number",
        ),
        (
            json!({"should": [{"must": [{"key": "", "match": 1}]}]}),
            "should[0].must[0].key",
        ),
        (
            json!({"must_not": [{"key": "a", "match": [1]}]}),
            "must_not[0].match",
        ),
        (json!({"must": "x"}), "must: must be an array"),
    ];
    for (f, want) in cases {
        let err = Filter::parse(&f).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
}
