"""``amberwatch ingest|detect|serve|demo|worker``: the pipeline from the command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import ProgressBar, open_store, run_queued, settings
from amberwatch.errors import AmberWatchError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Scene
from amberwatch.usecases import runs as runs_uc
from amberwatch.usecases import scenes as scenes_uc
from amberwatch.vector_out import vector_driver

log = logging.getLogger("amberwatch")


def ingest(
    path: Annotated[Path, typer.Argument(help="A .SAFE folder/zip, a band folder, a GeoTIFF or a Landsat folder.")],
) -> None:
    """Ingest a scene: reflectance on a common grid, cloud mask, STAC metadata."""
    cfg = settings()
    store = open_store(cfg)
    bar = ProgressBar("ingest")
    try:
        scene = scenes_uc.ingest(store, cfg, path, progress=bar)
    finally:
        bar.close()
    typer.echo(f"scene {scene.id}: {scene.scene_key} ({scene.sensor} {scene.level}, {scene.acquired:%Y-%m-%d}, "
               f"{scene.resolution:g} m, clouds {100 * scene.cloud_fraction:.1f}%)")


def detect(
    scene: Annotated[str, typer.Argument(help="A scene path (ingested on the way) or a stored scene id/key.")],
    model: Annotated[str | None, typer.Option(help="Model name or name@version (default: per sensor).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the polygons (EPSG:4326) to .gpkg or .geojson.")] = None,
    reference: Annotated[str | None, typer.Option(
        help="An older scene (path or id/key, e.g. Landsat 2010-2013): also run the change model against it.")] = None,
    pixel_threshold: Annotated[float | None, typer.Option(
        help="Override the model's pixel threshold on P(pit)+P(pond), 0-1 (see docs/models.md).")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="Override the model's minimum object confidence, 0-1: lower finds more sites, with more false "
             "alarms.")] = None,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Run the windows as tiles on Dask: the cluster at AMBERWATCH_DASK_SCHEDULER, else a local "
        "cluster of --workers processes (docs/operations.md#scale-out-with-dask).")] = False,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="Worker processes of the local Dask cluster (implies --dask; default "
        "AMBERWATCH_DASK_WORKERS, 2).")] = None,
    ensemble: Annotated[bool, typer.Option(
        "--ensemble", help="Use the model's U-Net + pixel Random Forest mean ensemble (s2-unet-rf): fewer false "
        "objects on sandbars, about 9x slower inference (docs/models.md#confusers-and-seasons-sentinel-2).")] = False,
) -> None:
    """Run detection on a scene as a queued job worked off here; the polygons become a new published run."""
    cfg = settings()
    if out is not None:
        vector_driver(out)  # refuse a bad --out before any work
    parameters = {"executor": "dask", "dask_workers": workers} if dask or workers else None
    store = open_store(cfg)
    row = scene_arg(store, cfg, scene)
    if ensemble:
        model = runs_uc.ensemble_model(cfg, row, model)
    ref_row = scene_arg(store, cfg, reference) if reference else None
    created = runs_uc.create_run(store, cfg, row, model, parameters, reference=ref_row,
                                 pixel_threshold=pixel_threshold, min_confidence=min_confidence, created_by="cli")
    run = run_queued(store, cfg, created.id)
    if run.state != "published":
        raise AmberWatchError(f"run {run.id} {run.state}: {run.error or 'see the log'}")
    if out is not None:
        from amberwatch.export import write_run

        n = write_run(store, run.id, out)
        typer.echo(f"wrote {n} polygons to {out}")
    typer.echo(f"run {run.id} published: {run.n_detections} detections ({run.provider})")
    typer.echo(f"  version {run.id}: {cfg.base_url}/ogcapi/collections/detections/items?run_id={run.id}")


def scene_arg(store: Store, cfg: Settings, ref: str) -> Scene:
    """A scene given as a path (ingested on the way) or as a stored id/key."""
    path = Path(ref)
    if path.exists():
        bar = ProgressBar("ingest")
        try:
            return scenes_uc.ingest(store, cfg, path, progress=bar)
        finally:
            bar.close()
    return scenes_uc.get_scene(store, ref)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default AMBERWATCH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default AMBERWATCH_PORT).")] = None,
    worker: Annotated[bool | None, typer.Option(
        "--worker/--no-worker", help="Run a job worker in this process (default AMBERWATCH_INPROCESS_WORKER, "
        "true); with --no-worker run `amberwatch worker` separately.")] = None,
) -> None:
    """Serve the REST API, OGC API Features (/ogcapi) and WMS/WFS (/ows), with a job worker by default."""
    import uvicorn

    from amberwatch.web.app import create_app

    cfg = settings()
    if host:
        cfg.host = host
    if port:
        cfg.port = port
    application = create_app(cfg, worker=worker)
    print_urls(cfg)
    # log_config=None: uvicorn's loggers go through ours (text or JSON, AMBERWATCH_LOG_FORMAT)
    uvicorn.run(application, host=cfg.host, port=cfg.port, log_level="info", log_config=None)


def worker(
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=64, help="Jobs at once (default AMBERWATCH_WORKER_CONCURRENCY, 1).")] = None,
) -> None:
    """Run queued jobs (detection runs, tracking) until Ctrl-C; jobs of dead workers are retried."""
    from amberwatch.jobs.queue import make_queue
    from amberwatch.worker.loop import run_worker

    cfg = settings()
    store = open_store(cfg)
    queue = make_queue(store.url)

    async def main() -> None:
        async with queue.open_async():
            await run_worker(queue, store, cfg, concurrency=concurrency)

    typer.echo(f"worker: {concurrency or cfg.worker_concurrency} job(s) at once; Ctrl-C to stop")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("worker stopped")


def print_urls(cfg: Settings) -> None:
    base = cfg.base_url
    typer.secho("\nAmberWatch is serving. Add the layers in QGIS:", fg=typer.colors.GREEN, bold=True)
    typer.echo(f"  WMS 1.3.0  (Layer > Add WMS/WMTS Layer):   {base}/ows?SERVICE=WMS")
    typer.echo(f"  WFS 2.0    (Layer > Add WFS Layer):         {base}/ows?SERVICE=WFS")
    typer.echo(f"  OGC API Features (Add WFS / OGC API layer): {base}/ogcapi")
    typer.echo(f"  REST API and OpenAPI docs:                  {base}/docs")
    typer.echo("  Writes need an API key: amberwatch keys create NAME --role analyst")
    typer.echo("  Press Ctrl-C to stop.\n")


def demo(
    scene: Annotated[Path | None, typer.Option(help="Scene to use (default: the bundled demo scene).")] = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve until Ctrl-C.")] = True,
) -> None:
    """Ingest the demo scene, detect, publish and serve (a second call reuses what is there)."""
    from amberwatch import demo as demo_mod

    bar = ProgressBar("detect")
    try:
        demo_mod.prepare(settings(), scene, progress=bar)
    finally:
        bar.close()
    if serve_after:
        serve(host=None, port=None, worker=None)
