"""REST API for monitoring: sites, their history, events (JSON and Atom), statistics, tracking a scene series.

Included by the app under ``/api``. Filter values are parsed here so a bad value is a 400 with a clear message.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import text

from amberwatch.errors import InputError, NotFoundError
from amberwatch.track.feed import atom_feed
from amberwatch.track.rules import STATUSES
from amberwatch.track.stats import check_format, compute_stats, stats_csv

router = APIRouter(tags=["monitoring"])
MAX_LIMIT = 1000

SITE_COLUMNS = """s.id as site_id, s.status, s.status_since, s.first_seen, s.last_seen, s.last_observed, s.area_ha,
    s.max_area_ha, s.pit_area_ha, s.pond_area_ha, s.growth_rate_ha_yr, s.disturbance, s.disturbance_score,
    s.confidence, s.n_observations, s.first_run_id, s.last_run_id, s.oblast, s.raion, s.hromada, s.protected_areas,
    s.in_protected_area, s.protected_distance_m, s.merged_into_id, s.updated_at"""
EVENT_COLUMNS = """e.id as event_id, e.site_id, e.observed_at, e.from_status, e.to_status, e.area_ha, e.run_id,
    e.created_at, s.oblast, s.raion, s.hromada, s.protected_areas"""


# -- filter parsing ------------------------------------------------------------------------------
def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None or value == "":
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError as err:
        raise InputError(f"bbox={value!r}: expected four numbers minlon,minlat,maxlon,maxlat") from err
    if len(parts) != 4:
        raise InputError(f"bbox={value!r}: expected four numbers minlon,minlat,maxlon,maxlat, got {len(parts)}")
    x0, y0, x1, y1 = parts
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise InputError(f"bbox={value!r}: need -180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90")
    return x0, y0, x1, y1


def parse_time(name: str, value: str | None, end: bool = False) -> datetime | None:
    """An ISO date (whole day; ``until`` includes it) or datetime (UTC when no zone is given)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            t = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return t.replace(hour=23, minute=59, second=59, microsecond=999999) if end else t
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise InputError(f"{name}={value!r}: expected an ISO date (2020-06-15) or datetime (2020-06-15T10:00:00Z)") \
            from err
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_statuses(name: str, value: str | None) -> list[str] | None:
    if value is None or value == "":
        return None
    statuses = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in statuses if v not in STATUSES]
    if bad or not statuses:
        raise InputError(f"{name}={value!r}: unknown status {', '.join(bad) or '(empty)'}; "
                         f"use one or more of {', '.join(STATUSES)} separated by commas")
    return statuses


def parse_number(name: str, value: str | None, minimum: float = 0.0) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError as err:
        raise InputError(f"{name}={value!r}: expected a number") from err
    if number != number or number < minimum:
        raise InputError(f"{name}={value!r}: must be >= {minimum:g}")
    return number


def parse_page(limit: str | None, offset: str | None, default: int = 100) -> tuple[int, int]:
    try:
        lim = default if limit in (None, "") else int(limit)
        off = 0 if offset in (None, "") else int(offset)
    except ValueError as err:
        raise InputError(f"limit={limit!r}, offset={offset!r}: expected whole numbers") from err
    if not 1 <= lim <= MAX_LIMIT:
        raise InputError(f"limit={lim}: must be between 1 and {MAX_LIMIT}")
    if off < 0:
        raise InputError(f"offset={off}: must be >= 0")
    return lim, off


def _base_url(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    if settings is not None and settings.public_url:
        return settings.base_url
    return str(request.base_url).rstrip("/")


def _store(request: Request):  # noqa: ANN202
    return request.app.state.store


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _feature(row: dict, geom_key: str = "geometry", id_key: str = "site_id") -> dict:
    props = _jsonable({k: v for k, v in row.items() if k != geom_key})
    geometry = json.loads(row[geom_key]) if row.get(geom_key) else None
    return {"type": "Feature", "id": row[id_key], "geometry": geometry, "properties": props}


# -- sites ---------------------------------------------------------------------------------------
@router.get("/sites")
def list_sites(request: Request, status: str | None = None, bbox: str | None = None, oblast: str | None = None,
               raion: str | None = None, limit: str | None = None, offset: str | None = None) -> dict:
    """Live sites as a GeoJSON FeatureCollection (geometry = last seen extent). Filters: ``status`` (comma list),
    ``bbox`` (minlon,minlat,maxlon,maxlat), ``oblast``/``raion`` (name, case-insensitive)."""
    statuses = parse_statuses("status", status)
    box = parse_bbox(bbox)
    lim, off = parse_page(limit, offset)
    where, params = ["s.merged_into_id is null"], {"limit": lim, "offset": off}
    if statuses:
        where.append("s.status = any(:statuses)")
        params["statuses"] = statuses
    if box:
        where.append("ST_Intersects(s.max_geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
    for name, value in (("oblast", oblast), ("raion", raion)):
        if value:
            where.append(f"lower(s.{name}) = lower(:{name})")
            params[name] = value
    sql_where = " and ".join(where)
    with _store(request).session() as session:
        total = session.scalar(text(f"select count(*) from sites s where {sql_where}"), params)
        rows = session.execute(text(
            f"select {SITE_COLUMNS}, ST_AsGeoJSON(s.geom, 7) as geometry from sites s where {sql_where}"
            " order by s.id limit :limit offset :offset"), params).mappings().all()
    features = [_feature(dict(r)) for r in rows]
    return {"type": "FeatureCollection", "numberMatched": total, "numberReturned": len(features),
            "features": features}


@router.get("/sites/{site_id}")
def get_site(request: Request, site_id: int) -> dict:
    """One site (GeoJSON Feature) with ``observations`` (area per date) and ``events``; a merged site carries
    ``merged_into_id``."""
    with _store(request).session() as session:
        row = session.execute(text(
            f"select {SITE_COLUMNS}, ST_AsGeoJSON(s.geom, 7) as geometry, ST_AsGeoJSON(s.max_geom, 7) as max_extent"
            " from sites s where s.id = :id"), {"id": site_id}).mappings().first()
        if row is None:
            raise NotFoundError(f"site {site_id} not found")
        observations = session.execute(text(
            "select observed_at, run_id, detected, status, area_ha, pit_area_ha, pond_area_ha, cumulative_area_ha"
            " from site_observations where site_id = :id order by observed_at"), {"id": site_id}).mappings().all()
        events = session.execute(text(
            "select id as event_id, observed_at, from_status, to_status, area_ha, run_id, created_at from events"
            " where site_id = :id order by observed_at"), {"id": site_id}).mappings().all()
    data = dict(row)
    max_extent = data.pop("max_extent")
    feature = _feature(data)
    feature["properties"]["max_extent"] = json.loads(max_extent) if max_extent else None
    feature["properties"]["observations"] = [_jsonable(dict(o)) for o in observations]
    feature["properties"]["events"] = [_jsonable(dict(e)) for e in events]
    return feature


# -- events --------------------------------------------------------------------------------------
def _event_query(since: str | None, until: str | None, min_area_ha: str | None, status: str | None,
                 to_status: str | None, bbox: str | None, limit: str | None, offset: str | None,
                 default_limit: int = 100) -> tuple[str, dict]:
    t0, t1 = parse_time("since", since), parse_time("until", until, end=True)
    if t0 and t1 and t1 < t0:
        raise InputError(f"until={until!r} is before since={since!r}")
    min_area = parse_number("min_area_ha", min_area_ha)
    statuses = parse_statuses("to_status" if to_status else "status", to_status or status)
    box = parse_bbox(bbox)
    lim, off = parse_page(limit, offset, default_limit)
    where, params = ["s.merged_into_id is null"], {"limit": lim, "offset": off}
    if t0:
        where.append("e.observed_at >= :t0")
        params["t0"] = t0
    if t1:
        where.append("e.observed_at <= :t1")
        params["t1"] = t1
    if min_area is not None:
        where.append("e.area_ha >= :min_area")
        params["min_area"] = min_area
    if statuses:
        where.append("e.to_status = any(:statuses)")
        params["statuses"] = statuses
    if box:
        where.append("ST_Intersects(e.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
    return " and ".join(where), params


def _events(request: Request, where: str, params: dict, order: str) -> tuple[int, list[dict]]:
    with _store(request).session() as session:
        total = session.scalar(text(f"select count(*) from events e join sites s on s.id = e.site_id where {where}"),
                               params)
        rows = session.execute(text(
            f"select {EVENT_COLUMNS}, ST_AsGeoJSON(e.geom, 7) as geometry from events e"
            f" join sites s on s.id = e.site_id where {where} order by {order} limit :limit offset :offset"),
            params).mappings().all()
    return total, [dict(r) for r in rows]


@router.get("/events")
def list_events(request: Request, since: str | None = None, until: str | None = None, min_area_ha: str | None = None,
                status: str | None = None, to_status: str | None = None, bbox: str | None = None,
                limit: str | None = None, offset: str | None = None) -> dict:
    """Status changes of sites as a GeoJSON FeatureCollection (point = the site at that date), oldest first.
    Filters: ``since``/``until`` (observation date), ``min_area_ha``, ``status``/``to_status`` (new status),
    ``bbox``; ``limit``/``offset`` page."""
    where, params = _event_query(since, until, min_area_ha, status, to_status, bbox, limit, offset)
    total, rows = _events(request, where, params, "e.observed_at, e.id")
    base = _base_url(request)
    features = []
    for r in rows:
        f = _feature(r, id_key="event_id")
        f["properties"]["site_url"] = f"{base}/api/sites/{r['site_id']}"
        features.append(f)
    return {"type": "FeatureCollection", "numberMatched": total, "numberReturned": len(features),
            "features": features}


@router.get("/events.atom", response_class=Response)
def events_atom(request: Request, since: str | None = None, until: str | None = None, min_area_ha: str | None = None,
                status: str | None = None, to_status: str | None = None, bbox: str | None = None,
                limit: str | None = None, offset: str | None = None) -> Response:
    """The events as an Atom feed (newest recorded first, 100 by default), one entry per event linking the site."""
    where, params = _event_query(since, until, min_area_ha, status, to_status, bbox, limit, offset)
    _, rows = _events(request, where, params, "e.created_at desc, e.id desc")
    base = _base_url(request)
    self_url = str(request.url)
    return Response(atom_feed(rows, base, self_url), media_type="application/atom+xml; charset=utf-8")


# -- statistics ----------------------------------------------------------------------------------
@router.get("/stats", response_model=None)
def get_stats(request: Request, by: str = "oblast", format: str = "json") -> dict | Response:  # noqa: A002
    """Disturbed area, new/abandoned sites and area inside protected areas by ``oblast``, ``raion`` or ``year``
    (``groups`` plus a ``total``); ``format=csv`` for CSV."""
    check_format(format)
    with _store(request).session() as session:
        stats = compute_stats(session, by)
    if format == "csv":
        return Response(stats_csv(stats), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="amberwatch-stats-{by}.csv"'})
    return stats


# -- tracking a series ---------------------------------------------------------------------------
class TrackIn(BaseModel):
    paths: list[str]
    model: str | None = None


@router.post("/track")
async def post_track(request: Request, body: TrackIn) -> dict:
    """Ingest server-side scenes (under the allowed roots), detect them in date order and update the sites.

    Runs synchronously (one detection per scene); returns the runs and the sites per status."""
    from amberwatch.track.cli import expand_scene_paths, track_summary
    from amberwatch.usecases import runs as pipeline
    from amberwatch.usecases import scenes as scenes_uc

    store, settings = _store(request), request.app.state.settings
    if not body.paths:
        raise InputError("paths: give at least one scene path")
    paths = expand_scene_paths([scenes_uc.check_allowed(Path(p), settings) for p in body.paths])

    def work() -> list[dict]:
        rows = [scenes_uc.ingest(store, settings, p) for p in paths]
        runs = []
        for row in sorted({r.id: r for r in rows}.values(), key=lambda r: r.acquired):
            run = pipeline.detect(store, settings, row, body.model)
            runs.append({"scene_id": row.id, "scene_key": row.scene_key, "acquired": row.acquired.isoformat(),
                         "run_id": run.id, "n_detections": run.n_detections})
        return runs

    runs = await run_in_threadpool(work)
    return {"runs": runs, "sites": track_summary(store)}
