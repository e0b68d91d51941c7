"""SQL of the portal pages: observation dates, data extent, place search, a site's runs/scenes/detections and
nearby protected areas, an admin outline for the report map, one site's export row, area by unit and year."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from amberwatch.store.queries.sites import EXPORT_COLUMNS
from amberwatch.store.queries.stats import UNKNOWN

UNIT_COLUMNS = ("oblast", "raion", "hromada")


def observation_dates(session: Session) -> list[str]:
    """Distinct observation days (UTC, ISO) of live sites, oldest first."""
    rows = session.execute(text(
        "select distinct to_char(o.observed_at at time zone 'UTC', 'YYYY-MM-DD') from site_observations o"
        " join sites s on s.id = o.site_id and s.merged_into_id is null order by 1")).scalars().all()
    return [str(r) for r in rows]


def data_extent(session: Session) -> tuple[float, float, float, float] | None:
    """minlon, minlat, maxlon, maxlat of every live site's cumulative footprint (None without sites)."""
    row = session.execute(text(
        "select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from (select ST_Extent(max_geom)::geometry as e"
        " from sites where merged_into_id is null) x")).first()
    if row is None or row[0] is None:
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_BBOX = "ST_XMin(geom) as x0, ST_YMin(geom) as y0, ST_XMax(geom) as x1, ST_YMax(geom) as y1"


def search_places(session: Session, q: str, limit: int) -> list[dict[str, Any]]:
    """Admin units and protected areas whose name contains ``q`` (case-insensitive), exact matches first."""
    rows = session.execute(text(f"""
        select * from (
            select kind, name, code, {_BBOX} from admin_units where name ilike :pat
            union all
            select 'protected_area' as kind, name, code, {_BBOX} from protected_areas where name ilike :pat) u
        order by (lower(name) = lower(:q)) desc, (lower(name) like lower(:prefix)) desc, length(name), name
        limit :limit"""), {"pat": _like(q), "prefix": _like(q)[1:], "q": q, "limit": limit}).mappings().all()
    return [dict(r) for r in rows]


def site_bbox(session: Session, site_id: int) -> dict[str, Any] | None:
    row = session.execute(text(
        "select id as site_id, ST_XMin(max_geom) as x0, ST_YMin(max_geom) as y0, ST_XMax(max_geom) as x1,"
        " ST_YMax(max_geom) as y1 from sites where id = :id and max_geom is not null"), {"id": site_id}
    ).mappings().first()
    return dict(row) if row else None


def site_observation_runs(session: Session, site_id: int) -> list[dict[str, Any]]:
    """One row per observation of the site: date, run, model, the scene it was seen in (path and bands)."""
    rows = session.execute(text("""
        select o.observed_at, o.run_id, o.detected, o.status, o.area_ha, o.pit_area_ha, o.pond_area_ha,
               o.cumulative_area_ha, m.name as model_name, m.version as model_version, sc.id as scene_id,
               sc.scene_key, sc.sensor, sc.acquired, sc.reflectance_path, sc.bands, sc.resolution
        from site_observations o
        join runs r on r.id = o.run_id
        left join model_versions m on m.id = r.model_version_id
        left join lateral (
            select s.* from run_scenes rs join scenes s on s.id = rs.scene_id
            where rs.run_id = r.id order by s.acquired limit 1) sc on true
        where o.site_id = :id order by o.observed_at, o.run_id"""), {"id": site_id}).mappings().all()
    return [dict(r) for r in rows]


def scenes_covering(session: Session, site_id: int) -> list[dict[str, Any]]:
    """Every stored scene whose footprint touches the site's cumulative footprint, oldest first."""
    rows = session.execute(text(
        "select sc.id as scene_id, sc.scene_key, sc.sensor, sc.acquired, sc.reflectance_path, sc.bands,"
        " sc.resolution from scenes sc, sites s where s.id = :id and s.max_geom is not null"
        " and ST_Intersects(sc.footprint, s.max_geom) order by sc.acquired, sc.id"), {"id": site_id}
    ).mappings().all()
    return [dict(r) for r in rows]


def site_extent_at(session: Session, site_id: int, observed_at: Any) -> str | None:
    """The site's extent (GeoJSON) at one observation, None when nothing was detected then."""
    value = session.execute(text(
        "select ST_AsGeoJSON(geom, 7) from site_observations where site_id = :id and observed_at = :t"
        " and geom is not null limit 1"), {"id": site_id, "t": observed_at}).scalar()
    return str(value) if value else None


def nearby_protected_areas(session: Session, site_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The nearest protected areas to the site's cumulative footprint, with geodesic distance in metres."""
    rows = session.execute(text("""
        select n.name, n.category, n.source,
               ST_Distance(n.geom::geography, s.max_geom::geography) as distance_m,
               ST_Intersects(n.geom, s.max_geom) as inside
        from sites s
        cross join lateral (select p.* from protected_areas p order by p.geom <-> s.max_geom limit :limit) n
        where s.id = :id and s.max_geom is not null
        order by distance_m, n.name"""), {"id": site_id, "limit": limit}).mappings().all()
    return [dict(r) for r in rows]


def admin_outline(session: Session, kind: str, name: str, tolerance: float) -> str | None:
    """A simplified outline (GeoJSON) of the admin unit ``kind``/``name``, None when absent."""
    value = session.execute(text(
        "select ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :tol), 6) from admin_units"
        " where kind = :kind and name = :name order by id limit 1"),
        {"kind": kind, "name": name, "tol": tolerance}).scalar()
    return str(value) if value else None


def site_export_row(session: Session, site_id: int) -> tuple[list[str], tuple[Any, ...], bytes] | None:
    """(field names, values, WKB of the current extent, else the cumulative one) of one site; None when absent."""
    cols = ", ".join(expr for _, expr in EXPORT_COLUMNS)
    row = session.execute(text(
        f"select {cols}, ST_AsBinary(coalesce(geom, max_geom)) from sites where id = :id"
        " and coalesce(geom, max_geom) is not null"), {"id": site_id}).first()
    if row is None:
        return None
    return [name for name, _ in EXPORT_COLUMNS], tuple(row[:-1]), bytes(row[-1])


def area_by_unit_and_year(session: Session, unit: str) -> list[dict[str, Any]]:
    """Newly disturbed area (growth of each live site's cumulative footprint) and new sites per ``unit`` and year.

    The same definition as the by-year statistics, so over all years the areas add up to the sites' cumulative
    footprints (``disturbed_area_ha`` of ``/api/stats``)."""
    if unit not in UNIT_COLUMNS:  # the column name goes into the SQL text
        raise ValueError(f"not an admin unit column: {unit!r}")
    rows = session.execute(text(f"""
        with live as (select id, coalesce({unit}, '{UNKNOWN}') as unit, first_seen from sites
                      where merged_into_id is null),
        cum as (
            select o.site_id, extract(year from o.observed_at at time zone 'UTC')::int as year,
                   max(o.cumulative_area_ha) as cum
            from site_observations o join live on live.id = o.site_id group by 1, 2),
        added as (
            select site_id, year, cum - coalesce(lag(cum) over (partition by site_id order by year), 0) as ha
            from cum)
        select live.unit, a.year, sum(a.ha) as disturbed_area_ha,
               count(*) filter (where extract(year from live.first_seen at time zone 'UTC')::int = a.year)
                   as new_sites
        from added a join live on live.id = a.site_id
        group by 1, 2 order by 1, 2""")).mappings().all()
    return [dict(r) for r in rows]
