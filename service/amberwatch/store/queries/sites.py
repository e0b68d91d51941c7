"""SQL of the ``sites`` aggregate: live sites, one site with its observations and events, counts, export rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

BBox = tuple[float, float, float, float]  # minlon, minlat, maxlon, maxlat (EPSG:4326)

SITE_COLUMNS = """s.id as site_id, s.status, s.status_since, s.first_seen, s.last_seen, s.last_observed, s.area_ha,
    s.max_area_ha, s.pit_area_ha, s.pond_area_ha, s.growth_rate_ha_yr, s.disturbance, s.disturbance_score,
    s.confidence, s.n_observations, s.first_run_id, s.last_run_id, s.oblast, s.raion, s.hromada, s.protected_areas,
    s.in_protected_area, s.protected_distance_m, s.merged_into_id, s.updated_at"""


@dataclass(frozen=True)
class SiteFilter:
    """Live (not merged) sites; every filter is optional. ``oblast``/``raion`` match case-insensitively."""

    statuses: Sequence[str] | None = None
    bbox: BBox | None = None
    oblast: str | None = None
    raion: str | None = None
    limit: int = 100
    offset: int = 0


def _where(f: SiteFilter) -> tuple[str, dict[str, Any]]:
    where = ["s.merged_into_id is null"]
    params: dict[str, Any] = {"limit": f.limit, "offset": f.offset}
    if f.statuses:
        where.append("s.status = any(:statuses)")
        params["statuses"] = list(f.statuses)
    if f.bbox:
        where.append("ST_Intersects(s.max_geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=f.bbox[0], y0=f.bbox[1], x1=f.bbox[2], y1=f.bbox[3])
    if f.oblast:
        where.append("lower(s.oblast) = lower(:oblast)")
        params["oblast"] = f.oblast
    if f.raion:
        where.append("lower(s.raion) = lower(:raion)")
        params["raion"] = f.raion
    return " and ".join(where), params


def count_sites(session: Session, f: SiteFilter) -> int:
    where, params = _where(f)
    return int(session.scalar(text(f"select count(*) from sites s where {where}"), params) or 0)


def list_sites(session: Session, f: SiteFilter) -> list[dict]:
    """One page of sites ordered by id; ``geometry`` is the last seen extent as GeoJSON text."""
    where, params = _where(f)
    rows = session.execute(text(
        f"select {SITE_COLUMNS}, ST_AsGeoJSON(s.geom, 7) as geometry from sites s where {where}"
        " order by s.id limit :limit offset :offset"), params).mappings().all()
    return [dict(r) for r in rows]


def get_site(session: Session, site_id: int) -> dict | None:
    """One site (live or merged) with ``geometry`` and ``max_extent`` as GeoJSON text; None when absent."""
    row = session.execute(text(
        f"select {SITE_COLUMNS}, ST_AsGeoJSON(s.geom, 7) as geometry, ST_AsGeoJSON(s.max_geom, 7) as max_extent"
        " from sites s where s.id = :id"), {"id": site_id}).mappings().first()
    return dict(row) if row is not None else None


def site_observations(session: Session, site_id: int) -> list[dict]:
    rows = session.execute(text(
        "select observed_at, run_id, detected, status, area_ha, pit_area_ha, pond_area_ha, cumulative_area_ha"
        " from site_observations where site_id = :id order by observed_at"), {"id": site_id}).mappings().all()
    return [dict(r) for r in rows]


def site_events(session: Session, site_id: int) -> list[dict]:
    rows = session.execute(text(
        "select id as event_id, observed_at, from_status, to_status, area_ha, run_id, created_at from events"
        " where site_id = :id order by observed_at"), {"id": site_id}).mappings().all()
    return [dict(r) for r in rows]


def count_by_status(session: Session) -> dict[str, int]:
    """Number of live sites per status (statuses without sites are absent)."""
    rows = session.execute(text(
        "select status, count(*) from sites where merged_into_id is null group by status order by status")).all()
    return {status: int(n) for status, n in rows}


# -- export --------------------------------------------------------------------------------------
_ISO = "to_char({} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

# (field, SQL expression): dates as ISO text, missing text as '', missing numbers as NaN
EXPORT_COLUMNS: list[tuple[str, str]] = [
    ("site_id", "id"),
    ("status", "status"),
    ("status_since", _ISO.format("status_since")),
    ("first_seen", _ISO.format("first_seen")),
    ("last_seen", _ISO.format("last_seen")),
    ("last_observed", _ISO.format("last_observed")),
    ("area_ha", "area_ha"),
    ("max_area_ha", "max_area_ha"),
    ("pit_area_ha", "pit_area_ha"),
    ("pond_area_ha", "pond_area_ha"),
    ("growth_rate_ha_yr", "coalesce(growth_rate_ha_yr, 'NaN')"),
    ("disturbance", "coalesce(disturbance, '')"),
    ("n_observations", "n_observations"),
    ("oblast", "coalesce(oblast, '')"),
    ("raion", "coalesce(raion, '')"),
    ("hromada", "coalesce(hromada, '')"),
    ("protected_areas", "coalesce(protected_areas, '')"),
    ("protected_distance_m", "coalesce(protected_distance_m, 'NaN')"),
]


def export_sites(session: Session) -> tuple[list[str], list[tuple[Any, ...]], list[bytes]]:
    """Every live site with a geometry, by id: (field names, one value tuple per site, WKB of the last extent)."""
    cols = ", ".join(expr for _, expr in EXPORT_COLUMNS)
    rows = session.execute(text(
        f"select {cols}, ST_AsBinary(geom) from sites where merged_into_id is null and geom is not null order by id"
    )).all()
    return [name for name, _ in EXPORT_COLUMNS], [tuple(r[:-1]) for r in rows], [bytes(r[-1]) for r in rows]
