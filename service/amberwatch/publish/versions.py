"""``/api/versions``: the published runs (versions of the detections) as a STAC Collection with, per version,
the filtered URLs of the one fixed ``detections`` layer (WMS ``DIM_RUN``, WFS 2.0 ``FILTER``, OGC API Features
``run_id=`` and CQL2) — so 300 runs do not need 300 layers. The latest ``published_run_layers`` runs also link their
compatibility layer ``run_<id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine

from amberwatch.publish.catalog import REGION_EXTENT, run_view_name
from amberwatch.publish.layers import SERVICE
from amberwatch.store.queries import catalog as q

MAX_LIMIT = 1000
STAC_VERSION = "1.0.0"
VERSION_EXTENSION = "https://stac-extensions.github.io/version/v1.2.0/schema.json"


def wfs_run_filter(run_id: int) -> str:
    """A FES 2.0 filter selecting one run (the WFS 2.0 ``FILTER`` parameter)."""
    return (
        '<fes:Filter xmlns:fes="http://www.opengis.net/fes/2.0"><fes:PropertyIsEqualTo>'
        f"<fes:ValueReference>run_id</fes:ValueReference><fes:Literal>{int(run_id)}</fes:Literal>"
        "</fes:PropertyIsEqualTo></fes:Filter>"
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def version_links(base_url: str, run_id: int, acquired: datetime | None, compat_layer: bool) -> list[dict[str, str]]:
    ows, ogcapi = f"{base_url}/ows", f"{base_url}/ogcapi"
    wms = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "detections", "STYLES": "",
           "CRS": "EPSG:4326", "BBOX": f"{REGION_EXTENT[1]},{REGION_EXTENT[0]},{REGION_EXTENT[3]},{REGION_EXTENT[2]}",
           "WIDTH": "1024", "HEIGHT": "512", "FORMAT": "image/png", "TRANSPARENT": "TRUE", "DIM_RUN": str(run_id)}
    if acquired is not None:  # the layer's TIME default is the latest date: ask for the run's own date
        wms["TIME"] = acquired.date().isoformat()
    wfs = {"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature", "TYPENAMES": "detections",
           "OUTPUTFORMAT": "geojson", "FILTER": wfs_run_filter(run_id)}
    links = [
        {"rel": "ogcapi-features", "type": "application/geo+json", "title": "OGC API Features items of this run",
         "href": f"{ogcapi}/collections/detections/items?f=json&run_id={run_id}"},
        {"rel": "ogcapi-features-cql2", "type": "application/geo+json", "title": "The same with a CQL2 filter",
         "href": f"{ogcapi}/collections/detections/items?f=json&filter-lang=cql2-text&filter="
                 + quote(f"run_id={run_id}")},
        {"rel": "wfs", "type": "application/json", "title": "WFS 2.0 GetFeature (GeoJSON) with a FILTER on run_id",
         "href": f"{ows}?{urlencode(wfs)}"},
        {"rel": "wms", "type": "image/png", "title": "WMS 1.3.0 GetMap of this run (DIM_RUN)",
         "href": f"{ows}?{urlencode(wms)}"},
    ]
    if compat_layer:
        name = run_view_name(run_id)
        links.append({"rel": "alternate", "type": "application/geo+json",
                      "title": f"Compatibility layer {name} (kept for the latest runs only)",
                      "href": f"{ogcapi}/collections/{name}/items?f=json"})
    return links


def versions_document(engine: Engine, base_url: str, run_layers: int, limit: int = 100,
                      offset: int = 0) -> dict[str, Any]:
    """The STAC Collection of the published versions (newest first), ``limit``/``offset`` paged."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    with engine.connect() as conn:
        total = q.count_published_runs(conn)
        rows = q.published_versions(conn, limit, offset)
        latest = q.published_versions(conn, max(run_layers, 1), 0) if run_layers > 0 else []
    compat = {row[0] for row in latest[:run_layers]}
    self_href = f"{base_url}/api/versions?limit={limit}&offset={offset}"
    versions = []
    for run_id, model, published_at, n_detections, acquired in rows:
        versions.append({
            "id": str(run_id),
            "run_id": run_id,
            "model_version": model,
            "published_at": _iso(published_at),
            "acquired": _iso(acquired),
            "n_detections": n_detections,
            "links": version_links(base_url, run_id, acquired, run_id in compat),
        })
    links = [
        {"rel": "self", "type": "application/json", "href": self_href},
        {"rel": "root", "type": "application/json", "href": f"{base_url}/api/versions"},
    ]
    if latest or rows:
        newest = latest[0][0] if latest else rows[0][0]
        links.append({"rel": "latest-version", "type": "application/geo+json",
                      "href": f"{base_url}/ogcapi/collections/detections/items?f=json&run_id={newest}"})
    if offset + len(rows) < total:
        links.append({"rel": "next", "type": "application/json",
                      "href": f"{base_url}/api/versions?limit={limit}&offset={offset + limit}"})
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [VERSION_EXTENSION],
        "id": "amberwatch-detections-versions",
        "title": "AmberWatch detections: versions (published runs)",
        "description": (
            "Every published detection run is one version of the detections. All versions are in the one "
            "'detections' layer; each version below links its filtered WMS, WFS and OGC API Features URLs."
        ),
        "license": "CC-BY-4.0",
        "keywords": SERVICE["keywords"],
        "extent": {"spatial": {"bbox": [list(REGION_EXTENT)]}, "temporal": {"interval": [[None, None]]}},
        "version": str(latest[0][0]) if latest else (str(rows[0][0]) if rows else None),
        "numberMatched": total,
        "numberReturned": len(versions),
        "versions": versions,
        "links": links,
    }
