"""Command line: ``amberwatch ingest|detect|serve|demo|models|db|train|eval|vhr|track|layers|stats``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from amberwatch.errors import AmberWatchError
from amberwatch.settings import Settings, get_settings
from amberwatch.track import cli as track_cli
from amberwatch.training_cli import eval_app, train_app
from amberwatch.vector_out import vector_driver
from amberwatch.vhr.cli import app as vhr_app

app = typer.Typer(help="AmberWatch: find amber mining on satellite imagery and publish it as OGC layers.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
db_app = typer.Typer(help="The database (embedded cluster or AMBERWATCH_DATABASE_URL).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
log = logging.getLogger("amberwatch")


class ProgressBar:
    """A tqdm bar fed by the pipeline's ``progress(fraction, message)`` callbacks."""

    def __init__(self, desc: str):
        self.bar = tqdm(total=100, desc=desc, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}|{postfix}",
                        file=sys.stderr)

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(100 * max(0.0, min(1.0, fraction)), 1)
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _store(settings: Settings):  # noqa: ANN202
    from amberwatch.store.db import Store

    return Store(settings).start()


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if getattr(err, "status_code", 500) < 500 else 1)


@app.callback()
def main_callback(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A .SAFE folder/zip, a band folder, a GeoTIFF or a Landsat folder.")],
) -> None:
    """Ingest a scene: reflectance on a common grid, cloud mask, STAC metadata."""
    from amberwatch.usecases import scenes as scenes_uc

    settings = get_settings()
    try:
        store = _store(settings)
        bar = ProgressBar("ingest")
        try:
            scene = scenes_uc.ingest(store, settings, path, progress=bar)
        finally:
            bar.close()
    except AmberWatchError as err:
        _fail(err)
    typer.echo(f"scene {scene.id}: {scene.scene_key} ({scene.sensor} {scene.level}, {scene.acquired:%Y-%m-%d}, "
               f"{scene.resolution:g} m, clouds {100 * scene.cloud_fraction:.1f}%)")


@app.command()
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
) -> None:
    """Run detection on a scene, store the polygons as a new published run."""
    from amberwatch.usecases import runs as pipeline

    settings = get_settings()
    try:
        if out is not None:
            vector_driver(out)  # refuse a bad --out before any work
        store = _store(settings)
        row = _scene_arg(store, settings, scene)
        ref_row = _scene_arg(store, settings, reference) if reference else None
        bar = ProgressBar("detect")
        try:
            run = pipeline.detect(store, settings, row, model, progress=bar, reference=ref_row,
                                  pixel_threshold=pixel_threshold, min_confidence=min_confidence)
        finally:
            bar.close()
        if out is not None:
            from amberwatch.export import write_run

            n = write_run(store, run.id, out)
            typer.echo(f"wrote {n} polygons to {out}")
    except AmberWatchError as err:
        _fail(err)
    typer.echo(f"run {run.id} published: {run.n_detections} detections ({run.provider})")
    typer.echo(f"  layer run_{run.id}: {settings.base_url}/ogcapi/collections/run_{run.id}")


def _scene_arg(store, settings: Settings, ref: str):  # noqa: ANN001, ANN202
    """A scene given as a path (ingested on the way) or as a stored id/key."""
    from amberwatch.usecases import scenes as scenes_uc

    path = Path(ref)
    if path.exists():
        bar = ProgressBar("ingest")
        try:
            return scenes_uc.ingest(store, settings, path, progress=bar)
        finally:
            bar.close()
    return scenes_uc.get_scene(store, ref)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default AMBERWATCH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default AMBERWATCH_PORT).")] = None,
) -> None:
    """Serve the REST API, OGC API Features (/ogcapi) and WMS/WFS (/ows)."""
    import uvicorn

    from amberwatch.web.app import create_app

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    try:
        application = create_app(settings)
    except AmberWatchError as err:
        _fail(err)
    print_urls(settings)
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="info")


def print_urls(settings: Settings) -> None:
    base = settings.base_url
    typer.secho("\nAmberWatch is serving. Add the layers in QGIS:", fg=typer.colors.GREEN, bold=True)
    typer.echo(f"  WMS 1.3.0  (Layer > Add WMS/WMTS Layer):   {base}/ows?SERVICE=WMS")
    typer.echo(f"  WFS 2.0    (Layer > Add WFS Layer):         {base}/ows?SERVICE=WFS")
    typer.echo(f"  OGC API Features (Add WFS / OGC API layer): {base}/ogcapi")
    typer.echo(f"  REST API and OpenAPI docs:                  {base}/docs")
    typer.echo("  Press Ctrl-C to stop.\n")


@app.command()
def demo(
    scene: Annotated[Path | None, typer.Option(help="Scene to use (default: the bundled demo scene).")] = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve until Ctrl-C.")] = True,
) -> None:
    """Ingest the demo scene, detect, publish and serve (a second call reuses what is there)."""
    from amberwatch import demo as demo_mod

    settings = get_settings()
    try:
        demo_mod.prepare(settings, scene)
    except AmberWatchError as err:
        _fail(err)
    if serve_after:
        serve()


@models_app.command("list")
def models_list() -> None:
    """List the models in the registry."""
    from amberwatch.detect.registry import list_models

    settings = get_settings()
    for m in list_models(settings.models_dir):
        default = " (default)" if settings.default_models.get(m.family) == m.name else ""
        typer.echo(f"{m.name}@{m.version}\t{m.family}{default}\t{m.path}")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded cluster (if used) and migrate the schema."""
    store = _store(get_settings())
    typer.echo(f"database ready: {store.url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    from amberwatch.store.db import Store

    Store(get_settings()).stop()
    typer.echo("stopped")


app.add_typer(vhr_app, name="vhr", help="Very-high-resolution RGB classifier (Texty method).")
app.add_typer(track_cli.layers_app, name="layers", help="Reference layers: admin units, protected areas.")
app.command("track")(track_cli.track_command)
app.command("stats")(track_cli.stats_command)
# train/eval import the [train] extra lazily, so these commands exist even without it
app.add_typer(train_app, name="train", help="Train models (needs the train extra: pip install -e .[train]).")
app.add_typer(eval_app, name="eval", help="Evaluate models on held-out data.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
