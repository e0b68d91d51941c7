"""Helpers for the publishing tests: serve the app (refresh + mount) under uvicorn, call it with real clients."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import uvicorn
from conftest import free_port
from fastapi import FastAPI
from PIL import Image

from amberwatch.publish import PublishState, mount, refresh
from amberwatch.settings import Settings
from amberwatch.store.db import Store

MAPSERV = shutil.which("mapserv") or (
    "/usr/lib/cgi-bin/mapserv" if shutil.which("/usr/lib/cgi-bin/mapserv") else None
)
OGRINFO = shutil.which("ogrinfo")


@dataclass
class Server:
    url: str
    settings: Settings
    state: PublishState
    app: FastAPI


def app_settings(database_url: str, data_dir, **fields: Any) -> Settings:
    """Settings for an app served in a test on ``database_url`` (e.g. a fresh one from conftest's ``make_database``):
    its own data dir (generated configs), a free port on loopback, our mapserv; ``fields`` set more (limits...)."""
    if MAPSERV is None:
        pytest.skip("mapserv not installed (apt-get install cgi-mapserver)")
    return Settings(**{"data_dir": data_dir, "port": free_port(), "host": "127.0.0.1", "database_url": database_url,
                       "mapserv_bin": MAPSERV, **fields})


def publish_settings(store: Store, data_dir, port: int | None = None) -> Settings:
    """Settings for a publishing test: its own data dir (generated configs) and port, the store's database."""
    return app_settings(store.settings.database_url, data_dir, port=port or free_port(),
                        embedded_pg_port=store.settings.embedded_pg_port)


@contextmanager
def uvicorn_thread(app: FastAPI, port: int, probe: str, timeout: float = 20, **config: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on ``port`` (``config``: more uvicorn.Config options), yielding its URL once
    ``probe`` (a path) answers; stopped when the block ends."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}{probe}", timeout=5).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=15)


@contextmanager
def serve(store: Store, settings: Settings) -> Iterator[Server]:
    """``refresh``, then the FastAPI app with ``mount`` under uvicorn on ``settings.port`` until the block ends."""
    state = refresh(store, settings)
    app = FastAPI()
    mount(app, store, settings)
    with uvicorn_thread(app, settings.port, "/ogcapi/conformance?f=json", lifespan="off") as url:
        yield Server(url, settings, state, app)


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def ogrinfo_summary(source: str, *layers: str) -> str:
    """``ogrinfo -ro -so SOURCE LAYER...`` output (GDAL's WFS or OAPIF driver, as QGIS uses it)."""
    if OGRINFO is None:
        pytest.skip("ogrinfo not installed (apt-get install gdal-bin)")
    res = subprocess.run([OGRINFO, "-ro", "-so", source, *layers], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def ogrinfo_count(source: str, layer: str) -> int:
    out = ogrinfo_summary(source, layer)
    match = re.search(r"Feature Count: (\d+)", out)
    assert match, out
    return int(match.group(1))


def ogrinfo_counts(source: str, layers: list[str]) -> dict[str, int]:
    """Feature counts of several layers from one ``ogrinfo`` run (one GetCapabilities)."""
    out = ogrinfo_summary(source, *layers)
    counts = dict(re.findall(r"^Layer name: (?:\w+:)?(\w+)$.*?^Feature Count: (\d+)$", out, flags=re.M | re.S))
    assert set(counts) == set(layers), out
    return {name: int(n) for name, n in counts.items()}


def ogrinfo_fields(source: str, layer: str) -> dict[str, str]:
    """Field name -> OGR type, from the ``name: Type (w.p)`` lines of ``ogrinfo -so``."""
    out = ogrinfo_summary(source, layer)
    return dict(re.findall(r"^(\w+): ([\w()]+) \(", out, flags=re.M))


def getmap(url: str, layers: list[str], bbox3857, size=(300, 200), time_=None) -> np.ndarray:
    """A transparent PNG GetMap through OWSLib, as an RGBA array."""
    from owslib.wms import WebMapService

    wms = WebMapService(f"{url}/ows", version="1.3.0")
    img = wms.getmap(layers=layers, styles=[""] * len(layers), srs="EPSG:3857", bbox=bbox3857, size=size,
                     format="image/png", transparent=True, time=time_)
    data = img.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:300]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def publish_polygons(store: Store, settings: Settings, key: str, when: Any, footprint: Any,
                     polygons: list[Any]) -> int:
    """A test scene (``footprint`` in EPSG:4326) whose run publishes ``polygons`` as pits through the real use case
    (``usecases.runs.publish_result``: detections, sites, events, layers); returns the run id."""
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon

    from amberwatch.area import area_ha
    from amberwatch.store.models import Run, Scene
    from amberwatch.types import DetectedPolygon, DetectionResult
    from amberwatch.usecases.runs import publish_result

    with store.session() as s:
        scene = Scene(scene_key=key, sensor="sentinel2a", family="sentinel2", level="L2A", acquired=when,
                      resolution=10.0, crs="EPSG:32635", bands=["red"], cloud_fraction=0.0,
                      footprint=from_shape(MultiPolygon([footprint]), srid=4326), source="test",
                      reflectance_path="/nonexistent.tif", stac_item={})
        run = Run(state="running", parameters={}, progress=0.0, n_detections=0)
        run.scenes = [scene]
        s.add(run)
        s.flush()
        scene_id, run_id = scene.id, run.id
    result = DetectionResult(scene_key=key, model_name="test", model_version="0", observed_at=when,
                             polygons=[DetectedPolygon(g, "pit", area_ha(g), 0.8) for g in polygons],
                             probability_path=None, provider="CPUExecutionProvider")
    publish_result(store, settings, run_id, scene_id, result)
    return run_id
