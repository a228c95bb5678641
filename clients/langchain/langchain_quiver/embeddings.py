"""LangChain ``Embeddings`` computed by a Quiver server's ``/embed`` route."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from quiver_client import AsyncQuiver, Quiver

from ._connection import Connection

__all__ = ["QuiverEmbeddings"]


class QuiverEmbeddings(Embeddings):
    """Embeddings from the models a Quiver server runs.

    Args:
        model: the model name (``None``: the server's default embedding model, or its
            only one).
        dimensions: keep the first ``dimensions`` components (Matryoshka) and
            renormalize; ``None`` keeps the model's width.
        query_task: instruction queries are embedded with (instruction-tuned models
            such as Qwen3-Embedding rank better with one); ``None`` embeds queries
            exactly like documents.
        client, async_client, url, api_key: how to reach the server, as for
            :class:`~langchain_quiver.QuiverVectorStore`.
        batch_size: texts per request.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        dimensions: int | None = None,
        query_task: str | None = None,
        client: Quiver | None = None,
        async_client: AsyncQuiver | None = None,
        url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.dimensions = dimensions
        self.query_task = query_task
        self.batch_size = batch_size
        self._conn = Connection(client, async_client=async_client, url=url, api_key=api_key)

    def _args(self, task: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.model, "dimensions": self.dimensions}
        if task is not None:
            args["task"] = task
        return args

    def _batches(self, texts: list[str]) -> list[list[str]]:
        # Bounded requests: the server caps a request's body and its batch queue.
        return [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for batch in self._batches(list(texts)):
            out.extend(self._conn.sync.embed(batch, **self._args(None)))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._conn.sync.embed([text], **self._args(self.query_task))[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for batch in self._batches(list(texts)):
            out.extend(await self._conn.aio.embed(batch, **self._args(None)))
        return out

    async def aembed_query(self, text: str) -> list[float]:
        return (await self._conn.aio.embed([text], **self._args(self.query_task)))[0]
