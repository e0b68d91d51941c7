"""Backup and restore of a whole instance: the database (``pg_dump`` custom format) plus the files of the data
directory (scenes, run rasters, and any other folder of ours), with a manifest of versions and checksums.

A backup folder holds ``store.dump``, ``files.tar`` and ``manifest.json``. A restore checks the checksums first,
then fills an empty database and an empty data directory, moves the stored file paths to the new data directory
and migrates the schema to this code's head.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amberwatch import __version__
from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store import backup as pg
from amberwatch.store.db import Store
from amberwatch.store.queries import catalog as catalog_queries
from amberwatch.store.queries import ops as ops_queries

log = logging.getLogger(__name__)

FORMAT = "amberwatch-backup/1"
DUMP, FILES, ROLES, MANIFEST = "store.dump", "files.tar", "roles.sql", "manifest.json"
# not backed up: the cluster (dumped instead), generated configs, transient uploads, nginx/spawn-fcgi runtime
SKIPPED_FOLDERS = frozenset({"postgres", "ogc", "uploads", "run"})


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    manifest: dict[str, Any]


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def data_folders(data_dir: Path) -> list[str]:
    """The top-level folders of the data directory that a backup carries."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir()
                  if p.is_dir() and not p.is_symlink() and p.name not in SKIPPED_FOLDERS and not p.name.startswith("."))


def _skip_staging(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Half-ingested scenes (``scenes/.staging-*``) are not part of the instance."""
    return None if any(part.startswith(".staging-") for part in Path(info.name).parts) else info


def backup(store: Store, settings: Settings, out: Path) -> BackupResult:
    """Write a backup of ``store`` and the data directory into the new or empty folder ``out``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out.name}: the backup folder must be new or empty")
    out.mkdir(parents=True, exist_ok=True)
    data_dir = settings.data_dir.resolve()
    with store.engine.connect() as conn:
        revisions = ops_queries.schema_revisions(conn)
        postgis = catalog_queries.postgis_version(conn)
        server = conn.dialect.server_version_info
    pg_dump_version = pg.dump(store, out / DUMP)
    has_roles = pg.dump_roles(store, out / ROLES)
    folders = data_folders(data_dir)
    with tarfile.open(out / FILES, "w") as tar:
        for name in folders:
            tar.add(data_dir / name, arcname=name, filter=_skip_staging)
    files = {name: {"sha256": sha256(out / name), "bytes": (out / name).stat().st_size}
             for name in (DUMP, FILES, *([ROLES] if has_roles else []))}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "amberwatch_version": __version__,
        "schema_revision": revisions,
        "postgis_version": postgis,
        "server_version": ".".join(str(p) for p in server or ()),
        "pg_dump_version": pg_dump_version,
        "data_dir": str(data_dir),
        "folders": folders,
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("backup written to %s (%d folders, dump %d bytes)", out, len(folders), files[DUMP]["bytes"])
    return BackupResult(out, manifest)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a backup folder, after checking every file against its checksum."""
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder.name}: not a backup folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{MANIFEST} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{MANIFEST}: not an AmberWatch backup of format {FORMAT}")
    for name in {DUMP, FILES} | set(manifest.get("files") or {}):
        if name not in (DUMP, FILES, ROLES):
            raise InputError(f"{MANIFEST} lists an unknown file {name!r}")
        expected = (manifest.get("files") or {}).get(name, {}).get("sha256")
        if not (folder / name).is_file():
            raise InputError(f"{name} is missing from the backup")
        if sha256(folder / name) != expected:
            raise InputError(f"{name} does not match the checksum in {MANIFEST}: the backup is damaged")
    return manifest


def restore(settings: Settings, folder: Path) -> dict[str, Any]:
    """Restore the backup in ``folder`` into the configured database (embedded by default, created on the way),
    which must be empty, and the data directory, whose backed-up folders must not exist yet. Returns the
    manifest."""
    manifest = read_manifest(folder)
    data_dir = settings.data_dir.resolve()
    taken = [name for name in manifest.get("folders", []) if (data_dir / name).exists()
             and any((data_dir / name).iterdir())]
    if taken:
        raise InputError(f"the data directory already has {', '.join(taken)}: restore into a new one")
    store = Store(settings).start(migrate=False)
    try:
        with store.engine.connect() as conn:
            if not ops_queries.is_empty(conn):
                raise InputError("the database is not empty: restore into a new database or data directory")
        roles = ROLES in manifest["files"]
        if roles:
            pg.restore_roles(store, folder / ROLES)
        with tempfile.TemporaryDirectory(prefix="amberwatch-restore-") as work:
            pg.restore(store, folder / DUMP, Path(work), privileges=roles)
        data_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / FILES) as tar:
            tar.extractall(data_dir, filter="data")  # no absolute paths, no '..', no links out, no devices
        with store.engine.begin() as conn:
            moved = ops_queries.move_data_paths(conn, manifest["data_dir"], str(data_dir))
        store.migrate()
        log.info("restored %s into %s (%d stored paths moved)", folder, data_dir, moved)
    finally:
        store.engine.dispose()  # an embedded cluster keeps running, as after `amberwatch db start`
    return manifest
