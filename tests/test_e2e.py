"""The spine end to end: demo scene -> ingest -> detect (real ONNX) -> PostGIS -> WMS/WFS/OGC API, real clients."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from conftest import REPO, free_port
from owslib.wms import WebMapService

from amberwatch.settings import Settings
from amberwatch.store.db import Store

DEMO = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
pytestmark = pytest.mark.skipif(not DEMO, reason="demo scene not built yet (demo/S2_*amber_demo*.tif)")
AMBERWATCH = str(Path(sys.executable).parent / "amberwatch")


def feature_count(ogrinfo_output: str) -> int:
    m = re.search(r"Feature Count: (\d+)", ogrinfo_output)
    assert m, ogrinfo_output
    return int(m.group(1))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_database) -> dict:
    data_dir = tmp_path_factory.mktemp("e2e")
    port = free_port()
    url = make_database("amberwatch_e2e")
    bad = data_dir / "uploads-src"
    bad.mkdir()
    environ = {
        **os.environ,
        "AMBERWATCH_DATA_DIR": str(data_dir),
        "AMBERWATCH_DATABASE_URL": url,
        "AMBERWATCH_PORT": str(port),
        "AMBERWATCH_ALLOWED_ROOTS": json.dumps([str(REPO / "demo"), str(bad)]),
    }
    return {"environ": environ, "data_dir": data_dir, "port": port, "url": url, "bad": bad}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMBERWATCH, *args], env=env["environ"], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def first_run(env: dict) -> dict:
    out = env["data_dir"] / "run1.geojson"
    res = cli(env, "detect", str(DEMO[0]), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "published" in res.stdout
    return {"out": out, "stdout": res.stdout}


@pytest.fixture(scope="module")
def server(env: dict, first_run: dict):
    from amberwatch.web.app import create_app

    settings = Settings(data_dir=env["data_dir"], database_url=env["url"], port=env["port"],
                        allowed_roots=[REPO / "demo", env["bad"]])
    store = Store(settings).start()
    from amberwatch.usecases.keys import create_key

    _, key = create_key(store, "e2e-analyst", "analyst")
    app = create_app(settings, store)
    config = uvicorn.Config(app, host="127.0.0.1", port=env["port"], log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{env['port']}"
    for _ in range(200):
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield {"base": base, "store": store, "settings": settings, "auth": {"Authorization": f"Bearer {key}"}}
    srv.should_exit = True
    thread.join(10)
    store.stop()


def test_cli_detect_writes_polygons_in_wgs84(first_run: dict) -> None:
    fc = json.loads(first_run["out"].read_text())
    assert len(fc["features"]) > 0
    for f in fc["features"]:
        props = f["properties"]
        assert props["class"] in {"pit", "pond"}
        assert props["area_ha"] > 0 and 0 <= props["confidence"] <= 1
        lon, lat = f["geometry"]["coordinates"][0][0][0]
        assert 12.5 < lon < 13.2 and 52.2 < lat < 52.6  # the demo scene lies west of Potsdam


def test_detections_match_simulated_truth(first_run: dict) -> None:
    """The demo's simulated sites are found (object recall) and most polygons are on them (precision)."""
    from shapely.geometry import shape

    truth = [shape(f["geometry"]) for f in json.loads((REPO / "demo" / "truth.geojson").read_text())["features"]]
    found = [shape(f["geometry"]) for f in json.loads(first_run["out"].read_text())["features"]]
    recall = np.mean([any(t.buffer(1e-4).intersects(p) for p in found) for t in truth])
    precision = np.mean([any(p.intersects(t.buffer(1e-4)) for t in truth) for p in found])
    assert recall >= 0.7, recall
    assert precision >= 0.7, precision


def test_wfs_and_ogcapi_with_ogrinfo(server: dict) -> None:
    base = server["base"]
    wfs = subprocess.run(["ogrinfo", "-ro", "-so", f"WFS:{base}/ows?", "mining_sites"], capture_output=True,
                         text=True, timeout=120)
    assert wfs.returncode == 0, wfs.stderr
    oapif = subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{base}/ogcapi", "mining_sites"], capture_output=True,
                           text=True, timeout=120)
    assert oapif.returncode == 0, oapif.stderr
    n_wfs, n_oapif = feature_count(wfs.stdout), feature_count(oapif.stdout)
    assert n_wfs > 0 and n_wfs == n_oapif


def test_wms_getmap_draws_sites(server: dict) -> None:
    from PIL import Image

    wms = WebMapService(server["base"] + "/ows", version="1.3.0")
    assert "mining_sites" in wms.contents
    lon0, lat0, lon1, lat1 = wms["mining_sites"].boundingBoxWGS84[:4]

    def drawn(bbox: tuple[float, float, float, float]) -> int:
        # OWSLib takes (minx, miny, maxx, maxy) in lon/lat and swaps the axes itself for EPSG:4326 in WMS 1.3.0
        img = wms.getmap(layers=["mining_sites"], styles=[""], srs="EPSG:4326", bbox=bbox, size=(512, 512),
                         format="image/png", transparent=True)
        data = img.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:200]
        rgba = np.array(Image.open(io.BytesIO(data)).convert("RGBA"))
        return int((rgba[..., 3] > 0).sum())

    assert drawn((lon0, lat0, lon1, lat1)) > 200, "no site drawn"
    assert drawn((lon0 + 1, lat0 + 1, lon1 + 1, lat1 + 1)) == 0, "something drawn where there is no site"


def test_second_run_versions_and_latest_state(server: dict) -> None:
    base = server["base"]
    before_sites = httpx.get(f"{base}/ogcapi/collections/mining_sites/items?f=json&limit=1000").json()
    r = httpx.post(f"{base}/api/runs?wait=true", headers=server["auth"], json={"scene": 1}, timeout=900)
    assert r.status_code == 202, r.text
    run2 = r.json()
    assert run2["state"] == "published" and run2["model_version"]
    runs = httpx.get(f"{base}/api/runs").json()
    assert {x["id"] for x in runs if x["state"] == "published"} >= {1, run2["id"]}
    cols = {c["id"] for c in httpx.get(f"{base}/ogcapi/collections?f=json").json()["collections"]}
    assert {"mining_sites", "detections", "run_1", f"run_{run2['id']}"} <= cols
    after_sites = httpx.get(f"{base}/ogcapi/collections/mining_sites/items?f=json&limit=1000").json()
    # the same scene again: the same sites (same ids, no duplicates), now last updated by run 2; runs of one
    # acquisition count as one observation (docs/monitoring.md)
    assert {f["id"] for f in after_sites["features"]} == {f["id"] for f in before_sites["features"]}
    assert all(f["properties"]["last_run_id"] == run2["id"] for f in after_sites["features"])
    assert all(f["properties"]["n_observations"] == 1 for f in after_sites["features"])
    n1 = len(httpx.get(f"{base}/ogcapi/collections/run_1/items?f=json&limit=5000").json()["features"])
    n_all = len(httpx.get(f"{base}/ogcapi/collections/detections/items?f=json&limit=10000").json()["features"])
    assert n_all == n1 + run2["n_detections"]


def test_bad_inputs_are_refused_and_nothing_is_stored(server: dict, env: dict) -> None:
    base = server["base"]
    n_scenes = len(httpx.get(f"{base}/api/scenes").json())
    # not a raster
    r = httpx.post(f"{base}/api/scenes", headers=server["auth"],
                   files={"file": ("scene.tif", b"this is not a GeoTIFF", "image/tiff")})
    assert r.status_code == 400 and r.json()["detail"]
    # a path outside the allowed roots
    r = httpx.post(f"{base}/api/scenes", headers=server["auth"], json={"path": "/etc/passwd"})
    assert r.status_code == 403 and "allowed root" in r.json()["detail"] and "/etc" not in r.json()["detail"]
    # a missing path inside the allowed roots
    r = httpx.post(f"{base}/api/scenes", headers=server["auth"], json={"path": str(env["bad"] / "nope.tif")})
    assert r.status_code == 400 and "nope.tif" in r.json()["detail"]
    # unknown scene / model
    assert httpx.post(f"{base}/api/runs", headers=server["auth"], json={"scene": 999999}).status_code == 404
    r = httpx.post(f"{base}/api/runs", headers=server["auth"], json={"scene": 1, "model": "no-such-model"})
    assert r.status_code == 400 and "no-such-model" in r.json()["detail"]
    # CLI: a corrupt file -> message and non-zero exit
    corrupt = env["bad"] / "corrupt_B02.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 100)
    res = cli(env, "ingest", str(corrupt))
    assert res.returncode == 2 and "error:" in res.stderr
    assert len(httpx.get(f"{base}/api/scenes").json()) == n_scenes
    assert not list((env["data_dir"] / "scenes").glob(".staging-*"))


def test_health_and_openapi(server: dict) -> None:
    base = server["base"]
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    spec = httpx.get(f"{base}/openapi.json").json()
    assert "/api/scenes" in spec["paths"] and "/api/runs" in spec["paths"]


def run_area_ha(base: str, run_id: int) -> float:
    items = httpx.get(f"{base}/ogcapi/collections/run_{run_id}/items?f=json&limit=5000").json()["features"]
    return sum(f["properties"]["area_ha"] for f in items)


def test_run_with_a_looser_decision_rule(server: dict, env: dict) -> None:
    """An inspector can trade precision for recall per run; bad values are refused before anything is stored."""
    base = server["base"]
    runs = httpx.get(f"{base}/api/runs").json()
    r = httpx.post(f"{base}/api/runs", headers=server["auth"], json={"scene": 1, "min_confidence": 1.5})
    assert r.status_code == 422 and "min_confidence" in r.text
    res = cli(env, "detect", "1", "--min-confidence", "2")
    assert res.returncode == 2 and "minimum object confidence must be in [0, 1]" in res.stderr
    assert len(httpx.get(f"{base}/api/runs").json()) == len(runs)
    default = max((x for x in runs if x["state"] == "published"), key=lambda x: x["id"])
    assert default["parameters"]["min_object_confidence"] > 0.0  # the model card's rule
    r = httpx.post(f"{base}/api/runs?wait=true", headers=server["auth"],
                   json={"scene": 1, "pixel_threshold": 0.5, "min_confidence": 0.0},
                   timeout=900)
    assert r.status_code == 202, r.text
    loose = r.json()
    assert loose["state"] == "published"
    assert loose["parameters"]["decision_rule"] == {"pixel_threshold": 0.5, "min_object_confidence": 0.0}
    assert loose["parameters"]["min_object_confidence"] == 0.0 and loose["parameters"]["pixel_threshold"] == 0.5
    assert run_area_ha(base, loose["id"]) > run_area_ha(base, default["id"])


def test_models_list_marks_one_default_per_family(server: dict) -> None:
    from amberwatch.detect.registry import version_key

    models = httpx.get(f"{server['base']}/api/models").json()
    s2 = [m for m in models if m["name"] == "s2-unet"]
    assert len(s2) >= 2  # several versions are registered, only the newest is the default
    defaults = [m for m in models if m["default"]]
    assert len({m["family"] for m in defaults}) == len(defaults)
    (s2_default,) = [m for m in s2 if m["default"]]
    assert s2_default["version"] == max((m["version"] for m in s2), key=version_key)
    assert "amberwatch:decision" in s2_default["card"]["properties"]
