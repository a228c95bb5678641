"""Every API call, built once: the request (method, path, body, whether it may be
retried) and how its answer is read. The sync and async clients only run these.

Batched upserts are planned here too (:func:`upsert_batches`), so both clients split
documents, convert vectors and report a failed batch the same way.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote

import httpx

from .errors import ConflictError, NotFoundError, QuiverError, upsert_error
from .models import (
    CollectionInfo,
    Document,
    ModelInfo,
    QueryResult,
    Rank,
    Snapshot,
    SnapshotCollection,
    UpsertResult,
    _vector,
)
from ._http import Call, parse_json

DocumentLike = Document | Mapping[str, Any]


def _seg(s: str, what: str) -> str:
    if not isinstance(s, str) or not s:
        raise ValueError(f"{what} must be a non-empty string, got {s!r}")
    # Ids may hold any character: '/', '?', '%' and spaces must stay inside one segment,
    # and a segment of only dots would be removed as "." or ".." by URL normalization.
    seg = quote(s, safe="")
    return seg.replace(".", "%2E") if seg.strip(".") == "" else seg


def _col(name: str) -> str:
    return f"/collections/{_seg(name, 'collection name')}"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _is_document_404(e: QuiverError, collection: str) -> bool:
    # The document routes answer 404 for a missing document and for a missing
    # collection; the latter's message names it as `collection "<name>"` (names are
    # [A-Za-z0-9_-], so that spelling is exact). Only the former means "no such
    # document".
    return isinstance(e, NotFoundError) and f'collection "{collection}"' not in e.message


# Collections ---------------------------------------------------------------------------

def create_collection(
    name: str,
    *,
    dim: int | None = None,
    embedding_model: str | None = None,
    reranker_model: str | None = None,
    distance: str | None = None,
    index_dim: int | None = None,
    task: str | None = None,
    analyzer: str | None = None,
    hnsw: Mapping[str, Any] | None = None,
    bm25: Mapping[str, Any] | None = None,
    rescore: int | None = None,
    chunking: Mapping[str, Any] | bool | None = None,
) -> Call[CollectionInfo]:
    body = _drop_none({
        "chunking": dict(chunking) if isinstance(chunking, Mapping) else chunking,
        "dim": dim, "embedding_model": embedding_model, "reranker_model": reranker_model,
        "distance": distance, "index_dim": index_dim, "task": task, "analyzer": analyzer,
        "hnsw": dict(hnsw) if hnsw is not None else None,
        "bm25": dict(bm25) if bm25 is not None else None, "rescore": rescore,
    })
    return Call("PUT", _col(name), json=body, idempotent=True,
                parse=lambda r: CollectionInfo.from_json(parse_json(r)))


def created_by_lost_answer(e: QuiverError) -> bool:
    """A 409 to a create that was sent more than once: the first attempt created the
    collection and its answer was lost, so the collection is the caller's."""
    return isinstance(e, ConflictError) and e.attempts > 1


def list_collections() -> Call[list[CollectionInfo]]:
    return Call("GET", "/collections", idempotent=True,
                parse=lambda r: [CollectionInfo.from_json(c)
                                 for c in parse_json(r)["collections"]])


def get_collection(name: str) -> Call[CollectionInfo]:
    return Call("GET", _col(name), idempotent=True,
                parse=lambda r: CollectionInfo.from_json(parse_json(r)))


def set_chunking(name: str, chunking: Mapping[str, Any] | bool) -> Call[CollectionInfo]:
    body = {"chunking": dict(chunking) if isinstance(chunking, Mapping) else chunking}
    return Call("PATCH", _col(name), json=body, idempotent=True,
                parse=lambda r: CollectionInfo.from_json(parse_json(r)))


def collection_exists(name: str) -> Call[bool]:
    def missing(e: QuiverError) -> bool:
        if isinstance(e, NotFoundError):
            return False
        raise e
    return Call("GET", _col(name), idempotent=True, parse=lambda r: True, on_error=missing)


def delete_collection(name: str) -> Call[None]:
    def gone(e: QuiverError) -> None:
        # A retried delete finds nothing when the first attempt did the work.
        if isinstance(e, NotFoundError) and e.attempts > 1:
            return None
        raise e
    return Call("DELETE", _col(name), idempotent=True, parse=lambda r: None, on_error=gone)


def flush(collection: str) -> Call[bool]:
    return Call("POST", f"{_col(collection)}/flush", idempotent=True,
                parse=lambda r: bool(parse_json(r)["sealed"]))


# Documents -----------------------------------------------------------------------------

def _doc_path(collection: str, id: str) -> str:
    return f"{_col(collection)}/documents/{_seg(id, 'document id')}"


def upsert(collection: str, documents: list[dict[str, Any]]) -> Call[dict[str, Any]]:
    # Idempotent by id: a batch sent twice leaves the same documents.
    return Call("POST", f"{_col(collection)}/documents", json={"documents": documents},
                idempotent=True)


def get(collection: str, id: str, chunks: bool = False) -> Call[Document | None]:
    def missing(e: QuiverError) -> None:
        if _is_document_404(e, collection):
            return None
        raise e
    path = _doc_path(collection, id) + ("?chunks=true" if chunks else "")
    return Call("GET", path, idempotent=True,
                parse=lambda r: Document.from_json(parse_json(r)), on_error=missing)


def delete(collection: str, id: str) -> Call[bool]:
    def missing(e: QuiverError) -> bool:
        if _is_document_404(e, collection):
            return False
        raise e
    return Call("DELETE", _doc_path(collection, id), idempotent=True,
                parse=lambda r: bool(parse_json(r)["deleted"]), on_error=missing)


def _with_vector(doc: DocumentLike, vector: Any) -> dict[str, Any]:
    out = Document.coerce(doc).to_json()
    if vector is not None:
        if "vector" in out:
            raise ValueError(f"document {out['id']!r} has a vector and vectors= gives another")
        out["vector"] = _vector(vector)
    return out


def _rows(vectors: Any) -> Iterator[Any]:
    if vectors is None:
        return itertools.repeat(None)
    shape = getattr(vectors, "shape", None)
    if shape is not None and len(shape) != 2:
        raise ValueError(f"vectors= must be 2-D (one row per document), got shape {tuple(shape)}")
    return iter(vectors)


def upsert_batches(documents: Iterable[DocumentLike], vectors: Any,
                   batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The request bodies' document lists, ``batch_size`` each; ``vectors`` (a 2-D
    array or a sequence of vectors, one per document, or None) fills in the vectors."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rows = _rows(vectors)
    sized = vectors is not None and hasattr(vectors, "__len__")
    batch: list[dict[str, Any]] = []
    count = 0
    for doc in documents:
        try:
            row = next(rows)
        except StopIteration:
            raise ValueError(f"vectors= has fewer rows than documents ({count})") from None
        try:
            batch.append(_with_vector(doc, row))
        except (TypeError, ValueError) as e:
            raise type(e)(f"documents[{count}]: {e}") from e
        count += 1
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    if sized and len(vectors) != count:
        raise ValueError(f"vectors= has {len(vectors)} rows for {count} documents")


def total_of(documents: Iterable[Any]) -> int | None:
    return len(documents) if hasattr(documents, "__len__") else None  # type: ignore[arg-type]


class UpsertProgress:
    """Accumulates acknowledged batches and turns a failed one into an UpsertError."""

    def __init__(self) -> None:
        self.result = UpsertResult()
        self.acknowledged_ids: list[str] = []

    def batches(self, documents: Iterable[DocumentLike], vectors: Any,
                batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """:func:`upsert_batches`, where a document that cannot be sent also says what
        earlier batches wrote (it stops the upsert before its batch is sent)."""
        it = upsert_batches(documents, vectors, batch_size)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (TypeError, ValueError) as e:
                if not self.result.batches:
                    raise
                raise type(e)(f"{e}; {len(self.acknowledged_ids)} documents in "
                              f"{self.result.batches} earlier batches were acknowledged "
                              f"(lsn {self.result.lsn}), this and later ones were not sent") from e
            yield batch

    def acknowledged(self, batch: list[dict[str, Any]], answer: Mapping[str, Any]) -> None:
        self.result.add(answer)
        self.acknowledged_ids.extend(d["id"] for d in batch)

    def failed(self, batch: list[dict[str, Any]], e: QuiverError) -> QuiverError:
        return upsert_error(e, batch=self.result.batches, failed_ids=[d["id"] for d in batch],
                            acknowledged_ids=self.acknowledged_ids, lsn=self.result.lsn)


def progress_bar(progress: bool | None, total: int | None) -> Any:
    """A tqdm bar on stderr, or None. ``progress`` None: only when stderr is a terminal."""
    import sys
    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="doc", desc="upsert", file=sys.stderr)


# Queries -------------------------------------------------------------------------------

def query(
    collection: str,
    *,
    text: str | None = None,
    vector: Any = None,
    mode: str | None = None,
    top_k: int = 10,
    filter: Mapping[str, Any] | None = None,
    fusion: str | Mapping[str, Any] | None = None,
    rerank: bool | Mapping[str, Any] | None = None,
    task: str | None = None,
    ef: int | None = None,
    exact: bool = False,
    explain: bool = False,
    highlight: bool = True,
    group_by: str | None = None,
    chunk_score: str | None = None,
) -> Call[QueryResult]:
    if text is None and vector is None:
        raise ValueError("a query needs text, a vector or both")
    body = _drop_none({
        "text": text, "vector": _vector(vector), "mode": mode, "top_k": top_k,
        "filter": dict(filter) if filter is not None else None,
        "fusion": {"method": fusion} if isinstance(fusion, str) else fusion,
        "rerank": rerank, "task": task, "ef": ef, "group_by": group_by,
        "chunk_score": chunk_score,
    })
    if exact:
        body["exact"] = True
    if not highlight:
        body["highlight"] = False
    if explain:
        body["explain"] = True
    return Call("POST", f"{_col(collection)}/query", json=body, idempotent=True,
                parse=lambda r: QueryResult.from_json(parse_json(r)))


# Models --------------------------------------------------------------------------------

def _texts(inputs: str | Sequence[str], what: str) -> str | list[str]:
    if isinstance(inputs, str):
        return inputs
    out = list(inputs)
    if not all(isinstance(t, str) for t in out):
        raise TypeError(f"{what} must be a string or a list of strings")
    return out


def embed(inputs: str | Sequence[str], *, model: str | None = None,
          dimensions: int | None = None, task: str | None = None) -> Call[list[list[float]]]:
    body = _drop_none({"inputs": _texts(inputs, "inputs"), "model": model,
                       "dimensions": dimensions, "task": task})
    return Call("POST", "/embed", json=body, idempotent=True)


def embeddings(input: str | Sequence[str], *, model: str | None = None,
               dimensions: int | None = None) -> Call[list[list[float]]]:
    body = _drop_none({"input": _texts(input, "input"), "model": model,
                       "dimensions": dimensions, "encoding_format": "float"})

    def parse(r: httpx.Response) -> list[list[float]]:
        data = sorted(parse_json(r)["data"], key=lambda d: d["index"])
        return [d["embedding"] for d in data]
    return Call("POST", "/v1/embeddings", json=body, idempotent=True, parse=parse)


def rerank(query: str, texts: Sequence[str], *, model: str | None = None,
           instruction: str | None = None, raw_scores: bool = False,
           return_text: bool = False) -> Call[list[Rank]]:
    body = _drop_none({"query": query, "texts": _texts(texts, "texts"), "model": model,
                       "instruction": instruction})
    if isinstance(body["texts"], str):
        body["texts"] = [body["texts"]]
    if raw_scores:
        body["raw_scores"] = True
    if return_text:
        body["return_text"] = True
    return Call("POST", "/rerank", json=body, idempotent=True,
                parse=lambda r: [Rank.from_json(x) for x in parse_json(r)])


# Snapshots -----------------------------------------------------------------------------

def _snap_root(collection: str | None) -> str:
    return f"{_col(collection)}/snapshots" if collection is not None else "/snapshots"


def create_snapshot(collection: str | None = None, *, name: str | None = None,
                    compress: str | None = None) -> Call[Snapshot]:
    # Not retried once sent: a second attempt would make a second snapshot (or a 409).
    return Call("POST", _snap_root(collection),
                json=_drop_none({"name": name, "compress": compress}),
                parse=lambda r: Snapshot.from_json(parse_json(r)))


def list_snapshots(collection: str | None = None) -> Call[list[Snapshot]]:
    return Call("GET", _snap_root(collection), idempotent=True,
                parse=lambda r: [Snapshot.from_json(s) for s in parse_json(r)["snapshots"]])


def download_snapshot(name: str, collection: str | None = None) -> Call[httpx.Response]:
    return Call("GET", f"{_snap_root(collection)}/{_seg(name, 'snapshot name')}",
                idempotent=True, stream=True, parse=lambda r: r,
                headers={"Accept": "application/octet-stream"})


def download_target(name: str, path: str | Path) -> Path:
    """Where a download goes: ``path``, or ``path/<name>.snapshot`` for a directory."""
    p = Path(path)
    return p / f"{name}.snapshot" if p.is_dir() else p


def broken_download(e: Exception, resp: httpx.Response) -> QuiverError:
    """The error of a download whose body broke off."""
    from ._http import error_from_transport
    return error_from_transport(e, resp.request.method, str(resp.request.url), 1)  # type: ignore[arg-type]


def restore_snapshot(snapshot: str | None = None, *, collection: str | None = None,
                     target: str | None = None,
                     path: str | Path | None = None) -> Call[list[SnapshotCollection]]:
    if (snapshot is None) == (path is None):
        raise ValueError("restore takes a stored snapshot's name or an archive's path, one of them")
    root = _snap_root(collection)

    def parse(r: httpx.Response) -> list[SnapshotCollection]:
        return [SnapshotCollection.from_json(c) for c in parse_json(r)["restored"]]
    if path is not None:
        return Call("POST", f"{root}/restore", params={"target": target}, upload=Path(path),
                    parse=parse)
    return Call("POST", f"{root}/restore", json=_drop_none({"snapshot": snapshot, "target": target}),
                parse=parse)


def delete_snapshot(name: str, collection: str | None = None) -> Call[None]:
    return Call("DELETE", f"{_snap_root(collection)}/{_seg(name, 'snapshot name')}",
                idempotent=True, parse=lambda r: None)


# Operations ----------------------------------------------------------------------------

def models() -> Call[list[ModelInfo]]:
    return Call("GET", "/models", idempotent=True,
                parse=lambda r: [ModelInfo.from_json(m) for m in parse_json(r)["models"]])


def health() -> Call[str]:
    return Call("GET", "/health", idempotent=True, parse=lambda r: parse_json(r)["status"])


def ready() -> Call[bool]:
    def not_ready(e: QuiverError) -> bool:
        if e.status == 503:
            return False
        raise e
    # No retries wanted here: a 503 is the answer, not a hiccup.
    return Call("GET", "/ready", parse=lambda r: True, on_error=not_ready)


def metrics() -> Call[str]:
    return Call("GET", "/metrics", idempotent=True, parse=lambda r: r.text,
                headers={"Accept": "text/plain"})


def openapi() -> Call[dict[str, Any]]:
    return Call("GET", "/openapi.json", idempotent=True)
