"""Dataclasses mirroring the server's JSON shapes (crates/quiver-server/src/dto.rs and
the snapshot and model routes), with the conversions from and to that JSON.

Every class built from an answer keeps the answer itself in ``raw``, so fields a newer
server adds are never lost to an older client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "Document",
    "Hit",
    "QueryResult",
    "CollectionConfig",
    "Maintenance",
    "CollectionInfo",
    "UpsertResult",
    "Rank",
    "SnapshotCollection",
    "Snapshot",
]


def _vector(v: Any) -> list[float] | None:
    """A vector as a list of floats: from a list, a tuple or a 1-D array (numpy or
    anything with ``tolist``)."""
    if v is None:
        return None
    if hasattr(v, "tolist"):
        shape = getattr(v, "shape", None)
        if shape is not None and len(shape) != 1:
            raise ValueError(f"a vector must be 1-D, got shape {tuple(shape)}")
        v = v.tolist()
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"a vector must be a sequence of numbers, got {type(v).__name__}")
    out = []
    for x in v:
        if isinstance(x, (list, tuple)):
            raise ValueError("a vector must be 1-D, got a nested sequence")
        out.append(float(x))
    return out


@dataclass
class Chunk:
    """A chunk of a long document: ``text[start:end]`` of its document (character
    offsets); ``score``, on a hit, the chunk's dense similarity when the vector search
    found it."""

    chunk: int
    start: int
    end: int
    text: str
    score: float | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Chunk":
        return cls(chunk=int(d["chunk"]), start=int(d["start"]), end=int(d["end"]),
                   text=d.get("text", ""), score=d.get("score"))


@dataclass
class Document:
    """A document as stored: ``text`` None means none is sent (the server stores "");
    ``vector`` None lets a collection with an embedding model embed ``text``.
    ``chunks``: the stored chunks of a long text, when read with ``get(..., chunks=True)``
    (never sent: the server cuts texts itself)."""

    id: str
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None
    chunks: list[Chunk] | None = None

    @classmethod
    def coerce(cls, d: "Document | Mapping[str, Any]") -> "Document":
        """A Document from itself or from a dict with ``id``, ``text``, ``metadata``,
        ``vector`` (the vector may be a numpy array)."""
        if isinstance(d, Document):
            return d
        if not isinstance(d, Mapping):
            raise TypeError(f"a document must be a Document or a dict, got {type(d).__name__}")
        unknown = set(d) - {"id", "text", "metadata", "vector"}
        if unknown:
            raise ValueError(f"unknown document fields: {sorted(unknown)}")
        if "id" not in d:
            raise ValueError("a document needs an id")
        return cls(
            id=d["id"],
            text=d.get("text"),
            metadata=dict(d.get("metadata") or {}),
            vector=d.get("vector"),
        )

    def to_json(self) -> dict[str, Any]:
        if not isinstance(self.id, str):
            raise TypeError(f"document id must be a string, got {type(self.id).__name__}")
        out: dict[str, Any] = {"id": self.id}
        if self.text is not None:
            out["text"] = self.text
        if self.metadata:
            out["metadata"] = self.metadata
        vector = _vector(self.vector)
        if vector is not None:
            out["vector"] = vector
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Document":
        chunks = d.get("chunks")
        return cls(
            id=d["id"],
            text=d.get("text"),
            metadata=dict(d.get("metadata") or {}),
            vector=d.get("vector"),
            chunks=None if chunks is None else [Chunk.from_json(c) for c in chunks],
        )


@dataclass
class Hit:
    """One query hit; ``explain`` (per-stage ranks and scores) when asked for;
    ``highlights``, for sparse and hybrid hits, the ``(start, end)`` character ranges of
    ``text`` that hold the query's words (``text[start:end]``); ``chunks``, for a long
    document stored in chunks, the chunks that matched, best first."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    explain: dict[str, Any] | None = None
    highlights: list[tuple[int, int]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Hit":
        return cls(
            id=d["id"],
            score=d["score"],
            text=d.get("text", ""),
            metadata=dict(d.get("metadata") or {}),
            explain=d.get("explain"),
            highlights=[(int(a), int(b)) for a, b in d.get("highlights") or []],
            chunks=[Chunk.from_json(c) for c in d.get("chunks") or []],
        )


@dataclass
class QueryResult:
    """A query's answer: ``hits`` best first, ``timings_ms`` per stage, ``raw`` the
    whole answer."""

    hits: list[Hit]
    timings_ms: dict[str, float]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "QueryResult":
        return cls(
            hits=[Hit.from_json(h) for h in d.get("hits", [])],
            timings_ms=dict(d.get("timings_ms") or {}),
            raw=dict(d),
        )

    def __iter__(self):
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


@dataclass
class CollectionConfig:
    """A collection's stored settings."""

    dim: int
    distance: str
    embedding_model: str | None = None
    index_dim: int | None = None
    rescore: int | None = None
    task: str | None = None
    reranker_model: str | None = None
    analyzer: str | None = None
    hnsw: dict[str, Any] = field(default_factory=dict)
    bm25: dict[str, Any] = field(default_factory=dict)
    #: ``max_tokens``, ``overlap_tokens``, ``strategy``; None when texts are embedded whole.
    chunking: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CollectionConfig":
        return cls(
            dim=d["dim"],
            distance=d["distance"],
            embedding_model=d.get("embedding_model"),
            index_dim=d.get("index_dim"),
            rescore=d.get("rescore"),
            task=d.get("task"),
            reranker_model=d.get("reranker_model"),
            analyzer=d.get("analyzer"),
            hnsw=dict(d.get("hnsw") or {}),
            bm25=dict(d.get("bm25") or {}),
            chunking=d.get("chunking"),
        )


@dataclass
class Maintenance:
    """Background seals and compactions of a collection."""

    queued_memtables: int = 0
    sealing: bool = False
    compacting: bool = False
    seals: int = 0
    failed_seals: int = 0
    compactions: int = 0
    write_stalls: int = 0
    write_stall_seconds: float = 0.0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Maintenance":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class CollectionInfo:
    """A collection. From ``list_collections``: ``name``, ``dim``, ``distance``,
    ``count``, ``segments``, ``disk_bytes`` and the models (the rest is None);
    ``get_collection`` and ``create_collection`` fill everything."""

    name: str
    dim: int
    distance: str
    count: int
    config: CollectionConfig | None = None
    segments: int | None = None
    memtable_entries: int | None = None
    last_lsn: int | None = None
    checkpoint_lsn: int | None = None
    read_only: bool | None = None
    maintenance: Maintenance | None = None
    disk_bytes: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def embedding_model(self) -> str | None:
        return self.config.embedding_model if self.config else self.raw.get("embedding_model")

    @property
    def reranker_model(self) -> str | None:
        return self.config.reranker_model if self.config else self.raw.get("reranker_model")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CollectionInfo":
        if "config" not in d:  # an entry of GET /collections
            return cls(name=d["name"], dim=d["dim"], distance=d["distance"], count=d["count"],
                       segments=d.get("segments"), disk_bytes=d.get("disk_bytes"), raw=dict(d))
        config = CollectionConfig.from_json(d["config"])
        m = d.get("maintenance")
        return cls(
            name=d["name"],
            dim=config.dim,
            distance=config.distance,
            count=d["count"],
            config=config,
            segments=d.get("segments"),
            memtable_entries=d.get("memtable_entries"),
            last_lsn=d.get("last_lsn"),
            checkpoint_lsn=d.get("checkpoint_lsn"),
            read_only=d.get("read_only"),
            maintenance=Maintenance.from_json(m) if m is not None else None,
            disk_bytes=d.get("disk_bytes"),
            raw=dict(d),
        )


@dataclass
class UpsertResult:
    """What an upsert wrote: ``upserted`` documents in ``batches`` requests; ``lsn``
    of the last batch (None when there was nothing to send); ``lsns`` one per batch."""

    upserted: int = 0
    batches: int = 0
    lsn: int | None = None
    lsns: list[int] = field(default_factory=list)

    def add(self, answer: Mapping[str, Any]) -> None:
        self.upserted += int(answer["upserted"])
        self.batches += 1
        self.lsn = int(answer["lsn"])
        self.lsns.append(self.lsn)


@dataclass
class ModelInfo:
    """An installed model: ``kind`` is ``embedding`` or ``reranking`` (None for a
    checkpoint the server cannot run), ``dim`` its hidden width, ``max_tokens`` its
    longest input, ``bytes`` the size of its files."""

    name: str
    kind: str | None
    dim: int | None
    max_tokens: int | None
    bytes: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ModelInfo":
        return cls(name=d["name"], kind=d.get("kind"), dim=d.get("dim"),
                   max_tokens=d.get("max_tokens"), bytes=d.get("bytes", 0))


@dataclass
class Rank:
    """One text's rerank score; ``index`` into the texts sent; ``text`` when asked."""

    index: int
    score: float
    text: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Rank":
        return cls(index=d["index"], score=d["score"], text=d.get("text"))


@dataclass
class SnapshotCollection:
    """A collection in a snapshot (its LSN), or restored from one (``documents``)."""

    name: str
    lsn: int | None
    documents: int | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SnapshotCollection":
        return cls(name=d["name"], lsn=d.get("lsn"), documents=d.get("documents"))


@dataclass
class Snapshot:
    """A stored snapshot: ``lsn`` the checkpoint it holds writes up to (None when the
    server lost that record); ``created_unix_ms`` None in a create's answer."""

    name: str
    size: int
    lsn: int | None
    collections: list[SnapshotCollection] = field(default_factory=list)
    created_unix_ms: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Snapshot":
        return cls(
            name=d["name"],
            size=d["size"],
            lsn=d.get("lsn"),
            collections=[SnapshotCollection.from_json(c) for c in d.get("collections", [])],
            created_unix_ms=d.get("created_unix_ms"),
            raw=dict(d),
        )
