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

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from amberwatch.area import area_ha as geodesic_area_ha
from amberwatch.area import areas_ha as geodesic_areas_ha
from amberwatch.errors import NotFoundError
from amberwatch.store.models import Event
from amberwatch.store.queries import sar as sar_q
from amberwatch.store.queries import sites as q
from amberwatch.store.queries.layers import assign_admin
from amberwatch.store.queries.sar import SarEvidenceRow
from amberwatch.track import rules
from amberwatch.track.clustering import single_linkage
from amberwatch.track.geo import area_ha, cut_into_pieces, multi, to_metric, to_wgs84

log = logging.getLogger(__name__)

CLUSTER_DISTANCE_M = 60.0  # detections closer than this (at any date) belong to one site
CLOUDY_FRACTION = 0.5  # a scene did not observe a site when more than half of the site is masked (cloud/nodata)
CLEAR_MARGIN_DEG = 0.01  # the runs' clear-sky footprints are read clipped to the sites' extent plus this margin
CLEAR_PIECE_VERTICES = 256  # a run's clear sky is stored cut into pieces of at most this many vertices

# Which runs count (published, or being published now, and not superseded by a later run on the same scene) is
# decided in SQL: amberwatch.store.queries.sites (_VISIBLE).


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
    if not q.run_exists(session, run_id):
        raise NotFoundError(f"run {run_id} not found")
    pieces = [p.wkb for p in cut_into_pieces(clear_sky, CLEAR_PIECE_VERTICES)] if clear_sky is not None else []
    q.set_clear_sky(session, run_id, clear_sky.wkb if clear_sky is not None else None, pieces)
    q.lock_tracking(session)
    region = q.run_region(session, run_id)
    if region is None:
        log.info("run %d has no scene footprint and no detections: no site to update", run_id)
        return []
    return _recompute(session, run_id, region)


def rebuild_sites(session: Session) -> list[Event]:
    """Recompute every site from all published runs (after runs were deleted or the rules changed)."""
    q.lock_tracking(session)
    return _recompute(session, None, None)


# -- the recomputation ---------------------------------------------------------------------------
def _recompute(session: Session, run_id: int | None, region_wkb: bytes | None) -> list[Event]:
    if region_wkb is None:
        hit_sites = q.live_site_ids(session)
        det_ids = q.visible_detection_ids(session, run_id)
    else:
        hit_sites = q.live_sites_near(session, region_wkb, CLUSTER_DISTANCE_M)
        det_ids = q.visible_detection_ids_in(session, run_id, region_wkb, hit_sites)
    if not det_ids and not hit_sites:
        return []
    run_times = q.visible_run_times(session, run_id)
    clusters = _cluster(session, det_ids, run_times)
    old_ids = sorted({sid for c in clusters for sid in c.old})
    owners, merged = _assign_ids(clusters, q.first_seen(session, old_ids) if old_ids else {})
    _adopt_superseded(session, clusters, hit_sites, owners, merged)

    clear = _ClearSky(session, clusters)
    shapes = [_Shape.of(c) for c in clusters]  # the per-site reads below are one query each for all sites
    covering = q.visible_runs_covering(session, run_id, [s.point.wkb for s in shapes])
    radar = sar_q.evidence_in_each(session, [to_wgs84(s.envelope).wkb for s in shapes])
    site_ids = _site_ids(session, clusters, owners)
    updates: list[q.SiteUpdate] = []
    wanted_events: list[tuple[int, list[q.EventRow]]] = []
    for site_id, cluster, shape, runs, sar in zip(site_ids, clusters, shapes, covering, radar, strict=True):
        update, events = _update_site(site_id, cluster, shape, _observing_runs(runs, shape, clear), sar)
        updates.append(update)
        wanted_events.append((site_id, events))
    q.save_sites(session, updates)
    new_events = q.sync_events(session, wanted_events)
    kept = set(site_ids)
    for old_id, cluster_key in merged.items():
        log.info("site %d merged into site %d", old_id, owners[cluster_key])
        q.merge_site(session, old_id, owners[cluster_key])
    for gone in hit_sites - kept - set(merged):
        log.info("site %d lost all its detections: deleted", gone)
        q.delete_site(session, gone)
    session.flush()
    if kept:
        assign_admin(session, sorted(kept))
    log.info("sites updated for run %s: %d sites, %d merged, %d new events", run_id, len(kept), len(merged),
             len(new_events))
    return new_events


def _cluster(session: Session, det_ids: list[int], run_times: dict[int, datetime]) -> list[_Cluster]:
    """Single-linkage clusters of the detections (all dates together) at CLUSTER_DISTANCE_M in the metric CRS
    (:func:`amberwatch.track.clustering.single_linkage`); cluster keys follow the smallest detection id."""
    if not det_ids:
        return []
    dets: list[_Det] = []
    for row in q.detection_rows(session, det_ids):
        geom = to_metric(shapely.from_wkb(row.wkb))
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        dets.append(_Det(row.id, row.run_id, row.site_id, row.cls, row.confidence, geom,
                         run_times.get(row.run_id, row.observed_at)))
    clusters: dict[int, _Cluster] = {}
    for det, cid in zip(dets, single_linkage([d.geom for d in dets], CLUSTER_DISTANCE_M), strict=True):
        clusters.setdefault(int(cid), _Cluster(int(cid))).dets.append(det)
    return list(clusters.values())


def _assign_ids(clusters: list[_Cluster], first_seen: dict[int, datetime | None]
                ) -> tuple[dict[int, int], dict[int, int]]:
    """Keep site ids stable: the oldest existing site takes the cluster holding most of its detections.

    ``first_seen`` holds the existing sites' first_seen. Returns {cluster key: site id} for clusters that continue a
    site and {merged site id: cluster key} for sites whose detections now belong to a cluster already owned by an
    older site. Clusters without owner are new sites.
    """
    old_ids = sorted({sid for c in clusters for sid in c.old})
    if not old_ids:
        return {}, {}
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
        sid = q.oldest_site_near(session, free, extent.wkb, CLUSTER_DISTANCE_M)
        if sid is not None:
            owners[cluster.key] = sid
            free.discard(sid)


# -- clear sky -----------------------------------------------------------------------------------
class _ClearSky:
    """The visible runs' clear-sky footprints around the clusters being recomputed, read once per run and
    recomputation: the pieces (at most CLEAR_PIECE_VERTICES vertices each, cut once when the run was stored) within
    the clusters' extent plus CLEAR_MARGIN_DEG, so a site is only intersected with the pieces near it."""

    def __init__(self, session: Session, clusters: list[_Cluster]) -> None:
        self.session = session
        self.cache: dict[int, tuple[shapely.STRtree, np.ndarray] | None] = {}
        geoms = [d.geom for c in clusters for d in c.dets]
        self.box = to_wgs84(shapely.box(*shapely.total_bounds(geoms))).envelope.buffer(
            CLEAR_MARGIN_DEG, join_style="mitre") if geoms else None

    def pieces(self, run_id: int) -> tuple[shapely.STRtree, np.ndarray] | None:
        """The run's clear sky near the clusters (EPSG:4326) as indexed pieces; None = no cloud mask (all clear)."""
        if run_id not in self.cache:
            wkbs = q.clear_sky_pieces(self.session, run_id, self.box.wkb) if self.box is not None else None
            if wkbs is None:
                self.cache[run_id] = None
            else:
                parts = np.asarray(shapely.from_wkb(wkbs), dtype=object)
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
@dataclass
class _Shape:
    """A cluster's cumulative footprint (metric), its WGS84 extent and point, and its disturbance envelope."""

    cumulative: BaseGeometry
    extent: BaseGeometry  # EPSG:4326
    point: BaseGeometry  # EPSG:4326, on the extent
    envelope: BaseGeometry  # metric: convex hull + DISTURBANCE_BUFFER_M

    @classmethod
    def of(cls, cluster: _Cluster) -> _Shape:
        cumulative = shapely.union_all([d.geom for d in cluster.dets])
        extent = to_wgs84(cumulative)
        return cls(cumulative, extent, extent.representative_point(),
                   cumulative.convex_hull.buffer(rules.DISTURBANCE_BUFFER_M))


def _site_ids(session: Session, clusters: list[_Cluster], owners: dict[int, int]) -> list[int]:
    """Each cluster's site: the site that owns it when that site exists, else a new ``new`` site (created in cluster
    order, first seen at the cluster's first detection)."""
    existing = q.existing_site_ids(session, [owners[c.key] for c in clusters if c.key in owners])
    kept = [owners.get(c.key) if owners.get(c.key) in existing else None for c in clusters]
    firsts = [min(c.dets, key=lambda d: (d.observed_at, d.run_id)) for c, sid in zip(clusters, kept, strict=True)
              if sid is None]
    fresh = iter(q.new_sites(session, [(f.observed_at, f.run_id) for f in firsts]))
    return [sid if sid is not None else next(fresh) for sid in kept]


def _observing_runs(covering: list[tuple[int, datetime]], shape: _Shape, clear: _ClearSky) -> dict[int, datetime]:
    """Of the visible runs whose scene covers the site (``covering``), those that were not cloudy there."""
    out: dict[int, datetime] = {}
    for rid, acquired in covering:
        if clear.observed(rid, shape.extent):
            out[rid] = min(acquired, out.get(rid, acquired))
    return out


def _update_site(site_id: int, cluster: _Cluster, shape: _Shape, observing: dict[int, datetime],
                 radar: list[SarEvidenceRow]) -> tuple[q.SiteUpdate, list[q.EventRow]]:
    """The site's new state, observation history and events (no database access: the caller reads and writes
    for all sites at once)."""
    dets = cluster.dets
    cumulative_all = shape.cumulative
    first_t = min(d.observed_at for d in dets)
    by_time: dict[datetime, list[_Det]] = defaultdict(list)
    for d in dets:
        by_time[d.observed_at].append(d)
    runs_at: dict[datetime, set[int]] = defaultdict(set)
    for rid, t in observing.items():
        if t >= first_t:
            runs_at[t].add(rid)
    for t, ds in by_time.items():
        runs_at[t].update(d.run_id for d in ds)
    envelope = shape.envelope  # the disturbance envelope (metric)
    sar_at = _radar_evidence(radar, first_t, runs_at)

    history: list[rules.Observation] = []
    extents: list[BaseGeometry | None] = []
    cumulative: BaseGeometry | None = None
    for t in sorted(set(runs_at) | set(sar_at)):
        if t not in runs_at:  # a radar date Sentinel-2 did not observe: evidence only (rules.sar_status)
            seen = history[-1]  # the areas carry over: radar does not measure them
            history.append(rules.Observation(t, seen.run_id, False, seen.area_ha, seen.pit_area_ha, seen.pond_area_ha,
                                             seen.cumulative_area_ha, sar_change_ha=sar_at[t]))
            extents.append(None)
            continue
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
    score, degree = rules.disturbance(area_ha(cumulative_all), history[-1].pond_area_ha, area_ha(envelope))
    last = history[-1]
    events, since = _status_changes(history, extents, cumulative_all)

    state = q.SiteState(
        geom=multi(to_wgs84(last_extent)),
        max_geom=multi(to_wgs84(cumulative_all)),
        status=last.status,
        status_since=since,
        first_seen=history[0].observed_at,
        last_seen=history[last_seen_i].observed_at,
        last_observed=last.observed_at,
        area_ha=last.area_ha,
        pit_area_ha=last.pit_area_ha,
        pond_area_ha=last.pond_area_ha,
        max_area_ha=area_ha(cumulative_all),
        confidence=sum(d.confidence * d.geom.area for d in last_dets) / weight,
        n_observations=len(history),
        first_run_id=history[0].run_id,
        last_run_id=last.run_id,
        growth_rate_ha_yr=rules.growth_rate(history),
        disturbance_score=score,
        disturbance=degree,
    )
    observations = [
        q.ObservationRow(
            run_id=obs.run_id, observed_at=obs.observed_at, detected=obs.detected, area_ha=obs.area_ha,
            pit_area_ha=obs.pit_area_ha, pond_area_ha=obs.pond_area_ha, cumulative_area_ha=obs.cumulative_area_ha,
            status=obs.status, geom=multi(to_wgs84(extent)) if extent is not None else None,
            sensor="optical" if obs.sar_change_ha is None else "sentinel1", sar_change_ha=obs.sar_change_ha)
        for obs, extent in zip(history, extents, strict=True)
    ]
    return q.SiteUpdate(site_id, state, [d.id for d in dets], observations), events


def _radar_evidence(radar: list[SarEvidenceRow], first_t: datetime,
                    optical: dict[datetime, set[int]]) -> dict[datetime, float]:
    """Sentinel-1 dates after the first detection on which no optical run observed the site (cloud), with the
    hectares of radar change in the site's disturbance envelope (``radar``: the radar dates covering it)."""
    return {row.acquired: row.change_ha for row in radar if row.acquired > first_t and row.acquired not in optical}


def _status_changes(history: list[rules.Observation], extents: list[BaseGeometry | None],
                    cumulative: BaseGeometry) -> tuple[list[q.EventRow], datetime]:
    """The site's events (one per status change; placed on that date's extent, else on the cumulative one) and
    the time of its last status change."""
    events: list[q.EventRow] = []
    prev: str | None = None
    since = history[0].observed_at
    for obs, extent in zip(history, extents, strict=True):
        if obs.status != prev:
            shape = extent if extent is not None else cumulative
            events.append(q.EventRow(
                observed_at=obs.observed_at, to_status=obs.status, from_status=prev, area_ha=obs.area_ha,
                run_id=obs.run_id, point=to_wgs84(shape.representative_point()),
                extent=multi(to_wgs84(extent)) if extent is not None else None))
            since = obs.observed_at
        prev = obs.status
    return events, since
