"""Shared fixtures: a real embedded PostGIS for the whole test session, paths to shared data."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from amberwatch.settings import Settings
from amberwatch.store.db import Store

# anyio imports its submodules lazily, on first use. It is a pytest plugin, so pytest rewrites (re-parses) those
# modules when they load: a first anyio.open_file in a test server's thread while the main thread parses a test
# module trips CPython 3.11's "AST constructor recursion depth mismatch" (a 500 in a test). Load them all now.
for _name in dir(anyio):
    getattr(anyio, _name)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AMBERWATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str] | None = None, catch_exceptions: bool = True) -> Any:
    """The real ``amberwatch`` command line in this process (no second interpreter start-up): the settings are read
    afresh from this environment (plus ``env``) and dropped again after; the root logger the CLI configures is put
    back. Returns typer's ``Result`` (``exit_code``, ``output``, ``stdout``, ``stderr``, ``exception``)."""
    from typer.testing import CliRunner

    from amberwatch.cli import app
    from amberwatch.settings import get_settings

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=catch_exceptions)
    finally:
        get_settings.cache_clear()
        root.handlers[:], root.level = handlers, level


def shared(*parts: str) -> Path:
    """A path in ../shared/data; skips the test with the reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (set AMBERWATCH_SHARED_DATA)")
    return p


@pytest.fixture(scope="session")
def pg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return traversable(tmp_path_factory.mktemp("amberwatch-db"))


def traversable(root: Path) -> Path:
    """Let the postgres system user reach ``root`` (a cluster directory) through the temporary folders above it."""
    os.chmod(root, 0o755)
    for parent in root.parents:
        if str(parent).startswith("/tmp/"):
            os.chmod(parent, 0o755)
    return root


@pytest.fixture(scope="session")
def store(pg_root: Path) -> Store:
    """One real PostGIS cluster (embedded, migrated) for the session; tests must clean what they add."""
    settings = Settings(data_dir=pg_root, embedded_pg_port=free_port())
    st = Store(settings).start()
    yield st
    st.stop()


@pytest.fixture(scope="session")
def make_database(store: Store):
    """Factory: a fresh, migrated database in the session's cluster (for tests that need an empty store)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    created: list[str] = []

    def factory(name: str) -> str:
        admin = create_engine(store.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
            conn.execute(text(f'create database "{name}"'))
        admin.dispose()
        created.append(name)
        return make_url(store.url).set(database=name).render_as_string(hide_password=False)

    yield factory


class Listener:
    """A real TCP listener on loopback that counts (and closes) every connection it accepts: proof that the
    service made no outbound request."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, one per test module; skips with the reason when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium; make install adds it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e .[test])")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


S2_UNET = REPO / "models" / "registry" / "s2-unet" / "1.2.0" / "model.onnx"


@pytest.fixture(scope="session")
def s2_scene() -> Any:
    """The real Sentinel-2 crop of the training scenes (``amberwatch_training.scenes.load_sentinel2``), decoded once
    per session, and ``S2_UNET`` present; skips with the reason when either is missing. Do not modify it."""
    from amberwatch_training.scenes import SceneMissingError, load_sentinel2

    try:
        scene = load_sentinel2()
    except SceneMissingError as err:
        pytest.skip(str(err))
    if not S2_UNET.exists():
        pytest.skip(f"no s2-unet 1.2.0 in the registry ({S2_UNET})")
    return scene
