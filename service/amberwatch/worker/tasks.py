"""The task bodies the worker runs: each calls one use case with the worker's store and settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import procrastinate
from procrastinate import JobContext

from amberwatch.errors import AmberWatchError
from amberwatch.jobs.queue import QUEUE
from amberwatch.settings import Settings
from amberwatch.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerDeps:
    """What a task needs, handed to the worker as its additional context."""

    store: Store
    settings: Settings


def _deps(context: JobContext) -> WorkerDeps:
    deps = (context.additional_context or {}).get("deps")
    if not isinstance(deps, WorkerDeps):
        raise RuntimeError("the worker was started without its store and settings")
    return deps


def run_detection(context: JobContext, run_id: int) -> None:
    """Execute one detection run (idempotent: a finished run is left as it is)."""
    from amberwatch.usecases.runs import execute_run

    deps = _deps(context)
    try:
        execute_run(deps.store, deps.settings, run_id)
    except AmberWatchError as err:  # recorded on the run; not a reason to retry
        log.info("run %d failed: %s", run_id, err)
    _alerts_after(context)


def track_series(context: JobContext, job_id: int) -> None:
    """Ingest a series of scenes and detect them in date order (idempotent: finished scenes are skipped)."""
    from amberwatch.usecases.tracking import execute_track_job

    deps = _deps(context)
    try:
        execute_track_job(deps.store, deps.settings, job_id)
    except AmberWatchError as err:
        log.info("tracking job %d failed: %s", job_id, err)
    _alerts_after(context)


# -- alerts for an area (usecases/alerts.py) ----------------------------------------------------------------
def _alerts_after(context: JobContext) -> None:
    """A run may have been published: queue a scan for new events in subscribed areas."""
    from amberwatch.usecases.alerts import request_scan

    request_scan(context.app)


async def scan_alerts(context: JobContext) -> None:
    """Match newly published runs against the subscriptions and queue one delivery per (subscription, run)."""
    import asyncio

    from amberwatch.usecases import alerts

    deps = _deps(context)
    for delivery_id in await asyncio.to_thread(alerts.scan, deps.store, deps.settings):
        await alerts.queue_delivery(context.app, delivery_id)


def scan_alerts_periodic(context: JobContext, timestamp: int) -> None:
    """Every 2 minutes: runs published outside the worker (CLI ``detect``/``track``) are scanned too."""
    from amberwatch.usecases.alerts import scan_needed

    if scan_needed(_deps(context).store):
        _alerts_after(context)


def deliver_alert(context: JobContext, delivery_id: int) -> None:
    """POST one signed delivery; a failure worth retrying is retried after 2^n s (the use case stops after
    AMBERWATCH_WEBHOOK_MAX_ATTEMPTS attempts)."""
    from amberwatch.usecases.alerts import DeliveryFailed, deliver

    deps = _deps(context)
    try:
        deliver(deps.store, deps.settings, delivery_id)
    except DeliveryFailed as err:
        raise RuntimeError(str(err)) from None


# -- STAC monitors (usecases/stac_monitors.py) ---------------------------------------------------------------
async def search_monitor(context: JobContext, monitor_id: int, trigger: str = "schedule") -> None:
    """Search one monitor and queue one job per new item (under the monitor's lock, in acquisition order)."""
    from amberwatch.usecases import stac_monitors

    deps = _deps(context)
    await stac_monitors.run_monitor(context.app, deps.store, deps.settings, monitor_id, trigger)


async def schedule_monitors(context: JobContext, timestamp: int) -> None:
    """Every 15 minutes (once per tick whatever the number of workers): search the monitors that are due
    (AMBERWATCH_MONITOR_INTERVAL_HOURS)."""
    from amberwatch.usecases import stac_monitors

    deps = _deps(context)
    await stac_monitors.schedule_due(context.app, deps.store, deps.settings)


def process_monitor_item(context: JobContext, item_id: int) -> None:
    """Acquire, ingest, detect, track and publish one STAC item; ``RetryItem`` is retried by ``ItemRetry``."""
    from amberwatch.usecases.stac_monitors import process_item

    deps = _deps(context)
    process_item(deps.store, deps.settings, item_id)
    _alerts_after(context)


def purge_reports_periodic(context: JobContext, timestamp: int) -> None:
    """Daily: clear crowd reports' personal data older than AMBERWATCH_REPORT_RETENTION_DAYS."""
    from amberwatch.usecases.crowd import purge

    deps = _deps(context)
    purge(deps.store, deps.settings)


def enqueue_validation_periodic(context: JobContext, timestamp: int) -> None:
    """Hourly: new sites and uncertain detections of the published runs join the volunteers' queue."""
    from amberwatch.usecases.validation import enqueue

    deps = _deps(context)
    enqueue(deps.store, deps.settings)


def make_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint of our tasks for one App. (``App.add_tasks_from`` renames the blueprint's tasks in place, so
    one module-level blueprint shared by two Apps in a process — tests, or the CLI beside a server app — would get
    its names prefixed twice and its jobs would find no task.)"""
    bp = procrastinate.Blueprint()
    bp.task(name="run_detection", queue=QUEUE, pass_context=True)(run_detection)
    bp.task(name="track_series", queue=QUEUE, pass_context=True)(track_series)
    bp.task(name="scan_alerts", queue=QUEUE, pass_context=True)(scan_alerts)
    periodic = bp.task(name="scan_alerts_periodic", queue=QUEUE, pass_context=True)(scan_alerts_periodic)
    bp.periodic(cron="*/2 * * * *")(periodic)
    bp.task(name="deliver_alert", queue=QUEUE, pass_context=True,
            retry=procrastinate.RetryStrategy(max_attempts=20, exponential_wait=2,
                                              retry_exceptions={RuntimeError}))(deliver_alert)
    from amberwatch.usecases.stac_monitors import ItemRetry

    bp.task(name="search_monitor", queue=QUEUE, pass_context=True)(search_monitor)
    tick = bp.task(name="schedule_monitors", queue=QUEUE, pass_context=True,
                   queueing_lock="schedule-monitors")(schedule_monitors)
    bp.periodic(cron="*/15 * * * *", periodic_id="stac-monitors")(tick)
    bp.task(name="process_monitor_item", queue=QUEUE, pass_context=True, retry=ItemRetry())(process_monitor_item)
    purge_reports = bp.task(name="purge_reports_periodic", queue=QUEUE, pass_context=True,
                            queueing_lock="purge-reports")(purge_reports_periodic)
    bp.periodic(cron="17 3 * * *", periodic_id="purge-reports")(purge_reports)
    validation = bp.task(name="enqueue_validation_periodic", queue=QUEUE, pass_context=True,
                         queueing_lock="enqueue-validation")(enqueue_validation_periodic)
    bp.periodic(cron="41 * * * *", periodic_id="enqueue-validation")(validation)
    return bp
