"""The streaming detect path (windows vectorized as the model writes them) gives the polygons of the former path
(probability COG written, then read back by ``vectorize``), on real Sentinel-2 pixels with the registered model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from amberwatch.demo import demo_scene_path
from amberwatch.detect import detect_scene, get_model
from amberwatch.detect.segment import cached_runner, context_margin, segment_to_gtiff
from amberwatch.detect.session import ModelRunner
from amberwatch.detect.vectorize import StripVectorizer, vectorize
from amberwatch.ingest import ingest_path
from amberwatch.settings import Settings


def same_polygons(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for p, q in zip(a, b, strict=True):
        assert (p.cls, p.area_ha, p.confidence) == (q.cls, q.area_ha, q.confidence)
        assert shapely.equals_exact(p.geometry, q.geometry, tolerance=0.0)


def test_streaming_detect_equals_vectorizing_the_probability_cog(tmp_path: Path) -> None:
    scene = ingest_path(demo_scene_path(), tmp_path / "scene")
    settings = Settings(data_dir=tmp_path, window_size=160)  # 768 px: 5 x 5 windows, the last ones partial
    model = get_model(settings.models_dir, None, scene.family, settings.default_models)
    result = detect_scene(scene, model, tmp_path / "work", settings)
    assert result.probability_path is not None and result.probability_path.exists()
    rule = model.decision
    before = vectorize(result.probability_path, scene.crs, rule=rule, min_area_ha=settings.min_mapping_unit_ha)
    same_polygons(result.polygons, before)

    # windows in any order (here: last first) and of another size give the same polygons too
    with rasterio.open(result.probability_path) as src:
        strips = StripVectorizer(src.width, src.height, src.transform, src.crs.to_wkt(), rule,
                                 min_area_ha=settings.min_mapping_unit_ha)
        windows = [Window(c, r, min(100, src.width - c), min(100, src.height - r))
                   for r in range(0, src.height, 100) for c in range(0, src.width, 100)]
        for w in reversed(windows):
            strips.add(w, src.read([1, 2], window=w))
    same_polygons(strips.polygons(), before)

    # the GPU path's shape (8 windows per run() call, IO binding) streams the same polygons
    runner = cached_runner(str(model.onnx_path), model.sha256, None)
    gpu_like = ModelRunner(runner.session, runner.provider, use_io_binding=True)
    gpu_like.batch_size = 8
    with rasterio.open(scene.reflectance_path) as src:
        strips = StripVectorizer(src.width, src.height, src.transform, src.crs.to_wkt(), rule,
                                 min_area_ha=settings.min_mapping_unit_ha)
    segment_to_gtiff(scene, model, gpu_like, tmp_path / "gpu-like.tif", 160, context_margin(model), None, strips.add)
    same_polygons(strips.polygons(), before)


def test_strip_vectorizer_refuses_missing_windows() -> None:
    strips = StripVectorizer(20, 10, Affine(10, 0, 300_000, 0, -10, 5_700_000), "EPSG:32635", min_area_ha=0.0)
    strips.add(Window(0, 0, 10, 10), np.zeros((2, 10, 10), np.uint8))
    with pytest.raises(ValueError, match="incomplete"):
        strips.polygons()


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_detections_are_copied_with_either_driver(store, driver: str) -> None:
    """The detect path stores its polygons with COPY (``bulk_insert_detections``), on psycopg2 (the embedded
    store) and psycopg 3 (a ``postgresql+psycopg://`` database URL). Rolled back; FK triggers off for the test."""
    from datetime import UTC, datetime

    from shapely.geometry import MultiPolygon, box
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from amberwatch.store.queries.detections import NewDetection, bulk_insert_detections

    engine = create_engine(make_url(store.url).set(drivername=f"postgresql+{driver}"))
    dets = [NewDetection("pit" if i % 2 else "pond", 0.5 + i / 10, 1.0 + i, None, None,
                         MultiPolygon([box(24 + i / 100, 51, 24.005 + i / 100, 51.005)])) for i in range(3)]
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(text("set local session_replication_role = replica"))
            n = bulk_insert_detections(conn, -7, -7, datetime(2024, 6, 1, tzinfo=UTC), iter(dets))
            rows = conn.execute(text("select class, confidence, area_ha, ST_AsText(geom) from detections "
                                     "where run_id = -7 order by id")).all()
        finally:
            trans.rollback()
    engine.dispose()
    assert n == 3 and [r[0] for r in rows] == ["pond", "pit", "pond"]
    assert [round(r[1], 6) for r in rows] == [0.5, 0.6, 0.7] and [r[2] for r in rows] == [1.0, 2.0, 3.0]
    assert all(r[3].startswith("MULTIPOLYGON(((24") for r in rows)
