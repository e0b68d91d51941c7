"""What the benchmark scripts share (run them as ``.venv/bin/python bench/<script>.py``: this folder is on sys.path)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

SHARED_DATA = Path(os.environ.get("AMBERWATCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
