"""Collections: create with every option, list, describe, exist, flush, delete, and the
errors each step can raise."""

from __future__ import annotations

import pytest

from quiver_client import (BadRequestError, CollectionInfo, ConflictError, NotFoundError,
                           Quiver, QuiverError, UnprocessableError)

from conftest import DIM, EMBEDDER, RERANKER


def test_create_with_own_vectors_and_every_option(q: Quiver, name: str) -> None:
    info = q.create_collection(
        name, dim=8, distance="dot", index_dim=4, task="find things", analyzer="simple",
        hnsw={"m": 8, "ef_construction": 50, "ef_search": 20}, bm25={"k1": 0.9, "b": 0.5},
        rescore=10)
    assert isinstance(info, CollectionInfo)
    assert (info.name, info.dim, info.distance, info.count) == (name, 8, "dot", 0)
    c = info.config
    assert c is not None
    assert (c.index_dim, c.task, c.analyzer, c.rescore) == (4, "find things", "simple", 10)
    assert c.hnsw == {"m": 8, "ef_construction": 50, "ef_search": 20}
    assert c.bm25 == {"k1": 0.9, "b": 0.5}
    assert info.embedding_model is None and info.read_only is False
    assert info.maintenance is not None and info.maintenance.seals == 0
    assert q.get_collection(name).config == c


def test_create_with_models(q: Quiver, name: str) -> None:
    info = q.create_collection(name, embedding_model=EMBEDDER, reranker_model=RERANKER)
    assert info.dim == DIM
    assert info.embedding_model == EMBEDDER and info.reranker_model == RERANKER


def test_list_exists_delete(q: Quiver, name: str) -> None:
    assert not q.collection_exists(name)
    q.create_collection(name, dim=3)
    listed = {c.name: c for c in q.list_collections()}
    assert listed[name].dim == 3 and listed[name].count == 0 and listed[name].distance == "cosine"
    assert listed[name].config is None  # the list holds summaries only
    assert listed[name].embedding_model is None and listed[name].segments == 0
    assert listed[name].disk_bytes > 0 and q.get_collection(name).disk_bytes > 0
    assert q.collection_exists(name)
    q.delete_collection(name)
    assert not q.collection_exists(name)
    assert name not in {c.name for c in q.list_collections()}


def test_flush_seals_the_memtable(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=2)
    assert q.flush(name) is False  # nothing to seal
    q.upsert(name, [{"id": "a", "vector": [1.0, 0.0]}])
    assert q.flush(name) is True
    info = q.get_collection(name)
    assert info.segments == 1 and info.memtable_entries == 0 and info.count == 1


def test_duplicate_create_is_a_conflict(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=3)
    with pytest.raises(ConflictError) as e:
        q.create_collection(name, dim=3)
    assert e.value.status == 409 and e.value.code == "conflict"
    assert name in e.value.message and e.value.attempts == 1


@pytest.mark.parametrize("bad,code,words", [
    ("has space", "invalid_name", "name"),
    ("x" * 65, "invalid_name", "name"),
])
def test_invalid_names(q: Quiver, bad: str, code: str, words: str) -> None:
    with pytest.raises(BadRequestError) as e:
        q.create_collection(bad, dim=3)
    assert e.value.code == code and words in e.value.message


def test_bad_settings_are_400_with_the_servers_message(q: Quiver, name: str) -> None:
    with pytest.raises(BadRequestError) as e:
        q.create_collection(name)
    assert e.value.message == "dim is required when no embedding_model is set"
    with pytest.raises(BadRequestError) as e:
        q.create_collection(name, dim=4, bm25={"k1": -1.0})
    assert "bm25.k1" in e.value.message
    with pytest.raises(BadRequestError) as e:
        q.create_collection(name, embedding_model=EMBEDDER, dim=16)
    assert "width 32" in e.value.message
    with pytest.raises(BadRequestError) as e:  # the server denies unknown fields
        q.create_collection(name, dim=4, hnsw={"M": 4})
    assert e.value.code == "invalid_json"
    assert not q.collection_exists(name)


def test_unknown_model_is_422(q: Quiver, name: str) -> None:
    with pytest.raises(UnprocessableError) as e:
        q.create_collection(name, embedding_model="nobody/nothing")
    assert e.value.status == 422 and e.value.code == "unprocessable"
    assert "nobody/nothing" in e.value.message


def test_unknown_collection_is_404(q: Quiver, name: str) -> None:
    for call in (lambda: q.get_collection(name), lambda: q.delete_collection(name),
                 lambda: q.flush(name)):
        with pytest.raises(NotFoundError) as e:
            call()
        assert e.value.code == "not_found" and name in e.value.message
        assert isinstance(e.value, QuiverError) and e.value.status == 404


def test_client_side_checks(q: Quiver) -> None:
    with pytest.raises(ValueError):
        q.get_collection("")
