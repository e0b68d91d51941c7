"""Vector tiles (Mapbox Vector Tile, EPSG:3857) of the monitoring and reference layers, from PostGIS ``ST_AsMVT``.

``GET /tiles/{layer}/{z}/{x}/{y}.pbf[?at=YYYY-MM-DD]``: ``mining_sites`` (tile layers ``mining_sites`` and
``site_points``, with the validation status), ``detections``, ``oblasts``, ``raions``, ``hromadas``,
``protected_areas`` and ``reports`` (approved crowd reports, public fields only). A z/x/y outside the
tile matrix or a bad ``at`` is a 400, an unknown layer a 404; an empty tile is a 204.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from amberwatch.errors import InputError, NotFoundError
from amberwatch.httpcache import etag_matches
from amberwatch.store.queries.tiles import LAYERS, MAX_ZOOM
from amberwatch.usecases import portal as portal_uc
from amberwatch.web.deps import StoreDep

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"


def _int(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 8):
        raise InputError(f"{name}={value[:20]!r}: expected a whole number >= 0")
    return int(value)


@router.get("/tiles/{layer}/{z}/{x}/{y}.pbf", response_class=Response,
            responses={200: {"content": {MVT: {}}, "description": "A Mapbox Vector Tile."},
                       204: {"description": "Nothing in this tile."}})
async def vector_tile(
    request: Request, store: StoreDep,
    layer: Annotated[str, Path(description=f"One of {', '.join(LAYERS)}.")],
    z: Annotated[str, Path(description=f"Zoom, 0 to {MAX_ZOOM}.")],
    x: Annotated[str, Path(description="Column, 0 to 2^z - 1.")],
    y: Annotated[str, Path(description="Row, 0 to 2^z - 1 (XYZ, north first).")],
    at: Annotated[str | None, Query(description="State at the end of this day (ISO date): sites first seen by "
                                    "then with their status then; detections observed by then.")] = None,
) -> Response:
    if layer not in LAYERS:
        raise NotFoundError(f"unknown tile layer {layer[:40]!r}: use one of {', '.join(LAYERS)}")
    zi, xi, yi = _int("z", z), _int("x", x), _int("y", y)
    day = portal_uc.parse_at(at)
    data = await run_in_threadpool(portal_uc.tile, store, layer, zi, xi, yi, day)
    etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
    headers = {"Cache-Control": "public, max-age=60", "ETag": etag, "Access-Control-Allow-Origin": "*"}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    if not data:
        return Response(status_code=204, headers=headers)
    return Response(data, media_type=MVT, headers=headers)
