"""Fixtures: one real Quiver server for the session (the fixture models ``test/bert``
and ``test/qwen3-rerank`` installed), clients for it, and unique collection names.
Tests that stop, restart or configure a server start their own."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testing"))

from quiver_testing import Server, start_server  # noqa: E402

from quiver_client import AsyncQuiver, Quiver  # noqa: E402

EMBEDDER = "test/bert"
RERANKER = "test/qwen3-rerank"
DIM = 32


@pytest.fixture(autouse=True)
def _no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client reads QUIVER_URL and QUIVER_API_KEY; the tests say what they mean.
    monkeypatch.delenv("QUIVER_URL", raising=False)
    monkeypatch.delenv("QUIVER_API_KEY", raising=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = start_server(tmp_path_factory.mktemp("server"), models=("bert", "qwen3-rerank"))
    yield s
    s.stop()


@pytest.fixture
def q(server: Server):
    with Quiver(server.url, retries=1, backoff=0.05) as client:
        yield client


@pytest.fixture
async def aq(server: Server):
    async with AsyncQuiver(server.url, retries=1, backoff=0.05) as client:
        yield client


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def vec(i: int, dim: int = DIM) -> list[float]:
    """A deterministic vector for document i, away from every other's direction."""
    return [float(((i * 31 + j * 17) % 97) + 1) / 97.0 for j in range(dim)]
