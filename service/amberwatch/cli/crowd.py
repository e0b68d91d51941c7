"""``amberwatch reports purge``: the retention purge of crowd reports' personal data (docs/operations.md)."""

from __future__ import annotations

import typer

from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.usecases import crowd

reports_app = typer_app("Crowd reports: the retention purge of personal data.")


@reports_app.command("purge")
def purge() -> None:
    """Clear the address and contact of reports older than AMBERWATCH_REPORT_RETENTION_DAYS, and delete the
    photos and videos of rejected reports that old (their reasons stay). The worker also runs it daily."""
    result = crowd.purge(open_store(), settings())
    typer.echo(f"purged personal data of {result.reports} reports and {result.media} media of rejected reports "
               f"made before {result.before:%Y-%m-%d %H:%M} UTC")
