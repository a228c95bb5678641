"""Python client for Quiver, a vector database with built-in embedding.

``Quiver`` (sync) and ``AsyncQuiver`` (asyncio) speak the server's HTTP API; the
dataclasses of ``models`` mirror its JSON; ``errors`` holds the exception hierarchy;
``filters`` builds metadata filters.
"""

from .async_client import AsyncQuiver
from .client import Quiver
from .errors import (
    BadRequestError,
    ConflictError,
    ConnectionError,
    ForbiddenError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    QuiverError,
    ServerError,
    ServiceUnavailableError,
    TimeoutError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    UpsertError,
)
from .filters import Field, combine, must, must_not, should
from .models import (
    CollectionConfig,
    Chunk,
    CollectionInfo,
    Document,
    ModelInfo,
    Hit,
    Maintenance,
    QueryResult,
    Rank,
    Snapshot,
    SnapshotCollection,
    UpsertResult,
)

__version__ = "0.1.0"

__all__ = [
    "Quiver", "AsyncQuiver",
    "Chunk", "Document", "Hit", "QueryResult", "CollectionInfo", "CollectionConfig", "Maintenance",
    "UpsertResult", "Rank", "ModelInfo", "Snapshot", "SnapshotCollection",
    "Field", "must", "should", "must_not", "combine",
    "QuiverError", "BadRequestError", "UnauthorizedError", "ForbiddenError", "NotFoundError",
    "MethodNotAllowedError", "ConflictError", "PayloadTooLargeError",
    "UnsupportedMediaTypeError", "UnprocessableError", "ServerError",
    "ServiceUnavailableError", "ConnectionError", "TimeoutError", "UpsertError",
    "__version__",
]
