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
blueprint = procrastinate.Blueprint()


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


@blueprint.task(name="run_detection", queue=QUEUE, pass_context=True)
def run_detection(context: JobContext, run_id: int) -> None:
    """Execute one detection run (idempotent: a finished run is left as it is)."""
    from amberwatch.usecases.runs import execute_run

    deps = _deps(context)
    try:
        execute_run(deps.store, deps.settings, run_id)
    except AmberWatchError as err:  # recorded on the run; not a reason to retry
        log.info("run %d failed: %s", run_id, err)


@blueprint.task(name="track_series", queue=QUEUE, pass_context=True)
def track_series(context: JobContext, job_id: int) -> None:
    """Ingest a series of scenes and detect them in date order (idempotent: finished scenes are skipped)."""
    from amberwatch.usecases.tracking import execute_track_job

    deps = _deps(context)
    try:
        execute_track_job(deps.store, deps.settings, job_id)
    except AmberWatchError as err:
        log.info("tracking job %d failed: %s", job_id, err)
