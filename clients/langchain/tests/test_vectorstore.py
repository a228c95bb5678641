"""QuiverVectorStore beyond the standard suite, against a real server: embedding on the
server, metadata filters (and deleting by one), hybrid and sparse search, maximal
marginal relevance, relevance scores, retrievers, construction from texts, and the
errors a caller can make."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from quiver_client import NotFoundError, Quiver, UnauthorizedError
from quiver_testing import start_server

from langchain_quiver import QuiverVectorStore

# The fixture model every test server has: BERT-shaped, random weights, 32 wide.
MODEL = "test/bert"
MODEL_DIM = 32


class TableEmbeddings(Embeddings):
    """Fixed vectors for known texts, so tests can reason about geometry."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table[text]


class RecordingQuiver(Quiver):
    """A client that remembers the arguments of every query it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queries: list[dict[str, Any]] = []

    def query(self, collection: str, **kwargs: Any):  # type: ignore[override]
        self.queries.append(kwargs)
        return super().query(collection, **kwargs)


# The fixture model's vectors tell texts apart by their length in tokens only, so each
# text here has its own length: searching a text's own words finds it first.
PAPERS = [
    ("p1", "heat transfer",
     {"year": 1958, "venue": {"name": "JAS", "kind": "journal"}, "tags": ["heat", "flow"]}),
    ("p2", "wing flutter at high speed",
     {"year": 1962, "venue": {"name": "AIAA", "kind": "journal"}, "tags": ["flutter"]}),
    ("p3", "heat flux over flat plates in a tunnel",
     {"year": 1965, "venue": {"name": "NACA", "kind": "report"}, "tags": ["heat"]}),
    ("p4", "boundary layer transition on swept wings of a large aircraft model in flight",
     {"year": 1970, "venue": {"name": "JFM", "kind": "journal"}, "tags": ["flow", "wings"]}),
]


def _add_papers(store: QuiverVectorStore) -> None:
    ids = store.add_texts(
        [t for _, t, _ in PAPERS], [m for _, _, m in PAPERS], ids=[i for i, _, _ in PAPERS]
    )
    assert ids == [i for i, _, _ in PAPERS]


@pytest.fixture
def papers(client: Quiver, collection_name: str) -> QuiverVectorStore:
    """A collection of the papers whose vectors the server's fixture model computed."""
    store = QuiverVectorStore(collection_name, client=client, embedding_model=MODEL)
    _add_papers(store)
    return store


def test_server_side_embedding_stores_and_finds_texts(
    client: Quiver, collection_name: str, papers: QuiverVectorStore
) -> None:
    info = client.get_collection(collection_name)
    assert info.embedding_model == MODEL and info.dim == MODEL_DIM and info.count == 4
    assert papers.embeddings is None
    # The server embedded every text: the stored vectors are the model's.
    stored = client.get(collection_name, "p2")
    assert stored is not None and len(stored.vector) == MODEL_DIM
    top = papers.similarity_search_with_score(PAPERS[1][1], k=2)
    assert top[0][0] == Document(id="p2", page_content=PAPERS[1][1], metadata=PAPERS[1][2])
    assert top[0][1] == pytest.approx(1.0, abs=1e-4)
    assert top[0][1] >= top[1][1]
    # A second store on the existing collection needs no model argument.
    again = QuiverVectorStore(collection_name, client=client)
    assert [d.id for d in again.similarity_search(PAPERS[2][1], k=1)] == ["p3"]
    assert {d.id for d in again.get_by_ids(["p1", "p4", "nope"])} == {"p1", "p4"}


async def test_server_side_embedding_async(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, client=client, embedding_model=MODEL)
    ids = await store.aadd_texts(["one", "two more words"], [{"n": 1}, {"n": 2}])
    assert len(ids) == 2 and all(ids)
    found = await store.asimilarity_search("two more words", k=1)
    assert found == [Document(id=ids[1], page_content="two more words", metadata={"n": 2})]
    assert await store.adelete([ids[1], "never-there"])
    assert [d.id for d in await store.asimilarity_search("two more words", k=5)] == [ids[0]]


@pytest.mark.parametrize(
    ("filter", "want"),
    [
        ({"must": [{"key": "year", "range": {"gte": 1962, "lt": 1970}}]}, {"p2", "p3"}),
        ({"must": [{"key": "venue.kind", "match": "journal"}]}, {"p1", "p2", "p4"}),
        ({"must": [{"key": "tags", "match": "heat"}]}, {"p1", "p3"}),
        ({"must": [{"key": "venue.name", "any": ["NACA", "JFM"]}]}, {"p3", "p4"}),
        ({"must_not": [{"key": "tags", "match": "flow"}]}, {"p2", "p3"}),
        ({"should": [{"key": "year", "match": 1958}, {"key": "tags", "match": "wings"}]},
         {"p1", "p4"}),
        ({"must": [{"key": "missing", "match": 1}]}, set()),
    ],
)
def test_filters(papers: QuiverVectorStore, filter: dict, want: set[str]) -> None:
    found = papers.similarity_search("heat transfer", k=10, filter=filter)
    assert {d.id for d in found} == want
    by_vector = papers.similarity_search_by_vector([1.0] + [0.0] * (MODEL_DIM - 1), k=10,
                                                   filter=filter)
    assert {d.id for d in by_vector} == want


async def test_filters_async(papers: QuiverVectorStore) -> None:
    flt = {"must": [{"key": "venue.kind", "match": "report"}]}
    assert [d.id for d in await papers.asimilarity_search("wings", k=4, filter=flt)] == ["p3"]


def test_delete_by_filter(client: Quiver, collection_name: str,
                          papers: QuiverVectorStore) -> None:
    assert papers.delete(filter={"must": [{"key": "tags", "match": "heat"}]})
    left = {d.id for d in papers.similarity_search("heat", k=10)}
    assert left == {"p2", "p4"}
    assert client.get_collection(collection_name).count == 2


async def test_delete_by_filter_async(papers: QuiverVectorStore) -> None:
    assert await papers.adelete(filter={"must": [{"key": "year", "range": {"lt": 1965}}]})
    assert {d.id for d in await papers.asimilarity_search("heat", k=10)} == {"p3", "p4"}


def test_delete_needs_ids_or_filter(papers: QuiverVectorStore) -> None:
    with pytest.raises(ValueError, match="ids or filter"):
        papers.delete()


def test_sparse_and_hybrid_search(papers: QuiverVectorStore) -> None:
    # Keyword search finds only the papers containing the word.
    sparse = papers.similarity_search("flutter", k=4, search_mode="sparse")
    assert [d.id for d in sparse] == ["p2"]
    # Hybrid fuses both lists: the keyword match leads, dense neighbours follow.
    hybrid = papers.similarity_search("flutter", k=4, search_mode="hybrid")
    assert hybrid[0].id == "p2" and len(hybrid) == 4
    # Filters apply to both lists.
    flt = {"must": [{"key": "venue.kind", "match": "report"}]}
    assert [d.id for d in papers.similarity_search("flutter", k=4, search_mode="hybrid",
                                                   filter=flt)] == ["p3"]


def test_hybrid_sends_text_and_vector(server, collection_name: str) -> None:
    client = RecordingQuiver(url=server.url)
    emb = DeterministicFakeEmbedding(size=8)
    store = QuiverVectorStore(collection_name, emb, client=client, search_mode="hybrid")
    store.add_texts(["red apples", "green pears", "yellow bananas"], ids=["a", "p", "b"])
    found = store.similarity_search("pears", k=3, fusion="rrf")
    assert found[0].id == "p"
    sent = client.queries[-1]
    assert sent["mode"] == "hybrid" and sent["text"] == "pears"
    assert sent["vector"] == pytest.approx(emb.embed_query("pears"))
    assert sent["fusion"] == "rrf"
    # The store's mode is the default; a call may pick another.
    store.similarity_search("pears", k=1, search_mode="dense")
    assert client.queries[-1]["mode"] == "dense" and "text" not in client.queries[-1]
    # Weighted fusion through the pass-through options.
    found = store.similarity_search_with_score(
        "bananas", k=3, fusion={"method": "weighted", "alpha": 0.3})
    assert found[0][0].id == "b"
    client.close()


async def test_hybrid_async(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=8),
                              client=client, search_mode="hybrid")
    await store.aadd_texts(["red apples", "green pears", "yellow bananas"],
                           ids=["a", "p", "b"])
    assert (await store.asimilarity_search("apples", k=3))[0].id == "a"


def test_hybrid_with_server_side_embedding(papers: QuiverVectorStore) -> None:
    found = papers.similarity_search_with_score("swept wings transition", k=2,
                                                search_mode="hybrid")
    assert found[0][0].id == "p4"


def _unit(*v: float) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


# Similarity to the query: a1 0.98, a2 0.97 (a near copy of a1), c 0.90, b 0.80; c is
# the one least like a1 among the good ones.
MMR_TABLE = {
    "q": [1.0, 0.0, 0.0],
    "a1": _unit(0.98, 0.199, 0.0),
    "a2": _unit(0.97, 0.243, 0.0),
    "b": _unit(0.8, 0.6, 0.0),
    "c": _unit(0.9, 0.0, 0.436),
}


@pytest.fixture
def mmr_store(client: Quiver, collection_name: str) -> QuiverVectorStore:
    store = QuiverVectorStore(collection_name, TableEmbeddings(MMR_TABLE), client=client,
                              dim=3)
    texts = ["a1", "a2", "b", "c"]
    store.add_texts(texts, [{"name": t} for t in texts], ids=texts)
    return store


def test_mmr_prefers_diverse_documents(mmr_store: QuiverVectorStore) -> None:
    plain = [d.id for d in mmr_store.similarity_search("q", k=2)]
    assert plain == ["a1", "a2"]
    mmr = [d.id for d in mmr_store.max_marginal_relevance_search("q", k=2, fetch_k=4,
                                                                 lambda_mult=0.5)]
    # a2 adds little next to a1; MMR takes the dissimilar c instead.
    assert mmr == ["a1", "c"]
    # lambda 1 is plain similarity.
    assert [d.id for d in mmr_store.max_marginal_relevance_search(
        "q", k=2, fetch_k=4, lambda_mult=1.0)] == ["a1", "a2"]
    by_vector = mmr_store.max_marginal_relevance_search_by_vector(
        MMR_TABLE["q"], k=3, fetch_k=4, lambda_mult=0.5,
        filter={"must_not": [{"key": "name", "match": "a1"}]})
    assert len(by_vector) == 3 and "a1" not in {d.id for d in by_vector}
    assert by_vector[0] == Document(id="a2", page_content="a2", metadata={"name": "a2"})


async def test_mmr_async(mmr_store: QuiverVectorStore) -> None:
    mmr = await mmr_store.amax_marginal_relevance_search("q", k=2, fetch_k=4)
    assert [d.id for d in mmr] == ["a1", "c"]
    by_vector = await mmr_store.amax_marginal_relevance_search_by_vector(
        MMR_TABLE["q"], k=2, fetch_k=4)
    assert [d.id for d in by_vector] == [d.id for d in mmr]


def test_mmr_with_server_side_embedding(papers: QuiverVectorStore) -> None:
    picked = papers.max_marginal_relevance_search(PAPERS[0][1], k=3, fetch_k=4)
    assert picked[0].id == "p1" and len({d.id for d in picked}) == 3


async def test_mmr_with_server_side_embedding_async(papers: QuiverVectorStore) -> None:
    picked = await papers.amax_marginal_relevance_search(PAPERS[3][1], k=2, fetch_k=4)
    assert picked[0].id == "p4" and len(picked) == 2


def test_relevance_scores(mmr_store: QuiverVectorStore) -> None:
    scored = mmr_store.similarity_search_with_relevance_scores("q", k=4)
    ids = [d.id for d, _ in scored]
    assert ids == ["a1", "a2", "c", "b"]
    # Cosine similarity s becomes (1 + s) / 2.
    want = [(1.0 + MMR_TABLE[i][0]) / 2.0 for i in ids]
    assert [s for _, s in scored] == pytest.approx(want, abs=1e-4)
    above = mmr_store.similarity_search_with_relevance_scores("q", k=4, score_threshold=0.96)
    assert [d.id for d, _ in above] == ["a1", "a2"]
    with pytest.raises(ValueError, match="dense"):
        mmr_store.similarity_search_with_relevance_scores("q", k=2, search_mode="hybrid")


async def test_relevance_scores_async(mmr_store: QuiverVectorStore) -> None:
    scored = await mmr_store.asimilarity_search_with_relevance_scores("q", k=1)
    assert scored[0][0].id == "a1"
    assert scored[0][1] == pytest.approx((1.0 + MMR_TABLE["a1"][0]) / 2.0, abs=1e-4)


def test_relevance_scores_l2(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, TableEmbeddings(MMR_TABLE), client=client,
                              dim=3, distance="l2")
    store.add_texts(["a1", "b"], ids=["a1", "b"])
    scored = dict((d.id, s) for d, s in store.similarity_search_with_relevance_scores("q", k=2))
    for id_ in ("a1", "b"):
        distance = math.dist(MMR_TABLE["q"], MMR_TABLE[id_])
        assert scored[id_] == pytest.approx(1.0 - distance / math.sqrt(2.0), abs=1e-4)


def test_retrievers(papers: QuiverVectorStore) -> None:
    retriever = papers.as_retriever(search_kwargs={
        "k": 2, "filter": {"must": [{"key": "tags", "match": "heat"}]}})
    assert {d.id for d in retriever.invoke("heat")} == {"p1", "p3"}
    sparse = papers.as_retriever(search_kwargs={"k": 1, "search_mode": "sparse"})
    assert [d.id for d in sparse.invoke("flutter")] == ["p2"]


def test_retriever_search_types(mmr_store: QuiverVectorStore) -> None:
    mmr = mmr_store.as_retriever(search_type="mmr",
                                 search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.5})
    assert [d.id for d in mmr.invoke("q")] == ["a1", "c"]
    threshold = mmr_store.as_retriever(search_type="similarity_score_threshold",
                                       search_kwargs={"k": 4, "score_threshold": 0.96})
    assert [d.id for d in threshold.invoke("q")] == ["a1", "a2"]


async def test_retriever_async(papers: QuiverVectorStore) -> None:
    retriever = papers.as_retriever(search_kwargs={"k": 1})
    assert [d.id for d in await retriever.ainvoke(PAPERS[1][1])] == ["p2"]


def test_from_texts_and_documents(server, client: Quiver, collection_name: str) -> None:
    emb = DeterministicFakeEmbedding(size=6)
    store = QuiverVectorStore.from_texts(
        ["one", "two"], emb, [{"n": 1}, {"n": 2}], ids=["1", "2"],
        collection_name=collection_name, url=server.url)
    assert client.get_collection(collection_name).dim == 6
    assert store.similarity_search("two", k=1) == [
        Document(id="2", page_content="two", metadata={"n": 2})]
    more = QuiverVectorStore.from_documents(
        [Document(page_content="three", id="3"), Document(page_content="four")], emb,
        collection_name=collection_name, client=client)
    assert client.get_collection(collection_name).count == 4
    assert {d.id for d in more.get_by_ids(["1", "3"])} == {"1", "3"}


async def test_afrom_texts(server, client: Quiver, collection_name: str) -> None:
    store = await QuiverVectorStore.afrom_texts(
        ["alpha", "beta gamma delta"], None, ids=["a", "b"], collection_name=collection_name,
        url=server.url, embedding_model=MODEL)
    assert [d.id for d in await store.asimilarity_search("beta gamma delta", k=1)] == ["b"]
    assert {d.id for d in await store.aget_by_ids(["a", "b", "c"])} == {"a", "b"}


def test_documents_keep_ids_and_metadata(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=4),
                              client=client)
    meta = {"nested": {"list": [1, 2.5, "x"], "flag": True}, "none": None}
    docs = [Document(page_content="kept", metadata=meta, id="mine"),
            Document(page_content="generated")]
    ids = store.add_documents(docs)
    assert ids[0] == "mine" and ids[1] and ids[1] != "mine"
    assert docs[1].id is None  # the caller's document is not changed
    got = {d.id: d for d in store.get_by_ids(ids)}
    assert got["mine"].metadata == meta and got[ids[1]].page_content == "generated"
    assert store.add_texts([]) == []


def test_collection_settings_on_create(client: Quiver, collection_name: str) -> None:
    QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=5), client=client,
                      distance="dot", collection_options={"analyzer": "simple",
                                                          "hnsw": {"m": 8}})
    config = client.get_collection(collection_name).config
    assert config is not None
    assert (config.dim, config.distance, config.analyzer, config.hnsw["m"]) == (
        5, "dot", "simple", 8)


def test_construction_errors(client: Quiver, collection_name: str) -> None:
    with pytest.raises(ValueError, match="embedding_model="):
        QuiverVectorStore(collection_name, client=client)
    with pytest.raises(NotFoundError):
        QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=4), client=client,
                          create_collection=False)
    with pytest.raises(ValueError, match="search_mode"):
        QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=4), client=client,
                          search_mode="fuzzy")  # type: ignore[arg-type]
    # A collection of caller-computed vectors cannot embed texts by itself.
    QuiverVectorStore(collection_name, DeterministicFakeEmbedding(size=4), client=client)
    with pytest.raises(ValueError, match="no embedding_model"):
        QuiverVectorStore(collection_name, client=client)


def test_argument_errors(mmr_store: QuiverVectorStore) -> None:
    with pytest.raises(TypeError, match="unknown search arguments"):
        mmr_store.similarity_search("q", k=1, top_n=3)
    with pytest.raises(TypeError, match="unexpected"):
        mmr_store.add_texts(["a1"], colour="red")
    with pytest.raises(ValueError, match="metadatas"):
        mmr_store.add_texts(["a1", "b"], [{}])
    with pytest.raises(ValueError, match="needs query text"):
        mmr_store.similarity_search_by_vector(MMR_TABLE["q"], k=1, search_mode="hybrid")
    assert mmr_store.similarity_search("q", k=0) == []


async def test_api_key_reaches_both_clients(tmp_path) -> None:
    secured = start_server(tmp_path, api_key="s3cret", models=())
    try:
        store = QuiverVectorStore("keyed", DeterministicFakeEmbedding(size=4),
                                  url=secured.url, api_key="s3cret")
        store.add_texts(["sync"], ids=["s"])
        await store.aadd_texts(["async"], ids=["a"])
        assert {d.id for d in await store.aget_by_ids(["s", "a"])} == {"s", "a"}
        with pytest.raises(UnauthorizedError):
            QuiverVectorStore("keyed", DeterministicFakeEmbedding(size=4), url=secured.url,
                              api_key="wrong")
    finally:
        secured.stop()
