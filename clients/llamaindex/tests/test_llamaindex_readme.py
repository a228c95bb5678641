"""The README's examples, run in order against the session's test server."""

from __future__ import annotations

from pathlib import Path

from quiver_testing import run_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(server) -> None:
    assert run_readme(README, server.url) > 0
