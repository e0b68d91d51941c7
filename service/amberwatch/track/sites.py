"""Turn per-run detections into persistent monitored sites, their observation history and status events.

Every call recomputes, from all published observations sorted by date, the sites near the run's scene footprint:
so a scene older than those already published simply rewrites the history it belongs to, and the result does not
depend on the order in which runs were published (see docs/monitoring.md).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from amberwatch.area import area_ha as geodesic_area_ha
from amberwatch.area import areas_ha as geodesic_areas_ha
from amberwatch.errors import NotFoundError
from amberwatch.store.models import Detection, Event, Run, Site, SiteObservation
from amberwatch.store.queries.layers import assign_admin
from amberwatch.track import rules
from amberwatch.track.clustering import single_linkage
from amberwatch.track.geo import area_ha, multi, to_metric, to_wgs84

log = logging.getLogger(__name__)

CLUSTER_DISTANCE_M = 60.0  # detections closer than this (at any date) belong to one site
CLOUDY_FRACTION = 0.5  # a scene did not observe a site when more than half of the site is masked (cloud/nodata)
CLEAR_MARGIN_DEG = 0.01  # the runs' clear-sky footprints are read clipped to the sites' extent plus this margin
CLEAR_PIECE_VERTICES = 256  # ... and cut into pieces of at most this many vertices (ST_Subdivide)

# A run counts when it is published (or being published now) and no later such run covers the same scene:
# re-running detection on a scene (e.g. with a newer model) supersedes the earlier run in the sites' state.
_VISIBLE = (
    "(r.state = 'published' or r.id = :run) and not exists ("
    " select 1 from run_scenes rs1 join run_scenes rs2 on rs2.scene_id = rs1.scene_id"
    " join runs r2 on r2.id = rs2.run_id"
    " where rs1.run_id = r.id and r2.id > r.id and (r2.state = 'published' or r2.id = :run))"
)


@dataclass
class _Det:
    id: int
    run_id: int
    site_id: int | None
    cls: str
    confidence: float
    geom: BaseGeometry  # metric CRS
    observed_at: datetime


@dataclass
class _Cluster:
    key: int
    dets: list[_Det] = field(default_factory=list)

    @property
    def old(self) -> Counter:
        return Counter(d.site_id for d in self.dets if d.site_id is not None)


def update_sites(session: Session, run_id: int, clear_sky: BaseGeometry | None = None) -> list[Event]:
    """Match run ``run_id``'s detections to sites and update the sites its scene observed; returns new events.

    Called inside the publishing transaction, after the run's detections were inserted (the run may still be
    ``running``: it counts as published here). ``clear_sky`` is where the run's scene saw the ground
    (``DetectionResult.clear_sky``, EPSG:4326; None = clear everywhere): it is stored with the run, and a site
    counts as observed by a run when less than CLOUDY_FRACTION of it lies outside that run's clear sky. Sites within
    CLUSTER_DISTANCE_M of the run's scene footprint or detections are recomputed from every published observation.
    No raster is opened here.
    """
    if session.get(Run, run_id) is None:
        raise NotFoundError(f"run {run_id} not found")
    session.execute(
        text("update runs set clear_sky = ST_Multi(ST_GeomFromWKB(:g, 4326)) where id = :run"),
        {"g": clear_sky.wkb if clear_sky is not None else None, "run": run_id},
    )
    session.flush()
    _lock(session)
    region = session.scalar(text(
        "select ST_AsBinary(ST_Union(g)) from ("
        " select s.footprint as g from run_scenes rs join scenes s on s.id = rs.scene_id where rs.run_id = :run"
        " union all select ST_Envelope(d.geom) from detections d where d.run_id = :run) x"
    ), {"run": run_id})
    if region is None:
        log.info("run %d has no scene footprint and no detections: no site to update", run_id)
        return []
    return _recompute(session, run_id, bytes(region))


def rebuild_sites(session: Session) -> list[Event]:
    """Recompute every site from all published runs (after runs were deleted or the rules changed)."""
    _lock(session)
    return _recompute(session, None, None)


def _lock(session: Session) -> None:
    """Serialise site updates: two runs published at once must not both create the same site."""
    session.execute(text("select pg_advisory_xact_lock(hashtext('amberwatch.track.sites'))"))


# -- the recomputation ---------------------------------------------------------------------------
def _recompute(session: Session, run_id: int | None, region_wkb: bytes | None) -> list[Event]:
    params: dict[str, Any] = {"run": run_id if run_id is not None else -1, "eps": CLUSTER_DISTANCE_M}
    if region_wkb is None:
        hit_sites = set(session.scalars(select(Site.id).where(Site.merged_into_id.is_(None))))
        det_ids = list(session.scalars(text(
            f"select d.id from detections d join runs r on r.id = d.run_id where {_VISIBLE}"), params))
    else:
        params["region"] = region_wkb
        hit_sites = set(session.scalars(text(
            "with region as (select ST_GeomFromWKB(:region, 4326) as g) "
            "select s.id from sites s, region where s.merged_into_id is null"
            " and s.max_geom && ST_Expand(region.g, 0.01)"
            " and ST_DWithin(s.max_geom::geography, region.g::geography, :eps)"), params))
        det_ids = list(session.scalars(text(
            "with region as (select ST_GeomFromWKB(:region, 4326) as g) "
            f"select d.id from detections d join runs r on r.id = d.run_id, region where {_VISIBLE}"
            " and (ST_Intersects(d.geom, region.g) or d.site_id = any(:sites))"), {**params, "sites": list(hit_sites)}))
    if not det_ids and not hit_sites:
        return []
    run_times = _run_times(session, params)
    clusters = _cluster(session, det_ids, run_times)
    owners, merged = _assign_ids(session, clusters)
    _adopt_superseded(session, clusters, hit_sites, owners, merged)

    clear = _ClearSky(session, clusters, params)
    new_events: list[Event] = []
    kept: set[int] = set()
    for cluster in clusters:
        site = _site_for(session, owners.get(cluster.key), cluster)
        kept.add(site.id)
        new_events += _update_site(session, site, cluster, run_times, params, clear)
    for old_id, cluster_key in merged.items():
        _merge(session, old_id, owners[cluster_key])
    for gone in hit_sites - kept - set(merged):
        log.info("site %d lost all its detections: deleted", gone)
        session.execute(delete(Site).where(Site.id == gone))
    session.flush()
    if kept:
        assign_admin(session, sorted(kept))
    log.info("sites updated for run %s: %d sites, %d merged, %d new events", run_id, len(kept), len(merged),
             len(new_events))
    return new_events


def _run_times(session: Session, params: dict) -> dict[int, datetime]:
    """Observation time of every visible run: its scene's acquisition (else its detections' observed_at)."""
    rows = session.execute(text(
        "select r.id, coalesce(min(s.acquired), (select min(d.observed_at) from detections d where d.run_id = r.id))"
        f" from runs r left join run_scenes rs on rs.run_id = r.id left join scenes s on s.id = rs.scene_id"
        f" where {_VISIBLE} group by r.id"), params)
    return {rid: t for rid, t in rows if t is not None}


def _cluster(session: Session, det_ids: list[int], run_times: dict[int, datetime]) -> list[_Cluster]:
    """Single-linkage clusters of the detections (all dates together) at CLUSTER_DISTANCE_M in the metric CRS
    (:func:`amberwatch.track.clustering.single_linkage`); cluster keys follow the smallest detection id."""
    if not det_ids:
        return []
    rows = session.execute(text(
        "select d.id, d.run_id, d.site_id, d.class, d.confidence, ST_AsBinary(d.geom), d.observed_at"
        " from detections d where d.id = any(:ids) order by d.id"), {"ids": det_ids})
    dets: list[_Det] = []
    for did, rid, sid, cls, conf, wkb, observed in rows:
        geom = to_metric(shapely.from_wkb(bytes(wkb)))
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        dets.append(_Det(did, rid, sid, cls, float(conf), geom, run_times.get(rid, observed)))
    clusters: dict[int, _Cluster] = {}
    for det, cid in zip(dets, single_linkage([d.geom for d in dets], CLUSTER_DISTANCE_M), strict=True):
        clusters.setdefault(int(cid), _Cluster(int(cid))).dets.append(det)
    return list(clusters.values())


def _assign_ids(session: Session, clusters: list[_Cluster]) -> tuple[dict[int, int], dict[int, int]]:
    """Keep site ids stable: the oldest existing site takes the cluster holding most of its detections.

    Returns {cluster key: site id} for clusters that continue a site and {merged site id: cluster key} for sites
    whose detections now belong to a cluster already owned by an older site. Clusters without owner are new sites.
    """
    old_ids = sorted({sid for c in clusters for sid in c.old})
    if not old_ids:
        return {}, {}
    first_seen = dict(session.execute(select(Site.id, Site.first_seen).where(Site.id.in_(old_ids))).all())
    owners: dict[int, int] = {}
    merged: dict[int, int] = {}
    for sid in sorted(old_ids, key=lambda s: (first_seen.get(s) or datetime.max.replace(tzinfo=UTC), s)):
        options = sorted((c for c in clusters if sid in c.old), key=lambda c: (-c.old[sid], c.key))
        free = [c for c in options if c.key not in owners]
        if free:
            owners[free[0].key] = sid
        else:
            merged[sid] = options[0].key
    return owners, merged


def _adopt_superseded(session: Session, clusters: list[_Cluster], hit_sites: set[int], owners: dict[int, int],
                      merged: dict[int, int]) -> None:
    """A cluster with no detection of an existing site (its detections came from a run now superseded by a re-run
    on the same scene) continues the oldest unclaimed site within CLUSTER_DISTANCE_M of it."""
    free = hit_sites - set(owners.values()) - set(merged)
    for cluster in sorted(clusters, key=lambda c: c.key):
        if cluster.key in owners or not free:
            continue
        extent = to_wgs84(shapely.union_all([d.geom for d in cluster.dets]))
        sid = session.scalar(text(
            "select s.id from sites s where s.id = any(:ids)"
            " and ST_DWithin(s.max_geom::geography, ST_GeomFromWKB(:g, 4326)::geography, :eps)"
            " order by s.first_seen, s.id limit 1"), {"ids": sorted(free), "g": extent.wkb, "eps": CLUSTER_DISTANCE_M})
        if sid is not None:
            owners[cluster.key] = sid
            free.discard(sid)


def _site_for(session: Session, site_id: int | None, cluster: _Cluster) -> Site:
    if site_id is not None:
        site = session.get(Site, site_id)
        if site is not None:
            return site
    first = min(cluster.dets, key=lambda d: (d.observed_at, d.run_id))
    site = Site(status="new", first_seen=first.observed_at, last_seen=first.observed_at,
                last_observed=first.observed_at, first_run_id=first.run_id, last_run_id=first.run_id)
    session.add(site)
    session.flush()
    return site


def _merge(session: Session, old_id: int, into_id: int) -> None:
    """A site whose detections joined an older site's cluster: kept as history, pointing at the survivor."""
    log.info("site %d merged into site %d", old_id, into_id)
    session.execute(delete(Event).where(Event.site_id == old_id))
    session.execute(delete(SiteObservation).where(SiteObservation.site_id == old_id))
    session.execute(update(Site).where(Site.merged_into_id == old_id).values(merged_into_id=into_id))
    session.execute(update(Site).where(Site.id == old_id).values(merged_into_id=into_id, updated_at=datetime.now(UTC)))


# -- clear sky -----------------------------------------------------------------------------------
class _ClearSky:
    """The visible runs' clear-sky footprints around the clusters being recomputed, read once per run and
    recomputation: clipped in PostGIS to the clusters' extent plus CLEAR_MARGIN_DEG and cut by ST_Subdivide into
    pieces of at most CLEAR_PIECE_VERTICES vertices, so a site is only intersected with the pieces near it."""

    def __init__(self, session: Session, clusters: list[_Cluster], params: dict) -> None:
        self.session, self.params = session, params
        self.cache: dict[int, tuple[shapely.STRtree, np.ndarray] | None] = {}
        geoms = [d.geom for c in clusters for d in c.dets]
        self.box = to_wgs84(shapely.box(*shapely.total_bounds(geoms))).envelope.buffer(
            CLEAR_MARGIN_DEG, join_style="mitre") if geoms else None

    def pieces(self, run_id: int) -> tuple[shapely.STRtree, np.ndarray] | None:
        """The run's clear sky near the clusters (EPSG:4326) as indexed pieces; None = no cloud mask (all clear)."""
        if run_id not in self.cache:
            has_mask = self.session.scalar(text("select clear_sky is not null from runs where id = :run"),
                                           {"run": run_id})
            if not has_mask or self.box is None:
                self.cache[run_id] = None
            else:
                rows = self.session.scalars(text(
                    "select ST_AsBinary(ST_Subdivide(ST_MakeValid(ST_ClipByBox2D(clear_sky,"
                    f" ST_GeomFromWKB(:box, 4326))), {CLEAR_PIECE_VERTICES})) from runs where id = :run"),
                    {"box": self.box.wkb, "run": run_id})
                parts = shapely.from_wkb([bytes(r) for r in rows])
                parts = np.asarray(shapely.make_valid(parts) if len(parts) else parts, dtype=object)
                self.cache[run_id] = (shapely.STRtree(parts), parts)
        return self.cache[run_id]

    def observed(self, run_id: int, extent_wgs84: BaseGeometry) -> bool:
        """True when less than CLOUDY_FRACTION of the site lies outside the run's clear sky (cloud/shadow/nodata)."""
        clear = self.pieces(run_id)
        if clear is None:
            return True
        tree, parts = clear
        near = parts[tree.query(extent_wgs84)]
        total = geodesic_area_ha(extent_wgs84)
        if total <= 0:
            return bool(shapely.intersects(near, extent_wgs84.representative_point()).any())
        clear_share = float(geodesic_areas_ha(shapely.intersection(near, extent_wgs84)).sum()) / total
        return 1.0 - clear_share < CLOUDY_FRACTION


# -- one site ------------------------------------------------------------------------------------
def _observing_runs(session: Session, extent_metric: BaseGeometry, params: dict,
                    clear: _ClearSky) -> dict[int, datetime]:
    """Visible runs whose scene covers the site and was not cloudy there."""
    extent = to_wgs84(extent_metric)
    point = extent.representative_point()
    rows = session.execute(text(
        "select r.id, s.acquired from runs r join run_scenes rs on rs.run_id = r.id"
        f" join scenes s on s.id = rs.scene_id where {_VISIBLE}"
        " and ST_Intersects(s.footprint, ST_GeomFromWKB(:pt, 4326))"), {**params, "pt": point.wkb})
    out: dict[int, datetime] = {}
    for rid, acquired in rows:
        if clear.observed(rid, extent):
            out[rid] = min(acquired, out.get(rid, acquired))
    return out


def _update_site(session: Session, site: Site, cluster: _Cluster, run_times: dict[int, datetime],
                 params: dict, clear: _ClearSky) -> list[Event]:
    dets = cluster.dets
    cumulative_all = shapely.union_all([d.geom for d in dets])
    first_t = min(d.observed_at for d in dets)
    by_time: dict[datetime, list[_Det]] = defaultdict(list)
    for d in dets:
        by_time[d.observed_at].append(d)
    runs_at: dict[datetime, set[int]] = defaultdict(set)
    for rid, t in _observing_runs(session, cumulative_all, params, clear).items():
        if t >= first_t:
            runs_at[t].add(rid)
    for t, ds in by_time.items():
        runs_at[t].update(d.run_id for d in ds)

    history: list[rules.Observation] = []
    extents: list[BaseGeometry | None] = []
    cumulative: BaseGeometry | None = None
    for t in sorted(runs_at):
        ds = by_time.get(t, [])
        extent = shapely.union_all([d.geom for d in ds]) if ds else None
        pits = shapely.union_all([d.geom for d in ds if d.cls == "pit"]) if ds else None
        ponds = shapely.union_all([d.geom for d in ds if d.cls == "pond"]) if ds else None
        if extent is not None:
            cumulative = extent if cumulative is None else shapely.union(cumulative, extent)
        run = min(d.run_id for d in ds) if ds else min(runs_at[t])
        history.append(rules.Observation(t, run, bool(ds), area_ha(extent), area_ha(pits), area_ha(ponds),
                                         area_ha(cumulative)))
        extents.append(extent)
    rules.assign_statuses(history)

    last_seen_i = max(i for i, o in enumerate(history) if o.detected)
    last_extent = extents[last_seen_i]
    last_dets = by_time[history[last_seen_i].observed_at]
    weight = sum(d.geom.area for d in last_dets) or 1.0
    envelope = cumulative_all.convex_hull.buffer(rules.DISTURBANCE_BUFFER_M)
    score, degree = rules.disturbance(area_ha(cumulative_all), history[-1].pond_area_ha, area_ha(envelope))
    last = history[-1]

    site.geom = from_shape(multi(to_wgs84(last_extent)), srid=4326)
    site.max_geom = from_shape(multi(to_wgs84(cumulative_all)), srid=4326)
    site.status = last.status
    site.first_seen, site.last_seen, site.last_observed = history[0].observed_at, history[last_seen_i].observed_at, \
        last.observed_at
    site.area_ha, site.pit_area_ha, site.pond_area_ha = last.area_ha, last.pit_area_ha, last.pond_area_ha
    site.max_area_ha = area_ha(cumulative_all)
    site.confidence = sum(d.confidence * d.geom.area for d in last_dets) / weight
    site.n_observations = len(history)
    site.first_run_id, site.last_run_id = history[0].run_id, last.run_id
    site.growth_rate_ha_yr = rules.growth_rate(history)
    site.disturbance_score, site.disturbance = score, degree
    site.merged_into_id = None
    site.updated_at = datetime.now(UTC)

    session.execute(update(Detection).where(Detection.id.in_(bindparam("ids", expanding=True)))
                    .values(site_id=site.id), {"ids": [d.id for d in dets]})
    session.execute(delete(SiteObservation).where(SiteObservation.site_id == site.id))
    for obs, extent in zip(history, extents, strict=True):
        session.add(SiteObservation(
            site_id=site.id, run_id=obs.run_id, observed_at=obs.observed_at, detected=obs.detected,
            area_ha=obs.area_ha, pit_area_ha=obs.pit_area_ha, pond_area_ha=obs.pond_area_ha,
            cumulative_area_ha=obs.cumulative_area_ha, status=obs.status,
            geom=from_shape(multi(to_wgs84(extent)), srid=4326) if extent is not None else None))
    events, since = _sync_events(session, site, history, extents, cumulative_all)
    site.status_since = since
    return events


def _sync_events(session: Session, site: Site, history: list[rules.Observation],
                 extents: list[BaseGeometry | None], cumulative: BaseGeometry) -> tuple[list[Event], datetime]:
    """Make the site's events equal to its status changes; existing events keep their id and created_at."""
    wanted: dict[tuple[datetime, str], tuple[rules.Observation, str | None, BaseGeometry | None]] = {}
    prev: str | None = None
    since = history[0].observed_at
    for obs, extent in zip(history, extents, strict=True):
        if obs.status != prev:
            wanted[(obs.observed_at, obs.status)] = (obs, prev, extent)
            since = obs.observed_at
        prev = obs.status
    existing = {(e.observed_at, e.to_status): e for e in session.scalars(select(Event).where(Event.site_id == site.id))}
    for key, stale in existing.items():
        if key not in wanted:
            session.delete(stale)
    session.flush()
    created: list[Event] = []
    for key, (obs, from_status, extent) in wanted.items():
        event: Event | None = existing.get(key)
        if event is None:
            event = Event(site_id=site.id, observed_at=obs.observed_at, to_status=obs.status)
            session.add(event)
            created.append(event)
        elif (event.from_status, event.run_id, round(event.area_ha, 6)) == (from_status, obs.run_id,
                                                                          round(obs.area_ha, 6)):
            continue  # unchanged: same detections at that date
        shape = extent if extent is not None else cumulative
        event.from_status, event.area_ha, event.run_id = from_status, obs.area_ha, obs.run_id
        event.geom = from_shape(to_wgs84(shape.representative_point()), srid=4326)
        event.extent = from_shape(multi(to_wgs84(extent)), srid=4326) if extent is not None else None
    session.flush()
    return created, since
