#!/usr/bin/env python3
"""Peers for `quiver bench`: the well-known alternatives, run on the inputs the harness writes.

Subcommands (each reads from and writes to --work DIR; the answer is DIR/peer.json):

* ir:    bm25s (English stop words, Snowball English stemmer, k1=1.2, b=0.75 like Quiver's
         BM25) and sentence-transformers (the same model directory, exact cosine search) rank
         DIR/docs.jsonl for every query in DIR/queries.jsonl. Answer: top-k document ids per
         query per system; the harness scores them with its own metric code.
* ann:   hnswlib and faiss IndexHNSWFlat (inner product on unit vectors = cosine) on
         DIR/base.npy and DIR/queries.npy with the given M / ef_construction, over an ef
         sweep: single-thread QPS (one batched call on one thread), p50/p99 latency (one
         query per call), multi-thread QPS, and the top-k ids (the harness computes recall).
* db:    Chroma (PersistentClient, its HNSW: max_neighbors = M, ef_construction, ef_search
         swept) and LanceDB (embedded, IVF_HNSW_SQ with one partition, so one HNSW graph over
         scalar-quantized vectors: m = M, ef_construction, query-time ef swept) on
         DIR/base.npy and DIR/queries.npy, each in a fresh process of its own (db-one), in
         a scratch directory under DIR. Documents carry {"i": n, "group": n % 10}; inserts
         go in batches of --batch from one client. Per ef: QPS of one client in process (one
         query per call, including the Python client's own overhead, as its users get it),
         p50/p99 latency, and the top-k ids (the harness computes recall). Also insert and
         index-build seconds, disk bytes of the database directory, and the resident memory
         the database added to the process after the vectors were loaded.
* ingest: the ingest rates of `quiver bench ingest` on DIR/base.npy, each system in a fresh
         process of its own (ingest-one): hnswlib's graph build (space cosine, M,
         ef_construction, --threads threads: the ceiling for any HNSW database), and Chroma's
         and LanceDB's ingest as in `db` (the same inserts, LanceDB's index build included),
         without the query sweep. Answer per system: insert and index-build seconds.
* filter: `quiver bench filter`'s peers: Chroma and LanceDB as in `db`, each in a fresh
         process (filter-one), with the metadata of DIR/meta.json (tag, n, price, flag per
         row) and every filter of DIR/filters.json (a Chroma `where` and a LanceDB SQL
         clause, prefiltered, with scalar indexes on the filtered columns) queried at the
         single ef of --efs. Answer per system and filter: p50/p99 of one client and the
         top-k ids (the harness computes recall against the exact filtered top-k).
* embed: PyTorch/transformers throughput on DIR/work.json ({"embed": {"BxL": [texts]},
         "rerank": {...}}): BERT models with mean pooling here; Qwen3 models through
         embed_throughput.py (last-token pooling, reranker).

Run through scripts/peers/run, which installs the pinned requirements.txt into a venv.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

# The script's own directory is on sys.path, so its sibling shares the timing loop.
from embed_throughput import timed


def log(msg):
    print(f"peers: {msg}", file=sys.stderr, flush=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_answer(work, answer):
    with open(os.path.join(work, "peer.json"), "w", encoding="utf-8") as f:
        json.dump(answer, f)


def percentile_ms(samples, p):
    if not samples:
        return 0.0
    s = sorted(samples)
    rank = max(1, min(len(s), int(-(-p / 100.0 * len(s) // 1))))
    return s[rank - 1] * 1e3


def cmd_ir(args):
    import bm25s
    import numpy as np
    import Stemmer
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    docs = read_jsonl(os.path.join(args.work, "docs.jsonl"))
    queries = read_jsonl(os.path.join(args.work, "queries.jsonl"))
    doc_ids = [d["id"] for d in docs]
    k = min(args.k, len(docs))
    runs, timings = {}, {}

    stemmer = Stemmer.Stemmer("english")
    t = time.perf_counter()
    corpus_tokens = bm25s.tokenize([d["text"] for d in docs], stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(k1=args.k1, b=args.b)
    retriever.index(corpus_tokens, show_progress=False)
    timings["bm25s_index_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    query_tokens = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    results, _scores = retriever.retrieve(query_tokens, k=k, show_progress=False, n_threads=1)
    timings["bm25s_query_seconds"] = time.perf_counter() - t
    runs["bm25s"] = {q["id"]: [doc_ids[i] for i in results[n]] for n, q in enumerate(queries)}
    log(f"bm25s ranked {len(queries)} queries")

    model = SentenceTransformer(args.model_dir, device="cpu")
    t = time.perf_counter()
    doc_emb = model.encode([d["text"] for d in docs], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    timings["st_encode_docs_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    q_emb = model.encode([q["text"] for q in queries], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    scores = q_emb @ doc_emb.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    timings["st_queries_seconds"] = time.perf_counter() - t
    runs["sentence_transformers"] = {q["id"]: [doc_ids[i] for i in top[n]] for n, q in enumerate(queries)}
    log(f"sentence-transformers ranked {len(queries)} queries")

    write_answer(args.work, {
        "versions": {
            "bm25s": bm25s.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
        },
        "parameters": {"bm25s": {"k1": args.k1, "b": args.b, "stopwords": "en", "stemmer": "snowball english"},
                       "k": k, "threads": args.threads},
        "timings": timings,
        "runs": runs,
    })


def sweep(name, set_ef, set_threads, search, queries, efs, k, threads):
    """Measures one system over the ef sweep."""
    points = []
    for ef in efs:
        set_ef(ef)
        set_threads(1)
        search(queries[:1], k)  # warm-up
        t = time.perf_counter()
        ids = search(queries, k)
        qps_1t = len(queries) / (time.perf_counter() - t)
        lat = []
        for i in range(len(queries)):
            t = time.perf_counter()
            search(queries[i:i + 1], k)
            lat.append(time.perf_counter() - t)
        set_threads(threads)
        t = time.perf_counter()
        search(queries, k)
        qps_mt = len(queries) / (time.perf_counter() - t)
        points.append({"ef": ef, "qps_1t": qps_1t, "qps_mt": qps_mt, "p50_ms": percentile_ms(lat, 50),
                       "p99_ms": percentile_ms(lat, 99), "ids": [[int(x) for x in row] for row in ids]})
        log(f"{name} ef={ef}: {qps_1t:.0f} QPS on 1 thread")
    return points


def hnswlib_build(base, space, m, ef_construction, threads):
    """Builds an hnswlib index over every row of base on threads threads; returns it and the seconds."""
    import hnswlib
    import numpy as np

    n, dim = base.shape
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=n, ef_construction=ef_construction, M=m, random_seed=100)
    index.set_num_threads(threads)
    t = time.perf_counter()
    index.add_items(base, np.arange(n))
    build = time.perf_counter() - t
    log(f"hnswlib built {n} in {build:.1f} s on {threads} threads")
    return index, build


def cmd_ann(args):
    import faiss
    import hnswlib
    import numpy as np

    base = np.ascontiguousarray(np.load(os.path.join(args.work, "base.npy")), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(os.path.join(args.work, "queries.npy")), dtype=np.float32)
    n, dim = base.shape
    efs = [int(e) for e in args.efs.split(",")]
    answer = {"versions": {"hnswlib": getattr(hnswlib, "__version__", "0.8.0"), "faiss": faiss.__version__,
                           "numpy": np.__version__}}

    index, build = hnswlib_build(base, "ip", args.m, args.ef_construction, args.threads)

    def hnsw_search(q, k):
        labels, _ = index.knn_query(q, k=k)
        return labels

    answer["hnswlib"] = {"build_seconds": build, "build_threads": args.threads,
                         "sweep": sweep("hnswlib", index.set_ef, index.set_num_threads, hnsw_search, queries, efs,
                                        args.k, args.threads)}
    del index

    faiss.omp_set_num_threads(args.threads)
    findex = faiss.IndexHNSWFlat(dim, args.m, faiss.METRIC_INNER_PRODUCT)
    findex.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    findex.add(base)
    build = time.perf_counter() - t
    log(f"faiss built in {build:.1f} s")

    def set_ef(ef):
        findex.hnsw.efSearch = ef

    def faiss_search(q, k):
        _, labels = findex.search(q, k)
        return labels

    answer["faiss"] = {"build_seconds": build, "build_threads": args.threads,
                       "sweep": sweep("faiss", set_ef, faiss.omp_set_num_threads, faiss_search, queries, efs,
                                      args.k, args.threads)}
    write_answer(args.work, answer)


def rss_bytes():
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def query_sweep(name, set_ef, search, queries, efs, k):
    """One client, one query per call: QPS, p50/p99 and the ids, per ef."""
    set_ef(max(efs))
    for q in queries[:100]:
        search(q, k)  # warm-up: page the index in, as the harness does for Quiver
    points = []
    for ef in efs:
        set_ef(ef)
        lat, ids = [], []
        start = time.perf_counter()
        for q in queries:
            t = time.perf_counter()
            ids.append(search(q, k))
            lat.append(time.perf_counter() - t)
        qps = len(queries) / (time.perf_counter() - start)
        points.append({"ef": ef, "qps_1c": qps, "p50_ms": percentile_ms(lat, 50), "p99_ms": percentile_ms(lat, 99),
                       "ids": ids})
        log(f"{name} ef={ef}: {qps:.0f} QPS, one client")
    return points


def chroma_insert(args, base, path):
    """A Chroma collection holding every row of base, added in batches of --batch; returns it and the seconds."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection(
        "bench_db", embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "max_neighbors": args.m,
                                "ef_construction": args.ef_construction, "ef_search": max(args.efs_list)}})
    n = len(base)
    t = time.perf_counter()
    for first in range(0, n, args.batch):
        last = min(n, first + args.batch)
        coll.add(ids=[str(i) for i in range(first, last)], embeddings=base[first:last],
                 metadatas=[{"i": i, "group": i % 10} for i in range(first, last)])
    ingest = time.perf_counter() - t
    if coll.count() != n:
        sys.exit(f"peers: chroma holds {coll.count()} of {n} documents")
    log(f"chroma inserted {n} in {ingest:.1f} s")
    return coll, ingest


def chroma_index(args):
    return f"Chroma HNSW, space cosine, max_neighbors {args.m}, ef_construction {args.ef_construction}"


def db_chroma(args, base, queries, path):
    import chromadb

    coll, ingest = chroma_insert(args, base, path)

    def set_ef(ef):
        coll.modify(configuration={"hnsw": {"ef_search": ef}})

    def search(q, k):
        r = coll.query(query_embeddings=[q], n_results=k, include=["metadatas", "distances"])
        return [int(x) for x in r["ids"][0]]

    sweep = query_sweep("chroma", set_ef, search, queries, args.efs_list, args.k)
    return {"index": f"{chroma_index(args)}, ef_search swept", "ingest_seconds": ingest, "index_seconds": 0.0,
            "sweep": sweep, "version": chromadb.__version__}


def lancedb_insert(args, base, path):
    """A LanceDB table holding every row of base, added in batches of --batch, then its IVF_HNSW_SQ index;
    returns it, the insert seconds and the index-build seconds."""
    import lancedb
    import pyarrow as pa

    n, dim = base.shape
    db = lancedb.connect(path)
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim)), ("i", pa.int64()),
                        ("group", pa.int64())])

    def batch(first, last):
        ids = pa.array(range(first, last), pa.int64())
        vecs = pa.FixedSizeListArray.from_arrays(pa.array(base[first:last].reshape(-1), pa.float32()), dim)
        groups = pa.array([i % 10 for i in range(first, last)], pa.int64())
        return pa.Table.from_arrays([ids, vecs, ids, groups], schema=schema)

    t = time.perf_counter()
    table = db.create_table("bench_db", schema=schema)
    for first in range(0, n, args.batch):
        table.add(batch(first, min(n, first + args.batch)))
    ingest = time.perf_counter() - t
    log(f"lancedb inserted {n} in {ingest:.1f} s")
    t = time.perf_counter()
    table.create_index(metric="cosine", index_type="IVF_HNSW_SQ", num_partitions=1, m=args.m,
                       ef_construction=args.ef_construction)
    index = time.perf_counter() - t
    log(f"lancedb built IVF_HNSW_SQ in {index:.1f} s")
    if table.count_rows() != n:
        sys.exit(f"peers: lancedb holds {table.count_rows()} of {n} rows")
    return table, ingest, index


def lancedb_index(args):
    return (f"LanceDB IVF_HNSW_SQ, 1 partition, m {args.m}, ef_construction {args.ef_construction}, "
            "8-bit scalar quantization")


def db_lancedb(args, base, queries, path):
    import lancedb

    table, ingest, index = lancedb_insert(args, base, path)
    state = {"ef": max(args.efs_list)}

    def set_ef(ef):
        # LanceDB refuses ef < k; hnswlib-based searches (Chroma, Quiver) search max(ef, k).
        state["ef"] = max(ef, args.k)

    def search(q, k):
        r = (table.search(q).distance_type("cosine").ef(state["ef"]).limit(k)
             .select(["id", "i", "group", "_distance"]).to_arrow())
        return r.column("id").to_pylist()

    sweep = query_sweep("lancedb", set_ef, search, queries, args.efs_list, args.k)
    return {"index": f"{lancedb_index(args)}, no refine, ef swept", "ingest_seconds": ingest,
            "index_seconds": index, "sweep": sweep, "version": lancedb.__version__}


def ingest_hnswlib(args, base, _path):
    import hnswlib

    _index, build = hnswlib_build(base, "cosine", args.m, args.ef_construction, args.threads)
    return {"index": f"hnswlib, space cosine, M {args.m}, ef_construction {args.ef_construction}, "
                     f"{args.threads} threads", "ingest_seconds": build, "index_seconds": 0.0, "threads": args.threads,
            "version": getattr(hnswlib, "__version__", "0.8.0")}


def ingest_chroma(args, base, path):
    import chromadb

    _coll, ingest = chroma_insert(args, base, path)
    return {"index": chroma_index(args), "ingest_seconds": ingest, "index_seconds": 0.0,
            "version": chromadb.__version__}


def ingest_lancedb(args, base, path):
    import lancedb

    _table, ingest, index = lancedb_insert(args, base, path)
    return {"index": lancedb_index(args), "ingest_seconds": ingest, "index_seconds": index,
            "version": lancedb.__version__}


def filter_queries(name, search, queries, filters, k):
    """One client: per filter, every query once (after a warm-up pass); p50/p99 and the ids."""
    out = []
    for f in filters:
        for q in queries[:20]:
            search(q, k, f)
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter()
            ids.append(search(q, k, f))
            lat.append(time.perf_counter() - t)
        out.append({"name": f["name"], "p50_ms": percentile_ms(lat, 50), "p99_ms": percentile_ms(lat, 99), "ids": ids})
        log(f"{name} filter {f['name']}: p50 {percentile_ms(lat, 50):.2f} ms")
    return out


def filter_chroma(args, base, queries, meta, filters, path):
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection(
        "bench_filter", embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "max_neighbors": args.m,
                                "ef_construction": args.ef_construction, "ef_search": args.efs_list[0]}})
    n = len(base)
    t = time.perf_counter()
    for first in range(0, n, args.batch):
        last = min(n, first + args.batch)
        metadatas = [{"tag": meta["tag"][i], "n": meta["n"][i], "price": meta["price"][i], "flag": meta["flag"][i]}
                     for i in range(first, last)]
        coll.add(ids=[str(i) for i in range(first, last)], embeddings=base[first:last], metadatas=metadatas)
    ingest = time.perf_counter() - t
    log(f"chroma inserted {n} in {ingest:.1f} s")

    def search(q, k, f):
        r = coll.query(query_embeddings=[q], n_results=k, where=f["chroma"], include=["distances"])
        return [int(x) for x in r["ids"][0]]

    return {"index": f"{chroma_index(args)}, ef_search {args.efs_list[0]}, where filters",
            "ingest_seconds": ingest, "index_seconds": 0.0,
            "filters": filter_queries("chroma", search, queries, filters, args.k), "version": chromadb.__version__}


def filter_lancedb(args, base, queries, meta, filters, path):
    import lancedb
    import pyarrow as pa

    n, dim = base.shape
    db = lancedb.connect(path)
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim)), ("tag", pa.string()),
                        ("n", pa.int64()), ("price", pa.float64()), ("flag", pa.bool_())])
    t = time.perf_counter()
    table = db.create_table("bench_filter", schema=schema)
    for first in range(0, n, args.batch):
        last = min(n, first + args.batch)
        vecs = pa.FixedSizeListArray.from_arrays(pa.array(base[first:last].reshape(-1), pa.float32()), dim)
        table.add(pa.Table.from_arrays([
            pa.array(range(first, last), pa.int64()), vecs, pa.array(meta["tag"][first:last], pa.string()),
            pa.array(meta["n"][first:last], pa.int64()), pa.array(meta["price"][first:last], pa.float64()),
            pa.array(meta["flag"][first:last], pa.bool_())], schema=schema))
    ingest = time.perf_counter() - t
    t = time.perf_counter()
    table.create_index(metric="cosine", index_type="IVF_HNSW_SQ", num_partitions=1, m=args.m,
                       ef_construction=args.ef_construction)
    # Scalar indexes on every filtered column, as LanceDB's docs advise for prefiltering.
    for column, kind in (("tag", "BITMAP"), ("n", "BTREE"), ("price", "BTREE"), ("flag", "BITMAP")):
        table.create_scalar_index(column, index_type=kind)
    index = time.perf_counter() - t
    log(f"lancedb inserted {n} in {ingest:.1f} s, indexed in {index:.1f} s")
    ef = max(args.efs_list[0], args.k)

    def search(q, k, f):
        r = (table.search(q).distance_type("cosine").where(f["lancedb"], prefilter=True).ef(ef).limit(k)
             .select(["id"]).to_arrow())
        return r.column("id").to_pylist()

    return {"index": f"{lancedb_index(args)}, ef {ef}, scalar indexes on the filtered columns, prefilter",
            "ingest_seconds": ingest, "index_seconds": index,
            "filters": filter_queries("lancedb", search, queries, filters, args.k), "version": lancedb.__version__}


def embed_texts(work):
    with open(os.path.join(work, "texts.json"), encoding="utf-8") as f:
        return json.load(f)


def embed_sentence_transformers(args, texts):
    """sentence-transformers alone: the texts encoded in its default batches."""
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(args.model_dir, device="cpu")
    model.encode(texts[:8])  # warm up outside the clock
    start = time.perf_counter()
    model.encode(texts, batch_size=32)
    return {"what": "SentenceTransformer.encode, batches of 32", "seconds": time.perf_counter() - start,
            "version": sentence_transformers.__version__}


def embed_chroma(args, texts):
    """Chroma embedded, its collection embedding with sentence-transformers on add."""
    import chromadb
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

    path = os.path.join(args.work, "chroma-embed-db")
    shutil.rmtree(path, ignore_errors=True)
    client = chromadb.PersistentClient(path=path)
    ef = SentenceTransformerEmbeddingFunction(model_name=args.model_dir, device="cpu")
    ef(texts[:8])  # loads and warms the model outside the clock
    coll = client.create_collection("embed", embedding_function=ef)
    start = time.perf_counter()
    for first in range(0, len(texts), args.batch):
        chunk = texts[first:first + args.batch]
        coll.add(ids=[str(first + i) for i in range(len(chunk))], documents=chunk)
    return {"what": f"Chroma collection with SentenceTransformerEmbeddingFunction, add in batches of {args.batch}",
            "seconds": time.perf_counter() - start, "version": chromadb.__version__}


def cmd_ingest_embed_one(args):
    """One system of `ingest-embed`, in this process; writes DIR/<system>.json."""
    import torch

    torch.set_num_threads(args.threads)
    texts = embed_texts(args.work)
    one = {"sentence-transformers": embed_sentence_transformers, "chroma": embed_chroma}[args.system]
    result = one(args, texts)
    result["documents"] = len(texts)
    with open(os.path.join(args.work, f"{args.system}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)


def cmd_ingest_embed(args):
    """Embedding on ingest: sentence-transformers alone and Chroma with it, each in its own process."""
    answer = {"versions": {}}
    for system in ("sentence-transformers", "chroma"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "ingest-embed-one", "--system", system,
                        "--work", args.work, "--model-dir", args.model_dir, "--batch", str(args.batch),
                        "--threads", str(args.threads)], check=True)
        with open(os.path.join(args.work, f"{system}.json"), encoding="utf-8") as f:
            result = json.load(f)
        answer["versions"][system] = result.pop("version")
        answer[system] = result
        log(f"{system}: {result['documents'] / result['seconds']:.1f} docs/s embedded on ingest")
    write_answer(args.work, answer)


def load_npy(work, name):
    import numpy as np

    return np.ascontiguousarray(np.load(os.path.join(work, name)), dtype=np.float32)


def cmd_one(args):
    """One system of `db` or `ingest`, in this process; writes DIR/<system>.json."""
    base = load_npy(args.work, "base.npy")
    args.efs_list = [int(e) for e in args.efs.split(",")]
    path = os.path.join(args.work, f"{args.system}-db")
    shutil.rmtree(path, ignore_errors=True)  # a fresh database every run
    before = rss_bytes()
    if args.bench == "db-one":
        queries = load_npy(args.work, "queries.npy")
        result = {"chroma": db_chroma, "lancedb": db_lancedb}[args.system](args, base, queries, path)
    elif args.bench == "filter-one":
        queries = load_npy(args.work, "queries.npy")
        with open(os.path.join(args.work, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(args.work, "filters.json"), encoding="utf-8") as f:
            filters = json.load(f)
        result = {"chroma": filter_chroma, "lancedb": filter_lancedb}[args.system](
            args, base, queries, meta, filters, path)
    else:
        result = {"hnswlib": ingest_hnswlib, "chroma": ingest_chroma,
                  "lancedb": ingest_lancedb}[args.system](args, base, path)
    result["rss_bytes"] = max(0, rss_bytes() - before)
    result["disk_bytes"] = dir_bytes(path)
    with open(os.path.join(args.work, f"{args.system}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)


def each_in_own_process(args, one, systems):
    """Runs `one` per system in a process of its own, so none's memory or threads touch another."""
    import numpy as np

    answer = {"versions": {"numpy": np.__version__, "python": sys.version.split()[0]}}
    for system in systems:
        subprocess.run([sys.executable, os.path.abspath(__file__), one, "--system", system, "--work", args.work,
                        "--m", str(args.m), "--ef-construction", str(args.ef_construction), "--efs", args.efs,
                        "--k", str(args.k), "--batch", str(args.batch), "--threads", str(args.threads)], check=True)
        with open(os.path.join(args.work, f"{system}.json"), encoding="utf-8") as f:
            result = json.load(f)
        answer["versions"][system] = result.pop("version")
        answer[system] = result
    write_answer(args.work, answer)


def cmd_db(args):
    each_in_own_process(args, "db-one", ("chroma", "lancedb"))


def cmd_filter(args):
    each_in_own_process(args, "filter-one", ("chroma", "lancedb"))


def cmd_ingest(args):
    each_in_own_process(args, "ingest-one", ("hnswlib", "chroma", "lancedb"))


def cmd_embed(args):
    import torch
    import transformers

    with open(os.path.join(args.model_dir, "config.json"), encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    answer = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
              "threads": args.threads, "embed": {}}
    work_file = os.path.join(args.work, "work.json")
    if model_type == "qwen3":
        # The Qwen3 path (last-token pooling, reranker) lives in embed_throughput.py.
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run([sys.executable, os.path.join(here, "embed_throughput.py"), "--model-dir", args.model_dir,
                              "--tokenizer", os.path.join(args.model_dir, "tokenizer.json"), "--work", work_file,
                              "--threads", str(args.threads), "--min-seconds", str(args.min_seconds),
                              "--max-runs", str(args.max_runs)], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            row = json.loads(line)
            if row["kind"] == "embed":
                answer["embed"][row["shape"]] = {"tokens": row["tokens"], "seconds": row["seconds"]}
            else:
                answer["rerank"] = {"pairs": row["pairs"], "tokens": row["tokens"], "seconds": row["seconds"]}
        write_answer(args.work, answer)
        return

    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.set_num_threads(args.threads)
    max_len = 512
    sb = os.path.join(args.model_dir, "sentence_bert_config.json")
    if os.path.exists(sb):
        with open(sb, encoding="utf-8") as f:
            max_len = json.load(f).get("max_seq_length") or max_len
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.enable_truncation(max_len)
    tok.enable_padding(pad_id=0)
    model = AutoModel.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with open(work_file, encoding="utf-8") as f:
        work = json.load(f)

    def embed(texts):
        enc = tok.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        with torch.inference_mode():
            hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            m = mask.unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1), int(mask.sum())

    for shape, texts in work.get("embed", {}).items():
        _, tokens = embed(texts)
        seconds = timed(lambda: embed(texts), args.min_seconds, args.max_runs)
        answer["embed"][shape] = {"tokens": tokens, "seconds": seconds}
        log(f"transformers {shape}: {tokens / seconds:.0f} tokens/s")
    write_answer(args.work, answer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    ir = sub.add_parser("ir")
    ir.add_argument("--model-dir", required=True)
    ir.add_argument("--k", type=int, default=100)
    ir.add_argument("--k1", type=float, default=1.2)
    ir.add_argument("--b", type=float, default=0.75)
    ann = sub.add_parser("ann")
    ann.add_argument("--m", type=int, default=16)
    ann.add_argument("--ef-construction", type=int, default=200)
    ann.add_argument("--efs", default="16,32,64,128,256")
    ann.add_argument("--k", type=int, default=10)
    emb = sub.add_parser("embed")
    emb.add_argument("--model-dir", required=True)
    emb.add_argument("--min-seconds", type=float, default=2.0)
    emb.add_argument("--max-runs", type=int, default=10)
    db = sub.add_parser("db")
    one = sub.add_parser("db-one")
    one.add_argument("--system", choices=["chroma", "lancedb"], required=True)
    filt = sub.add_parser("filter")
    filt_one = sub.add_parser("filter-one")
    filt_one.add_argument("--system", choices=["chroma", "lancedb"], required=True)
    ingest = sub.add_parser("ingest")
    ingest_one = sub.add_parser("ingest-one")
    ingest_one.add_argument("--system", choices=["hnswlib", "chroma", "lancedb"], required=True)
    ingest_embed = sub.add_parser("ingest-embed")
    ingest_embed_one = sub.add_parser("ingest-embed-one")
    ingest_embed_one.add_argument("--system", choices=["sentence-transformers", "chroma"], required=True)
    for p in (ingest_embed, ingest_embed_one):
        p.add_argument("--model-dir", required=True)
        p.add_argument("--batch", type=int, default=256)
    for p in (db, one, filt, filt_one, ingest, ingest_one):
        p.add_argument("--m", type=int, default=16)
        p.add_argument("--ef-construction", type=int, default=200)
        p.add_argument("--efs", default="16,32,64,128,256")
        p.add_argument("--k", type=int, default=10)
        p.add_argument("--batch", type=int, default=1000)
    for p in (ir, ann, emb, db, one, filt, filt_one, ingest, ingest_one, ingest_embed, ingest_embed_one):
        p.add_argument("--work", required=True)
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    {"ir": cmd_ir, "ann": cmd_ann, "embed": cmd_embed, "db": cmd_db, "db-one": cmd_one, "filter": cmd_filter,
     "filter-one": cmd_one, "ingest": cmd_ingest,
     "ingest-one": cmd_one, "ingest-embed": cmd_ingest_embed,
     "ingest-embed-one": cmd_ingest_embed_one}[args.bench](args)


if __name__ == "__main__":
    main()
