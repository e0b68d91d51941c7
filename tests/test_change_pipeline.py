"""`amberwatch detect SCENE --reference REF`: segmentation combined with the Random-Forest change model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape
from sqlalchemy import text

from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import runs as pipeline
from amberwatch.usecases import scenes as scenes_uc

DEMO = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
CHANGE_MODEL = sorted((REPO / "models" / "registry" / "change-rf").glob("*/model.onnx"))
pytestmark = pytest.mark.skipif(not DEMO or not CHANGE_MODEL, reason="demo scene or change-rf model missing")


def make_reference(demo: Path, out: Path) -> None:
    """A simulated *older* scene of the demo area: the simulated mining sites (buffered 30 m) are filled with the
    real pixels 400 m to the north, i.e. natural land cover before the mining. Dated 2016-08-01."""
    truth = json.loads((REPO / "demo" / "truth.geojson").read_text())["features"]
    with rasterio.open(demo) as src:
        profile, data, crs, transform = src.profile, src.read(), src.crs, src.transform
        tags, descriptions = src.tags(), src.descriptions
    geoms = [shape(transform_geom("EPSG:4326", crs, f["geometry"])).buffer(30) for f in truth]
    sites = geometry_mask([mapping(g) for g in geoms], out_shape=data.shape[1:], transform=transform, invert=True)
    shifted = np.roll(data, 40, axis=1)  # the pixels 40 rows (400 m) north
    data = np.where(sites[None], shifted, data)
    tags.update(ACQUISITION_DATETIME="2016-08-01T10:00:00Z",
                NOTE="test reference: demo pixels with the simulated sites filled from 400 m north")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        dst.descriptions = descriptions


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_database) -> dict:
    tmp = tmp_path_factory.mktemp("change")
    settings = Settings(data_dir=tmp, database_url=make_database("amberwatch_change"))
    store = Store(settings).start()
    reference = tmp / "S2_L1C_T33UUU_20160801T100000_reference.tif"
    make_reference(DEMO[0], reference)
    yield {"settings": settings, "store": store, "reference": reference}
    store.stop()


def test_detect_with_reference_confirms_mining(env: dict) -> None:
    store, settings = env["store"], env["settings"]
    target = scenes_uc.ingest(store, settings, DEMO[0])
    ref = scenes_uc.ingest(store, settings, env["reference"])
    run = pipeline.detect(store, settings, target, reference=ref)
    assert run.state == "published"
    assert run.parameters["reference_scene_key"] == ref.scene_key
    assert run.parameters["change_model"].startswith("change-rf@")
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "select class, confidence, change_class, change_fraction, ST_AsGeoJSON(geom) from published_detections"
            " where run_id = :r"), {"r": run.id}).all()
    assert rows
    truth = [shape(f["geometry"]) for f in json.loads((REPO / "demo" / "truth.geojson").read_text())["features"]]
    on_sites = [r for r in rows if any(shape(json.loads(r[4])).intersects(t) for t in truth)]
    assert on_sites, "no detection on the simulated sites"
    fractions = [r.change_fraction for r in on_sites if r.change_fraction is not None]
    assert fractions and all(0 <= f <= 1 for f in fractions)
    # the mining sites were forest/fields in the reference: most of their pixels changed as expected
    assert np.median(fractions) >= 0.5, fractions
    assert all(0 <= r.confidence <= 1 for r in rows)


def test_reference_must_be_older(env: dict) -> None:
    store, settings = env["store"], env["settings"]
    target = scenes_uc.ingest(store, settings, DEMO[0])
    ref = scenes_uc.ingest(store, settings, env["reference"])
    with pytest.raises(InputError, match="must be older"):
        pipeline.create_run(store, settings, ref, reference=target)
    with pytest.raises(InputError, match="must differ"):
        pipeline.create_run(store, settings, target, reference=target)
