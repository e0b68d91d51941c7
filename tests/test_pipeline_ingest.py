"""pipeline.ingest: a stored scene is reused by key; a stored scene whose files were lost is restored in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import scenes as scenes_uc

DEMO = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
pytestmark = pytest.mark.skipif(not DEMO, reason="demo scene missing")


def test_reuse_and_restore(tmp_path: Path, make_database) -> None:
    settings = Settings(data_dir=tmp_path, database_url=make_database("aw_ingest"))
    store = Store(settings).start()
    try:
        first = scenes_uc.ingest(store, settings, DEMO[0])
        refl = Path(first.reflectance_path)
        mtime = refl.stat().st_mtime_ns
        again = scenes_uc.ingest(store, settings, DEMO[0])
        assert again.id == first.id and refl.stat().st_mtime_ns == mtime  # not re-read
        refl.unlink()
        restored = scenes_uc.ingest(store, settings, DEMO[0])
        assert restored.id == first.id
        assert Path(restored.reflectance_path).exists()
        assert not list((tmp_path / "scenes").glob(".staging-*"))
    finally:
        store.stop()
