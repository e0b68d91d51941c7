"""STAC monitors, the items they found (processed once, by item id) and their search runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from amberwatch.store.models import StacMonitor, StacMonitorItem, StacMonitorRun

STATUSES = ("found", "processed", "skipped", "failed")


def create(session: Session, name: str, stac_url: str, collection: str, aoi: MultiPolygon, cloud_max: float | None,
           start: datetime | None, created_by: str | None) -> StacMonitor:
    row = StacMonitor(name=name, stac_url=stac_url, collection=collection, aoi=from_shape(aoi, srid=4326),
                      cloud_max=cloud_max, start=start, created_by=created_by)
    session.add(row)
    session.flush()
    return row


def by_name(session: Session, name: str) -> StacMonitor | None:
    return session.scalar(select(StacMonitor).where(StacMonitor.name == name))


def by_id(session: Session, monitor_id: int) -> StacMonitor | None:
    return session.get(StacMonitor, monitor_id)


def all_monitors(session: Session, active_only: bool = False) -> list[StacMonitor]:
    q = select(StacMonitor).order_by(StacMonitor.name)
    if active_only:
        q = q.where(StacMonitor.active.is_(True))
    return list(session.scalars(q))


def try_lock(session: Session, monitor_id: int) -> bool:
    """A transaction-scoped advisory lock on the monitor: False when another scheduler holds it."""
    return bool(session.scalar(text("select pg_try_advisory_xact_lock(hashtext('amberwatch:stac-monitor'), :id)"),
                               {"id": monitor_id}))


def due(session: Session, interval: timedelta) -> list[StacMonitor]:
    """Active monitors never searched, or last searched longer than ``interval`` ago."""
    last = (select(StacMonitorRun.monitor_id, func.max(StacMonitorRun.started_at).label("last"))
            .group_by(StacMonitorRun.monitor_id).subquery())
    q = (select(StacMonitor).outerjoin(last, last.c.monitor_id == StacMonitor.id)
         .where(StacMonitor.active.is_(True), (last.c.last.is_(None)) | (last.c.last < datetime.now(UTC) - interval))
         .order_by(StacMonitor.id))
    return list(session.scalars(q))


def start_run(session: Session, monitor_id: int, trigger: str) -> StacMonitorRun:
    run = StacMonitorRun(monitor_id=monitor_id, trigger=trigger)
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run_id: int, found: int, new: int, skipped: int, error: str | None) -> None:
    run = session.get(StacMonitorRun, run_id)
    if run is not None:
        run.finished_at, run.found, run.new, run.skipped, run.error = datetime.now(UTC), found, new, skipped, error


def last_run(session: Session, monitor_id: int) -> StacMonitorRun | None:
    return session.scalar(select(StacMonitorRun).where(StacMonitorRun.monitor_id == monitor_id)
                          .order_by(StacMonitorRun.id.desc()).limit(1))


def add_item(session: Session, monitor_id: int, item: dict[str, Any], collection: str | None,
             acquired: datetime | None, cloud_cover: float | None, status: str, reason: str | None) -> bool:
    """Record a found item once (by its id); True when it is new."""
    stmt = (insert(StacMonitorItem).values(
        monitor_id=monitor_id, item_id=str(item["id"])[:300], collection=collection, acquired=acquired,
        cloud_cover=cloud_cover, status=status, reason=reason, item=item)
        .on_conflict_do_nothing(constraint="stac_monitor_items_once").returning(StacMonitorItem.id))
    return session.scalar(stmt) is not None


def to_queue(session: Session, monitor_id: int) -> list[int]:
    """Items still ``found`` with no live queue job (new, or their job was lost), oldest acquisition first."""
    rows = session.execute(text(
        "select i.id from stac_monitor_items i where i.monitor_id = :m and i.status = 'found' and not exists "
        "(select 1 from procrastinate_jobs j where j.id = i.queue_job_id and j.status in ('todo', 'doing')) "
        "order by i.acquired nulls last, i.item_id"), {"m": monitor_id})
    return [int(r[0]) for r in rows]


def set_queue_job(session: Session, item_id: int, queue_job_id: int) -> None:
    session.execute(update(StacMonitorItem).where(StacMonitorItem.id == item_id)
                    .values(queue_job_id=queue_job_id))


def claim(session: Session, item_id: int) -> StacMonitorItem | None:
    """The item, locked, with one more attempt counted when it is still to do (``found``)."""
    row = session.scalar(select(StacMonitorItem).where(StacMonitorItem.id == item_id).with_for_update())
    if row is not None and row.status == "found":
        row.attempts += 1
        row.updated_at = datetime.now(UTC)
    return row


def finish(session: Session, item_id: int, status: str, reason: str | None = None, scene_id: int | None = None,
           run_id: int | None = None) -> None:
    row = session.get(StacMonitorItem, item_id)
    if row is None:
        return
    row.status, row.reason, row.updated_at = status, reason, datetime.now(UTC)
    row.scene_id = scene_id if scene_id is not None else row.scene_id
    row.run_id = run_id if run_id is not None else row.run_id


def previous_processed(session: Session, item_id: int) -> str | None:
    """The id of the monitor's latest processed item acquired before this one (Sentinel-1 pairs)."""
    row = session.get(StacMonitorItem, item_id)
    if row is None or row.acquired is None:
        return None
    return session.scalar(select(StacMonitorItem.item_id).where(
        StacMonitorItem.monitor_id == row.monitor_id, StacMonitorItem.status == "processed",
        StacMonitorItem.acquired < row.acquired).order_by(StacMonitorItem.acquired.desc()).limit(1))


def note_failure(session: Session, item_id: int, reason: str) -> None:
    session.execute(update(StacMonitorItem).where(StacMonitorItem.id == item_id)
                    .values(reason=reason, updated_at=datetime.now(UTC)))


def counts(session: Session, monitor_id: int) -> dict[str, int]:
    rows = session.execute(select(StacMonitorItem.status, func.count()).where(StacMonitorItem.monitor_id == monitor_id)
                           .group_by(StacMonitorItem.status))
    found = {str(status): int(n) for status, n in rows}
    return {s: found.get(s, 0) for s in STATUSES}


def items(session: Session, monitor_id: int, limit: int = 1000) -> list[StacMonitorItem]:
    return list(session.scalars(select(StacMonitorItem).where(StacMonitorItem.monitor_id == monitor_id)
                                .order_by(StacMonitorItem.acquired.nulls_last(), StacMonitorItem.id).limit(limit)))


def live_jobs(session: Session, queue_name: str) -> int:
    """Queue jobs of ``queue_name`` still to do or running (a retry waiting for its time counts)."""
    return int(session.scalar(text("select count(*) from procrastinate_jobs where queue_name = :q and "
                                    "status in ('todo', 'doing')"), {"q": queue_name}) or 0)
