"""LangChain's ``VectorStore`` over one Quiver collection.

Owns the mapping between LangChain documents and Quiver documents (``Document.id`` and
``page_content`` are Quiver's id and text; metadata travels unchanged, nested values
included), who embeds (a LangChain ``Embeddings`` in this process, or the collection's
own model on the server), the query modes (dense, hybrid, sparse), relevance scores,
and maximal marginal relevance over the stored vectors.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from quiver_client import AsyncQuiver, ConflictError, NotFoundError, Quiver
from quiver_client import Document as QuiverDocument
from quiver_client import Hit

from ._connection import Connection

__all__ = ["QuiverVectorStore", "SearchMode"]

SearchMode = Literal["dense", "hybrid", "sparse"]
_MODES = ("dense", "hybrid", "sparse")

# Query options passed through to the server as they are (see the README's HTTP API).
_QUERY_OPTIONS = frozenset({"fusion", "rerank", "ef", "exact", "task"})

# The instruction the server embeds query text with when neither the request nor the
# collection names one (crates/quiver-engine/src/models.rs, DEFAULT_TASK). Needed only
# where this store asks /embed for a query vector itself (MMR with server-side
# embedding), so that vector is the one a query would have used.
SERVER_DEFAULT_TASK = (
    "Given a web search query, retrieve relevant passages that answer the query"
)

# Most hits one query may return (the server's default `limits.max_top_k`); deleting by
# filter pages through matches this many at a time.
_PAGE = 1000


def _cosine_relevance(score: float) -> float:
    # Cosine similarity in [-1, 1] mapped onto [0, 1], order kept.
    return min(1.0, max(0.0, (1.0 + score) / 2.0))


def _l2_relevance(score: float) -> float:
    # The server's L2 score is the negated squared distance; for unit vectors the
    # distance lies in [0, 2], and 1 - d/sqrt(2) is LangChain's usual scale for it.
    distance = math.sqrt(max(0.0, -score))
    return min(1.0, max(0.0, 1.0 - distance / math.sqrt(2.0)))


class QuiverVectorStore(VectorStore):
    """A Quiver collection as a LangChain vector store.

    Args:
        collection_name: the collection (``[A-Za-z0-9_-]{1,64}``).
        embedding: embeds texts and queries in this process; its vectors are stored.
            ``None`` leaves embedding to the server: the collection's
            ``embedding_model`` embeds documents on ingest and query text on search.
        client, async_client: a ``quiver_client.Quiver`` / ``AsyncQuiver``; either one
            is enough (the other is built from its URL and key), or give ``url`` and
            ``api_key`` instead.
        search_mode: ``"dense"`` (default), ``"hybrid"`` (text and vector, fused on the
            server) or ``"sparse"`` (BM25 only); any search call may override it with
            ``search_mode=``.
        embedding_model, dim, distance, collection_options: used only when the
            collection does not exist yet and ``create_collection`` is true.
            Without ``embedding_model`` the collection stores ``embedding``'s vectors
            (``dim`` defaults to their length); with it, the server embeds texts sent
            without a vector. ``collection_options`` adds any other create argument
            (``reranker_model``, ``analyzer``, ``hnsw``, ``bm25``, ...).
        batch_size: documents per upsert request.

    Search calls accept ``filter=`` (a Quiver filter: ``{"must": [...], "should":
    [...], "must_not": [...]}``) and the query options ``fusion``, ``rerank``, ``ef``,
    ``exact`` and ``task``.
    """

    def __init__(
        self,
        collection_name: str,
        embedding: Embeddings | None = None,
        *,
        client: Quiver | None = None,
        async_client: AsyncQuiver | None = None,
        url: str | None = None,
        api_key: str | None = None,
        search_mode: SearchMode = "dense",
        embedding_model: str | None = None,
        dim: int | None = None,
        distance: str | None = None,
        create_collection: bool = True,
        collection_options: Mapping[str, Any] | None = None,
        batch_size: int = 256,
    ) -> None:
        self.collection_name = collection_name
        self._embedding = embedding
        self.search_mode = self._check_mode(search_mode)
        self.batch_size = batch_size
        self._conn = Connection(client, async_client=async_client, url=url, api_key=api_key)
        info = self._open_collection(
            embedding_model=embedding_model,
            dim=dim,
            distance=distance,
            create=create_collection,
            options=dict(collection_options or {}),
        )
        self.distance: str = info.distance
        self.dim: int = info.dim
        self.embedding_model: str | None = info.embedding_model
        self.query_task: str | None = info.config.task if info.config else None
        if self._embedding is None and self.embedding_model is None:
            raise ValueError(
                f"collection {collection_name!r} has no embedding_model, so it stores "
                "vectors computed by the caller: pass embedding="
            )

    # -- setup ---------------------------------------------------------------------

    def _open_collection(
        self,
        *,
        embedding_model: str | None,
        dim: int | None,
        distance: str | None,
        create: bool,
        options: dict[str, Any],
    ) -> Any:
        client = self._conn.sync
        try:
            return client.get_collection(self.collection_name)
        except NotFoundError:
            if not create:
                raise
        if embedding_model is None and self._embedding is None:
            raise ValueError(
                f"collection {self.collection_name!r} does not exist: pass embedding= "
                "(vectors computed here) or embedding_model= (the server embeds)"
            )
        if dim is None and embedding_model is None:
            # The collection's width is whatever the caller's model produces.
            assert self._embedding is not None
            dim = len(self._embedding.embed_query("dimension probe"))
        try:
            return client.create_collection(
                self.collection_name,
                dim=dim,
                embedding_model=embedding_model,
                distance=distance,
                **options,
            )
        except ConflictError:
            # Someone created it between our look and our create: use theirs.
            return client.get_collection(self.collection_name)

    @staticmethod
    def _check_mode(mode: str) -> str:
        if mode not in _MODES:
            raise ValueError(f"search_mode must be one of {_MODES}, got {mode!r}")
        return mode

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    @property
    def client(self) -> Quiver:
        """The sync Quiver client."""
        return self._conn.sync

    @property
    def async_client(self) -> AsyncQuiver:
        """The async Quiver client of the running event loop."""
        return self._conn.aio

    def delete_collection(self) -> None:
        """Drops the whole collection from the server."""
        self._conn.sync.delete_collection(self.collection_name)

    async def adelete_collection(self) -> None:
        await self._conn.aio.delete_collection(self.collection_name)

    # -- writes --------------------------------------------------------------------

    def _documents(
        self,
        texts: list[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        vectors: list[list[float]] | None,
    ) -> list[QuiverDocument]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        docs = []
        for i, text in enumerate(texts):
            id_ = ids[i] if ids is not None else None
            metadata = metadatas[i] if metadatas is not None else None
            docs.append(
                QuiverDocument(
                    id=str(id_) if id_ is not None else str(uuid.uuid4()),
                    text=text,
                    # A copy: the caller's dict must not change under them.
                    metadata=dict(metadata or {}),
                    vector=vectors[i] if vectors is not None else None,
                )
            )
        return docs

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upserts ``texts``; an id that exists is replaced. Missing ids (``None``)
        get a fresh UUID. Returns the ids in order."""
        _no_extra(kwargs, "add_texts")
        texts = list(texts)
        vectors = self._embedding.embed_documents(texts) if self._embedding and texts else None
        docs = self._documents(texts, metadatas, ids, vectors)
        if docs:
            self._conn.sync.upsert(
                self.collection_name, docs, batch_size=batch_size or self.batch_size
            )
        return [d.id for d in docs]

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        _no_extra(kwargs, "aadd_texts")
        texts = list(texts)
        vectors = (
            await self._embedding.aembed_documents(texts) if self._embedding and texts else None
        )
        docs = self._documents(texts, metadatas, ids, vectors)
        if docs:
            await self._conn.aio.upsert(
                self.collection_name, docs, batch_size=batch_size or self.batch_size
            )
        return [d.id for d in docs]

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        """Deletes the documents with these ids (missing ones are no error) and, with
        ``filter``, every document the filter matches. Deleting everything takes an
        explicit ``delete_collection()``, so ``delete()`` alone is refused."""
        _no_extra(kwargs, "delete")
        if ids is None and filter is None:
            raise ValueError("delete needs ids or filter= (delete_collection() drops everything)")
        client = self._conn.sync
        if ids:
            client.delete_many(self.collection_name, list(ids))
        if filter is not None:
            while True:
                found = client.query(self.collection_name, **self._match_all(filter)).hits
                removed = client.delete_many(self.collection_name, [h.id for h in found])
                if len(found) < _PAGE or removed == 0:
                    break
        return True

    async def adelete(
        self,
        ids: list[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        _no_extra(kwargs, "adelete")
        if ids is None and filter is None:
            raise ValueError("delete needs ids or filter= (delete_collection() drops everything)")
        client = self._conn.aio
        if ids:
            await client.delete_many(self.collection_name, list(ids))
        if filter is not None:
            while True:
                found = (await client.query(self.collection_name, **self._match_all(filter))).hits
                removed = await client.delete_many(self.collection_name, [h.id for h in found])
                if len(found) < _PAGE or removed == 0:
                    break
        return True

    def _match_all(self, filter: Mapping[str, Any]) -> dict[str, Any]:
        # A query whose ranking does not matter, only which rows pass the filter: an
        # exact scan returns every match, where a graph walk might miss some.
        probe = [0.0] * self.dim
        probe[0] = 1.0
        return {"vector": probe, "mode": "dense", "top_k": _PAGE, "filter": dict(filter),
                "exact": True}

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids; missing ids are left out."""
        if not ids:
            return []
        return [_to_langchain(d) for d in self._conn.sync.get_many(self.collection_name, list(ids))]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        if not ids:
            return []
        found = await self._conn.aio.get_many(self.collection_name, list(ids))
        return [_to_langchain(d) for d in found]

    # -- search --------------------------------------------------------------------

    def _plan(self, query: str | None, kwargs: dict[str, Any]) -> tuple[str, bool]:
        """The mode of this call and whether it needs a query vector from this
        process's embedding (the server embeds query text itself otherwise)."""
        mode = self._check_mode(kwargs.pop("search_mode", None) or self.search_mode)
        unknown = set(kwargs) - _QUERY_OPTIONS
        if unknown:
            raise TypeError(f"unknown search arguments: {sorted(unknown)}")
        if mode != "dense" and query is None:
            raise ValueError(f"search_mode {mode!r} needs query text")
        return mode, mode != "sparse" and self._embedding is not None

    def _request(
        self,
        mode: str,
        query: str | None,
        vector: Sequence[float] | None,
        k: int,
        filter: Mapping[str, Any] | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        req: dict[str, Any] = {"mode": mode, "top_k": k, **options}
        if filter:
            req["filter"] = dict(filter)
        if vector is not None and mode != "sparse":
            req["vector"] = [float(x) for x in vector]
        # Text goes along whenever the server needs it: keyword search, or embedding
        # the query when no vector came from here.
        if query is not None and (mode != "dense" or vector is None):
            req["text"] = query
        return req

    def _search(
        self,
        query: str | None,
        vector: Sequence[float] | None,
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> list[tuple[Document, float]]:
        mode, embed_here = self._plan(query, kwargs)
        if k <= 0:
            return []
        if vector is None and embed_here:
            assert self._embedding is not None and query is not None
            vector = self._embedding.embed_query(query)
        req = self._request(mode, query, vector, k, filter, kwargs)
        return [_scored(h) for h in self._conn.sync.query(self.collection_name, **req).hits]

    async def _asearch(
        self,
        query: str | None,
        vector: Sequence[float] | None,
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> list[tuple[Document, float]]:
        mode, embed_here = self._plan(query, kwargs)
        if k <= 0:
            return []
        if vector is None and embed_here:
            assert self._embedding is not None and query is not None
            vector = await self._embedding.aembed_query(query)
        req = self._request(mode, query, vector, k, filter, kwargs)
        result = await self._conn.aio.query(self.collection_name, **req)
        return [_scored(h) for h in result.hits]

    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self._search(query, None, k, filter, kwargs)]

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in await self._asearch(query, None, k, filter, kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with the server's score, higher is closer: cosine similarity, dot
        product or negated squared L2 distance in dense mode, the fused score in
        hybrid mode, BM25 in sparse mode."""
        return self._search(query, None, k, filter, kwargs)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await self._asearch(query, None, k, filter, kwargs)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Dense search by a query vector (hybrid and sparse need text)."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(
            embedding, k, filter, **kwargs)]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score_by_vector(
            embedding, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        kwargs.setdefault("search_mode", "dense")
        return self._search(None, embedding, k, filter, kwargs)

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        kwargs.setdefault("search_mode", "dense")
        return await self._asearch(None, embedding, k, filter, kwargs)

    # -- relevance scores ----------------------------------------------------------

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Maps a dense score onto [0, 1], 1 the closest: cosine similarity (and the
        dot product of unit vectors) as ``(1 + s) / 2``; L2 by LangChain's Euclidean
        scale of the distance."""
        if self.distance == "l2":
            return _l2_relevance
        return _cosine_relevance

    def _dense_only(self, kwargs: Mapping[str, Any]) -> None:
        mode = kwargs.get("search_mode") or self.search_mode
        if mode != "dense":
            raise ValueError(
                "relevance scores are defined for dense search; hybrid and sparse scores "
                "(fused ranks, BM25) have no fixed scale: use similarity_search_with_score"
            )

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        self._dense_only(kwargs)
        return super()._similarity_search_with_relevance_scores(query, k, **kwargs)

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        self._dense_only(kwargs)
        return await super()._asimilarity_search_with_relevance_scores(query, k, **kwargs)

    # -- maximal marginal relevance ------------------------------------------------

    def _embed_args(self) -> dict[str, Any]:
        return {
            "model": self.embedding_model,
            "dimensions": self.dim,
            "task": self.query_task or SERVER_DEFAULT_TASK,
        }

    def _query_vector(self, query: str) -> list[float]:
        """The query's vector as a dense search would use it."""
        if self._embedding is not None:
            return self._embedding.embed_query(query)
        return self._conn.sync.embed([query], **self._embed_args())[0]

    async def _aquery_vector(self, query: str) -> list[float]:
        if self._embedding is not None:
            return await self._embedding.aembed_query(query)
        return (await self._conn.aio.embed([query], **self._embed_args()))[0]

    def _mmr_request(
        self,
        query: str | None,
        vector: Sequence[float],
        fetch_k: int,
        filter: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        if query is None:
            kwargs.setdefault("search_mode", "dense")
        mode, _ = self._plan(query, kwargs)
        return self._request(mode, query, vector, fetch_k, filter, kwargs)

    @staticmethod
    def _mmr_pick(
        vector: Sequence[float],
        hits: list[Hit],
        stored: list[QuiverDocument],
        k: int,
        lambda_mult: float,
    ) -> list[Document]:
        # Candidates keep the server's order; one deleted since the query drops out.
        by_id = {d.id: d for d in stored if d.vector}
        hits = [h for h in hits if h.id in by_id]
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [by_id[h.id].vector for h in hits],
            lambda_mult=lambda_mult,
            k=min(k, len(hits)),
        )
        return [_scored(hits[i])[0] for i in chosen]

    def _mmr(
        self,
        query: str | None,
        vector: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> list[Document]:
        req = self._mmr_request(query, vector, max(fetch_k, k), filter, kwargs)
        if k <= 0:
            return []
        hits = self._conn.sync.query(self.collection_name, **req).hits
        if not hits:
            return []
        stored = self._conn.sync.get_many(self.collection_name, [h.id for h in hits])
        return self._mmr_pick(vector, hits, stored, k, lambda_mult)

    async def _ammr(
        self,
        query: str | None,
        vector: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> list[Document]:
        req = self._mmr_request(query, vector, max(fetch_k, k), filter, kwargs)
        if k <= 0:
            return []
        client = self._conn.aio
        hits = (await client.query(self.collection_name, **req)).hits
        if not hits:
            return []
        stored = await client.get_many(self.collection_name, [h.id for h in hits])
        return self._mmr_pick(vector, hits, stored, k, lambda_mult)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Fetches ``fetch_k`` candidates (in the store's or the call's search mode),
        then picks ``k`` of them trading similarity to the query against similarity to
        those already picked, on the stored vectors."""
        vector = self._query_vector(query)
        return self._mmr(query, vector, k, fetch_k, lambda_mult, filter, kwargs)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        vector = await self._aquery_vector(query)
        return await self._ammr(query, vector, k, fetch_k, lambda_mult, filter, kwargs)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return self._mmr(None, embedding, k, fetch_k, lambda_mult, filter, kwargs)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return await self._ammr(None, embedding, k, fetch_k, lambda_mult, filter, kwargs)

    # -- construction from texts ---------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        **kwargs: Any,
    ) -> QuiverVectorStore:
        """Opens (creating if needed) ``collection_name`` and adds ``texts``. The other
        keyword arguments are the constructor's (``client``, ``url``, ...)."""
        store = cls(collection_name, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        **kwargs: Any,
    ) -> QuiverVectorStore:
        # Opening the collection is a blocking call: keep it off the event loop.
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(
            None, lambda: cls(collection_name, embedding, **kwargs)
        )
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store


def _no_extra(kwargs: Mapping[str, Any], where: str) -> None:
    # The base class forwards `ids` itself; anything else is a caller's typo.
    extra = set(kwargs) - {"ids"}
    if extra:
        raise TypeError(f"{where}() got unexpected arguments: {sorted(extra)}")


def _to_langchain(d: QuiverDocument) -> Document:
    return Document(id=d.id, page_content=d.text or "", metadata=dict(d.metadata or {}))


def _scored(h: Hit) -> tuple[Document, float]:
    return Document(id=h.id, page_content=h.text, metadata=dict(h.metadata)), float(h.score)
