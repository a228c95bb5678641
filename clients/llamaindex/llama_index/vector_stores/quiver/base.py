"""LlamaIndex's vector store over one Quiver collection.

Owns how nodes become Quiver documents and back (the node's id is the document's id, its
text the document's text, and its metadata the document's metadata together with what
LlamaIndex needs to rebuild the node: the serialized node and its ``ref_doc_id``), the
query modes (dense, hybrid, sparse, MMR), metadata filters (``filters.py``), and
deleting a source document's nodes through a filter on ``ref_doc_id``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, List, Mapping, Optional, Sequence

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import (
    metadata_dict_to_node,
    node_to_metadata_dict,
)
from quiver_client import AsyncQuiver, ConflictError, Hit, NotFoundError, Quiver
from quiver_client import Document as QuiverDocument

from .filters import to_quiver_filter

__all__ = ["QuiverVectorStore"]

logger = logging.getLogger(__name__)

# Most hits one query may return (the server's default `limits.max_top_k`): deleting by
# filter pages through the matches this many at a time.
_PAGE = 1000
# The metadata key LlamaIndex's serialization writes the source document's id under.
_REF_DOC_KEY = "ref_doc_id"
# The node's own id, kept in metadata too: filters read metadata only, and a query
# restricted to node ids filters on it. The leading underscore marks it as the
# store's, as LlamaIndex marks `_node_content`; it never reaches the rebuilt node.
_NODE_ID_KEY = "_node_id"
_SPARSE_MODES = (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH)


class QuiverVectorStore(BasePydanticVectorStore):
    """A Quiver collection as a LlamaIndex vector store (``stores_text``: nodes come
    back whole from a query, no docstore needed).

    Args:
        collection_name: the collection (``[A-Za-z0-9_-]{1,64}``). When it does not
            exist it is created on the first ``add``, as wide as the nodes'
            embeddings (or at once, when ``dim`` or ``embedding_model`` is given).
        client, async_client: a ``quiver_client.Quiver`` / ``AsyncQuiver``; either one
            is enough, or give ``url`` and ``api_key``.
        dim, distance, embedding_model, collection_options: settings of a collection
            this store creates (``collection_options``: any other create argument,
            such as ``analyzer`` or ``hnsw``). With ``embedding_model`` the server
            embeds nodes that arrive without an embedding.
        batch_size: nodes per upsert request.
        flat_metadata: refuse nested metadata (Quiver itself stores and filters
            nested values, so the default allows them).

    Query modes: ``DEFAULT`` (dense, by the query embedding), ``HYBRID`` (query text
    and embedding, fused on the server: ``alpha`` picks weighted fusion with that
    weight on the dense side, else reciprocal rank fusion), ``SPARSE`` /
    ``TEXT_SEARCH`` (BM25 on the query text) and ``MMR`` (dense candidates reordered
    by maximal marginal relevance; ``mmr_threshold`` and ``mmr_prefetch_k`` as query
    keyword arguments). Extra query keyword arguments ``ef``, ``exact``, ``rerank``,
    ``fusion`` and ``task`` go to the server unchanged.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str
    batch_size: int = 256

    _client: Optional[Quiver] = PrivateAttr(default=None)
    _given_async: Optional[AsyncQuiver] = PrivateAttr(default=None)
    _async: Optional[AsyncQuiver] = PrivateAttr(default=None)
    _async_loop: Any = PrivateAttr(default=None)
    _url: Optional[str] = PrivateAttr(default=None)
    _api_key: Optional[str] = PrivateAttr(default=None)
    _create: dict = PrivateAttr(default_factory=dict)
    _dim: Optional[int] = PrivateAttr(default=None)

    def __init__(
        self,
        collection_name: str,
        client: Optional[Quiver] = None,
        *,
        async_client: Optional[AsyncQuiver] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        dim: Optional[int] = None,
        distance: Optional[str] = None,
        embedding_model: Optional[str] = None,
        collection_options: Optional[Mapping[str, Any]] = None,
        batch_size: int = 256,
        flat_metadata: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            collection_name=collection_name,
            batch_size=batch_size,
            flat_metadata=flat_metadata,
            **kwargs,
        )
        source = client if client is not None else async_client
        self._url = url if url is not None else getattr(source, "url", None)
        self._api_key = api_key if api_key is not None else getattr(source, "api_key", None)
        self._client = client
        self._given_async = async_client
        create = dict(collection_options or {})
        for name, value in (("dim", dim), ("distance", distance),
                            ("embedding_model", embedding_model)):
            if value is not None:
                create[name] = value
        self._create = create
        if dim is not None or embedding_model is not None:
            # Everything the collection needs is known: create it now, so it exists
            # (and is checked) before the first write.
            self._open(dim)

    @classmethod
    def class_name(cls) -> str:
        return "QuiverVectorStore"

    # -- clients -------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self._url is not None:
            kw["url"] = self._url
        if self._api_key is not None:
            kw["api_key"] = self._api_key
        return kw

    @property
    def client(self) -> Quiver:
        """The sync Quiver client."""
        if self._client is None:
            self._client = Quiver(**self._client_kwargs())
        return self._client

    @property
    def aclient(self) -> AsyncQuiver:
        """The async Quiver client of the running event loop (an async HTTP client
        belongs to the loop it first ran in, so one built here is rebuilt per loop)."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            self._async = AsyncQuiver(**self._client_kwargs())
            self._async_loop = weakref.ref(loop)
        return self._async

    # -- the collection ------------------------------------------------------------

    def _create_args(self, dim: Optional[int]) -> dict[str, Any]:
        args = dict(self._create)
        if dim is not None and "dim" not in args and "embedding_model" not in args:
            args["dim"] = dim
        if "dim" not in args and "embedding_model" not in args:
            raise ValueError(
                f"collection {self.collection_name!r} does not exist and nothing says how "
                "wide its vectors are: add nodes with embeddings, or pass dim= or "
                "embedding_model="
            )
        return args

    def _open(self, dim: Optional[int]) -> int:
        """The collection's width, creating the collection when it is missing."""
        if self._dim is None:
            try:
                info = self.client.get_collection(self.collection_name)
            except NotFoundError:
                try:
                    info = self.client.create_collection(
                        self.collection_name, **self._create_args(dim))
                except ConflictError:
                    info = self.client.get_collection(self.collection_name)
            self._dim = info.dim
        return self._dim

    async def _aopen(self, dim: Optional[int]) -> int:
        if self._dim is None:
            client = self.aclient
            try:
                info = await client.get_collection(self.collection_name)
            except NotFoundError:
                try:
                    info = await client.create_collection(
                        self.collection_name, **self._create_args(dim))
                except ConflictError:
                    info = await client.get_collection(self.collection_name)
            self._dim = info.dim
        return self._dim

    def _existing_dim(self) -> Optional[int]:
        """The collection's width, or None when it does not exist (nothing to read or
        delete then)."""
        if self._dim is None:
            try:
                self._dim = self.client.get_collection(self.collection_name).dim
            except NotFoundError:
                return None
        return self._dim

    async def _aexisting_dim(self) -> Optional[int]:
        if self._dim is None:
            try:
                self._dim = (await self.aclient.get_collection(self.collection_name)).dim
            except NotFoundError:
                return None
        return self._dim

    # -- writes --------------------------------------------------------------------

    def _documents(self, nodes: Sequence[BaseNode]) -> list[QuiverDocument]:
        docs = []
        for node in nodes:
            metadata = node_to_metadata_dict(
                node, remove_text=True, flat_metadata=self.flat_metadata
            )
            metadata[_NODE_ID_KEY] = node.node_id
            docs.append(
                QuiverDocument(
                    id=node.node_id,
                    # The text is the document's own: keyword search indexes it, and it
                    # is left out of the serialized node so it is stored once.
                    text=node.get_content(metadata_mode=MetadataMode.NONE),
                    metadata=metadata,
                    vector=node.embedding,
                )
            )
        return docs

    @staticmethod
    def _width(nodes: Sequence[BaseNode]) -> Optional[int]:
        for node in nodes:
            if node.embedding is not None:
                return len(node.embedding)
        return None

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upserts the nodes (an existing id is replaced); returns their ids."""
        if not nodes:
            return []
        self._open(self._width(nodes))
        docs = self._documents(nodes)
        self.client.upsert(self.collection_name, docs, batch_size=self.batch_size)
        return [d.id for d in docs]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        if not nodes:
            return []
        await self._aopen(self._width(nodes))
        docs = self._documents(nodes)
        await self.aclient.upsert(self.collection_name, docs, batch_size=self.batch_size)
        return [d.id for d in docs]

    @staticmethod
    def _match_all(dim: int, filter: Optional[dict]) -> dict[str, Any]:
        # Which rows pass the filter is all that matters, not their order: an exact
        # scan returns every match, where a graph walk might miss some.
        probe = [0.0] * dim
        probe[0] = 1.0
        req: dict[str, Any] = {"vector": probe, "mode": "dense", "top_k": _PAGE, "exact": True}
        if filter:
            req["filter"] = filter
        return req

    def _delete_where(self, filter: Optional[dict]) -> int:
        dim = self._existing_dim()
        if dim is None:
            return 0
        removed = 0
        while True:
            hits = self.client.query(self.collection_name, **self._match_all(dim, filter)).hits
            n = self.client.delete_many(self.collection_name, [h.id for h in hits])
            removed += n
            if len(hits) < _PAGE or n == 0:
                return removed

    async def _adelete_where(self, filter: Optional[dict]) -> int:
        dim = await self._aexisting_dim()
        if dim is None:
            return 0
        client = self.aclient
        removed = 0
        while True:
            hits = (await client.query(self.collection_name,
                                       **self._match_all(dim, filter))).hits
            n = await client.delete_many(self.collection_name, [h.id for h in hits])
            removed += n
            if len(hits) < _PAGE or n == 0:
                return removed

    @staticmethod
    def _ref_doc_filter(ref_doc_id: str) -> dict:
        return {"must": [{"key": _REF_DOC_KEY, "match": ref_doc_id}]}

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of source document ``ref_doc_id``."""
        self._delete_where(self._ref_doc_filter(ref_doc_id))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._adelete_where(self._ref_doc_filter(ref_doc_id))

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids, or those matching ``filters``, or, given
        both, those with these ids that match ``filters``."""
        if node_ids is None and filters is None:
            return
        if filters is None:
            if self._existing_dim() is not None:
                self.client.delete_many(self.collection_name, node_ids)
            return
        if node_ids is None:
            self._delete_where(to_quiver_filter(filters))
            return
        keep = {n.node_id for n in self.get_nodes(node_ids=node_ids, filters=filters)}
        self.client.delete_many(self.collection_name, [i for i in node_ids if i in keep])

    async def adelete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        if node_ids is None and filters is None:
            return
        if filters is None:
            if await self._aexisting_dim() is not None:
                await self.aclient.delete_many(self.collection_name, node_ids)
            return
        if node_ids is None:
            await self._adelete_where(to_quiver_filter(filters))
            return
        keep = {n.node_id for n in await self.aget_nodes(node_ids=node_ids, filters=filters)}
        await self.aclient.delete_many(self.collection_name,
                                       [i for i in node_ids if i in keep])

    def clear(self) -> None:
        """Deletes every node; the collection and its settings stay."""
        self._delete_where(None)

    async def aclear(self) -> None:
        await self._adelete_where(None)

    # -- reads ---------------------------------------------------------------------

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        """The stored nodes with these ids and/or matching ``filters`` (at most 1,000
        by filter alone)."""
        dim = self._existing_dim()
        if dim is None:
            return []
        if node_ids is not None:
            docs = self.client.get_many(self.collection_name, node_ids)
            nodes = [_node(d.id, d.text or "", d.metadata) for d in docs]
            if filters is None:
                return nodes
            allowed = {h.id for h in self.client.query(
                self.collection_name, **self._match_all(dim, to_quiver_filter(filters))).hits}
            return [n for n in nodes if n.node_id in allowed]
        flt = to_quiver_filter(filters) if filters is not None else None
        hits = self.client.query(self.collection_name, **self._match_all(dim, flt)).hits
        return [_node(h.id, h.text, h.metadata) for h in hits]

    async def aget_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        dim = await self._aexisting_dim()
        if dim is None:
            return []
        client = self.aclient
        if node_ids is not None:
            docs = await client.get_many(self.collection_name, node_ids)
            nodes = [_node(d.id, d.text or "", d.metadata) for d in docs]
            if filters is None:
                return nodes
            found = await client.query(
                self.collection_name, **self._match_all(dim, to_quiver_filter(filters)))
            allowed = {h.id for h in found.hits}
            return [n for n in nodes if n.node_id in allowed]
        flt = to_quiver_filter(filters) if filters is not None else None
        found = await client.query(self.collection_name, **self._match_all(dim, flt))
        return [_node(h.id, h.text, h.metadata) for h in found.hits]

    # -- queries -------------------------------------------------------------------

    def _request(self, query: VectorStoreQuery, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The server request for ``query`` (for MMR: its candidate search)."""
        mode = query.mode
        req: dict[str, Any] = {k: kwargs[k] for k in ("ef", "exact", "rerank", "fusion", "task")
                               if k in kwargs}
        conditions: list[dict[str, Any]] = []
        if query.filters is not None and query.filters.filters:
            conditions.append(to_quiver_filter(query.filters))
        if query.doc_ids:
            conditions.append({"key": _REF_DOC_KEY, "any": list(query.doc_ids)})
        # An empty list is what an index over a text-storing store passes: no limit.
        if query.node_ids:
            conditions.append({"key": _NODE_ID_KEY, "any": list(query.node_ids)})
        if conditions:
            req["filter"] = {"must": conditions}

        if mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            req["mode"] = "dense"
            req["top_k"] = query.similarity_top_k
            if query.query_embedding is not None:
                req["vector"] = list(query.query_embedding)
            elif query.query_str:
                # No embedding from LlamaIndex: the collection's model embeds the text.
                req["text"] = query.query_str
            else:
                raise ValueError("a dense query needs query_embedding or query_str")
        elif mode == VectorStoreQueryMode.HYBRID:
            if not query.query_str:
                raise ValueError("a hybrid query needs query_str")
            req["mode"] = "hybrid"
            req["text"] = query.query_str
            req["top_k"] = query.hybrid_top_k or query.similarity_top_k
            if query.query_embedding is not None:
                req["vector"] = list(query.query_embedding)
            if query.alpha is not None and "fusion" not in req:
                # LlamaIndex's alpha weighs the vector side (1: vector only), as
                # Quiver's weighted fusion does.
                req["fusion"] = {"method": "weighted", "alpha": query.alpha}
        elif mode in _SPARSE_MODES:
            if not query.query_str:
                raise ValueError(f"a {mode.value} query needs query_str")
            req["mode"] = "sparse"
            req["text"] = query.query_str
            req["top_k"] = query.sparse_top_k or query.similarity_top_k
        else:
            raise ValueError(
                f"query mode {mode.value!r} is not supported by QuiverVectorStore "
                "(default, hybrid, sparse, text_search, mmr are)"
            )
        if mode == VectorStoreQueryMode.MMR:
            if query.query_embedding is None:
                raise ValueError("an MMR query needs query_embedding")
            prefetch = kwargs.get("mmr_prefetch_k") or max(20, 4 * query.similarity_top_k)
            req["top_k"] = min(_PAGE, max(prefetch, query.similarity_top_k))
        return req

    @staticmethod
    def _result(hits: Sequence[Hit]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(
            nodes=[_node(h.id, h.text, h.metadata) for h in hits],
            similarities=[float(h.score) for h in hits],
            ids=[h.id for h in hits],
        )

    @staticmethod
    def _mmr(
        query: VectorStoreQuery,
        hits: Sequence[Hit],
        stored: Sequence[QuiverDocument],
        kwargs: Mapping[str, Any],
    ) -> VectorStoreQueryResult:
        by_id = {d.id: d for d in stored if d.vector}
        hits = [h for h in hits if h.id in by_id]
        threshold = kwargs.get("mmr_threshold", query.mmr_threshold)
        scores, ids = get_top_k_mmr_embeddings(
            list(query.query_embedding or []),
            [by_id[h.id].vector for h in hits],
            similarity_top_k=query.similarity_top_k,
            embedding_ids=[h.id for h in hits],
            mmr_threshold=threshold,
        )
        hit_of = {h.id: h for h in hits}
        picked = [hit_of[i] for i in ids]
        result = QuiverVectorStore._result(picked)
        result.similarities = [float(s) for s in scores]
        return result

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        req = self._request(query, kwargs)
        if query.similarity_top_k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        try:
            hits = self.client.query(self.collection_name, **req).hits
        except NotFoundError:
            if self.client.collection_exists(self.collection_name):
                raise
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if query.mode != VectorStoreQueryMode.MMR:
            return self._result(hits)
        stored = self.client.get_many(self.collection_name, [h.id for h in hits])
        return self._mmr(query, hits, stored, kwargs)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        req = self._request(query, kwargs)
        if query.similarity_top_k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        client = self.aclient
        try:
            hits = (await client.query(self.collection_name, **req)).hits
        except NotFoundError:
            if await client.collection_exists(self.collection_name):
                raise
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        if query.mode != VectorStoreQueryMode.MMR:
            return self._result(hits)
        stored = await client.get_many(self.collection_name, [h.id for h in hits])
        return self._mmr(query, hits, stored, kwargs)


def _node(id_: str, text: str, metadata: Mapping[str, Any]) -> BaseNode:
    """The node a document stands for: rebuilt from its serialized form when LlamaIndex
    wrote it, else a plain text node (documents written by other Quiver clients)."""
    if "_node_content" in metadata:
        try:
            return metadata_dict_to_node(dict(metadata), text=text)
        except Exception as e:  # a damaged or foreign payload: still return the text
            logger.warning("document %r: cannot rebuild its node (%s)", id_, e)
    return TextNode(id_=id_, text=text, metadata=dict(metadata))
