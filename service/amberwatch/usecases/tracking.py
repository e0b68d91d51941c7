"""Use cases for following sites through a series of scenes: queue a tracking job, and execute it in a worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import procrastinate

from amberwatch.accounts import Principal
from amberwatch.errors import InputError, NotFoundError
from amberwatch.ingest.series import expand_scene_paths
from amberwatch.jobs.queue import TRACK_TASK, defer
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Job
from amberwatch.store.queries import jobs as job_queries
from amberwatch.types import Progress, noop_progress
from amberwatch.usecases import runs as runs_uc
from amberwatch.usecases import scenes as scenes_uc

log = logging.getLogger(__name__)
MAX_PATHS = 500


def plan_track(settings: Settings, paths: list[str]) -> list[Path]:
    """Check the server-side paths (allowed roots) and expand folders of scenes: refused before any work."""
    if not paths:
        raise InputError("paths: give at least one scene path")
    if len(paths) > MAX_PATHS:
        raise InputError(f"paths: at most {MAX_PATHS} per request")
    return expand_scene_paths([scenes_uc.check_allowed(Path(p), settings) for p in paths])


async def queue_track(queue: procrastinate.App, store: Store, settings: Settings, paths: list[str],
                      model: str | None, principal: Principal) -> Job:
    """Check and expand the paths, store the job and queue it (the file system and database work off the event
    loop)."""

    def create() -> int:
        scene_paths = plan_track(settings, paths)
        with store.session() as session:
            return job_queries.create(session, "track", {"paths": [str(p) for p in scene_paths], "model": model},
                                      principal.name).id

    def queued(job_id: int, queue_job_id: int) -> Job:
        with store.session() as session:
            job_queries.set_queue_job(session, job_id, queue_job_id)
            job = job_queries.get(session, job_id)
            assert job is not None
            return job

    job_id = await asyncio.to_thread(create)
    queue_job_id = await defer(queue, TRACK_TASK, lock=f"job-{job_id}", job_id=job_id)
    return await asyncio.to_thread(queued, job_id, queue_job_id)


def get_job(store: Store, job_id: int) -> Job:
    with store.session() as session:
        job = job_queries.get(session, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job


def list_jobs(store: Store, state: str | None, limit: int, offset: int) -> list[Job]:
    with store.session() as session:
        return job_queries.page(session, state, limit, offset)


def track_series(store: Store, settings: Settings, paths: list[Path], model: str | None = None,
                 progress: Progress = noop_progress, done: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ingest every scene, then detect them in date order so the sites and their events follow through time.

    ``done`` maps scene ids to the runs already made for them (a retried job continues where it stopped); it is
    updated in place and reported with each progress step. Returns the runs in date order and the sites per status.
    """
    from amberwatch.usecases.monitoring import track_summary

    done = {} if done is None else done
    rows = []
    for i, path in enumerate(paths):
        progress(0.3 * i / max(1, len(paths)), f"ingest {i + 1}/{len(paths)}: {path.name}")
        rows.append(scenes_uc.ingest(store, settings, path))
    ordered = sorted({r.id: r for r in rows}.values(), key=lambda r: r.acquired)
    for i, row in enumerate(ordered):
        if str(row.id) in done:
            continue
        progress(0.3 + 0.7 * i / max(1, len(ordered)), f"detect {i + 1}/{len(ordered)}: {row.scene_key}")
        run = runs_uc.create_run(store, settings, row, model)
        run = runs_uc.execute_run(store, settings, run.id)
        if run.state != "published":
            raise InputError(f"the run of {row.scene_key} failed: {run.error}")
        done[str(row.id)] = {"scene_id": row.id, "scene_key": row.scene_key, "acquired": row.acquired.isoformat(),
                             "run_id": run.id, "n_detections": run.n_detections}
    progress(1.0, "done")
    return {"runs": sorted(done.values(), key=lambda r: r["acquired"]), "sites": track_summary(store)}


def execute_track_job(store: Store, settings: Settings, job_id: int) -> Job:
    """A queued tracking job (``track_series`` with the job's stored progress; idempotent across retries)."""
    with store.session() as session:
        outcome, job = job_queries.start_attempt(session, job_id, settings.job_max_attempts)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        if outcome != "start":
            return job
        params = dict(job.parameters)
        done: dict[str, Any] = dict((job.result or {}).get("runs_by_scene") or {})

    def report(fraction: float, message: str) -> None:
        with store.session() as session:
            job_queries.set_progress(session, job_id, fraction, message, {"runs_by_scene": done} if done else None)

    try:
        result = track_series(store, settings, [Path(p) for p in params.get("paths", [])], params.get("model"),
                              report, done)
        with store.session() as session:
            job_queries.finish(session, job_id, result={**result, "runs_by_scene": done})
    except Exception as err:
        with store.session() as session:
            job_queries.finish(session, job_id, error=runs_uc.public_error(err))
        raise
    return get_job(store, job_id)
