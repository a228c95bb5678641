"""QuiverEmbeddings against a real server: the vectors are the server's, sync and async,
batched, cut to a Matryoshka width, and usable as a vector store's embedding."""

from __future__ import annotations

import numpy as np
import pytest
from quiver_client import Quiver, UnprocessableError

from langchain_quiver import QuiverEmbeddings, QuiverVectorStore

# Of distinct lengths in tokens: the fixture model's vectors tell texts apart by that only.
TEXTS = ["jets", "wing flutter", "heat flux at the wall", "shock waves in a nozzle",
         "boundary layers over a flat plate at high speed"]

# The fixture model every test server has: BERT-shaped, random weights, 32 wide.
MODEL = "test/bert"
MODEL_DIM = 32


def test_embed_documents_and_query(server, client: Quiver) -> None:
    emb = QuiverEmbeddings(MODEL, url=server.url, batch_size=2)
    docs = emb.embed_documents(TEXTS)
    assert len(docs) == len(TEXTS) and all(len(v) == MODEL_DIM for v in docs)
    np.testing.assert_allclose(docs, client.embed(TEXTS, model=MODEL), atol=1e-6)
    np.testing.assert_allclose(emb.embed_query(TEXTS[1]), docs[1], atol=1e-6)
    assert emb.embed_documents([]) == []


def test_dimensions_and_query_task(client: Quiver) -> None:
    emb = QuiverEmbeddings(MODEL, client=client, dimensions=8, query_task="find papers")
    [vec] = emb.embed_documents(["heat transfer"])
    assert len(vec) == 8
    assert sum(x * x for x in vec) == pytest.approx(1.0, abs=1e-5)
    assert len(emb.embed_query("heat transfer")) == 8


async def test_async(client: Quiver) -> None:
    emb = QuiverEmbeddings(MODEL, client=client, batch_size=3)
    docs = await emb.aembed_documents(TEXTS)
    np.testing.assert_allclose(docs, emb.embed_documents(TEXTS), atol=1e-6)
    np.testing.assert_allclose(await emb.aembed_query(TEXTS[0]), docs[0], atol=1e-6)


def test_unknown_model_is_reported(client: Quiver) -> None:
    with pytest.raises(UnprocessableError):
        QuiverEmbeddings("no/such-model", client=client).embed_query("x")


def test_as_a_stores_embedding(client: Quiver, collection_name: str) -> None:
    store = QuiverVectorStore(collection_name, QuiverEmbeddings(MODEL, client=client),
                              client=client)
    assert client.get_collection(collection_name).dim == MODEL_DIM
    store.add_texts(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert [d.id for d in store.similarity_search("wing flutter", k=1)] == ["1"]
    mmr = store.max_marginal_relevance_search(TEXTS[4], k=2, fetch_k=5)
    assert mmr[0].id == "4"
