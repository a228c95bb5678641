"""The synchronous client, :class:`Quiver`: runs the calls of ``_calls`` over
``httpx.Client``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import httpx

from . import _calls as calls
from ._http import RetryPolicy, SyncTransport
from .errors import QuiverError
from .models import (CollectionInfo, Document, ModelInfo, QueryResult, Rank, Snapshot,
                     SnapshotCollection, UpsertResult)

DEFAULT_URL = "http://127.0.0.1:6433"


def resolve(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """``url`` else ``$QUIVER_URL`` else the default; ``api_key`` else
    ``$QUIVER_API_KEY`` (the variables the ``quiver`` CLI reads too)."""
    url = url or os.environ.get("QUIVER_URL") or DEFAULT_URL
    if api_key is None:
        api_key = os.environ.get("QUIVER_API_KEY") or None
    return url.rstrip("/"), api_key


class Quiver:
    """A Quiver server.

    ``timeout``: seconds to wait for each answer (None: forever); ``retries``: extra
    attempts of a call that failed on the way (see ``_http.RetryPolicy``: only calls
    that are safe to repeat); ``backoff``: the first wait between attempts, doubled
    each time. ``http_client`` lets a caller bring a configured ``httpx.Client``.
    Use as a context manager, or call :meth:`close`."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float | None = 60.0,
                 retries: int = 3, *, backoff: float = 0.5, max_backoff: float = 10.0,
                 http_client: httpx.Client | None = None) -> None:
        self.url, api_key = resolve(url, api_key)
        self._t = SyncTransport(self.url, api_key, timeout,
                                RetryPolicy(retries, backoff, max_backoff), http_client)

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> "Quiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Quiver({self.url!r})"

    # Collections

    def create_collection(self, name: str, *, dim: int | None = None,
                          embedding_model: str | None = None, reranker_model: str | None = None,
                          distance: str | None = None, index_dim: int | None = None,
                          task: str | None = None, analyzer: str | None = None,
                          hnsw: Mapping[str, Any] | None = None,
                          bm25: Mapping[str, Any] | None = None,
                          rescore: int | None = None,
                          chunking: Mapping[str, Any] | bool | None = None) -> CollectionInfo:
        """Creates collection ``name``: ``embedding_model`` (``dim`` then the Matryoshka
        dimension) or ``dim`` alone for your own vectors. Raises ConflictError when it
        exists."""
        try:
            return self._t.run(calls.create_collection(
                name, dim=dim, embedding_model=embedding_model, reranker_model=reranker_model,
                distance=distance, index_dim=index_dim, task=task, analyzer=analyzer,
                hnsw=hnsw, bm25=bm25, rescore=rescore, chunking=chunking))
        except QuiverError as e:
            if calls.created_by_lost_answer(e):
                return self.get_collection(name)
            raise

    def list_collections(self) -> list[CollectionInfo]:
        return self._t.run(calls.list_collections())

    def get_collection(self, name: str) -> CollectionInfo:
        return self._t.run(calls.get_collection(name))

    def set_chunking(self, name: str, chunking: Mapping[str, Any] | bool) -> CollectionInfo:
        """Changes how an empty collection cuts long texts (settings, True for the
        defaults, False for none); ConflictError once it holds documents."""
        return self._t.run(calls.set_chunking(name, chunking))

    def collection_exists(self, name: str) -> bool:
        return self._t.run(calls.collection_exists(name))

    def delete_collection(self, name: str) -> None:
        self._t.run(calls.delete_collection(name))

    def flush(self, collection: str) -> bool:
        """Seals the in-memory segment now; True when it held anything."""
        return self._t.run(calls.flush(collection))

    # Documents

    def upsert(self, collection: str, documents: Iterable[Document | Mapping[str, Any]], *,
               vectors: Any = None, batch_size: int = 256,
               progress: bool | None = None) -> UpsertResult:
        """Writes ``documents`` (Documents or dicts ``{"id","text","metadata","vector"}``)
        in batches of ``batch_size``, each retried as a whole on a lost connection;
        ``vectors``: a 2-D array (or sequence of vectors), row i for document i.
        ``progress``: a tqdm bar (None: only when stderr is a terminal). A batch that
        fails raises an UpsertError naming it; earlier batches stay written."""
        state = calls.UpsertProgress()
        bar = calls.progress_bar(progress, calls.total_of(documents))
        try:
            for batch in state.batches(documents, vectors, batch_size):
                try:
                    answer = self._t.run(calls.upsert(collection, batch))
                except QuiverError as e:
                    raise state.failed(batch, e) from e
                state.acknowledged(batch, answer)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return state.result

    def get(self, collection: str, id: str, *, chunks: bool = False) -> Document | None:
        """The document, or None when the collection has no such id; ``chunks`` also
        lists the chunks a long text was stored in (``Document.chunks``)."""
        return self._t.run(calls.get(collection, id, chunks))

    def get_many(self, collection: str, ids: Iterable[str]) -> list[Document]:
        """The documents that exist, in the order of ``ids``."""
        out = []
        for id in ids:
            doc = self.get(collection, id)
            if doc is not None:
                out.append(doc)
        return out

    def delete(self, collection: str, id: str) -> bool:
        """Deletes one document; False when it did not exist."""
        return self._t.run(calls.delete(collection, id))

    def delete_many(self, collection: str, ids: Iterable[str]) -> int:
        """Deletes documents; returns how many existed."""
        return sum(1 for id in ids if self.delete(collection, id))

    # Queries

    def query(self, collection: str, *, text: str | None = None, vector: Any = None,
              mode: str | None = None, top_k: int = 10, filter: Mapping[str, Any] | None = None,
              fusion: str | Mapping[str, Any] | None = None,
              rerank: bool | Mapping[str, Any] | None = None, task: str | None = None,
              ef: int | None = None, exact: bool = False, explain: bool = False,
              highlight: bool = True, group_by: str | None = None,
              chunk_score: str | None = None) -> QueryResult:
        """Dense (``vector``, or ``text`` embedded by the collection's model), sparse
        (``text``) or hybrid search; ``filter`` in the server's shape (see
        ``quiver_client.filters``); ``fusion`` "rrf", "weighted" or a dict. For long
        documents stored in chunks: ``group_by`` "chunk" gives one hit per matching chunk,
        ``chunk_score`` "sum" ranks documents by their best three chunks together;
        ``highlight=False`` skips marking the query's words."""
        return self._t.run(calls.query(
            collection, text=text, vector=vector, mode=mode, top_k=top_k, filter=filter,
            fusion=fusion, rerank=rerank, task=task, ef=ef, exact=exact, explain=explain,
            highlight=highlight, group_by=group_by, chunk_score=chunk_score))

    # Models

    def embed(self, inputs: str | Sequence[str], *, model: str | None = None,
              dimensions: int | None = None, task: str | None = None) -> list[list[float]]:
        """One vector per input (``/embed``); ``task`` embeds them as queries."""
        return self._t.run(calls.embed(inputs, model=model, dimensions=dimensions, task=task))

    def embeddings(self, input: str | Sequence[str], *, model: str | None = None,
                   dimensions: int | None = None) -> list[list[float]]:
        """One vector per input, through the OpenAI-shaped ``/v1/embeddings``."""
        return self._t.run(calls.embeddings(input, model=model, dimensions=dimensions))

    def rerank(self, query: str, texts: Sequence[str], *, model: str | None = None,
               instruction: str | None = None, raw_scores: bool = False,
               return_text: bool = False) -> list[Rank]:
        """Scores of ``texts`` against ``query``, best first."""
        return self._t.run(calls.rerank(query, texts, model=model, instruction=instruction,
                                        raw_scores=raw_scores, return_text=return_text))

    # Snapshots: ``collection`` None addresses whole-database snapshots.

    def create_snapshot(self, collection: str | None = None, *, name: str | None = None,
                        compress: str | None = None) -> Snapshot:
        return self._t.run(calls.create_snapshot(collection, name=name, compress=compress))

    def list_snapshots(self, collection: str | None = None) -> list[Snapshot]:
        return self._t.run(calls.list_snapshots(collection))

    def download_snapshot(self, name: str, path: str | Path,
                          collection: str | None = None) -> Path:
        """Streams snapshot ``name`` to ``path`` (a file, or a directory to put
        ``<name>.snapshot`` in); the file appears only once complete."""
        dest = calls.download_target(name, path)
        tmp = dest.with_name(dest.name + ".part")
        resp = self._t.run(calls.download_snapshot(name, collection))
        try:
            with open(tmp, "wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)
        except httpx.HTTPError as e:
            tmp.unlink(missing_ok=True)
            raise calls.broken_download(e, resp) from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            resp.close()
        tmp.replace(dest)
        return dest

    def restore_snapshot(self, snapshot: str | None = None, *, collection: str | None = None,
                         target: str | None = None,
                         path: str | Path | None = None) -> list[SnapshotCollection]:
        """Restores a stored ``snapshot`` (by name) or uploads the archive at ``path``;
        into ``target`` (default: the snapshot's own collection), replacing it."""
        return self._t.run(calls.restore_snapshot(snapshot, collection=collection,
                                                  target=target, path=path))

    def delete_snapshot(self, name: str, collection: str | None = None) -> None:
        self._t.run(calls.delete_snapshot(name, collection))

    # Operations

    def models(self) -> list[ModelInfo]:
        """The models installed on the server, with their kind, width and size."""
        return self._t.run(calls.models())

    def health(self) -> str:
        """The server's liveness status ("ok")."""
        return self._t.run(calls.health())

    def ready(self) -> bool:
        """True while the server accepts work; False once it is shutting down."""
        return self._t.run(calls.ready())

    def metrics(self) -> str:
        """Prometheus text."""
        return self._t.run(calls.metrics())

    def openapi(self) -> dict[str, Any]:
        return self._t.run(calls.openapi())
