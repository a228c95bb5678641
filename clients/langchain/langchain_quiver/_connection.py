"""How the LangChain integration reaches a Quiver server: one sync client, and an async
client per running event loop.

An async HTTP client belongs to the event loop it first ran in; a store or an embeddings
object often outlives a loop (each ``asyncio.run``, each async test gets a new one), so
the async client the integration builds itself is rebuilt when the loop changes. An
async client the caller passes in is used as it is: its loop is the caller's business.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from quiver_client import AsyncQuiver, Quiver


class Connection:
    """The clients of one store or embeddings object. Pass ``client`` (a
    :class:`quiver_client.Quiver`), ``async_client``, both, or ``url`` / ``api_key``
    to have them built. A client built from the other one takes its URL; its key comes
    from ``api_key``, else from the other client when that tells it, else from the
    environment (``QUIVER_API_KEY``)."""

    def __init__(
        self,
        client: Quiver | None = None,
        *,
        async_client: AsyncQuiver | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        source = client if client is not None else async_client
        # What a missing client is built from: the arguments, else the given client's own
        # settings, so a store made from one client can still serve the other API.
        self._url = url if url is not None else getattr(source, "url", None)
        self._api_key = api_key if api_key is not None else getattr(source, "api_key", None)
        self._timeout = getattr(source, "timeout", None)
        self._client = client
        self._given_async = async_client
        self._async: AsyncQuiver | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self._url is not None:
            kw["url"] = self._url
        if self._api_key is not None:
            kw["api_key"] = self._api_key
        if isinstance(self._timeout, (int, float)):
            kw["timeout"] = float(self._timeout)
        return kw

    @property
    def sync(self) -> Quiver:
        """The sync client (built on first use when only an async one was given)."""
        if self._client is None:
            self._client = Quiver(**self._kwargs())
        return self._client

    @property
    def aio(self) -> AsyncQuiver:
        """The async client for the running event loop."""
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            self._async = AsyncQuiver(**self._kwargs())
            self._async_loop = weakref.ref(loop)
        return self._async
