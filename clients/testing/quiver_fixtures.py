"""Pytest fixtures the integrations' tests share (a conftest imports them with
``from quiver_fixtures import *``): one real Quiver server for the session, started by
``quiver_testing`` with the random-weight fixture model ``test/bert`` installed; a
client of it; and a fresh collection name per test, whose collection is dropped
afterwards."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest
from quiver_client import Quiver

from quiver_testing import Server, start_server

__all__ = ["pytest_configure", "server", "client", "collection_name"]


def pytest_configure(config: pytest.Config) -> None:
    # The async tests rely on pytest-asyncio's auto mode, which each package's
    # pyproject.toml sets; keep it when pytest runs them under another configuration
    # (several packages' tests in one run, from the repository root).
    if config.getoption("asyncio_mode", None) is None:
        config.option.asyncio_mode = "auto"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("quiver"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Quiver]:
    with Quiver(url=server.url) as c:
        yield c


@pytest.fixture
def collection_name(client: Quiver) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:16]}"
    yield name
    if client.collection_exists(name):
        client.delete_collection(name)
