"""``amberwatch keys|db|models``: API keys, the database, the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amberwatch.accounts import ROLES
from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.usecases import keys as keys_uc

keys_app = typer_app("API keys for machines and people with a role (admin, analyst, moderator, validator, field).")
db_app = typer_app("The database (embedded cluster or AMBERWATCH_DATABASE_URL).")
models_app = typer_app("The model registry.")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for (unique), e.g. qgis-inspector-rivne.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
) -> None:
    """Create a key; it is printed once, as the last line (only its hash is stored)."""
    row, key = keys_uc.create_key(open_store(), name, role)
    typer.echo(f"key {row.name!r} ({row.role}) created; send it as 'Authorization: Bearer <key>'. "
               "It is shown only now:")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: it stops working at once."""
    row = keys_uc.revoke_key(open_store(), name)
    typer.echo(f"key {row.name!r} revoked")


@keys_app.command("list")
def keys_list() -> None:
    """The keys: name, role, prefix, created, last used, revoked."""
    for k in keys_uc.list_keys(open_store()):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        typer.echo(f"{k.name}\t{k.role}\t{k.prefix}…\tcreated {k.created_at:%Y-%m-%d}\tused {used}\t{state}")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded cluster (if used) and migrate the schema."""
    store = open_store()
    typer.echo(f"database ready: {store.url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    from amberwatch.store.db import Store

    Store(settings()).stop()
    typer.echo("stopped")


@db_app.command("backup")
def db_backup(
    out: Annotated[Path, typer.Option("--out", help="A new or empty folder for the backup.")],
) -> None:
    """Back up the database (pg_dump, custom format) and the data directory's scenes and run rasters, with a
    manifest of versions and checksums (docs/operations.md#backup-and-restore)."""
    from amberwatch.usecases import backup as backup_uc

    cfg = settings()
    result = backup_uc.backup(open_store(cfg), cfg, out)
    files = result.manifest["files"]
    typer.echo(f"backup in {out}: database {files['store.dump']['bytes']:,} bytes, files "
               f"{files['files.tar']['bytes']:,} bytes ({', '.join(result.manifest['folders']) or 'no folders'})")


@db_app.command("restore")
def db_restore(
    folder: Annotated[Path, typer.Argument(help="A folder written by `amberwatch db backup`.")],
) -> None:
    """Restore a backup into an empty database (the embedded one is created) and a new data directory."""
    from amberwatch.usecases import backup as backup_uc

    manifest = backup_uc.restore(settings(), folder)
    typer.echo(f"restored the backup of {manifest['created_at']} (AmberWatch {manifest['amberwatch_version']}, "
               f"schema {','.join(manifest['schema_revision'])}); the schema is migrated to this version's head")


@models_app.command("list")
def models_list() -> None:
    """List the models in the registry; "(default)" marks the version a run without --model uses."""
    from amberwatch.detect.registry import default_refs, list_models

    cfg = settings()
    models = list_models(cfg.models_dir)
    defaults = default_refs(models, cfg.default_models)
    for m in models:
        default = " (default)" if m.ref in defaults else ""
        typer.echo(f"{m.name}@{m.version}\t{m.family}{default}\t{m.path}")
