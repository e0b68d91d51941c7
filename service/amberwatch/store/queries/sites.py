"""SQL of the ``sites`` aggregate: live sites, one site with its observations and events, counts, export rows, and
the reads and writes of the tracking (:mod:`amberwatch.track.sites`) that recomputes sites from detections."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from amberwatch.store.models import Event, Run, Site, SiteObservation

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


def set_clear_sky(session: Session, run_id: int, clear_sky_wkb: bytes | None, pieces_wkb: Sequence[bytes]) -> None:
    """Store where the run's scene saw the ground (EPSG:4326 WKB; None = clear everywhere) and the same area cut
    into small polygons (``pieces_wkb``), which tracking reads by their index."""
    session.execute(
        text("update runs set clear_sky = ST_Multi(ST_GeomFromWKB(:g, 4326)) where id = :run"),
        {"g": clear_sky_wkb, "run": run_id},
    )
    session.execute(text("delete from run_clear_sky_pieces where run_id = :run"), {"run": run_id})
    if pieces_wkb:
        session.execute(text(
            "insert into run_clear_sky_pieces (run_id, geom)"
            " select :run, ST_GeomFromWKB(w, 4326) from unnest(cast(:pieces as bytea[])) as w"
        ), {"run": run_id, "pieces": list(pieces_wkb)})
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


def existing_site_ids(session: Session, site_ids: Iterable[int]) -> set[int]:
    """Which of ``site_ids`` exist."""
    ids = sorted(set(site_ids))
    return set(session.scalars(select(Site.id).where(Site.id.in_(ids)))) if ids else set()


def new_sites(session: Session, firsts: Sequence[tuple[datetime, int]]) -> list[int]:
    """Create one ``new`` site per (first observed_at, first run id), in one INSERT; their ids in the same order."""
    if not firsts:
        return []
    sites = [Site(status="new", first_seen=t, last_seen=t, last_observed=t, first_run_id=run, last_run_id=run)
             for t, run in firsts]
    session.add_all(sites)
    session.flush()
    ids = [site.id for site in sites]
    for site in sites:  # written with SQL from here on (save_sites): no stale copy stays in the session
        session.expunge(site)
    return ids


def delete_site(session: Session, site_id: int) -> None:
    session.execute(delete(Site).where(Site.id == site_id))


def merge_site(session: Session, old_id: int, into_id: int) -> None:
    """Keep site ``old_id`` as history pointing at ``into_id`` (and what pointed at it too); drop its events and
    observations."""
    session.execute(delete(Event).where(Event.site_id == old_id))
    session.execute(delete(SiteObservation).where(SiteObservation.site_id == old_id))
    session.execute(update(Site).where(Site.merged_into_id == old_id).values(merged_into_id=into_id))
    session.execute(update(Site).where(Site.id == old_id).values(merged_into_id=into_id, updated_at=datetime.now(UTC)))


def clear_sky_pieces(session: Session, run_id: int, box_wkb: bytes) -> list[bytes] | None:
    """The pieces of the run's clear sky (stored by :func:`set_clear_sky`) that touch the box (EPSG:4326 WKB), in
    one query with whether it has one: None when the run has no clear sky (no cloud mask: clear everywhere)."""
    row = session.execute(text(
        "select r.clear_sky is not null, array(select ST_AsBinary(p.geom) from run_clear_sky_pieces p"
        " where p.run_id = r.id and p.geom && ST_GeomFromWKB(:box, 4326) order by p.id) from runs r where r.id = :run"),
        {"box": box_wkb, "run": run_id}).one_or_none()
    if row is None or not row[0]:
        return None
    return [bytes(r) for r in row[1]]


def visible_runs_covering(session: Session, run_id: int | None,
                          points_wkb: Sequence[bytes]) -> list[list[tuple[int, datetime]]]:
    """For each point (EPSG:4326 WKB), in one query: (run id, scene acquisition) of every visible run whose scene
    footprint holds it."""
    if not points_wkb:
        return []
    rows = session.execute(text(
        "select p.i, r.id, s.acquired from unnest(cast(:pts as bytea[])) with ordinality as p(wkb, i)"
        " join scenes s on ST_Intersects(s.footprint, ST_GeomFromWKB(p.wkb, 4326))"
        f" join run_scenes rs on rs.scene_id = s.id join runs r on r.id = rs.run_id where {_VISIBLE}"
        " order by p.i, r.id"), {"run": _run_param(run_id), "pts": list(points_wkb)})
    out: list[list[tuple[int, datetime]]] = [[] for _ in points_wkb]
    for i, rid, acquired in rows:
        out[int(i) - 1].append((rid, acquired))
    return out


def _wkb(geom: BaseGeometry | None) -> bytes | None:
    return None if geom is None else shapely.to_wkb(geom)


@dataclass(frozen=True)
class SiteUpdate:
    """What the tracking wrote for one site: its state, its detections and its observation history."""

    site_id: int
    state: SiteState
    detection_ids: Sequence[int]
    observations: Sequence[ObservationRow]


def save_sites(session: Session, updates: Sequence[SiteUpdate]) -> None:
    """Write the sites' states, point their detections at them and replace their observation histories: one
    statement each for all sites (observations inserted in the order given)."""
    if not updates:
        return
    st = [u.state for u in updates]
    session.execute(text(
        "update sites s set geom = ST_GeomFromWKB(v.geom, 4326), max_geom = ST_GeomFromWKB(v.max_geom, 4326),"
        " status = v.status, status_since = v.since, first_seen = v.first_seen, last_seen = v.last_seen,"
        " last_observed = v.last_observed, area_ha = v.area, pit_area_ha = v.pit, pond_area_ha = v.pond,"
        " max_area_ha = v.max_area, confidence = v.confidence, n_observations = v.n, first_run_id = v.first_run,"
        " last_run_id = v.last_run, growth_rate_ha_yr = v.growth, disturbance_score = v.score,"
        " disturbance = v.degree, merged_into_id = null, updated_at = :now"
        " from unnest(cast(:ids as bigint[]), cast(:geom as bytea[]), cast(:max_geom as bytea[]),"
        " cast(:status as text[]), cast(:since as timestamptz[]), cast(:first_seen as timestamptz[]),"
        " cast(:last_seen as timestamptz[]), cast(:last_observed as timestamptz[]), cast(:area as float8[]),"
        " cast(:pit as float8[]), cast(:pond as float8[]), cast(:max_area as float8[]),"
        " cast(:confidence as float8[]), cast(:n as int[]), cast(:first_run as bigint[]),"
        " cast(:last_run as bigint[]), cast(:growth as float8[]), cast(:score as float8[]),"
        " cast(:degree as text[])) as v(id, geom, max_geom, status, since, first_seen, last_seen, last_observed,"
        " area, pit, pond, max_area, confidence, n, first_run, last_run, growth, score, degree)"
        " where s.id = v.id"), {
            "now": datetime.now(UTC), "ids": [u.site_id for u in updates],
            "geom": [_wkb(x.geom) for x in st], "max_geom": [_wkb(x.max_geom) for x in st],
            "status": [x.status for x in st], "since": [x.status_since for x in st],
            "first_seen": [x.first_seen for x in st], "last_seen": [x.last_seen for x in st],
            "last_observed": [x.last_observed for x in st], "area": [x.area_ha for x in st],
            "pit": [x.pit_area_ha for x in st], "pond": [x.pond_area_ha for x in st],
            "max_area": [x.max_area_ha for x in st], "confidence": [x.confidence for x in st],
            "n": [x.n_observations for x in st], "first_run": [x.first_run_id for x in st],
            "last_run": [x.last_run_id for x in st], "growth": [x.growth_rate_ha_yr for x in st],
            "score": [x.disturbance_score for x in st], "degree": [x.disturbance for x in st]})
    dets = [(d, u.site_id) for u in updates for d in u.detection_ids]
    session.execute(text(
        "update detections d set site_id = v.site from unnest(cast(:ids as bigint[]), cast(:sites as bigint[]))"
        " as v(id, site) where d.id = v.id"), {"ids": [d for d, _ in dets], "sites": [s for _, s in dets]})
    session.execute(text("delete from site_observations where site_id = any(:sites)"),
                    {"sites": [u.site_id for u in updates]})
    obs = [(u.site_id, o) for u in updates for o in u.observations]
    session.execute(text(
        "insert into site_observations (site_id, run_id, observed_at, detected, area_ha, pit_area_ha, pond_area_ha,"
        " cumulative_area_ha, status, sensor, sar_change_ha, geom)"
        " select site, run, t, detected, area, pit, pond, cumulative, status, sensor, sar, ST_GeomFromWKB(g, 4326)"
        " from unnest(cast(:site as bigint[]), cast(:run as bigint[]), cast(:t as timestamptz[]),"
        " cast(:detected as boolean[]), cast(:area as float8[]), cast(:pit as float8[]), cast(:pond as float8[]),"
        " cast(:cumulative as float8[]), cast(:status as text[]), cast(:sensor as text[]), cast(:sar as float8[]),"
        " cast(:g as bytea[])) with ordinality as v(site, run, t, detected, area, pit, pond, cumulative, status,"
        " sensor, sar, g, ord) order by ord"), {
            "site": [sid for sid, _ in obs], "run": [o.run_id for _, o in obs], "t": [o.observed_at for _, o in obs],
            "detected": [o.detected for _, o in obs], "area": [o.area_ha for _, o in obs],
            "pit": [o.pit_area_ha for _, o in obs], "pond": [o.pond_area_ha for _, o in obs],
            "cumulative": [o.cumulative_area_ha for _, o in obs], "status": [o.status for _, o in obs],
            "sensor": [o.sensor for _, o in obs], "sar": [o.sar_change_ha for _, o in obs],
            "g": [_wkb(o.geom) for _, o in obs]})


def _event_columns(events: Sequence[EventRow]) -> dict[str, list[Any]]:
    """The columns an event update and insert both write, one array each (``unnest`` parameters)."""
    return {"from_status": [e.from_status for e in events], "area": [e.area_ha for e in events],
            "run": [e.run_id for e in events], "pt": [_wkb(e.point) for e in events],
            "extent": [_wkb(e.extent) for e in events]}


def sync_events(session: Session, wanted: Sequence[tuple[int, Sequence[EventRow]]]) -> list[Event]:
    """Make each site's events equal to its ``wanted`` ones (one per status change, keyed by observed_at and
    to_status): stale ones are deleted, existing ones keep their id and created_at (updated when they changed);
    one statement each for all sites. Returns the events created (in the order wanted)."""
    if not wanted:
        return []
    existing: dict[int, dict[tuple[datetime, str], tuple]] = {sid: {} for sid, _ in wanted}
    for row in session.execute(text(
            "select site_id, observed_at, to_status, id, from_status, run_id, area_ha from events"
            " where site_id = any(:sites)"), {"sites": [sid for sid, _ in wanted]}):
        existing[row[0]][(row[1], row[2])] = tuple(row[3:])
    stale: list[int] = []
    new: list[tuple[int, EventRow]] = []
    changed: list[tuple[int, EventRow]] = []
    for site_id, events in wanted:
        by_key = {(e.observed_at, e.to_status): e for e in events}
        have = existing[site_id]
        stale += [have[key][0] for key in have if key not in by_key]
        for key, want in by_key.items():
            if key not in have:
                new.append((site_id, want))
                continue
            event_id, from_status, run_id, area_ha = have[key]
            if (from_status, run_id, round(area_ha, 6)) != (want.from_status, want.run_id, round(want.area_ha, 6)):
                changed.append((event_id, want))
    if stale:
        session.execute(text("delete from events where id = any(:ids)"), {"ids": stale})
    if changed:
        session.execute(text(
            "update events e set from_status = v.from_status, area_ha = v.area, run_id = v.run,"
            " geom = ST_GeomFromWKB(v.pt, 4326), extent = ST_GeomFromWKB(v.extent, 4326)"
            " from unnest(cast(:ids as bigint[]), cast(:from_status as text[]), cast(:area as float8[]),"
            " cast(:run as bigint[]), cast(:pt as bytea[]), cast(:extent as bytea[]))"
            " as v(id, from_status, area, run, pt, extent) where e.id = v.id"),
            {"ids": [i for i, _ in changed], **_event_columns([e for _, e in changed])})
    if not new:
        return []
    ids = list(session.scalars(text(
        "insert into events (site_id, observed_at, to_status, from_status, area_ha, run_id, geom, extent)"
        " select site, t, to_status, from_status, area, run, ST_GeomFromWKB(pt, 4326), ST_GeomFromWKB(extent, 4326)"
        " from unnest(cast(:site as bigint[]), cast(:t as timestamptz[]), cast(:to_status as text[]),"
        " cast(:from_status as text[]), cast(:area as float8[]), cast(:run as bigint[]), cast(:pt as bytea[]),"
        " cast(:extent as bytea[])) with ordinality as v(site, t, to_status, from_status, area, run, pt, extent, ord)"
        " order by ord returning id"), {
            "site": [sid for sid, _ in new], "t": [e.observed_at for _, e in new],
            "to_status": [e.to_status for _, e in new], **_event_columns([e for _, e in new])}))
    return list(session.scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id)))
