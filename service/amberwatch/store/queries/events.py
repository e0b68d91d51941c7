"""SQL of the ``events`` aggregate: status changes of live sites, filtered and paged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from amberwatch.store.queries.sites import BBox

EVENT_COLUMNS = """e.id as event_id, e.site_id, e.observed_at, e.from_status, e.to_status, e.area_ha, e.run_id,
    e.created_at, s.oblast, s.raion, s.hromada, s.protected_areas"""

EventOrder = Literal["observed", "recorded"]
_ORDER: dict[str, str] = {
    "observed": "e.observed_at, e.id",  # oldest observation first (the JSON list)
    "recorded": "e.created_at desc, e.id desc",  # newest recorded first (the Atom feed)
}


@dataclass(frozen=True)
class EventFilter:
    """Events of live sites; ``since``/``until`` bound the observation time (inclusive), ``statuses`` the new
    status, ``bbox`` the event point."""

    since: datetime | None = None
    until: datetime | None = None
    min_area_ha: float | None = None
    statuses: Sequence[str] | None = None
    bbox: BBox | None = None
    limit: int = 100
    offset: int = 0


def _where(f: EventFilter) -> tuple[str, dict[str, Any]]:
    where = ["s.merged_into_id is null"]
    params: dict[str, Any] = {"limit": f.limit, "offset": f.offset}
    if f.since:
        where.append("e.observed_at >= :t0")
        params["t0"] = f.since
    if f.until:
        where.append("e.observed_at <= :t1")
        params["t1"] = f.until
    if f.min_area_ha is not None:
        where.append("e.area_ha >= :min_area")
        params["min_area"] = f.min_area_ha
    if f.statuses:
        where.append("e.to_status = any(:statuses)")
        params["statuses"] = list(f.statuses)
    if f.bbox:
        where.append("ST_Intersects(e.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=f.bbox[0], y0=f.bbox[1], x1=f.bbox[2], y1=f.bbox[3])
    return " and ".join(where), params


def count_events(session: Session, f: EventFilter) -> int:
    where, params = _where(f)
    return int(session.scalar(
        text(f"select count(*) from events e join sites s on s.id = e.site_id where {where}"), params) or 0)


def list_events(session: Session, f: EventFilter, order: EventOrder = "observed") -> list[dict]:
    """One page of events with the site's admin position; ``geometry`` is the event point as GeoJSON text."""
    where, params = _where(f)
    rows = session.execute(text(
        f"select {EVENT_COLUMNS}, ST_AsGeoJSON(e.geom, 7) as geometry from events e"
        f" join sites s on s.id = e.site_id where {where} order by {_ORDER[order]} limit :limit offset :offset"),
        params).mappings().all()
    return [dict(r) for r in rows]
