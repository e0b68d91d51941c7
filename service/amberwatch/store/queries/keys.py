"""API keys (only their SHA-256 is stored) and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from amberwatch.store.models import ApiKey, AuditEntry


def by_name(session: Session, name: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.name == name))


def by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def add(session: Session, name: str, role: str, prefix: str, key_hash: str) -> ApiKey:
    row = ApiKey(name=name, role=role, prefix=prefix, key_hash=key_hash)
    session.add(row)
    session.flush()
    return row


def revoke(session: Session, row: ApiKey) -> None:
    row.revoked_at = datetime.now(UTC)


def all_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


def touch(session: Session, key_id: int) -> None:
    row = session.get(ApiKey, key_id)
    if row is not None:
        row.last_used_at = datetime.now(UTC)


def audit(session: Session, actor: str, action: str, *, role: str | None = None, client: str | None = None,
          target: str | None = None, status: int | None = None, details: dict[str, Any] | None = None) -> None:
    session.add(AuditEntry(actor=actor, role=role, client=client, action=action, target=target, status=status,
                           details=details or {}))
