"""Jobs other than detection runs (tracking a series): state, attempts, progress and result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from amberwatch.store.models import Job
from amberwatch.store.queries.attempts import claim

TERMINAL = ("succeeded", "failed")


def create(session: Session, kind: str, parameters: dict[str, Any], created_by: str | None) -> Job:
    job = Job(kind=kind, state="queued", parameters=parameters, created_by=created_by, message="queued")
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: int, *, for_update: bool = False) -> Job | None:
    q = select(Job).where(Job.id == job_id)
    return session.scalar(q.with_for_update() if for_update else q)


def page(session: Session, state: str | None, limit: int, offset: int) -> list[Job]:
    q = select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)
    if state:
        q = q.where(Job.state == state)
    return list(session.scalars(q))


def set_queue_job(session: Session, job_id: int, queue_job_id: int) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        job.queue_job_id = queue_job_id


def start_attempt(session: Session, job_id: int, max_attempts: int) -> tuple[str, Job | None]:
    """Claim the job for one more attempt: 'start', 'done' or 'exhausted' (failed now)."""
    job = get(session, job_id, for_update=True)
    if job is None:
        return "done", None
    outcome = claim(job, max_attempts, TERMINAL)
    if outcome == "start":
        job.started_at = job.started_at or datetime.now(UTC)
    return outcome, job


def set_progress(session: Session, job_id: int, fraction: float, message: str,
                 result: dict[str, Any] | None = None) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        job.progress, job.message = max(0.0, min(1.0, fraction)), message
        if result is not None:
            job.result = result


def finish(session: Session, job_id: int, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    job = session.get(Job, job_id)
    if job is None or job.state in TERMINAL:
        return
    job.finished_at = datetime.now(UTC)
    if error is None:
        job.state, job.progress, job.message = "succeeded", 1.0, "done"
        if result is not None:
            job.result = result
    else:
        job.state, job.error, job.message = "failed", error, "failed"
