//! `quiver bench db --quick` through the real binary: it starts its own `quiver serve`,
//! upserts 3,000 generated vectors over HTTP, waits for sealing to settle, sweeps ef 16
//! and 128, and writes a JSON report. The test checks the report's figures for sense
//! (every document ingested, recall high at the larger ef, positive throughput, disk and
//! memory measured), never their speed.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn quick_db_bench_ingests_everything_and_reaches_high_recall() {
    let (report, stdout) = common::run_bench("db", &["--quick".as_ref()]);
    assert_eq!(report["bench"], "db");
    assert!(report["peers"].is_null(), "--quick runs no peers");
    let r = &report["results"];
    assert_eq!(r["n"], 3000);
    assert_eq!(r["queries"], 100);
    assert_eq!(r["ingest"]["documents"], 3000);
    assert!(r["ingest"]["docs_per_s"].as_f64().unwrap() > 0.0);
    // The bench flushes after ingest: everything is in sealed segments, none in memory.
    assert_eq!(r["memtable_entries"], 0, "{r}");
    assert!(r["segments"].as_u64().unwrap() >= 1, "{r}");

    let sweep = r["sweep"].as_array().unwrap();
    let efs: Vec<u64> = sweep.iter().map(|p| p["ef"].as_u64().unwrap()).collect();
    assert_eq!(efs, [16, 128]);
    for p in sweep {
        let recall = p["recall_at_10"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&recall), "recall {recall}");
        for key in ["qps_1c", "qps_mc", "p50_ms", "p99_ms"] {
            assert!(p[key].as_f64().unwrap() > 0.0, "{key} in {p}");
        }
        assert!(p["p99_ms"].as_f64().unwrap() >= p["p50_ms"].as_f64().unwrap());
        assert!(p["dense_ms"].as_f64().unwrap() >= 0.0);
    }
    // 3,000 clustered vectors with M 16 and ef 128: the graph finds nearly every true
    // neighbour; a broken id mapping or a search that ignores ef would not.
    let high = sweep[1]["recall_at_10"].as_f64().unwrap();
    assert!(high >= 0.95, "recall@10 at ef 128: {high}");
    assert!(high >= sweep[0]["recall_at_10"].as_f64().unwrap() - 0.02);

    // Every vector is on disk (at least its 64 f32s) and the server's memory was read.
    assert!(r["disk_bytes_per_vector"].as_f64().unwrap() >= 256.0, "{r}");
    assert!(r["server_rss_bytes"].as_u64().unwrap() > 0);
    assert!(stdout.contains("## quiver bench db"), "{stdout}");
    assert!(
        stdout.contains("| ef | recall@10 | QPS 1 client"),
        "{stdout}"
    );
}
