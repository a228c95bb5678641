"""The one exception hierarchy of the client.

Every failure is a :class:`QuiverError`. An error answer of the server (which always
reads ``{"error": {"code": ..., "message": ...}}``) becomes the subclass for its HTTP
status, carrying the server's ``code`` and ``message`` unchanged; a failure to reach the
server at all is a :class:`ConnectionError` with ``status`` None.

| status | class | server codes |
| --- | --- | --- |
| 400 | BadRequestError | invalid_input, invalid_json, invalid_name, invalid_snapshot |
| 401 | UnauthorizedError | unauthorized |
| 403 | ForbiddenError | forbidden |
| 404 | NotFoundError | not_found |
| 405 | MethodNotAllowedError | method_not_allowed |
| 409 | ConflictError | conflict |
| 413 | PayloadTooLargeError | too_large |
| 415 | UnsupportedMediaTypeError | unsupported_media_type |
| 422 | UnprocessableError | unprocessable |
| 5xx | ServerError | internal, io, corruption |
| 503 | ServiceUnavailableError (a ServerError) | read_only, overloaded, shutting_down, busy |
| none | ConnectionError, TimeoutError (a ConnectionError) | |

A batched upsert that stops raises an :class:`UpsertError` that is also an instance of
the class of the error that stopped it, so ``except BadRequestError`` still catches it.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any

__all__ = [
    "QuiverError",
    "BadRequestError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "MethodNotAllowedError",
    "ConflictError",
    "PayloadTooLargeError",
    "UnsupportedMediaTypeError",
    "UnprocessableError",
    "ServerError",
    "ServiceUnavailableError",
    "ConnectionError",
    "TimeoutError",
    "UpsertError",
    "error_class_for_status",
]


class QuiverError(Exception):
    """A failed call. ``status``: the HTTP status (None when no answer came);
    ``code``: the server's error code; ``message``: the server's message (or what
    went wrong on the way); ``method`` and ``url``: the request; ``attempts``: how many
    times it was sent."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
        attempts: int = 1,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.method = method
        self.url = url
        self.attempts = attempts
        self.body = body

    def __str__(self) -> str:
        head = []
        if self.status is not None:
            head.append(str(self.status))
        if self.code:
            head.append(self.code)
        where = f" ({self.method} {self.url})" if self.method and self.url else ""
        prefix = f"[{' '.join(head)}] " if head else ""
        return f"{prefix}{self.message}{where}"

    def __reduce__(self):  # keeps the keyword fields when pickled (e.g. across processes)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type, message: str, state: dict) -> QuiverError:
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    e.__dict__.update(state)
    return e


class BadRequestError(QuiverError):
    """400: malformed or out-of-range input, a bad name or a damaged snapshot archive."""


class UnauthorizedError(QuiverError):
    """401: missing or unknown API key."""


class ForbiddenError(QuiverError):
    """403: a read-only key on a route that writes."""


class NotFoundError(QuiverError):
    """404: unknown collection, document, snapshot or route."""


class MethodNotAllowedError(QuiverError):
    """405: the route exists but not with this method."""


class ConflictError(QuiverError):
    """409: the collection (or snapshot name) already exists."""


class PayloadTooLargeError(QuiverError):
    """413: a body, batch or text over the server's limits."""


class UnsupportedMediaTypeError(QuiverError):
    """415: a body the route does not take."""


class UnprocessableError(QuiverError):
    """422: well-formed but unsupported, such as a model that is not installed."""


class ServerError(QuiverError):
    """5xx: a fault on the server's side."""


class ServiceUnavailableError(ServerError):
    """503: try later (overloaded, busy, shutting down) or a read-only collection."""


class ConnectionError(QuiverError, builtins.ConnectionError):
    """The server could not be reached, or the connection broke before an answer."""


class TimeoutError(ConnectionError, builtins.TimeoutError):
    """No answer within the client's timeout."""


class UpsertError(QuiverError):
    """A batch of an upsert was not acknowledged.

    ``batch``: its 0-based number; ``failed_ids``: the ids it held (the server may or
    may not have written them: upsert it again, upserts are idempotent by id);
    ``acknowledged``: documents acknowledged before it, in earlier batches;
    ``acknowledged_ids``: their ids; ``lsn``: the last acknowledged batch's LSN (None
    if none was); ``cause``: the error of the batch. Documents after the batch were not
    sent."""

    batch: int
    failed_ids: list[str]
    acknowledged: int
    acknowledged_ids: list[str]
    lsn: int | None
    cause: QuiverError


_BY_STATUS: dict[int, type[QuiverError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableError,
    503: ServiceUnavailableError,
}


def error_class_for_status(status: int) -> type[QuiverError]:
    """The class an error answer with ``status`` raises."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return QuiverError


@functools.lru_cache(maxsize=None)
def _upsert_class(cause: type[QuiverError]) -> type[UpsertError]:
    if issubclass(cause, UpsertError):
        return cause
    # One class per cause, so both `except UpsertError` and `except <cause>` match.
    return type(f"Upsert{cause.__name__}", (UpsertError, cause), {"__module__": __name__})


def upsert_error(
    cause: QuiverError,
    *,
    batch: int,
    failed_ids: list[str],
    acknowledged_ids: list[str],
    lsn: int | None,
) -> UpsertError:
    """The error raised when batch ``batch`` of an upsert failed with ``cause``."""
    ids = _show_ids(failed_ids)
    message = (
        f"upsert batch {batch} ({len(failed_ids)} documents: {ids}) was not acknowledged: "
        f"{cause.message}; {len(acknowledged_ids)} documents in earlier batches were "
        "acknowledged, later ones were not sent"
    )
    e = _upsert_class(type(cause))(
        message,
        status=cause.status,
        code=cause.code,
        method=cause.method,
        url=cause.url,
        attempts=cause.attempts,
        body=cause.body,
    )
    e.batch = batch
    e.failed_ids = list(failed_ids)
    e.acknowledged = len(acknowledged_ids)
    e.acknowledged_ids = list(acknowledged_ids)
    e.lsn = lsn
    e.cause = cause
    return e


def _show_ids(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... {len(ids) - limit} more" if len(ids) > limit else "")
