"""The store as a file: ``pg_dump`` (custom format) of the database and ``pg_restore`` into an empty one.

Works on the embedded cluster and on ``AMBERWATCH_DATABASE_URL`` alike: the connection goes to the tools through
libpq's environment (``PGHOST``, ``PGPASSWORD``, ...), never on their command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from amberwatch.errors import AmberWatchError
from amberwatch.store.db import Store


class BackupToolError(AmberWatchError):
    """pg_dump or pg_restore is missing or failed."""


def tool(store: Store, name: str) -> str:
    """``pg_dump``/``pg_restore`` of the configured PostgreSQL binaries, else the one on PATH."""
    candidate = store.settings.pg_bin_dir / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupToolError(f"{name} not found: install postgresql-client (or set AMBERWATCH_PG_BIN_DIR)")
    return found


def tool_version(executable: str) -> str:
    out = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().rsplit(" ", 1)[-1] if out else "unknown"


def libpq_env(store: Store) -> dict[str, str]:
    """The process environment plus the store's connection as libpq variables."""
    url = make_url(store.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    parts = {"PGHOST": url.host, "PGPORT": url.port, "PGUSER": url.username, "PGPASSWORD": url.password,
             "PGDATABASE": url.database, "PGCONNECT_TIMEOUT": "10"}
    env.update({k: str(v) for k, v in parts.items() if v not in (None, "")})
    return env


def _run(args: list[str], store: Store, what: str) -> None:
    res = subprocess.run(args, env=libpq_env(store), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise BackupToolError(f"{what} failed: {detail[-1] if detail else f'exit {res.returncode}'}")


def dump(store: Store, target: Path) -> str:
    """``pg_dump --format=custom`` of the store's database into ``target``; returns pg_dump's version."""
    exe = tool(store, "pg_dump")
    _run([exe, "--format=custom", "--compress=6", "--no-owner", "--no-privileges", f"--file={target}"], store,
         "pg_dump")
    return tool_version(exe)


# entries of the dump that belong to the database, not to us: the extension itself exists in the target (created
# with the database) and only its owner may comment on it
_SKIP_ENTRY = re.compile(r"^\d+; \d+ \d+ (EXTENSION|COMMENT) - (EXTENSION )?(postgis|plpgsql)\b", re.M)


def restore(store: Store, source: Path, workdir: Path) -> None:
    """``pg_restore`` of ``source`` into the store's (empty) database, in one transaction."""
    exe = tool(store, "pg_restore")
    listing = subprocess.run([exe, "--list", str(source)], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise BackupToolError(f"pg_restore cannot read the dump: {listing.stderr.strip().splitlines()[-1:]}")
    entries = workdir / "restore.list"
    entries.write_text("\n".join(line for line in listing.stdout.splitlines() if not _SKIP_ENTRY.match(line)))
    _run([exe, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
          f"--use-list={entries}", "--dbname", make_url(store.url).database or "", str(source)], store, "pg_restore")
