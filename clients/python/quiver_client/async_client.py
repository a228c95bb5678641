"""The asynchronous client, :class:`AsyncQuiver`: the same calls as :class:`Quiver`,
run over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar

import httpx

from . import _calls as calls
from ._http import AsyncTransport, RetryPolicy
from .client import resolve
from .errors import QuiverError
from .models import (CollectionInfo, Document, ModelInfo, QueryResult, Rank, Snapshot,
                     SnapshotCollection, UpsertResult)

T = TypeVar("T")
R = TypeVar("R")


async def _bounded(items: Iterable[T], limit: int, f: Callable[[T], Awaitable[R]]) -> list[R]:
    """``f`` over ``items`` with at most ``limit`` in flight; results in input order."""
    sem = asyncio.Semaphore(limit)

    async def one(x: T) -> R:
        async with sem:
            return await f(x)
    return list(await asyncio.gather(*(one(x) for x in items)))


class AsyncQuiver:
    """A Quiver server, for asyncio. The same arguments and methods as
    :class:`quiver_client.Quiver`, each awaited; ``concurrency`` bounds the requests
    ``get_many`` and ``delete_many`` keep in flight. ``async with`` or ``await
    close()``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float | None = 60.0,
                 retries: int = 3, *, backoff: float = 0.5, max_backoff: float = 10.0,
                 concurrency: int = 8, http_client: httpx.AsyncClient | None = None) -> None:
        self.url, api_key = resolve(url, api_key)
        self.concurrency = concurrency
        self._t = AsyncTransport(self.url, api_key, timeout,
                                 RetryPolicy(retries, backoff, max_backoff), http_client)

    async def close(self) -> None:
        await self._t.close()

    async def __aenter__(self) -> "AsyncQuiver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncQuiver({self.url!r})"

    # Collections

    async def create_collection(self, name: str, *, dim: int | None = None,
                                embedding_model: str | None = None,
                                reranker_model: str | None = None, distance: str | None = None,
                                index_dim: int | None = None, task: str | None = None,
                                analyzer: str | None = None, hnsw: Mapping[str, Any] | None = None,
                                bm25: Mapping[str, Any] | None = None,
                                rescore: int | None = None,
                                chunking: Mapping[str, Any] | bool | None = None) -> CollectionInfo:
        try:
            return await self._t.run(calls.create_collection(
                name, dim=dim, embedding_model=embedding_model, reranker_model=reranker_model,
                distance=distance, index_dim=index_dim, task=task, analyzer=analyzer,
                hnsw=hnsw, bm25=bm25, rescore=rescore, chunking=chunking))
        except QuiverError as e:
            if calls.created_by_lost_answer(e):
                return await self.get_collection(name)
            raise

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._t.run(calls.list_collections())

    async def get_collection(self, name: str) -> CollectionInfo:
        return await self._t.run(calls.get_collection(name))

    async def set_chunking(self, name: str, chunking: Mapping[str, Any] | bool) -> CollectionInfo:
        return await self._t.run(calls.set_chunking(name, chunking))

    async def collection_exists(self, name: str) -> bool:
        return await self._t.run(calls.collection_exists(name))

    async def delete_collection(self, name: str) -> None:
        await self._t.run(calls.delete_collection(name))

    async def flush(self, collection: str) -> bool:
        return await self._t.run(calls.flush(collection))

    # Documents

    async def upsert(self, collection: str, documents: Iterable[Document | Mapping[str, Any]], *,
                     vectors: Any = None, batch_size: int = 256,
                     progress: bool | None = None) -> UpsertResult:
        """As :meth:`Quiver.upsert`: batches are sent one after another, in order."""
        state = calls.UpsertProgress()
        bar = calls.progress_bar(progress, calls.total_of(documents))
        try:
            for batch in state.batches(documents, vectors, batch_size):
                try:
                    answer = await self._t.run(calls.upsert(collection, batch))
                except QuiverError as e:
                    raise state.failed(batch, e) from e
                state.acknowledged(batch, answer)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return state.result

    async def get(self, collection: str, id: str, *, chunks: bool = False) -> Document | None:
        return await self._t.run(calls.get(collection, id, chunks))

    async def get_many(self, collection: str, ids: Iterable[str]) -> list[Document]:
        docs = await _bounded(list(ids), self.concurrency, lambda i: self.get(collection, i))
        return [d for d in docs if d is not None]

    async def delete(self, collection: str, id: str) -> bool:
        return await self._t.run(calls.delete(collection, id))

    async def delete_many(self, collection: str, ids: Iterable[str]) -> int:
        done = await _bounded(list(ids), self.concurrency, lambda i: self.delete(collection, i))
        return sum(done)

    # Queries

    async def query(self, collection: str, *, text: str | None = None, vector: Any = None,
                    mode: str | None = None, top_k: int = 10,
                    filter: Mapping[str, Any] | None = None,
                    fusion: str | Mapping[str, Any] | None = None,
                    rerank: bool | Mapping[str, Any] | None = None, task: str | None = None,
                    ef: int | None = None, exact: bool = False,
                    explain: bool = False,
                    highlight: bool = True, group_by: str | None = None,
                    chunk_score: str | None = None) -> QueryResult:
        return await self._t.run(calls.query(
            collection, text=text, vector=vector, mode=mode, top_k=top_k, filter=filter,
            fusion=fusion, rerank=rerank, task=task, ef=ef, exact=exact, explain=explain,
            highlight=highlight, group_by=group_by, chunk_score=chunk_score))

    # Models

    async def embed(self, inputs: str | Sequence[str], *, model: str | None = None,
                    dimensions: int | None = None, task: str | None = None) -> list[list[float]]:
        return await self._t.run(calls.embed(inputs, model=model, dimensions=dimensions, task=task))

    async def embeddings(self, input: str | Sequence[str], *, model: str | None = None,
                         dimensions: int | None = None) -> list[list[float]]:
        return await self._t.run(calls.embeddings(input, model=model, dimensions=dimensions))

    async def rerank(self, query: str, texts: Sequence[str], *, model: str | None = None,
                     instruction: str | None = None, raw_scores: bool = False,
                     return_text: bool = False) -> list[Rank]:
        return await self._t.run(calls.rerank(query, texts, model=model, instruction=instruction,
                                              raw_scores=raw_scores, return_text=return_text))

    # Snapshots

    async def create_snapshot(self, collection: str | None = None, *, name: str | None = None,
                              compress: str | None = None) -> Snapshot:
        return await self._t.run(calls.create_snapshot(collection, name=name, compress=compress))

    async def list_snapshots(self, collection: str | None = None) -> list[Snapshot]:
        return await self._t.run(calls.list_snapshots(collection))

    async def download_snapshot(self, name: str, path: str | Path,
                                collection: str | None = None) -> Path:
        dest = calls.download_target(name, path)
        tmp = dest.with_name(dest.name + ".part")
        resp = await self._t.run(calls.download_snapshot(name, collection))
        try:
            with open(tmp, "wb") as f:
                async for chunk in resp.aiter_bytes():
                    f.write(chunk)
        except httpx.HTTPError as e:
            tmp.unlink(missing_ok=True)
            raise calls.broken_download(e, resp) from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            await resp.aclose()
        tmp.replace(dest)
        return dest

    async def restore_snapshot(self, snapshot: str | None = None, *,
                               collection: str | None = None, target: str | None = None,
                               path: str | Path | None = None) -> list[SnapshotCollection]:
        return await self._t.run(calls.restore_snapshot(snapshot, collection=collection,
                                                        target=target, path=path))

    async def delete_snapshot(self, name: str, collection: str | None = None) -> None:
        await self._t.run(calls.delete_snapshot(name, collection))

    # Operations

    async def models(self) -> list[ModelInfo]:
        return await self._t.run(calls.models())

    async def health(self) -> str:
        return await self._t.run(calls.health())

    async def ready(self) -> bool:
        return await self._t.run(calls.ready())

    async def metrics(self) -> str:
        return await self._t.run(calls.metrics())

    async def openapi(self) -> dict[str, Any]:
        return await self._t.run(calls.openapi())
