"""Alembic environment: the engine comes from the caller (``amberwatch.store.db.migrate``)."""

from __future__ import annotations

from alembic import context

from amberwatch.store.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    # PostGIS and tiger tables are not ours
    if type_ == "table" and (name in {"spatial_ref_sys"} or (reflected and compare_to is None)):
        return False
    return True


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        from sqlalchemy import create_engine

        connectable = create_engine(config.get_main_option("sqlalchemy.url"))
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
