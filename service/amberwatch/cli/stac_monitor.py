"""``amberwatch monitor add|list|run`` (STAC monitors and the scheduler) and ``amberwatch stac sync``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import stac_monitors as uc

monitor_app = typer_app("STAC monitors: search STAC APIs and static catalogs for new scenes and process them.")
stac_app = typer_app("The STAC API at /stac (pgstac): our scenes, runs and models.")


@monitor_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the monitor (letters, digits, _ . -).")],
    stac_url: Annotated[str, typer.Option("--stac-url", help="STAC API root, or a static catalog.json.")],
    collection: Annotated[str, typer.Option("--collection", help="STAC collection id (Sentinel-2 L2A/L1C, "
                                            "Landsat C2 L2, Sentinel-1 RTC/GRD).")],
    aoi: Annotated[Path, typer.Option("--aoi", help="Area of interest: a GeoJSON file (EPSG:4326).")],
    cloud_max: Annotated[float | None, typer.Option("--cloud-max", min=0, max=100,
                                                    help="Skip items above this cloud cover (%).")] = None,
    start: Annotated[datetime | None, typer.Option("--start", formats=["%Y-%m-%d"],
                                                   help="Only items acquired from this date (YYYY-MM-DD).")] = None,
) -> None:
    """Watch a STAC collection over an area of interest."""
    area = uc.read_aoi_file(aoi)
    cfg = settings()
    store = open_store(cfg)
    uc.add_monitor(store, cfg, name, stac_url, collection, area, cloud_max, start, created_by="cli")
    typer.echo(f"monitor {name} added: {collection} at {stac_url}")


@monitor_app.command("list")
def list_command() -> None:
    """The monitors with their last search and their items by status."""
    echo_status(open_store())


def echo_status(store: Store) -> None:
    rows = uc.list_monitors(store)
    if not rows:
        typer.echo("no monitors (amberwatch monitor add ...)")
    for m in rows:
        last = m.last_run
        when = f"{last['started_at']:%Y-%m-%d %H:%M} UTC ({last['trigger']}), found {last['found']}, new " \
               f"{last['new']}" + (f", error: {last['error']}" if last["error"] else "") if last else "never"
        typer.echo(f"{m.name}: {m.collection} at {m.stac_url}; last run {when}; items: "
                   + ", ".join(f"{k} {v}" for k, v in m.items.items()))


@monitor_app.command("run")
def run(once: Annotated[bool, typer.Option("--once", help="Search every monitor now, process the new items and "
                                           "exit (default: run the scheduler until Ctrl-C).")] = False) -> None:
    """Search the monitors and process new items: once, or as the scheduler (a worker with the periodic search)."""
    cfg = settings()
    store = open_store(cfg)
    if once:
        asyncio.run(run_once(store, cfg))
        echo_status(store)
        return
    typer.echo(f"scheduler: monitors searched every {cfg.monitor_interval_hours:g} h; Ctrl-C to stop")
    try:
        asyncio.run(scheduler(store, cfg))
    except KeyboardInterrupt:
        typer.echo("scheduler stopped")


async def run_once(store: Store, cfg: Settings, poll_s: float = 0.5) -> None:
    """Search every active monitor and work its items off in this process (a queue of this command's own, so
    retries with backoff happen here too); returns when no item job is left."""
    from amberwatch.jobs.queue import make_queue
    from amberwatch.worker.loop import register_tasks, run_worker

    queue = make_queue(store.url)
    own = f"cli-{uuid.uuid4().hex[:12]}"
    async with queue.open_async():
        register_tasks(queue)
        for mid in await asyncio.to_thread(uc.active_ids, store):
            await uc.run_monitor(queue, store, cfg, mid, "cli", queue_name=own)
        worker = asyncio.create_task(run_worker(queue, store, cfg, wait=True, queues=[own]))
        try:
            while not worker.done() and await asyncio.to_thread(uc.pending, store, own) > 0:
                await asyncio.sleep(poll_s)
        finally:
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass


async def scheduler(store: Store, cfg: Settings) -> None:
    """The worker of the main queue with the periodic search; the due monitors are searched at start too."""
    from amberwatch.jobs.queue import make_queue
    from amberwatch.worker.loop import register_tasks, run_worker

    queue = make_queue(store.url)
    async with queue.open_async():
        register_tasks(queue)
        await uc.schedule_due(queue, store, cfg)
        await run_worker(queue, store, cfg)


@stac_app.command("sync")
def sync() -> None:
    """Upsert our scenes, published runs and the model registry (MLM) into the STAC API at /stac."""
    from amberwatch.usecases.stac_catalog import sync as sync_uc

    cfg = settings()
    counts = sync_uc(open_store(cfg), cfg)
    typer.echo("STAC API: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
