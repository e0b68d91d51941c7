"""CLI: ``amberwatch track``, ``amberwatch stats`` and ``amberwatch layers load`` (registered by amberwatch.cli)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from amberwatch.errors import AmberWatchError, InputError
from amberwatch.settings import get_settings

log = logging.getLogger(__name__)
layers_app = typer.Typer(help="Reference layers: admin units (oblast, raion, hromada) and protected areas.",
                         no_args_is_help=True)


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if getattr(err, "status_code", 500) < 500 else 1)


def _store():  # noqa: ANN202
    from amberwatch.store.db import Store

    return Store(get_settings()).start()


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
    from amberwatch.usecases.monitoring import load_layer_files

    try:
        n = load_layer_files(_store(), kind, files, name_field, code_field, category_field, source, layer)
    except AmberWatchError as err:
        _fail(err)
    typer.echo(f"loaded {n} {kind} features")


def stats_command(
    by: Annotated[str, typer.Option(help="Group by oblast, raion or year.")] = "oblast",
    format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",  # noqa: A002
) -> None:
    """Statistics: disturbed area, new/abandoned sites, area inside protected areas (groups + total)."""
    from amberwatch.track.stats import check_by, check_format
    from amberwatch.usecases.monitoring import stats_text

    try:
        check_format(format)
        check_by(by)
        output = stats_text(_store(), by, format)
    except AmberWatchError as err:
        _fail(err)
    typer.echo(output, nl=False)


def _scene_kind(path: Path, folder: Path) -> str | None:
    """The ingest recogniser's verdict on an entry of ``folder`` (the one list of scene layouts); an entry that
    ingest refuses outright (a .vrt, an unreadable entry) or a symlink out of ``folder`` is no scene."""
    from amberwatch.ingest import recognise_input
    from amberwatch.ingest.safety import check_inside

    try:
        check_inside(path, folder)  # the folder was checked (allowed roots); its entries must stay inside it
        return recognise_input(path)
    except (InputError, OSError) as err:
        log.info("skipping %s: %s", path.name, err)
        return None


def expand_scene_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory that ingest takes as one scene (.SAFE, Landsat folder, Sentinel-2 band folder)
    as is; any other directory is replaced by the scenes directly inside it (as recognised by
    ``amberwatch.ingest.recognise_input``, so track accepts every layout ingest and detect accept)."""
    from amberwatch.ingest import recognise_input

    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path.name or path}: no such file or directory")
        if path.is_file() or recognise_input(path) is not None:
            out.append(path)
            continue
        found = [p for p in sorted(path.iterdir()) if _scene_kind(p, path) is not None]
        if not found:
            raise InputError(f"{path.name or path}: no scene in this directory (GeoTIFF, .zip, .SAFE, Landsat "
                             "folder or Sentinel-2 band folder)")
        out.extend(found)
    return list(dict.fromkeys(out))


def track_command(
    scenes: Annotated[list[Path], typer.Argument(help="Scenes or directories of scenes, in any order.")],
    out: Annotated[Path | None, typer.Option(help="Write the sites (EPSG:4326) to this .gpkg/.geojson.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or name@version (default: per sensor).")] = None,
) -> None:
    """Follow mining sites through time: ingest every scene, detect in date order, update sites and events."""
    from amberwatch.usecases import runs as pipeline
    from amberwatch.usecases import scenes as scenes_uc
    from amberwatch.usecases.monitoring import export_sites, track_summary
    from amberwatch.vector_out import vector_driver

    settings = get_settings()
    try:
        if out is not None:
            vector_driver(out)  # refuse a bad --out before any work
        paths = expand_scene_paths(scenes)
        store = _store()
        rows = [scenes_uc.ingest(store, settings, p) for p in tqdm(paths, desc="ingest", unit="scene", file=sys.stderr)]
        rows = sorted({r.id: r for r in rows}.values(), key=lambda r: r.acquired)
        for row in tqdm(rows, desc="detect", unit="scene", file=sys.stderr):
            run = pipeline.detect(store, settings, row, model)
            typer.echo(f"{row.acquired:%Y-%m-%d} {row.scene_key}: run {run.id}, {run.n_detections} detections")
        summary = track_summary(store)
        if out is not None:
            n = export_sites(store, out)
            typer.echo(f"wrote {n} sites to {out}")
    except AmberWatchError as err:
        _fail(err)
    typer.echo("sites: " + ", ".join(f"{k} {v}" for k, v in summary.items()))

