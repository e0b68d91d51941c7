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
        raise BackupToolError(f"{what} failed: {_error_line(res.stderr or res.stdout)}")


def dump(store: Store, target: Path) -> str:
    """``pg_dump --format=custom`` of the store's database into ``target``; returns pg_dump's version."""
    exe = tool(store, "pg_dump")
    _run([exe, "--format=custom", "--compress=6", f"--file={target}"], store, "pg_dump")
    return tool_version(exe)


def dump_roles(store: Store, target: Path) -> bool:
    """The cluster's roles (``pg_dumpall --roles-only``, no passwords) into ``target``: the objects of the dump are
    granted to them (pgstac's roles, for one). False when the database user may not read them."""
    exe = tool(store, "pg_dumpall")
    res = subprocess.run([exe, "--roles-only", "--no-role-passwords", f"--file={target}"], env=libpq_env(store),
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        target.unlink(missing_ok=True)
        return False
    return True


def restore_roles(store: Store, source: Path) -> None:
    """Create the roles of ``source`` that the target cluster lacks (existing ones are left as they are)."""
    _run([tool(store, "psql"), "--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=0", "--output=/dev/null",
          f"--file={source}"], store, "creating the roles")


# comments on extensions: only an extension's owner may set them, and the extension brings its own (the extensions
# themselves are restored with CREATE EXTENSION IF NOT EXISTS)
_SKIP_ENTRY = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION ")
_EMPTY_SEARCH_PATH = "SELECT pg_catalog.set_config('search_path', '', false);"


def restore(store: Store, source: Path, workdir: Path, *, privileges: bool) -> None:
    """Restore ``source`` into the store's (empty) database in one transaction; the grants too when
    ``privileges`` (their roles exist).

    ``pg_restore`` writes the dump as SQL, which ``psql`` runs. In between, pg_dump's ``set_config('search_path',
    '', false)`` is dropped: pgstac's generated columns call SQL functions whose bodies name PostGIS functions
    unqualified (``st_makeenvelope``), and with an empty search path their tables cannot be created. Every name
    the dump itself writes is schema-qualified, so the default search path changes nothing else.
    """
    exe = tool(store, "pg_restore")
    listing = subprocess.run([exe, "--list", str(source)], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise BackupToolError(f"pg_restore cannot read the dump: {_error_line(listing.stderr)}")
    entries = workdir / "restore.list"
    entries.write_text("\n".join(line for line in listing.stdout.splitlines() if not _SKIP_ENTRY.match(line)))
    script, plain = workdir / "restore.sql", workdir / "dump.sql"
    res = subprocess.run([exe, "--no-owner", *([] if privileges else ["--no-privileges"]), f"--use-list={entries}",
                          f"--file={plain}", str(source)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BackupToolError(f"pg_restore failed: {_error_line(res.stderr)}")
    with plain.open() as src, script.open("w") as dst:
        for line in src:
            if line.strip() != _EMPTY_SEARCH_PATH:
                dst.write(line)
    plain.unlink()
    _run([tool(store, "psql"), "--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--single-transaction",
          "--output=/dev/null", f"--file={script}"], store, "restoring the database")


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return next((line for line in lines if "ERROR" in line or "error:" in line), lines[-1] if lines else "failed")
