"""Use cases for following sites through a series of scenes: queue a tracking job, and execute it in a worker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import procrastinate

from amberwatch.accounts import Principal
from amberwatch.errors import InputError, NotFoundError
from amberwatch.jobs.queue import TRACK_TASK, defer
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Job
from amberwatch.store.queries import jobs as job_queries
from amberwatch.usecases import runs as runs_uc
from amberwatch.usecases import scenes as scenes_uc

log = logging.getLogger(__name__)
MAX_PATHS = 500


def _expand(paths: list[Path]) -> list[Path]:
    from amberwatch.track.cli import expand_scene_paths

    return expand_scene_paths(paths)


def plan_track(settings: Settings, paths: list[str]) -> list[Path]:
    """Check the server-side paths (allowed roots) and expand folders of scenes: refused before any work."""
    if not paths:
        raise InputError("paths: give at least one scene path")
    if len(paths) > MAX_PATHS:
        raise InputError(f"paths: at most {MAX_PATHS} per request")
    return _expand([scenes_uc.check_allowed(Path(p), settings) for p in paths])


async def queue_track(queue: procrastinate.App, store: Store, settings: Settings, paths: list[str],
                      model: str | None, principal: Principal) -> Job:
    scene_paths = plan_track(settings, paths)
    with store.session() as session:
        job = job_queries.create(session, "track", {"paths": [str(p) for p in scene_paths], "model": model},
                                 principal.name)
    queue_job_id = await defer(queue, TRACK_TASK, lock=f"job-{job.id}", job_id=job.id)
    with store.session() as session:
        job_queries.set_queue_job(session, job.id, queue_job_id)
    return get_job(store, job.id)


def get_job(store: Store, job_id: int) -> Job:
    with store.session() as session:
        job = job_queries.get(session, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job


def list_jobs(store: Store, state: str | None, limit: int, offset: int) -> list[Job]:
    with store.session() as session:
        return job_queries.page(session, state, limit, offset)


def execute_track_job(store: Store, settings: Settings, job_id: int) -> Job:
    """Ingest every scene, then detect them in date order; scenes with a published run of this job are skipped,
    so a retried job continues where its dead worker stopped."""
    from amberwatch.usecases.monitoring import track_summary

    with store.session() as session:
        outcome, job = job_queries.start_attempt(session, job_id, settings.job_max_attempts)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        if outcome != "start":
            return job
        params = dict(job.parameters)
        result: dict[str, Any] = dict(job.result or {})
    done: dict[str, Any] = dict(result.get("runs_by_scene") or {})

    def report(fraction: float, message: str) -> None:
        with store.session() as session:
            job_queries.set_progress(session, job_id, fraction, message,
                                     {"runs_by_scene": done} if done else None)

    try:
        paths = [Path(p) for p in params.get("paths", [])]
        rows = []
        for i, path in enumerate(paths):
            report(0.3 * i / max(1, len(paths)), f"ingest {i + 1}/{len(paths)}: {path.name}")
            rows.append(scenes_uc.ingest(store, settings, path))
        ordered = sorted({r.id: r for r in rows}.values(), key=lambda r: r.acquired)
        for i, row in enumerate(ordered):
            if str(row.id) in done:
                continue
            report(0.3 + 0.7 * i / max(1, len(ordered)), f"detect {i + 1}/{len(ordered)}: {row.scene_key}")
            run = runs_uc.create_run(store, settings, row, params.get("model"))
            run = runs_uc.execute_run(store, settings, run.id)
            done[str(row.id)] = {"scene_id": row.id, "scene_key": row.scene_key,
                                 "acquired": row.acquired.isoformat(), "run_id": run.id,
                                 "n_detections": run.n_detections}
        final = {"runs": sorted(done.values(), key=lambda r: r["acquired"]), "runs_by_scene": done,
                 "sites": track_summary(store)}
        with store.session() as session:
            job_queries.finish(session, job_id, result=final)
    except Exception as err:
        with store.session() as session:
            job_queries.finish(session, job_id, error=runs_uc.public_error(err))
        raise
    return get_job(store, job_id)
