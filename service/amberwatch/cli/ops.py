"""``amberwatch mapserv`` (MapServer FastCGI workers for nginx, infra/compose) and ``amberwatch db check`` (the
store's readiness, for container health checks)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from amberwatch.cli.admin import db_app
from amberwatch.cli.common import settings
from amberwatch.errors import AmberWatchError


def mapserv(
    socket: Annotated[Path, typer.Option(help="Unix socket nginx connects to (fastcgi_pass unix:...).")],
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="mapserv processes (default AMBERWATCH_MAPSERV_WORKERS, at least 1).")] = None,
    wait: Annotated[float, typer.Option(
        min=0, help="Seconds to wait for the MapServer configuration that the API writes at its start.")] = 120,
) -> None:
    """Run mapserv FastCGI workers on SOCKET until Ctrl-C or SIGTERM, restarting any that exits: the MapServer
    behind nginx of a deployment where the API runs elsewhere (infra/compose/compose.yaml)."""
    from amberwatch.publish import OgcPaths
    from amberwatch.publish.layers import MAP_ALIAS
    from amberwatch.publish.ows import MapServerCGI, find_mapserv

    cfg = settings()
    exe = find_mapserv(cfg.mapserv_bin)
    if exe is None:
        raise AmberWatchError(f"mapserv not found at {cfg.mapserv_bin} nor on PATH: apt-get install cgi-mapserver")
    config = OgcPaths.of(cfg).mapserver_config
    deadline = time.monotonic() + wait
    while not config.exists():
        if time.monotonic() > deadline:
            raise AmberWatchError("no MapServer configuration in the data directory after "
                                  f"{wait:.0f} s: the API writes it when it starts (same AMBERWATCH_DATA_DIR)")
        time.sleep(1)
    pool = MapServerCGI(Path(exe), config, MAP_ALIAS, workers=workers or max(1, cfg.mapserv_workers),
                        socket_path=socket).pool
    assert pool is not None
    stop = threading.Event()

    def on_term(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    pool.start()
    typer.echo(f"mapserv: {pool.size} FastCGI worker(s) on {socket}; Ctrl-C to stop")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        pool.stop()
    typer.echo("mapserv stopped")


@db_app.command("check")
def db_check() -> None:
    """Check the database: it answers, its schema is at this version's head, the job queue is readable. Exit 1
    with the reasons otherwise (a container health check; it migrates nothing)."""
    from amberwatch.store.db import Store
    from amberwatch.usecases import health as health_uc

    cfg = settings()
    try:
        store = Store(cfg).start(migrate=False)
    except AmberWatchError as err:
        typer.echo(f"not ready: database: {err}", err=True)
        raise typer.Exit(1) from None
    try:
        result = health_uc.store_readiness(store, worker_required=False, heartbeat_within_s=cfg.job_stalled_after_s)
    finally:
        store.engine.dispose()
    if not result.ready:
        typer.echo("not ready: " + "; ".join(result.reasons), err=True)
        raise typer.Exit(1)
    revision = result.checks["migrations"].get("revision", "")
    typer.echo(f"ready: schema {revision}, {result.checks['queue']['todo']} job(s) waiting, "
               f"{result.checks['workers']['live']} live worker(s)")
