"""Error mapping for every code the server answers with, provoked for real: API keys
(401, 403), routes and methods (404, 405), media types (415), and failures on the way
(refused connections, timeouts) with their retries."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

import quiver_client
from quiver_client import (ConnectionError, ForbiddenError, MethodNotAllowedError,
                           NotFoundError, Quiver, QuiverError, TimeoutError, UnauthorizedError,
                           UnsupportedMediaTypeError)
from quiver_client._http import Call, error_from_response
from quiver_client.errors import error_class_for_status
from quiver_testing import free_port, start_server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory):
    s = start_server(tmp_path_factory.mktemp("keyed"), api_key="right-key", models=(),
                     env={"QUIVER_SERVER_READ_ONLY_KEYS": "reader"})
    yield s
    s.stop()


def test_api_keys(keyed, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Quiver(keyed.url, api_key="right-key") as q:
        q.create_collection(name, dim=2)
        q.upsert(name, [{"id": "a", "vector": [1, 0]}])
    for key, message in ((None, "missing API key"), ("wrong-key", "unknown API key")):
        with Quiver(keyed.url, api_key=key) as q:
            assert q.health() == "ok" and q.ready()  # probes need no key
            with pytest.raises(UnauthorizedError) as e:
                q.list_collections()
            assert (e.value.status, e.value.code) == (401, "unauthorized")
            assert message in e.value.message
    with Quiver(keyed.url, api_key="reader") as q:
        assert q.get_collection(name).count == 1
        assert q.query(name, vector=[1, 0]).ids == ["a"]  # a query only reads
        with pytest.raises(ForbiddenError) as e:
            q.upsert(name, [{"id": "b", "vector": [0, 1]}])
        assert (e.value.status, e.value.code) == (403, "forbidden")
        assert "read-only" in e.value.message
    # The key the quiver CLI reads from the environment works here too.
    monkeypatch.setenv("QUIVER_API_KEY", "right-key")
    monkeypatch.setenv("QUIVER_URL", keyed.url)
    with Quiver() as q:
        assert q.url == keyed.url and q.get(name, "a") is not None


def test_route_method_and_media_type_errors(q: Quiver, server) -> None:
    with pytest.raises(NotFoundError) as e:
        q._t.run(Call("GET", "/no/such/route"))
    assert e.value.message == "no such route"
    with pytest.raises(MethodNotAllowedError) as e2:
        q._t.run(Call("PATCH", "/collections"))
    assert (e2.value.status, e2.value.code) == (405, "method_not_allowed")
    with pytest.raises(UnsupportedMediaTypeError) as e3:
        q._t.run(Call("POST", "/embed", headers={"Content-Type": "text/plain"}))
    assert (e3.value.status, e3.value.code) == (415, "unsupported_media_type")


def test_error_answers_that_are_not_json() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:1/x")
    e = error_from_response(httpx.Response(502, text="bad gateway", request=request))
    assert type(e) is quiver_client.ServerError and e.message == "bad gateway" and e.code is None
    assert error_class_for_status(503) is quiver_client.ServiceUnavailableError
    assert error_class_for_status(418) is QuiverError


def test_refused_connection_is_retried_then_raised() -> None:
    port = free_port()  # nothing listens there
    with Quiver(f"http://127.0.0.1:{port}", retries=2, backoff=0.05) as q:
        t = time.monotonic()
        with pytest.raises(ConnectionError) as e:
            q.list_collections()
        assert time.monotonic() - t >= 0.05  # it waited between attempts
    err = e.value
    assert err.status is None and err.code is None and err.attempts == 3
    assert isinstance(err, QuiverError) and isinstance(err, OSError)  # builtins too
    # Nothing reached the server, so even a call that must not repeat is retried.
    with Quiver(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as q:
        with pytest.raises(ConnectionError) as e:
            q.create_snapshot()
        assert e.value.attempts == 2


def test_a_timeout_is_not_retried() -> None:
    # A peer that accepts and never answers.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        with Quiver(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.3, retries=3) as q:
            with pytest.raises(TimeoutError) as e:
                q.list_collections()
        assert e.value.attempts == 1 and isinstance(e.value, ConnectionError)
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        sock.close()


def test_ready_and_health(q: Quiver) -> None:
    assert q.health() == "ok"
    assert q.ready() is True
    assert "quiver_" in q.metrics()
    assert "/collections/{name}/query" in q.openapi()["paths"]


def test_errors_pickle(tmp_path: Path) -> None:
    import pickle
    e = quiver_client.ConflictError("exists", status=409, code="conflict", attempts=2)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is quiver_client.ConflictError
    assert (back.status, back.code, back.message, back.attempts) == (409, "conflict", "exists", 2)


def test_a_callers_httpx_client(server) -> None:
    import httpx as h
    with h.Client(timeout=5.0) as http, Quiver(server.url, http_client=http) as q:
        assert q.health() == "ok" and isinstance(q.list_collections(), list)
        assert not http.is_closed
