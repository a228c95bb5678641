"""The README's examples, run in order against the session's test server (its URL and
the fixture model substituted), so the documented calls stay true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(server) -> None:
    text = README.read_text()
    blocks = list(re.finditer(r"```python\n(.*?)```", text, flags=re.S))
    assert blocks
    scope: dict = {}
    for m in blocks:
        # Padded so that a failure points at the README's own line.
        block = "\n" * text.count("\n", 0, m.start(1)) + m.group(1)
        code = (block.replace("http://127.0.0.1:6433", server.url)
                .replace("sentence-transformers/all-MiniLM-L6-v2", "test/bert"))
        exec(compile(code, str(README), "exec"), scope)  # noqa: S102
