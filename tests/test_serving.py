"""/ows served by the supervised mapserv FastCGI pool (amberwatch.publish.fcgi): speed features and fallbacks.

* the pool starts on the first request with ``AMBERWATCH_MAPSERV_WORKERS`` workers; a killed worker is restarted
  and requests keep being answered;
* the security checks stay in front (SLD= refused, no connection made);
* ETag keyed on the published version, If-None-Match -> 304, a new refresh -> a new ETag;
* gzip for XML for clients that accept it;
* CGI per request with ``mapserv_workers=0`` or when the pool cannot start (logged).
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import signal
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from publish_helpers import publish_settings, serve
from sqlalchemy import text

from amberwatch.publish import refresh
from amberwatch.publish.fcgi import encode_params
from amberwatch.publish.ows import MapServerCGI
from amberwatch.settings import Settings
from amberwatch.store.db import Store

CAPS = "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities"
GETMAP = "/ows?" + urllib.parse.urlencode({
    "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "oblasts", "STYLES": "",
    "CRS": "EPSG:4326", "BBOX": "44,22,53,41", "WIDTH": "128", "HEIGHT": "96", "FORMAT": "image/png"})


@contextmanager
def running(store: Store, settings: Settings) -> Iterator[tuple[str, MapServerCGI]]:
    """:func:`publish_helpers.serve`, yielding ``host:port`` and the app's /ows handler; stops its pool after."""
    with serve(store, settings) as server:
        ows: MapServerCGI = server.app.state.ows
        try:
            yield f"127.0.0.1:{settings.port}", ows
        finally:
            ows.close()


def call(host: str, target: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*host.split(":"), timeout=60)
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pooled(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MapServerCGI, Settings]]:
    settings = publish_settings(store, tmp_path_factory.mktemp("serving"))
    assert settings.mapserv_workers == 2  # the default
    with running(store, settings) as (host, ows):
        yield host, ows, settings


def test_serving_connections_have_the_serving_settings(pooled, store: Store):
    """MapServer's CONNECTION string and pygeoapi's provider (the fast items' engine too) open their sessions with
    publish.connection.SERVING_SETTINGS (UTC, no parallel query, no JIT), set by the client: not the server's
    defaults (the embedded cluster's configuration has jit = off too)."""
    import psycopg2
    import yaml
    from pygeoapi.plugin import load_plugin

    from amberwatch.publish import OgcPaths
    from amberwatch.publish.connection import SERVING_SETTINGS, DbParams

    sql = "select current_setting(%(n)s), source from pg_settings where lower(name) = lower(%(n)s)"
    expected = {name: (value, "client") for name, value in SERVING_SETTINGS.items()}
    mapserver = psycopg2.connect(DbParams.from_store(store).libpq())
    try:
        with mapserver.cursor() as cur:
            seen = {}
            for name in SERVING_SETTINGS:
                cur.execute(sql, {"n": name})
                seen[name] = tuple(cur.fetchone())
            assert seen == expected
    finally:
        mapserver.close()
    config = yaml.safe_load(OgcPaths.of(pooled[2]).pygeoapi_config.read_text())
    provider_def = config["resources"]["protected_areas"]["providers"][0]
    with load_plugin("provider", provider_def)._engine.connect() as conn:
        seen = {name: tuple(conn.exec_driver_sql(sql, {"n": name}).one()) for name in SERVING_SETTINGS}
    assert seen == expected


def test_pool_answers_and_restarts_dead_workers(pooled):
    host, ows, _ = pooled
    status, headers, body = call(host, GETMAP)
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", body[:300]
    assert ows.mode == "fastcgi" and ows.pool is not None and len(ows.pool.pids) == 2
    victim = ows.pool.pids[0]
    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # answered throughout (by the other worker, the restarted one or CGI)
        assert call(host, GETMAP)[0] == 200
    deadline = time.monotonic() + 5
    while len(ows.pool.pids) < 2 or victim in ows.pool.pids:
        assert time.monotonic() < deadline, ows.pool.pids
        time.sleep(0.1)
    assert ows.pool.restarts >= 1


def test_security_checks_stay_in_front_of_the_pool(pooled):
    host, ows, _ = pooled
    status, _, body = call(host, GETMAP + "&SLD=" + urllib.parse.quote("http://127.0.0.1:1/x.sld"))
    assert status == 400 and b"does not fetch remote" in body
    status, _, body = call(host, GETMAP + "&CONTEXT=/etc/passwd")
    assert status == 400
    assert ows.mode == "fastcgi"


def test_etag_304_and_new_version_after_refresh(pooled, store: Store):
    host, _, settings = pooled
    status, headers, _ = call(host, CAPS)
    assert status == 200 and headers["etag"].startswith('W/"') and headers["cache-control"] == "no-cache"
    etag = headers["etag"]
    status, headers, body = call(host, CAPS, {"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["etag"] == etag
    assert call(host, GETMAP, {"If-None-Match": etag})[0] == 200  # another request, another ETag
    time.sleep(0.01)
    refresh(store, settings)
    status, headers, _ = call(host, CAPS, {"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag
    # errors carry no ETag
    status, headers, _ = call(host, "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=nope")
    assert "etag" not in headers


def test_gzip_for_xml(pooled):
    host, _, _ = pooled
    status, headers, plain = call(host, CAPS)
    assert status == 200 and "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
    status, headers, packed = call(host, CAPS, {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) / 3
    status, headers, png = call(host, GETMAP, {"Accept-Encoding": "gzip"})
    assert png[:4] == b"\x89PNG" and "content-encoding" not in headers


def test_cgi_when_workers_is_zero(store: Store, tmp_path: Path):
    settings = publish_settings(store, tmp_path).model_copy(update={"mapserv_workers": 0})
    with running(store, settings) as (host, ows):
        status, _, body = call(host, GETMAP)
        assert status == 200 and body[:4] == b"\x89PNG"
        assert ows.mode == "cgi" and ows.pool is None


def test_cgi_fallback_when_the_pool_cannot_start(store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    settings = publish_settings(store, tmp_path)
    with running(store, settings) as (host, ows):
        assert ows.pool is not None
        ows.pool.socket_path = tmp_path / ("x" * 120 + ".sock")  # too long for AF_UNIX: bind fails
        with caplog.at_level(logging.WARNING, logger="amberwatch.publish.ows"):
            status, _, body = call(host, GETMAP)
        assert status == 200 and body[:4] == b"\x89PNG"
        assert ows.mode == "cgi"
        assert "falls back to CGI" in caplog.text


def test_fastcgi_params_encoding():
    encoded = encode_params({"A": "b", "LONG": "x" * 200})
    assert encoded[:4] == b"\x01\x01Ab" and encoded[4:5] == b"\x04" and encoded[5:9] == (200 | 1 << 31).to_bytes(4)


# -- OGC API Features: no whole-table count on unfiltered pages (publish.pgprovider, count: filtered) -----------

@pytest.fixture(scope="module")
def three_areas(store: Store) -> Iterator[None]:
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box
    from sqlalchemy import delete

    from amberwatch.store.models import ProtectedArea

    with store.session() as s:
        for i in range(3):
            x = 27.6 + i * 0.01
            s.add(ProtectedArea(name=f"Serving test {i}", category="test", code=f"S{i}", source="test_serving",
                                geom=from_shape(MultiPolygon([box(x, 51.6, x + 0.005, 51.605)]), srid=4326)))
    yield
    with store.session() as s:
        s.execute(delete(ProtectedArea).where(ProtectedArea.source == "test_serving"))


@contextmanager
def statements() -> Iterator[list[str]]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_unfiltered_items_do_not_count_the_table(pooled, three_areas):
    import json

    host, _, _ = pooled
    base = "/ogcapi/collections/protected_areas/items?f=json"
    with statements() as seen:
        status, _, body = call(host, f"{base}&limit=2")
    page = json.loads(body)
    assert status == 200 and page["numberReturned"] == 2 and "numberMatched" not in page
    assert any(link["rel"] == "next" for link in page["links"])  # paging still works (the page is full)
    assert seen and not any("count(" in s.lower() for s in seen), seen
    # filtered requests and resulttype=hits still count
    with statements() as seen:
        status, _, body = call(host, f"{base}&bbox=27.59,51.59,27.63,51.61&limit=1")
    assert status == 200 and json.loads(body)["numberMatched"] == 3
    assert any("count(" in s.lower() for s in seen)
    status, _, body = call(host, f"{base}&resulttype=hits")
    assert status == 200 and json.loads(body)["numberMatched"] >= 3


# -- versions without a layer explosion ---------------------------------------------------------------------------

VX, VY = 28.305, 51.905  # a corner no other test uses (north of Zhytomyr oblast)
V_DAY = datetime(2021, 5, 4, 9, 30, tzinfo=UTC)


@dataclass
class Versions:
    host: str
    settings: Settings
    run_a: int
    run_b: int
    added: list[int]


def _published_run(session, model_id: int, scene_id: int, spots: list[tuple[float, float]]) -> int:  # noqa: ANN001
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box

    from amberwatch.store.models import Detection, Run

    run = Run(model_version_id=model_id, state="published", parameters={}, n_detections=len(spots),
              published_at=datetime.now(UTC), progress=1.0)
    session.add(run)
    session.flush()
    for x, y in spots:
        session.add(Detection(run_id=run.id, scene_id=scene_id, cls="pit", confidence=0.9, area_ha=1.0,
                              observed_at=V_DAY, geom=from_shape(MultiPolygon([box(x, y, x + 0.002, y + 0.002)]),
                                                                   srid=4326)))
    session.flush()
    return run.id


@pytest.fixture(scope="module")
def versions(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    from geoalchemy2.shape import from_shape
    from shapely.geometry import MultiPolygon, box
    from sqlalchemy import delete

    from amberwatch.publish.catalog import drop_run_views
    from amberwatch.store.models import Detection, ModelVersion, Run, Scene

    with store.session() as s:
        scene = Scene(scene_key="TEST_SERVING_VERSIONS", sensor="sentinel2", family="sentinel2", level="L2A",
                      acquired=V_DAY, resolution=10.0, crs="EPSG:32635", bands=["B02"], cloud_fraction=0.0,
                      footprint=from_shape(MultiPolygon([box(VX - 0.05, VY - 0.05, VX + 0.05, VY + 0.05)]), srid=4326),
                      source="test_serving", reflectance_path="/nonexistent", stac_item={})
        model = ModelVersion(name="test-serving", version="0.0.1", family="sentinel2", sha256="1" * 64, card={},
                             metrics={})
        s.add_all([scene, model])
        s.flush()
        scene_id, model_id = scene.id, model.id
        run_a = _published_run(s, model_id, scene_id, [(VX, VY)])
        run_b = _published_run(s, model_id, scene_id, [(VX + 0.01, VY)])
    settings = publish_settings(store, tmp_path_factory.mktemp("versions"))
    assert settings.published_run_layers == 5  # the default
    added: list[int] = []
    try:
        with running(store, settings) as (host, _ows):
            yield Versions(host, settings, run_a, run_b, added)
    finally:
        all_runs = [run_a, run_b, *added]
        drop_run_views(store.engine, all_runs)
        with store.session() as s:
            s.execute(delete(Detection).where(Detection.run_id.in_(all_runs)))
            s.execute(delete(Run).where(Run.id.in_(all_runs)))
            s.execute(delete(Scene).where(Scene.id == scene_id))
            s.execute(delete(ModelVersion).where(ModelVersion.id == model_id))


def _getmap(host: str, **extra: str) -> tuple[int, bytes]:
    params = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "detections", "STYLES": "",
              "CRS": "EPSG:4326", "BBOX": f"{VY - 0.005},{VX - 0.005},{VY + 0.0075},{VX + 0.02}",
              "WIDTH": "200", "HEIGHT": "100", "FORMAT": "image/png", "TRANSPARENT": "TRUE",
              "TIME": V_DAY.date().isoformat(), **extra}
    status, _, body = call(host, "/ows?" + urllib.parse.urlencode(params))
    return status, body


def _alpha(png: bytes) -> Any:
    """The alpha band of a transparent PNG (an array: 0 where nothing is drawn)."""
    import io

    import numpy as np
    from PIL import Image

    assert png[:4] == b"\x89PNG", png[:400]
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[:, :, 3]


def _drawn(png: bytes) -> tuple[bool, bool]:
    """(run A's square drawn, run B's square drawn): alpha in the left and right parts of the image."""
    alpha = _alpha(png)
    return bool(alpha[:, :70].max() > 0), bool(alpha[:, 110:].max() > 0)


def test_wms_run_dimension_selects_a_version(versions: Versions):
    host = versions.host
    assert _drawn(_getmap(host)[1]) == (True, True)
    assert _drawn(_getmap(host, DIM_RUN=str(versions.run_a))[1]) == (True, False)
    assert _drawn(_getmap(host, DIM_RUN=str(versions.run_b))[1]) == (False, True)
    status, body = call(host, "/ows?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")[::2]
    assert b'<Dimension name="run"' in body


@pytest.mark.parametrize("value", ["abc", "1 or 1=1", "1);drop table runs;--", "-1", "1e3", "%27"])
def test_wms_run_dimension_refuses_anything_but_an_integer(versions: Versions, value: str):
    status, body = _getmap(versions.host, DIM_RUN=value)
    assert status < 500 and body[:4] != b"\x89PNG" or _drawn(body) == (False, False), body[:400]
    assert b"/" + b"tmp" not in body and b"postgres" not in body.lower()


def test_sld_and_context_still_refused_with_the_dimension(versions: Versions):
    status, body = _getmap(versions.host, DIM_RUN=str(versions.run_a), SLD="http://127.0.0.1:1/x.sld")
    assert status == 400 and b"does not fetch remote" in body
    status, body = _getmap(versions.host, DIM_RUN=str(versions.run_a), CONTEXT="/etc/passwd")
    assert status == 400


def test_wfs_filter_and_ogcapi_run_id(versions: Versions):
    import json

    from amberwatch.publish.versions import wfs_run_filter

    host, run_a = versions.host, versions.run_a
    wfs = urllib.parse.urlencode({"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
                                  "TYPENAMES": "detections", "OUTPUTFORMAT": "geojson",
                                  "FILTER": wfs_run_filter(run_a)})
    status, _, body = call(host, f"/ows?{wfs}")
    assert status == 200, body[:500]
    assert {f["properties"]["run_id"] for f in json.loads(body)["features"]} == {run_a}
    for query in (f"run_id={run_a}", "filter-lang=cql2-text&filter=" + urllib.parse.quote(f"run_id={run_a}"),
                  "filter-lang=cql2-text&filter=" + urllib.parse.quote(
                      f"run_id={run_a} AND model_version='test-serving@0.0.1'")):
        status, _, body = call(host, f"/ogcapi/collections/detections/items?f=json&limit=100&{query}")
        assert status == 200, body[:500]
        feats = json.loads(body)["features"]
        assert len(feats) == 1 and feats[0]["properties"]["run_id"] == run_a, query


def _fast_queries(v: Versions) -> list[str]:
    box_ = f"{VX - 0.01},{VY - 0.01},{VX + 0.05},{VY + 0.05}"
    return [
        f"detections/items?f=json&bbox={box_}&limit=1",  # a filtered first page: counted, next keeps the bbox
        f"detections/items?bbox={box_}&limit=1&offset=1",  # its last page: prev link, total known for free
        f"detections/items?limit=5&run_id={v.run_a}",  # a version by property
        f"detections/items?run_id={v.run_b}&bbox={box_}",  # both, default limit
        "detections/items?limit=1",  # unfiltered full page: no numberMatched, a next link
        "detections/items?limit=2&offset=100000000",  # past the end
        "mining_sites/items?limit=3",
        "protected_areas/items?f=json&bbox=27.59,51.59,27.63,51.61&limit=2",
    ]


def _comparable(doc: dict) -> dict:
    """An items page without its timeStamp, its features sorted by id with coordinates rounded to 1e-9 degrees."""
    import json

    def rounded(node):  # noqa: ANN001, ANN202
        if isinstance(node, list):
            return [rounded(n) for n in node]
        return round(node, 9) if isinstance(node, float) else node

    features = sorted(doc.pop("features"), key=lambda f: f["id"])
    for feature in features:
        if feature.get("geometry"):
            feature["geometry"]["coordinates"] = rounded(feature["geometry"]["coordinates"])
        feature["properties"] = json.loads(json.dumps(feature["properties"]))
    doc.pop("timeStamp")
    return {**doc, "features": features}


def test_fast_items_answer_exactly_as_pygeoapi(versions: Versions, three_areas):
    """The items fast path (publish.fastitems) answers the plain GeoJSON requests — documents equal to pygeoapi's
    own answers to the same requests (served with the fast path off), headers included; others go to pygeoapi."""
    import json

    from starlette.testclient import TestClient

    from amberwatch.publish.ogcapi import build_app, load_files
    from amberwatch.publish.service import OgcPaths

    paths = OgcPaths.of(versions.settings)
    config, openapi = load_files(paths.pygeoapi_config, paths.openapi)
    config["amberwatch"] = {**(config.get("amberwatch") or {}), "fast_items": False}
    accept = {"Accept": "application/geo+json"}
    with TestClient(build_app(config, openapi)) as pygeoapi:
        for query in _fast_queries(versions):
            status, headers, body = call(versions.host, f"/ogcapi/collections/{query}", accept)
            assert status == 200 and headers.get("x-amberwatch-items") == "fast", (query, status, body[:300])
            reference = pygeoapi.get(f"/collections/{query}", headers=accept)
            assert reference.status_code == 200 and "x-amberwatch-items" not in reference.headers
            for name in ("content-type", "content-crs", "content-language"):
                assert headers[name] == reference.headers[name], (query, name)
            ours, theirs = json.loads(body), reference.json()
            assert ours["features"] or "offset=100000000" in query or "mining_sites" in query, query
            assert _comparable(ours) == _comparable(theirs), query
    # everything else is pygeoapi's: HTML, another CRS, CQL2, sortby, an unknown parameter, a bad bbox
    for query in ("detections/items?f=html&limit=1", "detections/items?limit=1&crs=http://www.opengis.net/def/crs/EPSG/0/3857",
                  f"detections/items?limit=1&filter=run_id={versions.run_a}", "detections/items?limit=1&sortby=-id",
                  "detections/items?limit=1&bbox=1,2,3", "detections/items?limit=1&run_id=1&run_id=2"):
        status, headers, body = call(versions.host, f"/ogcapi/collections/{query}", accept)
        assert "x-amberwatch-items" not in headers, query
        assert status in (200, 400), (query, status, body[:300])


def test_fast_items_refuse_a_bad_property_value(versions: Versions):
    import json

    status, headers, body = call(versions.host, "/ogcapi/collections/detections/items?run_id=abc")
    assert status == 400 and json.loads(body)["code"] == "InvalidParameterValue", body[:300]


def test_versions_listing(versions: Versions):
    import json

    status, headers, body = call(versions.host, "/api/versions?limit=2")
    doc = json.loads(body)
    assert status == 200 and doc["type"] == "Collection" and doc["stac_version"] == "1.0.0"
    ids = [v["run_id"] for v in doc["versions"]]
    assert ids == sorted(ids, reverse=True) and versions.run_b in ids
    entry = next(v for v in doc["versions"] if v["run_id"] == versions.run_b)
    rels = {link["rel"]: link["href"] for link in entry["links"]}
    assert {"wms", "wfs", "ogcapi-features", "ogcapi-features-cql2"} <= set(rels)
    for rel in ("wms", "wfs", "ogcapi-features", "ogcapi-features-cql2"):  # every link answers for real
        target = rels[rel].split("127.0.0.1:", 1)[1].split("/", 1)[1]
        status, _, answer = call(versions.host, "/" + target)
        assert status == 200, (rel, answer[:300])
        if rel == "ogcapi-features":
            assert {f["properties"]["run_id"] for f in json.loads(answer)["features"]} == {versions.run_b}
        if rel == "wms":  # the whole region: run B's square is a pixel or two, but drawn
            assert _alpha(answer).max() > 0


def test_300_runs_keep_the_catalog_size(versions: Versions, store: Store):
    """300 published runs: GetCapabilities and /ogcapi/collections list the same layers as with 5."""
    import json
    import re

    from amberwatch.store.models import ModelVersion

    with store.session() as s:
        model_id = s.query(ModelVersion.id).filter(ModelVersion.name == "test-serving").scalar()
        scene_id = s.execute(text("select id from scenes where scene_key = 'TEST_SERVING_VERSIONS'")).scalar_one()
        for i in range(3):
            versions.added.append(_published_run(s, model_id, scene_id, [(VX + 0.03, VY + 0.001 * i)]))
    refresh(store, versions.settings)

    def sizes() -> tuple[int, int, int]:
        caps = call(versions.host, CAPS)[2]
        cols = json.loads(call(versions.host, "/ogcapi/collections?f=json")[2])["collections"]
        return len(re.findall(rb"<Layer\b", caps)), len(cols), len(caps)

    layers_5, collections_5, bytes_5 = sizes()
    with store.session() as s:
        for _ in range(295):
            versions.added.append(_published_run(s, model_id, scene_id, [(VX + 0.03, VY)]))
    t0 = time.perf_counter()
    state = refresh(store, versions.settings)
    took = time.perf_counter() - t0
    layers_300, collections_300, bytes_300 = sizes()
    assert len(state.runs) >= 300
    assert (layers_300, collections_300) == (layers_5, collections_5)
    assert abs(bytes_300 - bytes_5) < 0.1 * bytes_5, (bytes_5, bytes_300)
    run_layers = [name for name in state.layers if name.startswith("run_")]
    assert run_layers == [f"run_{i}" for i in versions.added[-5:]]
    assert took < 30


def test_refresh_without_changes_rewrites_no_configuration(pooled, store: Store):
    from amberwatch.publish.service import OgcPaths

    _, _, settings = pooled
    refresh(store, settings)
    paths = OgcPaths.of(settings)
    files = (paths.mapfile, paths.mapserver_config, paths.pygeoapi_config, paths.openapi)
    before = {p: p.stat().st_mtime_ns for p in files}
    version = paths.version.read_text()
    time.sleep(0.01)
    refresh(store, settings)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert paths.version.read_text() != version  # the published version (ETags) still moves on


def test_ogcapi_items_gzip(pooled, three_areas):
    import json

    host, _, _ = pooled
    target = "/ogcapi/collections/protected_areas/items?f=json&limit=10"
    status, headers, plain = call(host, target)
    assert status == 200 and "content-encoding" not in headers
    status, headers, packed = call(host, target, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    unpacked = json.loads(gzip.decompress(packed))
    assert unpacked["features"] == json.loads(plain)["features"]  # (timeStamp differs)


def test_stale_sockets_of_dead_processes_are_removed(tmp_path: Path):
    import subprocess

    from amberwatch.publish.fcgi import remove_stale_sockets

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live, other = (tmp_path / f"mapserv-{dead.pid}.sock", tmp_path / f"mapserv-{os.getpid()}.sock",
                          tmp_path / "mapserv.sock")
    for path in (stale, live, other):
        path.write_text("")
    assert remove_stale_sockets(tmp_path) == [stale]
    assert live.exists() and other.exists()
