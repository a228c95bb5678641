"""Retries against a real server killed with SIGKILL and started again on the same
port and data directory in the middle of a batched upsert: every document ends up
there exactly once; and when the server stays down, the failed batch is reported with
exactly the documents acknowledged before it, which survived the kill."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from quiver_client import AsyncQuiver, ConnectionError, Document, Field, Quiver, UpsertError, must
from quiver_testing import start_server

DIM = 16
N = 10_000
BATCH = 250


def vector(i: int) -> list[float]:
    return [float((i * 7 + j * 13) % 101 + 1) for j in range(DIM)]


def docs(n: int, on: dict[int, Any]) -> Iterator[Document]:
    """Documents 0..n; reaching index k calls ``on[k]()`` (from the uploading thread)."""
    for i in range(n):
        if i in on:
            on[i]()
        yield Document(f"doc-{i}", f"text {i}", {"i": i}, vector(i))


def count_retries(client: Any) -> list[int]:
    """Counts the waits the client's retry policy decides on (one per retried attempt)."""
    policy = client._t.policy
    seen: list[int] = []
    for method in ("retry_exception", "retry_response"):
        decide = getattr(policy, method)

        def counted(*a: Any, _decide: Any = decide) -> float | None:
            delay = _decide(*a)
            if delay is not None:
                seen.append(1)
            return delay
        setattr(policy, method, counted)
    return seen


def stored_ids(q: Quiver, name: str, n: int) -> list[str]:
    """Every id in the collection, read in slices of 1,000 by an exact filtered query."""
    out: list[str] = []
    for lo in range(0, n + 1000, 1000):
        r = q.query(name, vector=vector(0), top_k=1000, exact=True,
                    filter=must(Field("i").range(gte=lo, lt=lo + 1000)))
        out.extend(r.ids)
    return out


def test_upsert_survives_server_restarts(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=())
    try:
        q = Quiver(server.url, retries=12, backoff=0.05, max_backoff=1.0)
        q.create_collection("bulk", dim=DIM)
        retried = count_retries(q)
        restarts: list[int] = []

        def restart() -> None:
            # Killed while the upload goes on: the next batches meet a dead server (and
            # perhaps one is cut off mid-request); they are retried until it is back.
            def go() -> None:
                server.restart(kill=True, pause=0.3)
                restarts.append(1)
            threading.Thread(target=go).start()

        result: dict[str, Any] = {}

        def upload() -> None:
            try:
                result["ok"] = q.upsert("bulk", docs(N, {2_500: restart, 7_000: restart}),
                                        batch_size=BATCH, progress=False)
            except BaseException as e:  # reported by the main thread
                result["error"] = e
        t = threading.Thread(target=upload)
        t.start()
        t.join(timeout=120)
        assert not t.is_alive()
        assert "error" not in result, result.get("error")
        assert len(restarts) == 2
        assert len(retried) >= 2  # each restart cost the upload at least one retry
        assert result["ok"].upserted == N and result["ok"].batches == N // BATCH
        info = q.get_collection("bulk")
        assert info.count == N
        ids = stored_ids(q, "bulk", N)
        assert len(ids) == N and set(ids) == {f"doc-{i}" for i in range(N)}
        d = q.get("bulk", "doc-4321")
        assert d is not None and d.metadata == {"i": 4321} and d.text == "text 4321"
        q.close()
    finally:
        server.stop()


def test_a_server_that_stays_down_fails_the_batch_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=())
    try:
        q = Quiver(server.url, retries=2, backoff=0.02)
        q.create_collection("c", dim=DIM)
        # The kill completes before batch 4 (documents 1000..1249) is sent.
        with pytest.raises(UpsertError) as e:
            q.upsert("c", docs(2_000, {1_000: server.stop}), batch_size=BATCH)
        err = e.value
        assert isinstance(err, ConnectionError) and err.status is None and err.attempts == 3
        assert err.batch == 4 and err.acknowledged == 1_000
        assert err.failed_ids == [f"doc-{i}" for i in range(1_000, 1_250)]
        assert err.acknowledged_ids == [f"doc-{i}" for i in range(1_000)]
        server.start()
        # Acknowledged with WAL sync "always": all there after SIGKILL, nothing more.
        assert q.get_collection("c").count == 1_000
        assert sorted(stored_ids(q, "c", 1_000)) == sorted(err.acknowledged_ids)
        # Upserting again from the failed batch on completes the load.
        rest = [d for d in docs(2_000, {}) if int(d.id.split("-")[1]) >= 1_000]
        assert q.upsert("c", rest, batch_size=BATCH).upserted == 1_000
        assert q.get_collection("c").count == 2_000
        q.close()
    finally:
        server.stop()


async def test_async_upsert_survives_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=())
    try:
        async with AsyncQuiver(server.url, retries=12, backoff=0.05, max_backoff=1.0) as aq:
            await aq.create_collection("a", dim=DIM)
            retried = count_retries(aq)
            loop = asyncio.get_running_loop()
            killed = []

            def restart() -> None:
                killed.append(loop.run_in_executor(None, lambda: server.restart(pause=0.3)))
            r = await aq.upsert("a", docs(3_000, {1_000: restart}), batch_size=BATCH)
            await asyncio.gather(*killed)
            assert r.upserted == 3_000 and len(killed) == 1 and retried
            assert (await aq.get_collection("a")).count == 3_000
    finally:
        server.stop()
