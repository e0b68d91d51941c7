"""Use cases for accounts: create and revoke API keys, authenticate a bearer key, write the audit log."""

from __future__ import annotations

import re
from typing import Any

from amberwatch.accounts import ANONYMOUS, Principal, check_role, key_hash, key_prefix, new_key
from amberwatch.errors import InputError, NotFoundError
from amberwatch.store.db import Store
from amberwatch.store.models import ApiKey
from amberwatch.store.queries import keys as key_queries

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def create_key(store: Store, name: str, role: str) -> tuple[ApiKey, str]:
    """A new key for ``name`` with ``role``; returns the row and the key (shown once, never stored)."""
    if not NAME.match(name):
        raise InputError(f"key name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-'")
    checked = check_role(role)
    key = new_key()
    with store.session() as session:
        if key_queries.by_name(session, name) is not None:
            raise InputError(f"a key named {name!r} exists already: revoke it first or choose another name")
        row = key_queries.add(session, name, checked, key_prefix(key), key_hash(key))
        key_queries.audit(session, "cli", "keys.create", target=name, details={"role": checked})
    return row, key


def revoke_key(store: Store, name: str) -> ApiKey:
    with store.session() as session:
        row = key_queries.by_name(session, name)
        if row is None or row.revoked_at is not None:
            raise NotFoundError(f"no active key named {name!r}")
        key_queries.revoke(session, row)
        key_queries.audit(session, "cli", "keys.revoke", target=name)
        return row


def list_keys(store: Store) -> list[ApiKey]:
    with store.session() as session:
        return key_queries.all_keys(session)


def authenticate(store: Store, key: str) -> Principal | None:
    """The principal of an active key, or None when the key is unknown or revoked."""
    if not key.startswith("aw_") or len(key) > 200:
        return None
    with store.session() as session:
        row = key_queries.by_hash(session, key_hash(key))
        if row is None:
            return None
        key_queries.touch(session, row.id)
        return Principal(name=row.name, role=check_role(row.role), key_id=row.id)


def audit(store: Store, principal: Principal | None, action: str, *, client: str | None = None,
          target: str | None = None, status: int | None = None, details: dict[str, Any] | None = None) -> None:
    who = principal or ANONYMOUS
    with store.session() as session:
        key_queries.audit(session, who.name, action, role=who.role, client=client, target=target, status=status,
                          details=details)
