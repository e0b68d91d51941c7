"""``amberwatch geoserver publish``: our layers on a GeoServer (docs/operations.md#deploying-with-geoserver)."""

from __future__ import annotations

import typer

from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.usecases import geoserver as geoserver_uc

geoserver_app = typer_app("GeoServer: publish the layers there too (AMBERWATCH_GEOSERVER_URL).")


@geoserver_app.command("publish")
def geoserver_publish() -> None:
    """Create or update the workspace, PostGIS store, SLD styles and layers (with TIME) on GeoServer."""
    cfg = settings()
    geoserver_uc.publisher(cfg)  # refuse a missing or bad URL before starting the database
    report = geoserver_uc.publish(open_store(cfg), cfg)
    for resource, action in report.actions:
        typer.echo(f"  {action:8} {resource}")
    typer.echo(f"GeoServer {report.url}: workspace {report.workspace} published "
               f"({len(report.created)} created, {len(report.actions) - len(report.created)} updated)")
    typer.echo(f"  WMS: {report.url}/{report.workspace}/wms?SERVICE=WMS&REQUEST=GetCapabilities")
