"""The pgstac store behind /stac (schema ``pgstac``, migration 0011): collections and items through pgstac's own
SQL functions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from amberwatch.store.models import Run, Scene


def upsert_collection(session: Session, collection: dict[str, Any]) -> None:
    session.execute(text("select pgstac.upsert_collection(cast(:c as jsonb))"), {"c": json.dumps(collection)})


def upsert_items(session: Session, items: list[dict[str, Any]]) -> None:
    if items:
        session.execute(text("select pgstac.upsert_items(cast(:i as jsonb))"), {"i": json.dumps(items, default=str)})


def pgstac_present(session: Session) -> bool:
    """Whether the pgstac schema (its items table) is in this database."""
    return bool(session.scalar(text("select to_regclass('pgstac.items') is not null")))


def item_ids(session: Session, collection: str) -> set[str]:
    rows = session.execute(text("select id from pgstac.items where collection = :c"), {"c": collection})
    return {str(r[0]) for r in rows}


def scenes(session: Session) -> list[Scene]:
    return list(session.scalars(select(Scene).order_by(Scene.id)))


def published_runs(session: Session) -> list[Run]:
    rows = list(session.scalars(select(Run).where(Run.state == "published").order_by(Run.id)))
    for run in rows:
        _ = run.scenes, run.model_version
    return rows


def published_run(session: Session, run_id: int) -> Run | None:
    """The run ``run_id`` with its scenes and model version loaded, if it is published."""
    run = session.scalar(select(Run).where(Run.id == run_id, Run.state == "published"))
    if run is not None:
        _ = run.scenes, run.model_version
    return run


def first_acquired(session: Session) -> datetime | None:
    """The acquisition time of the oldest scene (the start of the scenes' and runs' temporal extent)."""
    return session.scalar(select(func.min(Scene.acquired)))
