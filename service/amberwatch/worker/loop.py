"""A bounded worker: ``concurrency`` jobs at once, and recovery of jobs whose worker died (at start and then
periodically): they are queued again, and a job started too often is failed by its use case."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import procrastinate

from amberwatch.jobs.queue import QUEUE
from amberwatch.observability.metrics import observe_job
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.worker.tasks import WorkerDeps, make_blueprint

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


def register_tasks(queue: procrastinate.App) -> None:
    """Make the task bodies known to ``queue`` (once)."""
    if not any(name.startswith("amberwatch:") for name in queue.tasks):
        queue.add_tasks_from(make_blueprint(), namespace="amberwatch")


async def recover_stalled(queue: procrastinate.App, stalled_after_s: float) -> int:
    """Queue again every job whose worker sent no heartbeat for ``stalled_after_s`` (or has vanished)."""
    stalled = list(await queue.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s))
    for job in stalled:
        log.warning("job %s (%s %s) lost its worker: queued again", job.id, job.task_name, job.task_kwargs)
        await queue.job_manager.retry_job(job, queue=QUEUE)  # a dead command's own queue has no worker
    return len(stalled)


async def _recovery_loop(queue: procrastinate.App, store: Store, stalled_after_s: float) -> None:
    from amberwatch.usecases.runs import queue_orphans

    while True:
        try:
            await recover_stalled(queue, stalled_after_s)
            await queue_orphans(queue, store, older_than_s=max(60.0, 3 * stalled_after_s))
        except Exception:  # keep the loop alive; the next round tries again
            log.exception("job recovery failed")
        await asyncio.sleep(max(2.0, stalled_after_s / 2))


async def run_worker(queue: procrastinate.App, store: Store, settings: Settings, *, wait: bool = True,
                     concurrency: int | None = None, queues: list[str] | None = None) -> None:
    """Run jobs of ``queues`` (default: the main queue) until cancelled (``wait``) or until none is left."""
    register_tasks(queue)
    concurrency = concurrency or settings.worker_concurrency
    log.info("worker: %d job(s) at once, jobs without a heartbeat for %.0f s are retried (at most %d starts)",
             concurrency, settings.job_stalled_after_s, settings.job_max_attempts)
    await recover_stalled(queue, settings.job_stalled_after_s)
    recovery = asyncio.create_task(_recovery_loop(queue, store, settings.job_stalled_after_s))
    try:
        await queue.run_worker_async(
            queues=queues or [QUEUE], concurrency=concurrency, wait=wait, install_signal_handlers=False,
            additional_context={"deps": WorkerDeps(store, settings)}, update_heartbeat_interval=HEARTBEAT_S,
            stalled_worker_timeout=settings.job_stalled_after_s, listen_notify=True,
            delete_jobs="successful",  # the runs and jobs rows keep what users see; failed queue rows stay
            worker_middleware=[observe_job],  # job durations for /metrics
        )
    finally:
        recovery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recovery
