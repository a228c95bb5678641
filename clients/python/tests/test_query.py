"""Queries: dense, sparse and hybrid, filters built with ``quiver_client.filters``,
fusion, rerank, explain, exact search, and the errors of a bad query."""

from __future__ import annotations

import numpy as np
import pytest

from quiver_client import (BadRequestError, ConflictError, Document, Field, Hit, NotFoundError,
                           QueryResult, Quiver, UnprocessableError, combine, must, must_not,
                           should)

from conftest import DIM, EMBEDDER, RERANKER, vec

TEXTS = [
    "heat transfer in boundary layers",
    "supersonic flow over a wedge",
    "boundary layer separation at high speed",
    "the structure of turbulent jets",
    "heat conduction in thin plates",
    "shock waves and supersonic wedges",
]


@pytest.fixture
def papers(q: Quiver, name: str) -> str:
    q.create_collection(name, embedding_model=EMBEDDER, reranker_model=RERANKER)
    q.upsert(name, [
        Document(f"p{i}", t, {"year": 1950 + 5 * i, "lang": "de" if i % 2 else "en",
                             "tags": ["heat"] if "heat" in t else ["flow"], "meta": {"ok": i < 3}})
        for i, t in enumerate(TEXTS)
    ])
    return name


def test_modes(q: Quiver, papers: str) -> None:
    sparse = q.query(papers, text="supersonic wedge", mode="sparse", top_k=3)
    assert isinstance(sparse, QueryResult) and all(isinstance(h, Hit) for h in sparse)
    assert set(sparse.ids[:2]) == {"p1", "p5"} and len(sparse) == 2  # only they hold the words
    assert "sparse" in sparse.timings_ms and "total" in sparse.timings_ms
    assert sparse.raw["hits"][0]["id"] == sparse.hits[0].id
    for h in sparse:  # the words that matched, stems included ("wedges")
        words = sorted(h.text[a:b] for a, b in h.highlights)
        assert words in (["supersonic", "wedge"], ["supersonic", "wedges"]), (h.text, words)
    dense = q.query(papers, text="supersonic wedge", mode="dense", top_k=6)
    assert len(dense.hits) == 6 and dense.hits[0].score >= dense.hits[-1].score
    assert all(h.highlights == [] for h in dense)
    unmarked = q.query(papers, text="supersonic wedge", mode="sparse", highlight=False)
    assert unmarked.ids == sparse.ids and all(h.highlights == [] for h in unmarked)
    hybrid = q.query(papers, text="supersonic wedge", top_k=6, explain=True)
    top = hybrid.hits[0]
    assert top.explain is not None and set(top.explain) >= {"dense", "sparse", "fused"}
    assert top.text in TEXTS and top.metadata["year"] >= 1950
    assert q.query(papers, text="supersonic wedge", mode="sparse").hits[0].explain is None


def test_vector_queries_and_numpy(q: Quiver, papers: str) -> None:
    target = q.get(papers, "p3")
    assert target is not None
    v = np.asarray(target.vector, dtype=np.float32)
    for query_vector in (v, target.vector, v.astype(np.float64)):
        r = q.query(papers, vector=query_vector, top_k=1, exact=True)
        assert r.ids == ["p3"] and r.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert q.query(papers, vector=v, top_k=2, ef=8).ids[0] == "p3"


def test_filters(q: Quiver, papers: str) -> None:
    def ids(f: dict) -> set[str]:
        return set(q.query(papers, vector=vec(0), top_k=10, filter=f, exact=True).ids)

    assert ids(must(Field("year").gte(1960))) == {"p2", "p3", "p4", "p5"}
    assert ids(must(Field("year").between(1955, 1965))) == {"p1", "p2", "p3"}
    assert ids(must(Field("year").gt(1955), Field("year").lt(1965))) == {"p2"}
    assert ids(must(Field("lang").eq("de"))) == {"p1", "p3", "p5"}
    assert ids(must(Field("lang").ne("de"))) == {"p0", "p2", "p4"}
    assert ids(must(Field("tags").any(["heat"]))) == {"p0", "p4"}
    assert ids(must(Field("tags").none_of(["heat"]))) == {"p1", "p2", "p3", "p5"}
    assert ids(must(Field("meta.ok").eq(True))) == {"p0", "p1", "p2"}
    assert ids(should(Field("year").lte(1950), Field("year").gte(1975))) == {"p0", "p5"}
    assert ids(must(Field("lang").eq("en")) | must_not(Field("year").lte(1950))) == {"p2", "p4"}
    assert ids(combine(must(Field("lang").eq("en")), must(Field("tags").eq("heat")))) == {"p0", "p4"}
    assert ids(must(Field("nope").eq("x"))) == set()
    with pytest.raises(BadRequestError) as e:
        q.query(papers, text="x", filter={"must": [{"key": "year", "range": {"gte": "old"}}]})
    assert "must[0].range" in e.value.message and e.value.code == "invalid_input"


def test_fusion_and_rerank(q: Quiver, papers: str) -> None:
    w = q.query(papers, text="heat boundary", fusion={"method": "weighted", "alpha": 0.3}, explain=True)
    rrf = q.query(papers, text="heat boundary", fusion="rrf", explain=True)
    assert w.hits and rrf.hits and w.hits[0].explain["fused"] is not None  # type: ignore[index]
    r = q.query(papers, text="heat boundary", top_k=3, rerank=True, explain=True)
    assert len(r.hits) == 3 and "rerank" in r.timings_ms
    assert all(h.explain and "rerank" in h.explain for h in r.hits)
    assert [h.score for h in r.hits] == sorted((h.score for h in r.hits), reverse=True)
    opts = q.query(papers, text="heat", top_k=2,
                   rerank={"candidates": 4, "instruction": "find heat papers"})
    assert len(opts.hits) == 2


def test_query_errors(q: Quiver, papers: str, name: str) -> None:
    with pytest.raises(BadRequestError, match="top_k must be in 1..="):
        q.query(papers, text="x", top_k=0)
    with pytest.raises(BadRequestError, match="ef must be"):
        q.query(papers, text="x", ef=5000)
    with pytest.raises(BadRequestError, match="fusion"):
        q.query(papers, text="x", fusion={"method": "rrf", "alpha": 0.5})
    with pytest.raises(BadRequestError):
        q.query(papers, vector=[1.0, 2.0])  # wrong dimension
    with pytest.raises(NotFoundError, match="collection"):
        q.query(papers + "missing", text="x")
    with pytest.raises(ValueError):
        q.query(papers)
    # Rerank without a reranker configured: the server refuses it as unsupported.
    plain = name + "plain"
    q.create_collection(plain, dim=DIM)
    q.upsert(plain, [Document("a", "words", vector=vec(1))])
    with pytest.raises((UnprocessableError, BadRequestError)) as e:
        q.query(plain, text="words", vector=vec(1), rerank=True)
    assert "rerank" in e.value.message


def test_long_texts_come_back_in_chunks(q: Quiver, name: str) -> None:
    info = q.create_collection(name, embedding_model=EMBEDDER,
                               chunking={"max_tokens": 10, "overlap_tokens": 2})
    assert info.config.chunking == {"max_tokens": 10, "overlap_tokens": 2,
                                    "strategy": "sentence"}
    long = ("Glaciers move slowly down the valley. They carve deep lakes. "
            "Meltwater feeds the rivers below in summer. Ice cores record old climates.")
    q.upsert(name, [{"id": "long", "text": long}, {"id": "short", "text": "a glacier"}])
    doc = q.get(name, "long", chunks=True)
    assert doc is not None and doc.chunks is not None and len(doc.chunks) >= 3
    assert all(long[c.start:c.end] == c.text for c in doc.chunks)
    assert q.get(name, "short", chunks=True).chunks == []
    assert q.get(name, "long").chunks is None
    last = doc.chunks[-1]
    hits = q.query(name, text=last.text, mode="dense", top_k=2, explain=True).hits
    assert hits[0].id == "long" and hits[0].chunks[0].chunk == last.chunk
    assert hits[0].chunks[0].text == last.text and hits[0].explain["chunk"] == last.chunk
    assert [h.id for h in hits] == ["long", "short"]
    per_chunk = q.query(name, text="glaciers rivers ice", mode="sparse", group_by="chunk")
    chunks = [h.chunks[0].chunk for h in per_chunk.hits if h.id == "long"]
    assert len(chunks) >= 2 and len(set(chunks)) == len(chunks)
    summed = q.query(name, text=last.text, mode="dense", chunk_score="sum", top_k=2)
    assert summed.ids[0] == "long"
    with pytest.raises(ConflictError, match="quiver import"):
        q.set_chunking(name, False)
    other = q.create_collection(name + "y", embedding_model=EMBEDDER)
    assert other.config.chunking is not None and other.config.chunking["strategy"] == "sentence"
    assert q.set_chunking(name + "y", False).config.chunking is None
    with pytest.raises(BadRequestError, match="chunking.overlap_tokens"):
        q.create_collection(name + "x", embedding_model=EMBEDDER,
                            chunking={"max_tokens": 4, "overlap_tokens": 4})
