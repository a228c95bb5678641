//! The Markdown and JSON report of `quiver bench ingest`: throughput and batch latency
//! per WAL policy, the wait for background work to settle, server-side embedding, and
//! the peers with Quiver's ratio to each.

use super::*;

pub(super) fn report(
    opts: &IngestOptions,
    base: Option<&(Vectors, String)>,
    measured: &Measured,
    peers: Option<(Value, Vec<IngestPeer>)>,
    embedding_peers: Option<(Value, Vec<embed_peers::EmbedPeer>)>,
) -> Report {
    let mut md = String::new();
    let mut rows: Vec<Value> = measured.vectors.iter().map(VectorRun::json).collect();
    if let Some((v, what)) = base {
        md.push_str(&format!(
            "Supplied vectors ({what}): {} x {}, cosine, M {}, ef_construction {}; documents \
             `{{\"id\", \"vector\", \"metadata\": {{\"i\", \"group\"}}}}` upserted over HTTP by {} clients \
             in batches of {}. docs/s: documents over the seconds from the first request to \
             the last answer; latency: per request.\n\n",
            v.len(),
            v.dim,
            opts.m,
            opts.ef_construction,
            opts.clients,
            opts.batch
        ));
        let table_rows: Vec<Vec<String>> = measured.vectors.iter().map(VectorRun::row).collect();
        md.push_str(&table(
            &[
                "WAL sync",
                "documents",
                "seconds",
                "docs/s",
                "batch p50 ms",
                "p99 ms",
                "max ms",
                "max / p50",
            ],
            &table_rows,
        ));
        md.push_str(&format!(
            "\nAfter the last answer, `GET /collections/{{name}}` polled every 0.25 s until \
             unchanged for 3 s (at most {} s): seconds until it last changed (background \
             sealing and compaction), its fields then and once settled.\n\n",
            SETTLE_LIMIT.as_secs()
        ));
        let settle_rows: Vec<Vec<String>> =
            measured.vectors.iter().map(VectorRun::settle_row).collect();
        md.push_str(&table(
            &[
                "WAL sync",
                "last change after s",
                "at the last answer",
                "settled",
            ],
            &settle_rows,
        ));
    }
    if !measured.embedding.is_empty() {
        md.push_str(&format!(
            "\nEmbedding on the server ({}): texts of {}, batches of {}, {} clients\n\n",
            opts.model,
            opts.dataset.display(),
            opts.embed_batch,
            opts.clients
        ));
        let table_rows: Vec<Vec<String>> = measured
            .embedding
            .iter()
            .map(|r| {
                vec![
                    r.policy.clone(),
                    r.documents.to_string(),
                    format!("{:.2}", r.seconds),
                    fmt_num(r.docs_per_s()),
                ]
            })
            .collect();
        md.push_str(&table(
            &["WAL sync", "documents", "seconds", "docs/s"],
            &table_rows,
        ));
        rows.extend(measured.embedding.iter().map(|r| {
            json!({"policy": r.policy, "mode": "embedding", "documents": r.documents,
                "seconds": r.seconds, "docs_per_s": r.docs_per_s()})
        }));
    }
    let n = base.map_or(0, |(v, _)| v.len());
    let mut comparison = Vec::new();
    if let Some((_, runs)) = &peers {
        md.push_str(&ingest_peers::markdown(runs, n));
        md.push_str(
            "\nGoals: sustained docs/s at least 0.8x hnswlib's build rate and above Chroma's \
             and LanceDB's; no batch slower than 10x the p50 batch.\n",
        );
        let ours: Vec<(String, f64)> = measured
            .vectors
            .iter()
            .map(|r| (r.policy.clone(), r.docs_per_s()))
            .collect();
        comparison = ingest_peers::compare(&ours, runs, n);
    } else if opts.peers.is_none() {
        md.push_str(
            "\nNo peers (run with --peers for hnswlib, Chroma and LanceDB, and for \
             sentence-transformers and Chroma embedding).\n",
        );
    }
    if let Some((_, runs)) = &embedding_peers {
        md.push_str(&embed_peers::markdown(runs));
        md.push_str("\nGoal: embedding on ingest at least as fast as the better of the two.\n");
        let ours: Vec<(String, f64)> = measured
            .embedding
            .iter()
            .map(|r| (r.policy.clone(), r.docs_per_s()))
            .collect();
        comparison.extend(embed_peers::compare(&ours, runs));
    }
    let mut peer_json = peers.map(|(v, _)| v);
    if let Some((v, _)) = embedding_peers {
        let all = peer_json.get_or_insert_with(|| json!({}));
        all["embedding_peers"] = v;
    }
    let target = match &opts.target {
        Target::Url(u) => json!({"url": u}),
        Target::Spawn { .. } => json!("spawned"),
    };
    let parameters = json!({
        "target": target, "vectors": base.map(|(_, what)| what), "n": n,
        "dim": base.map_or(opts.dim, |(v, _)| v.dim), "m": opts.m,
        "ef_construction": opts.ef_construction, "batch": opts.batch, "clients": opts.clients,
        "policies": opts.sizes.policies, "distance": "cosine", "dataset": opts.dataset,
        "embed_docs": opts.sizes.embed_docs, "embed_batch": opts.embed_batch,
        "model": opts.model, "peer_threads": machine::cores(),
    });
    Report::new(
        "ingest",
        parameters,
        json!({"runs": rows}),
        peer_json,
        &comparison,
        md,
    )
}
