"""The asyncio client against the same server: every kind of call, concurrent reads
and deletes, numpy input, typed errors and batch failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from quiver_client import (AsyncQuiver, BadRequestError, ConflictError, Document, Field,
                           NotFoundError, UnprocessableError, UpsertError, must)

from conftest import DIM, EMBEDDER, RERANKER, vec


async def test_collections_and_documents(aq: AsyncQuiver, name: str) -> None:
    info = await aq.create_collection(name, dim=DIM, distance="l2")
    assert info.distance == "l2" and await aq.collection_exists(name)
    with pytest.raises(ConflictError):
        await aq.create_collection(name, dim=DIM)
    m = np.stack([np.asarray(vec(i), dtype=np.float32) for i in range(40)])
    r = await aq.upsert(name, [Document(f"a{i}", f"text {i}", {"i": i}) for i in range(40)],
                        vectors=m, batch_size=16)
    assert (r.upserted, r.batches) == (40, 3)
    assert name in {c.name for c in await aq.list_collections()}
    assert (await aq.get_collection(name)).count == 40
    ids = [f"a{i}" for i in (39, 0, 17)] + ["missing"]
    assert [d.id for d in await aq.get_many(name, ids)] == ids[:3]
    assert await aq.get(name, "missing") is None
    got = await aq.get(name, "a5")
    assert got is not None and got.metadata == {"i": 5}
    np.testing.assert_allclose(got.vector, m[5], rtol=1e-6)  # l2 keeps vectors as given
    hits = await aq.query(name, vector=m[7], top_k=3, filter=must(Field("i").gte(5)), exact=True)
    assert hits.ids[0] == "a7" and all(h.metadata["i"] >= 5 for h in hits)
    assert await aq.delete(name, "a0") is True and await aq.delete(name, "a0") is False
    assert await aq.delete_many(name, [f"a{i}" for i in range(20)] + ["nope"]) == 19
    assert (await aq.get_collection(name)).count == 20
    assert await aq.flush(name) is True
    await aq.delete_collection(name)
    assert not await aq.collection_exists(name)
    with pytest.raises(NotFoundError):
        await aq.get_collection(name)


async def test_concurrent_calls_share_one_client(aq: AsyncQuiver, name: str) -> None:
    await aq.create_collection(name, embedding_model=EMBEDDER, reranker_model=RERANKER)
    await asyncio.gather(*(aq.upsert(name, [Document(f"c{i}", f"document number {i}")])
                           for i in range(12)))
    results = await asyncio.gather(*(aq.query(name, text=f"number {i}", top_k=3) for i in range(8)))
    assert all(len(r.hits) == 3 for r in results)
    reranked = await aq.query(name, text="number", top_k=2, rerank=True)
    assert len(reranked.hits) == 2


async def test_models(aq: AsyncQuiver) -> None:
    e = await aq.embed(["a", "b"], model=EMBEDDER)
    o = await aq.embeddings(["a", "b"])
    assert np.allclose(e, o, atol=1e-6) and len(e[0]) == DIM
    ranks = await aq.rerank("a", ["a", "b", "c"], return_text=True)
    assert sorted(r.index for r in ranks) == [0, 1, 2] and ranks[0].text is not None
    with pytest.raises(UnprocessableError):
        await aq.embed("x", model="nobody/nothing")
    assert await aq.health() == "ok" and await aq.ready()
    assert "quiver_" in await aq.metrics() and "paths" in await aq.openapi()


async def test_snapshots(aq: AsyncQuiver, name: str, tmp_path: Path) -> None:
    await aq.create_collection(name, dim=4)
    await aq.upsert(name, [{"id": "x", "vector": [1, 2, 3, 4]}])
    snap = await aq.create_snapshot(name, name="s1")
    assert [s.name for s in await aq.list_snapshots(name)] == ["s1"]
    path = await aq.download_snapshot("s1", tmp_path, collection=name)
    assert path.stat().st_size == snap.size
    restored = await aq.restore_snapshot(path=path, collection=name, target=name + "-r")
    assert restored[0].documents == 1
    restored = await aq.restore_snapshot("s1", collection=name, target=name + "-n")
    assert restored[0].name == name + "-n"
    await aq.delete_snapshot("s1", name)
    assert await aq.list_snapshots(name) == []


async def test_a_bad_batch(aq: AsyncQuiver, name: str) -> None:
    await aq.create_collection(name, dim=2)
    docs = [{"id": f"b{i}", "vector": [1, 0]} for i in range(5)]
    docs[3]["vector"] = [1, 0, 0]
    with pytest.raises(UpsertError) as e:
        await aq.upsert(name, docs, batch_size=2)
    assert isinstance(e.value, BadRequestError)
    assert (e.value.batch, e.value.failed_ids, e.value.acknowledged) == (1, ["b2", "b3"], 2)
