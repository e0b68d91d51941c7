"""Roles, what each may do, and API keys (pure logic: no database, no HTTP).

A key is ``aw_`` + 43 random URL-safe characters (256 bits). It is shown once; only its SHA-256 is stored —
a fast hash is right for a random 256-bit secret (nothing to brute-force), unlike a password.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "analyst", "moderator", "validator", "field"]
ROLES: tuple[Role, ...] = ("admin", "analyst", "moderator", "validator", "field")
KEY_PREFIX = "aw_"

# What each role may change (admin may do everything). Public users are anonymous and read-only.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "ingest": frozenset({"admin", "analyst"}),
    "run": frozenset({"admin", "analyst"}),
    "track": frozenset({"admin", "analyst"}),
    "layers": frozenset({"admin", "analyst"}),
    "moderate": frozenset({"admin", "moderator"}),
    "validate": frozenset({"admin", "moderator", "validator"}),
    "decide": frozenset({"admin", "analyst"}),  # the final word on a disputed validation item
    "field_check": frozenset({"admin", "analyst", "field"}),
    "admin": frozenset({"admin"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or the anonymous public."""

    name: str
    role: Role | None
    key_id: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.role is None

    def may(self, permission: str) -> bool:
        return self.role is not None and self.role in PERMISSIONS[permission]


ANONYMOUS = Principal(name="anonymous", role=None)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The part of a key that may be shown in lists and logs."""
    return key[: len(KEY_PREFIX) + 6]


def check_role(role: str) -> Role:
    if role not in ROLES:
        from amberwatch.errors import InputError

        raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]
