"""LangChain's own standard vector store suite (langchain-tests) against a real Quiver
server: every standard test, sync and async, on a fresh collection that stores the
suite's deterministic embeddings."""

from __future__ import annotations

from typing import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from quiver_client import Quiver

from langchain_quiver import QuiverVectorStore


class TestQuiverVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, client: Quiver, collection_name: str) -> Iterator[VectorStore]:
        store = QuiverVectorStore(collection_name, self.get_embeddings(), client=client)
        try:
            yield store
        finally:
            store.delete_collection()
