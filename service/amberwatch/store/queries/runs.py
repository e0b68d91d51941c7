"""Runs: their state machine (pending -> queued -> running -> published | failed), attempts and listings."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from amberwatch.store.models import Run, Scene, run_scenes
from amberwatch.store.queries.attempts import claim

TERMINAL = ("published", "failed")


def get(session: Session, run_id: int, *, for_update: bool = False) -> Run | None:
    q = select(Run).where(Run.id == run_id)
    return session.scalar(q.with_for_update() if for_update else q)


def get_one(session: Session, run_id: int) -> Run:
    """The run ``run_id``; raises ``sqlalchemy.exc.NoResultFound`` when it is absent (callers that know it exists)."""
    return session.get_one(Run, run_id)


def create(session: Session, model_version_id: int, scene_id: int, parameters: dict, created_by: str | None,
           message: str = "queued") -> Run:
    """A new ``pending`` run of one scene (the scene must exist), flushed so it has its id."""
    run = Run(model_version_id=model_version_id, state="pending", parameters=parameters, progress=0.0,
              created_by=created_by, message=message)
    run.scenes = [session.get_one(Scene, scene_id)]
    session.add(run)
    session.flush()
    return run


def page(session: Session, state: str | None, limit: int, offset: int) -> list[Run]:
    q = select(Run).order_by(Run.id.desc()).limit(limit).offset(offset)
    if state:
        q = q.where(Run.state == state)
    return list(session.scalars(q))


def orphaned_pending(session: Session, older_than_s: float) -> list[int]:
    """Runs created but never queued (their creator died in between), oldest first."""
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s)
    q = select(Run.id).where(Run.state == "pending", Run.queue_job_id.is_(None), Run.created_at < cutoff)
    return list(session.scalars(q.order_by(Run.id)))


def mark_queued(session: Session, run_id: int, queue_job_id: int) -> None:
    """pending -> queued. The row is locked first: a worker may already have claimed the run (its job starts as soon
    as it is deferred), and an unlocked read would write 'queued' over its 'running' when both commit."""
    run = get(session, run_id, for_update=True)
    if run is not None and run.state == "pending":
        run.state, run.queue_job_id, run.message = "queued", queue_job_id, "queued"


def start_attempt(session: Session, run_id: int, max_attempts: int) -> tuple[str, Run | None]:
    """Claim the run for one more attempt: 'start', 'done' (already finished) or 'exhausted' (failed now)."""
    run = get(session, run_id, for_update=True)
    if run is None:
        return "done", None
    outcome = claim(run, max_attempts, TERMINAL)
    if outcome == "start":
        run.started_at, run.progress = datetime.now(UTC), 0.0
        run.message = "detecting" if run.attempts == 1 else f"detecting (attempt {run.attempts} of {max_attempts})"
    return outcome, run


def set_progress(session: Session, run_id: int, fraction: float, message: str) -> None:
    run = session.get(Run, run_id)
    if run is not None:
        run.progress = max(0.0, min(1.0, fraction))
        run.message = message


def mark_failed(session: Session, run_id: int, error: str) -> None:
    run = get(session, run_id, for_update=True)  # not over a 'published' committed meanwhile
    if run is not None and run.state not in TERMINAL:
        run.state, run.error, run.finished_at, run.message = "failed", error, datetime.now(UTC), "failed"


def latest_published_for_scene(session: Session, scene_id: int) -> Run | None:
    q = (select(Run).join(run_scenes, run_scenes.c.run_id == Run.id)
         .where(run_scenes.c.scene_id == scene_id, Run.state == "published").order_by(Run.id.desc()).limit(1))
    return session.scalar(q)


# runs waiting on a queue job that ended without running them (failed before the task began, cancelled, aborted)
_DEAD_QUEUE_JOB = text(
    "select r.id from runs r join procrastinate_jobs j on j.id = r.queue_job_id "
    "where r.state in ('queued', 'running') and j.status in ('failed', 'cancelled', 'aborted') order by r.id")
# runs waiting on a queue job that no longer exists
_LOST_QUEUE_JOB = text(
    "select r.id from runs r where r.state = 'queued' and r.queue_job_id is not null "
    "and not exists (select 1 from procrastinate_jobs j where j.id = r.queue_job_id) order by r.id")


def waiting_on_dead_jobs(session: Session) -> list[int]:
    return list(session.scalars(_DEAD_QUEUE_JOB))


def waiting_on_lost_jobs(session: Session) -> list[int]:
    return list(session.scalars(_LOST_QUEUE_JOB))


def back_to_pending(session: Session, run_id: int) -> None:
    run = session.get(Run, run_id)
    if run is not None and run.state == "queued":
        run.state, run.queue_job_id, run.message = "pending", None, "queued again"


_QUEUE_JOB_STATUS = text("select status from procrastinate_jobs where id = :id")


def queue_job_done(session: Session, queue_job_id: int | None) -> bool:
    """Whether the run's queue job has ended (finished jobs may be deleted: a missing one has ended too)."""
    if queue_job_id is None:
        return True
    status = session.scalar(_QUEUE_JOB_STATUS, {"id": queue_job_id})
    return status is None or str(status) not in ("todo", "doing")
