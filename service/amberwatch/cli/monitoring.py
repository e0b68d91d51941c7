"""``amberwatch track|stats|layers load``: sites through time, statistics, reference layers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import ProgressBar, open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.ingest.series import expand_scene_paths
from amberwatch.track.stats import check_by, check_format
from amberwatch.usecases import monitoring
from amberwatch.usecases.tracking import track_series
from amberwatch.vector_out import vector_driver

layers_app = typer_app("Reference layers: admin units (oblast, raion, hromada) and protected areas.")


@layers_app.command("load")
def load(
    kind: Annotated[str, typer.Argument(help="oblast, raion, hromada or protected_area.")],
    files: Annotated[list[Path], typer.Argument(help="GeoPackage/GeoJSON/Shapefile(s), or directories of them.")],
    name_field: Annotated[str | None, typer.Option(help="Field with the name (default: auto-detect).")] = None,
    code_field: Annotated[str | None, typer.Option(help="Field with the code (default: auto-detect).")] = None,
    category_field: Annotated[str | None, typer.Option(help="Protected areas: field with the category.")] = None,
    source: Annotated[str | None, typer.Option(help="Dataset name (default: file/directory name).")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer inside a multi-layer file (default: the first).")] = None,
) -> None:
    """Load (replace) a reference layer in one transaction, then recompute every site's admin position.

    Admin kinds replace the whole kind; protected areas replace the rows of the same --source.
    """
    n = monitoring.load_layer_files(open_store(), kind, files, name_field, code_field, category_field, source, layer)
    typer.echo(f"loaded {n} {kind} features")


def stats_command(
    by: Annotated[str, typer.Option(help="Group by oblast, raion, hromada or year.")] = "oblast",
    format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",  # noqa: A002
) -> None:
    """Statistics: disturbed area, new/abandoned sites, area inside protected areas (groups + total)."""
    check_format(format)
    check_by(by)
    typer.echo(monitoring.stats_text(open_store(), by, format), nl=False)


def track_command(
    scenes: Annotated[list[Path], typer.Argument(help="Scenes or directories of scenes, in any order.")],
    out: Annotated[Path | None, typer.Option(help="Write the sites (EPSG:4326) to this .gpkg/.geojson.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or name@version (default: per sensor).")] = None,
) -> None:
    """Follow mining sites through time: ingest every scene, detect in date order, update sites and events."""
    if out is not None:
        vector_driver(out)  # refuse a bad --out before any work
    paths = expand_scene_paths(scenes)
    store = open_store()
    bar = ProgressBar("track")
    try:
        result = track_series(store, settings(), paths, model, progress=bar)
    finally:
        bar.close()
    for r in result["runs"]:
        typer.echo(f"{r['acquired'][:10]} {r['scene_key']}: run {r['run_id']}, {r['n_detections']} detections")
    if out is not None:
        n = monitoring.export_sites(store, out)
        typer.echo(f"wrote {n} sites to {out}")
    typer.echo("sites: " + ", ".join(f"{k} {v}" for k, v in result["sites"].items()))
