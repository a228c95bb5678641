//! `quiver bench filter --quick` through the real binary: it loads 20,000 generated
//! documents with metadata into its own `quiver serve` and runs dense queries unfiltered
//! and with four filters. The test checks the report for sense (selectivities near their
//! names, recall of the filtered plans against exact filtered search, compile time
//! reported), never its speed.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn quick_filter_bench_keeps_recall_at_every_selectivity() {
    let (report, stdout) = common::run_bench("filter", &["--quick".as_ref()]);
    assert_eq!(report["bench"], "filter");
    assert!(report["peers"].is_null(), "--quick runs no peers");
    let r = &report["results"];
    assert_eq!(
        (r["n"].as_u64(), r["queries"].as_u64()),
        (Some(20_000), Some(50))
    );
    assert_eq!(r["unfiltered"]["allowed"], 20_000);
    let filters = r["filters"].as_array().unwrap();
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0.1%", "1%", "10%", "50%"]);
    for (f, share) in filters.iter().zip([0.001, 0.01, 0.1, 0.5]) {
        let allowed = f["allowed"].as_f64().unwrap() / 20_000.0;
        assert!((allowed / share - 1.0).abs() < 0.3, "{f}");
        let recall = f["recall_at_10"].as_f64().unwrap();
        assert!(recall >= 0.95, "{f}");
        assert!(
            f["filter_ms"].as_f64().unwrap() > 0.0,
            "compile time not reported: {f}"
        );
        assert!(f["p99_ms"].as_f64().unwrap() >= f["p50_ms"].as_f64().unwrap());
    }
    assert!(stdout.contains("## quiver bench filter"), "{stdout}");
}
