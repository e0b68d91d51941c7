"""What the commands share: the settings (read here, once), the store, a progress bar, following a queued run."""

from __future__ import annotations

import asyncio
import sys
import uuid

from tqdm import tqdm

from amberwatch.settings import Settings
from amberwatch.settings import get_settings as _read_settings
from amberwatch.store.db import Store
from amberwatch.store.models import Run


def settings() -> Settings:
    """The settings of the environment (read once per process by amberwatch.settings)."""
    return _read_settings()


def open_store(cfg: Settings | None = None) -> Store:
    return Store(cfg or settings()).start()


class ProgressBar:
    """A tqdm bar fed by ``progress(fraction, message)`` callbacks."""

    def __init__(self, desc: str):
        self.bar = tqdm(total=100, desc=desc, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix}",
                        file=sys.stderr)

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(100 * max(0.0, min(1.0, fraction)), 1)
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run_queued(store: Store, cfg: Settings, run_id: int, desc: str = "detect") -> Run:
    """Queue the run as a job and work it off here, showing its stored progress; returns the finished run.

    The job goes to a queue of this command's own, so this process runs exactly this job; if the process dies,
    the recovery of any worker moves the job to the main queue and runs it there.
    """
    return asyncio.run(_run_queued(store, cfg, run_id, desc))


async def _run_queued(store: Store, cfg: Settings, run_id: int, desc: str) -> Run:
    from amberwatch.jobs.queue import make_queue
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.worker.loop import run_worker

    queue = make_queue(store.url)
    own_queue = f"cli-{uuid.uuid4().hex[:12]}"
    bar = ProgressBar(desc)
    async with queue.open_async():
        await runs_uc.queue_run(queue, store, run_id, queue_name=own_queue)
        worker = asyncio.create_task(run_worker(queue, store, cfg, wait=False, queues=[own_queue]))
        try:
            while True:
                finished = worker.done()  # look before reading the run: its last state is then seen
                run = await asyncio.to_thread(runs_uc.get_run, store, run_id)
                bar(run.progress, run.message or run.state)
                if finished:
                    worker.result()  # a worker error surfaces here
                    break
                await asyncio.sleep(0.3)
        finally:
            bar.close()
            if not worker.done():
                worker.cancel()
    return run
