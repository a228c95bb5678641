"""Fixtures of the LangChain integration's tests: a real Quiver server for the session, a
client of it and a fresh collection per test (clients/testing/quiver_fixtures.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testing"))

from quiver_fixtures import *  # noqa: E402,F401,F403
