"""Command line: ``amberwatch ingest|detect|serve|demo|worker|keys|models|db|train|eval|vhr|track|layers|stats``.

Commands only parse arguments, call use cases and print; errors go through one handler (``cli.errors``).
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from pydantic import ValidationError

from amberwatch.cli import accuracy, admin, monitoring, pipeline, stac_monitor
from amberwatch.cli.common import settings
from amberwatch.cli.crowd import reports_app
from amberwatch.cli.errors import typer_app
from amberwatch.cli.geoserver import geoserver_app
from amberwatch.cli.ops import mapserv  # also registers `db check`
from amberwatch.cli.sentinel1 import s1_app
from amberwatch.cli.training import eval_app, train_app
from amberwatch.cli.validation import field_app, labels_app, validation_app
from amberwatch.cli.vhr import app as vhr_app
from amberwatch.observability.logs import configure_logging

app = typer_app("AmberWatch: find amber mining on satellite imagery and publish it as OGC layers.")


@app.callback()
def main_callback(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    try:
        cfg = settings()
    except ValidationError as err:  # a bad AMBERWATCH_* variable: say which, no traceback
        problems = "; ".join(f"AMBERWATCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors())
        typer.secho(f"error: invalid settings: {problems}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    # AMBERWATCH_LOG_FORMAT=json: one JSON object per line (docs/operations.md#logs)
    configure_logging(logging.DEBUG if verbose else logging.INFO, cfg.log_format)
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


for command in (pipeline.ingest, pipeline.detect, pipeline.serve, pipeline.worker, pipeline.demo, mapserv):
    app.command()(command)
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.models_app, name="models")
app.add_typer(admin.db_app, name="db")
app.add_typer(geoserver_app, name="geoserver")
app.add_typer(vhr_app, name="vhr", help="Very-high-resolution RGB classifier (Texty method).")
app.add_typer(monitoring.layers_app, name="layers", help="Reference layers: admin units, protected areas.")
app.command("track")(monitoring.track_command)
app.command("stats")(monitoring.stats_command)
app.add_typer(reports_app, name="reports")  # crowd reports: the retention purge
app.add_typer(accuracy.accuracy_app, name="accuracy")
app.add_typer(stac_monitor.monitor_app, name="monitor")
app.add_typer(stac_monitor.stac_app, name="stac")
app.add_typer(s1_app, name="s1")
app.add_typer(labels_app, name="labels")
app.add_typer(validation_app, name="validation")
app.add_typer(field_app, name="field")
# train/eval import the [train] extra lazily, so these commands exist even without it
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


def main() -> None:
    app()
