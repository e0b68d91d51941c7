"""Database access: the embedded cluster or a configured URL, engine and session factory, migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from amberwatch.settings import Settings
from amberwatch.store.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Store:
    """Engine + session factory for one database; starts the embedded cluster when no URL is configured."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None
        self._url = settings.database_url
        if not settings.database_url:
            self.embedded = EmbeddedPostgres(
                settings.data_dir.resolve() / "postgres", settings.embedded_pg_port, settings.pg_bin_dir
            )
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL (the embedded cluster's port is known only once it runs)."""
        return self.embedded.url if self.embedded else str(self._url)

    def start(self, migrate: bool = True) -> Store:
        if self.embedded:
            self.embedded.start()
        self._engine = create_engine(self.url, pool_pre_ping=True, future=True)
        self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
        if migrate:
            self.migrate()
        return self

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Store.start() has not been called")
        return self._engine

    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (Alembic)."""
        cfg = self.alembic_config()
        with self.engine.begin() as conn:
            conn.execute(text("create extension if not exists postgis"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        if self._sessionmaker is None:
            raise RuntimeError("Store.start() has not been called")
        with self._sessionmaker() as session, session.begin():
            yield session

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.embedded:
            self.embedded.stop()
