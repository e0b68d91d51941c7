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


def test_a_scene_row_round_trips_to_the_stage_object(tmp_path: Path, make_database) -> None:
    """What ingest hands to detection is what a stored scene gives back: same grid, footprint, paths, metadata."""
    import dataclasses

    from amberwatch.ingest import ingest_path

    settings = Settings(data_dir=tmp_path, database_url=make_database("aw_roundtrip"))
    store = Store(settings).start()
    try:
        direct = ingest_path(DEMO[0], tmp_path / "direct")
        row = scenes_uc.ingest(store, settings, DEMO[0])
        back = scenes_uc.scene_from_row(scenes_uc.get_scene(store, row.id))
        for f in dataclasses.fields(direct):
            a, b = getattr(direct, f.name), getattr(back, f.name)
            if f.name in ("reflectance_path", "cloud_mask_path"):
                assert (a is None) == (b is None) and (a is None or a.name == b.name)
            elif f.name == "footprint_wgs84":
                assert a.symmetric_difference(b).area < 1e-12 * max(a.area, 1e-9) + 1e-15, f.name
            elif f.name == "stac_item":
                assert a["id"] == b["id"] and a["properties"]["datetime"] == b["properties"]["datetime"]
            elif f.name == "bounds":
                assert tuple(a) == tuple(b) and a != (0, 0, 0, 0)
            elif f.name != "source":
                assert a == b, f.name
    finally:
        store.stop()
