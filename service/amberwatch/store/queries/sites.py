"""SQL of the ``sites`` aggregate: live sites, one site with its observations and events, counts, export rows, and
the reads and writes of the tracking (:mod:`amberwatch.track.sites`) that recomputes sites from detections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from amberwatch.store.models import Detection, Event, Run, Site, SiteObservation

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


# -- tracking (amberwatch.track.sites): the recomputation of sites inside the publishing transaction ----------
# A run counts when it is published (or being published now: :run) and no later such run covers the same scene:
# re-running detection on a scene (e.g. with a newer model) supersedes the earlier run in the sites' state.
_VISIBLE = (
    "(r.state = 'published' or r.id = :run) and not exists ("
    " select 1 from run_scenes rs1 join run_scenes rs2 on rs2.scene_id = rs1.scene_id"
    " join runs r2 on r2.id = rs2.run_id"
    " where rs1.run_id = r.id and r2.id > r.id and (r2.state = 'published' or r2.id = :run))"
)


def _run_param(run_id: int | None) -> int:
    """The run being published (visible although not ``published`` yet); -1 = none (a rebuild)."""
    return run_id if run_id is not None else -1


class DetectionRow(NamedTuple):
    id: int
    run_id: int
    site_id: int | None
    cls: str
    confidence: float
    wkb: bytes  # EPSG:4326
    observed_at: datetime


@dataclass(frozen=True)
class SiteState:
    """The latest state of a site as the tracking computed it; geometries in EPSG:4326 (multipolygons)."""

    geom: BaseGeometry
    max_geom: BaseGeometry
    status: str
    status_since: datetime
    first_seen: datetime
    last_seen: datetime
    last_observed: datetime
    area_ha: float
    pit_area_ha: float
    pond_area_ha: float
    max_area_ha: float
    confidence: float
    n_observations: int
    first_run_id: int
    last_run_id: int
    growth_rate_ha_yr: float | None
    disturbance_score: float
    disturbance: str


@dataclass(frozen=True)
class ObservationRow:
    """A site at one observation date; ``geom`` (EPSG:4326 multipolygon) is None when nothing was detected."""

    run_id: int
    observed_at: datetime
    detected: bool
    area_ha: float
    pit_area_ha: float
    pond_area_ha: float
    cumulative_area_ha: float
    status: str
    geom: BaseGeometry | None
    sensor: str = "optical"  # 'sentinel1': radar evidence on a cloudy date (run_id: the last optical run)
    sar_change_ha: float | None = None


@dataclass(frozen=True)
class EventRow:
    """A status change of a site: ``point`` on the site at that date, ``extent`` (multipolygon) or None; EPSG:4326."""

    observed_at: datetime
    to_status: str
    from_status: str | None
    area_ha: float
    run_id: int
    point: BaseGeometry
    extent: BaseGeometry | None


def lock_tracking(session: Session) -> None:
    """Serialise site updates until the transaction ends: two runs published at once must not both create the
    same site."""
    session.execute(text("select pg_advisory_xact_lock(hashtext('amberwatch.track.sites'))"))


def run_exists(session: Session, run_id: int) -> bool:
    return session.get(Run, run_id) is not None


def set_clear_sky(session: Session, run_id: int, clear_sky_wkb: bytes | None) -> None:
    """Store where the run's scene saw the ground (EPSG:4326 WKB; None = clear everywhere)."""
    session.execute(
        text("update runs set clear_sky = ST_Multi(ST_GeomFromWKB(:g, 4326)) where id = :run"),
        {"g": clear_sky_wkb, "run": run_id},
    )
    session.flush()


def run_region(session: Session, run_id: int) -> bytes | None:
    """WKB (EPSG:4326) of the run's scene footprints and its detections' envelopes; None when it has neither."""
    region = session.scalar(text(
        "select ST_AsBinary(ST_Union(g)) from ("
        " select s.footprint as g from run_scenes rs join scenes s on s.id = rs.scene_id where rs.run_id = :run"
        " union all select ST_Envelope(d.geom) from detections d where d.run_id = :run) x"
    ), {"run": run_id})
    return bytes(region) if region is not None else None


def live_site_ids(session: Session) -> set[int]:
    """Every site not merged into another."""
    return set(session.scalars(select(Site.id).where(Site.merged_into_id.is_(None))))


def visible_detection_ids(session: Session, run_id: int | None) -> list[int]:
    """Every detection of a visible run (``run_id``: the run being published, visible already)."""
    return list(session.scalars(text(
        f"select d.id from detections d join runs r on r.id = d.run_id where {_VISIBLE}"), {"run": _run_param(run_id)}))


def live_sites_near(session: Session, region_wkb: bytes, distance_m: float) -> set[int]:
    """Live sites whose cumulative footprint lies within ``distance_m`` (geodesic) of the region (EPSG:4326 WKB)."""
    return set(session.scalars(text(
        "with region as (select ST_GeomFromWKB(:region, 4326) as g) "
        "select s.id from sites s, region where s.merged_into_id is null"
        " and s.max_geom && ST_Expand(region.g, 0.01)"
        " and ST_DWithin(s.max_geom::geography, region.g::geography, :eps)"),
        {"region": region_wkb, "eps": distance_m}))


def visible_detection_ids_in(session: Session, run_id: int | None, region_wkb: bytes,
                             site_ids: Iterable[int]) -> list[int]:
    """Detections of visible runs that intersect the region or belong to one of ``site_ids``."""
    return list(session.scalars(text(
        "with region as (select ST_GeomFromWKB(:region, 4326) as g) "
        f"select d.id from detections d join runs r on r.id = d.run_id, region where {_VISIBLE}"
        " and (ST_Intersects(d.geom, region.g) or d.site_id = any(:sites))"),
        {"run": _run_param(run_id), "region": region_wkb, "sites": list(site_ids)}))


def visible_run_times(session: Session, run_id: int | None) -> dict[int, datetime]:
    """Observation time of every visible run: its scene's acquisition (else its detections' observed_at)."""
    rows = session.execute(text(
        "select r.id, coalesce(min(s.acquired), (select min(d.observed_at) from detections d where d.run_id = r.id))"
        " from runs r left join run_scenes rs on rs.run_id = r.id left join scenes s on s.id = rs.scene_id"
        f" where {_VISIBLE} group by r.id"), {"run": _run_param(run_id)})
    return {rid: t for rid, t in rows if t is not None}


def detection_rows(session: Session, ids: Sequence[int]) -> list[DetectionRow]:
    """The detections ``ids`` by id, with their geometry as WKB (EPSG:4326)."""
    rows = session.execute(text(
        "select d.id, d.run_id, d.site_id, d.class, d.confidence, ST_AsBinary(d.geom), d.observed_at"
        " from detections d where d.id = any(:ids) order by d.id"), {"ids": list(ids)})
    return [DetectionRow(did, rid, sid, cls, float(conf), bytes(wkb), observed)
            for did, rid, sid, cls, conf, wkb, observed in rows]


def first_seen(session: Session, site_ids: Sequence[int]) -> dict[int, datetime | None]:
    """Site id -> first_seen of the sites ``site_ids`` (absent ids are left out)."""
    return dict(session.execute(select(Site.id, Site.first_seen).where(Site.id.in_(list(site_ids)))).all())


def oldest_site_near(session: Session, site_ids: Iterable[int], geom_wkb: bytes, distance_m: float) -> int | None:
    """Of ``site_ids``, the oldest (first_seen, then id) within ``distance_m`` (geodesic) of the geometry."""
    return session.scalar(text(
        "select s.id from sites s where s.id = any(:ids)"
        " and ST_DWithin(s.max_geom::geography, ST_GeomFromWKB(:g, 4326)::geography, :eps)"
        " order by s.first_seen, s.id limit 1"), {"ids": sorted(site_ids), "g": geom_wkb, "eps": distance_m})


def site_or_new(session: Session, site_id: int | None, observed_at: datetime, run_id: int) -> int:
    """The id of site ``site_id`` when it exists, else of a new ``new`` site first seen at ``observed_at``."""
    if site_id is not None and session.get(Site, site_id) is not None:
        return site_id
    site = Site(status="new", first_seen=observed_at, last_seen=observed_at, last_observed=observed_at,
                first_run_id=run_id, last_run_id=run_id)
    session.add(site)
    session.flush()
    return site.id


def delete_site(session: Session, site_id: int) -> None:
    session.execute(delete(Site).where(Site.id == site_id))


def merge_site(session: Session, old_id: int, into_id: int) -> None:
    """Keep site ``old_id`` as history pointing at ``into_id`` (and what pointed at it too); drop its events and
    observations."""
    session.execute(delete(Event).where(Event.site_id == old_id))
    session.execute(delete(SiteObservation).where(SiteObservation.site_id == old_id))
    session.execute(update(Site).where(Site.merged_into_id == old_id).values(merged_into_id=into_id))
    session.execute(update(Site).where(Site.id == old_id).values(merged_into_id=into_id, updated_at=datetime.now(UTC)))


def run_has_clear_sky(session: Session, run_id: int) -> bool:
    """True when the run stored a clear-sky footprint (a cloud mask); False = clear everywhere."""
    return bool(session.scalar(text("select clear_sky is not null from runs where id = :run"), {"run": run_id}))


def clear_sky_pieces(session: Session, run_id: int, box_wkb: bytes, max_vertices: int) -> list[bytes]:
    """The run's clear sky clipped to the box (EPSG:4326 WKB), made valid and cut by ST_Subdivide into pieces of at
    most ``max_vertices`` vertices, as WKB."""
    rows = session.scalars(text(
        "select ST_AsBinary(ST_Subdivide(ST_MakeValid(ST_ClipByBox2D(clear_sky,"
        f" ST_GeomFromWKB(:box, 4326))), {int(max_vertices)})) from runs where id = :run"),
        {"box": box_wkb, "run": run_id})
    return [bytes(r) for r in rows]


def visible_runs_covering(session: Session, run_id: int | None, point_wkb: bytes) -> list[tuple[int, datetime]]:
    """(run id, scene acquisition) of every visible run whose scene footprint holds the point (EPSG:4326 WKB)."""
    rows = session.execute(text(
        "select r.id, s.acquired from runs r join run_scenes rs on rs.run_id = r.id"
        f" join scenes s on s.id = rs.scene_id where {_VISIBLE}"
        " and ST_Intersects(s.footprint, ST_GeomFromWKB(:pt, 4326))"), {"run": _run_param(run_id), "pt": point_wkb})
    return [(rid, acquired) for rid, acquired in rows]


def save_site(session: Session, site_id: int, state: SiteState, detection_ids: Sequence[int],
              observations: Sequence[ObservationRow]) -> None:
    """Write the site's state, point its detections at it and replace its observation history."""
    site = session.get_one(Site, site_id)
    site.geom = from_shape(state.geom, srid=4326)
    site.max_geom = from_shape(state.max_geom, srid=4326)
    site.status = state.status
    site.first_seen, site.last_seen, site.last_observed = state.first_seen, state.last_seen, state.last_observed
    site.area_ha, site.pit_area_ha, site.pond_area_ha = state.area_ha, state.pit_area_ha, state.pond_area_ha
    site.max_area_ha = state.max_area_ha
    site.confidence = state.confidence
    site.n_observations = state.n_observations
    site.first_run_id, site.last_run_id = state.first_run_id, state.last_run_id
    site.growth_rate_ha_yr = state.growth_rate_ha_yr
    site.disturbance_score, site.disturbance = state.disturbance_score, state.disturbance
    site.merged_into_id = None
    site.updated_at = datetime.now(UTC)
    session.execute(update(Detection).where(Detection.id.in_(bindparam("ids", expanding=True)))
                    .values(site_id=site_id), {"ids": list(detection_ids)})
    session.execute(delete(SiteObservation).where(SiteObservation.site_id == site_id))
    for obs in observations:
        session.add(SiteObservation(
            site_id=site_id, run_id=obs.run_id, observed_at=obs.observed_at, detected=obs.detected,
            area_ha=obs.area_ha, pit_area_ha=obs.pit_area_ha, pond_area_ha=obs.pond_area_ha,
            cumulative_area_ha=obs.cumulative_area_ha, status=obs.status, sensor=obs.sensor,
            sar_change_ha=obs.sar_change_ha, geom=from_shape(obs.geom, srid=4326) if obs.geom is not None else None))
    site.status_since = state.status_since


def sync_events(session: Session, site_id: int, wanted: Sequence[EventRow]) -> list[Event]:
    """Make the site's events equal to ``wanted`` (one per status change, keyed by observed_at and to_status):
    stale ones are deleted, existing ones keep their id and created_at (updated when they changed); returns the
    events created."""
    by_key = {(e.observed_at, e.to_status): e for e in wanted}
    existing = {(e.observed_at, e.to_status): e for e in session.scalars(select(Event).where(Event.site_id == site_id))}
    for key, stale in existing.items():
        if key not in by_key:
            session.delete(stale)
    session.flush()
    created: list[Event] = []
    for key, want in by_key.items():
        event: Event | None = existing.get(key)
        if event is None:
            event = Event(site_id=site_id, observed_at=want.observed_at, to_status=want.to_status)
            session.add(event)
            created.append(event)
        elif (event.from_status, event.run_id, round(event.area_ha, 6)) == (want.from_status, want.run_id,
                                                                          round(want.area_ha, 6)):
            continue  # unchanged: same detections at that date
        event.from_status, event.area_ha, event.run_id = want.from_status, want.area_ha, want.run_id
        event.geom = from_shape(want.point, srid=4326)
        event.extent = from_shape(want.extent, srid=4326) if want.extent is not None else None
    session.flush()
    return created
