"""Scenes: stored ingested scenes, by key, by id, a page, and saving one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from amberwatch.store.models import Scene


def by_key(session: Session, scene_key: str) -> Scene | None:
    return session.scalar(select(Scene).where(Scene.scene_key == scene_key))


def by_id(session: Session, scene_id: int) -> Scene | None:
    return session.get(Scene, scene_id)


def page(session: Session, limit: int, offset: int) -> list[Scene]:
    """Scenes by id."""
    return list(session.scalars(select(Scene).order_by(Scene.id).limit(limit).offset(offset)))


def save(session: Session, row: Scene) -> Scene:
    """Insert (or keep) ``row`` and flush, so a new scene has its id."""
    session.add(row)
    session.flush()
    return row
