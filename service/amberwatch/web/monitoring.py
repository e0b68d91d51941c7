"""REST API for monitoring (read side): sites, their history, events (JSON and Atom) and statistics.

Included by the app under ``/api``. Every filter is a typed query dependency: it parses the raw query string and
raises ``InputError`` (400) with a clear message, so a bad value never reaches the database. The SQL is in
``amberwatch.store.queries``, reached through ``amberwatch.usecases.monitoring``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from amberwatch.errors import InputError, NotFoundError
from amberwatch.settings import Settings
from amberwatch.usecases import monitoring
from amberwatch.usecases.monitoring import STATUSES, BBox, EventFilter, SiteFilter, check_by, check_format, stats_csv
from amberwatch.web.deps import MAX_ID, MAX_OFFSET, StoreDep

MAX_LIMIT = 1000
MAX_TEXT = 200  # longest oblast/raion name accepted


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict] = {400: {"model": ErrorOut, "description": "A parameter has a bad value."}}
router = APIRouter(tags=["monitoring"], responses=ERRORS)


# -- plumbing ------------------------------------------------------------------------------------
def base_url(request: Request) -> str:
    """The configured public URL, else the URL the client called."""
    settings: Settings | None = getattr(request.app.state, "settings", None)
    if settings is not None and settings.public_url:
        return settings.base_url
    return str(request.base_url).rstrip("/")


def _show(value: str) -> str:
    """``repr`` of a user value, cut when long (messages echo what was sent, not megabytes of it)."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + "..."


def _text(name: str, value: str | None) -> str | None:
    """A free-text value: '' is None; no control characters (PostgreSQL rejects NUL), at most MAX_TEXT long."""
    if value is None or value == "":
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{name}={_show(value)}: control characters (such as NUL) are not allowed")
    if len(value) > MAX_TEXT:
        raise InputError(f"{name}={_show(value)}: longer than {MAX_TEXT} characters")
    return value


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _feature(row: dict, geom_key: str = "geometry", id_key: str = "site_id") -> dict:
    props = _jsonable({k: v for k, v in row.items() if k != geom_key})
    geometry = json.loads(row[geom_key]) if row.get(geom_key) else None
    return {"type": "Feature", "id": row[id_key], "geometry": geometry, "properties": props}


# -- value parsers (shared by the dependencies) ----------------------------------------------------
def parse_bbox(value: str | None) -> BBox | None:
    if value is None or value == "":
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError as err:
        raise InputError(f"bbox={_show(value)}: expected four numbers minlon,minlat,maxlon,maxlat") from err
    if len(parts) != 4:
        raise InputError(f"bbox={_show(value)}: expected four numbers minlon,minlat,maxlon,maxlat, got {len(parts)}")
    x0, y0, x1, y1 = parts
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise InputError(f"bbox={_show(value)}: need -180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90")
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
        raise InputError(f"{name}={_show(value)}: expected an ISO date (2020-06-15) or datetime "
                         "(2020-06-15T10:00:00Z)") from err
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_statuses(name: str, value: str | None) -> list[str] | None:
    if value is None or value == "":
        return None
    statuses = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in statuses if v not in STATUSES]
    if bad or not statuses:
        raise InputError(f"{name}={_show(value)}: unknown status {_show(', '.join(bad))[1:-1] or '(empty)'}; "
                         f"use one or more of {', '.join(STATUSES)} separated by commas")
    return statuses


def parse_number(name: str, value: str | None, minimum: float = 0.0) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError as err:
        raise InputError(f"{name}={_show(value)}: expected a number") from err
    if number != number or number < minimum:
        raise InputError(f"{name}={_show(value)}: must be >= {minimum:g}")
    if not math.isfinite(number):
        raise InputError(f"{name}={_show(value)}: must be a finite number")
    return number


@dataclass(frozen=True)
class PageQuery:
    limit: int
    offset: int


def parse_page(limit: str | None, offset: str | None, default: int = 100) -> PageQuery:
    try:
        lim = int(limit) if limit else default
        off = int(offset) if offset else 0
    except ValueError as err:
        shown = ", ".join(f"{n}={_show(v)}" for n, v in (("limit", limit), ("offset", offset)) if v)
        raise InputError(f"{shown}: expected whole numbers") from err
    if not 1 <= lim <= MAX_LIMIT:
        raise InputError(f"limit={lim}: must be between 1 and {MAX_LIMIT}")
    if off < 0:
        raise InputError(f"offset={off}: must be >= 0")
    if off > MAX_OFFSET:
        raise InputError(f"offset={off}: must be <= {MAX_OFFSET}")
    return PageQuery(lim, off)


# -- typed query dependencies --------------------------------------------------------------------
BBOX_HELP = "minlon,minlat,maxlon,maxlat (EPSG:4326)."
STATUS_HELP = f"One or more of {', '.join(STATUSES)}, separated by commas."


def bbox_query(bbox: Annotated[str | None, Query(description=BBOX_HELP)] = None) -> BBox | None:
    return parse_bbox(bbox)


def page_query(
    limit: Annotated[str | None, Query(description=f"Page size, 1 to {MAX_LIMIT} (default 100).")] = None,
    offset: Annotated[str | None, Query(description=f"Rows to skip, 0 to {MAX_OFFSET}.")] = None,
) -> PageQuery:
    return parse_page(limit, offset)


def site_filter(
    status: Annotated[str | None, Query(description=STATUS_HELP)] = None,
    oblast: Annotated[str | None, Query(description="Oblast name (case-insensitive).")] = None,
    raion: Annotated[str | None, Query(description="Raion name (case-insensitive).")] = None,
    bbox: BBox | None = Depends(bbox_query),
    page: PageQuery = Depends(page_query),
) -> SiteFilter:
    return SiteFilter(statuses=parse_statuses("status", status), bbox=bbox, oblast=_text("oblast", oblast),
                      raion=_text("raion", raion), limit=page.limit, offset=page.offset)


def event_filter(
    since: Annotated[str | None, Query(description="Observed at or after: ISO date or datetime (UTC default).")]
    = None,
    until: Annotated[str | None, Query(description="Observed at or before (a date includes the whole day).")]
    = None,
    min_area_ha: Annotated[str | None, Query(description="Smallest site area at the event, hectares.")] = None,
    status: Annotated[str | None, Query(description=f"New status of the site. {STATUS_HELP}")] = None,
    to_status: Annotated[str | None, Query(description="Same as status (wins when both are given).")] = None,
    bbox: BBox | None = Depends(bbox_query),
    page: PageQuery = Depends(page_query),
) -> EventFilter:
    t0, t1 = parse_time("since", since), parse_time("until", until, end=True)
    if t0 and t1 and t1 < t0:
        raise InputError(f"until={_show(until or '')} is before since={_show(since or '')}")
    statuses = parse_statuses("to_status" if to_status else "status", to_status or status)
    return EventFilter(since=t0, until=t1, min_area_ha=parse_number("min_area_ha", min_area_ha), statuses=statuses,
                       bbox=bbox, limit=page.limit, offset=page.offset)


def site_id_path(site_id: Annotated[str, Path(description="Site id (a whole number).")]) -> int:
    """A site id; anything beyond the id range cannot exist (404), a non-number is a 400."""
    try:
        value = int(site_id)
    except ValueError as err:
        raise InputError(f"site id {_show(site_id)}: expected a whole number") from err
    if not 1 <= value <= MAX_ID:
        raise NotFoundError(f"site {value} not found")
    return value


@dataclass(frozen=True)
class StatsQuery:
    by: str
    format: str


def stats_query(
    by: Annotated[str, Query(description="Group by oblast, raion, hromada or year.")] = "oblast",
    format: Annotated[str, Query(description="json or csv.")] = "json",  # noqa: A002
) -> StatsQuery:
    return StatsQuery(check_by(by), check_format(format))



# -- routes --------------------------------------------------------------------------------------
@router.get("/sites")
def list_sites(store: StoreDep, f: Annotated[SiteFilter, Depends(site_filter)]) -> dict:
    """Live sites as a GeoJSON FeatureCollection (geometry = last seen extent). Filters: ``status`` (comma list),
    ``bbox`` (minlon,minlat,maxlon,maxlat), ``oblast``/``raion`` (name, case-insensitive)."""
    page = monitoring.list_sites(store, f)
    features = [_feature(r) for r in page.rows]
    return {"type": "FeatureCollection", "numberMatched": page.total, "numberReturned": len(features),
            "features": features}


@router.get("/sites/{site_id}", responses={404: {"model": ErrorOut, "description": "No such site."}})
def get_site(store: StoreDep, site_id: Annotated[int, Depends(site_id_path)]) -> dict:
    """One site (GeoJSON Feature) with ``observations`` (area per date) and ``events``; a merged site carries
    ``merged_into_id``."""
    history = monitoring.get_site(store, site_id)
    data = dict(history.site)
    max_extent = data.pop("max_extent")
    feature = _feature(data)
    feature["properties"]["max_extent"] = json.loads(max_extent) if max_extent else None
    feature["properties"]["observations"] = [_jsonable(o) for o in history.observations]
    feature["properties"]["events"] = [_jsonable(e) for e in history.events]
    return feature


@router.get("/events")
def list_events(request: Request, store: StoreDep, f: Annotated[EventFilter, Depends(event_filter)]) -> dict:
    """Status changes of sites as a GeoJSON FeatureCollection (point = the site at that date), oldest first.
    Filters: ``since``/``until`` (observation date), ``min_area_ha``, ``status``/``to_status`` (new status),
    ``bbox``; ``limit``/``offset`` page."""
    page = monitoring.list_events(store, f)
    base = base_url(request)
    features = []
    for r in page.rows:
        feature = _feature(r, id_key="event_id")
        feature["properties"]["site_url"] = f"{base}/api/sites/{r['site_id']}"
        features.append(feature)
    return {"type": "FeatureCollection", "numberMatched": page.total, "numberReturned": len(features),
            "features": features}


@router.get("/events.atom", response_class=Response,
            responses={200: {"content": {"application/atom+xml": {}}, "description": "An Atom feed."}})
def events_atom(request: Request, store: StoreDep, f: Annotated[EventFilter, Depends(event_filter)]) -> Response:
    """The events as an Atom feed (newest recorded first, 100 by default), one entry per event linking the site."""
    body = monitoring.events_atom(store, f, base_url(request), str(request.url))
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/stats", response_model=None)
def get_stats(store: StoreDep, q: Annotated[StatsQuery, Depends(stats_query)]) -> dict | Response:
    """Disturbed area, new/abandoned sites and area inside protected areas by ``oblast``, ``raion`` or ``year``
    (``groups`` plus a ``total``); ``format=csv`` for CSV."""
    stats = monitoring.stats(store, q.by)
    if q.format == "csv":
        return Response(stats_csv(stats), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="amberwatch-stats-{q.by}.csv"'})
    return stats
