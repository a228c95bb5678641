"""QuiverVectorStore under LlamaIndex, against a real server: documents ingested through
a ``VectorStoreIndex`` (split into several nodes each, embedded by a deterministic local
model), then dense, hybrid, sparse and MMR retrieval, metadata filters, deleting a source
document's nodes, the store's async methods, and embedding on the server."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, List

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from quiver_client import Quiver
from quiver_testing import start_server

from llama_index.vector_stores.quiver import QuiverVectorStore

DIM = 64


class HashEmbedding(BaseEmbedding):
    """Bag of words hashed into DIM buckets, unit length: texts sharing words are
    close, and the same text always gets the same vector."""

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    @staticmethod
    def _vector(text: str) -> List[float]:
        v = [0.0] * DIM
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIM] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._vector(text)


# Three source documents, each long enough to be split into several nodes.
DOCS = [
    Document(
        doc_id="birds",
        text=" ".join(
            f"Sparrows and finches sing at dawn in garden number {i}." for i in range(12)
        ),
        metadata={"topic": "birds", "year": 2019, "rating": 4.5, "tags": ["nature", "song"]},
    ),
    Document(
        doc_id="engines",
        text=" ".join(
            f"Diesel engines burn fuel under high compression in cylinder {i}."
            for i in range(12)
        ),
        metadata={"topic": "engines", "year": 2021, "rating": 3.0, "tags": ["machines"]},
    ),
    Document(
        doc_id="bread",
        text=" ".join(
            f"Sourdough bread rises slowly with wild yeast in batch {i}." for i in range(12)
        ),
        metadata={"topic": "bread", "year": 2023, "rating": 4.0, "tags": ["food", "nature"]},
    ),
]


def _splitter() -> SentenceSplitter:
    # Whitespace tokens: no tokenizer download, and small chunks give several nodes.
    return SentenceSplitter(chunk_size=48, chunk_overlap=0, tokenizer=str.split)


@pytest.fixture
def index(client: Quiver, collection_name: str) -> VectorStoreIndex:
    store = QuiverVectorStore(collection_name, client)
    ctx = StorageContext.from_defaults(vector_store=store)
    return VectorStoreIndex.from_documents(
        DOCS, storage_context=ctx, embed_model=HashEmbedding(), transformations=[_splitter()]
    )


def _ref_docs(nodes: Any) -> list[str]:
    return [n.node.ref_doc_id for n in nodes]


def test_ingest_creates_the_collection_and_keeps_nodes_whole(
    client: Quiver, collection_name: str, index: VectorStoreIndex
) -> None:
    info = client.get_collection(collection_name)
    assert info.dim == DIM and info.embedding_model is None
    assert info.count > len(DOCS)  # several nodes per document
    hits = index.as_retriever(similarity_top_k=3).retrieve("diesel engines compression")
    assert len(hits) == 3 and _ref_docs(hits) == ["engines"] * 3
    node = hits[0].node
    assert "Diesel engines" in node.get_content()
    assert node.metadata == DOCS[1].metadata
    assert node.relationships[NodeRelationship.SOURCE].node_id == "engines"
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_filters(index: VectorStoreIndex) -> None:
    def topics(filters: MetadataFilters) -> set[str]:
        hits = index.as_retriever(similarity_top_k=50, filters=filters).retrieve("yeast")
        return {h.node.metadata["topic"] for h in hits}

    f = MetadataFilter
    assert topics(MetadataFilters(filters=[f(key="year", value=2021, operator=">=")])) == {
        "engines", "bread"}
    assert topics(MetadataFilters(filters=[f(key="topic", value="birds")])) == {"birds"}
    assert topics(MetadataFilters(filters=[f(key="rating", value=4.5)])) == {"birds"}
    assert topics(MetadataFilters(filters=[f(key="topic", value="birds", operator="!=")])) == {
        "engines", "bread"}
    assert topics(MetadataFilters(filters=[
        f(key="topic", value=["birds", "bread"], operator="in")])) == {"birds", "bread"}
    assert topics(MetadataFilters(filters=[
        f(key="topic", value=["birds", "bread"], operator="nin")])) == {"engines"}
    assert topics(MetadataFilters(filters=[
        f(key="tags", value="nature", operator="contains")])) == {"birds", "bread"}
    assert topics(MetadataFilters(
        filters=[f(key="year", value=2019, operator="=="),
                 f(key="rating", value=4.0, operator="<=")],
        condition=FilterCondition.OR)) == {"birds", "engines", "bread"}
    assert topics(MetadataFilters(filters=[
        f(key="rating", value=3.5, operator=">"),
        MetadataFilters(filters=[f(key="year", value=2020, operator="<"),
                                 f(key="topic", value="bread")],
                        condition=FilterCondition.OR),
    ])) == {"birds", "bread"}
    assert topics(MetadataFilters(filters=[f(key="year", value=1900, operator="<")])) == set()


def test_doc_ids_and_node_ids_restrict_the_query(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(similarity_top_k=50, doc_ids=["bread", "birds"])
    assert set(_ref_docs(retriever.retrieve("diesel"))) == {"bread", "birds"}
    some = [h.node.node_id for h in retriever.retrieve("finches")[:3]]
    store = index.vector_store
    result = store.query(VectorStoreQuery(query_embedding=HashEmbedding()._vector("diesel"),
                                          node_ids=some, similarity_top_k=50))
    assert sorted(result.ids) == sorted(some)


def test_hybrid_and_sparse(index: VectorStoreIndex) -> None:
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=4)
    hits = hybrid.retrieve("sourdough yeast")
    assert len(hits) == 4 and _ref_docs(hits)[0] == "bread"
    # With alpha, weighted fusion: alpha 0 is keyword scores alone.
    weighted = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2,
                                  alpha=0.0)
    assert _ref_docs(weighted.retrieve("finches"))[0] == "birds"
    sparse = index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=50)
    assert set(_ref_docs(sparse.retrieve("cylinder compression"))) == {"engines"}
    filtered = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=50,
        filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="birds")]))
    assert set(_ref_docs(filtered.retrieve("sourdough yeast"))) == {"birds"}


def test_hybrid_request_carries_text_and_vector(server, collection_name: str) -> None:
    sent: list[dict[str, Any]] = []

    class Recording(Quiver):
        def query(self, collection: str, **kwargs: Any):  # type: ignore[override]
            sent.append(kwargs)
            return super().query(collection, **kwargs)

    store = QuiverVectorStore(collection_name, Recording(url=server.url))
    emb = HashEmbedding()
    store.add([TextNode(id_="n1", text="red apples", embedding=emb.get_text_embedding("red apples"))])
    q = VectorStoreQuery(query_embedding=emb.get_query_embedding("apples"), query_str="apples",
                         similarity_top_k=1, mode=VectorStoreQueryMode.HYBRID, alpha=0.25)
    result = store.query(q)
    assert result.ids == ["n1"]
    assert sent[-1]["mode"] == "hybrid" and sent[-1]["text"] == "apples"
    assert sent[-1]["vector"] == pytest.approx(emb.get_query_embedding("apples"))
    assert sent[-1]["fusion"] == {"method": "weighted", "alpha": 0.25}


def test_mmr(index: VectorStoreIndex) -> None:
    plain = index.as_retriever(similarity_top_k=3).retrieve("sparrows sing sourdough bread")
    mmr = index.as_retriever(vector_store_query_mode="mmr", similarity_top_k=3,
                             vector_store_kwargs={"mmr_threshold": 0.3})
    diverse = mmr.retrieve("sparrows sing sourdough bread")
    assert len(diverse) == 3
    # Near-identical chunks crowd the plain top 3; MMR spreads over both matching topics.
    assert len(set(_ref_docs(diverse))) >= 2
    assert len(set(_ref_docs(diverse))) >= len(set(_ref_docs(plain)))


def test_delete_ref_doc(client: Quiver, collection_name: str, index: VectorStoreIndex) -> None:
    before = client.get_collection(collection_name).count
    engine_nodes = index.vector_store.get_nodes(filters=MetadataFilters(
        filters=[MetadataFilter(key="topic", value="engines")]))
    assert engine_nodes and {n.ref_doc_id for n in engine_nodes} == {"engines"}
    index.delete_ref_doc("engines")
    assert client.get_collection(collection_name).count == before - len(engine_nodes)
    hits = index.as_retriever(similarity_top_k=50).retrieve("diesel engines")
    assert "engines" not in _ref_docs(hits) and hits
    # Deleting a document that has no nodes is no error.
    index.vector_store.delete("no-such-document")


async def test_async_index(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, client)
    index = VectorStoreIndex.from_documents(
        DOCS, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=HashEmbedding(), transformations=[_splitter()], use_async=True)
    hits = await index.as_retriever(similarity_top_k=2).aretrieve("finches at dawn")
    assert _ref_docs(hits) == ["birds", "birds"]
    await index.adelete_ref_doc("birds")
    hits = await index.as_retriever(similarity_top_k=50).aretrieve("finches at dawn")
    assert "birds" not in _ref_docs(hits)


def _nodes(emb: HashEmbedding) -> list[TextNode]:
    specs = [("a", "alpha one", "d1", {"k": 1}), ("b", "beta two", "d1", {"k": 2}),
             ("c", "gamma three", "d2", {"k": 3})]
    return [
        TextNode(id_=i, text=t, metadata=m, embedding=emb.get_text_embedding(t),
                 relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=d)})
        for i, t, d, m in specs
    ]


async def test_store_async_methods(server, collection_name: str) -> None:
    emb = HashEmbedding()
    store = QuiverVectorStore(collection_name, url=server.url)
    assert await store.aget_nodes(node_ids=["a"]) == []  # no collection yet
    assert await store.async_add(_nodes(emb)) == ["a", "b", "c"]
    q = VectorStoreQuery(query_embedding=emb.get_query_embedding("beta two"),
                         similarity_top_k=2)
    result = await store.aquery(q)
    assert result.ids[0] == "b" and result.nodes[0].get_content() == "beta two"
    assert result.similarities[0] == pytest.approx(1.0, abs=1e-5)
    sparse = await store.aquery(VectorStoreQuery(query_str="gamma", similarity_top_k=3,
                                                 mode=VectorStoreQueryMode.SPARSE))
    assert sparse.ids == ["c"]
    got = await store.aget_nodes(node_ids=["a", "c", "zz"])
    assert sorted(n.node_id for n in got) == ["a", "c"]
    by_filter = await store.aget_nodes(filters=MetadataFilters(
        filters=[MetadataFilter(key="k", value=2, operator=">=")]))
    assert sorted(n.node_id for n in by_filter) == ["b", "c"]
    await store.adelete("d1")
    assert [n.node_id for n in await store.aget_nodes(node_ids=["a", "b", "c"])] == ["c"]
    await store.async_add(_nodes(emb))
    await store.adelete_nodes(node_ids=["a", "b"], filters=MetadataFilters(
        filters=[MetadataFilter(key="k", value=2)]))
    assert sorted(n.node_id for n in await store.aget_nodes(node_ids=["a", "b", "c"])) == [
        "a", "c"]
    await store.aclear()
    assert await store.aget_nodes(node_ids=["a", "b", "c"]) == []


def test_store_sync_methods(client: Quiver, collection_name: str) -> None:
    emb = HashEmbedding()
    store = QuiverVectorStore(collection_name, client)
    empty = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding("x")))
    assert empty.ids == [] and empty.nodes == []
    store.add(_nodes(emb))
    store.delete_nodes(node_ids=["a"])
    assert sorted(n.node_id for n in store.get_nodes(node_ids=["a", "b", "c"])) == ["b", "c"]
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="k", value=3)]))
    assert [n.node_id for n in store.get_nodes()] == ["b"]
    store.clear()
    assert store.get_nodes() == []
    assert client.collection_exists(collection_name)  # clearing keeps the collection


def test_server_side_embedding(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, client, embedding_model="test/bert")
    assert client.get_collection(collection_name).embedding_model == "test/bert"
    # Of distinct lengths in tokens: the fixture model tells texts apart by that only.
    texts = ["one", "two words", "three words here", "and now four words"]
    store.add([TextNode(id_=f"n{i}", text=t, metadata={"i": i}) for i, t in enumerate(texts)])
    stored = client.get(collection_name, "n2")
    assert stored is not None and len(stored.vector) == 32
    result = store.query(VectorStoreQuery(query_str="three words here", similarity_top_k=1))
    assert result.ids == ["n2"] and result.nodes[0].metadata == {"i": 2}


def test_foreign_documents_come_back_as_text_nodes(client: Quiver,
                                                   collection_name: str) -> None:
    client.create_collection(collection_name, dim=3)
    client.upsert(collection_name, [{"id": "x", "text": "written elsewhere",
                                     "metadata": {"src": "cli"}, "vector": [1, 0, 0]}])
    store = QuiverVectorStore(collection_name, client)
    result = store.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0]))
    node = result.nodes[0]
    assert (node.node_id, node.get_content(), node.metadata) == (
        "x", "written elsewhere", {"src": "cli"})


def test_errors(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, client, dim=DIM)
    assert client.get_collection(collection_name).dim == DIM
    with pytest.raises(ValueError, match="not supported"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * DIM,
                                     mode=VectorStoreQueryMode.SVM))
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * DIM,
                                     mode=VectorStoreQueryMode.HYBRID))
    with pytest.raises(ValueError, match="TEXT_MATCH"):
        store.query(VectorStoreQuery(
            query_embedding=[0.1] * DIM,
            filters=MetadataFilters(filters=[MetadataFilter(
                key="topic", value="bir", operator=FilterOperator.TEXT_MATCH)])))
    with pytest.raises(ValueError, match="nothing says how wide"):
        QuiverVectorStore(collection_name + "-x", client).add([TextNode(text="no vector")])


async def test_api_key_reaches_both_clients(tmp_path) -> None:
    secured = start_server(tmp_path, api_key="s3cret", models=())
    try:
        emb = HashEmbedding()
        store = QuiverVectorStore("keyed", url=secured.url, api_key="s3cret")
        store.add(_nodes(emb)[:1])
        await store.async_add(_nodes(emb)[1:])
        assert len(await store.aget_nodes(node_ids=["a", "b", "c"])) == 3
    finally:
        secured.stop()
