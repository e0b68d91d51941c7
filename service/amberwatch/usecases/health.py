"""Readiness of the service (``/readyz``) and the store's counts for ``/metrics``.

Readiness means: the database answers, its schema is at the migrations' head, MapServer can answer ``/ows``, the
job queue is readable and — when this process runs a worker — a worker sends heartbeats. Each failed check gives
a reason without server paths or database text (those go to the log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from amberwatch.observability.metrics import StoreSnapshot
from amberwatch.store.db import MIGRATIONS_DIR, Store
from amberwatch.store.queries import ops as ops_queries

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    """Every check's details and the reasons the service is not ready (none = ready)."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.reasons

    def fail(self, check: str, reason: str, **details: Any) -> None:
        self.checks[check] = {"ok": False, "reason": reason, **details}
        self.reasons.append(f"{check}: {reason}")

    def passed(self, check: str, **details: Any) -> None:
        self.checks[check] = {"ok": True, **details}


@dataclass(frozen=True)
class MapServerState:
    """What the web app knows of its ``/ows`` backend (given by the caller, which owns it)."""

    installed: bool
    config_written: bool
    mode: str  # "fastcgi" (pool running), "cgi", or "fastcgi (starts on first request)"
    workers_alive: int = 0


@lru_cache(maxsize=4)
def migration_heads(migrations_dir: Path = MIGRATIONS_DIR) -> tuple[str, ...]:
    """The head revision(s) of the migrations shipped with this code."""
    script = ScriptDirectory(str(migrations_dir))
    return tuple(sorted(script.get_heads()))


def readiness(store: Store, mapserver: MapServerState | None, *, worker_required: bool,
              heartbeat_within_s: float) -> Readiness:
    """Run every check (none stops the others)."""
    out = store_readiness(store, worker_required=worker_required, heartbeat_within_s=heartbeat_within_s)
    _mapserver(out, mapserver)
    return out


def store_readiness(store: Store, *, worker_required: bool, heartbeat_within_s: float) -> Readiness:
    """The checks of the database, its schema, the queue and the workers (``amberwatch db check``)."""
    out = Readiness()
    try:
        with store.engine.connect() as conn:
            postgis = ops_queries.postgis_extension(conn)
            if postgis is None:
                out.fail("database", "the PostGIS extension is missing")
            else:
                out.passed("database", postgis=postgis)
            _schema(out, ops_queries.schema_revisions(conn))
            _queue(out, conn, worker_required, heartbeat_within_s)
    except Exception as err:  # the reason for the server log only (it names hosts)
        log.warning("readiness: the database does not answer: %s", str(err).strip().splitlines()[0])
        out.fail("database", "the database does not answer")
    return out


def _schema(out: Readiness, current: list[str]) -> None:
    heads = list(migration_heads())
    if sorted(current) == heads:
        out.passed("migrations", revision=",".join(current))
    else:
        out.fail("migrations", f"schema at {','.join(current) or 'no revision'}, code expects {','.join(heads)}: "
                 "run `amberwatch db start` (it migrates)", revision=",".join(current), head=",".join(heads))


def _queue(out: Readiness, conn: Any, worker_required: bool, heartbeat_within_s: float) -> None:
    try:
        depth = ops_queries.queue_depth(conn)
        live = ops_queries.live_workers(conn, heartbeat_within_s)
    except Exception as err:
        log.warning("readiness: the job queue cannot be read: %s", str(err).strip().splitlines()[0])
        out.fail("queue", "the job queue tables cannot be read")
        return
    todo = sum(n for (_, status), n in depth.items() if status == "todo")
    out.passed("queue", todo=todo, doing=sum(n for (_, s), n in depth.items() if s == "doing"))
    if live or not worker_required:
        out.passed("workers", live=live, required=worker_required)
    else:
        out.fail("workers", f"no job worker sent a heartbeat in the last {heartbeat_within_s:.0f} s",
                 live=0, required=True)


def _mapserver(out: Readiness, state: MapServerState | None) -> None:
    if state is None or not state.installed:
        out.fail("mapserver", "mapserv is not installed: /ows cannot answer")
    elif not state.config_written:
        out.fail("mapserver", "the MapServer configuration has not been written yet", mode=state.mode)
    elif state.mode == "fastcgi" and state.workers_alive == 0:
        out.fail("mapserver", "no mapserv FastCGI worker is running", mode=state.mode)
    else:
        out.passed("mapserver", mode=state.mode, workers=state.workers_alive)


def store_snapshot(store: Store, heartbeat_within_s: float) -> StoreSnapshot:
    """The counts ``/metrics`` exposes, read in one transaction."""
    with store.engine.connect() as conn:
        ingested, processed = ops_queries.scene_counts(conn)
        return StoreSnapshot(queue_jobs=ops_queries.queue_depth(conn), runs=ops_queries.runs_by_state(conn),
                             scenes_ingested=ingested, scenes_processed=processed,
                             live_workers=ops_queries.live_workers(conn, heartbeat_within_s))
