"""Conformance proven by real clients: a checklist mirroring assertions of the OGC CITE test suites.

Each test names the suite and the assertion it mirrors (``ets-ogcapi-features10`` for OGC API Features Parts 1-3,
``ets-wfs20``, ``ets-wms13``); docs/conformance.md is the table. The clients are the ones users run: GDAL
(``ogrinfo`` OAPIF/WFS drivers, as QGIS uses them), OWSLib, plain HTTP (httpx) with ``jsonschema`` and
``openapi-spec-validator``. The app is the real one (``refresh`` + ``mount`` under uvicorn, mapserv, pygeoapi,
PostGIS) with a small seed of its own: two published runs in a corner no other test uses.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest
from geoalchemy2.shape import from_shape
from lxml import etree
from PIL import Image
from publish_helpers import OGRINFO, Server, publish_settings, serve
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box
from sqlalchemy import delete

from amberwatch.publish.catalog import drop_run_views
from amberwatch.publish.versions import wfs_run_filter
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, ModelVersion, Run, Scene

# A corner of Kyiv oblast no other test uses; dates no other test uses.
X0, Y0 = 30.105, 50.905
DAY_A = datetime(2018, 9, 12, 9, 10, tzinfo=UTC)
DAY_B = datetime(2018, 9, 25, 9, 20, tzinfo=UTC)
CELL = 0.002  # degrees between squares
SIZE = 0.0012  # square side (degrees)
COLS, ROWS = 4, 3  # run A: a 4 x 3 grid
# a bbox holding run A's first two columns (8 squares) and nothing of run B (row 4)
BBOX_AB = (X0 - 0.0005, Y0 - 0.0005, X0 + CELL + SIZE + 0.0005, Y0 + 2 * CELL + SIZE + 0.0005)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"


@dataclass
class Seed:
    run_a: int
    run_b: int
    ids: dict[int, list[int]]  # run id -> detection ids
    props: dict[int, dict]  # detection id -> {cls, confidence, x, y}


def _square(x: float, y: float):
    return from_shape(MultiPolygon([box(x, y, x + SIZE, y + SIZE)]), srid=4326)


@pytest.fixture(scope="module")
def seed(store: Store) -> Iterator[Seed]:
    with store.session() as s:
        scene = Scene(scene_key="TEST_CONFORMANCE_S2", sensor="sentinel2", family="sentinel2", level="L2A",
                      acquired=DAY_A, resolution=10.0, crs="EPSG:32635", bands=["B02"], cloud_fraction=0.0,
                      footprint=from_shape(MultiPolygon([box(X0 - 0.05, Y0 - 0.05, X0 + 0.05, Y0 + 0.05)]),
                                           srid=4326),
                      source="test_conformance", reflectance_path="/nonexistent", stac_item={})
        model = ModelVersion(name="test-conformance", version="0.0.1", family="sentinel2", sha256="2" * 64,
                             card={}, metrics={})
        s.add_all([scene, model])
        s.flush()
        scene_id, model_id = scene.id, model.id
        ids: dict[int, list[int]] = {}
        props: dict[int, dict] = {}
        runs = []
        for day, cells in ((DAY_A, [(c, r) for c in range(COLS) for r in range(ROWS)]),
                           (DAY_B, [(c, 4) for c in range(3)])):
            run = Run(model_version_id=model_id, state="published", parameters={}, n_detections=len(cells),
                      published_at=datetime.now(UTC), progress=1.0)
            s.add(run)
            s.flush()
            runs.append(run.id)
            ids[run.id] = []
            for i, (c, r) in enumerate(cells):
                x, y = X0 + c * CELL, Y0 + r * CELL
                cls, conf = ("pit" if i % 2 == 0 else "pond"), round(0.5 + 0.04 * i, 2)
                det = Detection(run_id=run.id, scene_id=scene_id, cls=cls, confidence=conf, area_ha=1.0,
                                observed_at=day, geom=_square(x, y))
                s.add(det)
                s.flush()
                ids[run.id].append(det.id)
                props[det.id] = {"cls": cls, "confidence": conf, "x": x, "y": y}
    yield Seed(runs[0], runs[1], ids, props)
    drop_run_views(store.engine, runs)
    with store.session() as s:
        s.execute(delete(Detection).where(Detection.run_id.in_(runs)))
        s.execute(delete(Run).where(Run.id.in_(runs)))
        s.execute(delete(Scene).where(Scene.id == scene_id))
        s.execute(delete(ModelVersion).where(ModelVersion.id == model_id))


@pytest.fixture(scope="module")
def server(store: Store, seed: Seed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(store, publish_settings(store, tmp_path_factory.mktemp("conformance"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _in_bbox(seed: Seed, bbox: tuple[float, float, float, float], run: int | None = None) -> set[int]:
    """Seeded detections (of ``run``) whose square intersects ``bbox`` (lon/lat)."""
    x0, y0, x1, y1 = bbox
    runs = [run] if run else [seed.run_a, seed.run_b]
    return {i for r in runs for i in seed.ids[r]
            if seed.props[i]["x"] <= x1 and seed.props[i]["x"] + SIZE >= x0
            and seed.props[i]["y"] <= y1 and seed.props[i]["y"] + SIZE >= y0}


SEED_BBOX = (X0 - 0.001, Y0 - 0.001, X0 + COLS * CELL + 0.001, Y0 + 5 * CELL + 0.001)


def _items(http: httpx.Client, collection: str = "detections", **params: object) -> httpx.Response:
    return http.get(f"/ogcapi/collections/{collection}/items", params={"f": "json", **params})


def _ids(resp: httpx.Response) -> set[int]:
    assert resp.status_code == 200, resp.text[:500]
    return {int(f["id"]) for f in resp.json()["features"]}


def _rels(links: list[dict]) -> dict[str, dict]:
    return {link["rel"]: link for link in links}


# == OGC API - Features - Part 1: Core (ets-ogcapi-features10) ===================================================

def test_oapif_core_landing_page_links(http: httpx.Client):
    """ets-ogcapi-features10 /conf/core/root-success (Abstract Test 2): links service-desc, conformance, data."""
    resp = http.get("/ogcapi/", params={"f": "json"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    rels = _rels(resp.json()["links"])
    assert {"self", "service-desc", "conformance", "data"} <= set(rels), rels
    for rel in ("service-desc", "conformance", "data"):
        target = rels[rel]["href"]
        assert http.get(target).status_code == 200, (rel, target)


def test_oapif_core_conformance_classes(http: httpx.Client):
    """ets-ogcapi-features10 /conf/core/conformance-success (Abstract Test 6): Core, GeoJSON, OAS30, plus
    Part 2 CRS and Part 3 Filtering / Features Filter / Queryables declared."""
    resp = http.get("/ogcapi/conformance", params={"f": "json"})
    assert resp.status_code == 200
    classes = set(resp.json()["conformsTo"])
    base = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {base + "core", base + "geojson", base + "oas30"} <= classes, classes
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes
    part3 = {c for c in classes if "ogcapi-features-3" in c}
    assert any(c.endswith("/filter") for c in part3) and any(c.endswith("/features-filter") for c in part3), part3
    assert any("cql2" in c for c in classes), classes


def test_oapif_core_openapi_document_valid(http: httpx.Client):
    """ets-ogcapi-features10 /conf/oas30/oas-definition-1 .. -2 (Abstract Tests 3-5): the service-desc link is an
    OpenAPI 3.0 document that validates, and it describes the items path of every collection."""
    validator = pytest.importorskip("openapi_spec_validator")
    landing = http.get("/ogcapi/", params={"f": "json"}).json()
    href = _rels(landing["links"])["service-desc"]["href"]
    resp = http.get(href)
    assert resp.status_code == 200, resp.text[:300]
    doc = resp.json()
    assert doc["openapi"].startswith("3.0")
    validator.validate(_offline(doc))
    collections = [c["id"] for c in http.get("/ogcapi/collections", params={"f": "json"}).json()["collections"]]
    for cid in collections:
        assert f"/collections/{cid}/items" in doc["paths"], cid


def _offline(node, parent: str = ""):  # noqa: ANN001, ANN202
    """``node`` without the ``$ref``s to OGC schema repositories (these machines have no internet): a response
    reference becomes a described response, a parameter reference a string parameter of the referenced name, a
    schema reference any schema. Everything the document defines itself is still validated."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("http"):
            name = ref.rsplit("/", 1)[-1].removesuffix(".yaml")
            if parent == "response":
                return {"description": ref}
            if parent == "parameter":
                where = "path" if name == "featureId" else "query"
                return {"name": name, "in": where, "required": where == "path", "schema": {"type": "string"}}
            return {}
        return {k: _offline(v, "response" if parent == "responses" else k) for k, v in node.items()}
    if isinstance(node, list):
        return [_offline(n, "parameter" if parent == "parameters" else "") for n in node]
    return node


def test_oapif_core_collections_metadata(http: httpx.Client):
    """ets-ogcapi-features10 /conf/core/fc-md-success, fc-md-links, fc-md-items (Abstract Tests 9-13): every
    collection has an id, an items link and a spatial extent (bbox in CRS84)."""
    resp = http.get("/ogcapi/collections", params={"f": "json"})
    assert resp.status_code == 200
    doc = resp.json()
    assert "self" in _rels(doc["links"])
    ids = {c["id"] for c in doc["collections"]}
    assert {"detections", "mining_sites", "events", "oblasts"} <= ids
    for col in doc["collections"]:
        rels = _rels(col["links"])
        assert "items" in rels, col["id"]
        bbox = col["extent"]["spatial"]["bbox"][0]
        assert len(bbox) == 4 and bbox[0] < bbox[2] and bbox[1] < bbox[3], col["id"]
        assert -180 <= bbox[0] and bbox[2] <= 180 and -90 <= bbox[1] and bbox[3] <= 90


def test_oapif_core_collection_metadata(http: httpx.Client):
    """ets-ogcapi-features10 /conf/core/sfc-md-success (Abstract Test 14-15): /collections/{id} equals its entry
    in /collections, with extent (spatial and temporal) and links."""
    col = http.get("/ogcapi/collections/detections", params={"f": "json"}).json()
    assert col["id"] == "detections" and {"self", "items"} <= set(_rels(col["links"]))
    assert col["extent"]["spatial"]["bbox"] and col["extent"]["temporal"]["interval"], col["extent"]
    listed = next(c for c in http.get("/ogcapi/collections", params={"f": "json"}).json()["collections"]
                  if c["id"] == "detections")
    assert listed["extent"] == col["extent"]


# a minimal GeoJSON FeatureCollection schema (the parts ets-ogcapi-features10 checks with its own schemas)
FEATURE_COLLECTION = {
    "type": "object", "required": ["type", "features", "links", "numberReturned"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "numberReturned": {"type": "integer", "minimum": 0},
        "numberMatched": {"type": "integer", "minimum": 0},
        "timeStamp": {"type": "string"},
        "links": {"type": "array", "items": {"type": "object", "required": ["href", "rel"]}},
        "features": {"type": "array", "items": {
            "type": "object", "required": ["type", "geometry", "properties", "id"],
            "properties": {"type": {"const": "Feature"},
                           "geometry": {"type": "object", "required": ["type", "coordinates"]},
                           "properties": {"type": "object"}}}},
    },
}


def test_oapif_core_items_geojson_and_paging_links(http: httpx.Client, seed: Seed):
    """ets-ogcapi-features10 /conf/core/fc-response, fc-links, fc-numberReturned, fc-numberMatched
    (Abstract Tests 22-25) and /conf/geojson/content (Abstract Test 29): a GeoJSON FeatureCollection with
    numberReturned, a next link on a full page and prev after the first page; walking next visits every item once."""
    import jsonschema

    query = {"bbox": ",".join(map(str, SEED_BBOX)), "limit": 4}
    resp = _items(http, **query)
    assert resp.headers["content-type"].startswith("application/geo+json")
    page = resp.json()
    jsonschema.validate(page, FEATURE_COLLECTION)
    assert page["numberReturned"] == 4 and page["numberMatched"] == 15
    rels = _rels(page["links"])
    assert {"self", "next"} <= set(rels) and "prev" not in rels
    seen: list[int] = [int(f["id"]) for f in page["features"]]
    pages = 1
    while "next" in rels:
        page = http.get(rels["next"]["href"]).json()
        jsonschema.validate(page, FEATURE_COLLECTION)
        rels = _rels(page["links"])
        assert "prev" in rels
        seen += [int(f["id"]) for f in page["features"]]
        pages += 1
        assert pages < 10
    assert sorted(seen) == sorted(seed.ids[seed.run_a] + seed.ids[seed.run_b])
    # what the ETS sends: no f, Accept: application/geo+json
    resp = http.get("/ogcapi/collections/detections/items", params={"limit": 1},
                    headers={"Accept": "application/geo+json"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/geo+json")
    jsonschema.validate(resp.json(), FEATURE_COLLECTION)


def test_oapif_core_limit_bounds(http: httpx.Client):
    """ets-ogcapi-features10 /conf/core/fc-limit-definition and fc-limit-response-1 (Abstract Tests 16-17):
    limit 1 .. max; out of range is an error (400), a limit above the maximum is throttled, not refused."""
    bbox = ",".join(map(str, SEED_BBOX))
    assert _items(http, bbox=bbox, limit=1).json()["numberReturned"] == 1
    for bad in ("0", "-1", "abc"):
        assert _items(http, limit=bad).status_code == 400, bad
    resp = _items(http, bbox=bbox, limit=50000)
    assert resp.status_code == 200 and resp.json()["numberReturned"] == 15


def test_oapif_core_bbox(http: httpx.Client, seed: Seed):
    """ets-ogcapi-features10 /conf/core/fc-bbox-definition, fc-bbox-response (Abstract Tests 18-19): only
    features intersecting the bbox; a malformed bbox is a 400."""
    assert _ids(_items(http, bbox=",".join(map(str, BBOX_AB)), limit=100)) == _in_bbox(seed, BBOX_AB)
    assert len(_in_bbox(seed, BBOX_AB)) == 6  # 2 columns x 3 rows of run A
    assert _items(http, bbox="1,2,3").status_code == 400


def test_oapif_core_datetime(http: httpx.Client, seed: Seed):
    """ets-ogcapi-features10 /conf/core/fc-time-definition, fc-time-response (Abstract Tests 20-21): instants,
    closed and half-open intervals on the collection's time property."""
    bbox = ",".join(map(str, SEED_BBOX))
    day_a, day_b = seed.ids[seed.run_a], seed.ids[seed.run_b]
    assert _ids(_items(http, bbox=bbox, limit=100, datetime="2018-09-12T00:00:00Z/2018-09-12T23:59:59Z")) == set(day_a)
    assert _ids(_items(http, bbox=bbox, limit=100, datetime=DAY_B.isoformat().replace("+00:00", "Z"))) == set(day_b)
    assert _ids(_items(http, bbox=bbox, limit=100, datetime="2018-09-20T00:00:00Z/..")) == set(day_b)
    assert _ids(_items(http, bbox=bbox, limit=100, datetime="../2018-09-20T00:00:00Z")) == set(day_a)


def test_oapif_core_feature_by_id(http: httpx.Client, seed: Seed):
    """ets-ogcapi-features10 /conf/core/f-success, f-links (Abstract Tests 27-28): one GeoJSON Feature with self
    and collection links; an unknown id is a 404."""
    fid = seed.ids[seed.run_a][3]
    resp = http.get(f"/ogcapi/collections/detections/items/{fid}", params={"f": "json"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/geo+json")
    feature = resp.json()
    assert feature["type"] == "Feature" and int(feature["id"]) == fid
    assert feature["properties"]["run_id"] == seed.run_a and feature["properties"]["class"] == "pond"
    assert {"self", "collection"} <= set(_rels(feature["links"]))
    assert http.get("/ogcapi/collections/detections/items/999999999", params={"f": "json"}).status_code == 404


def test_oapif_core_owslib_client(server: Server, seed: Seed):
    """The same through OWSLib's OGC API Features client (landing, conformance, collection, items)."""
    from owslib.ogcapi.features import Features

    api = Features(f"{server.url}/ogcapi")
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    assert api.collection("detections")["id"] == "detections"
    fc = api.collection_items("detections", bbox=list(BBOX_AB), limit=100)
    assert {int(f["id"]) for f in fc["features"]} == _in_bbox(seed, BBOX_AB)


# == OGC API - Features - Part 2: Coordinate Reference Systems by Reference ======================================

WANTED_CRS = [CRS84, EPSG + "4326", EPSG + "3857", EPSG + "32635"]


def test_oapif_crs_collection_lists_crs(http: httpx.Client):
    """ets-ogcapi-features10 Part 2 /conf/crs/fc-md-crs-list, fc-md-storageCrs (Abstract Tests 2-4): the
    collection lists its supported CRS (CRS84, EPSG:4326, 3857, UTM 35N) and its storage CRS."""
    col = http.get("/ogcapi/collections/detections", params={"f": "json"}).json()
    assert set(WANTED_CRS) <= set(col["crs"]), col.get("crs")
    assert col["storageCrs"] == CRS84


@pytest.mark.parametrize("code", ["4326", "3857", "32635"])
def test_oapif_crs_items_in_crs(http: httpx.Client, seed: Seed, code: str):
    """ets-ogcapi-features10 Part 2 /conf/crs/fc-crs-valid-value, fc-crs-response, ogc-crs-header (Abstract
    Tests 7-10): ``crs=`` reprojects the coordinates (EPSG:4326 in its lat/lon axis order) and the answer names
    its CRS in ``Content-Crs``; ``bbox-crs`` reads the bbox in that CRS."""
    fid = seed.ids[seed.run_a][0]
    x, y = seed.props[fid]["x"], seed.props[fid]["y"]
    resp = http.get(f"/ogcapi/collections/detections/items/{fid}", params={"f": "json", "crs": EPSG + code})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-crs"] == f"<{EPSG}{code}>"
    ring = resp.json()["geometry"]["coordinates"]
    while isinstance(ring[0][0], list):
        ring = ring[0]
    coords = np.asarray(ring)
    to = Transformer.from_crs("OGC:CRS84", f"EPSG:{code}")  # authority axis order (lat/lon for 4326)
    ex, ey = to.transform(x, y)
    assert np.isclose(coords[:, 0].min(), ex, atol=1e-6 if code == "4326" else 0.5), (coords, ex, ey)
    assert np.isclose(coords[:, 1].min(), ey, atol=1e-6 if code == "4326" else 0.5), (coords, ex, ey)
    # bbox-crs: the bbox of BBOX_AB expressed in that CRS (authority axis order) selects the same features
    b0, b1 = to.transform(BBOX_AB[0], BBOX_AB[1]), to.transform(BBOX_AB[2], BBOX_AB[3])
    bbox = (min(b0[0], b1[0]), min(b0[1], b1[1]), max(b0[0], b1[0]), max(b0[1], b1[1]))
    items = _items(http, bbox=",".join(map(str, bbox)), **{"bbox-crs": EPSG + code}, limit=100, crs=EPSG + code)
    assert items.headers["content-crs"] == f"<{EPSG}{code}>"
    assert _ids(items) == _in_bbox(seed, BBOX_AB)


def test_oapif_crs_unsupported_crs_is_400(http: httpx.Client):
    """ets-ogcapi-features10 Part 2 /conf/crs/fc-crs-invalid-value, fc-bbox-crs-invalid-value: 400."""
    assert _items(http, crs=EPSG + "2180").status_code == 400
    assert _items(http, bbox="1,2,3,4", **{"bbox-crs": EPSG + "2180"}).status_code == 400


# == OGC API - Features - Part 3: Filtering (CQL2 through pygeofilter) ============================================

def test_oapif_filter_queryables(http: httpx.Client):
    """ets-ogcapi-features10 Part 3 /conf/queryables/get-queryables (Abstract Test 1-3): a JSON Schema of the
    queryable properties, linked from the collection."""
    resp = http.get("/ogcapi/collections/detections/queryables", params={"f": "json"})
    assert resp.status_code == 200, resp.text[:300]
    doc = resp.json()
    assert doc["type"] == "object" and {"run_id", "class", "confidence", "observed_at"} <= set(doc["properties"])


def _cql(http: httpx.Client, text: str, lang: str = "cql2-text") -> set[int]:
    return _ids(_items(http, limit=1000, **{"filter-lang": lang, "filter": text}))


def test_oapif_filter_cql2_text(http: httpx.Client, seed: Seed):
    """ets-ogcapi-features10 Part 3 /conf/filter/filter-param, /conf/features-filter/response and CQL2
    /conf/basic-cql2 (comparisons, AND/OR) + /conf/basic-spatial-functions (S_INTERSECTS) on detections."""
    a, b = seed.run_a, seed.run_b
    assert _cql(http, f"run_id={a}") == set(seed.ids[a])
    assert _cql(http, f"run_id={a} AND class='pit'") == {i for i in seed.ids[a] if seed.props[i]["cls"] == "pit"}
    assert _cql(http, f"run_id={a} AND confidence >= 0.7") == {
        i for i in seed.ids[a] if seed.props[i]["confidence"] >= 0.7}
    assert _cql(http, f"(run_id={a} AND confidence < 0.55) OR run_id={b}") == {
        i for i in seed.ids[a] if seed.props[i]["confidence"] < 0.55} | set(seed.ids[b])
    x0, y0, x1, y1 = BBOX_AB
    poly = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    assert _cql(http, f"S_INTERSECTS(geom,{poly})") >= _in_bbox(seed, BBOX_AB)
    assert _cql(http, f"run_id={a} AND S_INTERSECTS(geom,{poly})") == _in_bbox(seed, BBOX_AB, a)
    # filter and bbox together
    assert _ids(_items(http, limit=100, bbox=",".join(map(str, BBOX_AB)), **{
        "filter-lang": "cql2-text", "filter": "class='pond'"})) == {
        i for i in _in_bbox(seed, BBOX_AB) if seed.props[i]["cls"] == "pond"}


def test_oapif_filter_invalid_is_400(http: httpx.Client):
    """ets-ogcapi-features10 Part 3 /conf/filter/filter-param (invalid filter): 400, not 500."""
    assert _items(http, **{"filter-lang": "cql2-text", "filter": "run_id = = 3"}).status_code == 400
    assert _items(http, **{"filter-lang": "cql2-text", "filter": "confidence > 'abc'"}).status_code == 400
    assert _items(http, **{"filter-lang": "xyz", "filter": "run_id=1"}).status_code == 400


def test_oapif_next_links_keep_bbox_and_filter(http: httpx.Client, seed: Seed):
    """``next`` links carry ``bbox`` and ``filter``: every page stays spatial and filtered."""
    page = _items(http, limit=2, bbox=",".join(map(str, BBOX_AB)), **{
        "filter-lang": "cql2-text", "filter": f"run_id={seed.run_a}"}).json()
    seen = [int(f["id"]) for f in page["features"]]
    while (nxt := _rels(page["links"]).get("next")) is not None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt["href"]).query)
        assert "bbox" in query and "filter" in query, nxt["href"]
        page = http.get(nxt["href"]).json()
        seen += [int(f["id"]) for f in page["features"]]
    assert sorted(seen) == sorted(_in_bbox(seed, BBOX_AB, seed.run_a))


def _ogr(*args: str) -> str:
    if OGRINFO is None:
        pytest.skip("ogrinfo not installed (apt-get install gdal-bin)")
    res = subprocess.run([OGRINFO, "-ro", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _ogr_ids(out: str, key: str = "id") -> list[int]:
    """Feature ids from ``ogrinfo`` feature dumps (``OGRFeature(layer):<fid>`` or an ``id`` field)."""
    found = re.findall(rf"^\s+{key} \(\w+\) = (\d+)$", out, flags=re.M)
    return [int(i) for i in found]


def test_oapif_gdal_paging_with_spatial_filter_stays_spatial(server: Server, seed: Seed):
    """GDAL's OAPIF driver (QGIS) with ``-spat`` and 2 features per page reads exactly the bbox's features
    (its next links keep bbox: it does not walk the whole table)."""
    out = _ogr("-al", "-oo", "PAGE_SIZE=2", "-spat", *map(str, BBOX_AB), f"OAPIF:{server.url}/ogcapi",
               "detections")
    assert len(re.findall(r"^OGRFeature\(", out, flags=re.M)) == len(_in_bbox(seed, BBOX_AB)), out[-2000:]
    out = _ogr("-so", "-oo", "PAGE_SIZE=2", "-spat", *map(str, BBOX_AB), f"OAPIF:{server.url}/ogcapi",
               "detections")
    assert re.search(r"Feature Count: (\d+)", out).group(1) == str(len(_in_bbox(seed, BBOX_AB)))  # type: ignore[union-attr]


def test_oapif_gdal_attribute_filter(server: Server, seed: Seed):
    """GDAL's OAPIF driver turns ``-where`` into a server-side filter: the run's features only."""
    out = _ogr("-al", "-where", f"run_id = {seed.run_b}", f"OAPIF:{server.url}/ogcapi", "detections")
    assert len(re.findall(r"^OGRFeature\(", out, flags=re.M)) == len(seed.ids[seed.run_b]), out[-2000:]


# == WFS 2.0 (ets-wfs20) ========================================================================================

WFS = "http://www.opengis.net/wfs/2.0"
GML32 = "http://www.opengis.net/gml/3.2"
FES = "http://www.opengis.net/fes/2.0"


def _wfs(http: httpx.Client, **params: str) -> httpx.Response:
    return http.get("/ows", params={"SERVICE": "WFS", "VERSION": "2.0.0", **params})


def test_wfs_capabilities_operations(server: Server):
    """ets-wfs20 basic.GetCapabilitiesTests (Simple WFS: GetCapabilities, DescribeFeatureType,
    ListStoredQueries, DescribeStoredQueries, GetFeature with the GetFeatureById stored query), via OWSLib."""
    from owslib.wfs import WebFeatureService

    wfs = WebFeatureService(f"{server.url}/ows", version="2.0.0")
    ops = {op.name for op in wfs.operations}
    assert {"GetCapabilities", "DescribeFeatureType", "GetFeature", "ListStoredQueries",
            "DescribeStoredQueries"} <= ops, ops
    names = {n.split(":")[-1] for n in wfs.contents}
    assert {"detections", "mining_sites", "events"} <= names
    stored = {q.id for q in wfs.storedqueries}
    assert "urn:ogc:def:query:OGC-WFS::GetFeatureById" in stored, stored


def test_wfs_describe_feature_type(http: httpx.Client):
    """ets-wfs20 DescribeFeatureTypeTests.describeAllFeatureTypes / describeFeatureType: an XML Schema with the
    feature type's element and its properties."""
    resp = _wfs(http, REQUEST="DescribeFeatureType", TYPENAMES="detections")
    assert resp.status_code == 200 and "xml" in resp.headers["content-type"]
    doc = etree.fromstring(resp.content)
    assert etree.QName(doc).localname == "schema"
    names = set(doc.xpath("//*[local-name()='element']/@name"))
    assert {"detections", "run_id", "class", "confidence", "observed_at"} <= names, names


def test_wfs_hits_number_matched(http: httpx.Client, seed: Seed):
    """ets-wfs20 GetFeatureTests / ResultTypeHits: resultType=hits answers an empty wfs:FeatureCollection with
    numberMatched (here of a FILTER on run_id)."""
    resp = _wfs(http, REQUEST="GetFeature", TYPENAMES="detections", RESULTTYPE="hits",
                FILTER=wfs_run_filter(seed.run_a))
    assert resp.status_code == 200, resp.text[:500]
    doc = etree.fromstring(resp.content)
    assert doc.tag == f"{{{WFS}}}FeatureCollection"
    assert doc.get("numberMatched") == str(len(seed.ids[seed.run_a])) and doc.get("numberReturned") == "0"


def test_wfs_paging_startindex_count_next(http: httpx.Client, seed: Seed):
    """ets-wfs20 paging.PagingTests (Response paging): COUNT limits a page, STARTINDEX moves it, a page that is
    not the last has a ``next`` attribute whose URL returns the following page."""
    flt = wfs_run_filter(seed.run_a)

    def ids(doc) -> list[int]:  # noqa: ANN001
        return [int(i.rsplit(".", 1)[1]) for i in doc.xpath(
            f"//*[local-name()='detections']/@*[namespace-uri()='{GML32}' and local-name()='id']")]

    resp = _wfs(http, REQUEST="GetFeature", TYPENAMES="detections", COUNT="5", STARTINDEX="0", FILTER=flt,
                SORTBY="id ASC")
    assert resp.status_code == 200, resp.text[:500]
    doc = etree.fromstring(resp.content)
    assert doc.get("numberReturned") == "5" and doc.get("numberMatched") == "12" and doc.get("next"), doc.attrib
    nxt = etree.fromstring(http.get(doc.get("next")).content)
    assert nxt.get("numberReturned") == "5" and nxt.get("next") and nxt.get("previous")
    last = etree.fromstring(_wfs(http, REQUEST="GetFeature", TYPENAMES="detections", COUNT="5", STARTINDEX="10",
                                 FILTER=flt, SORTBY="id ASC").content)
    assert last.get("numberReturned") == "2" and not last.get("next")
    pages = ids(doc) + ids(nxt) + ids(last)
    assert sorted(pages) == sorted(seed.ids[seed.run_a]), pages


def test_wfs_stored_query_get_feature_by_id(http: httpx.Client, seed: Seed):
    """ets-wfs20 getfeaturebyid.GetFeatureByIdTests: the mandatory stored query returns the one feature (not in a
    collection); an unknown id is an exception (404 / NotFound)."""
    fid = seed.ids[seed.run_b][1]
    resp = _wfs(http, REQUEST="GetFeature", STOREDQUERY_ID="urn:ogc:def:query:OGC-WFS::GetFeatureById",
                ID=f"detections.{fid}")
    assert resp.status_code == 200, resp.text[:500]
    doc = etree.fromstring(resp.content)
    assert etree.QName(doc).localname == "detections", doc.tag
    assert doc.get(f"{{{GML32}}}id") == f"detections.{fid}"
    bad = _wfs(http, REQUEST="GetFeature", STOREDQUERY_ID="urn:ogc:def:query:OGC-WFS::GetFeatureById",
               ID="detections.999999999")
    assert bad.status_code in (400, 404) and b"Exception" in bad.content


def test_wfs_gml32_and_geojson_output(http: httpx.Client, seed: Seed):
    """ets-wfs20 GetFeatureTests.getFeatureAsGML32 (GML 3.2 is the default output) and the GeoJSON output format
    listed in the capabilities; both carry the same features for a FILTER on run_id."""
    flt = wfs_run_filter(seed.run_b)
    gml = _wfs(http, REQUEST="GetFeature", TYPENAMES="detections", FILTER=flt)
    assert gml.status_code == 200 and "gml" in gml.headers["content-type"].lower() or "xml" in gml.headers[
        "content-type"]
    doc = etree.fromstring(gml.content)
    assert doc.xpath("//gml:MultiSurface | //gml:Polygon", namespaces={"gml": GML32}), gml.text[:500]
    gml_ids = {int(i.split(".")[-1]) for i in doc.xpath(f"//*[local-name()='detections']/@*[namespace-uri()="
                                                         f"'{GML32}' and local-name()='id']")}
    assert gml_ids == set(seed.ids[seed.run_b])
    geo = _wfs(http, REQUEST="GetFeature", TYPENAMES="detections", FILTER=flt, OUTPUTFORMAT="geojson")
    assert geo.status_code == 200 and "json" in geo.headers["content-type"]
    assert {f["properties"]["id"] for f in geo.json()["features"]} == set(seed.ids[seed.run_b])


def test_wfs_owslib_getfeature_filter(server: Server, seed: Seed):
    """ets-wfs20 filter.ComparisonOperatorTests (PropertyIsEqualTo) through OWSLib's WFS 2.0 client."""
    from owslib.wfs import WebFeatureService

    wfs = WebFeatureService(f"{server.url}/ows", version="2.0.0")
    # OWSLib sends a FES filter only in a POST GetFeature (its GET puts it in a QUERY parameter no server reads)
    resp = wfs.getfeature(typename=["detections"], filter=wfs_run_filter(seed.run_a), outputFormat="geojson",
                          method="Post")
    assert {f["properties"]["id"] for f in json.loads(resp.read())["features"]} == set(seed.ids[seed.run_a])


def test_wfs_ogrinfo_spatial_filter(server: Server, seed: Seed):
    """GDAL's WFS driver (WFS 2.0, paged): ``-spat`` (a BBOX filter sent to the server) reads the bbox's features."""
    out = _ogr("-al", "-spat", *map(str, BBOX_AB), f"WFS:{server.url}/ows?", "detections")
    assert sorted(_ogr_ids(out)) == sorted(_in_bbox(seed, BBOX_AB)), out[-2000:]


def test_wfs_bad_request_exception_report(http: httpx.Client):
    """ets-wfs20 (OWS Common exception handling): an unknown type name is an ows:ExceptionReport, status < 500."""
    resp = _wfs(http, REQUEST="GetFeature", TYPENAMES="no_such_type")
    assert 400 <= resp.status_code < 500 or resp.status_code == 200
    assert b"ExceptionReport" in resp.content


# == WMS 1.3.0 (ets-wms13) ======================================================================================

def _wms(http: httpx.Client, **params: str) -> httpx.Response:
    return http.get("/ows", params={"SERVICE": "WMS", "VERSION": "1.3.0", **params})


def test_wms_capabilities(server: Server):
    """ets-wms13 getcapabilities (Basic WMS): every layer named, CRS list with EPSG:4326 and EPSG:3857, a TIME
    dimension on the time-enabled layers, GetMap/GetFeatureInfo formats (through OWSLib)."""
    from owslib.wms import WebMapService

    wms = WebMapService(f"{server.url}/ows", version="1.3.0")
    assert {"detections", "mining_sites", "events", "site_history", "oblasts"} <= set(wms.contents)
    det = wms["detections"]
    assert {"EPSG:4326", "EPSG:3857"} <= set(det.crsOptions), det.crsOptions
    assert det.queryable
    # the TIME extent (first/last/P1D, or a list of dates) spans both seeded days
    first, last = det.timepositions[0].split("/"), det.timepositions[-1].split("/")
    start, end = first[0], (last[1] if len(last) == 3 else last[-1])
    assert start[:10] <= "2018-09-12" and end[:10] >= "2018-09-25", det.timepositions
    methods = {op.name: op for op in wms.operations}
    assert {"GetCapabilities", "GetMap", "GetFeatureInfo"} <= set(methods)
    assert "image/png" in methods["GetMap"].formatOptions
    info = set(methods["GetFeatureInfo"].formatOptions)
    assert {"text/html", "application/vnd.ogc.gml", "application/json"} <= info, info
    # the root layer carries its EPSG:4326 BoundingBox (lat/lon axis order) besides EX_GeographicBoundingBox
    ns = {"wms": "http://www.opengis.net/wms"}
    root = ElementTree.fromstring(wms.getServiceXML()).find("wms:Capability/wms:Layer", ns)
    assert root is not None and root.find("wms:BoundingBox[@CRS='EPSG:4326']", ns) is not None


def _alpha(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:400]
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[:, :, 3]


def _getmap(http: httpx.Client, crs: str, bbox: tuple[float, ...], **extra: str) -> np.ndarray:
    resp = _wms(http, REQUEST="GetMap", LAYERS="detections", STYLES="", CRS=crs, BBOX=",".join(map(str, bbox)),
                WIDTH="200", HEIGHT="200", FORMAT="image/png", TRANSPARENT="TRUE", **extra)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", resp.text[:400]
    return _alpha(resp.content)


# the window: 0.01° around the first square of run A (lower left quarter holds it)
WIN = (X0 - 0.0005, Y0 - 0.0005, X0 + 0.0095, Y0 + 0.0095)


def _pixel(bbox: tuple[float, float, float, float], x: float, y: float, size: int = 200) -> tuple[int, int]:
    """(row, col) of (x, y) in a size x size image of bbox (x = easting/lon, y = northing/lat)."""
    return int((bbox[3] - y) / (bbox[3] - bbox[1]) * size), int((x - bbox[0]) / (bbox[2] - bbox[0]) * size)


def test_wms_getmap_epsg4326_lat_lon_axis_order(http: httpx.Client):
    """ets-wms13 getmap.GetMapRequest (BBOX in the CRS's axis order): EPSG:4326 in WMS 1.3.0 is lat,lon; the square
    at (X0, Y0) is drawn where lat/lon says, and the swapped (lon,lat) bbox draws nothing of it."""
    day = {"TIME": DAY_A.date().isoformat()}
    img = _getmap(http, "EPSG:4326", (WIN[1], WIN[0], WIN[3], WIN[2]), **day)
    row, col = _pixel(WIN, X0 + SIZE / 2, Y0 + SIZE / 2)
    assert img[row, col] > 0
    assert img[_pixel(WIN, X0 + CELL / 2 + SIZE / 2, Y0 + SIZE / 2 + CELL / 2)] == 0  # the gap between squares
    swapped = _getmap(http, "EPSG:4326", WIN, **day)
    assert swapped.max() == 0


def test_wms_getmap_epsg3857_owslib(server: Server):
    """ets-wms13 getmap.GetMapRequest in EPSG:3857 through OWSLib (x/y order): the square is drawn."""
    from publish_helpers import getmap

    to = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    b3857 = (*to.transform(WIN[0], WIN[1]), *to.transform(WIN[2], WIN[3]))
    img = getmap(server.url, ["detections"], b3857, size=(200, 200), time_=DAY_A.date().isoformat())[:, :, 3]
    x, y = to.transform(X0 + SIZE / 2, Y0 + SIZE / 2)
    assert img[_pixel(b3857, x, y)] > 0


def test_wms_time_changes_the_map(http: httpx.Client):
    """ets-wms13 dimensions (TIME): TIME selects the day; a day without detections draws nothing there."""
    bbox = (WIN[1], WIN[0], Y0 + 5 * CELL + 0.001, WIN[2])
    a = _getmap(http, "EPSG:4326", bbox, TIME=DAY_A.date().isoformat())
    b = _getmap(http, "EPSG:4326", bbox, TIME=DAY_B.date().isoformat())
    none = _getmap(http, "EPSG:4326", bbox, TIME="2018-09-18")
    assert a.max() > 0 and b.max() > 0 and not np.array_equal(a > 0, b > 0)
    assert none.max() == 0


def _feature_info(http: httpx.Client, fmt: str) -> httpx.Response:
    bbox = (WIN[1], WIN[0], WIN[3], WIN[2])
    row, col = _pixel(WIN, X0 + SIZE / 2, Y0 + SIZE / 2)
    return _wms(http, REQUEST="GetFeatureInfo", LAYERS="detections", QUERY_LAYERS="detections", STYLES="",
                CRS="EPSG:4326", BBOX=",".join(map(str, bbox)), WIDTH="200", HEIGHT="200", FORMAT="image/png",
                I=str(col), J=str(row), INFO_FORMAT=fmt, FEATURE_COUNT="5", TIME=DAY_A.date().isoformat())


def test_wms_getfeatureinfo_formats(http: httpx.Client, seed: Seed):
    """ets-wms13 getfeatureinfo.GetFeatureInfoRequest (each advertised INFO_FORMAT): text/html, GeoJSON
    (application/json) and GML (application/vnd.ogc.gml) name the detection under the pixel."""
    fid = seed.ids[seed.run_a][0]
    html = _feature_info(http, "text/html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html"), html.text[:300]
    assert f"<td>{fid}</td>" in html.text
    geo = _feature_info(http, "application/json")
    assert geo.status_code == 200 and "json" in geo.headers["content-type"], geo.text[:300]
    feats = geo.json()["features"]
    assert [f["properties"]["id"] for f in feats] == [fid], feats
    gml = _feature_info(http, "application/vnd.ogc.gml")
    assert gml.status_code == 200 and "gml" in gml.headers["content-type"], gml.text[:300]
    doc = etree.fromstring(gml.content)
    assert [e.text for e in doc.iter("id")] == [str(fid)], gml.text[:800]


def test_wms_get_legend_graphic(http: httpx.Client):
    """ets-wms13 (SLD 1.1 profile) GetLegendGraphic: a PNG legend of the layer's classes."""
    resp = _wms(http, REQUEST="GetLegendGraphic", LAYER="detections", FORMAT="image/png", SLD_VERSION="1.1.0")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", resp.text[:300]
    img = Image.open(io.BytesIO(resp.content))
    assert img.width > 10 and img.height > 10


@pytest.mark.parametrize(("case", "params", "code"), [
    ("LayerNotDefined", {"LAYERS": "no_such_layer"}, "LayerNotDefined"),
    ("InvalidCRS", {"CRS": "EPSG:99999"}, "InvalidCRS"),
    ("InvalidFormat", {"FORMAT": "image/nope"}, "InvalidFormat"),
    ("StyleNotDefined", {"STYLES": "no_such_style"}, "StyleNotDefined"),
])
def test_wms_exceptions_are_xml(http: httpx.Client, case: str, params: dict, code: str):
    """ets-wms13 getmap.GetMapRequest exception tests: bad parameters give a ServiceExceptionReport (XML, the
    default EXCEPTIONS=XML) with the OGC exception code."""
    base = {"REQUEST": "GetMap", "LAYERS": "detections", "STYLES": "", "CRS": "EPSG:4326",
            "BBOX": ",".join(map(str, (WIN[1], WIN[0], WIN[3], WIN[2]))), "WIDTH": "64", "HEIGHT": "64",
            "FORMAT": "image/png", **params}
    resp = _wms(http, **base)
    assert resp.status_code < 500 and "xml" in resp.headers["content-type"], (case, resp.headers, resp.text[:300])
    doc = etree.fromstring(resp.content)
    assert etree.QName(doc).localname == "ServiceExceptionReport", resp.text[:300]
    assert code in {e.get("code") for e in doc.iter("{*}ServiceException")}, resp.text[:400]


# == pure helpers of the fixes ==================================================================================

def test_cql2_spatial_function_names_become_ecql_outside_literals():
    from urllib.parse import parse_qs

    from amberwatch.publish.ogcapi import cql2_lang

    text = "s_intersects(geom,POINT(1 2)) AND name='S_WITHIN(x)' OR S_Within (geom, POINT(3 4))"
    query = urllib.parse.urlencode({"filter-lang": "cql2-text", "filter": text, "limit": "5"}).encode()
    out = parse_qs(cql2_lang({"type": "http", "query_string": query})["query_string"].decode())
    assert out["filter"] == ["INTERSECTS(geom,POINT(1 2)) AND name='S_WITHIN(x)' OR WITHIN (geom, POINT(3 4))"]
    assert out["filter-lang"] == ["cql-text"] and out["limit"] == ["5"]
    plain = b"f=json&limit=2"
    assert cql2_lang({"type": "http", "query_string": plain})["query_string"] == plain


def test_crs84_geometry_literals_are_labelled_epsg_4326():
    from pygeoapi.util import modify_pygeofilter
    from pygeofilter.parsers.ecql import parse

    from amberwatch.publish.pgprovider import relabel_crs84

    ast = modify_pygeofilter(parse("run_id=3 AND INTERSECTS(geom,POINT(30.1 50.9))"), filter_crs_uri=CRS84,
                             storage_crs_uri=CRS84, geometry_column_name="geom")
    assert "OGC::CRS84" in repr(ast)
    fixed = relabel_crs84(ast)
    assert "OGC::CRS84" not in repr(fixed) and "EPSG::4326" in repr(fixed) and "(30.1, 50.9)" in repr(fixed)
