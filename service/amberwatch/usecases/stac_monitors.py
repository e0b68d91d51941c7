"""STAC monitors: add and list them, search them (by the scheduler, the CLI or the API) and process each new item
once: read its area of interest, ingest, detect, track and publish (docs/operations.md#stac-monitors-and-the-scheduler).

An item is processed by its own queue job (``MONITOR_ITEM_TASK``); all jobs of one monitor share the queue lock
``monitor-<id>``, so they run one at a time in acquisition order (sites and events follow time) and a failing item,
waiting for its retry, delays the later ones but never blocks them: after ``monitor_max_attempts`` it is failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import procrastinate
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.validation import make_valid

from amberwatch.acquire import bands as asset_bands
from amberwatch.acquire.hosts import check_url, is_http
from amberwatch.acquire.search import search
from amberwatch.errors import InputError, NotFoundError
from amberwatch.jobs.queue import MONITOR_ITEM_TASK, MONITOR_SEARCH_TASK, QUEUE, defer
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import StacMonitor
from amberwatch.store.queries import stac_monitors as q
from amberwatch.usecases import runs as runs_uc
from amberwatch.usecases import scenes as scenes_uc

log = logging.getLogger(__name__)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_AOI_BYTES = 5 * 1024 * 1024
MAX_AOI_KM2 = 100_000.0  # the whole amber belt is ~78,000 km²


class RetryItem(Exception):
    """An item failed and has attempts left: the queue retries it after ``wait_s`` (see ``ItemRetry``)."""

    def __init__(self, message: str, wait_s: float):
        super().__init__(message)
        self.wait_s = wait_s


class ItemRetry(procrastinate.BaseRetryStrategy):
    """procrastinate's retry for item jobs: the wait the use case asked for (backoff doubled per attempt)."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> procrastinate.RetryDecision | None:
        if isinstance(exception, RetryItem):
            return procrastinate.RetryDecision(retry_in={"seconds": max(0, round(exception.wait_s))})
        return None


# -- add, list, status ----------------------------------------------------------------------------------------------
def parse_aoi(data: Any) -> MultiPolygon:
    """A GeoJSON geometry, Feature or FeatureCollection of polygons (EPSG:4326) as one valid MultiPolygon."""
    if not isinstance(data, dict):
        raise InputError("aoi: give a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection")
    kind = data.get("type")
    geoms = ([f.get("geometry") for f in data.get("features") or [] if isinstance(f, dict)]
             if kind == "FeatureCollection" else [data.get("geometry")] if kind == "Feature" else [data])
    polys: list[Polygon] = []
    for g in geoms:
        try:
            geom = make_valid(shape(g))
        except Exception as err:  # shapely raises several kinds for bad GeoJSON
            raise InputError(f"aoi: not a readable GeoJSON geometry ({type(err).__name__})") from None
        polys += [p for p in getattr(geom, "geoms", [geom]) if isinstance(p, Polygon) and not p.is_empty]
    if not polys:
        raise InputError("aoi: no polygon in it")
    aoi = MultiPolygon(polys)
    minx, miny, maxx, maxy = aoi.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InputError("aoi: coordinates must be longitude/latitude (EPSG:4326)")
    from amberwatch.area import area_m2

    if area_m2(aoi) / 1e6 > MAX_AOI_KM2:
        raise InputError(f"aoi: larger than {MAX_AOI_KM2:.0f} km²; split it into several monitors")
    return aoi


def read_aoi_file(path: Path) -> MultiPolygon:
    if not path.is_file():
        raise InputError(f"{path.name}: no such file")
    if path.stat().st_size > MAX_AOI_BYTES:
        raise InputError(f"{path.name}: larger than {MAX_AOI_BYTES // (1024 * 1024)} MB")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path.name}: not GeoJSON ({err})") from None
    return parse_aoi(data)


def _check_source(settings: Settings, url: str) -> str:
    if is_http(url):
        return check_url(url, settings.stac_allowed_hosts, "STAC")
    if "://" in url:
        raise InputError("stac_url: an http(s) URL or a catalog.json on the server")
    return str(scenes_uc.check_allowed(Path(url), settings))


def add_monitor(store: Store, settings: Settings, name: str, stac_url: str, collection: str, aoi: MultiPolygon,
                cloud_max: float | None = None, start: datetime | None = None,
                created_by: str | None = None) -> StacMonitor:
    """Create a monitor; the STAC URL must be on an allowed host (or a catalog under the allowed roots)."""
    if not NAME.fullmatch(name):
        raise InputError("name: 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    if not collection or len(collection) > 200:
        raise InputError("collection: give the STAC collection id")
    if cloud_max is not None and not 0 <= cloud_max <= 100:
        raise InputError("cloud_max: a percentage from 0 to 100")
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    url = _check_source(settings, stac_url)
    with store.session() as session:
        if q.by_name(session, name) is not None:
            raise InputError(f"a monitor named {name!r} exists already")
        return q.create(session, name, url, collection, aoi, cloud_max, start, created_by)


@dataclass
class MonitorStatus:
    """A monitor with its last search and its items by status."""

    name: str
    stac_url: str
    collection: str
    cloud_max: float | None
    start: datetime | None
    active: bool
    last_run: dict[str, Any] | None
    items: dict[str, int]


def _status(session: Any, m: StacMonitor) -> MonitorStatus:
    run = q.last_run(session, m.id)
    last = None if run is None else {
        "started_at": run.started_at, "finished_at": run.finished_at, "trigger": run.trigger, "found": run.found,
        "new": run.new, "skipped": run.skipped, "error": run.error}
    return MonitorStatus(m.name, m.stac_url if is_http(m.stac_url) else Path(m.stac_url).name, m.collection,
                         m.cloud_max, m.start, m.active, last, q.counts(session, m.id))


def list_monitors(store: Store) -> list[MonitorStatus]:
    with store.session() as session:
        return [_status(session, m) for m in q.all_monitors(session)]


def get_monitor(store: Store, name: str) -> MonitorStatus:
    with store.session() as session:
        m = q.by_name(session, name)
        if m is None:
            raise NotFoundError(f"monitor {name!r} not found")
        return _status(session, m)


def monitor_items(store: Store, name: str) -> list[dict[str, Any]]:
    with store.session() as session:
        m = q.by_name(session, name)
        if m is None:
            raise NotFoundError(f"monitor {name!r} not found")
        return [{"item_id": i.item_id, "acquired": i.acquired, "cloud_cover": i.cloud_cover, "status": i.status,
                 "reason": i.reason, "attempts": i.attempts, "scene_id": i.scene_id, "run_id": i.run_id}
                for i in q.items(session, m.id)]


# -- search -----------------------------------------------------------------------------------------------------------
def _path_check(settings: Settings):  # noqa: ANN202
    return lambda p: scenes_uc.check_allowed(p, settings)


def _triage(m: StacMonitor, item: dict[str, Any]) -> tuple[str, str | None]:
    """found, or skipped with the reason (over the cloud limit, a family we cannot ingest yet)."""
    cloud = asset_bands.cloud_cover(item)
    if m.cloud_max is not None and cloud is not None and cloud > m.cloud_max:
        return "skipped", f"cloud cover {cloud:.1f} % over the limit {m.cloud_max:g} %"
    kind = asset_bands.kind_of(m.collection, item)
    if kind is None:
        return "skipped", "unsupported: not a Sentinel-2, Landsat or Sentinel-1 item"
    return "found", None


def search_monitor(store: Store, settings: Settings, monitor_id: int, trigger: str) -> list[int]:
    """Search once (under an advisory lock: a concurrent search of the same monitor returns at once) and record
    every new item once; returns the items to queue (still ``found`` and without a live job), oldest first."""
    from shapely import wkb

    with store.session() as session:
        m = q.by_id(session, monitor_id)
        if m is None:
            raise NotFoundError(f"monitor {monitor_id} not found")
        if not q.try_lock(session, monitor_id):
            log.info("monitor %s is being searched by another scheduler: skipped", m.name)
            return []
        run = q.start_run(session, monitor_id, trigger)
        aoi = wkb.loads(bytes(m.aoi.data))
        found = new = skipped = 0
        error = None
        try:
            items = search(m.stac_url, m.collection, aoi, m.start, settings.stac_allowed_hosts,
                           _path_check(settings))
            for item in items:
                if not isinstance(item.get("id"), str) or not item["id"]:
                    continue  # not a STAC item
                status, reason = _triage(m, item)
                is_new = q.add_item(session, monitor_id, item, item.get("collection") or m.collection,
                                    asset_bands.acquired(item), asset_bands.cloud_cover(item), status, reason)
                found += 1
                new += is_new
                skipped += is_new and status == "skipped"
        except InputError as err:
            error = str(err)
            log.warning("monitor %s: %s", m.name, err)
        q.finish_run(session, run.id, found, new, skipped, error)
        log.info("monitor %s: %d items found, %d new, %d skipped", m.name, found, new, skipped)
        return q.to_queue(session, monitor_id)


async def queue_items(queue: procrastinate.App, store: Store, monitor_id: int, item_ids: list[int],
                      queue_name: str = QUEUE) -> int:
    """One job per item, in the given (acquisition) order, under the monitor's lock."""
    for item_id in item_ids:
        job_id = await defer(queue, MONITOR_ITEM_TASK, lock=f"monitor-{monitor_id}", queue_name=queue_name,
                             item_id=item_id)
        await asyncio.to_thread(_set_job, store, item_id, job_id)
    return len(item_ids)


def _set_job(store: Store, item_id: int, job_id: int) -> None:
    with store.session() as session:
        q.set_queue_job(session, item_id, job_id)


async def run_monitor(queue: procrastinate.App, store: Store, settings: Settings, monitor_id: int, trigger: str,
                      queue_name: str = QUEUE) -> int:
    """Search and queue the new items; returns how many were queued."""
    ids = await asyncio.to_thread(search_monitor, store, settings, monitor_id, trigger)
    return await queue_items(queue, store, monitor_id, ids, queue_name)


def monitor_id(store: Store, name: str) -> int:
    with store.session() as session:
        m = q.by_name(session, name)
        if m is None:
            raise NotFoundError(f"monitor {name!r} not found")
        return m.id


def active_ids(store: Store) -> list[int]:
    with store.session() as session:
        return [m.id for m in q.all_monitors(session, active_only=True)]


async def request_search(queue: procrastinate.App, monitor_id: int, trigger: str) -> int | None:
    """Queue a search job of the monitor (at most one waiting: a second request is a no-op)."""
    deferrer = queue.configure_task(MONITOR_SEARCH_TASK, queue=QUEUE, lock=f"monitor-{monitor_id}",
                                    queueing_lock=f"monitor-search-{monitor_id}")
    try:
        return await deferrer.defer_async(monitor_id=monitor_id, trigger=trigger)
    except procrastinate.exceptions.AlreadyEnqueued:
        return None


async def schedule_due(queue: procrastinate.App, store: Store, settings: Settings) -> int:
    """The scheduler's tick: queue a search of every monitor not searched for ``monitor_interval_hours``."""

    def due() -> list[int]:
        with store.session() as session:
            return [m.id for m in q.due(session, timedelta(hours=settings.monitor_interval_hours))]

    n = 0
    for mid in await asyncio.to_thread(due):
        n += await request_search(queue, mid, "schedule") is not None
    return n


def pending(store: Store, queue_name: str) -> int:
    with store.session() as session:
        return q.live_jobs(session, queue_name)


# -- one item ---------------------------------------------------------------------------------------------------------
def process_item(store: Store, settings: Settings, item_id: int) -> str:
    """Read the item's area of interest, ingest, detect, track and publish it; its final status.

    Idempotent: an item already processed, skipped or failed is left as it is. A failure with attempts left raises
    ``RetryItem`` (backoff ``monitor_retry_wait_s`` x 2^(attempt-1)); the last one marks the item failed.
    """
    from shapely import wkb

    from amberwatch.acquire.scene import write_scene_folder
    from amberwatch.ingest import IngestLimits
    from amberwatch.ingest.pipeline import safe_scene_key

    with store.session() as session:
        row = q.claim(session, item_id)
        if row is None:
            raise NotFoundError(f"monitor item {item_id} not found")
        if row.status != "found":
            return row.status
        m = q.by_id(session, row.monitor_id)
        assert m is not None
        item, attempts, aoi = dict(row.item), row.attempts, wkb.loads(bytes(m.aoi.data))
        monitor_name, collection, cloud_max = m.name, m.collection, m.cloud_max
    try:
        plan = asset_bands.asset_plan(collection, item)
        folder = settings.path("acquired", monitor_name, safe_scene_key(str(item["id"])))
        write_scene_folder(item, plan, aoi, folder, settings.stac_allowed_hosts, _path_check(settings),
                           IngestLimits.from_settings(settings))
        if plan.kind == "sentinel1":
            reason = _sentinel1(store, settings, item_id, monitor_name, folder)
            _finish(store, item_id, "processed", reason)
            return "processed"
        scene = scenes_uc.ingest(store, settings, folder)
        cloud = 100.0 * float(scene.cloud_fraction or 0.0)
        if cloud_max is not None and cloud > cloud_max:
            _finish(store, item_id, "skipped", f"cloud cover {cloud:.1f} % over the limit {cloud_max:g} % (measured)",
                    scene.id)
            return "skipped"
        earlier = _published_run(store, scene.id)
        if earlier is not None:  # detected already (a retried job, or another monitor over the same scene)
            _finish(store, item_id, "processed", f"scene {scene.scene_key} was published by run {earlier}",
                    scene.id, earlier)
            return "processed"
        run = runs_uc.create_run(store, settings, scene, created_by=f"monitor:{monitor_name}")
        run = runs_uc.execute_run(store, settings, run.id)
        if run.state != "published":
            raise InputError(f"the run of {scene.scene_key} failed: {run.error}")
        _finish(store, item_id, "processed", None, scene.id, run.id)
    except Exception as err:
        reason = runs_uc.public_error(err)
        if attempts < settings.monitor_max_attempts:
            with store.session() as session:
                q.note_failure(session, item_id, f"attempt {attempts}: {reason}")
            wait = settings.monitor_retry_wait_s * 2 ** (attempts - 1)
            log.warning("monitor %s item %s failed (attempt %d), retry in %.1f s: %s", monitor_name, item.get("id"),
                        attempts, wait, reason)
            raise RetryItem(reason, wait) from err
        log.error("monitor %s item %s failed for good after %d attempts: %s", monitor_name, item.get("id"),
                  attempts, reason)
        _finish(store, item_id, "failed", f"after {attempts} attempts: {reason}")
        return "failed"
    return "processed"  # the run's publishing put it and its scene into /stac (stac_catalog.publish_run)


def _sentinel1(store: Store, settings: Settings, item_id: int, monitor_name: str, folder: Path) -> str:
    """A radar date is compared with the monitor's previous one (``usecases.sentinel1.record_s1_pair``: the change
    is stored and the sites recomputed); the first date is the reference of the next."""
    from amberwatch.ingest.pipeline import safe_scene_key
    from amberwatch.usecases.sentinel1 import record_s1_pair

    with store.session() as session:
        before = q.previous_processed(session, item_id)
    if before is None:
        return "first Sentinel-1 date: the reference of the next one"
    before_folder = settings.path("acquired", monitor_name, safe_scene_key(before))
    record = record_s1_pair(store, settings, sorted(before_folder.glob("*.tif")), sorted(folder.glob("*.tif")))
    return f"radar change against {before}: observation {record.observation_id}, {record.events} new site events"


def _published_run(store: Store, scene_id: int) -> int | None:
    from amberwatch.store.queries import runs as run_queries

    with store.session() as session:
        run = run_queries.latest_published_for_scene(session, scene_id)
        return None if run is None else run.id


def _finish(store: Store, item_id: int, status: str, reason: str | None, scene_id: int | None = None,
            run_id: int | None = None) -> None:
    with store.session() as session:
        q.finish(session, item_id, status, reason, scene_id, run_id)
