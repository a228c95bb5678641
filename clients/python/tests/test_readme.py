"""The README's examples, run in order against a test server of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from quiver_testing import Server, run_readme, start_server

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server: Server = start_server(tmp_path / "server", models=("bert",))
    try:
        monkeypatch.chdir(tmp_path)  # the snapshot example downloads into "."
        assert run_readme(README, server.url) >= 5
        assert not list(tmp_path.glob("*.snapshot"))
    finally:
        server.stop()
