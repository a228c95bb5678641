//! Fusion on known rank lists: RRF, weighted, ties and one-sided hits.
#![allow(clippy::unwrap_used)]

use quiver_index::{Fusion, StageHit};

fn keys<K: Clone>(fused: &[quiver_index::Fused<K>]) -> Vec<K> {
    fused.iter().map(|f| f.key.clone()).collect()
}

#[test]
fn rrf_on_known_lists() {
    let dense = [("a", 0.9), ("b", 0.8), ("c", 0.7)];
    let sparse = [("c", 12.0), ("d", 8.0), ("a", 3.0)];
    let fused = Fusion::default().fuse(&dense, &sparse).unwrap();
    // a: 1/61 + 1/63, c: 1/63 + 1/61 (tie, both best rank 1 -> key order), b: 1/62, d: 1/62.
    assert_eq!(keys(&fused), vec!["a", "c", "b", "d"]);
    let a = &fused[0];
    assert!((a.score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-7);
    assert_eq!(
        a.dense,
        Some(StageHit {
            rank: 1,
            score: 0.9
        })
    );
    assert_eq!(
        a.sparse,
        Some(StageHit {
            rank: 3,
            score: 3.0
        })
    );
    let b = &fused[2];
    assert_eq!(b.sparse, None);
    assert!((b.score - 1.0 / 62.0).abs() < 1e-7);
    let d = &fused[3];
    assert_eq!(d.dense, None);
    assert_eq!(
        d.sparse,
        Some(StageHit {
            rank: 2,
            score: 8.0
        })
    );

    let k1 = Fusion::Rrf { k: 1.0 }.fuse(&dense, &sparse).unwrap();
    assert!((k1[0].score - (0.5 + 0.25)).abs() < 1e-7);
}

#[test]
fn weighted_on_known_lists() {
    let dense = [(1u64, 0.9), (2, 0.5), (3, 0.1)];
    let sparse = [(3u64, 20.0), (4, 10.0), (1, 0.0)];
    let fused = Fusion::Weighted { alpha: 0.5 }
        .fuse(&dense, &sparse)
        .unwrap();
    let score = |k: u64| fused.iter().find(|f| f.key == k).unwrap().score;
    // Normalized dense: 1 -> 1, 2 -> 0.5, 3 -> 0; sparse: 3 -> 1, 4 -> 0.5, 1 -> 0.
    assert!((score(1) - 0.5).abs() < 1e-6);
    assert!((score(2) - 0.25).abs() < 1e-6);
    assert!((score(3) - 0.5).abs() < 1e-6);
    assert!((score(4) - 0.25).abs() < 1e-6);
    // Ties: 1 and 3 both have best rank 1 -> key; 2 (dense rank 2) and 4 (sparse rank 2) -> key.
    assert_eq!(keys(&fused), vec![1, 3, 2, 4]);

    let dense_only = Fusion::Weighted { alpha: 1.0 }
        .fuse(&dense, &sparse)
        .unwrap();
    assert_eq!(keys(&dense_only)[..3], [1, 2, 3]);
    assert_eq!(dense_only[3].score, 0.0);
    let sparse_only = Fusion::Weighted { alpha: 0.0 }
        .fuse(&dense, &sparse)
        .unwrap();
    assert_eq!(keys(&sparse_only)[..2], [3, 4]);
}

#[test]
fn one_sided_and_degenerate_lists() {
    let dense = [("x", 0.3)];
    let fused = Fusion::Weighted { alpha: 0.7 }.fuse(&dense, &[]).unwrap();
    assert_eq!(fused.len(), 1);
    // A one-element list normalizes to 1.
    assert!((fused[0].score - 0.7).abs() < 1e-6);
    assert_eq!(fused[0].sparse, None);
    assert!(Fusion::default().fuse::<u32>(&[], &[]).unwrap().is_empty());
    // A key repeated in one list counts once, at its best rank.
    let fused = Fusion::default()
        .fuse(&[("r", 2.0), ("r", 1.0)], &[])
        .unwrap();
    assert_eq!(fused.len(), 1);
    assert_eq!(fused[0].dense.unwrap().rank, 1);
}

#[test]
fn rejects_bad_parameters_and_parses_json() {
    assert!(Fusion::Rrf { k: 0.0 }.fuse::<u8>(&[], &[]).is_err());
    assert!(Fusion::Weighted { alpha: 1.5 }
        .fuse::<u8>(&[], &[])
        .is_err());
    let f: Fusion = serde_json::from_str(r#"{"method":"rrf"}"#).unwrap();
    assert_eq!(f, Fusion::Rrf { k: 60.0 });
    let f: Fusion = serde_json::from_str(r#"{"method":"weighted","alpha":0.3}"#).unwrap();
    assert_eq!(f, Fusion::Weighted { alpha: 0.3 });
}
