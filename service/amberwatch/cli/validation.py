"""``amberwatch labels export``, ``amberwatch validation enqueue``, ``amberwatch field assign``
(docs/validation.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.usecases import field_checks as field_uc
from amberwatch.usecases import validation as validation_uc

labels_app = typer_app("Training labels from validated polygons.")
validation_app = typer_app("The volunteers' validation queue.")
field_app = typer_app("Field checks: which sites the field teams visit.")


@labels_app.command("export")
def labels_export(
    out: Annotated[Path, typer.Option(help="GeoPackage to write (.gpkg): layer 'labels' (confirmed mining, "
                                           "class pit/pond) and layer 'rejected' (with the reason).")],
) -> None:
    """Write the validated polygons as training labels (read by chips_from_polygons / amberwatch train)."""
    counts = validation_uc.export_labels(open_store(), out)
    typer.echo(json.dumps({"out": str(out), **counts}))


@validation_app.command("enqueue")
def validation_enqueue(
    threshold: Annotated[float | None, typer.Option(min=0, max=1, help="Default: each run's decision rule.")] = None,
    margin: Annotated[float | None, typer.Option(min=0, max=1, help="Default: the setting.")] = None,
) -> None:
    """Queue the new sites and the detections whose confidence is close to the threshold."""
    cfg = settings()
    typer.echo(json.dumps(validation_uc.enqueue(open_store(cfg), cfg, threshold=threshold, margin=margin)))


@field_app.command("assign")
def field_assign(
    site_ids: Annotated[list[int], typer.Argument(help="Site numbers.")],
    to: Annotated[str | None, typer.Option(help="A field team's key name (default: every field team).")] = None,
) -> None:
    """Give sites to a field team; the field app keeps them on the phone."""
    n = field_uc.assign(open_store(), None, site_ids, to)
    typer.echo(json.dumps({"assigned": n, "to": to}))
