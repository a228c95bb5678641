"""Starting a real Quiver server for the Python packages' tests.

Owns the one way those tests get a server: the `quiver` binary from ``QUIVER_BIN``
(default: the repository's release build), serving a data directory under the test's
temporary directory on 127.0.0.1, with the committed random-weight fixture models
installed as ``test/<fixture>``. Mirrors ``spawn`` and ``install`` of the Rust tests
(tests/common/mod.rs) so both suites start the server the same way.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "quiver-embed" / "tests" / "fixtures"

__all__ = ["Server", "start_server", "install_model", "quiver_bin", "free_port", "run_readme"]


def quiver_bin() -> str:
    """The server binary: ``QUIVER_BIN``, else the release build of this checkout."""
    return os.environ.get("QUIVER_BIN") or str(REPO / "target" / "release" / "quiver")


def free_port() -> int:
    """A port the kernel just handed out (so a restart can reuse a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drain(stream) -> None:
    for _ in stream:
        pass


def _gunzip(src: Path, dst: Path) -> None:
    with gzip.open(src, "rb") as i, open(dst, "wb") as o:
        shutil.copyfileobj(i, o)


def install_model(data_dir: Path, fixture: str) -> str:
    """Places fixture ``fixture`` (bert, qwen3-embed, qwen3-rerank) under
    ``<data_dir>/models/test--<fixture>``; returns the model name ``test/<fixture>``."""
    src = FIXTURES / fixture
    dest = Path(data_dir) / "models" / f"test--{fixture}"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "config.json", dest / "config.json")
    _gunzip(src / "model.safetensors.gz", dest / "model.safetensors")
    tok = src / "tokenizer.json.gz" if fixture == "bert" else FIXTURES / "qwen3-tokenizer.json.gz"
    _gunzip(tok, dest / "tokenizer.json")
    return f"test/{fixture}"


class Server:
    """A running ``quiver serve``; ``url`` is its base URL. ``restart`` kills it
    (SIGKILL by default: no chance to sync) and starts it again on the same port and
    data directory."""

    def __init__(self, tmp_path: Path, *, port: int | None, api_key: str | None,
                 env: dict[str, str] | None = None) -> None:
        self.tmp_path = Path(tmp_path)
        self.data_dir = self.tmp_path / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = api_key
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_n = 0
        self.log: Path | None = None
        self.start()

    def _env(self) -> dict[str, str]:
        # Settings come from here only: nothing inherited may change the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
        env["RUST_LOG"] = env.get("RUST_LOG", "info")
        env["QUIVER_STORAGE_WAL_SYNC"] = "always"
        if self.api_key is not None:
            env["QUIVER_SERVER_API_KEYS"] = json.dumps([self.api_key])
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("server already running")
        self._log_n += 1
        self.log = self.tmp_path / f"server.{self._log_n}.log"
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "wb") as log:
                proc = subprocess.Popen(
                    [quiver_bin(), "serve", "--listen", f"127.0.0.1:{self.port}",
                     "--data-dir", str(self.data_dir)],
                    # No server.toml in the working directory.
                    cwd=self.tmp_path, env=self._env(),
                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                )
            assert proc.stdout is not None
            line = proc.stdout.readline().decode(errors="replace").strip()
            if line.startswith("listening on http://"):
                self._proc = proc
                # Keep reading stdout so a chatty server never blocks on a full pipe.
                threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
                return
            proc.wait()
            # A restart may race the old socket's release; anything else is fatal.
            if "in use" in self.log_text().lower() and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise RuntimeError(f"server did not start (stdout {line!r}); log:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self, *, kill: bool = True) -> None:
        """SIGKILL (default) or SIGTERM, then waits for the exit."""
        p, self._proc = self._proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        p.wait()

    def restart(self, *, kill: bool = True, pause: float = 0.0) -> None:
        """Stops the server and starts it again on the same port and data directory;
        ``pause`` seconds in between (how long clients see connection refused)."""
        self.stop(kill=kill)
        if pause:
            time.sleep(pause)
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(tmp_path: Path, *, port: int | None = None, api_key: str | None = None,
                 models: tuple[str, ...] = ("bert",), env: dict[str, str] | None = None) -> Server:
    """Installs the fixture ``models`` into ``<tmp_path>/data/models`` and starts the
    server there. ``models=()`` installs none; ``env`` adds ``QUIVER_*`` settings."""
    data = Path(tmp_path) / "data"
    for m in models:
        install_model(data, m)
    return Server(tmp_path, port=port, api_key=api_key, env=env)


def run_readme(readme: Path, url: str) -> int:
    """Runs the ``python`` blocks of ``readme`` in order, in one namespace, against the
    server at ``url`` (its address and the fixture model substituted for the documented
    ones), so the documented calls stay true. Returns how many blocks ran."""
    import re

    text = readme.read_text()
    blocks = list(re.finditer(r"```python\n(.*?)```", text, flags=re.S))
    scope: dict = {}
    for m in blocks:
        # Padded so that a failure points at the README's own line.
        block = "\n" * text.count("\n", 0, m.start(1)) + m.group(1)
        code = (block.replace("http://127.0.0.1:6433", url)
                .replace("sentence-transformers/all-MiniLM-L6-v2", "test/bert"))
        exec(compile(code, str(readme), "exec"), scope)  # noqa: S102
    return len(blocks)
