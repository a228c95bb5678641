"""Transport: one description of a request (:class:`Call`), the retry policy, the
mapping of answers to errors, and the sync and async senders that apply them.

Retry rules (:class:`RetryPolicy`):

* a request that never reached the server (connect error or connect timeout) is
  retried whatever its method: nothing was sent, so nothing can happen twice;
* a request that may have reached it (connection reset, server gone mid-answer) and a
  502, 503 or 504 answer are retried only when the call is idempotent: GET, PUT,
  DELETE, document upserts (idempotent by id), flush (sealing twice is harmless) and
  the read-only POSTs (query, embed, rerank); snapshot creates and restores are not;
* a read timeout is never retried: the caller chose how long to wait;
* waits grow exponentially (``backoff * 2**n``, capped, with jitter); a ``Retry-After``
  header in seconds is honoured up to the cap.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, AsyncIterator, TypeVar

import httpx

from . import errors
from .errors import QuiverError

T = TypeVar("T")

RETRY_STATUSES = frozenset({502, 503, 504})
UPLOAD_CHUNK = 1 << 20
USER_AGENT = "quiver-client-python"


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays (and anything shaped like them) inside metadata or vectors.
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def encode_json(body: Any) -> bytes:
    """The request body; NaN and infinities are refused here, as JSON cannot carry them."""
    try:
        return json.dumps(body, default=_json_default, allow_nan=False,
                          ensure_ascii=False, separators=(",", ":")).encode()
    except ValueError as e:
        raise ValueError(f"request body is not valid JSON: {e} (NaN or infinity?)") from None


def parse_json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise QuiverError(
            f"the server answered {resp.status_code} with a body that is not JSON: "
            f"{resp.text[:200]!r}",
            status=resp.status_code, method=resp.request.method, url=str(resp.request.url),
        ) from None


@dataclass
class Call(Generic[T]):
    """One API request and how to read its answer.

    ``parse`` turns a successful response into the result; ``on_error`` (optional) may
    turn an error into a result instead (for example a 404 into None) or re-raise it.
    ``upload`` streams a file as the body; ``stream`` leaves the answer's body unread
    for the caller (downloads)."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    idempotent: bool = False
    parse: Callable[[httpx.Response], T] = parse_json  # type: ignore[assignment]
    on_error: Callable[[QuiverError], T] | None = None
    upload: Path | None = None
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def request_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"headers": dict(self.headers)}
        if self.params:
            kw["params"] = {k: v for k, v in self.params.items() if v is not None}
        if self.json is not None:
            kw["content"] = encode_json(self.json)
            kw["headers"]["Content-Type"] = "application/json"
        if self.upload is not None:
            kw["headers"]["Content-Type"] = "application/octet-stream"
            kw["headers"]["Content-Length"] = str(Path(self.upload).stat().st_size)
        return kw


def error_from_response(resp: httpx.Response, attempts: int = 1) -> QuiverError:
    """The typed error of an error answer, with the server's code and message."""
    code = message = None
    body: Any = None
    try:
        body = resp.json()
        detail = body.get("error") if isinstance(body, dict) else None
        if isinstance(detail, dict):
            code = detail.get("code")
            message = detail.get("message")
    except ValueError:
        body = resp.text
    if message is None:
        text = resp.text.strip()
        message = text[:500] if text else (resp.reason_phrase or f"HTTP {resp.status_code}")
    cls = errors.error_class_for_status(resp.status_code)
    return cls(message, status=resp.status_code, code=code, method=resp.request.method,
               url=str(resp.request.url), attempts=attempts, body=body)


def error_from_transport(exc: httpx.HTTPError, method: str, url: str,
                         attempts: int) -> QuiverError:
    cls = errors.TimeoutError if isinstance(exc, httpx.TimeoutException) else errors.ConnectionError
    what = type(exc).__name__
    return cls(f"{what}: {exc or 'no details'}", method=method, url=url, attempts=attempts)


@dataclass
class RetryPolicy:
    """``retries`` extra attempts, waiting ``backoff * 2**n`` seconds (at most
    ``max_backoff``) before attempt ``n + 1``."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0

    def wait(self, attempt: int, resp: httpx.Response | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        if resp is not None:
            after = resp.headers.get("Retry-After")
            if after is not None:
                try:
                    seconds = float(after)
                    if math.isfinite(seconds) and seconds >= 0:
                        return min(self.max_backoff, seconds)
                except ValueError:
                    pass
        # Jitter keeps clients that failed together from coming back together.
        return base * (0.5 + random.random() / 2)

    def retry_exception(self, exc: httpx.HTTPError, call: Call[Any], attempt: int) -> float | None:
        if attempt >= self.retries:
            return None
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if never_sent:  # an upload's body is reopened for each attempt
            return self.wait(attempt)
        if (call.idempotent and call.upload is None and isinstance(exc, httpx.TransportError)
                and not isinstance(exc, httpx.TimeoutException)):
            return self.wait(attempt)
        return None

    def retry_response(self, resp: httpx.Response, call: Call[Any], attempt: int) -> float | None:
        if attempt >= self.retries or not call.idempotent or call.upload is not None:
            return None
        if resp.status_code in RETRY_STATUSES:
            return self.wait(attempt, resp)
        return None


def _headers(api_key: str | None) -> dict[str, str]:
    h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        h["Authorization"] = f"Bearer {api_key}"
    return h


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            yield chunk


async def _file_chunks_async(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while True:
            chunk = await asyncio.to_thread(f.read, UPLOAD_CHUNK)
            if not chunk:
                return
            yield chunk


def decide(policy: RetryPolicy, call: Call[Any], attempt: int, request: httpx.Request,
           resp: httpx.Response | None,
           exc: httpx.HTTPError | None) -> tuple[float | None, QuiverError | None]:
    """What to do after attempt ``attempt`` (0-based): wait and retry (a delay), fail
    (an error), or neither (``resp`` is the answer). Shared by both transports."""
    if exc is not None:
        delay = policy.retry_exception(exc, call, attempt)
        if delay is not None:
            return delay, None
        return None, error_from_transport(exc, call.method, str(request.url), attempt + 1)
    assert resp is not None
    delay = policy.retry_response(resp, call, attempt)
    if delay is not None:
        return delay, None
    if resp.is_error:
        return None, error_from_response(resp, attempt + 1)
    return None, None


class SyncTransport:
    """Sends calls over one pooled ``httpx.Client``."""

    def __init__(self, url: str, api_key: str | None, timeout: float | httpx.Timeout | None,
                 policy: RetryPolicy, client: httpx.Client | None = None) -> None:
        self.policy = policy
        self._own = client is None
        self.http = client or httpx.Client(base_url=url, timeout=timeout, headers=_headers(api_key))
        if client is not None:  # a caller's client keeps its own timeouts and transport
            self.http.base_url = httpx.URL(url)
            self.http.headers.update(_headers(api_key))

    def close(self) -> None:
        if self._own:
            self.http.close()

    def send(self, call: Call[Any]) -> httpx.Response:
        """The successful response of ``call``, after retries; raises the typed error.
        With ``call.stream`` the body is left to the caller (who must close it)."""
        attempt = 0
        while True:
            kw = call.request_kwargs()
            if call.upload is not None:
                kw["content"] = _file_chunks(call.upload)
            request = self.http.build_request(call.method, call.path, **kw)
            resp = exc = None
            try:
                resp = self.http.send(request, stream=True)
                if resp.is_error or not call.stream:
                    try:
                        resp.read()
                    finally:
                        resp.close()
            except httpx.HTTPError as e:
                exc = e
            delay, err = decide(self.policy, call, attempt, request, resp, exc)
            if delay is not None:
                if resp is not None:
                    resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            if err is not None:
                raise err from exc
            assert resp is not None
            return resp

    def run(self, call: Call[T]) -> T:
        try:
            resp = self.send(call)
        except QuiverError as e:
            if call.on_error is None:
                raise
            return call.on_error(e)
        return call.parse(resp)


class AsyncTransport:
    """Sends calls over one pooled ``httpx.AsyncClient``; the same policy and decisions
    as :class:`SyncTransport`."""

    def __init__(self, url: str, api_key: str | None, timeout: float | httpx.Timeout | None,
                 policy: RetryPolicy, client: httpx.AsyncClient | None = None) -> None:
        self.policy = policy
        self._own = client is None
        self.http = client or httpx.AsyncClient(base_url=url, timeout=timeout,
                                                headers=_headers(api_key))
        if client is not None:  # a caller's client keeps its own timeouts and transport
            self.http.base_url = httpx.URL(url)
            self.http.headers.update(_headers(api_key))

    async def close(self) -> None:
        if self._own:
            await self.http.aclose()

    async def send(self, call: Call[Any]) -> httpx.Response:
        attempt = 0
        while True:
            kw = call.request_kwargs()
            if call.upload is not None:
                kw["content"] = _file_chunks_async(call.upload)
            request = self.http.build_request(call.method, call.path, **kw)
            resp = exc = None
            try:
                resp = await self.http.send(request, stream=True)
                if resp.is_error or not call.stream:
                    try:
                        await resp.aread()
                    finally:
                        await resp.aclose()
            except httpx.HTTPError as e:
                exc = e
            delay, err = decide(self.policy, call, attempt, request, resp, exc)
            if delay is not None:
                if resp is not None:
                    await resp.aclose()
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if err is not None:
                raise err from exc
            assert resp is not None
            return resp

    async def run(self, call: Call[T]) -> T:
        try:
            resp = await self.send(call)
        except QuiverError as e:
            if call.on_error is None:
                raise
            return call.on_error(e)
        return call.parse(resp)
