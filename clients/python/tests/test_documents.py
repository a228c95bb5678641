"""Documents: upserts in batches (Documents, dicts, generators, numpy), reads, deletes,
ids that need escaping, progress bars, and each error a write can meet."""

from __future__ import annotations

import numpy as np
import pytest

from quiver_client import (BadRequestError, Document, NotFoundError, PayloadTooLargeError,
                           Quiver, UnprocessableError, UpsertError, UpsertResult)

from conftest import DIM, EMBEDDER, vec


def test_upsert_get_roundtrip_with_documents_and_dicts(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=4)
    r = q.upsert(name, [
        Document("a", "alpha text", {"n": 1, "tags": ["x", "y"], "nested": {"k": True}}, [1, 0, 0, 0]),
        {"id": "b", "vector": [0, 1, 0, 0]},
    ])
    assert r == UpsertResult(upserted=2, batches=1, lsn=r.lsn, lsns=[r.lsn]) and r.lsn > 0
    a = q.get(name, "a")
    assert a == Document("a", "alpha text", {"n": 1, "tags": ["x", "y"], "nested": {"k": True}},
                         [1.0, 0.0, 0.0, 0.0])
    b = q.get(name, "b")
    assert b is not None and b.text == "" and b.metadata == {}
    # A later write of the same id replaces it.
    q.upsert(name, [Document("a", "new", vector=[0, 0, 1, 0])])
    a = q.get(name, "a")
    assert a is not None and a.text == "new" and a.metadata == {} and a.vector == [0, 0, 1, 0]
    assert q.get_collection(name).count == 2


def test_ids_that_need_escaping(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=2)
    ids = ["a/b", "c d", "e?f=g&h", "100%", "ü-ñ-日本", "#frag", "..", ".", "...", "x+y"]
    q.upsert(name, [{"id": i, "vector": [1, 1]} for i in ids])
    assert [d.id for d in q.get_many(name, ids)] == ids
    assert q.delete_many(name, ids) == len(ids)
    assert q.get_collection(name).count == 0


def test_batches_generators_and_progress(q: Quiver, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    q.create_collection(name, dim=DIM)
    docs = (Document(f"d{i}", f"text {i}", {"i": i}, vec(i)) for i in range(50))
    r = q.upsert(name, docs, batch_size=7, progress=True)
    assert (r.upserted, r.batches, len(r.lsns)) == (50, 8, 8)
    assert r.lsns == sorted(r.lsns) and len(set(r.lsns)) == 8 and r.lsn == r.lsns[-1]
    assert "upsert" in capsys.readouterr().err  # the tqdm bar
    q.upsert(name, [Document("quiet", vector=vec(1))], progress=None)  # stderr is no TTY here
    assert capsys.readouterr().err == ""
    assert q.get_collection(name).count == 51
    assert q.upsert(name, [], progress=False) == UpsertResult()


def test_numpy_vectors(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=DIM)
    m = np.stack([np.asarray(vec(i), dtype=np.float32) for i in range(10)])
    # 1-D arrays inside documents, numpy scalars in metadata.
    q.upsert(name, [{"id": "np0", "vector": m[0], "metadata": {"n": np.int64(7), "f": np.float32(0.5)}}])
    # A 2-D array beside documents without vectors.
    q.upsert(name, [Document(f"np{i}", f"t{i}") for i in range(1, 10)], vectors=m[1:], batch_size=4)
    got = q.get(name, "np3")
    assert got is not None
    # Cosine collections store unit vectors.
    np.testing.assert_allclose(got.vector, m[3] / np.linalg.norm(m[3]), rtol=1e-5)
    assert q.get(name, "np0").metadata == {"n": 7, "f": 0.5}  # type: ignore[union-attr]
    hits = q.query(name, vector=m[5], top_k=1, exact=True).hits
    assert hits[0].id == "np5"
    with pytest.raises(ValueError, match="rows"):
        q.upsert(name, [Document("x")], vectors=m[:2])
    with pytest.raises(ValueError, match="2-D"):
        q.upsert(name, [Document("x")], vectors=m[0])
    with pytest.raises(ValueError, match="1-D"):
        q.upsert(name, [{"id": "x", "vector": m}])
    with pytest.raises(ValueError, match="NaN"):
        q.upsert(name, [{"id": "x", "vector": [float("nan")] * DIM}])


def test_server_embeds_texts_without_vectors(q: Quiver, name: str) -> None:
    q.create_collection(name, embedding_model=EMBEDDER)
    q.upsert(name, [{"id": "e1", "text": "the cat sat on the mat"}])
    d = q.get(name, "e1")
    assert d is not None and len(d.vector) == DIM  # type: ignore[arg-type]
    assert np.allclose(d.vector, q.embed("the cat sat on the mat")[0], atol=1e-5)


def test_get_and_delete_of_missing_documents(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=2)
    q.upsert(name, [{"id": i, "vector": [1, 0]} for i in ("a", "b", "c")])
    assert q.get(name, "zzz") is None
    assert [d.id for d in q.get_many(name, ["c", "nope", "a"])] == ["c", "a"]
    assert q.delete(name, "b") is True
    assert q.delete(name, "b") is False
    assert q.delete_many(name, ["a", "b", "nope"]) == 1
    assert [d.id for d in q.get_many(name, ["a", "b", "c"])] == ["c"]
    # A missing collection is an error, never a missing document.
    for call in (lambda: q.get(name + "x", "a"), lambda: q.delete(name + "x", "a"),
                 lambda: q.upsert(name + "x", [{"id": "a", "vector": [1, 0]}])):
        with pytest.raises(NotFoundError, match="collection"):
            call()


def test_a_bad_batch_names_itself_and_what_was_acknowledged(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=3)
    docs = [{"id": f"k{i}", "vector": [1, 2, 3]} for i in range(10)]
    docs[6]["vector"] = [1, 2]  # wrong length, in the third batch of 3
    with pytest.raises(UpsertError) as e:
        q.upsert(name, docs, batch_size=3)
    err = e.value
    assert isinstance(err, BadRequestError) and err.status == 400 and err.code == "invalid_input"
    assert err.batch == 2 and err.failed_ids == ["k6", "k7", "k8"]
    assert err.acknowledged == 6 and err.acknowledged_ids == [f"k{i}" for i in range(6)]
    assert err.lsn is not None and isinstance(err.cause, BadRequestError)
    assert err.cause.message in err.message and "batch 2" in str(err)
    assert "\"k6\"" in err.cause.message  # the server names the document
    # Nothing of the failed batch was written, the earlier batches were.
    assert q.get_collection(name).count == 6 and q.get(name, "k7") is None


def test_write_errors(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=2)
    with pytest.raises(UnprocessableError, match="vector is required"):
        q.upsert(name, [{"id": "a", "text": "no vector, no model"}])
    with pytest.raises(PayloadTooLargeError) as e:
        q.upsert(name, [{"id": f"{i}", "vector": [1, 0]} for i in range(1025)], batch_size=2000)
    assert e.value.code == "too_large" and "1024" in e.value.message
    assert isinstance(e.value, UpsertError) and e.value.failed_ids[0] == "0"
    with pytest.raises(BadRequestError, match="not empty|must not be empty"):
        q.upsert(name, [{"id": "", "vector": [1, 0]}])
    with pytest.raises(PayloadTooLargeError, match="text"):
        q.upsert(name, [{"id": "big", "text": "x" * (64 * 1024 + 1), "vector": [1, 0]}])
    with pytest.raises(BadRequestError) as e2:
        q.get(name, "x" * 600)
    assert "limit" in e2.value.message
    with pytest.raises(ValueError):
        q.upsert(name, [{"id": "a", "vector": [1, 0], "extra": 1}])
    with pytest.raises(ValueError):
        q.get(name, "")
    assert q.get_collection(name).count == 0


def test_a_document_that_cannot_be_sent_says_what_was_written(q: Quiver, name: str) -> None:
    q.create_collection(name, dim=2)
    docs = [{"id": f"g{i}", "vector": [1, 0]} for i in range(5)] + [{"id": 7, "vector": [1, 0]}]
    with pytest.raises(TypeError) as e:
        q.upsert(name, docs, batch_size=2)
    assert "documents[5]" in str(e.value) and "4 documents in 2 earlier batches" in str(e.value)
    assert q.get_collection(name).count == 4
