"""The README's examples, run in order against the test server (its URL and model
names substituted), so the documented calls stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quiver_testing import Server, start_server

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server: Server = start_server(tmp_path / "server", models=("bert",))
    try:
        text = README.read_text()
        blocks = list(re.finditer(r"```python\n(.*?)```", text, flags=re.S))
        assert len(blocks) >= 5
        monkeypatch.chdir(tmp_path)  # the snapshot example downloads into "."
        scope: dict = {}
        for m in blocks:
            # Padded so that a failure points at the README's own line.
            block = "\n" * text.count("\n", 0, m.start(1)) + m.group(1)
            code = (block.replace("http://127.0.0.1:6433", server.url)
                    .replace("sentence-transformers/all-MiniLM-L6-v2", "test/bert"))
            exec(compile(code, str(README), "exec"), scope)  # noqa: S102
        assert not list(tmp_path.glob("*.snapshot"))
    finally:
        server.stop()
