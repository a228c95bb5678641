"""Snapshots of one collection and of the whole database: create, list, download,
restore from a stored name and from an uploaded file, delete, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver_client import (BadRequestError, ConflictError, Document, NotFoundError, Quiver,
                           Snapshot, SnapshotCollection)

from conftest import vec
from quiver_testing import start_server


def fill(q: Quiver, name: str, n: int) -> None:
    q.create_collection(name, dim=8)
    q.upsert(name, [Document(f"d{i}", f"text {i}", {"i": i}, vec(i, 8)) for i in range(n)])


def test_collection_snapshot_lifecycle(q: Quiver, name: str, tmp_path: Path) -> None:
    fill(q, name, 20)
    snap = q.create_snapshot(name, name="first")
    assert isinstance(snap, Snapshot) and snap.name == "first" and snap.size > 0
    assert snap.collections == [SnapshotCollection(name, snap.lsn)]
    zst = q.create_snapshot(name, compress="zstd")
    listed = {s.name: s for s in q.list_snapshots(name)}
    assert set(listed) == {"first", zst.name}
    assert listed["first"].created_unix_ms and listed["first"].lsn == snap.lsn

    # Writes after the snapshot are not in it.
    q.upsert(name, [Document("late", vector=vec(99, 8))])
    path = q.download_snapshot("first", tmp_path, collection=name)
    assert path == tmp_path / "first.snapshot" and path.stat().st_size == snap.size
    assert not list(tmp_path.glob("*.part"))
    named = q.download_snapshot("first", tmp_path / "copy.bin", collection=name)
    assert named.read_bytes() == path.read_bytes()

    restored = q.restore_snapshot(path=path, collection=name, target=name + "-up")
    assert restored == [SnapshotCollection(name + "-up", snap.lsn, 20)]
    assert q.get_collection(name + "-up").count == 20
    assert q.get(name + "-up", "late") is None and q.get(name + "-up", "d3") is not None

    restored = q.restore_snapshot(zst.name, collection=name, target=name + "-z")
    assert restored[0].documents == 20  # taken before "late" too
    # Without a target the snapshot replaces its own collection.
    q.restore_snapshot("first", collection=name)
    assert q.get_collection(name).count == 20 and q.get(name, "late") is None

    q.delete_snapshot("first", name)
    assert [s.name for s in q.list_snapshots(name)] == [zst.name]
    with pytest.raises(NotFoundError):
        q.delete_snapshot("first", name)


def test_database_snapshots(tmp_path: Path, name: str) -> None:
    # Its own server: a database snapshot holds, and its restore replaces, every collection.
    server = start_server(tmp_path / "server", models=())
    q = Quiver(server.url)
    try:
        database_snapshots(q, name, tmp_path)
    finally:
        q.close()
        server.stop()


def database_snapshots(q: Quiver, name: str, tmp_path: Path) -> None:
    fill(q, name, 5)
    fill(q, name + "2", 3)
    snap = q.create_snapshot(name=f"db-{name}")
    assert name in {c.name for c in snap.collections}
    assert f"db-{name}" in {s.name for s in q.list_snapshots()}
    path = q.download_snapshot(snap.name, tmp_path)
    assert path.stat().st_size == snap.size
    assert {c.name for c in snap.collections} == {name, name + "2"}
    q.delete_collection(name)
    q.upsert(name + "2", [Document("later", vector=vec(7, 8))])
    restored = q.restore_snapshot(snap.name)
    assert {(c.name, c.documents) for c in restored} == {(name, 5), (name + "2", 3)}
    assert q.get_collection(name).count == 5 and q.get(name + "2", "later") is None
    q.delete_snapshot(snap.name)
    assert snap.name not in {s.name for s in q.list_snapshots()}


def test_snapshot_errors(q: Quiver, name: str, tmp_path: Path) -> None:
    fill(q, name, 2)
    q.create_snapshot(name, name="dup")
    with pytest.raises(ConflictError, match="dup"):
        q.create_snapshot(name, name="dup")
    with pytest.raises(BadRequestError) as e:
        q.create_snapshot(name, name="restore")
    assert e.value.code == "invalid_name"
    with pytest.raises(BadRequestError, match="compress"):
        q.create_snapshot(name, compress="gzip")
    with pytest.raises(NotFoundError):
        q.download_snapshot("nope", tmp_path, collection=name)
    assert not list(tmp_path.iterdir())  # nothing left behind
    with pytest.raises(NotFoundError):
        q.create_snapshot(name + "missing")
    with pytest.raises(NotFoundError):
        q.restore_snapshot("nope", collection=name)
    junk = tmp_path / "junk.snapshot"
    junk.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(BadRequestError) as e:
        q.restore_snapshot(path=junk, collection=name, target=name + "junk")
    assert e.value.code == "invalid_snapshot"
    assert not q.collection_exists(name + "junk") and q.get_collection(name).count == 2
    with pytest.raises(ValueError):
        q.restore_snapshot()
    with pytest.raises(ValueError):
        q.restore_snapshot("dup", path=junk)
