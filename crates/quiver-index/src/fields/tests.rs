//! The index must agree with [`Filter::matches`] on every document, for any filter.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use quiver_core::{Filter, Metadata};
use serde_json::{json, Value};

use super::*;

/// Scalars of every JSON type, with collisions between them (`1` and `1.0`, `-0.0`,
/// integers past 2^53 that share a float).
fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "z", "", "1"]).prop_map(|s| json!(s)),
        (-3i64..4).prop_map(|i| json!(i)),
        prop::sample::select(vec![-1.5, -0.0, 0.0, 0.5, 1.0, 2.25]).prop_map(|f| json!(f)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
        prop::sample::select(vec![(1i64 << 53) + 1, 1 << 53, i64::MAX]).prop_map(|i| json!(i)),
        Just(json!(u64::MAX)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = scalar_value();
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "o", "x", "a.b", ""]).prop_map(str::to_string)
}

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::btree_map(key(), value(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "o", "o.x", "o.a", "a.b", "missing", "o.o.x"])
        .prop_map(str::to_string)
}

fn match_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec!["x", "y", "", "1"]).prop_map(|s| json!(s)),
        (-3i64..4).prop_map(|i| json!(i)),
        any::<bool>().prop_map(|b| json!(b)),
        prop::sample::select(vec![(1i64 << 53) + 1, 1 << 53, i64::MAX]).prop_map(|i| json!(i)),
    ]
}

fn bound() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(prop::sample::select(vec![
        -2.0, -0.0, 0.0, 0.5, 1.0, 2.25, 9.1e15,
    ]))
}

fn condition() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        (path(), match_value()).prop_map(|(k, v)| json!({"key": k, "match": v})),
        (path(), prop::collection::vec(match_value(), 1..3))
            .prop_map(|(k, v)| json!({"key": k, "any": v})),
        (path(), bound(), bound(), bound(), bound())
            .prop_filter("a range needs a bound", |(_, a, b, c, d)| {
                a.is_some() || b.is_some() || c.is_some() || d.is_some()
            })
            .prop_map(|(k, gt, gte, lt, lte)| {
                let mut r = serde_json::Map::new();
                for (name, b) in [("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)] {
                    if let Some(b) = b {
                        r.insert(name.into(), json!(b));
                    }
                }
                json!({"key": k, "range": r})
            }),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        // A nested group must hold something; only the top level may be empty.
        group(inner)
            .prop_filter("empty group", |g| {
                g.as_object().is_some_and(|o| !o.is_empty())
            })
            .boxed()
    })
    .boxed()
}

fn group(cond: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let list = move || prop::collection::vec(cond.clone(), 0..3);
    (list(), list(), list()).prop_map(|(must, should, must_not)| {
        let mut g = serde_json::Map::new();
        for (name, l) in [("must", must), ("should", should), ("must_not", must_not)] {
            if !l.is_empty() {
                g.insert(name.into(), Value::Array(l));
            }
        }
        Value::Object(g)
    })
}

fn check(docs: &[Metadata], filter: &Filter, index: &dyn Postings) {
    let verify = |row: u64, c: &quiver_core::Condition| c.matches(&docs[row as usize]);
    let got: Vec<u64> = compile(filter, index, docs.len() as u64, &verify)
        .iter()
        .collect();
    let want: Vec<u64> = (0..docs.len() as u64)
        .filter(|&r| filter.matches(&docs[r as usize]))
        .collect();
    assert_eq!(got, want, "filter {filter:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn index_agrees_with_evaluating_each_document(
        docs in prop::collection::vec(metadata(), 0..40),
        filter in group(condition()),
    ) {
        let filter = Filter::parse(&filter).unwrap();
        let mut mem = MemFields::new();
        for (row, d) in docs.iter().enumerate() {
            mem.add(row as u64, d);
        }
        check(&docs, &filter, &mem);
        let sealed = SealedFields::build(
            docs.len() as u64,
            docs.iter().enumerate().map(|(row, d)| (row as u32, d)),
        );
        check(&docs, &filter, &sealed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fields.qvf");
        sealed.save(&path).unwrap();
        check(&docs, &filter, &SealedFields::open(&path).unwrap());
    }
}

fn object(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[test]
fn nested_keys_arrays_and_mixed_types() {
    let docs = [
        object(json!({"tags": ["red", "blue"], "n": 3, "shop": {"city": "Oslo"}})),
        object(json!({"tags": "red", "n": "3", "shop": {"city": ["Bergen", "Oslo"]}})),
        object(json!({"tags": [["red"]], "n": 3.5, "shop.city": "Oslo", "ok": true})),
    ];
    let mut mem = MemFields::new();
    for (row, d) in docs.iter().enumerate() {
        mem.add(row as u64, d);
    }
    let rows = |f: Value| {
        let f = Filter::parse(&f).unwrap();
        let verify = |_: u64, _: &quiver_core::Condition| unreachable!();
        compile(&f, &mem, 3, &verify).iter().collect::<Vec<_>>()
    };
    assert_eq!(
        rows(json!({"must": [{"key": "tags", "match": "red"}]})),
        vec![0, 1]
    );
    assert_eq!(
        rows(json!({"must": [{"key": "shop.city", "match": "Oslo"}]})),
        vec![0, 1]
    );
    assert_eq!(
        rows(json!({"must": [{"key": "n", "range": {"gt": 2}}]})),
        vec![0, 2]
    );
    assert_eq!(rows(json!({"must": [{"key": "n", "match": "3"}]})), vec![1]);
    assert_eq!(
        rows(json!({"must_not": [{"key": "ok", "match": true}]})),
        vec![0, 1]
    );
    assert_eq!(
        rows(json!({"must": [{"key": "nowhere", "match": 1}]})),
        Vec::<u64>::new()
    );
}

#[test]
fn a_damaged_file_is_reported() {
    let docs = [object(json!({"k": "v", "n": 1}))];
    let sealed = SealedFields::build(1, docs.iter().enumerate().map(|(r, d)| (r as u32, d)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fields.qvf");
    sealed.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        SealedFields::open(&path),
        Err(crate::IndexError::Corrupt { .. })
    ));
    std::fs::write(&path, b"short").unwrap();
    assert!(SealedFields::open(&path).is_err());
}
